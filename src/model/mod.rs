//! The leaf layer: the types git-agent persists and every other layer
//! shares — run records and their directories, events, delivery records,
//! landings, the recorded sandbox policy, timestamps, the agents' usage. It imports no other layer.

pub mod chain;
pub mod check;
pub mod delivery;
pub mod event;
pub mod landing;
pub mod locks;
pub mod reached;
pub mod review;
pub mod salvage;
pub mod sandbox;
pub mod store;
pub mod time;
pub mod usage;

/// An error and its causes, outermost first: the one walk of `source()`
/// chains that every reason and message uses.
pub fn error_causes(err: &dyn std::error::Error) -> Vec<String> {
    let mut causes = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        causes.push(e.to_string());
        source = e.source();
    }
    causes
}

/// An error and its causes on one line, for reasons in records.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    error_causes(err).join(": ")
}
