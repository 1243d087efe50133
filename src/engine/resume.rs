//! `run --resume`: an interrupted run continues in its kept worktree, from
//! the attempt it was in, with the feedback that attempt had.

use tokio::sync::watch;

use crate::engine::run::{End, Run, RunError, RunRequest, Start};
use crate::exec::process::StopSignal;
use crate::model::event::EventKind;

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
        };
        self.attempts(req, stop, start).await
    }
}
