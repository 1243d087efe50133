//! `git agent validate`: check briefs and the config.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::helper::terminal_width;
use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::spec::brief::{self, Context};
use crate::spec::config;
use crate::spec::diagnostic::FileReport;
use crate::spec::repo_files;

/// Check briefs and the config; print every problem with file:line:col and a hint
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Brief files or directories to check (default: all of .agents/tasks and the config)
    pub paths: Vec<PathBuf>,
    /// Print the problems as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Treat warnings as errors
    #[arg(long)]
    pub strict: bool,
}

#[derive(Serialize)]
struct JsonProblem {
    file: String,
    line: usize,
    column: usize,
    severity: &'static str,
    code: &'static str,
    message: String,
    help: Option<String>,
}

/// What was checked and what was found.
struct Checked {
    reports: Vec<FileReport>,
    /// Briefs checked, and how many of them have errors.
    briefs: usize,
    invalid: usize,
    /// The config is reported (and counted): everything was checked.
    config_checked: bool,
    config_invalid: bool,
    /// The config is invalid and names no agents: the briefs' `agent:` went unchecked.
    agents_unchecked: bool,
    errors: usize,
    warnings: usize,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let checked = check(&args, &root, ctx)?;
    if args.json {
        print_problems_json(&checked)?;
        note_unchecked_agents(&checked);
    } else {
        print_problems_text(&checked, &args, ctx);
    }
    let failed = checked.errors > 0 || (args.strict && checked.warnings > 0);
    Ok(if failed { exit::USAGE } else { exit::OK })
}

/// Check the config and the briefs the arguments name (all of them by default).
fn check(args: &Args, root: &Path, ctx: &Ctx) -> CliResult<Checked> {
    let mut reports: Vec<FileReport> = Vec::new();

    let (config, config_report) = config::load(root).map_err(|e| {
        CliError::from_error(
            exit::USAGE,
            format!("could not read {}", config::CONFIG_PATH),
            &e,
        )
    })?;
    // An invalid config still names its agents, most of the time: check
    // `agent:` against those rather than not at all.
    let config_invalid = config_report.as_ref().is_some_and(FileReport::has_errors);
    let known_agents = match &config_report {
        Some(report) if config_invalid => config::written_agent_names(&report.source),
        _ => config.present.then(|| config.agent_names()),
    };
    let agents_unchecked = config_invalid && known_agents.is_none();
    let brief_ctx = Context { known_agents };
    // The config is reported (and counted) when everything is checked.
    let config_checked = args.paths.is_empty() && config_report.is_some();
    let files = if args.paths.is_empty() {
        reports.extend(config_report);
        reports.extend(nested_briefs(root));
        repo_files::list_briefs(root)
            .map_err(|e| CliError::from_error(exit::USAGE, "could not list .agents/tasks", &e))?
    } else {
        expand(&args.paths, ctx)?
    };
    let first_brief = reports.len();
    let mut valid = Vec::new();
    for path in &files {
        let display = repo_files::display(root, path);
        let (parsed, report) = brief::load(path, display.clone(), &brief_ctx).map_err(|e| {
            CliError::from_error(exit::USAGE, format!("could not read {display}"), &e)
        })?;
        if let Some(parsed) = parsed {
            valid.push((reports.len(), parsed));
        }
        reports.push(report);
    }
    graph(root, &valid, &mut reports);
    if !config_invalid {
        lint(root, &config, config_checked, &valid, &mut reports);
    }
    let briefs = files.len();
    let invalid = reports[first_brief..]
        .iter()
        .filter(|r| r.has_errors())
        .count();

    let errors: usize = reports.iter().map(FileReport::errors).sum();
    let warnings: usize = reports.iter().map(FileReport::warnings).sum();
    Ok(Checked {
        reports,
        briefs,
        invalid,
        config_checked,
        config_invalid,
        agents_unchecked,
        errors,
        warnings,
    })
}

/// `after:` across the valid briefs (tasks with no brief, cycles), in
/// their reports.
fn graph(root: &Path, valid: &[(usize, brief::Brief)], reports: &mut [FileReport]) {
    let known = super::chain::known_ids(root);
    let briefs: Vec<&brief::Brief> = valid.iter().map(|(_, b)| b).collect();
    for (i, problem) in super::chain::graph_reports(&briefs, &known) {
        reports[valid[i].0].push(problem);
    }
}

/// The lints (`super::lint`) of the valid briefs and the config, added to
/// their reports; the config's report comes first when it is checked.
fn lint(
    root: &Path,
    config: &config::Config,
    config_checked: bool,
    valid: &[(usize, brief::Brief)],
    reports: &mut [FileReport],
) {
    let texts: Vec<(String, std::sync::Arc<str>)> = valid
        .iter()
        .map(|(i, _)| (reports[*i].display_path.clone(), reports[*i].source.clone()))
        .collect();
    let linted: Vec<super::lint::Linted<'_>> = valid
        .iter()
        .zip(&texts)
        .map(|((_, brief), (display, text))| super::lint::Linted {
            brief,
            display,
            text,
        })
        .collect();
    let config_text = config_checked.then(|| reports[0].source.clone());
    let found = super::lint::lints(root, config, config_text.as_deref(), &linted);
    if config_checked {
        reports[0].extend(found.config);
    }
    for (i, problem) in found.briefs {
        reports[valid[i].0].push(problem);
    }
}

/// Briefs in subdirectories of `.agents/tasks/`, which no command reads (a
/// task's id is its file name): each an error saying where to move it.
fn nested_briefs(root: &Path) -> Vec<FileReport> {
    repo_files::nested_briefs(root)
        .into_iter()
        .map(|path| {
            let display = repo_files::display(root, &path);
            let source = std::fs::read_to_string(&path).unwrap_or_default();
            let mut report = FileReport::new(&path, display, std::sync::Arc::from(source.as_str()));
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            report.push(
                crate::spec::diagnostic::Problem::error(
                    "brief::nested",
                    crate::spec::yaml::Span::new(0, 0),
                    "briefs in subdirectories of .agents/tasks/ are not read: a task's id is its file name",
                )
                .help(format!("move it to {}/{stem}.md", brief::TASKS_DIR)),
            );
            report
        })
        .collect()
}

/// Say that the briefs' `agent:` went unchecked, when it did.
fn note_unchecked_agents(checked: &Checked) {
    if checked.agents_unchecked && checked.briefs > 0 {
        eprintln!(
            "note: the `agent:` of briefs was not checked: {} is invalid",
            config::CONFIG_PATH
        );
    }
}

/// `--json`: every problem, and the counts, on stdout.
fn print_problems_json(checked: &Checked) -> CliResult<()> {
    let problems: Vec<JsonProblem> = checked
        .reports
        .iter()
        .flat_map(|r| {
            r.problems.iter().map(move |p| {
                let (line, column) = r.line_col(p.span.offset);
                JsonProblem {
                    file: r.display_path.clone(),
                    line,
                    column,
                    severity: if p.is_error() { "error" } else { "warning" },
                    code: p.code,
                    message: p.message.clone(),
                    help: p.help.clone(),
                }
            })
        })
        .collect();
    print_json(&serde_json::json!({
        "briefs": checked.briefs,
        "errors": checked.errors,
        "warnings": checked.warnings,
        "problems": problems,
    }))
}

/// The problems rendered on stderr, and a one-line summary on stdout.
fn print_problems_text(checked: &Checked, args: &Args, ctx: &Ctx) {
    let Checked {
        briefs,
        invalid,
        errors,
        warnings,
        ..
    } = *checked;
    let width = terminal_width();
    for report in &checked.reports {
        if !report.problems.is_empty() {
            eprint!("{}", report.render(ctx.stderr_tty, width));
        }
    }
    note_unchecked_agents(checked);
    if briefs == 0 && args.paths.is_empty() {
        eprintln!(
            "no briefs in {}; create one with `git agent new <id>`",
            brief::TASKS_DIR
        );
    }
    // The config is not a brief: it is only named when it is invalid.
    let config_status = if checked.config_checked && checked.config_invalid {
        "; config: invalid"
    } else {
        ""
    };
    super::outln!(
        "{briefs} brief{} checked: {} valid, {invalid} invalid{config_status} ({errors} error{}, {warnings} warning{})",
        plural(briefs),
        briefs - invalid,
        plural(errors),
        plural(warnings)
    );
}

/// Files named on the command line; directories expand to their `*.md`.
fn expand(paths: &[PathBuf], ctx: &Ctx) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let p = if p.is_absolute() {
            p.clone()
        } else {
            ctx.cwd.join(p)
        };
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| {
                    CliError::from_error(exit::USAGE, format!("could not read {}", p.display()), &e)
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().and_then(|e| e.to_str()) == Some("md"))
                .collect();
            found.sort();
            out.extend(found);
        } else if p.exists() {
            out.push(p);
        } else {
            return Err(
                CliError::usage(format!("no such file: {}", p.display())).hint(
                    "pass brief files or directories, or nothing to check all of .agents/tasks",
                ),
            );
        }
    }
    Ok(out)
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
