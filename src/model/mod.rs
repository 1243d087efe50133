//! The leaf layer: the types git-agent persists and every other layer
//! shares — run records and their directories, events, delivery records,
//! the recorded sandbox policy, timestamps. It imports no other layer.

pub mod check;
pub mod delivery;
pub mod event;
pub mod sandbox;
pub mod store;
pub mod time;
