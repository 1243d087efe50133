//! One run from brief to verdict, and many runs at once.
//!
//! - [`run`]: the [`run::Engine`], a run's record and its prepare step;
//!   [`resume`] picks an interrupted run up again.
//! - [`attempt`]: the attempt loop — invoke the agent (its prompt, process
//!   and report, continuing its session on a later attempt: `agent.rs`),
//!   [`judge`] what it left (through the [`verify`] rules, shared with
//!   [`review`]), run the [`checks`], feed failures back.
//! - [`finish`]: commit, note, hand to delivery (through the
//!   [`run::Deliverer`] seam: the engine never calls the forge), clean up.
//! - [`orchestrator`]: many runs, chained ones in order ([`chain`]), runs
//!   beside each other checked for conflicts afterwards ([`overlap`]),
//!   signals.
//! - [`land`]: a succeeded result replayed onto its base's tip, checked
//!   there (by [`review`]) and fast-forwarded in.
//!
//! The engine emits events and records; it never prints.

mod agent;
pub mod attempt;
pub mod chain;
pub mod checks;
mod confine;
pub mod decisions;
mod denied;
pub mod finish;
pub mod judge;
pub mod land;
mod notify;
pub mod orchestrator;
pub mod overlap;
pub mod pool;
mod ports;
pub mod prompt;
pub mod queue;
pub mod resume;
pub mod review;
pub mod run;
pub mod stop;
pub mod symlink;
pub mod verify;
mod workspace;
