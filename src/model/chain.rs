//! Runs chained by `after:`, and runs side by side: what a run's record
//! keeps of the tasks it ran after (the result it started from, the branch
//! its pull request stacks on) and of the runs its result conflicts with.

use serde::{Deserialize, Serialize};

/// What a run of a brief with `after:` started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// Each task of `after:`, in the brief's order.
    pub after: Vec<Link>,
    /// The branch the run's pull request stacks on (a predecessor's, whose
    /// result is not in the base yet); `None`: the base branch itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacked_on: Option<String>,
    /// The branch the brief's `base` names: where the run's pull request
    /// goes once the result it stacks on has landed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onto: Option<String>,
}

/// One task of `after:` as the run found it when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub task: String,
    /// The branch its result is on.
    pub branch: String,
    /// Its result the run started from; `None` when that result was
    /// already in the base (landed, merged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Chain {
    /// The link the pull request stacks on, if it does.
    pub fn stacked_link(&self) -> Option<&Link> {
        let branch = self.stacked_on.as_deref()?;
        self.after.iter().find(|l| l.branch == branch)
    }
}

/// Another run's result this run's does not merge with cleanly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub task: String,
    pub branch: String,
    /// The paths both changed in ways that do not merge.
    pub paths: Vec<String>,
}

impl Conflict {
    /// `conflicts with agent/x in src/a.rs, src/b.rs`.
    pub fn describe(&self) -> String {
        format!(
            "conflicts with {} in {}",
            self.branch,
            if self.paths.is_empty() {
                "its tree".to_string()
            } else {
                self.paths.join(", ")
            }
        )
    }
}
