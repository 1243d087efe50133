//! What people read: the Markdown decision log, the GitHub Actions
//! summary and the figures of `stats`, rendered from records and events
//! (and, for `stats`, what the base branches hold).

pub mod actions;
pub mod diff;
pub mod escape;
pub mod fold;
pub mod follow;
pub mod json;
pub mod markdown;
pub mod runs;
pub mod stats;
