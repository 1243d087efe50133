//! Reviews: the comments a pull request carries, and the report `git agent
//! review` makes of a change.

use serde::Serialize;

use crate::model::check::CheckResult;
use crate::model::event::ScopedChange;
use crate::model::sandbox::Enforcement;

/// A review comment on a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewComment {
    pub path: String,
    pub body: String,
    pub user: Option<String>,
}

/// The verdict: pass (exit 0), fail (1), or a human must look (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Fail,
    NeedsHuman,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewReport {
    pub task: String,
    pub title: String,
    pub head: String,
    pub base: String,
    pub verdict: Verdict,
    pub changes: Vec<ScopedChange>,
    /// What the change must not do (out of scope, denied, unsafe links).
    pub violations: Vec<String>,
    /// In scope, but a human must look.
    pub needs_human: Vec<String>,
    pub checks: Vec<CheckResult>,
    /// Whether the checks ran confined (Landlock), as a run's would.
    pub sandbox: Enforcement,
}
