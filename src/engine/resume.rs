//! `run --resume`: an interrupted run continues in its kept worktree, from
//! the attempt it was in, with the feedback that attempt had.

use tokio::sync::watch;

use crate::engine::attempt::Invoked;
use crate::engine::run::{End, Run, RunError, RunRequest, Start};
use crate::exec::process::{ExitKind, StopSignal};
use crate::model::event::EventKind;
use crate::model::store::{RunDir, State};

impl Run {
    /// Continues an interrupted run: same worktree, same base, the
    /// interrupted attempt again with the feedback it had.
    pub(super) async fn resume(
        &mut self,
        req: &RunRequest,
        stop: watch::Receiver<StopSignal>,
    ) -> Result<End, RunError> {
        let prev = req
            .resume
            .as_ref()
            .expect("resume() is only called for a resumed run");
        let base = prev
            .base_commit
            .as_deref()
            .and_then(|b| git2::Oid::from_str(b).ok())
            .ok_or_else(|| RunError::Resume("the run never resolved its base commit".into()))?;
        let path = prev
            .worktree
            .clone()
            .ok_or_else(|| RunError::Resume("the run has no worktree".into()))?;
        let sparse = req.brief.sparse_patterns();
        let wt = self
            .git(move |repo| Ok(repo.find_worktree(&path, sparse.as_deref())))
            .await?
            .ok_or_else(|| {
                RunError::Resume("its worktree is gone (removed by `git agent clean`?)".into())
            })?;
        self.record.worktree = Some(wt.path.clone());
        self.worktree = Some(wt.clone());
        let attempt = prev.attempts.clamp(1, req.brief.escalate.attempts);
        self.event(EventKind::Resumed { attempt })?;
        // Verified and checked, only its commit failed: commit it now.
        if let Some(pending) = pending_commit(&self.dir) {
            self.verified_tree = Some(pending.tree);
            return Ok(End {
                state: pending.outcome,
                reason: pending.reason,
                keep: Some((base, Vec::new())),
            });
        }
        let feedback = std::fs::read_to_string(self.dir.feedback_path())
            .ok()
            .filter(|f| !f.trim().is_empty());
        let decisions_read = crate::engine::decisions::lines_in(&self.dir.decisions_path());
        let start = Start {
            base,
            wt,
            first_attempt: attempt,
            feedback,
            decisions_read,
            agent_done: judged_in(&self.dir, attempt),
        };
        self.attempts(req, stop, start).await
    }
}

impl Run {
    /// What the agent of `attempt` left, as recorded when it finished
    /// before the run was stopped: the attempt goes on from its judgement
    /// (the judge found nothing to escalate, or the checks would not have
    /// started).
    pub(super) fn agent_finished_before(&self, attempt: u32) -> Invoked {
        let exit = self
            .dir
            .read_events()
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find_map(|e| match e.kind {
                EventKind::AgentFinished {
                    attempt: a,
                    exit_code,
                    signal,
                    ..
                } if a == attempt => Some(match (exit_code, signal) {
                    (_, Some(s)) => ExitKind::Signal(s),
                    (c, None) => ExitKind::Code(c.unwrap_or(0)),
                }),
                _ => None,
            })
            .unwrap_or(ExitKind::Code(0));
        Invoked {
            exit,
            stderr_tail: crate::exec::process::tail(&self.dir.agent_output(attempt, "stderr"), 600)
                .unwrap_or_default(),
            escalations: Vec::new(),
            head_before: None,
        }
    }
}

/// Whether the agent of `attempt` had finished and its change was judged
/// (the run was stopped in its checks): a resumed run goes on at the
/// checks, not with the agent again — which would redo its work, and write
/// its decisions twice.
fn judged_in(dir: &RunDir, attempt: u32) -> bool {
    let Ok(events) = dir.read_events() else {
        return false;
    };
    let started = events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::AttemptStarted { attempt: a } if a == attempt));
    let Some(started) = started else {
        return false;
    };
    let mut judged = false;
    for e in &events[started..] {
        match e.kind {
            EventKind::ScopeReport { attempt: a, .. } if a == attempt => judged = true,
            EventKind::AttemptFailed { attempt: a, .. } if a == attempt => return false,
            _ => {}
        }
    }
    judged
}

/// A verified result whose commit failed.
pub(crate) struct PendingCommit {
    pub(crate) outcome: State,
    pub(crate) tree: git2::Oid,
    pub(crate) reason: Option<String>,
}

/// The commit that failed, when nothing was committed since (a resumed
/// run then commits it without running anything again).
pub(crate) fn pending_commit(dir: &RunDir) -> Option<PendingCommit> {
    let events = dir.read_events().ok()?;
    let mut pending = None;
    for event in events {
        match event.kind {
            EventKind::CommitPending {
                outcome,
                tree,
                reason,
                ..
            } => {
                pending = git2::Oid::from_str(&tree).ok().map(|tree| PendingCommit {
                    outcome,
                    tree,
                    reason,
                });
            }
            EventKind::Committed { .. } => pending = None,
            _ => {}
        }
    }
    pending
}
