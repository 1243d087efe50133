//! `git agent land`: a succeeded run's result brought onto the current tip
//! of its base branch.
//!
//! [`plan`] replays the result's commits onto the tip in memory (nothing of
//! the user's checkout is touched; a conflict names its paths); the CLI then
//! has the brief's checks run on the landed tree by the reviewer
//! ([`crate::engine::review`], the same verifier and check runner as a
//! run's); [`land`] fast-forwards the branch by compare-and-swap — with the
//! index and working tree of any clean checkout that has it, refusing when
//! one has local changes — and removes the result branch and the run's kept
//! worktree, and records the landing in the run's events and `run.json`.

use std::path::PathBuf;

use git2::Oid;

use crate::engine::checks::CheckResult;
use crate::git::{Checkout, Replay, Repo, WorkspaceError};
use crate::model::event::{Event, EventKind};
use crate::model::landing::Landing;
use crate::model::store::{RunDir, RunRecord, State};

/// Why a run cannot land (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum LandError {
    #[error("run {run} {state}: only a succeeded run can land")]
    NotSucceeded { run: String, state: &'static str },
    #[error("run {run} committed nothing: there is nothing to land")]
    NothingCommitted { run: String },
    #[error("run {run} already landed on {branch} (at {tip})")]
    AlreadyLanded {
        run: String,
        branch: String,
        tip: String,
    },
    #[error(
        "run {run} started from `{base_ref}`, not from a branch: there is no branch to land it on"
    )]
    NoBaseBranch { run: String, base_ref: String },
    #[error("there is no local branch `{branch}` to land run {run} on")]
    NoLocalBranch { run: String, branch: String },
    #[error("the result branch `{branch}` of run {run} is gone")]
    BranchGone { run: String, branch: String },
    #[error(
        "the result branch `{branch}` has moved since run {run} committed {commit}: it is at {tip}"
    )]
    BranchMoved {
        run: String,
        branch: String,
        commit: String,
        tip: String,
    },
    #[error("the result of run {run} is already on {branch}")]
    AlreadyOnBase { run: String, branch: String },
    #[error(
        "the result of run {run} conflicts with {branch} in {} (replaying {})",
        paths.join(", "),
        commit.get(..10).unwrap_or(commit)
    )]
    Conflict {
        run: String,
        branch: String,
        commit: String,
        paths: Vec<String>,
    },
    #[error(
        "{branch} is checked out in {} with local changes: {}",
        path.display(),
        changes.join(", ")
    )]
    LocalChanges {
        branch: String,
        path: PathBuf,
        changes: Vec<String>,
    },
    #[error("{branch} is checked out in {}, which cannot move to the landed tree: {reason}", path.display())]
    CheckoutBlocked {
        branch: String,
        path: PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

/// What landing a run will do, worked out without changing anything.
#[derive(Debug, Clone)]
pub struct Plan {
    pub run_id: String,
    pub task: String,
    /// The branch to land on (`main`).
    pub branch: String,
    /// The run's result branch (`agent/<task>`) and its commit.
    pub result_branch: String,
    pub result: Oid,
    /// The branch's tip now.
    pub old_tip: Oid,
    /// The commits to land, oldest first; the last is the new tip.
    pub commits: Vec<Oid>,
}

impl Plan {
    /// The tip the branch gets.
    pub fn new_tip(&self) -> Oid {
        self.commits.last().copied().unwrap_or(self.old_tip)
    }

    /// Whether the result's commits were rewritten onto a moved base.
    pub fn replayed(&self) -> bool {
        self.new_tip() != self.result
    }

    fn refname(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }
}

/// What [`land`] did besides moving the branch.
#[derive(Debug, Clone, Default)]
pub struct Landed {
    /// The checkouts whose index and working tree moved with the branch.
    pub updated: Vec<PathBuf>,
    /// Whether the result branch was removed.
    pub branch_removed: bool,
    /// The run's kept worktree, removed.
    pub worktree_removed: Option<PathBuf>,
    /// What could not be tidied up (the landing stands).
    pub notices: Vec<String>,
}

/// Whether `record` is a result that may land (or be delivered instead):
/// a succeeded run's, not landed yet.
pub fn may_land(record: &RunRecord) -> Result<(), LandError> {
    let run = record.run_id.clone();
    let state = record.effective_state();
    if state != State::Succeeded {
        return Err(LandError::NotSucceeded {
            run,
            state: match state.outcome() {
                "running" => "is still running",
                outcome => outcome,
            },
        });
    }
    if let Some(landed) = &record.landed {
        return Err(LandError::AlreadyLanded {
            run,
            branch: landed.branch.clone(),
            tip: landed.new_tip.clone(),
        });
    }
    Ok(())
}

/// How `record`'s result lands on the current tip of its base branch;
/// an error when it cannot (nothing is changed either way).
pub fn plan(repo: &Repo, record: &RunRecord) -> Result<Plan, LandError> {
    may_land(record)?;
    let run = record.run_id.clone();
    let (Some(result_branch), Some(result), Some(base)) = (
        record.branch.clone(),
        oid(record.commit.as_deref()),
        oid(record.base_commit.as_deref()),
    ) else {
        return Err(LandError::NothingCommitted { run });
    };
    let Some(branch) = record.base_branch.clone() else {
        return Err(LandError::NoBaseBranch {
            run,
            base_ref: record.base_ref.clone(),
        });
    };
    let Some(old_tip) = repo.ref_target(&format!("refs/heads/{branch}"))? else {
        return Err(LandError::NoLocalBranch { run, branch });
    };
    match repo.ref_target(&format!("refs/heads/{result_branch}"))? {
        None => {
            return Err(LandError::BranchGone {
                run,
                branch: result_branch,
            })
        }
        Some(tip) if tip != result => {
            return Err(LandError::BranchMoved {
                run,
                branch: result_branch,
                commit: result.to_string(),
                tip: tip.to_string(),
            })
        }
        Some(_) => {}
    }
    if repo.is_ancestor(result, old_tip)? {
        return Err(LandError::AlreadyOnBase { run, branch });
    }
    let commits = match repo.replay_commits(base, result, old_tip)? {
        Replay::Applied(commits) if commits.is_empty() => {
            return Err(LandError::AlreadyOnBase { run, branch })
        }
        Replay::Applied(commits) => commits,
        Replay::Conflict { commit, paths } => {
            return Err(LandError::Conflict {
                run,
                branch,
                commit: commit.to_string(),
                paths,
            })
        }
    };
    Ok(Plan {
        run_id: record.run_id.clone(),
        task: record.task.clone(),
        branch,
        result_branch,
        result,
        old_tip,
        commits,
    })
}

fn oid(hex: Option<&str>) -> Option<Oid> {
    hex.and_then(|h| Oid::from_str(h).ok())
}

/// The checkouts that have the plan's branch checked out, each clean and
/// able to move to the new tip; an error naming the first that is not.
pub fn clean_checkouts(repo: &Repo, plan: &Plan) -> Result<Vec<Checkout>, LandError> {
    let checkouts = repo.checkouts_of(&plan.refname())?;
    for checkout in &checkouts {
        let changes = repo.local_changes(checkout)?;
        if !changes.is_empty() {
            return Err(LandError::LocalChanges {
                branch: plan.branch.clone(),
                path: checkout.path.clone(),
                changes,
            });
        }
        if let Some(reason) = repo.checkout_blocker(checkout, plan.old_tip, plan.new_tip())? {
            return Err(LandError::CheckoutBlocked {
                branch: plan.branch.clone(),
                path: checkout.path.clone(),
                reason,
            });
        }
    }
    Ok(checkouts)
}

/// Lands the plan whose tree passed `checks`: the branch (and every clean
/// checkout of it) moves from the old tip to the new one, or nothing does;
/// then the result branch and the run's kept worktree go, and the landing
/// is recorded.
pub fn land(
    repo: &Repo,
    dir: &RunDir,
    record: &mut RunRecord,
    plan: &Plan,
    checks: &[CheckResult],
) -> Result<Landed, LandError> {
    let mut landed = Landed {
        updated: advance(repo, plan)?,
        ..Landed::default()
    };
    if plan.replayed() {
        copy_note(repo, plan, &mut landed.notices);
    }
    remove_result_branch(repo, plan, &mut landed);
    if let Some(wt) = record.worktree.as_ref().filter(|w| w.is_dir()) {
        match repo.remove_worktree_path(wt) {
            Ok(()) => landed.worktree_removed = Some(wt.clone()),
            Err(e) => landed.notices.push(format!(
                "could not remove the run's worktree {}: {e}",
                wt.display()
            )),
        }
    }
    let landing = Landing {
        branch: plan.branch.clone(),
        old_tip: plan.old_tip.to_string(),
        new_tip: plan.new_tip().to_string(),
        commits: plan.commits.iter().map(Oid::to_string).collect(),
        checks: checks.iter().map(CheckResult::summary).collect(),
    };
    record.landed = Some(landing.clone());
    let saved = dir
        .append_event(&Event::now(EventKind::Landed { landing }))
        .and_then(|()| dir.write_record(record));
    if let Err(e) = saved {
        landed.notices.push(format!(
            "could not record the landing in {}: {e}",
            dir.path.display()
        ));
    }
    Ok(landed)
}

/// Moves the branch from the old tip to the new one, and the index and
/// working tree of each checkout that has it (checked clean again: the
/// checks took a while). All of them or none: a checkout that cannot move,
/// or a branch that moved meanwhile, puts back what had moved.
fn advance(repo: &Repo, plan: &Plan) -> Result<Vec<PathBuf>, LandError> {
    let (refname, old, new) = (plan.refname(), plan.old_tip, plan.new_tip());
    let checkouts = clean_checkouts(repo, plan)?;
    let now = repo.ref_target(&refname)?;
    if now != Some(old) {
        return Err(WorkspaceError::RefMoved {
            refname,
            expected: old.to_string(),
            found: now.map(|o| o.to_string()),
        }
        .into());
    }
    let put_back = |done: &[Checkout]| {
        for checkout in done {
            if let Err(e) = repo.update_checkout(checkout, new, old) {
                tracing::warn!(error = %e, path = %checkout.path.display(), "could not put a checkout back");
            }
        }
    };
    let mut done = Vec::new();
    for checkout in &checkouts {
        if let Err(e) = repo.update_checkout(checkout, old, new) {
            put_back(&done);
            return Err(e.into());
        }
        done.push(checkout.clone());
    }
    let log = format!("git-agent land: {} ({})", plan.task, plan.run_id);
    if let Err(e) = repo.move_ref(&refname, old, new, &log) {
        put_back(&done);
        return Err(e.into());
    }
    Ok(done.into_iter().map(|c| c.path).collect())
}

/// The decision log of the result goes with its replayed tip.
fn copy_note(repo: &Repo, plan: &Plan, notices: &mut Vec<String>) {
    let note = repo.open().ok().and_then(|r| {
        r.find_note(Some(crate::git::NOTES_REF), plan.result)
            .ok()
            .and_then(|n| n.message().ok().map(str::to_string))
    });
    if let Some(text) = note {
        let message = format!(
            "{} (landed on {})",
            crate::engine::finish::note_message(&plan.run_id),
            plan.branch
        );
        if let Err(e) = repo.add_note(plan.new_tip(), &text, &message) {
            notices.push(format!(
                "could not copy the decision log note to {}: {e}",
                plan.new_tip()
            ));
        }
    }
}

/// The result branch goes, unless a checkout has it (its HEAD would point
/// at nothing) or it moved since it was read.
fn remove_result_branch(repo: &Repo, plan: &Plan, landed: &mut Landed) {
    let refname = format!("refs/heads/{}", plan.result_branch);
    match repo.checkouts_of(&refname) {
        Ok(checkouts) if !checkouts.is_empty() => landed.notices.push(format!(
            "kept branch {}: it is checked out in {}",
            plan.result_branch,
            checkouts[0].path.display()
        )),
        Ok(_) => match repo.delete_ref(&refname, plan.result) {
            Ok(()) => landed.branch_removed = true,
            Err(e) => landed.notices.push(format!(
                "could not remove branch {}: {e}",
                plan.result_branch
            )),
        },
        Err(e) => landed.notices.push(format!(
            "kept branch {}: could not tell whether a checkout has it: {e}",
            plan.result_branch
        )),
    }
}
