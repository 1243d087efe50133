//! Whether a run's result reached its base branch: the one place that
//! decides "merged or landed", for `git agent stats` and whatever else
//! counts results.
//!
//! The evidence is git's, not a record's: a result reached its base when
//! its own commit is reachable from the base branch (a merge, a fast
//! forward: *merged*), or when a commit there carries its `Agent-Run:`
//! trailer though the run's own commit is not (a cherry-pick, a rebase, a
//! squash that kept the message, a command that lands results that way:
//! *landed*). So a result counts however it got there, and a record that
//! says nothing of it cannot be stale.

use std::collections::HashSet;

use crate::model::store::RunRecord;

/// How a run's result reached its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// The run's own commit is reachable from the base branch.
    Merged,
    /// A commit on the base branch carries the run's `Agent-Run` trailer;
    /// the run's own commit is not there (rewritten on the way).
    Landed,
    /// Neither: the result is not in its base (yet).
    NotInBase,
}

/// What a base branch's history holds of git-agent's results: the commits
/// reachable from it (since the first run that started from it) and the
/// run ids in their `Agent-Run` trailers.
#[derive(Debug, Clone, Default)]
pub struct BaseHistory {
    /// Full hex ids.
    pub commits: HashSet<String>,
    pub runs: HashSet<String>,
}

/// The trailer that names a commit's run (`engine/finish.rs` writes it).
pub const RUN_TRAILER: &str = "Agent-Run:";

impl BaseHistory {
    /// Takes in one commit of the base: its id and message.
    pub fn add(&mut self, commit: String, message: &str) {
        for line in message.lines() {
            // Trimmed: a squash merge quotes the commits' messages indented.
            if let Some(run) = line.trim().strip_prefix(RUN_TRAILER) {
                self.runs.insert(run.trim().to_string());
            }
        }
        self.commits.insert(commit);
    }
}

/// Whether `record`'s result is in its base, given the history of that
/// base (`None`: the base branch is unknown or gone). `None` when the run
/// left no result (no commit).
pub fn reached(record: &RunRecord, base: Option<&BaseHistory>) -> Option<Reached> {
    let commit = record.commit.as_deref()?;
    // `git agent land` recorded it.
    if record.landed.is_some() {
        return Some(Reached::Landed);
    }
    let Some(base) = base else {
        return Some(Reached::NotInBase);
    };
    Some(if base.commits.contains(commit) {
        Reached::Merged
    } else if base.runs.contains(&record.run_id) {
        Reached::Landed
    } else {
        Reached::NotInBase
    })
}

/// The branch a run's result belongs in: the branch its base named when
/// it started, else the base its delivery targets.
pub fn base_branch(record: &RunRecord) -> Option<&str> {
    record
        .base_branch
        .as_deref()
        .or_else(|| record.delivery.as_ref().map(|d| d.base.as_str()))
        .filter(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_are_read_from_quoted_messages_too() {
        let mut base = BaseHistory::default();
        base.add(
            "aaa".into(),
            "Squashed (#3)\n\n* Fix it\n\n  Agent-Task: t\n  Agent-Run: 20240101-000000-t-00ff\n",
        );
        assert!(base.runs.contains("20240101-000000-t-00ff"));
        assert!(base.commits.contains("aaa"));
    }
}
