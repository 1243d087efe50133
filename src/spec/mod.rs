//! What the user writes: briefs and the config, parsed from YAML into
//! validated domain types, with diagnostics that point into the file.

pub mod after;
pub mod brief;
pub mod commit;
pub mod config;
pub mod diagnostic;
pub mod duration;
pub mod lint;
pub mod notify;
pub mod repo_files;
pub mod schema;
pub mod scope;
pub mod templates;
pub mod workspace;
pub mod yaml;
