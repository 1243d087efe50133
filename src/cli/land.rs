//! `git agent land`: a succeeded run's result onto the current tip of its
//! base branch — replayed in memory, the brief's checks run on the landed
//! tree, the branch fast-forwarded (with a clean checkout of it) — and its
//! branch and worktree removed; or, with `--pr`, delivered as a pull
//! request instead.
//!
//! Exit codes: 0 landed; 1 it does not land (a conflict, a check failing
//! on the landed tree, the branch moved meanwhile); 2 refused as asked (the
//! run did not succeed, a checkout of the branch has local changes, ...);
//! 3 the landed tree needs a human (the brief's `escalate` rules); 130
//! interrupted. Whenever it does not land, nothing was changed.

use serde::Serialize;

use super::rules::{self, short};
use super::{exit, helper, print_json, CliError, CliResult, Ctx};
use crate::engine::checks::CheckResult;
use crate::engine::land::{self, LandError, Landed, Plan};
use crate::engine::review::{ReviewReport, ReviewRequest, Verdict};
use crate::git::{Repo, WorkspaceError};
use crate::model::delivery::Deliver;
use crate::model::store::RunRecord;
use crate::spec::brief::Brief;
use crate::spec::config::Config;

/// Land a succeeded run: replayed onto its base's tip, checked there, fast-forwarded
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 landed, 1 it does not land (a conflict, a check failing on the landed tree, the branch moved meanwhile), 2 refused (the run did not succeed, a checkout of the branch has local changes, ...), 3 a human must look first, 130 interrupted. Unless it landed, nothing was changed."
)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: String,
    /// Deliver it as a pull request instead (as `git agent deliver --mode pr` does)
    #[arg(long)]
    pub pr: bool,
    /// Print what landed as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let store = helper::store(ctx)?;
    let mut record = store
        .resolve(&args.run)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status`"))?;
    if args.pr {
        land::may_land(&record).map_err(refusal)?;
        return helper::deliver(ctx, &store, record, Some(Deliver::Pr), args.json);
    }
    let config = helper::load_config(&root, ctx)?;
    let repo = Repo::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let plan = land::plan(&repo, &record).map_err(refusal)?;
    // Before the checks run: a checkout that cannot move refuses at once.
    land::clean_checkouts(&repo, &plan).map_err(refusal)?;
    eprintln!(
        "landing {} (run {}) on {}: {}",
        plan.task,
        plan.run_id,
        plan.branch,
        if plan.replayed() {
            format!(
                "{} replayed onto {}",
                commits(plan.commits.len()),
                short(plan.old_tip)
            )
        } else {
            format!("a fast-forward from {}", short(plan.old_tip))
        }
    );
    let brief = brief_of(&root, &plan, &config, ctx)?;
    let report = check(&root, &repo, &config, brief, &plan)?;
    let landed = land::land(
        &repo,
        &store.open(&record.run_id),
        &mut record,
        &plan,
        &report.checks,
    )
    .map_err(refusal)?;
    for notice in &landed.notices {
        eprintln!("warning: {}", super::terminal::clean(notice));
    }
    publish(&plan, &report.checks, &landed, &record, args.json)?;
    Ok(exit::OK)
}

fn commits(n: usize) -> String {
    format!("{n} commit{}", if n == 1 { "" } else { "s" })
}

/// The brief whose checks judge the landed tree: as committed on the
/// branch's tip (the result cannot have changed it), else — a brief never
/// committed — the checkout's.
fn brief_of(root: &std::path::Path, plan: &Plan, config: &Config, ctx: &Ctx) -> CliResult<Brief> {
    let git = git2::Repository::discover(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    if let Some(brief) = rules::brief_at(&git, root, plan.old_tip, &plan.task, config, ctx)? {
        return Ok(brief);
    }
    eprintln!(
        "note: the brief `{}` is not committed on {}: the checks are the checkout's brief's",
        plan.task, plan.branch
    );
    helper::load_brief(root, config, &plan.task, ctx)?
        .map(|(brief, _)| brief)
        .ok_or_else(|| CliError::reported(exit::USAGE))
}

/// The brief's checks (and the verifier's rules) on the landed tree, in a
/// throwaway worktree: the report if it passes, else the refusal.
fn check(
    root: &std::path::Path,
    repo: &Repo,
    config: &Config,
    brief: Brief,
    plan: &Plan,
) -> CliResult<ReviewReport> {
    eprintln!(
        "running {} on the landed tree {}",
        match brief.checks.len() {
            1 => "1 check".to_string(),
            n => format!("{n} checks"),
        },
        short(plan.new_tip())
    );
    let setup = rules::check_setup(root, repo.common_dir(), config, "land", &plan.task);
    let runtime = rules::checks_runtime()?;
    let req = ReviewRequest {
        brief,
        head: plan.new_tip(),
        base: plan.old_tip,
    };
    let report = rules::run_review(
        &runtime,
        repo,
        &req,
        &setup,
        "the checks on the landed tree",
    )?;
    for c in &report.checks {
        eprintln!(
            "  {} {}  {:.1}s{}",
            if c.passed { "ok  " } else { "FAIL" },
            c.name,
            c.duration_ms() as f64 / 1000.0,
            if c.passed {
                String::new()
            } else {
                format!("  ({})", c.exit_text())
            }
        );
        let tail: Vec<&str> = c.failing_tail().lines().rev().take(10).collect();
        for line in tail.into_iter().rev() {
            eprintln!("       | {}", super::terminal::clean(line));
        }
    }
    match report.verdict {
        Verdict::Pass => Ok(report),
        _ => Err(not_landed(&report, plan)),
    }
}

/// Why the landed tree does not land: failing checks, the scope, or what a
/// human must look at.
fn not_landed(report: &ReviewReport, plan: &Plan) -> CliError {
    if report.checks.iter().any(|c| c.stopped) {
        let mut err = CliError::failed(format!(
            "interrupted while the checks ran: {} was not changed",
            plan.branch
        ));
        err.exit = exit::INTERRUPTED;
        return err;
    }
    let failing: Vec<&CheckResult> = report.checks.iter().filter(|c| !c.passed).collect();
    let rerun = if plan.replayed() {
        format!(
            "{} moved since the run; run the task again from its tip: `git agent run {}`",
            plan.branch, plan.task
        )
    } else {
        format!(
            "run the task again: `git agent run {}`, or deliver it for review: `git agent land --pr {}`",
            plan.task, plan.run_id
        )
    };
    if let Some(first) = failing.first() {
        let mut err = CliError::failed(format!(
            "refused: check `{}` fails on the landed tree ({}); {} was not changed",
            first.name,
            first.exit_text(),
            plan.branch
        ));
        err.causes.extend(
            failing
                .iter()
                .skip(1)
                .map(|c| format!("check `{}` fails too ({})", c.name, c.exit_text())),
        );
        return err.hint(rerun);
    }
    if !report.violations.is_empty() {
        let mut err = CliError::failed(format!(
            "refused: the landed tree breaks the brief's rules; {} was not changed",
            plan.branch
        ));
        err.causes.clone_from(&report.violations);
        return err.hint(rerun);
    }
    let mut err = CliError::failed(format!(
        "refused: a human must look at the landed tree first; {} was not changed",
        plan.branch
    ));
    err.exit = exit::ESCALATED;
    err.causes.clone_from(&report.needs_human);
    err.hint(format!(
        "deliver it for review instead: `git agent land --pr {}`",
        plan.run_id
    ))
}

/// A [`LandError`] as the user reads it, with what to do next.
fn refusal(e: LandError) -> CliError {
    let err = CliError::usage(&e);
    match &e {
        LandError::NotSucceeded { run, .. } => {
            err.hint(format!("see how it ended with `git agent log {run}`"))
        }
        LandError::NothingCommitted { .. } => err,
        LandError::AlreadyLanded { .. } => err.hint("`git agent status` shows where"),
        LandError::NoBaseBranch { run, .. } => err.hint(format!(
            "deliver it as a pull request (`git agent land --pr {run}`) or merge its branch by hand"
        )),
        LandError::NoLocalBranch { branch, .. } => err.hint(format!(
            "create it (`git branch {branch} origin/{branch}`) and land again"
        )),
        LandError::BranchGone { run, .. } => {
            err.hint(format!("`git agent diff {run}` still shows the result"))
        }
        LandError::BranchMoved { branch, .. } => err.hint(format!(
            "someone committed on {branch}: merge it by hand, or deliver it with --pr"
        )),
        LandError::AlreadyOnBase { .. } => err.hint("there is nothing to land"),
        LandError::LocalChanges { path, .. } => err.hint(format!(
            "nothing was changed; commit or stash them in {} and land again",
            path.display()
        )),
        LandError::CheckoutBlocked { path, .. } => err.hint(format!(
            "nothing was changed; move what is in the way in {} and land again",
            path.display()
        )),
        LandError::Conflict {
            run,
            branch,
            paths: _,
            commit: _,
        } => CliError::failed(&e).hint(format!(
            "nothing was changed; run the task again from {branch}'s tip, or deliver it for review with `git agent land --pr {run}`"
        )),
        LandError::Workspace(WorkspaceError::RefMoved { .. }) => CliError::failed(format!(
            "another update of the branch came first: {e}"
        ))
        .hint("nothing was changed; land again"),
        LandError::Workspace(w) => {
            CliError::from_error(exit::RUN_FAILED, "could not land the result", w)
                .hint("nothing was changed")
        }
    }
}

/// What landed, as JSON (`--json`).
#[derive(Serialize)]
struct LandJson<'a> {
    task: &'a str,
    run_id: &'a str,
    base_branch: &'a str,
    old_tip: String,
    new_tip: String,
    /// The commits that landed, oldest first.
    commits: Vec<String>,
    /// Whether they are the result's commits rewritten onto a moved base.
    replayed: bool,
    checks: &'a [CheckResult],
    /// The checkouts whose index and working tree moved with the branch.
    checkouts_updated: Vec<String>,
    /// The result branch, when it was removed.
    branch_removed: Option<&'a str>,
    worktree_removed: Option<String>,
    notices: &'a [String],
}

fn publish(
    plan: &Plan,
    checks: &[CheckResult],
    landed: &Landed,
    record: &RunRecord,
    json: bool,
) -> CliResult<()> {
    if json {
        return print_json(&LandJson {
            task: &plan.task,
            run_id: &plan.run_id,
            base_branch: &plan.branch,
            old_tip: plan.old_tip.to_string(),
            new_tip: plan.new_tip().to_string(),
            commits: plan.commits.iter().map(|c| c.to_string()).collect(),
            replayed: plan.replayed(),
            checks,
            checkouts_updated: landed
                .updated
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            branch_removed: landed.branch_removed.then_some(plan.result_branch.as_str()),
            worktree_removed: landed
                .worktree_removed
                .as_ref()
                .map(|p| p.display().to_string()),
            notices: &landed.notices,
        });
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    super::outln!(
        "landed {} on {}: {}..{} ({}{}; {passed}/{} checks passed on the landed tree)",
        record.task,
        plan.branch,
        short(plan.old_tip),
        short(plan.new_tip()),
        commits(plan.commits.len()),
        if plan.replayed() { ", replayed" } else { "" },
        checks.len()
    );
    for path in &landed.updated {
        super::outln!("updated the checkout {}", path.display());
    }
    if landed.branch_removed {
        super::outln!("removed branch {}", plan.result_branch);
    }
    if let Some(wt) = &landed.worktree_removed {
        super::outln!("removed worktree {}", wt.display());
    }
    Ok(())
}
