//! A run's result landed on its base branch (`git agent land`): `run.json`'s
//! `landed` and the `landed` event carry the same fields.

use serde::{Deserialize, Serialize};

use crate::model::check::CheckSummary;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Landing {
    /// The branch the result landed on (`main`).
    pub branch: String,
    /// Its tip before.
    pub old_tip: String,
    /// Its tip after: the last of `commits`.
    pub new_tip: String,
    /// The commits that landed, oldest first: the run's own when the base
    /// had not moved, else its commits replayed onto `old_tip`.
    pub commits: Vec<String>,
    /// The brief's checks, run on the landed tree.
    #[serde(default)]
    pub checks: Vec<CheckSummary>,
}
