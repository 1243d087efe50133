//! `git agent run`: execute briefs in isolated worktrees.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::{exit, print_json, progress, CliError, CliResult, Ctx};
use crate::engine::orchestrator::{self, Finished};
use crate::engine::run::{error_chain, Engine, RunRequest};
use crate::exec::process::{self, StopSignal};
use crate::model::store::{RunRecord, State};
use crate::spec::brief::{self, Context};
use crate::spec::config::{self, Config};
use crate::spec::diagnostic::did_you_mean;
use crate::spec::repo_files;

/// Run briefs: each in its own worktree, scope enforced, checks decide success
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task ids to run (the brief file names in .agents/tasks)
    #[arg(required_unless_present_any = ["all", "resume"], conflicts_with_all = ["all", "resume"])]
    pub tasks: Vec<String>,
    /// Continue an interrupted run (id, prefix or task) in its kept worktree
    #[arg(long, value_name = "RUN", conflicts_with = "all")]
    pub resume: Option<String>,
    /// Run every brief in .agents/tasks
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub batch: Batch,
    /// Address the review comments of this pull request: the agent starts
    /// from the task's earlier result with the comments as data to act on
    #[arg(long, value_name = "PR", conflicts_with_all = ["all", "resume", "print_env"])]
    pub address_review: Option<u64>,
    /// Print one JSON object per run on stdout
    #[arg(long)]
    pub json: bool,
    /// Print the environment the agent would see (secrets redacted) and the
    /// sandbox it would run in; run nothing
    #[arg(long, conflicts_with = "resume")]
    pub print_env: bool,
}

/// How a batch of briefs runs (shared by `run` and `plan`).
#[derive(Debug, clap::Args)]
pub struct Batch {
    /// Use this agent instead of the brief's or the config's default
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// How many runs at once (default: config max_parallel, else the number of CPUs)
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Start runs whose write scopes overlap at the same time
    #[arg(long)]
    pub allow_overlap: bool,
}

/// The stable JSON shape of a run (also used by `status --json`).
#[derive(Serialize)]
pub struct RunJson<'a> {
    pub run_id: &'a str,
    pub task: &'a str,
    pub outcome: &'static str,
    pub state: &'static str,
    pub branch: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub attempts: u32,
    pub worktree: Option<String>,
    pub reason: Option<&'a str>,
    pub checks: &'a [crate::model::store::CheckSummary],
    pub duration_ms: Option<u64>,
    pub started_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'a crate::model::delivery::DeliveryRecord>,
}

pub fn to_json(r: &RunRecord) -> RunJson<'_> {
    let state = r.effective_state();
    RunJson {
        run_id: &r.run_id,
        task: &r.task,
        outcome: state.outcome(),
        state: state.as_str(),
        branch: r.branch.as_deref(),
        commit: r.commit.as_deref(),
        attempts: r.attempts,
        worktree: r.worktree.as_ref().map(|p| p.display().to_string()),
        reason: r.reason.as_deref(),
        checks: &r.checks,
        duration_ms: r.duration_ms,
        started_at: &r.started_at,
        delivery: r.delivery.as_ref(),
    }
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let config = load_config(&root, ctx)?;
    // Other processes of this user (an agent that escaped, say) cannot read
    // our memory or /proc/<pid>/environ, where forge tokens live.
    crate::exec::sandbox::harden_self();
    if let Some(query) = &args.resume {
        let reqs = resume_request(&root, &config, query, ctx)?;
        let records = execute(&root, &config, reqs, 1, true, ctx)?;
        publish_to_actions(&records, ctx);
        return report(&records, args.json);
    }
    let ids = task_ids(&root, args.all, &args.tasks)?;
    let mut reqs = load_requests(&root, &config, &ids, args.batch.agent.as_deref(), ctx)?;
    if let Some(pr) = args.address_review {
        address_review(&root, &config, &mut reqs, pr)?;
    }
    if args.print_env {
        return print_env(&root, &config, &reqs);
    }
    let jobs = jobs(args.batch.jobs, &config);
    let records = execute(&root, &config, reqs, jobs, args.batch.allow_overlap, ctx)?;
    publish_to_actions(&records, ctx);
    report(&records, args.json)
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
        tasks.to_vec()
    };
    if ids.is_empty() {
        return Err(
            CliError::usage("there are no briefs").hint("create one with `git agent new <id>`")
        );
    }
    Ok(ids)
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
) -> Result<crate::deliver::Target, String> {
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

/// Reads the review comments of `pr` into the (single) request, and the
/// task's earlier result to start from.
fn address_review(
    root: &std::path::Path,
    config: &Config,
    reqs: &mut [RunRequest],
    pr: u64,
) -> CliResult<()> {
    let [req] = reqs else {
        return Err(CliError::usage("--address-review takes exactly one task"));
    };
    let repo = git2::Repository::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let target = forge_target(repo.commondir(), config).map_err(CliError::usage)?;
    let runtime = small_runtime()?;
    let comments = runtime
        .block_on(crate::deliver::review_comments(&target, pr))
        .map_err(|e| {
            CliError::failed(format!("could not read the review comments of #{pr}: {e}"))
        })?;
    if comments.is_empty() {
        return Err(CliError::usage(format!(
            "pull request #{pr} has no review comments to address"
        )));
    }
    let task = req.brief.id.to_string();
    let start_at = crate::engine::review::earlier_result(&repo, &req.brief.output.branch, &task);
    match start_at {
        Some(oid) => eprintln!(
            "{task}: addressing {} review comment(s) of #{pr}, starting from {}",
            comments.len(),
            &oid.to_string()[..10]
        ),
        None => eprintln!(
            "{task}: addressing {} review comment(s) of #{pr}; no earlier result of git-agent on {}, starting from the base",
            comments.len(),
            req.brief.output.branch
        ),
    }
    req.review = Some(crate::engine::run::ReviewInput {
        pull_request: pr,
        comments,
        start_at,
    });
    Ok(())
}

/// As a GitHub Actions step: the job summary and the step outputs. A failure
/// to write them is said, and does not change the runs' exit code.
fn publish_to_actions(records: &[Result<RunRecord, String>], ctx: &Ctx) {
    let Some(runner) = crate::report::actions::Runner::detect(|k| std::env::var(k).ok()) else {
        return;
    };
    let ok: Vec<&RunRecord> = records.iter().filter_map(|r| r.as_ref().ok()).collect();
    let published = super::status::store(ctx)
        .map_err(|e| e.to_string())
        .and_then(|store| runner.publish(&store, &ok));
    if let Err(e) = published {
        eprintln!("warning: GitHub Actions summary/outputs: {e}");
    }
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
                report.render(ctx.stderr_tty, super::validate::terminal_width())
            );
            return Err(CliError::reported(exit::USAGE));
        }
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
    let brief_ctx = Context {
        known_agents: config.present.then(|| config.agent_names()),
    };
    let mut reqs = Vec::new();
    let mut bad = false;
    for id in ids {
        let path = repo_files::brief_path(root, id);
        if brief::TaskId::parse(id).is_err() || !path.is_file() {
            let known: Vec<String> = repo_files::list_briefs(root)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            let mut err = CliError::usage(format!("no brief `{id}` in {}", brief::TASKS_DIR));
            if let Some(best) = did_you_mean(id, known.iter().map(String::as_str)) {
                err = err.hint(format!("did you mean `{best}`?"));
            } else if !known.is_empty() {
                err = err.hint(format!("briefs: {}", known.join(", ")));
            }
            return Err(err);
        }
        let display = repo_files::display(root, &path);
        let (parsed, report) = brief::load(&path, display.clone(), &brief_ctx).map_err(|e| {
            CliError::from_error(exit::USAGE, format!("could not read {display}"), &e)
        })?;
        if report.has_errors() {
            eprint!(
                "{}",
                report.render(ctx.stderr_tty, super::validate::terminal_width())
            );
            bad = true;
            continue;
        }
        let brief = parsed.expect("a brief without errors is returned");
        let agent = config
            .pick_agent(agent.or(brief.agent.as_deref()))
            .map_err(|m| {
                CliError::usage(m)
                    .hint("define agents in .agents/config.yaml (`git agent init` writes one)")
            })?
            .clone();
        reqs.push(RunRequest {
            brief,
            agent,
            brief_display: display,
            resume: None,
            review: None,
        });
    }
    if bad {
        return Err(CliError::reported(exit::USAGE));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = reqs.iter().find(|r| !seen.insert(r.brief.id.clone())) {
        return Err(CliError::usage(format!(
            "`{}` is named twice",
            dup.brief.id
        )));
    }
    Ok(reqs)
}

/// The request that continues an interrupted run.
fn resume_request(
    root: &std::path::Path,
    config: &Config,
    query: &str,
    ctx: &Ctx,
) -> CliResult<Vec<RunRequest>> {
    let store = super::status::store(ctx)?;
    let record = store
        .resolve(query)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status --all`"))?;
    if record.effective_state() != State::Interrupted {
        return Err(CliError::usage(format!(
            "run {} is {}, not interrupted; only interrupted runs can be resumed",
            record.run_id,
            record.effective_state().outcome()
        ))
        .hint(format!(
            "start a new run with `git agent run {}`",
            record.task
        )));
    }
    if !record.worktree.as_ref().is_some_and(|w| w.exists()) {
        return Err(CliError::usage(format!(
            "run {} has no worktree left to resume in",
            record.run_id
        ))
        .hint(format!(
            "start a new run with `git agent run {}`",
            record.task
        )));
    }
    let mut reqs = load_requests(
        root,
        config,
        std::slice::from_ref(&record.task),
        Some(&record.agent),
        ctx,
    )?;
    if let Some(req) = reqs.first_mut() {
        if req.brief.blob_id != record.brief_blob {
            eprintln!(
                "note: {} changed since run {} started; resuming with the brief as it is now",
                req.brief_display, record.run_id
            );
        }
        req.resume = Some(record);
    }
    Ok(reqs)
}

/// `--print-env`: what each agent would see, without running anything.
fn print_env(root: &std::path::Path, config: &Config, reqs: &[RunRequest]) -> CliResult {
    let repo = git2::Repository::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let store = crate::model::store::Store::new(repo.commondir());
    for req in reqs {
        let dir = store.open("<run-id>");
        let extra = crate::engine::run::agent_extra_env(&dir, req.brief.id.as_str(), 1);
        let env = crate::exec::env::build(std::env::vars(), &req.agent.pass_env, &extra);
        if reqs.len() > 1 {
            println!("# {} (agent `{}`)", req.brief.id, req.agent.name);
        }
        for (name, value) in env {
            let shown = if crate::exec::sandbox::looks_secret(&name) {
                "<redacted>".to_string()
            } else {
                value
            };
            println!("{name}={shown}");
        }
    }
    let s = &config.sandbox;
    let mode = match s.mode {
        config::SandboxMode::Required => "required",
        config::SandboxMode::Auto => "auto",
        config::SandboxMode::Off => "off",
    };
    let abi = crate::exec::sandbox::landlock_abi();
    eprintln!(
        "sandbox: mode {mode}, network {}, landlock {}{}",
        match s.network {
            config::NetworkPolicy::Open => "open",
            config::NetworkPolicy::None => "none",
        },
        if abi > 0 {
            format!("ABI {abi}")
        } else {
            "unsupported".to_string()
        },
        if s.mode != config::SandboxMode::Off && abi == 0 {
            " (runs would not be confined)"
        } else {
            ""
        }
    );
    Ok(exit::OK)
}

/// Runs the requests on a fresh runtime; returns the records in order.
pub(crate) fn execute(
    root: &std::path::Path,
    config: &Config,
    reqs: Vec<RunRequest>,
    jobs: usize,
    allow_overlap: bool,
    ctx: &Ctx,
) -> CliResult<Vec<Result<RunRecord, String>>> {
    let repo = git2::Repository::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let mut engine = Engine::new(
        root,
        repo.commondir(),
        config.worktree_dir.clone(),
        config.kill_grace.unwrap_or(Duration::from_secs(5)),
    );
    engine.sandbox = config.sandbox.clone();
    engine.deliverer = Some(Arc::new(crate::deliver::ForgeDelivery {
        common_dir: repo.commondir().to_path_buf(),
        github: config.github.clone(),
        env_source: engine.env_source.clone(),
    }));
    let engine = Arc::new(engine);
    drop(repo);
    let plan = orchestrator::plan(&reqs, allow_overlap);
    for entry in plan.iter().filter(|e| !e.waits_for.is_empty()) {
        eprintln!(
            "{} waits for {}: their write scopes may overlap (use --allow-overlap to run them together)",
            entry.task,
            entry.waits_for.join(", ")
        );
    }
    process::become_subreaper();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::from_error(exit::RUN_FAILED, "could not start the async runtime", &e)
        })?;
    let progress = progress::reporter(ctx.stderr_tty);
    let finished = runtime.block_on(async move {
        let (tx, rx) = watch::channel(StopSignal::Run);
        orchestrator::install_signal_handler(tx);
        orchestrator::run_all(engine, reqs, jobs, allow_overlap, rx, progress).await
    });
    Ok(finished
        .into_iter()
        .map(|f| match f {
            Finished::Ran(Ok(record)) => Ok(record),
            Finished::Ran(Err(e)) => Err(error_chain(&e)),
            Finished::NotStarted { task } => Err(format!("{task}: not started (interrupted)")),
        })
        .collect())
}

/// Prints the summary (or JSON) and picks the exit code.
pub(crate) fn report(records: &[Result<RunRecord, String>], json: bool) -> CliResult {
    let ok: Vec<&RunRecord> = records.iter().filter_map(|r| r.as_ref().ok()).collect();
    if json {
        print_json(&ok.iter().map(|r| to_json(r)).collect::<Vec<_>>())?;
    } else {
        print_summary(&ok);
    }
    for err in records.iter().filter_map(|r| r.as_ref().err()) {
        eprintln!("error: {err}");
    }
    let any = |s: State| ok.iter().any(|r| r.state == s);
    let code = if any(State::Interrupted)
        || records
            .iter()
            .any(|r| matches!(r, Err(e) if e.contains("not started")))
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
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            let passed = r.checks.iter().filter(|c| c.passed).count();
            [
                r.task.clone(),
                match &r.delivery {
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
        })
        .collect();
    let header = [
        "TASK", "OUTCOME", "ATTEMPTS", "CHECKS", "BRANCH", "DURATION",
    ];
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = format!("{}\n", line(header.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    for r in records
        .iter()
        .filter(|r| r.reason.is_some() && r.state != State::Succeeded)
    {
        let wt = r
            .worktree
            .as_ref()
            .map(|w| format!(" (worktree kept: {})", w.display()))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}: {}{wt}\n",
            r.task,
            r.reason.as_deref().unwrap_or("")
        ));
    }
    super::print_out(&out);
}
