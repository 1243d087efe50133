//! `git agent run`: execute briefs in isolated worktrees.

use super::background::{lock_tasks, spawn_supervisor};
use super::helper::{
    check_bases, execute, forge_target, jobs, load_config, load_requests, report, small_runtime,
    task_ids, Batch,
};
use super::{exit, CliError, CliResult, Ctx};
use crate::engine::run::RunRequest;
use crate::model::store::{RunRecord, State};
use crate::spec::config::{self, Config};

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
    /// Queue the runs and return at once: the repository's supervisor runs
    /// them in the background (follow with `git agent log RUN --follow`)
    #[arg(long, conflicts_with_all = ["resume", "address_review", "print_env"])]
    pub detach: bool,
    /// Print the runs on stdout as one JSON array, an object per run
    #[arg(long)]
    pub json: bool,
    /// Print the environment the agent would see (secrets redacted) and the
    /// sandbox it would run in; run nothing
    #[arg(long, conflicts_with = "resume")]
    pub print_env: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let config = load_config(&root, ctx)?;
    // Other processes of this user (an agent that escaped, say) cannot read
    // our memory or /proc/<pid>/environ, where forge tokens live.
    crate::exec::sandbox::harden_self();
    if let Some(query) = &args.resume {
        // A resumed run continues with the agent it started with.
        if let Some(agent) = &args.batch.agent {
            return Err(CliError::usage(format!(
                "`--agent {agent}` does not apply to `--resume`: a run continues with the agent it started with"
            ))
            .hint(format!(
                "drop `--agent`, or start a new run: `git agent run <task> --agent {agent}`"
            )));
        }
        let reqs = resume_request(&root, &config, query, ctx)?;
        let _locks = lock_tasks(&super::helper::store(ctx)?, &tasks_of(&reqs))?;
        let records = execute(&root, &config, reqs, 1, ctx)?;
        publish_to_actions(&records, ctx);
        return report(&records, args.json);
    }
    let ids = task_ids(&root, args.all, &args.tasks)?;
    let mut reqs = load_requests(&root, &config, &ids, args.batch.agent.as_deref(), ctx)?;
    check_bases(&root, &reqs)?;
    if let Some(pr) = args.address_review {
        address_review(&root, &config, &mut reqs, pr)?;
    }
    if args.print_env {
        return print_env(&root, &config, &reqs);
    }
    let jobs = jobs(args.batch.jobs, &config);
    let store = super::helper::store(ctx)?;
    if args.detach {
        return detach(
            &root,
            &store,
            &reqs,
            jobs,
            args.batch.allow_overlap,
            args.json,
        );
    }
    let _locks = lock_tasks(&store, &tasks_of(&reqs))?;
    let records = execute(&root, &config, reqs, jobs, ctx)?;
    publish_to_actions(&records, ctx);
    report(&records, args.json)
}

fn tasks_of(reqs: &[RunRequest]) -> Vec<String> {
    reqs.iter().map(|r| r.brief.id.to_string()).collect()
}

/// `--detach`: the runs join the queue (each with its run id, printed),
/// and a supervisor is started if none runs.
fn detach(
    root: &std::path::Path,
    store: &crate::model::store::Store,
    reqs: &[RunRequest],
    jobs: usize,
    allow_overlap: bool,
    json: bool,
) -> CliResult {
    let (records, start) = crate::engine::queue::enqueue(store, reqs, jobs, allow_overlap)
        .map_err(|e| CliError::failed(e.to_string()))?;
    if start {
        spawn_supervisor(root, store)?;
    }
    if json {
        super::print_json(
            &records
                .iter()
                .map(super::helper::to_json)
                .collect::<Vec<_>>(),
        )?;
    } else {
        for r in &records {
            super::outln!("{}", r.run_id);
        }
    }
    for r in &records {
        eprintln!(
            "{}: queued as {}; follow it with `git agent log {} --follow`",
            r.task, r.run_id, r.run_id
        );
    }
    Ok(exit::OK)
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
fn publish_to_actions(records: &[Result<RunRecord, super::helper::NoRecord>], ctx: &Ctx) {
    let Some(runner) = crate::report::actions::Runner::detect(|k| std::env::var(k).ok()) else {
        return;
    };
    let ok: Vec<&RunRecord> = records.iter().filter_map(|r| r.as_ref().ok()).collect();
    let published = super::helper::store(ctx)
        .map_err(|e| e.to_string())
        .and_then(|store| runner.publish(&store, &ok).map_err(|e| e.to_string()));
    if let Err(e) = published {
        eprintln!("warning: GitHub Actions summary/outputs: {e}");
    }
}

/// A process of the run that outlived its supervisor (where no PID
/// namespace ended it) would work beside the resumed agent.
fn refuse_while_alive(record: &RunRecord) -> CliResult<()> {
    let alive = crate::exec::process::marked_alive("GIT_AGENT_RUN_ID", &record.run_id);
    if alive.is_empty() {
        return Ok(());
    }
    let pids: Vec<String> = alive.iter().map(ToString::to_string).collect();
    Err(CliError::usage(format!(
        "run {} still has processes alive (pid {}); a resumed agent would work beside them",
        record.run_id,
        pids.join(", ")
    ))
    .hint(format!(
        "stop them (`kill {}`) and resume again; `git agent clean {}` stops them and removes the run's worktree",
        pids.join(" "),
        record.run_id
    )))
}

/// The request that continues an interrupted run.
fn resume_request(
    root: &std::path::Path,
    config: &Config,
    query: &str,
    ctx: &Ctx,
) -> CliResult<Vec<RunRequest>> {
    let store = super::helper::store(ctx)?;
    let record = store
        .resolve(query)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status --all`"))?;
    let commit_pending = record.effective_state() == State::Failed
        && crate::engine::resume::pending_commit(&store.open(&record.run_id)).is_some();
    if record.effective_state() != State::Interrupted && !commit_pending {
        return Err(CliError::usage(format!(
            "run {} is {}, not interrupted (nor verified and waiting for its commit); only those can be resumed",
            record.run_id,
            record.effective_state().outcome()
        ))
        .hint(format!(
            "start a new run with `git agent run {}`",
            record.task
        )));
    }
    refuse_while_alive(&record)?;
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
            super::outln!("# {} (agent `{}`)", req.brief.id, req.agent.name);
        }
        for (name, value) in env {
            let shown = if crate::exec::sandbox::looks_secret(&name) {
                "<redacted>".to_string()
            } else {
                value
            };
            super::outln!("{name}={shown}");
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
            config::NetworkPolicy::Allowlist => "allowlist",
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
