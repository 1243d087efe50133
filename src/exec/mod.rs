//! Child processes: supervision (process groups, limits, sweeps), the
//! kernel sandbox, and the allowlisted environment.

pub mod channels;
pub mod egress;
pub mod env;
pub mod mountns;
pub mod pidns;
pub mod process;
pub mod sandbox;
