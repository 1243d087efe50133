//! `git agent man`: the manual pages, printed or installed where `man`
//! finds them.
//!
//! `git agent --help` is git's: it runs `man git-agent`. man-db (and
//! macOS's man) derive their search path from `PATH`: for each directory
//! `<prefix>/bin` they also search `<prefix>/share/man` (and
//! `<prefix>/man`). So pages installed into `share/man` beside the `bin/`
//! that holds git-agent (`~/.cargo/share/man` after `cargo install`) are
//! found with no `MANPATH` set.

use std::path::{Path, PathBuf};

use super::{exit, CliError, CliResult, Ctx};

/// Print or install the manual pages (installed, `git agent --help` shows them)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The page of this subcommand (`run`: git-agent-run(1)); default: git-agent(1)
    #[arg(value_name = "COMMAND", conflicts_with = "install")]
    pub command: Option<String>,
    /// Write every page into DIR/man1 (default: share/man beside the bin/ on PATH that holds git-agent)
    #[arg(long, value_name = "DIR", num_args = 0..=1)]
    pub install: Option<Option<PathBuf>>,
}

pub fn exec(args: Args, _ctx: &Ctx) -> CliResult {
    match args.install {
        Some(dir) => install(dir),
        None => print(args.command.as_deref()),
    }
}

/// The roff source of one page on stdout.
fn print(command: Option<&str>) -> CliResult {
    let pages = pages()
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not render the manual", &e))?;
    let wanted = match command {
        None => NAME.to_string(),
        Some(c) => format!("{NAME}-{c}"),
    };
    let Some((_, text)) = pages
        .iter()
        .find(|(name, _)| *name == format!("{wanted}.1"))
    else {
        let known: Vec<&str> = pages
            .iter()
            .filter_map(|(name, _)| name.strip_prefix(&format!("{NAME}-"))?.strip_suffix(".1"))
            .collect();
        return Err(CliError::usage(format!(
            "no manual page for `{}`",
            command.unwrap_or_default()
        ))
        .hint(format!("pages: {}", known.join(", "))));
    };
    super::print_out(text);
    Ok(exit::OK)
}

/// Every page into `<dir>/man1`; says where, and whether `man` will look there.
fn install(dir: Option<PathBuf>) -> CliResult {
    let dir = match dir {
        Some(dir) => dir,
        None => default_dir()?,
    };
    let man1 = dir.join("man1");
    let pages = pages()
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not render the manual", &e))?;
    std::fs::create_dir_all(&man1)
        .and_then(|()| {
            pages
                .iter()
                .try_for_each(|(name, text)| write_page(&man1.join(name), text))
        })
        .map_err(|e| {
            CliError::from_error(
                exit::RUN_FAILED,
                format!("could not install the manual into {}", man1.display()),
                &e,
            )
            .hint("pass a directory you may write to: `git agent man --install DIR`")
        })?;
    super::outln!(
        "installed {} manual pages into {}",
        pages.len(),
        man1.display()
    );
    if !man_searches(&dir) {
        eprintln!(
            "warning: man may not look in {}: add it to MANPATH (export MANPATH=\"{}:$MANPATH\")",
            dir.display(),
            dir.display()
        );
    }
    Ok(exit::OK)
}

/// The file name of the top page, and the prefix of the others.
const NAME: &str = "git-agent";

/// Every page: (file name, roff text), the top one first.
fn pages() -> std::io::Result<Vec<(String, String)>> {
    // The help's closing lines (exit codes, logs) become sections of
    // their own on the top page.
    let mut cmd = super::command()
        .disable_help_subcommand(true)
        .after_help(None::<&str>);
    cmd.build();
    let mut out = Vec::new();
    collect(&cmd, &mut out)?;
    if let Some((_, top)) = out.first_mut() {
        let at = top.find("\n.SH VERSION").map_or(top.len(), |i| i + 1);
        top.insert_str(at, &top_sections());
    }
    Ok(out)
}

fn collect(cmd: &clap::Command, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut text = Vec::new();
    man.render(&mut text)?;
    out.push((
        man.get_filename(),
        String::from_utf8_lossy(&text).into_owned(),
    ));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, out)?;
    }
    Ok(())
}

/// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO of git-agent(1).
fn top_sections() -> String {
    use clap_mangen::roff::{bold, roman, Roff};
    let mut r = Roff::new();
    let item = |r: &mut Roff, term: clap_mangen::roff::Inline, text: &str| {
        r.control("TP", []);
        r.text([term]);
        r.text([roman(text)]);
    };
    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        (exit::OK, "Every run succeeded."),
        (
            exit::RUN_FAILED,
            "A run failed, or its delivery failed (the branch stays; git agent deliver retries).",
        ),
        (
            exit::USAGE,
            "Bad input: an invalid brief or config, an unknown task, a bad flag.",
        ),
        (exit::ESCALATED, "A run escalated: it stopped to hand back to a human."),
        (
            exit::INTERRUPTED,
            "Interrupted (Ctrl-C, SIGTERM): runs are kept and git agent run --resume continues them.",
        ),
    ] {
        item(&mut r, bold(code.to_string()), meaning);
    }
    r.control("SH", ["ENVIRONMENT"]);
    item(
        &mut r,
        bold("GIT_AGENT_LOG"),
        "A tracing env-filter (debug, git_agent=trace) for logs on stderr.",
    );
    r.control("SH", ["FILES"]);
    for (path, what) in [
        (
            ".agents/config.yaml",
            "The agents and defaults of the repository.",
        ),
        (
            ".agents/tasks/<id>.md",
            "One brief per task: goal, scope, checks, escalation.",
        ),
        (
            "<git-common-dir>/agent/runs/<run-id>/",
            "The record of a run (run.json), its events and outputs.",
        ),
    ] {
        item(&mut r, bold(path), what);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([roman("git-worktree(1), git-notes(1)")]);
    r.to_roff()
}

/// Replaces the page whole (a reader never sees half of one).
fn write_page(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("1.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `<prefix>/share/man` for the `<prefix>/bin` on `PATH` that holds this
/// program (through a symlink too), else beside the program itself.
fn default_dir() -> CliResult<PathBuf> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| {
            CliError::from_error(
                exit::RUN_FAILED,
                "could not tell where git-agent is installed",
                &e,
            )
            .hint("name the man directory: `git agent man --install DIR`")
        })?;
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| {
            dir.is_absolute()
                && std::fs::canonicalize(dir.join(NAME)).is_ok_and(|found| found == exe)
        });
    let bin = on_path
        .or_else(|| exe.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    Ok(bin.parent().unwrap_or(&bin).join("share").join("man"))
}

/// Whether `man` (man-db's rules) searches `dir`: it is on `MANPATH`, or
/// `MANPATH` leaves room for the defaults (unset, or an empty entry) and
/// `dir` is `<prefix>/share/man` or `<prefix>/man` of a `<prefix>/bin` on
/// `PATH`.
fn man_searches(dir: &Path) -> bool {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let manpath = std::env::var_os("MANPATH");
    if let Some(list) = &manpath {
        if std::env::split_paths(list).any(|d| same(&d, dir)) {
            return true;
        }
        let text = list.to_string_lossy();
        let defaults_kept =
            text.is_empty() || text.starts_with(':') || text.ends_with(':') || text.contains("::");
        if !defaults_kept {
            return false;
        }
    }
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|bin| {
        let Some(prefix) = bin.parent() else {
            return false;
        };
        same(&prefix.join("share").join("man"), dir) || same(&prefix.join("man"), dir)
    })
}
