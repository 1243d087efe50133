//! What the commands share — the one helper every command file uses (jj's
//! `CommandHelper`): the config and briefs of the repository, the run
//! store, a runtime, the forge target, the batch of runs and its summary,
//! the delivery of a finished run.
//! Commands never import each other; what two of them need lives here.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{exit, print_json, progress, CliError, CliResult, Ctx};
use crate::engine::orchestrator::{self, Finished};
use crate::engine::run::{error_chain, Engine, RunRequest};
use crate::exec::process::{self, StopSignal};
use crate::model::delivery::{Deliver, DeliveryRecord};
use crate::model::store::{RunDir, RunRecord, State, Store};
pub(crate) use crate::report::json::to_json;
use crate::spec::brief::{self, Context};
use crate::spec::config::{self, Config};
use crate::spec::diagnostic::did_you_mean;
use crate::spec::repo_files;

/// How a batch of briefs runs (shared by `run` and `plan`).
#[derive(Debug, clap::Args)]
pub struct Batch {
    /// Use this agent instead of the brief's or the config's default
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// How many runs at once (default: config max_parallel, else the number of CPUs)
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Run runs whose write scopes overlap side by side (what they always
    /// do now: their results are checked for conflicts; `after:` in a
    /// brief orders runs). Kept for older scripts
    #[arg(long)]
    pub allow_overlap: bool,
}

/// The task ids named, or every brief's with `all`; an error when none.
pub(crate) fn task_ids(
    root: &std::path::Path,
    all: bool,
    tasks: &[String],
) -> CliResult<Vec<String>> {
    let ids: Vec<String> = if all {
        repo_files::list_briefs(root)
            .map_err(|e| CliError::from_error(exit::USAGE, "could not list .agents/tasks", &e))?
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect()
    } else {
        tasks.iter().map(|t| task_of_path(root, t)).collect()
    };
    if all {
        for nested in repo_files::nested_briefs(root) {
            eprintln!(
                "warning: {} is not run: briefs in subdirectories of {} are not read (move it up)",
                repo_files::display(root, &nested),
                brief::TASKS_DIR
            );
        }
    }
    if ids.is_empty() {
        return Err(
            CliError::usage("there are no briefs").hint("create one with `git agent new <id>`")
        );
    }
    Ok(ids)
}

/// A task named by its brief's path (`.agents/tasks/x.md`, from the
/// current directory or the repository root) is task `x`; anything else is
/// taken as an id.
fn task_of_path(root: &std::path::Path, arg: &str) -> String {
    let path = std::path::Path::new(arg);
    if !path.extension().is_some_and(|e| e == "md") {
        return arg.to_string();
    }
    let tasks = std::fs::canonicalize(root.join(brief::TASKS_DIR)).ok();
    let candidates = [
        std::env::current_dir().ok().map(|c| c.join(path)),
        Some(root.join(path)),
    ];
    for candidate in candidates.into_iter().flatten() {
        let Ok(file) = std::fs::canonicalize(&candidate) else {
            continue;
        };
        if file.parent().map(std::path::Path::to_path_buf) == tasks {
            if let Some(stem) = file.file_stem() {
                return stem.to_string_lossy().into_owned();
            }
        }
    }
    arg.to_string()
}

/// `-j`, else the config's `max_parallel`, else the CPUs.
pub(crate) fn jobs(flag: Option<usize>, config: &Config) -> usize {
    flag.or(config.max_parallel.map(|n| n as usize))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
}

/// Where to deliver or read reviews: `origin`, the API URL and the token
/// from this process's environment (never passed to agents).
pub(crate) fn forge_target(
    common: &std::path::Path,
    config: &Config,
) -> Result<crate::deliver::Target, crate::deliver::DeliverError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    crate::deliver::Target::discover(
        common,
        config.github.api_url.clone(),
        config.github.token_env.as_deref(),
        &env,
    )
}

/// A single-threaded runtime for a few forge calls.
pub(crate) fn small_runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not start the runtime", &e))
}

pub(crate) fn load_config(root: &std::path::Path, ctx: &Ctx) -> CliResult<Config> {
    let (config, report) = config::load(root).map_err(|e| {
        CliError::from_error(
            exit::USAGE,
            format!("could not read {}", config::CONFIG_PATH),
            &e,
        )
    })?;
    if let Some(report) = report {
        if report.has_errors() {
            eprint!(
                "{}",
                report.render(ctx.stderr_tty, super::helper::terminal_width())
            );
            return Err(CliError::reported(exit::USAGE));
        }
    }
    // A token named by the config never reaches a local git child.
    if let Some(name) = &config.github.token_env {
        crate::git::scrub_token_env(name);
    }
    Ok(config)
}

pub(crate) fn load_requests(
    root: &std::path::Path,
    config: &Config,
    ids: &[String],
    agent: Option<&str>,
    ctx: &Ctx,
) -> CliResult<Vec<RunRequest>> {
    let mut reqs = Vec::new();
    let mut bad = false;
    for id in ids {
        let Some((brief, display)) = load_brief(root, config, id, ctx)? else {
            bad = true;
            continue;
        };
        let agent = config
            .pick_agent(agent.or(brief.agent.as_deref()))
            .map_err(|m| {
                CliError::usage(m.to_string())
                    .hint("define agents in .agents/config.yaml (`git agent init` writes one)")
            })?
            .clone();
        reqs.push(RunRequest {
            brief,
            agent,
            brief_display: display,
            resume: None,
            review: None,
            queued: None,
            after: Vec::new(),
        });
    }
    if bad {
        return Err(CliError::reported(exit::USAGE));
    }
    reject_duplicates(&reqs)?;
    super::chain::link(root, config, &mut reqs, ctx)?;
    for warning in super::committed::warnings(root, &reqs) {
        eprintln!("warning: {}", super::terminal::clean(&warning));
    }
    Ok(reqs)
}

/// The brief of task `id` in the checkout and the path it is shown by;
/// `None` when it has errors (they are on stderr).
pub(crate) fn load_brief(
    root: &std::path::Path,
    config: &Config,
    id: &str,
    ctx: &Ctx,
) -> CliResult<Option<(brief::Brief, String)>> {
    let brief_ctx = Context {
        known_agents: config.present.then(|| config.agent_names()),
    };
    let path = repo_files::brief_path(root, id);
    if brief::TaskId::parse(id).is_err() || !path.is_file() {
        return Err(no_such_brief(root, id));
    }
    let display = repo_files::display(root, &path);
    let (parsed, report) = brief::load(&path, display.clone(), &brief_ctx)
        .map_err(|e| CliError::from_error(exit::USAGE, format!("could not read {display}"), &e))?;
    if report.has_errors() {
        eprint!("{}", report.render(ctx.stderr_tty, terminal_width()));
        return Ok(None);
    }
    Ok(Some((
        parsed.expect("a brief without errors is returned"),
        display,
    )))
}

/// The error for a task id with no brief, with the closest brief's name (or
/// all of them) as a hint.
fn no_such_brief(root: &std::path::Path, id: &str) -> CliError {
    let known: Vec<String> = repo_files::list_briefs(root)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    if let Some(err) = not_an_id(root, id, &known) {
        return err;
    }
    let mut err = CliError::usage(format!("no brief `{id}` in {}", brief::TASKS_DIR));
    if let Some(best) = did_you_mean(id, known.iter().map(String::as_str)) {
        err = err.hint(format!("did you mean `{best}`?"));
    } else if !known.is_empty() {
        err = err.hint(format!("briefs: {}", known.join(", ")));
    }
    err
}

/// Every brief's `base` resolves to a commit here, or the run is bad input:
/// exit 2, pointing at the `base:` line, before anything is recorded.
pub(crate) fn check_bases(root: &std::path::Path, reqs: &[RunRequest]) -> CliResult<()> {
    let repo = git2::Repository::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    for req in reqs {
        let text = std::fs::read_to_string(&req.brief.path).unwrap_or_default();
        let Some(problem) = base_problem(&repo, &req.brief, &text) else {
            continue;
        };
        let at = if req.brief.raw.base.is_some() {
            let report = crate::spec::diagnostic::FileReport::new(
                &req.brief.path,
                req.brief_display.clone(),
                std::sync::Arc::from(text.as_str()),
            );
            let (line, col) = report.line_col(problem.span.offset);
            format!("{}:{line}:{col}", req.brief_display)
        } else {
            req.brief_display.clone()
        };
        let mut err = CliError::usage(format!("{at}: {}", problem.message));
        if let Some(help) = problem.help {
            err = err.hint(help);
        }
        return Err(err);
    }
    Ok(())
}

/// Why the brief's `base` does not resolve to a commit in `repo` (`None`
/// when it does): at its `base:` key, or the file's start when the brief
/// names none and `HEAD` is no commit. Shared by `run` and `validate`.
pub(crate) fn base_problem(
    repo: &git2::Repository,
    brief: &brief::Brief,
    text: &str,
) -> Option<crate::spec::diagnostic::Problem> {
    use crate::spec::diagnostic::Problem;
    use crate::spec::yaml::Span;
    let base = &brief.base;
    if repo
        .revparse_single(base)
        .and_then(|o| o.peel_to_commit())
        .is_ok()
    {
        return None;
    }
    let at = brief
        .raw
        .base
        .as_ref()
        .and(crate::spec::lint::frontmatter(text).and_then(|root| root.key_span(&["base"])));
    Some(match (at, repo.head()) {
        (Some(span), _) => Problem::error(
            "brief::unresolved-base",
            span,
            format!("`base: {base}` does not resolve to a commit in this repository"),
        )
        .label("no such branch, tag or commit")
        .help("name a branch, tag or commit that exists here (`git rev-parse <base>` tells)"),
        (None, Err(_)) => Problem::error(
            "brief::no-commits",
            Span::new(0, 0),
            "the repository has no commits yet, and a run starts from `HEAD`",
        )
        .help("commit something first (a run checks out and judges against a commit)"),
        (None, Ok(_)) => Problem::error(
            "brief::unresolved-base",
            Span::new(0, 0),
            "`HEAD` does not resolve to a commit",
        )
        .help("check out a branch, or set `base:` in the brief"),
    })
}

/// The error for something named as a task that is no task id: a brief
/// in a subdirectory of `.agents/tasks/` (never read), or a name that is
/// not lower-case, with the id it would be.
fn not_an_id(root: &std::path::Path, id: &str, known: &[String]) -> Option<CliError> {
    if brief::TaskId::parse(id).is_ok() {
        return None;
    }
    let path = std::path::Path::new(id);
    let tasks = std::fs::canonicalize(root.join(brief::TASKS_DIR)).ok();
    let nested = [
        root.join(path),
        root.join(brief::TASKS_DIR).join(format!("{id}.md")),
    ]
    .iter()
    .filter_map(|p| std::fs::canonicalize(p).ok())
    .any(|file| {
        tasks
            .as_ref()
            .is_some_and(|t| file.starts_with(t) && file.parent() != Some(t))
    });
    let stem = path.file_stem().map_or(id.into(), |s| s.to_string_lossy());
    let suggested = brief::suggest_id(&stem);
    if nested {
        return Some(
            CliError::usage(format!(
                "{id}: briefs in subdirectories of {} are not read (a task's id is its file name)",
                brief::TASKS_DIR
            ))
            .hint(format!("move it to {}/{suggested}.md", brief::TASKS_DIR)),
        );
    }
    let closest = if known.contains(&suggested) {
        Some(suggested.as_str())
    } else {
        did_you_mean(&suggested, known.iter().map(String::as_str))
    };
    let hint = match closest {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!(
            "as an id it would be `{suggested}` (`git agent new {suggested}` makes its brief)"
        ),
    };
    Some(
        CliError::usage(format!(
            "`{id}` is not a task id: ids are lower-case letters, digits, `-` and `_` (a brief's file name without `.md`)"
        ))
        .hint(hint),
    )
}

/// A task named twice is a usage error.
fn reject_duplicates(reqs: &[RunRequest]) -> CliResult<()> {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = reqs.iter().find(|r| !seen.insert(r.brief.id.clone())) {
        return Err(CliError::usage(format!(
            "`{}` is named twice",
            dup.brief.id
        )));
    }
    Ok(())
}

/// The engine of this repository, as the config sets it up.
pub(crate) fn engine(root: &std::path::Path, config: &Config) -> CliResult<Arc<Engine>> {
    if config.sandbox.mode != config::SandboxMode::Off {
        crate::exec::sandbox::warm_up();
    }
    let repo = git2::Repository::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let mut engine = Engine::new(
        root,
        repo.commondir(),
        config.worktree_dir.clone(),
        config.kill_grace.unwrap_or(Duration::from_secs(5)),
    );
    engine.sandbox = config.sandbox.clone();
    engine.notice = super::stderr_notice();
    engine.deliverer = Some(Arc::new(crate::deliver::ForgeDelivery {
        common_dir: repo.commondir().to_path_buf(),
        github: config.github.clone(),
        env_source: engine.env_source.clone(),
    }));
    engine.withhold(config.github.token_env.as_deref());
    engine.notify = config.notify.clone();
    engine.workspace = config.workspace.clone();
    engine.commit_author = config.commit.author.clone();
    engine.warm_up();
    Ok(Arc::new(engine))
}

/// The runtime runs work on, as the supervisor of their children.
pub(crate) fn run_runtime() -> CliResult<tokio::runtime::Runtime> {
    process::become_subreaper();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::from_error(exit::RUN_FAILED, "could not start the async runtime", &e)
        })
}

/// Runs the requests on a fresh runtime; returns the records in order.
pub(crate) fn execute(
    root: &std::path::Path,
    config: &Config,
    reqs: Vec<RunRequest>,
    jobs: usize,
    ctx: &Ctx,
) -> CliResult<Vec<Result<RunRecord, NoRecord>>> {
    let engine = engine(root, config)?;
    let plan = orchestrator::plan(&reqs);
    for (i, entry) in plan.iter().enumerate() {
        if !entry.waits_for.is_empty() {
            eprintln!("{} runs after {}", entry.task, entry.waits_for.join(", "));
        }
        let later = &plan[i + 1..];
        for other in entry
            .overlaps
            .iter()
            .filter(|o| later.iter().any(|e| &e.task == *o))
        {
            eprintln!(
                "{} and {other} may write the same files: they run side by side, and their results are checked for conflicts when both end",
                entry.task
            );
        }
    }
    let runtime = run_runtime()?;
    let progress = progress::reporter(ctx.stderr_tty, config.notify.bell);
    let finished = runtime.block_on(async move {
        let (tx, rx) = watch::channel(StopSignal::Run);
        orchestrator::install_signal_handler(tx, super::announce_stopping);
        orchestrator::run_all(engine, reqs, jobs, rx, progress).await
    });
    // Every run has ended and been awaited: the idle threads of the
    // blocking pool need not be woken and joined one by one before the
    // results are shown.
    runtime.shutdown_background();
    Ok(finished
        .into_iter()
        .map(|f| match f {
            Finished::Ran(Ok(record)) => Ok(record),
            Finished::Ran(Err(e)) => Err(NoRecord::Error(error_chain(&e))),
            Finished::NotStarted { task } => Err(NoRecord::NotStarted { task }),
        })
        .collect())
}

/// A request of a batch that left no run record.
#[derive(Debug)]
pub(crate) enum NoRecord {
    /// Even the record could not be written.
    Error(String),
    /// The batch was interrupted before the run started.
    NotStarted { task: String },
}

impl std::fmt::Display for NoRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoRecord::Error(message) => f.write_str(message),
            NoRecord::NotStarted { task } => write!(f, "{task}: not started (interrupted)"),
        }
    }
}

/// Prints the summary (or JSON) and picks the exit code.
pub(crate) fn report(records: &[Result<RunRecord, NoRecord>], json: bool) -> CliResult {
    let ok: Vec<&RunRecord> = records.iter().filter_map(|r| r.as_ref().ok()).collect();
    if json {
        print_json(&ok.iter().map(|r| to_json(r)).collect::<Vec<_>>())?;
    } else {
        print_summary(&ok);
    }
    for err in records.iter().filter_map(|r| r.as_ref().err()) {
        eprintln!("error: {}", super::terminal::clean(&err.to_string()));
    }
    let any = |s: State| ok.iter().any(|r| r.state == s);
    let code = if any(State::Interrupted)
        || records
            .iter()
            .any(|r| matches!(r, Err(NoRecord::NotStarted { .. })))
    {
        exit::INTERRUPTED
    } else if any(State::Failed)
        || records.iter().any(Result::is_err)
        // The branch is safe, but what the brief asked for (a pull request)
        // does not exist: in CI that must not pass silently.
        || ok.iter().any(|r| r.delivery.as_ref().is_some_and(|d| d.failed()))
    {
        exit::RUN_FAILED
    } else if any(State::Escalated) {
        exit::ESCALATED
    } else {
        exit::OK
    };
    Ok(code)
}

pub(crate) fn print_summary(records: &[&RunRecord]) {
    if records.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = records.iter().map(|r| summary_row(r).to_vec()).collect();
    let header = [
        "TASK", "OUTCOME", "ATTEMPTS", "CHECKS", "BRANCH", "DURATION",
    ];
    let mut out = crate::report::runs::align(&header, &rows);
    push_reasons(&mut out, records);
    super::print_out(&out);
}

/// A run's cells in the summary table.
fn summary_row(r: &RunRecord) -> [String; 6] {
    let passed = r.checks.iter().filter(|c| c.passed).count();
    [
        r.task.clone(),
        match &r.delivery {
            _ if r.landed.is_some() => format!("{} (landed)", r.effective_state().outcome()),
            Some(d) if d.failed() => {
                format!("{} (delivery failed)", r.effective_state().outcome())
            }
            _ => r.effective_state().outcome().to_string(),
        },
        format!("{}/{}", r.attempts, r.max_attempts),
        if r.checks.is_empty() {
            "-".into()
        } else {
            format!("{passed}/{} passed", r.checks.len())
        },
        r.branch.clone().unwrap_or_else(|| "-".into()),
        r.duration_ms
            .map(|ms| crate::spec::duration::short(Duration::from_millis(ms)))
            .unwrap_or_else(|| "-".into()),
    ]
}

/// Why each run that did not succeed ended, and where its worktree is kept.
pub(crate) fn push_reasons(out: &mut String, records: &[&RunRecord]) {
    for r in records
        .iter()
        .filter(|r| r.reason.is_some() && r.state != State::Succeeded)
    {
        // Only a worktree that is there: a run that failed before git made
        // it names a path that never existed.
        let wt = r
            .worktree
            .as_ref()
            .filter(|w| w.is_dir())
            .map(|w| format!(" (worktree kept: {})", w.display()))
            .unwrap_or_default();
        // An interrupted run says how to go on.
        let resume = if r.effective_state() == State::Interrupted && !wt.is_empty() {
            format!("; continue it with `git agent run --resume {}`", r.run_id)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{}: {}{wt}{resume}\n",
            r.task,
            r.reason.as_deref().unwrap_or("")
        ));
    }
    // Results side by side that do not merge with each other.
    for r in records {
        for c in &r.conflicts {
            out.push_str(&format!("{}: {}\n", r.task, c.describe()));
        }
    }
}

pub(crate) fn store(ctx: &Ctx) -> CliResult<Store> {
    let root = ctx.root()?;
    let repo = git2::Repository::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    Ok(Store::new(repo.commondir()))
}

pub(crate) fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub(crate) fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Creates a file that must not exist yet (no race with another writer).
pub(crate) fn write_new(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// Delivers a finished run (`deliver`, and `land --pr`): writes its
/// decision log note if it is missing, pushes the branch and opens or
/// updates the pull request (or the issue) as `mode`, or the brief, asks,
/// and records how it went. `--json` prints the delivery record.
pub(crate) fn deliver(
    ctx: &Ctx,
    store: &Store,
    mut record: RunRecord,
    mode: Option<Deliver>,
    json: bool,
) -> CliResult {
    let root = ctx.root()?;
    let config = load_config(&root, ctx)?;
    crate::exec::sandbox::harden_self();
    write_missing_note(&root, store, &record)?;
    let asked = brief_delivery(&root, &config, &record);
    record.delivery = Some(planned_delivery(&record, mode, asked)?);
    let dir = store.open(&record.run_id);
    let events = dir
        .read_events()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the run's events", &e))?;
    let common = store.dir().join("../..");
    let target = forge_target(&common, &config).map_err(CliError::usage)?;
    let runtime = small_runtime()?;
    let delivery = runtime.block_on(crate::deliver::deliver(&target, &record, &events));
    record.delivery = Some(delivery.clone());
    save_delivery(&dir, &record, &delivery)?;
    for notice in &delivery.notices {
        eprintln!("note: {notice}");
    }
    if json {
        print_json(&delivery)?;
    }
    if delivery.failed() {
        return Err(CliError::failed(format!(
            "delivery failed: {}",
            delivery.reason.as_deref().unwrap_or("unknown")
        ))
        .hint(if delivery.pushed.is_some() {
            format!(
                "the branch is on the remote; retry the rest with `git agent deliver {}`",
                record.run_id
            )
        } else {
            format!(
                "nothing was pushed; the branch stays local; retry with `git agent deliver {}`",
                record.run_id
            )
        }));
    }
    match delivery.issue_url.as_ref().or(delivery.pr_url.as_ref()) {
        Some(url) => eprintln!("delivered: {url}"),
        None => eprintln!("pushed {}", record.branch.as_deref().unwrap_or("")),
    }
    Ok(exit::OK)
}

/// The delivery to attempt (`mode`, or the brief's), once the run is
/// known to have finished with something to deliver.
fn planned_delivery(
    record: &RunRecord,
    mode: Option<Deliver>,
    brief: Option<Deliver>,
) -> CliResult<DeliveryRecord> {
    if !record.effective_state().is_terminal() {
        return Err(CliError::usage(format!(
            "run {} has not finished; deliver it when it has",
            record.run_id
        )));
    }
    let mut delivery = DeliveryRecord::of(record);
    match (mode, record.delivery.is_some(), brief) {
        (Some(mode), _, _) => delivery.mode = mode,
        // The run asked for a delivery: retry that one.
        (None, true, _) => {}
        (None, false, Some(Deliver::Branch)) => {
            return Err(CliError::usage(format!(
                "the brief of run {} delivers a local branch only (`output.deliver: branch`)",
                record.run_id
            ))
            .hint("pass --mode push, pr or draft-pr to deliver it anyway"));
        }
        (None, false, Some(mode)) => delivery.mode = mode,
        (None, false, None) => {}
    }
    if record.commit.is_none() && !delivery.as_issue(record) {
        return Err(CliError::usage(format!(
            "run {} made no commit: there is nothing to deliver",
            record.run_id
        )));
    }
    Ok(delivery)
}

/// A run whose decision log could not be written when it finished gets it
/// now, from its records: the log is what a delivery is about.
fn write_missing_note(root: &std::path::Path, store: &Store, record: &RunRecord) -> CliResult<()> {
    let Some(oid) = record
        .commit
        .as_deref()
        .and_then(|c| git2::Oid::from_str(c).ok())
    else {
        return Ok(());
    };
    let repo = crate::git::Repo::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let has_note = repo
        .open()
        .is_ok_and(|r| r.find_note(Some(crate::git::NOTES_REF), oid).is_ok());
    if has_note {
        return Ok(());
    }
    let events = store.open(&record.run_id).read_events().unwrap_or_default();
    let note = crate::report::fold::note(record, &events);
    let message = crate::engine::finish::note_message(&record.run_id);
    repo.add_note(oid, &note, &message).map_err(|e| {
        CliError::from_error(
            exit::RUN_FAILED,
            "could not write the run's decision log note",
            &e,
        )
    })?;
    eprintln!("wrote the decision log note of {}", record.run_id);
    Ok(())
}

/// How the run's brief, as it is in the checkout now, asks to deliver
/// (`None` when it cannot be read).
fn brief_delivery(root: &std::path::Path, config: &Config, record: &RunRecord) -> Option<Deliver> {
    let path = root.join(&record.brief_path);
    let ctx = Context {
        known_agents: config.present.then(|| config.agent_names()),
    };
    let (brief, _) = brief::load(&path, record.brief_path.clone(), &ctx).ok()?;
    brief.map(|b| b.output.deliver)
}

/// Record the delivery in the run's events and its run.json.
fn save_delivery(dir: &RunDir, record: &RunRecord, delivery: &DeliveryRecord) -> CliResult<()> {
    dir.append_event(&crate::model::event::Event::now(delivery.event()))
        .map_err(|e| {
            CliError::from_error(exit::RUN_FAILED, "could not write the run's events", &e)
        })?;
    dir.write_record(record)
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not write run.json", &e))
}
