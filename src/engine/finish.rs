//! The end of a run: commit what is kept to the task's branch, attach the
//! decision log as a note, hand the result to delivery, clean up.

use crate::engine::run::{error_chain, End, Run, RunError, RunRequest};
use crate::git::{is_agent_commit, Change};
use crate::model::delivery::{Deliver, DeliveryRecord, DeliveryState, EscalateFallback};
use crate::model::event::EventKind;
use crate::model::store::State;
use crate::spec::brief::{goal_of, Brief};

/// A worktree's removal under way.
type Removal = tokio::task::JoinHandle<Result<(), crate::git::WorkspaceError>>;

impl Run {
    pub(super) async fn finish(&mut self, req: &RunRequest, end: End) -> Result<(), RunError> {
        let brief = &req.brief;
        self.record.reason = end.reason.clone();
        let mut end_state = end.state;
        let mut pending = false;
        if let (Some((base, keep)), State::Succeeded | State::Escalated) = (end.keep, end.state) {
            if !keep.is_empty() || self.verified_tree.is_some() {
                if let Err(e) = self.commit(brief, end.state, base, keep).await? {
                    end_state = State::Failed;
                    pending = true;
                    self.record.reason = Some(format!(
                        "could not commit: {}; the verified result is kept: `git agent run --resume {}` commits it",
                        error_chain(&e),
                        self.dir.id
                    ));
                }
            }
        }
        // A succeeded run's worktree is done with once its change is
        // committed: its removal (thousands of unlinks, a git process)
        // runs while the note is written and the result delivered.
        let removal = (end_state == State::Succeeded && !pending && self.slot.is_none())
            .then(|| self.start_removal())
            .flatten();
        // The commit (or nothing) holds the change set now; a pending one
        // stays protected for `--resume`.
        let id = self.dir.id.clone();
        if !pending {
            if let Err(e) = self.git(move |repo| repo.unprotect(&id)).await {
                tracing::warn!(error = %error_chain(&e), "could not drop the run's protecting ref");
            }
        }
        let duration = self.started.elapsed();
        self.record.state = end_state;
        self.record.finished_at = Some(crate::model::time::now_rfc3339());
        self.record.duration_ms = Some(duration.as_millis() as u64);
        // The decision log is the product: a run whose note could not be
        // written is not done. It fails, loudly; its records keep all the
        // note needs (`git agent deliver` writes a missing one).
        let mut logged = true;
        if let Err(e) = self.attach_note().await {
            logged = false;
            end_state = State::Failed;
            self.record.state = end_state;
            self.record.reason = Some(format!(
                "the commit is on {}, but its decision log could not be written to {}: {}",
                self.record.branch.as_deref().unwrap_or("its branch"),
                crate::git::NOTES_REF,
                error_chain(&e)
            ));
        }
        self.event(EventKind::RunFinished {
            outcome: end_state,
            duration_ms: duration.as_millis() as u64,
            reason: self.record.reason.clone(),
        })?;
        if logged {
            self.deliver_if_asked(brief, end_state).await?;
        }
        self.settle_worktree(end_state, removal).await;
        self.save()
    }

    /// Delivers beyond the local branch when the brief asks: a commit, or
    /// an escalated run with `escalate.fallback: issue`, handed to a human
    /// even when it committed nothing.
    async fn deliver_if_asked(&mut self, brief: &Brief, end_state: State) -> Result<(), RunError> {
        let hand_back = end_state == State::Escalated
            && brief.escalate.fallback == EscalateFallback::Issue
            && matches!(brief.output.deliver, Deliver::Pr | Deliver::DraftPr);
        if brief.output.deliver != Deliver::Branch && (self.record.commit.is_some() || hand_back) {
            self.show_state(State::Delivering)?;
            self.deliver(brief).await?;
        }
        Ok(())
    }

    /// Where the run's worktree goes: removed (the removal begun after the
    /// commit is awaited), back to the pool, or kept for the user.
    async fn settle_worktree(&mut self, end_state: State, removal: Option<Removal>) {
        if let Some(removal) = removal {
            match removal.await {
                Ok(Ok(())) => self.record.worktree = None,
                Ok(Err(e)) => {
                    tracing::warn!(error = %error_chain(&RunError::from(e)), "could not remove the worktree")
                }
                Err(e) => tracing::warn!(error = %e, "could not remove the worktree"),
            }
        } else if end_state == State::Succeeded && self.slot.is_some() {
            // Back to the pool: the next run resets it.
            self.worktree = None;
            self.record.worktree = None;
        } else if end_state == State::Succeeded {
            self.remove_worktree().await;
        } else if let Some(wt) = self.worktree.clone() {
            // A kept worktree is the user's to inspect: what the checks
            // left in its admin dir must not mislead their git or break
            // their `git gc`.
            if let Err(e) = self.git(move |_| wt.sanitize_admin()).await {
                tracing::warn!(error = %error_chain(&e), "could not rewrite the kept worktree's admin dir");
            }
        }
    }

    /// Commits `keep` on `base` to the task's branch and records it. The
    /// outer error is the record's; the inner one, git's, fails the run.
    async fn commit(
        &mut self,
        brief: &Brief,
        state: State,
        base: git2::Oid,
        keep: Vec<Change>,
    ) -> Result<Result<(), RunError>, RunError> {
        self.set_state(State::Committing)?;
        let message = commit_message(brief, &self.dir.id, state, &self.record.agent);
        let author = self.engine.commit_author.clone();
        let branch = brief.output.branch.clone();
        let task = brief.id.to_string();
        let tree = match self.verified_tree {
            Some(tree) => Ok(tree),
            None => {
                self.git(move |repo| {
                    let refs: Vec<&Change> = keep.iter().collect();
                    repo.build_tree(base, &refs)
                })
                .await
            }
        };
        let tree = match tree {
            Ok(tree) => tree,
            Err(e) => return Ok(Err(e)),
        };
        let id = self.dir.id.clone();
        let committed = self
            .git(move |repo| {
                let author = author.as_ref().map(|a| (a.name.as_str(), a.email.as_str()));
                repo.commit_to_branch(
                    &branch,
                    base,
                    tree,
                    &message,
                    author,
                    &|c: &git2::Commit| is_agent_commit(c, &task),
                )
                .inspect_err(|_| {
                    // What `--resume` will commit stays reachable.
                    let _ = repo.protect(&id, tree);
                })
            })
            .await;
        let (branch, commit) = match committed {
            Ok(done) => done,
            Err(e) => {
                self.event(EventKind::CommitPending {
                    outcome: state,
                    base: base.to_string(),
                    tree: tree.to_string(),
                    error: error_chain(&e),
                    reason: self.record.reason.clone(),
                })?;
                return Ok(Err(e));
            }
        };
        self.record.branch = Some(branch.clone());
        self.record.commit = Some(commit.to_string());
        self.event(EventKind::Committed {
            branch,
            commit: commit.to_string(),
        })?;
        Ok(Ok(()))
    }

    /// The decision log as the commit's note (written under a lock, retried
    /// while another writer holds the ref); an error means the run is not
    /// done.
    async fn attach_note(&self) -> Result<(), RunError> {
        let Some(oid) = self
            .record
            .commit
            .as_deref()
            .and_then(|c| git2::Oid::from_str(c).ok())
        else {
            return Ok(());
        };
        let events = self.dir.read_events().unwrap_or_default();
        let note = crate::report::fold::note(&self.record, &events);
        let message = note_message(&self.record.run_id);
        self.git(move |repo| repo.add_note(oid, &note, &message))
            .await
    }

    /// A succeeded run's worktree is not needed any more.
    /// Begins removing the run's worktree on a blocking thread.
    fn start_removal(&mut self) -> Option<Removal> {
        let wt = self.worktree.take()?;
        let repo = match self.engine.repo() {
            Ok(repo) => repo,
            Err(e) => {
                tracing::warn!(error = %e, "could not remove the worktree");
                return None;
            }
        };
        Some(tokio::task::spawn_blocking(move || {
            repo.remove_worktree(&wt)
        }))
    }

    async fn remove_worktree(&mut self) {
        let Some(wt) = self.worktree.take() else {
            return;
        };
        match self.git(move |repo| repo.remove_worktree(&wt)).await {
            Ok(()) => self.record.worktree = None,
            Err(e) => tracing::warn!(error = %error_chain(&e), "could not remove the worktree"),
        }
    }

    /// Hands the run to the engine's [`Deliverer`] (push, pull request,
    /// issue). A failure is recorded in `run.json` (`delivery.state:
    /// failed`) and never loses the run: the branch and the log stay, and
    /// `git agent deliver RUN` retries.
    async fn deliver(&mut self, brief: &Brief) -> Result<(), RunError> {
        let out = &brief.output;
        // A pull request's base is a branch: a brief without `base:` means
        // the branch the user had checked out when the run started.
        let base = self.record.base_branch.clone().unwrap_or_else(|| {
            brief
                .base
                .strip_prefix("origin/")
                .unwrap_or(&brief.base)
                .to_string()
        });
        let base = base.as_str();
        let asked = DeliveryRecord::new(
            out.deliver,
            brief.escalate.fallback,
            base,
            &out.labels,
            &out.reviewers,
        );
        self.record.delivery = Some(asked.clone());
        let delivery = match self.engine.deliverer.clone() {
            Some(deliverer) => {
                let events = self.dir.read_events().unwrap_or_default();
                deliverer.deliver(&self.record, &events).await
            }
            None => DeliveryRecord {
                state: DeliveryState::Failed,
                reason: Some("this command does not deliver runs".into()),
                ..asked
            },
        };
        if let Some(reason) = &delivery.reason {
            tracing::warn!(%reason, "delivery failed; the branch stays, retry with `git agent deliver`");
        }
        self.event(delivery.event())?;
        self.record.delivery = Some(delivery);
        Ok(())
    }
}

/// The commit message: the brief's title (marked WIP when escalated), its
/// goal, and the trailers that tie the commit to its task, run and brief.
fn commit_message(brief: &Brief, run_id: &str, state: State, agent: &str) -> String {
    let subject = match state {
        State::Escalated => format!("WIP (escalated): {}", brief.title),
        _ => brief.title.clone(),
    };
    let goal = goal_of(&brief.body);
    let mut msg = subject;
    msg.push_str("\n\n");
    if !goal.is_empty() {
        msg.push_str(&goal);
        msg.push_str("\n\n");
    }
    msg.push_str(&format!(
        "Agent-Task: {}\nAgent-Run: {run_id}\nAgent-Brief: {}\nAgent-Outcome: {}\n\
         Co-authored-by: {agent} (via git-agent) <{}>\n",
        brief.id,
        brief.blob_id,
        state.outcome(),
        crate::git::SIGNATURE_EMAIL
    ));
    msg
}

/// The message of the notes commit that carries a run's decision log.
pub fn note_message(run_id: &str) -> String {
    format!("git-agent: decision log of run {run_id}")
}
