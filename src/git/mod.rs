//! Worktrees, change sets, commits and notes.
//!
//! Everything here is synchronous; async callers use `spawn_blocking`.
//!
//! Split of work between the git CLI and libgit2 (see DESIGN.md, "Measured
//! facts about workspaces"):
//! - worktrees are created, sparsified, populated, staged and removed with the
//!   git CLI, because libgit2 ignores sparse checkouts (skip-worktree bits);
//! - change sets are tree-to-tree diffs done with libgit2 (sparse-agnostic);
//! - commits, branches and notes are written with libgit2.
//!
//! Every git CLI call runs with hooks and fsmonitor disabled, stdin null,
//! `GIT_TERMINAL_PROMPT=0`, the repository-locating environment variables
//! removed, and — for a worktree — explicit `--git-dir`, `--work-tree` and
//! `GIT_COMMON_DIR`, so nothing the agent wrote into its worktree's `.git`
//! file or admin directory can redirect us.
//!
//! [`Repo`] holds only paths (it opens libgit2 handles per call), so it is
//! `Send + Sync + Clone` and can be shared by concurrent runs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use git2::{Delta, DiffFindOptions, DiffOptions, ErrorCode, Oid, Repository};
use serde::{Serialize, Serializer};

/// Notes ref that carries a run's decision log.
pub const NOTES_REF: &str = "refs/notes/agent";
/// Name and email of every commit and note git-agent writes.
pub const SIGNATURE_NAME: &str = "git-agent";
/// See [`SIGNATURE_NAME`].
pub const SIGNATURE_EMAIL: &str = "git-agent@localhost";

/// Whether git-agent wrote `commit` for `task`: its committer and its
/// `Agent-Task` trailer. An amend or rebase by a human changes the committer.
pub fn is_agent_commit(commit: &git2::Commit, task: &str) -> bool {
    let trailer = format!("Agent-Task: {task}");
    commit.committer().email().ok() == Some(SIGNATURE_EMAIL)
        && commit
            .message()
            .is_ok_and(|m| m.lines().any(|l| l == trailer))
}

const MODE_TREE: u32 = 0o040000;
const MODE_EXEC: u32 = 0o100755;
const MODE_LINK: u32 = 0o120000;
const MODE_GITLINK: u32 = 0o160000;

/// A lock file older than this is considered abandoned.
const LOCK_STALE_AFTER: Duration = Duration::from_secs(60);
/// How long to wait for the worktree lock before giving up.
const LOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// Attempts for git operations that fail on someone else's `*.lock`.
const LOCK_RETRIES: u32 = 8;
/// Longest stderr kept in an error.
const STDERR_LIMIT: usize = 8 * 1024;

/// Serializes the `worktree add` step between threads of this process (the
/// lock file serializes it between processes).
static WORKTREE_ADD: Mutex<()> = Mutex::new(());
/// Serializes note writes between threads of this process.
static NOTES: Mutex<()> = Mutex::new(());

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
    #[error(
        "index {index} of sparse worktree {worktree} is missing: cannot tell files that were \
         never materialized from deleted ones"
    )]
    MissingIndex { worktree: PathBuf, index: PathBuf },
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> WorkspaceError + 'a {
    move |source| WorkspaceError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Data types
// ---------------------------------------------------------------------------

/// What happened to one path between the base tree and the worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    /// File ↔ symlink ↔ gitlink.
    TypeChanged,
}

/// One changed path. `path` is the new path (the old one for deletions);
/// `old_path` is set for renames only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub old_path: Option<String>,
    pub kind: ChangeKind,
    pub old_mode: Option<u32>,
    pub new_mode: Option<u32>,
    /// Blob (or, for a gitlink, commit) id of the new content.
    #[serde(serialize_with = "ser_opt_oid")]
    pub new_blob: Option<Oid>,
    pub lines_added: usize,
    pub lines_removed: usize,
    pub binary: bool,
    /// Target of a new symlink (mode 0o120000), as stored.
    pub symlink_target: Option<String>,
    /// Either side is a gitlink (mode 0o160000), e.g. a nested repository.
    pub gitlink: bool,
}

impl Change {
    /// Every path this change touches: the path and, for a rename, the old path.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.old_path.as_deref())
    }

    /// The new side is executable.
    pub fn is_executable(&self) -> bool {
        self.new_mode == Some(MODE_EXEC)
    }
}

/// Everything that differs between `base` and the worktree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeSet {
    #[serde(serialize_with = "ser_oid")]
    pub base: Oid,
    /// The worktree's full content (as `git add -A` sees it) as a tree.
    #[serde(serialize_with = "ser_oid")]
    pub tree: Oid,
    pub changes: Vec<Change>,
    /// Nested repositories without a commit (`git init` with nothing
    /// committed): a tree cannot hold them, so they are not in `tree` nor in
    /// `changes`, and their files are not either.
    pub uncommitted_nested_repos: Vec<String>,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn lines_changed(&self) -> usize {
        self.changes
            .iter()
            .map(|c| c.lines_added + c.lines_removed)
            .sum()
    }
}

fn ser_oid<S: Serializer>(oid: &Oid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&oid.to_string())
}

fn ser_opt_oid<S: Serializer>(oid: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
    match oid {
        Some(oid) => s.serialize_some(&oid.to_string()),
        None => s.serialize_none(),
    }
}

/// What [`Repo::import_objects`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedObjects {
    pub imported: usize,
    /// Objects that did not match their names (or could not be read).
    pub corrupt: Vec<String>,
}

/// A linked worktree created by [`Repo::create_worktree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The checkout (canonical path).
    pub path: PathBuf,
    /// `<common dir>/worktrees/<name>` (canonical path).
    pub admin_dir: PathBuf,
    /// Created with sparse patterns.
    pub sparse: bool,
}

impl Worktree {
    /// The common dir, derived from `admin_dir` (never from the admin dir's
    /// `commondir` file, which the agent can rewrite).
    fn common_dir(&self) -> Option<&Path> {
        self.admin_dir.parent().and_then(Path::parent)
    }

    /// The worktree's `.git` no longer is a file pointing at `admin_dir`.
    pub fn git_file_tampered(&self) -> bool {
        self.git_file_problem().is_some()
    }

    fn git_file_problem(&self) -> Option<String> {
        let dotgit = self.path.join(".git");
        let meta = match fs::symlink_metadata(&dotgit) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", dotgit.display())),
        };
        if !meta.file_type().is_file() {
            return Some(format!("{} is not a regular file", dotgit.display()));
        }
        let text = match fs::read_to_string(&dotgit) {
            Ok(t) => t,
            Err(e) => return Some(format!("{}: {e}", dotgit.display())),
        };
        let Some(target) = text.trim_end().strip_prefix("gitdir:") else {
            return Some(format!("{} has no gitdir: line", dotgit.display()));
        };
        if !same_file(&self.path.join(target.trim()), &self.admin_dir) {
            return Some(format!(
                "{} points at {}, not {}",
                dotgit.display(),
                target.trim(),
                self.admin_dir.display()
            ));
        }
        None
    }

    /// Every sign that the agent rewired its worktree: the `.git` file, the
    /// admin dir's `commondir` and `gitdir` files. Empty when intact.
    pub fn integrity_problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.git_file_problem().into_iter().collect();
        let commondir = self.admin_dir.join("commondir");
        match (fs::read_to_string(&commondir), self.common_dir()) {
            (Ok(text), Some(common)) => {
                if !same_file(&self.admin_dir.join(text.trim_end()), common) {
                    problems.push(format!(
                        "{} points at {}, not {}",
                        commondir.display(),
                        text.trim_end(),
                        common.display()
                    ));
                }
            }
            (Err(e), _) => problems.push(format!("{}: {e}", commondir.display())),
            (_, None) => problems.push(format!("{} has no parent", self.admin_dir.display())),
        }
        let gitdir = self.admin_dir.join("gitdir");
        match fs::read_to_string(&gitdir) {
            Ok(text) => {
                let back = self.admin_dir.join(text.trim_end());
                let expected = self.path.join(".git");
                // Compare parents: the .git file itself may be gone.
                let points_back = back.file_name() == Some(OsStr::new(".git"))
                    && back.parent().is_some_and(|p| same_file(p, &self.path));
                if !points_back {
                    problems.push(format!(
                        "{} points at {}, not {}",
                        gitdir.display(),
                        text.trim_end(),
                        expected.display()
                    ));
                }
            }
            Err(e) => problems.push(format!("{}: {e}", gitdir.display())),
        }
        problems
    }

    /// The commit the worktree's HEAD points at (it moves if the agent
    /// committed).
    pub fn head(&self) -> Result<Oid> {
        let git = self.git(&[]);
        let out = git.run(&["rev-parse", "--verify", "-q", "HEAD^{commit}"])?;
        parse_oid(&out.stdout, &git, "rev-parse HEAD")
    }

    fn git(&self, env: &[(OsString, OsString)]) -> Git {
        let mut git = Git::new(&self.path, env)
            .arg(arg_eq("--git-dir=", &self.admin_dir))
            .arg(arg_eq("--work-tree=", &self.path));
        if let Some(common) = self.common_dir() {
            git = git.env("GIT_COMMON_DIR", common);
        }
        git
    }
}

/// Paths refer to the same existing file system object.
fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Running git
// ---------------------------------------------------------------------------

/// Environment variables that locate a repository or alter object lookup; a
/// parent process (e.g. `git agent` run as a git subcommand, or a hook) may
/// have set them, and they must not leak into our calls.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_REPLACE_REF_BASE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_SHALLOW_FILE",
    "GIT_QUARANTINE_PATH",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_EXTERNAL_DIFF",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_PAGER",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
];

#[derive(Debug, Clone)]
struct Git {
    cwd: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

fn arg_eq(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path);
    s
}

impl Git {
    fn new(cwd: &Path, extra_env: &[(OsString, OsString)]) -> Git {
        let mut args: Vec<OsString> = vec!["--no-pager".into()];
        for kv in [
            "core.hooksPath=/dev/null",
            "core.fsmonitor=false",
            "gc.auto=0",
            "maintenance.auto=false",
            "advice.addEmbeddedRepo=false",
            "advice.updateSparsePath=false",
            "advice.detachedHead=false",
        ] {
            args.push("-c".into());
            args.push(kv.into());
        }
        Git {
            cwd: cwd.to_path_buf(),
            args,
            env: extra_env.to_vec(),
        }
    }

    fn arg(mut self, a: impl Into<OsString>) -> Git {
        self.args.push(a.into());
        self
    }

    fn config(self, kv: &str) -> Git {
        self.arg("-c").arg(kv)
    }

    fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Git {
        self.env.push((k.into(), v.as_ref().to_os_string()));
        self
    }

    fn command_line(&self, sub: &[&OsStr]) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (k, v) in &self.env {
            if k.to_string_lossy().starts_with("GIT_") {
                parts.push(format!("{}={}", k.to_string_lossy(), shell_quote(v)));
            }
        }
        parts.push("git".into());
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.extend(sub.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    /// Runs and returns the output whatever the exit status.
    fn run_unchecked(&self, sub: &[&OsStr], stdin: Option<&[u8]>) -> Result<(Output, String)> {
        let command = self.command_line(sub);
        tracing::debug!(%command, cwd = %self.cwd.display(), "git");
        let mut cmd = Command::new("git");
        cmd.args(&self.args)
            .args(sub)
            .current_dir(&self.cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ADVICE", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let spawn_err = |source| WorkspaceError::Spawn {
            command: command.clone(),
            cwd: self.cwd.clone(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let output = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => std::thread::scope(|s| {
                let writer = s.spawn(move || {
                    // A write error (git exited early) shows up in the status.
                    let _ = pipe.write_all(data);
                });
                let out = child.wait_with_output();
                let _ = writer.join();
                out
            }),
            _ => child.wait_with_output(),
        }
        .map_err(spawn_err)?;
        Ok((output, command))
    }

    /// Args given as `&str`; fails on a non-zero exit.
    fn run(&self, sub: &[&str]) -> Result<Output> {
        let sub: Vec<&OsStr> = sub.iter().map(OsStr::new).collect();
        self.run_os(&sub, None)
    }

    fn run_os(&self, sub: &[&OsStr], stdin: Option<&[u8]>) -> Result<Output> {
        let (out, command) = self.run_unchecked(sub, stdin)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(command, &out))
        }
    }

    fn failure(&self, command: String, out: &Output) -> WorkspaceError {
        WorkspaceError::GitCommand {
            command,
            cwd: self.cwd.clone(),
            status: out.status.to_string(),
            stderr: truncate(&String::from_utf8_lossy(&out.stderr)),
        }
    }
}

fn truncate(s: &str) -> String {
    let s = s.trim_end();
    if s.len() <= STDERR_LIMIT {
        return s.to_string();
    }
    let mut end = STDERR_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &s[..end], s.len() - end)
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@^{}+%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn parse_oid(stdout: &[u8], git: &Git, what: &str) -> Result<Oid> {
    let text = String::from_utf8_lossy(stdout);
    Oid::from_str(text.trim()).map_err(|source| WorkspaceError::Git2 {
        action: "parsing object id",
        context: format!("output of {what}: {:?}", text.trim()),
        repo: git.cwd.clone(),
        source,
    })
}

/// Stderr says another process held a lock file we needed.
fn is_lock_contention(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains(".lock") && (s.contains("File exists") || s.contains("nable to create"))
        || s.contains("could not lock")
        || s.contains("another git process")
}

fn backoff(attempt: u32) -> Duration {
    // 20 ms, 40 ms, ... capped at 1 s, plus jitter so racers spread out.
    let base = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    Duration::from_millis(base + rand::random_range(0..=base / 2))
}

// ---------------------------------------------------------------------------
// Cross-process lock file
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct LockFile {
    path: PathBuf,
}

impl LockFile {
    fn acquire(path: &Path) -> Result<LockFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        }
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(
                        f,
                        "pid {} since {:?}",
                        std::process::id(),
                        SystemTime::now()
                    );
                    return Ok(LockFile {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if Self::break_if_stale(path) {
                        continue;
                    }
                    if start.elapsed() > LOCK_TIMEOUT {
                        return Err(WorkspaceError::LockTimeout {
                            path: path.to_path_buf(),
                            waited: start.elapsed(),
                            holder: fs::read_to_string(path)
                                .unwrap_or_default()
                                .trim()
                                .to_string(),
                        });
                    }
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                Err(e) => return Err(io_err("creating lock file", path)(e)),
            }
        }
    }

    /// Removes `path` if it is older than [`LOCK_STALE_AFTER`]. The stale
    /// file is first renamed to a unique name, so that two processes breaking
    /// the same stale lock cannot delete a fresh one taken in between.
    fn break_if_stale(path: &Path) -> bool {
        let stale = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > LOCK_STALE_AFTER)
        };
        if !stale(path) {
            return false;
        }
        let aside = path.with_extension(format!("stale.{}.{}", std::process::id(), unique()));
        if fs::rename(path, &aside).is_err() {
            return true; // someone else broke it; try again
        }
        if stale(&aside) {
            tracing::warn!(lock = %path.display(), "removed a stale lock file");
            let _ = fs::remove_file(&aside);
        } else {
            // We grabbed a fresh lock: put it back unless a new one exists.
            let _ = fs::hard_link(&aside, path);
            let _ = fs::remove_file(&aside);
        }
        true
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(lock = %self.path.display(), error = %e, "could not remove lock file");
        }
    }
}

fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (COUNTER.fetch_add(1, Ordering::Relaxed) << 32) ^ nanos
}

// ---------------------------------------------------------------------------
// Repo
// ---------------------------------------------------------------------------

/// The user's repository. Holds paths only; see the module docs.
#[derive(Debug, Clone)]
pub struct Repo {
    git_dir: PathBuf,
    common_dir: PathBuf,
    workdir: Option<PathBuf>,
    git_env: Vec<(OsString, OsString)>,
}

impl Repo {
    /// Finds the repository containing `start`.
    pub fn discover(start: &Path) -> Result<Repo> {
        let repo =
            Repository::discover(start).map_err(|source| WorkspaceError::NotARepository {
                path: start.to_path_buf(),
                source,
            })?;
        let canon = |p: &Path| fs::canonicalize(p).map_err(io_err("resolving", p));
        Ok(Repo {
            git_dir: canon(repo.path())?,
            common_dir: canon(repo.commondir())?,
            workdir: repo.workdir().map(canon).transpose()?,
            git_env: Vec::new(),
        })
    }

    /// Adds an environment variable to every git CLI call (e.g.
    /// `GIT_CONFIG_GLOBAL=/dev/null` for hermetic tests).
    pub fn with_git_env(mut self, key: &str, value: impl AsRef<OsStr>) -> Repo {
        self.git_env
            .push((key.into(), value.as_ref().to_os_string()));
        self
    }

    /// The shared git dir (`.git` of the main checkout).
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// The git dir `discover` found (differs from `common_dir` when started
    /// inside a linked worktree).
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The user's checkout; `None` for a bare repository.
    pub fn workdir(&self) -> Option<&Path> {
        self.workdir.as_deref()
    }

    /// A fresh libgit2 handle (`Repository` is not `Sync`; open one per thread).
    pub fn open(&self) -> Result<Repository> {
        Repository::open(&self.git_dir).map_err(|source| WorkspaceError::NotARepository {
            path: self.git_dir.clone(),
            source,
        })
    }

    fn git2_err(
        &self,
        action: &'static str,
        context: impl Into<String>,
    ) -> impl FnOnce(git2::Error) -> WorkspaceError {
        let repo = self.common_dir.clone();
        let context = context.into();
        move |source| WorkspaceError::Git2 {
            action,
            context,
            repo,
            source,
        }
    }

    /// git CLI on the main repository (never its work tree).
    fn git(&self) -> Git {
        Git::new(&self.common_dir, &self.git_env).arg(arg_eq("--git-dir=", &self.git_dir))
    }

    pub fn resolve_commit(&self, rev: &str) -> Result<Oid> {
        let repo = self.open()?;
        let commit = repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|source| WorkspaceError::UnknownRevision {
                rev: rev.to_string(),
                repo: self.common_dir.clone(),
                source,
            })?;
        Ok(commit.id())
    }

    /// Creates a detached worktree at `path` (outside the repository) checked
    /// out at `commit`. With `sparse`, only paths matching the patterns (globs
    /// relative to the repository root; `*` stays within a directory, `**`
    /// crosses directories) are materialized.
    pub fn create_worktree(
        &self,
        path: &Path,
        commit: Oid,
        sparse: Option<&[String]>,
    ) -> Result<Worktree> {
        let patterns = sparse.map(sparse_patterns).transpose()?;
        let path = self.check_new_worktree_path(path)?;
        // Check the commit exists before taking locks.
        self.open()?
            .find_commit(commit)
            .map_err(self.git2_err("looking up commit", commit.to_string()))?;

        let existed = path.exists();
        {
            let _thread = WORKTREE_ADD.lock().unwrap_or_else(|e| e.into_inner());
            let _process = LockFile::acquire(&self.common_dir.join("agent/worktree.lock"))?;
            self.worktree_add(&path, commit, existed)?;
            if patterns.is_some() {
                // `sparse-checkout set` would write this into the common config
                // the first time; do it here, under the lock.
                self.enable_worktree_config()?;
            }
        }
        let admin_dir = match read_admin_dir(&path) {
            Ok(dir) => dir,
            Err(e) => {
                // Cannot happen unless something raced us; leave nothing behind.
                let _ = self.git().run_os(
                    &[
                        "worktree".as_ref(),
                        "remove".as_ref(),
                        "--force".as_ref(),
                        "--force".as_ref(),
                        path.as_os_str(),
                    ],
                    None,
                );
                return Err(e);
            }
        };
        let wt = Worktree {
            admin_dir,
            path,
            sparse: patterns.is_some(),
        };
        if let Err(e) = self.populate(&wt, commit, patterns.as_deref()) {
            if let Err(cleanup) = self.remove_worktree(&wt) {
                tracing::warn!(error = %cleanup, "could not remove half-created worktree");
            }
            return Err(e);
        }
        Ok(wt)
    }

    fn check_new_worktree_path(&self, path: &Path) -> Result<PathBuf> {
        let invalid = |reason: &str| WorkspaceError::InvalidWorktreePath {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let abs = std::path::absolute(path).map_err(io_err("resolving", path))?;
        if abs.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(invalid("must not contain `..`"));
        }
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.is_dir() => {
                let mut entries = fs::read_dir(&abs).map_err(io_err("reading", &abs))?;
                if entries.next().is_some() {
                    return Err(invalid("exists and is not empty"));
                }
            }
            Ok(_) => return Err(invalid("exists and is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspecting", &abs)(e)),
        }
        // Resolve symlinks in the part that exists.
        let mut existing = abs.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Err(invalid("has no existing ancestor")),
            }
        }
        let mut canon = fs::canonicalize(existing).map_err(io_err("resolving", existing))?;
        for name in rest.iter().rev() {
            canon.push(name);
        }
        if let Some(work) = &self.workdir {
            if canon.starts_with(work) {
                return Err(invalid(&format!(
                    "is inside the repository's checkout {}; worktrees must live outside it",
                    work.display()
                )));
            }
        }
        if canon.starts_with(&self.common_dir) {
            return Err(invalid("is inside the git directory"));
        }
        Ok(canon)
    }

    /// `git worktree add --no-checkout --detach`, retried on lock contention.
    fn worktree_add(&self, path: &Path, commit: Oid, existed: bool) -> Result<()> {
        let git = self.git();
        let hex = commit.to_string();
        let args: [&OsStr; 6] = [
            "worktree".as_ref(),
            "add".as_ref(),
            "--no-checkout".as_ref(),
            "--detach".as_ref(),
            path.as_os_str(),
            hex.as_ref(),
        ];
        let mut attempt = 0;
        loop {
            let (out, command) = git.run_unchecked(&args, None)?;
            if out.status.success() {
                return Ok(());
            }
            if attempt + 1 >= LOCK_RETRIES || !is_lock_contention(&out.stderr) {
                return Err(git.failure(command, &out));
            }
            tracing::debug!(%command, attempt, "worktree add hit a lock; retrying");
            if !existed && path.exists() {
                let _ = fs::remove_dir_all(path);
            }
            std::thread::sleep(backoff(attempt));
            attempt += 1;
        }
    }

    fn enable_worktree_config(&self) -> Result<()> {
        let config_path = self.common_dir.join("config");
        let enabled = git2::Config::open(&config_path)
            .and_then(|c| c.get_bool("extensions.worktreeconfig"))
            .unwrap_or(false);
        if enabled {
            return Ok(());
        }
        let git = self.git();
        let file = arg_eq("--file=", &config_path);
        let args: [&OsStr; 4] = [
            "config".as_ref(),
            file.as_os_str(),
            "extensions.worktreeConfig".as_ref(),
            "true".as_ref(),
        ];
        let mut attempt = 0;
        loop {
            let (out, command) = git.run_unchecked(&args, None)?;
            if out.status.success() {
                return Ok(());
            }
            if attempt + 1 >= LOCK_RETRIES || !is_lock_contention(&out.stderr) {
                return Err(git.failure(command, &out));
            }
            std::thread::sleep(backoff(attempt));
            attempt += 1;
        }
    }

    fn populate(&self, wt: &Worktree, commit: Oid, patterns: Option<&[String]>) -> Result<()> {
        let hex = commit.to_string();
        match patterns {
            Some(patterns) => {
                let mut input = patterns.join("\n");
                input.push('\n');
                let set: [&OsStr; 4] = [
                    "sparse-checkout".as_ref(),
                    "set".as_ref(),
                    "--no-cone".as_ref(),
                    "--stdin".as_ref(),
                ];
                wt.git(&self.git_env).run_os(&set, Some(input.as_bytes()))?;
                wt.git(&self.git_env)
                    .config("core.sparseCheckout=true")
                    .config("core.sparseCheckoutCone=false")
                    .config("checkout.workers=0")
                    .run(&["read-tree", "-m", "-u", &hex])?;
            }
            None => {
                wt.git(&self.git_env)
                    .config("core.sparseCheckout=false")
                    .config("checkout.workers=0")
                    .run(&["read-tree", "-m", "-u", &hex])?;
            }
        }
        Ok(())
    }

    /// Removes the worktree directory and its admin entry. Works even when the
    /// agent tampered with `.git` or locked the worktree.
    pub fn remove_worktree(&self, wt: &Worktree) -> Result<()> {
        let worktrees = self.common_dir.join("worktrees");
        let admin_ok = wt.admin_dir.parent() == Some(worktrees.as_path());
        let unsafe_path = |reason: &str| WorkspaceError::InvalidWorktreePath {
            path: wt.path.clone(),
            reason: reason.to_string(),
        };
        if !admin_ok {
            return Err(unsafe_path(&format!(
                "admin dir {} is not in {}",
                wt.admin_dir.display(),
                worktrees.display()
            )));
        }
        if wt.path.parent().is_none()
            || self
                .workdir
                .as_deref()
                .is_some_and(|w| w.starts_with(&wt.path))
            || self.common_dir.starts_with(&wt.path)
            || wt.path.starts_with(&self.common_dir)
        {
            return Err(unsafe_path("refusing to delete the repository itself"));
        }
        let (out, command) = self.git().run_unchecked(
            &[
                "worktree".as_ref(),
                "remove".as_ref(),
                "--force".as_ref(),
                "--force".as_ref(),
                wt.path.as_os_str(),
            ],
            None,
        )?;
        if !out.status.success() {
            tracing::debug!(%command, stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "git worktree remove failed; removing by hand");
        }
        remove_tree(&wt.path)?;
        remove_tree(&wt.admin_dir)?;
        Ok(())
    }

    /// Stages the whole worktree (in a copy of its index, so the agent's own
    /// index is left alone), writes it as a tree and diffs `base`'s tree
    /// against it.
    pub fn change_set(&self, wt: &Worktree, base: Oid) -> Result<ChangeSet> {
        let common = wt.common_dir().map(Path::to_path_buf);
        if common.as_deref().map(fs::canonicalize).and_then(|r| r.ok())
            != Some(self.common_dir.clone())
        {
            return Err(WorkspaceError::InvalidWorktreePath {
                path: wt.path.clone(),
                reason: format!(
                    "admin dir {} does not belong to {}",
                    wt.admin_dir.display(),
                    self.common_dir.display()
                ),
            });
        }
        let index = TempIndex::new(wt)?;
        let mut git = wt
            .git(&self.git_env)
            .env("GIT_INDEX_FILE", &index.path)
            .config(if wt.sparse {
                "core.sparseCheckout=true"
            } else {
                "core.sparseCheckout=false"
            })
            .config("sparse.expectFilesOutsideOfPatterns=false")
            .config("core.splitIndex=false");
        for kv in worktree_filter_overrides(&git)? {
            git = git.config(&kv);
        }
        clear_index_bits(&git, !wt.sparse)?;

        let (out, command) = git.run_unchecked(
            &[
                "add".as_ref(),
                "-A".as_ref(),
                "--sparse".as_ref(),
                "--ignore-errors".as_ref(),
            ],
            None,
        )?;
        let mut nested = Vec::new();
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut unknown = false;
            for line in stderr.lines() {
                if let Some(rest) = line.strip_prefix("error: '") {
                    if let Some(p) = rest.strip_suffix("/' does not have a commit checked out") {
                        nested.push(p.to_string());
                        continue;
                    }
                }
                if line.starts_with("error:") || line.starts_with("fatal:") {
                    unknown = true;
                }
            }
            if unknown || nested.is_empty() {
                return Err(git.failure(command, &out));
            }
        }
        let out = git.run(&["write-tree"])?;
        let tree = parse_oid(&out.stdout, &git, "write-tree")?;
        drop(index);

        let repo = self.open()?;
        let changes = diff_trees(&repo, base, tree)
            .map_err(self.git2_err(
                "diffing",
                format!("{base}..{tree} of {}", wt.path.display()),
            ))?
            .map_err(|path| WorkspaceError::NonUtf8Path {
                path,
                worktree: wt.path.clone(),
            })?;
        Ok(ChangeSet {
            base,
            tree,
            changes,
            uncommitted_nested_repos: nested,
        })
    }

    /// `base`'s tree plus only the given changes.
    pub fn build_tree(&self, base: Oid, keep: &[&Change]) -> Result<Oid> {
        let repo = self.open()?;
        let base_tree = repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(self.git2_err("reading tree of", base.to_string()))?;
        let mut index = git2::Index::new().map_err(self.git2_err("creating index", ""))?;
        index
            .read_tree(&base_tree)
            .map_err(self.git2_err("reading tree into index", base.to_string()))?;
        for change in keep {
            let remove = |index: &mut git2::Index, path: &str| {
                index
                    .remove_path(Path::new(path))
                    .map_err(self.git2_err("removing from index", path))
            };
            if let Some(old) = &change.old_path {
                remove(&mut index, old)?;
            }
            if change.kind == ChangeKind::Deleted {
                remove(&mut index, &change.path)?;
                continue;
            }
            let (Some(mode), Some(id)) = (change.new_mode, change.new_blob) else {
                return Err(WorkspaceError::InvalidChange {
                    path: change.path.clone(),
                    reason: format!("{:?} without new mode and object id", change.kind),
                });
            };
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode,
                uid: 0,
                gid: 0,
                file_size: 0,
                id,
                flags: 0,
                flags_extended: 0,
                path: change.path.as_bytes().to_vec(),
            };
            index
                .add(&entry)
                .map_err(self.git2_err("adding to index", change.path.as_str()))?;
        }
        index.write_tree_to(&repo).map_err(self.git2_err(
            "writing tree",
            format!("base {base} + {} changes", keep.len()),
        ))
    }

    /// Undoes `changes` on disk in the worktree: base content and mode are
    /// written back, added files deleted. Never follows a symlink out of the
    /// worktree.
    pub fn restore_in_worktree(&self, wt: &Worktree, base: Oid, changes: &[&Change]) -> Result<()> {
        let repo = self.open()?;
        let base_tree = repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(self.git2_err("reading tree of", base.to_string()))?;
        let root_ok = fs::symlink_metadata(&wt.path).is_ok_and(|m| m.is_dir());
        if !root_ok {
            return Err(WorkspaceError::UnsafePath {
                path: String::new(),
                worktree: wt.path.clone(),
                reason: "the worktree root is not a directory".into(),
            });
        }
        let fs_tree = SafeTree { root: &wt.path };
        // Pass 1: delete what the changes created.
        for change in changes {
            if matches!(change.kind, ChangeKind::Added | ChangeKind::Renamed) {
                fs_tree.remove(&change.path)?;
            }
        }
        // Pass 2: write back what the base had.
        for change in changes {
            let (path, gitlink_in_way) = match change.kind {
                ChangeKind::Added => continue,
                ChangeKind::Renamed => (
                    change
                        .old_path
                        .as_deref()
                        .ok_or_else(|| WorkspaceError::InvalidChange {
                            path: change.path.clone(),
                            reason: "rename without old path".into(),
                        })?,
                    false,
                ),
                ChangeKind::Deleted | ChangeKind::Modified | ChangeKind::TypeChanged => {
                    (change.path.as_str(), change.gitlink)
                }
            };
            let entry =
                base_tree
                    .get_path(Path::new(path))
                    .map_err(|e| WorkspaceError::InvalidChange {
                        path: path.to_string(),
                        reason: format!("not in base {base}: {e}"),
                    })?;
            let mode = entry.filemode() as u32;
            let content = match mode {
                MODE_GITLINK => None,
                MODE_TREE => {
                    return Err(WorkspaceError::InvalidChange {
                        path: path.to_string(),
                        reason: "is a directory in the base".into(),
                    })
                }
                _ => Some(
                    repo.find_blob(entry.id())
                        .map_err(self.git2_err("reading blob", path))?
                        .content()
                        .to_vec(),
                ),
            };
            fs_tree.write(path, mode, content.as_deref(), gitlink_in_way)?;
        }
        Ok(())
    }

    /// Commits `tree` (parent `base`) and points `refs/heads/<branch>` at it,
    /// or `<branch>-2`, `-3`, ... when the branch holds someone else's work
    /// (tip neither `base` nor accepted by `is_ours`) or is checked out
    /// somewhere. Returns the branch used and the commit.
    pub fn commit_to_branch(
        &self,
        branch: &str,
        base: Oid,
        tree: Oid,
        message: &str,
        is_ours: &dyn Fn(&git2::Commit) -> bool,
    ) -> Result<(String, Oid)> {
        const MAX_CANDIDATES: usize = 100;
        let valid = |name: &str| {
            !name.is_empty()
                && !name.starts_with('-')
                && git2::Reference::is_valid_name(&format!("refs/heads/{name}"))
        };
        if !valid(branch) {
            return Err(WorkspaceError::InvalidBranch {
                branch: branch.to_string(),
            });
        }
        let repo = self.open()?;
        let sig = signature().map_err(self.git2_err("creating signature", ""))?;
        let parent = repo
            .find_commit(base)
            .map_err(self.git2_err("looking up base commit", base.to_string()))?;
        let tree_obj = repo
            .find_tree(tree)
            .map_err(self.git2_err("looking up tree", tree.to_string()))?;
        let commit = repo
            .commit(None, &sig, &sig, message, &tree_obj, &[&parent])
            .map_err(self.git2_err("creating commit", format!("tree {tree} on {base}")))?;
        let checked_out = self.checked_out_branches();

        for n in 1..=MAX_CANDIDATES {
            let name = if n == 1 {
                branch.to_string()
            } else {
                format!("{branch}-{n}")
            };
            let refname = format!("refs/heads/{name}");
            if !valid(&name) {
                return Err(WorkspaceError::InvalidBranch { branch: name });
            }
            if checked_out.contains(&refname) {
                continue;
            }
            let log = format!("git-agent: commit {commit}");
            let mut tries = 0;
            let used = loop {
                tries += 1;
                match repo.find_reference(&refname) {
                    Err(e) if e.code() == ErrorCode::NotFound => {
                        match repo.reference(&refname, commit, false, &log) {
                            Ok(_) => break true,
                            Err(e) if retryable_ref_error(&e) && tries < 20 => {}
                            Err(e) => return Err(self.git2_err("creating branch", refname)(e)),
                        }
                    }
                    Err(e) => return Err(self.git2_err("reading branch", refname)(e)),
                    Ok(reference) => {
                        let Some(tip) = reference.target() else {
                            break false; // symbolic ref: not ours to move
                        };
                        let ours = tip == base
                            || tip == commit
                            || repo.find_commit(tip).is_ok_and(|c| is_ours(&c));
                        if !ours {
                            break false;
                        }
                        match repo.reference_matching(&refname, commit, true, tip, &log) {
                            Ok(_) => break true,
                            Err(e) if retryable_ref_error(&e) && tries < 20 => {}
                            Err(e) => return Err(self.git2_err("moving branch", refname)(e)),
                        }
                    }
                }
                std::thread::sleep(backoff(tries));
            };
            if used {
                return Ok((name, commit));
            }
        }
        Err(WorkspaceError::NoFreeBranch {
            branch: branch.to_string(),
            repo: self.common_dir.clone(),
            tried: MAX_CANDIDATES,
        })
    }

    /// Refs that some worktree (the main one included, unless bare) has
    /// checked out; moving them would change that checkout's state.
    fn checked_out_branches(&self) -> BTreeSet<String> {
        let mut heads = Vec::new();
        let bare = self.workdir.is_none() && self.git_dir == self.common_dir;
        if !bare {
            heads.push(self.common_dir.join("HEAD"));
        }
        if let Ok(entries) = fs::read_dir(self.common_dir.join("worktrees")) {
            heads.extend(entries.flatten().map(|e| e.path().join("HEAD")));
        }
        heads
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .filter_map(|s| s.trim().strip_prefix("ref:").map(|r| r.trim().to_string()))
            .collect()
    }

    /// A commit of `tree` on `base` that no ref points at: a fixed point to
    /// diff against and restore to (e.g. the worktree before the checks ran).
    /// Unreferenced, it is collected by git's next gc.
    /// Copies the objects an agent's git wrote into `dir` (its own object
    /// store) into the repository's, each re-hashed first: an object whose
    /// content does not match its name, or that cannot be read, stays out
    /// and is returned by name. Loose objects and packs alike.
    pub fn import_objects(&self, dir: &Path) -> Result<ImportedObjects> {
        let mut report = ImportedObjects::default();
        if !dir.is_dir() {
            return Ok(report);
        }
        let odb_err =
            |what: &'static str| self.git2_err(what, format!("objects in {}", dir.display()));
        let source = git2::Odb::new().map_err(odb_err("open"))?;
        source
            .add_disk_alternate(&dir.to_string_lossy())
            .map_err(odb_err("open"))?;
        let mut ids = Vec::new();
        source
            .foreach(|oid| {
                ids.push(*oid);
                true
            })
            .map_err(odb_err("list"))?;
        let repo = self.open()?;
        let target = repo.odb().map_err(odb_err("open the repository's"))?;
        for oid in ids {
            let verified = source.read(oid).ok().and_then(|obj| {
                let same = Oid::hash_object(obj.kind(), obj.data()).ok() == Some(oid);
                same.then(|| (obj.kind(), obj.data().to_vec()))
            });
            match verified {
                Some((kind, data)) => {
                    target.write(kind, &data).map_err(odb_err("import"))?;
                    report.imported += 1;
                }
                None => report.corrupt.push(oid.to_string()),
            }
        }
        Ok(report)
    }

    /// `commit`'s change replayed onto `onto` (an in-memory cherry-pick),
    /// as a snapshot commit on `onto`; `None` when it does not apply
    /// cleanly. A commit whose parent is `onto` is returned as it is.
    pub fn replay_onto(&self, commit: Oid, onto: Oid) -> Result<Option<Oid>> {
        let repo = self.open()?;
        let picked = repo
            .find_commit(commit)
            .map_err(self.git2_err("read", "the commit to replay"))?;
        if picked.parent_ids().next() == Some(onto) {
            return Ok(Some(commit));
        }
        let target = repo
            .find_commit(onto)
            .map_err(self.git2_err("read", "the base commit"))?;
        let mut index = repo
            .cherrypick_commit(&picked, &target, 0, None)
            .map_err(self.git2_err("replay", format!("{commit} onto {onto}")))?;
        if index.has_conflicts() {
            return Ok(None);
        }
        let tree = index
            .write_tree_to(&repo)
            .map_err(self.git2_err("write", "the replayed tree"))?;
        self.snapshot_commit(onto, tree).map(Some)
    }

    pub fn snapshot_commit(&self, base: Oid, tree: Oid) -> Result<Oid> {
        let repo = self.open()?;
        let sig = signature().map_err(self.git2_err("make", "a signature"))?;
        let parent = repo
            .find_commit(base)
            .map_err(self.git2_err("read", "the base commit"))?;
        let tree = repo
            .find_tree(tree)
            .map_err(self.git2_err("read", "the worktree's tree"))?;
        repo.commit(
            None,
            &sig,
            &sig,
            "git-agent: worktree snapshot",
            &tree,
            &[&parent],
        )
        .map_err(self.git2_err("write", "a snapshot commit"))
    }

    /// Attaches `text` to `commit` under [`NOTES_REF`], replacing any note.
    pub fn add_note(&self, commit: Oid, text: &str) -> Result<()> {
        let repo = self.open()?;
        let sig = signature().map_err(self.git2_err("creating signature", ""))?;
        // Neither libgit2 nor git compare-and-swap the notes ref: concurrent
        // writers lose notes. Serialize them (threads, then processes).
        let _thread = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        let _process = LockFile::acquire(&self.common_dir.join("agent/notes.lock"))?;
        let mut attempt = 0;
        loop {
            match repo.note(&sig, &sig, Some(NOTES_REF), commit, text, true) {
                Ok(_) => return Ok(()),
                Err(e) if attempt + 1 < 30 && retryable_ref_error(&e) => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(self
                        .git2_err("writing note", format!("{NOTES_REF} on {commit}"))(
                        e
                    ))
                }
            }
        }
    }

    /// Removes the worktree at `path` (a kept run's), found through the
    /// admin entry that points at it; a directory without an entry is
    /// removed as it is. Used by `git agent clean`.
    pub fn remove_worktree_path(&self, path: &Path) -> Result<()> {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let path = canonical.as_path();
        match self.find_worktree(path, false) {
            Some(wt) => self.remove_worktree(&wt),
            None => {
                if self.workdir.as_deref().is_some_and(|w| w.starts_with(path))
                    || self.common_dir.starts_with(path)
                {
                    return Err(WorkspaceError::InvalidWorktreePath {
                        path: path.to_path_buf(),
                        reason: "refusing to delete the repository itself".into(),
                    });
                }
                remove_tree(path)
            }
        }
    }

    /// The worktree checked out at `path`, found through the admin entry
    /// that points at it (never through the worktree's own `.git` file,
    /// which the agent may have rewritten).
    pub fn find_worktree(&self, path: &Path, sparse: bool) -> Option<Worktree> {
        let path = fs::canonicalize(path).ok()?;
        let wanted = path.join(".git");
        let admin_dir = fs::read_dir(self.common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|admin| {
                fs::read_to_string(admin.join("gitdir"))
                    .is_ok_and(|g| Path::new(g.trim_end()) == wanted.as_path())
            })?;
        Some(Worktree {
            path,
            admin_dir,
            sparse,
        })
    }

    /// `git worktree prune`: drops admin entries whose directory is gone.
    pub fn prune_worktrees(&self) -> Result<()> {
        self.git().run(&["worktree", "prune"]).map(|_| ())
    }

    /// Snapshot of what an agent could plant in the shared git dir to run
    /// code later in the user's checkout: `config`, `config.worktree`,
    /// `hooks/` and `info/attributes`.
    pub fn guard(&self) -> Result<RepoGuard> {
        let guarded = guarded_paths(&self.common_dir);
        let mut snapshot = BTreeMap::new();
        for (label, path) in &guarded {
            snapshot.insert(label.clone(), snapshot_tree(path)?);
        }
        Ok(RepoGuard {
            common_dir: self.common_dir.clone(),
            config_entries: config_entries(&self.common_dir.join("config")),
            snapshot,
        })
    }
}

fn signature() -> std::result::Result<git2::Signature<'static>, git2::Error> {
    git2::Signature::now(SIGNATURE_NAME, SIGNATURE_EMAIL)
}

fn retryable_ref_error(e: &git2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Locked | ErrorCode::Modified | ErrorCode::Exists
    ) || e.message().contains("lock")
}

/// Non-cone sparse patterns: anchored at the root; gitignore syntax already
/// gives `*` (not crossing `/`) and `**` (crossing) the scope-glob meaning.
fn sparse_patterns(patterns: &[String]) -> Result<Vec<String>> {
    patterns
        .iter()
        .map(|p| {
            let bad = |reason| WorkspaceError::InvalidPattern {
                pattern: p.clone(),
                reason,
            };
            if p.trim().is_empty() {
                return Err(bad("empty"));
            }
            if p.contains(['\n', '\r', '\0']) {
                return Err(bad("contains a line break or NUL"));
            }
            if p.starts_with('!') {
                return Err(bad("negation is not supported"));
            }
            if p.split('/').any(|c| c == "..") {
                return Err(bad("contains `..`"));
            }
            // A trailing space is significant in globs but stripped by
            // gitignore syntax unless escaped.
            let mut anchored = format!("/{}", p.trim_start_matches('/'));
            if anchored.ends_with(' ') {
                let trimmed = anchored.trim_end_matches(' ').len();
                let spaces = anchored.len() - trimmed;
                anchored.truncate(trimmed);
                anchored.push_str(&"\\ ".repeat(spaces));
            }
            Ok(anchored)
        })
        .collect()
}

fn read_admin_dir(path: &Path) -> Result<PathBuf> {
    let dotgit = path.join(".git");
    let text = fs::read_to_string(&dotgit).map_err(io_err("reading", &dotgit))?;
    let target = text
        .trim_end()
        .strip_prefix("gitdir:")
        .map(str::trim)
        .ok_or_else(|| WorkspaceError::InvalidWorktreePath {
            path: path.to_path_buf(),
            reason: format!("{} has no gitdir: line", dotgit.display()),
        })?;
    let target = path.join(target);
    fs::canonicalize(&target).map_err(io_err("resolving", &target))
}

/// Removes a directory tree without following symlinks; tolerates absence
/// and directories the agent made unwritable.
fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspecting", path)(e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(io_err("removing", path));
    }
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    make_writable(path);
    fs::remove_dir_all(path).map_err(io_err("removing", path))
}

fn make_writable(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

/// Private copy of a worktree's index, removed on drop.
struct TempIndex {
    path: PathBuf,
}

impl TempIndex {
    fn new(wt: &Worktree) -> Result<TempIndex> {
        let source = wt.admin_dir.join("index");
        let path = wt.admin_dir.join(format!(
            "git-agent-index.{}.{}",
            std::process::id(),
            unique()
        ));
        match fs::copy(&source, &path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if wt.sparse {
                    return Err(WorkspaceError::MissingIndex {
                        worktree: wt.path.clone(),
                        index: source,
                    });
                }
                // Full worktree: start from an empty index; `add -A` then
                // stages exactly what is on disk.
            }
            Err(e) => return Err(io_err("copying index", &source)(e)),
        }
        Ok(TempIndex { path })
    }
}

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let mut lock = self.path.clone().into_os_string();
        lock.push(".lock");
        let _ = fs::remove_file(lock);
    }
}

/// `-c` overrides that switch off filter drivers defined in the worktree's
/// own `config.worktree` (written by the agent, never by us): `git add` would
/// otherwise run their clean commands in our process.
fn worktree_filter_overrides(git: &Git) -> Result<Vec<String>> {
    let (out, command) = git.run_unchecked(
        &[
            "config".as_ref(),
            "--show-scope".as_ref(),
            "--name-only".as_ref(),
            "--get-regexp".as_ref(),
            r"^filter\.".as_ref(),
        ],
        None,
    )?;
    match out.status.code() {
        Some(0) => {}
        Some(1) => return Ok(Vec::new()), // none defined
        _ => return Err(git.failure(command, &out)),
    }
    let mut drivers = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((scope, key)) = line.split_once('\t') else {
            continue;
        };
        if scope != "worktree" {
            continue;
        }
        if let Some(driver) = key
            .strip_prefix("filter.")
            .and_then(|k| k.rsplit_once('.'))
            .map(|(d, _)| d.to_string())
        {
            drivers.insert(driver);
        }
    }
    Ok(drivers
        .iter()
        .flat_map(|d| {
            [
                format!("filter.{d}.clean="),
                format!("filter.{d}.smudge="),
                format!("filter.{d}.process="),
                format!("filter.{d}.required=false"),
            ]
        })
        .collect())
}

/// Clears assume-unchanged bits (which would hide edits from `add`) and, for
/// a full worktree, skip-worktree bits (which would keep index content that
/// is not on disk).
fn clear_index_bits(git: &Git, clear_skip_worktree: bool) -> Result<()> {
    let out = git.run(&["ls-files", "-v", "-z"])?;
    let mut assumed = Vec::new();
    let mut skipped = Vec::new();
    for record in out.stdout.split(|b| *b == 0).filter(|r| r.len() > 2) {
        let (tag, path) = (record[0], &record[2..]);
        if tag.is_ascii_lowercase() {
            assumed.extend_from_slice(path);
            assumed.push(0);
        }
        if tag.eq_ignore_ascii_case(&b'S') {
            skipped.extend_from_slice(path);
            skipped.push(0);
        }
    }
    let update = |flag: &str, paths: &[u8]| -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let args: [&OsStr; 4] = [
            "update-index".as_ref(),
            "-z".as_ref(),
            flag.as_ref(),
            "--stdin".as_ref(),
        ];
        git.run_os(&args, Some(paths)).map(drop)
    };
    update("--no-assume-unchanged", &assumed)?;
    if clear_skip_worktree {
        update("--no-skip-worktree", &skipped)?;
    }
    Ok(())
}

/// Tree-to-tree diff with rename and type-change detection. The inner error
/// is a non-UTF-8 path.
fn diff_trees(
    repo: &Repository,
    base: Oid,
    tree: Oid,
) -> std::result::Result<std::result::Result<Vec<Change>, String>, git2::Error> {
    let old = repo.find_commit(base)?.tree()?;
    let new = repo.find_tree(tree)?;
    let mut opts = DiffOptions::new();
    opts.include_typechange(true);
    let mut diff = repo.diff_tree_to_tree(Some(&old), Some(&new), Some(&mut opts))?;
    let mut find = DiffFindOptions::new();
    find.renames(true).rename_limit(1000); // git's diff.renameLimit default
    diff.find_similar(Some(&mut find))?;

    let mut changes = Vec::with_capacity(diff.deltas().len());
    for (idx, delta) in diff.deltas().enumerate() {
        let kind = match delta.status() {
            Delta::Added | Delta::Copied | Delta::Untracked => ChangeKind::Added,
            Delta::Deleted => ChangeKind::Deleted,
            Delta::Renamed => ChangeKind::Renamed,
            Delta::Typechange => ChangeKind::TypeChanged,
            Delta::Modified
            | Delta::Ignored
            | Delta::Unmodified
            | Delta::Conflicted
            | Delta::Unreadable => ChangeKind::Modified,
        };
        let (old_f, new_f) = (delta.old_file(), delta.new_file());
        let utf8 = |f: &git2::DiffFile| -> std::result::Result<String, String> {
            let bytes = f.path_bytes().unwrap_or_default();
            std::str::from_utf8(bytes)
                .map(str::to_string)
                .map_err(|_| String::from_utf8_lossy(bytes).into_owned())
        };
        let (path, old_path) = match kind {
            ChangeKind::Deleted => (utf8(&old_f), None),
            ChangeKind::Renamed => (utf8(&new_f), Some(utf8(&old_f))),
            _ => (utf8(&new_f), None),
        };
        let path = match path {
            Ok(p) => p,
            Err(lossy) => return Ok(Err(lossy)),
        };
        let old_path = match old_path.transpose() {
            Ok(p) => p,
            Err(lossy) => return Ok(Err(lossy)),
        };
        let mode = |f: &git2::DiffFile| u32::from(f.mode());
        let old_mode = (kind != ChangeKind::Added).then(|| mode(&old_f));
        let new_mode = (kind != ChangeKind::Deleted).then(|| mode(&new_f));
        let gitlink = old_mode == Some(MODE_GITLINK) || new_mode == Some(MODE_GITLINK);
        let (mut lines_added, mut lines_removed, mut binary) = (0, 0, false);
        if !gitlink {
            if let Some(patch) = git2::Patch::from_diff(&diff, idx)? {
                binary = patch.delta().flags().is_binary();
                let (_, added, removed) = patch.line_stats()?;
                lines_added = added;
                lines_removed = removed;
            }
        }
        let new_blob = new_mode.map(|_| new_f.id());
        let symlink_target = match (new_mode, new_blob) {
            (Some(MODE_LINK), Some(id)) => {
                Some(String::from_utf8_lossy(repo.find_blob(id)?.content()).into_owned())
            }
            _ => None,
        };
        changes.push(Change {
            path,
            old_path,
            kind,
            old_mode,
            new_mode,
            new_blob,
            lines_added,
            lines_removed,
            binary,
            symlink_target,
            gitlink,
        });
    }
    Ok(Ok(changes))
}

// ---------------------------------------------------------------------------
// Writing inside a worktree without escaping it
// ---------------------------------------------------------------------------

struct SafeTree<'a> {
    root: &'a Path,
}

impl SafeTree<'_> {
    fn unsafe_path(&self, path: &str, reason: impl Into<String>) -> WorkspaceError {
        WorkspaceError::UnsafePath {
            path: path.to_string(),
            worktree: self.root.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Splits a repository path into components, rejecting anything that is
    /// not a plain relative path.
    fn components<'p>(&self, path: &'p str) -> Result<Vec<&'p str>> {
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts {
            if part.is_empty() || *part == "." || *part == ".." {
                return Err(self.unsafe_path(path, "not a normalized relative path"));
            }
            if part.eq_ignore_ascii_case(".git") {
                return Err(self.unsafe_path(path, "inside a .git directory"));
            }
        }
        Ok(parts)
    }

    /// Walks the parent directories of `path`. Returns `None` when one is
    /// missing (and `create` is false); fails when one is not a real
    /// directory (a symlink could lead out of the worktree).
    fn parent_dir(&self, path: &str, create: bool) -> Result<Option<PathBuf>> {
        let parts = self.components(path)?;
        let mut dir = self.root.to_path_buf();
        for part in &parts[..parts.len() - 1] {
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.unsafe_path(
                        path,
                        format!(
                            "{} is not a directory (symlink or file in the way)",
                            dir.display()
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    fs::create_dir(&dir).map_err(io_err("creating directory", &dir))?;
                }
                Err(e) => return Err(io_err("inspecting", &dir)(e)),
            }
        }
        Ok(Some(dir))
    }

    fn remove(&self, path: &str) -> Result<()> {
        let Some(dir) = self.parent_dir(path, false)? else {
            return Ok(());
        };
        let parts = self.components(path)?;
        let target = dir.join(parts[parts.len() - 1]);
        remove_tree(&target)?;
        // Drop directories the change left empty (never the root).
        let mut dir = dir;
        while dir != self.root && fs::remove_dir(&dir).is_ok() {
            if !dir.pop() {
                break;
            }
        }
        Ok(())
    }

    /// Writes base content at `path`. `gitlink_in_way`: a nested repository
    /// there belongs to the change being undone and may be deleted.
    fn write(
        &self,
        path: &str,
        mode: u32,
        content: Option<&[u8]>,
        gitlink_in_way: bool,
    ) -> Result<()> {
        let dir = self
            .parent_dir(path, true)?
            .ok_or_else(|| self.unsafe_path(path, "parent missing"))?;
        let parts = self.components(path)?;
        let target = dir.join(parts[parts.len() - 1]);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                if gitlink_in_way {
                    remove_tree(&target)?;
                } else if fs::remove_dir(&target).is_err() {
                    return Err(self.unsafe_path(
                        path,
                        "a non-empty directory is in the way (undo the changes inside it too)",
                    ));
                }
            }
            Ok(_) => fs::remove_file(&target).map_err(io_err("removing", &target))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("inspecting", &target)(e)),
        }
        match (mode, content) {
            (MODE_LINK, Some(link)) => std::os::unix::fs::symlink(OsStr::from_bytes(link), &target)
                .map_err(io_err("creating symlink", &target)),
            (MODE_GITLINK, _) | (_, None) => {
                fs::create_dir(&target).map_err(io_err("creating directory", &target))
            }
            (_, Some(bytes)) => {
                let perm = if mode == MODE_EXEC { 0o755 } else { 0o644 };
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(perm)
                    .open(&target)
                    .map_err(io_err("creating", &target))?;
                f.write_all(bytes).map_err(io_err("writing", &target))?;
                f.set_permissions(fs::Permissions::from_mode(perm))
                    .map_err(io_err("setting mode of", &target))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Guard
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum FsEntry {
    File { contents: Vec<u8>, mode: u32 },
    Symlink(PathBuf),
    Dir { mode: u32 },
}

type FsSnapshot = BTreeMap<PathBuf, FsEntry>;

/// Snapshot of files in the shared git dir an agent could use to run code in
/// the user's checkout later. See [`Repo::guard`].
#[derive(Debug, Clone)]
pub struct RepoGuard {
    common_dir: PathBuf,
    config_entries: Option<Vec<(String, Option<String>)>>,
    snapshot: BTreeMap<String, FsSnapshot>,
}

fn guarded_paths(common: &Path) -> Vec<(String, PathBuf)> {
    ["config", "config.worktree", "hooks", "info/attributes"]
        .iter()
        .map(|l| (l.to_string(), common.join(l)))
        .collect()
}

/// Entries keyed by path relative to `root` ("" for `root` itself); empty
/// when `root` does not exist. Symlinks are recorded, never followed.
fn snapshot_tree(root: &Path) -> Result<FsSnapshot> {
    fn walk(root: &Path, rel: &Path, out: &mut FsSnapshot) -> Result<()> {
        let path = join_rel(root, rel);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("inspecting", &path)(e)),
        };
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
            out.insert(rel.to_path_buf(), FsEntry::Symlink(target));
        } else if meta.is_dir() {
            out.insert(rel.to_path_buf(), FsEntry::Dir { mode });
            let mut names: Vec<OsString> = fs::read_dir(&path)
                .map_err(io_err("reading directory", &path))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .map_err(io_err("reading directory", &path))?;
            names.sort();
            for name in names {
                walk(root, &rel.join(name), out)?;
            }
        } else {
            let contents = fs::read(&path).map_err(io_err("reading", &path))?;
            out.insert(rel.to_path_buf(), FsEntry::File { contents, mode });
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

/// Parsed `(name, value)` pairs of a config file; `None` if unparsable.
fn config_entries(path: &Path) -> Option<Vec<(String, Option<String>)>> {
    if !path.exists() {
        return Some(Vec::new());
    }
    let config = git2::Config::open(path).ok()?;
    let mut entries = Vec::new();
    let mut iter = config.entries(None).ok()?;
    while let Some(entry) = iter.next() {
        let entry = entry.ok()?;
        entries.push((
            String::from_utf8_lossy(entry.name_bytes()).to_ascii_lowercase(),
            entry.value().ok().map(str::to_string),
        ));
    }
    entries.sort();
    Some(entries)
}

const WORKTREE_CONFIG_KEY: &str = "extensions.worktreeconfig";

impl RepoGuard {
    /// Compares the guarded files with the snapshot, puts the snapshot back
    /// and returns one line per difference (empty: nothing changed).
    ///
    /// `extensions.worktreeConfig = true` added to `config` is not reported
    /// and is kept: sparse worktree creation sets it.
    pub fn check_and_restore(&self) -> Result<Vec<String>> {
        let mut report = Vec::new();
        for (label, root) in guarded_paths(&self.common_dir) {
            let Some(before) = self.snapshot.get(&label) else {
                continue;
            };
            let now = snapshot_tree(&root)?;
            if &now == before {
                continue;
            }
            let keep_extension = label == "config" && self.added_worktree_config(&root);
            if label == "config" {
                let described = self.describe_config_change(&root);
                if keep_extension && described.is_empty() {
                    // Only our extension was added (possibly reformatted).
                    continue;
                }
                if described.is_empty() {
                    report.push("config: modified".to_string());
                } else {
                    report.extend(described);
                }
            } else {
                report.extend(describe_tree_change(&label, before, &now));
            }
            restore_tree(&root, before, &now)?;
            if keep_extension {
                git2::Config::open(&root)
                    .and_then(|mut c| c.set_bool("extensions.worktreeConfig", true))
                    .map_err(|source| WorkspaceError::Git2 {
                        action: "re-enabling extensions.worktreeConfig",
                        context: root.display().to_string(),
                        repo: self.common_dir.clone(),
                        source,
                    })?;
            }
        }
        Ok(report)
    }

    fn added_worktree_config(&self, config: &Path) -> bool {
        let has = |entries: &[(String, Option<String>)]| {
            entries
                .iter()
                .any(|(k, v)| k == WORKTREE_CONFIG_KEY && v.as_deref() == Some("true"))
        };
        match (&self.config_entries, config_entries(config)) {
            (Some(before), Some(now)) => !has(before) && has(&now),
            _ => false,
        }
    }

    /// Changed keys (names only: values may hold credentials), ignoring an
    /// added `extensions.worktreeConfig`.
    fn describe_config_change(&self, config: &Path) -> Vec<String> {
        let (Some(before), Some(now)) = (&self.config_entries, config_entries(config)) else {
            return Vec::new();
        };
        let had_ext = before.iter().any(|(k, _)| k == WORKTREE_CONFIG_KEY);
        let now: Vec<_> = now
            .into_iter()
            .filter(|(k, _)| had_ext || k != WORKTREE_CONFIG_KEY)
            .collect();
        let group = |entries: &[(String, Option<String>)]| {
            let mut map: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
            for (k, v) in entries {
                map.entry(k.clone()).or_default().push(v.clone());
            }
            map
        };
        let (b, n) = (group(before), group(&now));
        let mut out = Vec::new();
        for (k, v) in &n {
            match b.get(k) {
                None => out.push(format!("config: {k} added")),
                Some(old) if old != v => out.push(format!("config: {k} changed")),
                _ => {}
            }
        }
        for k in b.keys().filter(|k| !n.contains_key(*k)) {
            out.push(format!("config: {k} removed"));
        }
        out
    }
}

fn describe_tree_change(label: &str, before: &FsSnapshot, now: &FsSnapshot) -> Vec<String> {
    let name = |rel: &Path| {
        if rel.as_os_str().is_empty() {
            label.to_string()
        } else {
            format!("{label}/{}", rel.display())
        }
    };
    let mut out = Vec::new();
    for (rel, entry) in now {
        match before.get(rel) {
            None => out.push(format!("{}: added", name(rel))),
            Some(old) if old != entry => out.push(format!("{}: modified", name(rel))),
            _ => {}
        }
    }
    for rel in before.keys().filter(|r| !now.contains_key(*r)) {
        out.push(format!("{}: removed", name(rel)));
    }
    out
}

/// `root` itself for the empty relative path (`join` would add a slash).
fn join_rel(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Makes the tree at `root` equal `before` again.
fn restore_tree(root: &Path, before: &FsSnapshot, now: &FsSnapshot) -> Result<()> {
    // Remove what is new or of another kind, deepest first.
    for (rel, entry) in now.iter().rev() {
        let same_kind = match (before.get(rel), entry) {
            (Some(FsEntry::Dir { .. }), FsEntry::Dir { .. }) => true,
            (Some(FsEntry::File { .. }), FsEntry::File { .. }) => true,
            (Some(a), b) => a == b,
            (None, _) => false,
        };
        if !same_kind {
            remove_tree(&join_rel(root, rel))?;
        }
    }
    // Recreate or rewrite, parents first.
    for (rel, entry) in before {
        let path = join_rel(root, rel);
        if now.get(rel) == Some(entry) && path.symlink_metadata().is_ok() {
            continue;
        }
        match entry {
            FsEntry::Dir { mode } => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(io_err("creating directory", &path))?;
                }
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                    .map_err(io_err("setting mode of", &path))?;
            }
            FsEntry::Symlink(target) => {
                let _ = remove_tree(&path);
                std::os::unix::fs::symlink(target, &path)
                    .map_err(io_err("creating symlink", &path))?;
            }
            FsEntry::File { contents, mode } => {
                let tmp = path.with_file_name(format!(
                    ".{}.git-agent-restore.{}",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    unique()
                ));
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(*mode)
                    .open(&tmp)
                    .map_err(io_err("creating", &tmp))?;
                f.write_all(contents).map_err(io_err("writing", &tmp))?;
                f.set_permissions(fs::Permissions::from_mode(*mode))
                    .map_err(io_err("setting mode of", &tmp))?;
                drop(f);
                fs::rename(&tmp, &path).map_err(io_err("replacing", &path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const DATE: &str = "2024-01-01T00:00:00Z";
    const BLOB: u32 = 0o100644;

    fn hermetic(cmd: &mut Command) -> &mut Command {
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", DATE)
            .env("GIT_COMMITTER_DATE", DATE)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
    }

    /// Runs git as a user or agent would (no safety flags).
    fn git_in(dir: &Path, args: &[&str]) -> String {
        let out = hermetic(Command::new("git").current_dir(dir))
            .args([
                "-c",
                "user.name=Tester",
                "-c",
                "user.email=tester@example.com",
            ])
            .args(args)
            .output()
            .expect("git must be installed");
        assert!(
            out.status.success(),
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("git output is UTF-8")
    }

    fn write(path: &Path, content: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("create parent dir");
        }
        fs::write(path, content).expect("write file");
    }

    fn numbered(prefix: &str, n: usize) -> String {
        (1..=n).map(|i| format!("{prefix} line {i}\n")).collect()
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        wts: PathBuf,
        repo: Repo,
        base: Oid,
        user: UserState,
    }

    #[derive(Debug, PartialEq)]
    struct UserState {
        index: Vec<u8>,
        head: String,
        symbolic: String,
        status: String,
        staged: String,
    }

    fn user_state(root: &Path) -> UserState {
        // Read the index first: later commands must not rewrite it either.
        let index = fs::read(root.join(".git/index")).expect("user index exists");
        UserState {
            index,
            head: git_in(root, &["rev-parse", "HEAD"]),
            symbolic: git_in(root, &["symbolic-ref", "HEAD"]),
            status: git_in(root, &["status", "--porcelain", "-uall"]),
            staged: git_in(root, &["ls-files", "-s"]),
        }
    }

    /// A repository with a committed base and a dirty user checkout.
    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repo");
        let wts = tmp.path().join("worktrees");
        fs::create_dir_all(&root).expect("mkdir repo");
        fs::create_dir_all(&wts).expect("mkdir worktrees");
        git_in(&root, &["init", "-q", "-b", "main"]);
        write(&root.join("README.md"), "hello\n");
        write(&root.join("src/lib.rs"), &numbered("lib", 10));
        write(&root.join("src/util.rs"), "pub fn util() {}\n");
        write(&root.join("docs/guide.md"), "guide\n");
        write(&root.join("docs/sub/deep.md"), "deep\n");
        write(&root.join("long.txt"), &numbered("long", 30));
        write(&root.join("scripts/run.sh"), "#!/bin/sh\necho hi\n");
        fs::write(root.join("data.bin"), b"\x00\x01\x02binary\x00").expect("write binary");
        std::os::unix::fs::symlink("README.md", root.join("link-to-readme")).expect("symlink");
        git_in(&root, &["add", "-A"]);
        git_in(&root, &["commit", "-q", "-m", "base"]);
        // The user has work in progress: one unstaged edit, one staged file.
        write(&root.join("README.md"), "hello, edited by the user\n");
        write(&root.join("staged.txt"), "staged\n");
        git_in(&root, &["add", "staged.txt"]);
        let repo = Repo::discover(&root)
            .expect("discover")
            .with_git_env("GIT_CONFIG_GLOBAL", "/dev/null")
            .with_git_env("GIT_CONFIG_NOSYSTEM", "1");
        let base = repo.resolve_commit("HEAD").expect("resolve HEAD");
        let user = user_state(&root);
        Fixture {
            _tmp: tmp,
            root,
            wts,
            repo,
            base,
            user,
        }
    }

    #[test]
    fn replay_onto_moves_a_result_to_a_new_base_or_says_it_conflicts() {
        let f = fixture();
        let r = f.repo.open().expect("open");
        // A commit on `parent` with the top-level `file` set to `content`.
        let commit_with = |parent: Oid, file: &str, content: &str| -> Oid {
            let p = r.find_commit(parent).expect("parent");
            let blob = r.blob(content.as_bytes()).expect("blob");
            let mut tb = r
                .treebuilder(Some(&p.tree().expect("tree")))
                .expect("builder");
            tb.insert(file, blob, BLOB as i32).expect("insert");
            let tree = r.find_tree(tb.write().expect("write")).expect("tree");
            let sig = signature().expect("sig");
            r.commit(None, &sig, &sig, file, &tree, &[&p])
                .expect("commit")
        };
        let result = commit_with(f.base, "long.txt", "the agent's version\n");
        assert_eq!(f.repo.replay_onto(result, f.base).unwrap(), Some(result));

        let moved = commit_with(f.base, "README.md", "main moved on\n");
        let replayed = f.repo.replay_onto(result, moved).unwrap().expect("applies");
        let c = r.find_commit(replayed).unwrap();
        assert_eq!(c.parent_id(0).unwrap(), moved);
        let text = |name: &str| {
            let entry = c.tree().unwrap().get_name(name).unwrap().id();
            String::from_utf8(r.find_blob(entry).unwrap().content().to_vec()).unwrap()
        };
        assert_eq!(text("long.txt"), "the agent's version\n");
        assert_eq!(text("README.md"), "main moved on\n");

        let clash = commit_with(f.base, "long.txt", "someone else's version\n");
        assert_eq!(f.repo.replay_onto(result, clash).unwrap(), None);
        f.assert_user_untouched();
    }

    impl Fixture {
        fn assert_user_untouched(&self) {
            assert_eq!(
                user_state(&self.root),
                self.user,
                "the user's checkout changed"
            );
        }
        fn full(&self, name: &str) -> Worktree {
            self.repo
                .create_worktree(&self.wts.join(name), self.base, None)
                .expect("create full worktree")
        }
        fn sparse(&self, name: &str, patterns: &[&str]) -> Worktree {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            self.repo
                .create_worktree(&self.wts.join(name), self.base, Some(&patterns))
                .expect("create sparse worktree")
        }
    }

    fn files_on_disk(root: &Path) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for entry in fs::read_dir(dir).expect("read dir") {
                let entry = entry.expect("dir entry");
                let path = entry.path();
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                if rel == ".git" {
                    continue;
                }
                if entry.file_type().expect("file type").is_dir() {
                    walk(root, &path, out);
                } else {
                    out.insert(rel);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(root, root, &mut out);
        out
    }

    fn by_path<'a>(cs: &'a ChangeSet, path: &str) -> &'a Change {
        cs.changes
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no change for {path} in {:#?}", cs.changes))
    }

    fn paths(cs: &ChangeSet) -> Vec<(ChangeKind, String)> {
        cs.changes
            .iter()
            .map(|c| (c.kind, c.path.clone()))
            .collect()
    }

    #[test]
    fn discover_and_resolve_errors_name_their_subject() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = Repo::discover(tmp.path()).expect_err("not a repo");
        let msg = err.to_string();
        assert!(msg.contains("not a git repository"), "{msg}");
        assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");

        let fx = fixture();
        let err = fx
            .repo
            .resolve_commit("no-such-branch")
            .expect_err("unknown rev");
        assert!(err.to_string().contains("\"no-such-branch\""), "{err}");
        assert_eq!(
            fx.repo.workdir(),
            Some(fs::canonicalize(&fx.root).expect("canon").as_path())
        );
        assert!(fx.repo.common_dir().ends_with(".git"));
    }

    #[test]
    fn full_worktree_is_detached_at_base_and_removed_cleanly() {
        let fx = fixture();
        let wt = fx.full("full");
        assert!(!wt.sparse);
        assert_eq!(wt.head().expect("head"), fx.base);
        assert!(wt
            .admin_dir
            .starts_with(fx.repo.common_dir().join("worktrees")));
        assert!(!wt.git_file_tampered());
        assert!(
            wt.integrity_problems().is_empty(),
            "{:?}",
            wt.integrity_problems()
        );
        let files = files_on_disk(&wt.path);
        for f in [
            "README.md",
            "src/lib.rs",
            "docs/sub/deep.md",
            "data.bin",
            "link-to-readme",
        ] {
            assert!(files.contains(f), "{f} missing: {files:?}");
        }
        assert_eq!(
            fs::read_to_string(wt.path.join("README.md")).expect("read"),
            "hello\n"
        );
        let head = fs::read_to_string(wt.admin_dir.join("HEAD")).expect("HEAD");
        assert_eq!(
            head.trim(),
            fx.base.to_string(),
            "worktree must be detached"
        );
        // Clean from git's point of view, and its own git works.
        assert_eq!(git_in(&wt.path, &["status", "--porcelain"]), "");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        assert!(cs.is_empty(), "{:#?}", cs.changes);

        // Creating over an existing non-empty directory is refused.
        let err = fx
            .repo
            .create_worktree(&wt.path, fx.base, None)
            .expect_err("path in use");
        assert!(err.to_string().contains("not empty"), "{err}");
        // Inside the user's checkout is refused.
        let err = fx
            .repo
            .create_worktree(&fx.root.join("inside"), fx.base, None)
            .expect_err("inside repo");
        assert!(err.to_string().contains("outside"), "{err}");

        fx.repo.remove_worktree(&wt).expect("remove");
        assert!(!wt.path.exists());
        assert!(!wt.admin_dir.exists());
        let list = git_in(&fx.root, &["worktree", "list", "--porcelain"]);
        assert_eq!(list.matches("worktree ").count(), 1, "{list}");
        fx.assert_user_untouched();
    }

    #[test]
    fn sparse_worktree_materializes_only_matching_paths() {
        let fx = fixture();
        let wt = fx.sparse("sparse", &["src/**", "docs/*.md"]);
        assert!(wt.sparse);
        let files = files_on_disk(&wt.path);
        let expected: BTreeSet<String> = ["src/lib.rs", "src/util.rs", "docs/guide.md"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // `*` does not cross `/`: docs/sub/deep.md stays out.
        assert_eq!(files, expected);
        // The agent's git sees a clean, sparse worktree.
        assert_eq!(git_in(&wt.path, &["status", "--porcelain"]), "");
        assert_eq!(
            git_in(&wt.path, &["sparse-checkout", "list"]),
            "/src/**\n/docs/*.md\n"
        );
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        assert!(
            cs.is_empty(),
            "unmaterialized files are not deletions: {:#?}",
            cs.changes
        );
        // libgit2 still opens the repository (extensions.worktreeConfig is set).
        Repo::discover(&fx.root)
            .expect("rediscover")
            .open()
            .expect("open");
        fx.repo.remove_worktree(&wt).expect("remove");
        assert!(!wt.path.exists() && !wt.admin_dir.exists());
        fx.assert_user_untouched();
    }

    #[test]
    fn invalid_sparse_patterns_are_rejected() {
        let fx = fixture();
        for bad in ["", "!src", "a/../b", "x\ny"] {
            let err = fx
                .repo
                .create_worktree(&fx.wts.join("bad"), fx.base, Some(&[bad.to_string()]))
                .expect_err("invalid pattern");
            assert!(
                matches!(err, WorkspaceError::InvalidPattern { .. }),
                "{err}"
            );
        }
        assert!(!fx.wts.join("bad").exists());
    }

    /// Every kind of edit an agent makes, in a full worktree.
    fn make_agent_edits(wt: &Path) {
        // modify: +2 -1
        let lib = numbered("lib", 10).replace("lib line 5\n", "changed 5\nadded 5b\n");
        write(&wt.join("src/lib.rs"), &lib);
        write(&wt.join("src/new.rs"), "pub fn new() {}\n");
        fs::remove_file(wt.join("docs/guide.md")).expect("delete");
        // rename + small edit
        let mut long = numbered("long", 30);
        long.push_str("one more\n");
        write(&wt.join("moved/long2.txt"), &long);
        fs::remove_file(wt.join("long.txt")).expect("delete for rename");
        fs::set_permissions(wt.join("scripts/run.sh"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", wt.join("escape")).expect("symlink");
        // file -> symlink
        fs::remove_file(wt.join("src/util.rs")).expect("rm util");
        std::os::unix::fs::symlink("../README.md", wt.join("src/util.rs")).expect("symlink");
        fs::write(wt.join("data.bin"), b"\x00\x03new binary\x00").expect("binary");
        // nested repository with a commit -> gitlink
        let nested = wt.join("vendor/nested");
        fs::create_dir_all(&nested).expect("mkdir nested");
        git_in(&nested, &["init", "-q"]);
        write(&nested.join("n.txt"), "n\n");
        git_in(&nested, &["add", "n.txt"]);
        git_in(&nested, &["commit", "-q", "-m", "nested"]);
        // nested repository without a commit: cannot be staged
        let empty = wt.join("vendor/empty");
        fs::create_dir_all(&empty).expect("mkdir empty");
        git_in(&empty, &["init", "-q"]);
        write(&empty.join("e.txt"), "e\n");
    }

    #[test]
    fn change_set_reports_every_kind_of_edit() {
        let fx = fixture();
        let wt = fx.full("edits");
        make_agent_edits(&wt.path);
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");

        let lib = by_path(&cs, "src/lib.rs");
        assert_eq!(lib.kind, ChangeKind::Modified);
        assert_eq!((lib.lines_added, lib.lines_removed), (2, 1));
        assert!(!lib.binary);

        let new = by_path(&cs, "src/new.rs");
        assert_eq!(new.kind, ChangeKind::Added);
        assert_eq!((new.old_mode, new.new_mode), (None, Some(BLOB)));
        assert_eq!(new.lines_added, 1);
        assert!(new.new_blob.is_some());

        let del = by_path(&cs, "docs/guide.md");
        assert_eq!(del.kind, ChangeKind::Deleted);
        assert_eq!(
            (del.new_mode, del.new_blob, del.lines_removed),
            (None, None, 1)
        );

        let ren = by_path(&cs, "moved/long2.txt");
        assert_eq!(ren.kind, ChangeKind::Renamed);
        assert_eq!(ren.old_path.as_deref(), Some("long.txt"));
        assert_eq!((ren.lines_added, ren.lines_removed), (1, 0));

        let chmod = by_path(&cs, "scripts/run.sh");
        assert_eq!(chmod.kind, ChangeKind::Modified);
        assert_eq!(
            (chmod.old_mode, chmod.new_mode),
            (Some(BLOB), Some(MODE_EXEC))
        );
        assert_eq!((chmod.lines_added, chmod.lines_removed), (0, 0));
        assert!(chmod.is_executable());

        let esc = by_path(&cs, "escape");
        assert_eq!(esc.kind, ChangeKind::Added);
        assert_eq!(esc.new_mode, Some(MODE_LINK));
        assert_eq!(esc.symlink_target.as_deref(), Some("/etc/passwd"));

        let util = by_path(&cs, "src/util.rs");
        assert_eq!(util.kind, ChangeKind::TypeChanged);
        assert_eq!(
            (util.old_mode, util.new_mode),
            (Some(BLOB), Some(MODE_LINK))
        );
        assert_eq!(util.symlink_target.as_deref(), Some("../README.md"));

        let bin = by_path(&cs, "data.bin");
        assert!(bin.binary);
        assert_eq!((bin.lines_added, bin.lines_removed), (0, 0));

        let nested = by_path(&cs, "vendor/nested");
        assert_eq!(nested.kind, ChangeKind::Added);
        assert!(nested.gitlink);
        assert_eq!(nested.new_mode, Some(MODE_GITLINK));
        let nested_head = git_in(&wt.path.join("vendor/nested"), &["rev-parse", "HEAD"]);
        assert_eq!(
            nested.new_blob.map(|o| o.to_string()),
            Some(nested_head.trim().to_string())
        );

        assert_eq!(
            cs.uncommitted_nested_repos,
            vec!["vendor/empty".to_string()]
        );
        assert_eq!(cs.changes.len(), 9, "{:#?}", paths(&cs));
        assert_eq!(cs.base, fx.base);

        // The agent's own index is untouched: its `git status` still shows
        // the changes as unstaged.
        let status = git_in(&wt.path, &["status", "--porcelain"]);
        assert!(status.contains(" M src/lib.rs"), "{status}");
        // Idempotent.
        let again = fx.repo.change_set(&wt, fx.base).expect("again");
        assert_eq!(again, cs);

        // Serializes with hex object ids.
        let json = serde_json::to_value(&cs).expect("serialize");
        assert_eq!(json["base"], fx.base.to_string());
        assert_eq!(json["tree"], cs.tree.to_string());
        let first = &json["changes"][0];
        assert!(first["kind"].is_string());
        assert!(json["changes"]
            .as_array()
            .expect("array")
            .iter()
            .any(|c| c["kind"] == "type_changed"
                && c["new_blob"].as_str().is_some_and(|s| s.len() == 40)));
        fx.assert_user_untouched();
    }

    #[test]
    fn change_set_includes_agent_commits_and_later_edits() {
        let fx = fixture();
        let wt = fx.full("committer");
        write(&wt.path.join("src/lib.rs"), "committed by the agent\n");
        write(&wt.path.join("src/committed.rs"), "new\n");
        git_in(&wt.path, &["add", "-A"]);
        git_in(&wt.path, &["commit", "-q", "-m", "agent commit"]);
        // Then more edits, one staged, one not, and an index.lock left behind
        // by a killed git process.
        write(&wt.path.join("README.md"), "after commit\n");
        write(&wt.path.join("later.txt"), "later\n");
        git_in(&wt.path, &["add", "later.txt"]);
        fs::remove_file(wt.path.join("src/committed.rs")).expect("rm");
        fs::write(wt.admin_dir.join("index.lock"), b"").expect("stale lock");
        assert_ne!(wt.head().expect("head"), fx.base);

        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let mut got = paths(&cs);
        got.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            got,
            vec![
                (ChangeKind::Modified, "README.md".to_string()),
                (ChangeKind::Added, "later.txt".to_string()),
                (ChangeKind::Modified, "src/lib.rs".to_string()),
            ]
        );
        fx.assert_user_untouched();
    }

    #[test]
    fn change_set_clears_assume_unchanged_tricks() {
        let fx = fixture();
        let wt = fx.full("tricks");
        git_in(
            &wt.path,
            &["update-index", "--assume-unchanged", "src/lib.rs"],
        );
        git_in(
            &wt.path,
            &["update-index", "--skip-worktree", "src/util.rs"],
        );
        write(&wt.path.join("src/lib.rs"), "hidden edit\n");
        fs::remove_file(wt.path.join("src/util.rs")).expect("rm");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        assert_eq!(by_path(&cs, "src/lib.rs").kind, ChangeKind::Modified);
        assert_eq!(by_path(&cs, "src/util.rs").kind, ChangeKind::Deleted);
    }

    #[test]
    fn sparse_change_set_counts_files_created_outside_patterns() {
        let fx = fixture();
        let wt = fx.sparse("sparse-edits", &["src/**"]);
        assert!(!wt.path.join("README.md").exists());
        write(&wt.path.join("src/lib.rs"), "inside edit\n");
        fs::remove_file(wt.path.join("src/util.rs")).expect("rm inside");
        // Created outside the patterns: a new file and a tracked path that
        // was not materialized.
        write(&wt.path.join("docs/new.md"), "outside\n");
        write(&wt.path.join("README.md"), "rewritten outside\n");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let mut got = paths(&cs);
        got.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            got,
            vec![
                (ChangeKind::Modified, "README.md".to_string()),
                (ChangeKind::Added, "docs/new.md".to_string()),
                (ChangeKind::Modified, "src/lib.rs".to_string()),
                (ChangeKind::Deleted, "src/util.rs".to_string()),
            ]
        );
        // The tree still holds the unmaterialized files.
        let repo = fx.repo.open().expect("open");
        let tree = repo.find_tree(cs.tree).expect("tree");
        assert!(tree.get_path(Path::new("docs/sub/deep.md")).is_ok());
        assert!(tree.get_path(Path::new("long.txt")).is_ok());
        fx.repo.remove_worktree(&wt).expect("remove");
        fx.assert_user_untouched();
    }

    #[test]
    fn change_set_ignores_filter_drivers_planted_in_worktree_config() {
        let fx = fixture();
        let wt = fx.sparse("filtered", &["src/**"]);
        let marker = fx.wts.join("PWNED");
        let script = fx.wts.join("evil.sh");
        write(
            &script,
            &format!("#!/bin/sh\ntouch {}\nexec cat\n", marker.display()),
        );
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
        let config = format!(
            "[filter \"evil\"]\n\tclean = {}\n\trequired = true\n",
            script.display()
        );
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(wt.admin_dir.join("config.worktree"))
            .expect("config.worktree exists in a sparse worktree");
        f.write_all(config.as_bytes()).expect("plant filter");
        write(&wt.path.join(".gitattributes"), "* filter=evil\n");
        write(&wt.path.join("src/lib.rs"), "edit\n");
        // Sanity: the agent's own git would run it.
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        assert!(!marker.exists(), "the planted clean filter ran");
        assert_eq!(by_path(&cs, "src/lib.rs").kind, ChangeKind::Modified);
        git_in(&wt.path, &["add", "src/lib.rs"]);
        assert!(
            marker.exists(),
            "test setup: the filter should be active for the agent"
        );
    }

    #[test]
    fn build_tree_keeps_only_the_chosen_changes() {
        let fx = fixture();
        let wt = fx.full("subset");
        make_agent_edits(&wt.path);
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let keep: Vec<&Change> = cs
            .changes
            .iter()
            .filter(|c| {
                [
                    "src/lib.rs",
                    "docs/guide.md",
                    "moved/long2.txt",
                    "vendor/nested",
                    "scripts/run.sh",
                ]
                .contains(&c.path.as_str())
            })
            .collect();
        assert_eq!(keep.len(), 5);
        let tree = fx.repo.build_tree(fx.base, &keep).expect("build tree");
        let repo = fx.repo.open().expect("open");
        let base_tree = repo
            .find_commit(fx.base)
            .and_then(|c| c.tree())
            .expect("base tree");
        let new_tree = repo.find_tree(tree).expect("tree");
        let mut opts = DiffOptions::new();
        let mut diff = repo
            .diff_tree_to_tree(Some(&base_tree), Some(&new_tree), Some(&mut opts))
            .expect("diff");
        diff.find_similar(Some(DiffFindOptions::new().renames(true)))
            .expect("renames");
        let mut got: Vec<String> = diff
            .deltas()
            .map(|d| {
                let p = d.new_file().path().or(d.old_file().path()).expect("path");
                format!("{:?} {}", d.status(), p.display())
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "Added vendor/nested",
                "Deleted docs/guide.md",
                "Modified scripts/run.sh",
                "Modified src/lib.rs",
                "Renamed moved/long2.txt",
            ]
        );
        // Everything kept equals the full tree; nothing kept equals the base.
        let all: Vec<&Change> = cs.changes.iter().collect();
        assert_eq!(fx.repo.build_tree(fx.base, &all).expect("all"), cs.tree);
        assert_eq!(
            fx.repo.build_tree(fx.base, &[]).expect("none"),
            base_tree.id()
        );
    }

    #[test]
    fn restore_in_worktree_undoes_the_chosen_changes() {
        let fx = fixture();
        let wt = fx.full("restore");
        make_agent_edits(&wt.path);
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let undo: Vec<&Change> = cs
            .changes
            .iter()
            .filter(|c| c.path != "src/new.rs")
            .collect();
        fx.repo
            .restore_in_worktree(&wt, fx.base, &undo)
            .expect("restore");
        let after = fx.repo.change_set(&wt, fx.base).expect("change set after");
        assert_eq!(
            paths(&after),
            vec![(ChangeKind::Added, "src/new.rs".to_string())]
        );
        assert_eq!(
            fs::read_to_string(wt.path.join("docs/guide.md")).expect("restored"),
            "guide\n"
        );
        let mode = fs::metadata(wt.path.join("scripts/run.sh"))
            .expect("meta")
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(
            !wt.path.join("moved").exists(),
            "emptied directories are removed"
        );
        assert!(!wt.path.join("vendor/nested").exists());
        assert!(fs::symlink_metadata(wt.path.join("src/util.rs"))
            .expect("meta")
            .is_file());
        fx.assert_user_untouched();
    }

    #[test]
    fn restore_never_writes_through_a_symlink() {
        let fx = fixture();
        let wt = fx.full("escape");
        let outside = fx.wts.join("outside");
        fs::create_dir_all(&outside).expect("mkdir outside");
        fs::remove_dir_all(wt.path.join("docs")).expect("rm docs");
        std::os::unix::fs::symlink(&outside, wt.path.join("docs")).expect("symlink dir");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let deleted: Vec<&Change> = cs
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Deleted)
            .collect();
        assert_eq!(deleted.len(), 2, "{:#?}", cs.changes);
        let err = fx
            .repo
            .restore_in_worktree(&wt, fx.base, &deleted)
            .expect_err("would write through the symlink");
        assert!(matches!(err, WorkspaceError::UnsafePath { .. }), "{err}");
        assert_eq!(fs::read_dir(&outside).expect("read").count(), 0);
        // Undoing everything (the symlink first) works.
        let all: Vec<&Change> = cs.changes.iter().collect();
        fx.repo
            .restore_in_worktree(&wt, fx.base, &all)
            .expect("restore all");
        assert!(fx.repo.change_set(&wt, fx.base).expect("after").is_empty());
        assert_eq!(fs::read_dir(&outside).expect("read").count(), 0);
    }

    #[test]
    fn commit_to_branch_creates_moves_and_never_overwrites_others() {
        let fx = fixture();
        let wt = fx.full("commit");
        write(&wt.path.join("src/lib.rs"), "first run\n");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let is_ours = |c: &git2::Commit| c.message().is_ok_and(|m| m.contains("Agent-Task: t1"));
        let msg = "Do the thing\n\nAgent-Task: t1\n";
        let (branch, c1) = fx
            .repo
            .commit_to_branch("agent/t1", fx.base, cs.tree, msg, &is_ours)
            .expect("commit");
        assert_eq!(branch, "agent/t1");
        let repo = fx.repo.open().expect("open");
        let commit = repo.find_commit(c1).expect("commit");
        assert_eq!(commit.parent_id(0).expect("parent"), fx.base);
        assert_eq!(commit.tree_id(), cs.tree);
        assert_eq!(commit.author().name().ok(), Some(SIGNATURE_NAME));
        assert_eq!(commit.committer().email().ok(), Some(SIGNATURE_EMAIL));
        assert_eq!(
            git_in(&fx.root, &["rev-parse", "agent/t1"]).trim(),
            c1.to_string()
        );

        // A re-run moves our own branch.
        write(&wt.path.join("src/lib.rs"), "second run\n");
        let cs2 = fx.repo.change_set(&wt, fx.base).expect("change set 2");
        let (branch2, c2) = fx
            .repo
            .commit_to_branch("agent/t1", fx.base, cs2.tree, msg, &is_ours)
            .expect("commit 2");
        assert_eq!(branch2, "agent/t1");
        assert_ne!(c1, c2);
        assert_eq!(
            git_in(&fx.root, &["rev-parse", "agent/t1"]).trim(),
            c2.to_string()
        );

        // Someone else commits on the branch: never overwritten.
        let other = fx.wts.join("human");
        git_in(
            &fx.root,
            &[
                "worktree",
                "add",
                "-q",
                other.to_str().expect("utf8"),
                "agent/t1",
            ],
        );
        write(&other.join("human.txt"), "mine\n");
        git_in(&other, &["add", "human.txt"]);
        git_in(&other, &["commit", "-q", "-m", "human work"]);
        let human_tip = git_in(&fx.root, &["rev-parse", "agent/t1"]);
        git_in(
            &fx.root,
            &["worktree", "remove", other.to_str().expect("utf8")],
        );
        let (branch3, c3) = fx
            .repo
            .commit_to_branch("agent/t1", fx.base, cs2.tree, msg, &is_ours)
            .expect("commit 3");
        assert_eq!(branch3, "agent/t1-2");
        assert_eq!(git_in(&fx.root, &["rev-parse", "agent/t1"]), human_tip);
        assert_eq!(
            git_in(&fx.root, &["rev-parse", "agent/t1-2"]).trim(),
            c3.to_string()
        );
        // The next run reuses the suffixed branch, which is ours.
        let (branch4, _) = fx
            .repo
            .commit_to_branch("agent/t1", fx.base, cs.tree, msg, &is_ours)
            .expect("commit 4");
        assert_eq!(branch4, "agent/t1-2");

        // A branch the user has checked out is never moved.
        let user_branch = git_in(&fx.root, &["symbolic-ref", "--short", "HEAD"]);
        let (branch5, _) = fx
            .repo
            .commit_to_branch(user_branch.trim(), fx.base, cs.tree, msg, &|_| true)
            .expect("commit 5");
        assert_eq!(branch5, format!("{}-2", user_branch.trim()));

        let err = fx
            .repo
            .commit_to_branch("bad..name", fx.base, cs.tree, msg, &is_ours)
            .expect_err("invalid");
        assert!(matches!(err, WorkspaceError::InvalidBranch { .. }), "{err}");
        fx.assert_user_untouched();
    }

    #[test]
    fn notes_are_readable_by_git_and_overwritten() {
        let fx = fixture();
        fx.repo.add_note(fx.base, "first log\n").expect("note");
        fx.repo
            .add_note(fx.base, "decision log\n")
            .expect("overwrite");
        let shown = git_in(
            &fx.root,
            &["notes", "--ref", "agent", "show", &fx.base.to_string()],
        );
        assert_eq!(shown, "decision log\n");

        // Concurrent writers on distinct commits all land.
        let repo = fx.repo.open().expect("open");
        let tree = repo
            .find_commit(fx.base)
            .and_then(|c| c.tree())
            .expect("tree");
        let sig = signature().expect("sig");
        let base_commit = repo.find_commit(fx.base).expect("base");
        let commits: Vec<Oid> = (0..6)
            .map(|i| {
                repo.commit(None, &sig, &sig, &format!("c{i}"), &tree, &[&base_commit])
                    .expect("commit")
            })
            .collect();
        let shared = Arc::new(fx.repo.clone());
        std::thread::scope(|s| {
            for (i, c) in commits.iter().enumerate() {
                let shared = Arc::clone(&shared);
                s.spawn(move || {
                    shared
                        .add_note(*c, &format!("note {i}"))
                        .expect("concurrent note")
                });
            }
        });
        for (i, c) in commits.iter().enumerate() {
            let shown = git_in(
                &fx.root,
                &["notes", "--ref", "agent", "show", &c.to_string()],
            );
            assert_eq!(shown.trim(), format!("note {i}"));
        }
        fx.assert_user_untouched();
    }

    #[test]
    fn guard_detects_and_restores_planted_config_and_hooks() {
        let fx = fixture();
        let common = fx.repo.common_dir().to_path_buf();
        let sample = common.join("hooks/pre-commit.sample");
        let sample_before = fs::read(&sample).expect("sample hook exists");
        let config_before = fs::read(common.join("config")).expect("config");
        let guard = fx.repo.guard().expect("guard");
        assert!(guard.check_and_restore().expect("check").is_empty());

        // A sparse worktree created meanwhile sets extensions.worktreeConfig:
        // not reported, and kept.
        let wt = fx.sparse("guarded", &["src/**"]);
        assert!(guard.check_and_restore().expect("check").is_empty());

        // The agent plants things through its worktree's view of the repo.
        git_in(&wt.path, &["config", "core.fsmonitor", "/tmp/evil"]);
        let hook = common.join("hooks/pre-commit");
        write(&hook, "#!/bin/sh\nevil\n");
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
        write(&sample, "tampered\n");
        write(&common.join("info/attributes"), "* filter=evil\n");

        let report = guard.check_and_restore().expect("check");
        assert!(
            report.contains(&"config: core.fsmonitor added".to_string()),
            "{report:?}"
        );
        assert!(
            report.contains(&"hooks/pre-commit: added".to_string()),
            "{report:?}"
        );
        assert!(
            report.contains(&"hooks/pre-commit.sample: modified".to_string()),
            "{report:?}"
        );
        assert!(
            report.contains(&"info/attributes: added".to_string()),
            "{report:?}"
        );
        assert_eq!(report.len(), 4, "{report:?}");

        assert!(!hook.exists());
        assert_eq!(fs::read(&sample).expect("sample"), sample_before);
        assert!(!common.join("info/attributes").exists());
        assert_eq!(
            fs::metadata(&sample).expect("meta").mode() & 0o777,
            0o755,
            "mode restored"
        );
        let config_now = fs::read_to_string(common.join("config")).expect("config");
        assert!(!config_now.contains("fsmonitor"), "{config_now}");
        assert!(config_now.contains(&String::from_utf8_lossy(&config_before).to_string()));
        assert!(git2::Config::open(&common.join("config"))
            .and_then(|c| c.get_bool("extensions.worktreeconfig"))
            .expect("extension kept"));
        // Sparse worktree still works after the restore.
        assert_eq!(git_in(&wt.path, &["sparse-checkout", "list"]), "/src/**\n");
        assert!(guard.check_and_restore().expect("check").is_empty());
        fx.assert_user_untouched();
    }

    #[test]
    fn tampered_git_file_is_detected_and_ignored() {
        let fx = fixture();
        let wt = fx.full("tamper");
        let decoy = fx.wts.join("decoy");
        git_in(&fx.wts, &["init", "-q", "decoy"]);
        write(
            &wt.path.join(".git"),
            &format!("gitdir: {}\n", decoy.join(".git").display()),
        );
        assert!(wt.git_file_tampered());
        assert!(!wt.integrity_problems().is_empty());
        fs::write(
            wt.admin_dir.join("commondir"),
            decoy.join(".git").display().to_string(),
        )
        .expect("rewrite commondir");
        assert_eq!(
            wt.integrity_problems().len(),
            2,
            "{:?}",
            wt.integrity_problems()
        );
        // Our calls do not follow the rewired files.
        write(&wt.path.join("src/lib.rs"), "edit\n");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        assert_eq!(
            paths(&cs),
            vec![(ChangeKind::Modified, "src/lib.rs".to_string())]
        );
        assert_eq!(wt.head().expect("head"), fx.base);
        fx.repo.remove_worktree(&wt).expect("remove");
        assert!(!wt.path.exists() && !wt.admin_dir.exists());
        assert!(decoy.join(".git/HEAD").exists(), "decoy untouched");
        // A directory in place of the .git file is tampering too.
        let wt2 = fx.full("tamper2");
        fs::remove_file(wt2.path.join(".git")).expect("rm .git");
        fs::create_dir(wt2.path.join(".git")).expect("mkdir .git");
        assert!(wt2.git_file_tampered());
        fx.repo.remove_worktree(&wt2).expect("remove");
        fx.assert_user_untouched();
    }

    #[test]
    fn eight_threads_create_worktrees_at_once() {
        let fx = fixture();
        let repo = Arc::new(fx.repo.clone());
        let created: Vec<Worktree> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let repo = Arc::clone(&repo);
                    let path = fx.wts.join(format!("par-{i}"));
                    let base = fx.base;
                    s.spawn(move || {
                        let patterns = vec!["src/**".to_string()];
                        let sparse = (i % 2 == 0).then_some(patterns.as_slice());
                        repo.create_worktree(&path, base, sparse)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread").expect("create worktree"))
                .collect()
        });
        let list = git_in(&fx.root, &["worktree", "list", "--porcelain"]);
        assert_eq!(list.matches("worktree ").count(), 9, "{list}");
        for (i, wt) in created.iter().enumerate() {
            assert_eq!(wt.head().expect("head"), fx.base);
            assert_eq!(wt.path.join("README.md").exists(), i % 2 == 1);
            assert!(wt.path.join("src/lib.rs").exists());
        }
        std::thread::scope(|s| {
            for wt in &created {
                let repo = Arc::clone(&repo);
                s.spawn(move || repo.remove_worktree(wt).expect("remove"));
            }
        });
        let list = git_in(&fx.root, &["worktree", "list", "--porcelain"]);
        assert_eq!(list.matches("worktree ").count(), 1, "{list}");
        assert!(!fx.repo.common_dir().join("agent/worktree.lock").exists());
        fx.assert_user_untouched();
    }

    #[test]
    fn stale_lock_file_is_broken() {
        let fx = fixture();
        let lock = fx.repo.common_dir().join("agent/worktree.lock");
        write(&lock, "pid 1\n");
        let old = SystemTime::now() - Duration::from_secs(120);
        fs::File::options()
            .write(true)
            .open(&lock)
            .and_then(|f| f.set_modified(old))
            .expect("age the lock");
        let wt = fx.full("after-stale");
        assert!(!lock.exists());
        fx.repo.remove_worktree(&wt).expect("remove");
    }

    /// CPU seconds used so far by this process and its waited-for children.
    fn cpu_seconds() -> f64 {
        let stat = fs::read_to_string("/proc/self/stat").expect("procfs");
        let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<f64> = after_comm
            .split(' ')
            .skip(11) // utime is field 14; this slice starts at field 3
            .take(4)
            .map(|f| f.parse().expect("number"))
            .collect();
        fields.iter().sum::<f64>() / 100.0
    }

    /// Timing, not an assertion: `cargo test --lib bench_worktree_20k --
    /// --ignored --nocapture`. Configurations are interleaved; min wall time
    /// and min CPU time (self + git children) per configuration are printed.
    #[test]
    #[ignore]
    fn bench_worktree_20k() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("big");
        fs::create_dir_all(&root).expect("mkdir");
        git_in(&root, &["init", "-q", "-b", "main"]);
        for d in 0..200 {
            for f in 0..100 {
                write(
                    &root.join(format!("d{d:03}/f{f:03}.txt")),
                    &format!("file {d} {f}\n{}", "x".repeat(80)),
                );
            }
        }
        git_in(&root, &["add", "-A"]);
        git_in(&root, &["commit", "-q", "-m", "big"]);
        git_in(&root, &["repack", "-adq"]);
        let repo = Repo::discover(&root)
            .expect("discover")
            .with_git_env("GIT_CONFIG_GLOBAL", "/dev/null")
            .with_git_env("GIT_CONFIG_NOSYSTEM", "1");
        let base = repo.resolve_commit("HEAD").expect("head");
        let wts = tmp.path().join("wts");
        fs::create_dir_all(&wts).expect("mkdir");
        let sparse: Vec<String> = (0..10).map(|d| format!("d{d:03}/**")).collect();
        let mut n = 0;
        let mut next = || {
            n += 1;
            wts.join(format!("wt-{n}"))
        };
        type Step<'a> = Box<dyn FnMut(PathBuf) -> [(f64, f64); 2] + 'a>;
        let timed = |f: &mut dyn FnMut()| {
            let (t, c) = (Instant::now(), cpu_seconds());
            f();
            (t.elapsed().as_secs_f64(), cpu_seconds() - c)
        };
        let plain = |workers: bool| -> Step {
            let root = root.clone();
            Box::new(move |path: PathBuf| {
                let path = path.to_str().expect("utf8").to_string();
                let w = if workers {
                    "checkout.workers=0"
                } else {
                    "checkout.workers=1"
                };
                let add = timed(&mut || {
                    git_in(
                        &root,
                        &["-c", w, "worktree", "add", "-q", "--detach", &path, "HEAD"],
                    );
                });
                let rm = timed(&mut || {
                    git_in(&root, &["worktree", "remove", "--force", &path]);
                });
                [add, rm]
            })
        };
        let api = |patterns: Option<&'static [String]>| -> Step {
            let repo = repo.clone();
            Box::new(move |path: PathBuf| {
                let mut wt = None;
                let add = timed(&mut || {
                    wt = Some(repo.create_worktree(&path, base, patterns).expect("create"));
                });
                let wt = wt.expect("created");
                let rm = timed(&mut || repo.remove_worktree(&wt).expect("remove"));
                [add, rm]
            })
        };
        let sparse: &'static [String] = Vec::leak(sparse);
        let mut configs: Vec<(&str, Step)> = vec![
            ("plain git worktree add/remove", plain(false)),
            ("plain git, checkout.workers=0", plain(true)),
            ("api create/remove, full", api(None)),
            ("api create/remove, sparse 5%", api(Some(sparse))),
        ];
        let mut best = vec![[[f64::MAX; 2]; 2]; configs.len()];
        for _round in 0..3 {
            for (i, (_, step)) in configs.iter_mut().enumerate() {
                let r = step(next());
                for (phase, (wall, cpu)) in r.iter().enumerate() {
                    best[i][phase][0] = best[i][phase][0].min(*wall);
                    best[i][phase][1] = best[i][phase][1].min(*cpu);
                }
            }
        }
        println!(
            "{:<34} {:>16} {:>16}",
            "min of 3 (wall / cpu s)", "create", "remove"
        );
        for (i, (label, _)) in configs.iter().enumerate() {
            let [a, r] = best[i];
            println!(
                "{label:<34} {:>7.2} / {:>6.2} {:>7.2} / {:>6.2}",
                a[0], a[1], r[0], r[1]
            );
        }
        let wt = repo.create_worktree(&next(), base, None).expect("create");
        let (w, c) = timed(&mut || drop(repo.change_set(&wt, base).expect("cs")));
        println!("change_set full, clean            {w:>7.2} / {c:>6.2}");
        for d in 0..10 {
            write(&wt.path.join(format!("d{d:03}/f000.txt")), "edited\n");
        }
        let (w, c) = timed(&mut || {
            assert_eq!(repo.change_set(&wt, base).expect("cs").changes.len(), 10);
        });
        println!("change_set full, 10 edits         {w:>7.2} / {c:>6.2}");
        repo.remove_worktree(&wt).expect("remove");
        let wt = repo
            .create_worktree(&next(), base, Some(sparse))
            .expect("create");
        assert_eq!(files_on_disk(&wt.path).len(), 1000);
        let (w, c) = timed(&mut || drop(repo.change_set(&wt, base).expect("cs")));
        println!("change_set sparse 5%, clean       {w:>7.2} / {c:>6.2}");
        repo.remove_worktree(&wt).expect("remove");
    }
}
