//! git-agent: run coding agents in the background the way CI runs jobs.
//!
//! A task brief (`.agents/tasks/<id>.md`) states the goal, the paths a run
//! may change and the checks that define success. A run executes the brief
//! in its own git worktree, enforces the scope on what the agent changed,
//! runs the checks, and delivers a branch whose commit carries the decision
//! log. The binary (`git-agent`, so `git agent` works) is a thin layer over
//! this library; see `docs/ARCHITECTURE.md` for the layers:
//!
//! ```text
//! cli → deliver → engine → agent → exec, git → report → spec → model
//! ```
//!
//! Each layer imports only layers to its right (`tests/architecture.rs`
//! checks it). What tests and benches use is re-exported below under the
//! names it has always had; everything else is crate-private.

pub(crate) mod agent;
pub mod cli;
pub(crate) mod deliver;
pub(crate) mod engine;
pub(crate) mod exec;
pub(crate) mod git;
pub(crate) mod model;
pub(crate) mod report;
pub(crate) mod spec;

pub use spec::{brief, config, diagnostic, repo_files, templates};

pub use deliver::forge;

/// Delivery of a finished run (pull requests, issues), for the GitHub tests.
pub mod delivery {
    pub use crate::deliver::{deliver_issue, deliver_pr};
    pub use crate::model::delivery::DeliveryRecord;
}

/// Run records on disk (and the store, for the benches that fill one).
pub mod store {
    pub use crate::model::store::{RunDir, RunRecord, State, Store};
}

/// The run log's events.
pub mod log {
    pub use crate::model::event::{Event, EventKind};
}
