//! One run from brief to verdict, and many runs at once: the attempt loop,
//! the verifier (shared with `git agent review`), the checks, the commit.
//! The engine emits events and records; it never prints and never calls
//! delivery itself.

pub mod checks;
pub mod orchestrator;
pub mod prompt;
pub mod review;
pub mod run;
pub mod symlink;
