//! `git agent demo`: the whole product on a scripted agent, no API key.

use std::path::PathBuf;

use super::helper::NoRecord;
use super::{exit, CliError, CliResult, Ctx};
use crate::model::store::RunRecord;
use crate::report::markdown::render_markdown;

/// Run a built-in demo: a temporary repo, three briefs and a scripted agent (no API key)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the demo (default: a new temporary directory, kept for you to explore)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let base = demo_dir(args.dir)?;
    let repo = crate::cli::demo_repo::create(&base).map_err(|e| {
        CliError::from_error(exit::RUN_FAILED, "could not create the demo repository", &e)
    })?;
    eprintln!("demo repository: {}", repo.display());
    eprintln!("running 3 briefs with a scripted agent: one succeeds, one needs a second attempt, one strays out of scope\n");
    let demo_ctx = Ctx {
        cwd: repo.clone(),
        stderr_tty: ctx.stderr_tty,
    };
    let config = super::helper::load_config(&repo, &demo_ctx)?;
    let ids: Vec<String> = crate::cli::demo_repo::EXPECTED
        .iter()
        .map(|(t, _)| t.to_string())
        .collect();
    let reqs = super::helper::load_requests(&repo, &config, &ids, None, &demo_ctx)?;
    let records = super::helper::execute(&repo, &config, reqs, 3, &demo_ctx)?;
    super::print_out("\n");
    super::helper::report(&records, false)?;

    print_decision_log(&records, &demo_ctx)?;
    let (ga, note) = this_program();
    super::print_out(&format!(
        "Explore it:\n  cd {}\n  git log --oneline agent/fix-greeting\n  git notes --ref agent show agent/add-farewell\n  {ga} status && {ga} log tidy-readme\n{note}",
        repo.display()
    ));

    if ended_as_expected(&records) {
        Ok(exit::OK)
    } else {
        Err(CliError::failed(
            "the demo did not end as expected (see above)",
        ))
    }
}

/// How to call git-agent in the hints: `git agent` when `git-agent` is on
/// PATH (git finds it there), else this very program by its path (the demo
/// started with `cargo run`, say), with a note on how to get `git agent`.
fn this_program() -> (String, &'static str) {
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join("git-agent"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    let exe = std::env::current_exe().ok();
    match exe {
        Some(exe) if !on_path => {
            let shown = exe.display().to_string();
            let plain = shown
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
            (
                if plain {
                    shown
                } else {
                    format!("'{}'", shown.replace('\'', "'\\''"))
                },
                "  (git-agent is not on PATH: `cargo install --path .` in its source makes `git agent` work)\n",
            )
        }
        _ => ("git agent".to_string(), ""),
    }
}

/// The demo's directory: `--dir` when new or empty, else a kept temporary one.
fn demo_dir(dir: Option<PathBuf>) -> CliResult<PathBuf> {
    Ok(match dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(&d)
                    .map(|mut e| e.next().is_some())
                    .unwrap_or(true)
            {
                return Err(CliError::usage(format!("{} is not empty", d.display()))
                    .hint("give a new or empty directory"));
            }
            d
        }
        None => tempfile::Builder::new()
            .prefix("git-agent-demo-")
            .tempdir()
            .map_err(|e| {
                CliError::from_error(
                    exit::RUN_FAILED,
                    "could not create a temporary directory",
                    &e,
                )
            })?
            .keep(),
    })
}

/// The decision log of add-farewell, the run a reviewer would read.
fn print_decision_log(records: &[Result<RunRecord, NoRecord>], demo_ctx: &Ctx) -> CliResult<()> {
    let store = super::helper::store(demo_ctx)?;
    if let Some(Ok(record)) = records
        .iter()
        .find(|r| matches!(r, Ok(r) if r.task == "add-farewell"))
    {
        let events = store.open(&record.run_id).read_events().unwrap_or_default();
        super::print_out(&format!(
            "\nThe decision log of add-farewell (what a reviewer reads; also the PR body):\n\n{}\n",
            render_markdown(record, &events)
        ));
    }
    Ok(())
}

/// Whether every demo brief ended with the outcome it is scripted for.
fn ended_as_expected(records: &[Result<RunRecord, NoRecord>]) -> bool {
    crate::cli::demo_repo::EXPECTED
        .iter()
        .all(|(task, outcome)| {
            records
                .iter()
                .any(|r| matches!(r, Ok(r) if r.task == *task && r.state.outcome() == *outcome))
        })
}
