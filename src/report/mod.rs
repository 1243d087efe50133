//! What people read: the Markdown decision log and the GitHub Actions
//! summary, rendered from records and events only.

pub mod actions;
pub mod diff;
pub mod escape;
pub mod fold;
pub mod follow;
pub mod json;
pub mod markdown;
pub mod runs;
