//! Linked worktrees: [`Worktree`] and the [`Repo`] methods that create,
//! populate (sparse or full), find, check and remove them.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use git2::Oid;

use super::command::{arg_eq, retry_on_lock, Git, LockRetries};
use super::error::{io_err, Result, WorkspaceError};
use super::lock::LockFile;
use super::repo::Repo;
use super::safe_tree::remove_tree;

/// Serializes the `worktree add` step between threads of this process (the
/// lock file serializes it between processes).
static WORKTREE_ADD: Mutex<()> = Mutex::new(());

/// A linked worktree created by [`Repo::create_worktree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The checkout (canonical path).
    pub path: PathBuf,
    /// `<common dir>/worktrees/<name>` (canonical path).
    pub admin_dir: PathBuf,
    /// Created with sparse patterns.
    pub sparse: bool,
    /// The sparse patterns as git-agent wrote them (normalized); the admin
    /// dir is rewritten from these, never read.
    pub patterns: Option<Vec<String>>,
    /// The run's deadline: staging what the agent left is killed then.
    pub deadline: Option<std::time::Instant>,
    /// Paths git-agent put there (copied files, setup caches) that are
    /// never part of the change set.
    pub excluded: Vec<String>,
}

impl Worktree {
    /// The common dir, derived from `admin_dir` (never from the admin dir's
    /// `commondir` file, which the agent can rewrite).
    pub(super) fn common_dir(&self) -> Option<&Path> {
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
        let text = match fs::read(&dotgit) {
            Ok(t) => t,
            Err(e) => return Some(format!("{}: {e}", dotgit.display())),
        };
        let Some(target) = text.trim_ascii_end().strip_prefix(b"gitdir:") else {
            return Some(format!("{} has no gitdir: line", dotgit.display()));
        };
        let target = path_of(target.trim_ascii());
        if !same_file(&self.path.join(&target), &self.admin_dir) {
            return Some(format!(
                "{} points at {}, not {}",
                dotgit.display(),
                target.display(),
                self.admin_dir.display()
            ));
        }
        None
    }

    /// Every sign that the agent rewired its worktree: the `.git` file, the
    /// admin dir's `commondir` and `gitdir` files. Empty when intact.
    #[cfg(test)]
    pub fn integrity_problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.git_file_problem().into_iter().collect();
        problems.extend(self.admin_dir_problems());
        problems
    }

    /// Writes the worktree's links back as git made them: the `.git` file
    /// pointing at the admin dir, `commondir` at the repository, `gitdir`
    /// back at the `.git` file. A kept worktree must not send the user's
    /// git somewhere the agent chose.
    pub fn restore_links(&self) -> Result<()> {
        let dotgit = self.path.join(".git");
        if self.git_file_problem().is_some() {
            match fs::symlink_metadata(&dotgit) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&dotgit),
                Ok(_) => fs::remove_file(&dotgit),
                Err(_) => Ok(()),
            }
            .map_err(io_err("removing", &dotgit))?;
            let text = [b"gitdir: ", self.admin_dir.as_os_str().as_bytes(), b"\n"].concat();
            fs::write(&dotgit, text).map_err(io_err("writing", &dotgit))?;
        }
        if !self.admin_dir_problems().is_empty() {
            for (name, text) in [
                ("commondir", b"../..\n".to_vec()),
                ("gitdir", [dotgit.as_os_str().as_bytes(), b"\n"].concat()),
            ] {
                let path = self.admin_dir.join(name);
                // Replaced, not written through: it may now be a symlink.
                let _ = fs::remove_file(&path);
                fs::write(&path, text).map_err(io_err("writing", &path))?;
            }
        }
        Ok(())
    }

    /// A directory beside the worktree (one file system, so a move is a
    /// rename) where the engine keeps what the checks must not see; it goes
    /// with the worktree.
    pub fn aside_dir(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_os_string();
        name.push(".aside");
        PathBuf::from(name)
    }

    /// Where git-agent keeps its own copy of the index it wrote when it
    /// checked this worktree out: under `<common>/agent/`, which the
    /// agent's sandbox cannot write.
    pub fn pristine_index(&self) -> Option<PathBuf> {
        let name = self.admin_dir.file_name()?;
        let mut file = name.to_os_string();
        file.push(".index");
        Some(self.common_dir()?.join("agent/indexes").join(file))
    }

    /// Keeps git-agent's copy of the freshly populated index.
    pub(super) fn save_pristine_index(&self) -> Result<()> {
        let Some(to) = self.pristine_index() else {
            return Ok(());
        };
        if let Some(dir) = to.parent() {
            fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        }
        let from = self.admin_dir.join("index");
        match copy_index(&from, &to) {
            Ok(_) => Ok(()),
            // A full worktree of an empty tree has no index.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("copying index", &from)(e)),
        }
    }

    /// Rewrites what git reads from the worktree's admin dir — its own
    /// config (`config.worktree`) and sparse patterns — from git-agent's
    /// record, and its links ([`Worktree::restore_links`]). The admin dir is
    /// writable by the agent (git needs it to commit): what it planted there
    /// (a filter or fsmonitor command, hooks path, pager, `core.trustctime`,
    /// a symlink or a FIFO in place of a file) must never reach git-agent's
    /// own, unconfined, git commands. Nothing there is read or followed.
    pub fn sanitize_admin(&self) -> Result<()> {
        self.restore_links()?;
        self.repair_index()?;
        let config = self.admin_dir.join("config.worktree");
        replace_entry(
            &config,
            self.patterns.as_ref().map(|_| SPARSE_CONFIG.to_string()),
        )?;
        let info = self.admin_dir.join("info");
        let sparse_file = info.join("sparse-checkout");
        match &self.patterns {
            Some(patterns) => {
                if !fs::symlink_metadata(&info).is_ok_and(|m| m.is_dir()) {
                    replace_entry(&info, None)?;
                    fs::create_dir(&info).map_err(io_err("creating", &info))?;
                }
                let mut text = patterns.join("\n");
                text.push('\n');
                replace_entry(&sparse_file, Some(text))?;
            }
            None if fs::symlink_metadata(&info).is_ok_and(|m| m.is_dir()) => {
                replace_entry(&sparse_file, None)?;
            }
            None => replace_entry(&info, None)?,
        }
        Ok(())
    }

    /// An index git cannot read (or no regular file at all) breaks the
    /// user's `git gc`, `prune` and `fsck`, which read every worktree's
    /// index: it is replaced by git-agent's own copy from checkout time.
    fn repair_index(&self) -> Result<()> {
        let index = self.admin_dir.join("index");
        let readable = match fs::symlink_metadata(&index) {
            Ok(m) if m.is_file() => git2::Index::open(&index).is_ok(),
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("inspecting", &index)(e)),
        };
        if readable {
            return Ok(());
        }
        tracing::warn!(index = %index.display(), "the worktree's index is unreadable; replacing it with git-agent's own");
        replace_entry(&index, None)?;
        if let Some(pristine) = self.pristine_index().filter(|p| p.is_file()) {
            copy_index(&pristine, &index).map_err(io_err("copying index", &pristine))?;
        }
        Ok(())
    }

    /// The admin dir's `commondir` and `gitdir` no longer lead to this
    /// repository and back to this worktree (the admin dir is writable:
    /// git needs it to commit). git-agent's own calls never follow these
    /// files; the agent's git, and the user's later, would.
    pub fn admin_dir_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let commondir = self.admin_dir.join("commondir");
        match (fs::read(&commondir), self.common_dir()) {
            (Ok(text), Some(common)) => {
                let target = path_of(text.trim_ascii_end());
                if !same_file(&self.admin_dir.join(&target), common) {
                    problems.push(format!(
                        "{} points at {}, not {}",
                        commondir.display(),
                        target.display(),
                        common.display()
                    ));
                }
            }
            (Err(e), _) => problems.push(format!("{}: {e}", commondir.display())),
            (_, None) => problems.push(format!("{} has no parent", self.admin_dir.display())),
        }
        let gitdir = self.admin_dir.join("gitdir");
        match fs::read(&gitdir) {
            Ok(text) => {
                let back = self.admin_dir.join(path_of(text.trim_ascii_end()));
                let expected = self.path.join(".git");
                // Compare parents: the .git file itself may be gone.
                let points_back = back.file_name() == Some(OsStr::new(".git"))
                    && back.parent().is_some_and(|p| same_file(p, &self.path));
                if !points_back {
                    problems.push(format!(
                        "{} points at {}, not {}",
                        gitdir.display(),
                        path_of(text.trim_ascii_end()).display(),
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
    #[cfg(test)]
    pub fn head(&self) -> Result<Oid> {
        let git = self.git(&[]);
        let out = git.run(&["rev-parse", "--verify", "-q", "HEAD^{commit}"])?;
        super::command::parse_oid(&out.stdout, &git, "rev-parse HEAD")
    }

    pub(super) fn git(&self, env: &[(OsString, OsString)]) -> Git {
        let mut git = Git::new(&self.path, env)
            .arg(arg_eq("--git-dir=", &self.admin_dir))
            .arg(arg_eq("--work-tree=", &self.path));
        if let Some(common) = self.common_dir() {
            git = git.env("GIT_COMMON_DIR", common);
        }
        git
    }
}

/// A path as a link file holds it: its bytes, not necessarily UTF-8.
fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// Paths refer to the same existing file system object.
/// Copies an index file keeping its modification time: git decides which
/// entries are "racily clean" (stat data too close to the index's own time
/// to trust, so their content is compared) by that time, and a copy made
/// now would make every entry look safe to skip.
pub(super) fn copy_index(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    let modified = fs::metadata(from)?.modified()?;
    fs::OpenOptions::new()
        .write(true)
        .open(to)?
        .set_modified(modified)
}

/// `config.worktree` of a sparse worktree, as `git sparse-checkout set
/// --no-cone` writes it.
const SPARSE_CONFIG: &str = "[core]\n\tsparseCheckout = true\n\tsparseCheckoutCone = false\n";

/// Removes whatever is at `path` (file, symlink, FIFO, directory) without
/// following or opening it, then writes `content` there as a new file.
fn replace_entry(path: &Path, content: Option<String>) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("removing", path))?,
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspecting", path)(e)),
    }
    if let Some(content) = content {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, content.as_bytes()))
            .map_err(io_err("writing", path))?;
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

impl Repo {
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
            // A full checkout is made in this process where it can be made
            // as git would, else written by `worktree add` itself (one git
            // process); a sparse one needs its patterns first.
            let made = patterns.is_none() && self.add_worktree_in_process(&path, commit)?;
            if !made {
                self.worktree_add(&path, commit, existed, patterns.is_none())?;
            }
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
            patterns: patterns.clone(),
            deadline: None,
            excluded: Vec::new(),
        };
        if let Err(e) = self
            .populate(&wt, commit, patterns.as_deref())
            .and_then(|()| wt.save_pristine_index())
        {
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
    fn worktree_add(&self, path: &Path, commit: Oid, existed: bool, checkout: bool) -> Result<()> {
        // No reflog for the worktree's HEAD: nothing reads it, and its
        // directory and file are two more inodes made and unlinked per run.
        let git = self
            .git()
            .config("core.sparseCheckout=false")
            .config("checkout.workers=0")
            .config("core.logAllRefUpdates=false");
        let hex = commit.to_string();
        let args: [&OsStr; 6] = [
            "worktree".as_ref(),
            "add".as_ref(),
            if checkout { "--quiet" } else { "--no-checkout" }.as_ref(),
            "--detach".as_ref(),
            path.as_os_str(),
            hex.as_ref(),
        ];
        retry_on_lock(LockRetries::GIT_CLI, |attempt| {
            if attempt > 0 {
                // Undo what the try that hit the lock left behind.
                let command = git.command_line(&args);
                tracing::debug!(%command, attempt, "worktree add hit a lock; retrying");
                if !existed && path.exists() {
                    let _ = fs::remove_dir_all(path);
                }
            }
            git.try_run(&args)
        })
        .map(drop)
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
        retry_on_lock(LockRetries::GIT_CLI, |_| git.try_run(&args)).map(drop)
    }

    fn populate(&self, wt: &Worktree, commit: Oid, patterns: Option<&[String]>) -> Result<()> {
        let hex = commit.to_string();
        match patterns {
            // Checked out by `worktree add`.
            None if wt.path.join(".git").is_file() && wt.admin_dir.join("index").is_file() => {}
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
        // What `git worktree remove --force --force` does, without its
        // process: the checkout, then the admin entry (nothing in either
        // is read, so nothing the agent planted there is followed), then
        // `worktrees/` once empty, under the lock its makers hold.
        remove_tree(&wt.path)?;
        remove_tree(&wt.admin_dir)?;
        {
            let _thread = WORKTREE_ADD.lock().unwrap_or_else(|e| e.into_inner());
            let _process = LockFile::acquire(&self.common_dir.join("agent/worktree.lock"))?;
            self.drop_empty_worktrees_dir();
        }
        if wt.aside_dir().exists() {
            remove_tree(&wt.aside_dir())?;
        }
        if let Some(index) = wt.pristine_index() {
            let _ = fs::remove_file(index);
        }
        Ok(())
    }

    /// Removes the worktree at `path` (a kept run's), found through the
    /// admin entry that points at it; a directory without an entry is
    /// removed as it is. Used by `git agent clean`.
    pub fn remove_worktree_path(&self, path: &Path) -> Result<()> {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let path = canonical.as_path();
        match self.find_worktree(path, None) {
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
    pub fn find_worktree(&self, path: &Path, sparse: Option<&[String]>) -> Option<Worktree> {
        let patterns = sparse.map(sparse_patterns).transpose().ok()?;
        let path = fs::canonicalize(path).ok()?;
        let wanted = path.join(".git");
        let admin_dir = fs::read_dir(self.common_dir.join("worktrees"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|admin| {
                fs::read(admin.join("gitdir"))
                    .is_ok_and(|g| path_of(g.trim_ascii_end()) == wanted.as_path())
            })?;
        Some(Worktree {
            path,
            admin_dir,
            sparse: patterns.is_some(),
            patterns,
            deadline: None,
            excluded: Vec::new(),
        })
    }

    /// `git worktree prune`: drops admin entries whose directory is gone.
    pub fn prune_worktrees(&self) -> Result<()> {
        self.git().run(&["worktree", "prune"]).map(|_| ())
    }
}

/// Non-cone sparse patterns: anchored at the root; gitignore syntax already
/// gives `*` (not crossing `/`) and `**` (crossing) the scope-glob meaning.
pub(super) fn sparse_patterns(patterns: &[String]) -> Result<Vec<String>> {
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
    let text = fs::read(&dotgit).map_err(io_err("reading", &dotgit))?;
    let target = text
        .trim_ascii_end()
        .strip_prefix(b"gitdir:")
        .map(<[u8]>::trim_ascii)
        .ok_or_else(|| WorkspaceError::InvalidWorktreePath {
            path: path.to_path_buf(),
            reason: format!("{} has no gitdir: line", dotgit.display()),
        })?;
    let target = path.join(path_of(target));
    fs::canonicalize(&target).map_err(io_err("resolving", &target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::git::changes::ChangeKind;
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
        // Every creation let go of the lock.
        let lock = std::fs::File::open(fx.repo.common_dir().join("agent/worktree.lock"))
            .expect("the lock file stays");
        // SAFETY: a non-blocking flock on a descriptor owned here.
        let free = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        assert!(free, "the worktree lock is still held");
        fx.assert_user_untouched();
    }
}
