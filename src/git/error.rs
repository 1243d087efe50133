//! The error type of every operation in [`crate::git`], and the `Result`
//! alias that defaults to it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub type Result<T, E = WorkspaceError> = std::result::Result<T, E>;

#[derive(thiserror::Error, Debug)]
pub enum WorkspaceError {
    #[error("not a git repository: {path} ({source})")]
    NotARepository {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("cannot resolve {rev:?} to a commit in {repo}: {source}")]
    UnknownRevision {
        rev: String,
        repo: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("`{command}` failed ({status}) in {cwd}: {stderr}")]
    GitCommand {
        command: String,
        cwd: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("the run's time limit passed while git-agent ran `{command}` (what the agent left took too long to take in)")]
    Deadline { command: String },
    #[error("could not run `{command}` in {cwd}: {source}")]
    Spawn {
        command: String,
        cwd: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} ({context}) in {repo}: {source}")]
    Git2 {
        action: &'static str,
        context: String,
        repo: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("invalid worktree path {path}: {reason}")]
    InvalidWorktreePath { path: PathBuf, reason: String },
    #[error("invalid sparse pattern {pattern:?}: {reason}")]
    InvalidPattern {
        pattern: String,
        reason: &'static str,
    },
    #[error("invalid branch name {branch:?}: refs/heads/{branch} is not a valid ref name")]
    InvalidBranch { branch: String },
    #[error(
        "no usable branch for {branch:?} in {repo} after {tried} candidates: each holds \
         someone else's commits or is checked out in a worktree"
    )]
    NoFreeBranch {
        branch: String,
        repo: PathBuf,
        tried: usize,
    },
    #[error(
        "timed out after {waited:?} waiting for lock {path} (holder: {holder}); \
         delete it if no git-agent process is running"
    )]
    LockTimeout {
        path: PathBuf,
        waited: Duration,
        holder: String,
    },
    #[error("path {path:?} in {worktree} is not valid UTF-8; rename it")]
    NonUtf8Path { path: String, worktree: PathBuf },
    #[error("refusing to touch {path:?} in worktree {worktree}: {reason}")]
    UnsafePath {
        path: String,
        worktree: PathBuf,
        reason: String,
    },
    #[error("invalid change for {path:?}: {reason}")]
    InvalidChange { path: String, reason: String },
    #[error("cannot replay commit {commit}: {reason}")]
    CannotReplay { commit: String, reason: String },
    #[error(
        "{refname} moved: it was expected at {expected}, it is at {}",
        found.as_deref().unwrap_or("nothing (deleted)")
    )]
    RefMoved {
        refname: String,
        expected: String,
        found: Option<String>,
    },
    #[error(
        "index {index} of sparse worktree {worktree} is missing: cannot tell files that were \
         never materialized from deleted ones"
    )]
    MissingIndex { worktree: PathBuf, index: PathBuf },
}

pub(super) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WorkspaceError + 'a {
    move |source| WorkspaceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}
