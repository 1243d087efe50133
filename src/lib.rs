//! git-agent: run coding agents in the background the way CI runs jobs.
//!
//! A task brief (`.agents/tasks/<id>.md`) states the goal, the paths a run
//! may change and the checks that define success. A run executes the brief
//! in its own git worktree, enforces the scope on what the agent changed,
//! runs the checks, and delivers a branch whose commit carries the decision
//! log. The binary (`git-agent`, so `git agent` works) is a thin layer over
//! this library; see `docs/ARCHITECTURE.md`.

pub mod actions;
pub mod agent;
pub mod brief;
pub mod checks;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod diagnostic;
pub mod duration;
pub mod env;
pub mod forge;
pub mod log;
pub mod orchestrator;
pub mod process;
pub mod prompt;
pub mod repo_files;
pub mod review;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod scope;
pub mod store;
pub mod symlink;
pub mod templates;
pub mod workspace;
pub mod yaml;
