//! Worktrees, change sets, commits and notes.
//!
//! Which tool does what, and why (see docs/ARCHITECTURE.md):
//! - Worktrees are made with the git CLI, detached (`-b` races on
//!   `.git/config`), serialized by a lock: libgit2 cannot make a worktree
//!   without checking everything out and does not understand sparse checkout.
//! - Sparse checkout writes the worktree's own `info/sparse-checkout` and
//!   passes `core.sparseCheckout` on the command line, so the shared config
//!   is never written (other runs' guards would see it change).
//! - The change set is staged with the CLI in the worktree's own index
//!   (sparse-safe), written as a tree, and diffed tree-to-tree with git2.
//! - Every CLI call names `--git-dir` and `--work-tree` explicitly (an agent
//!   may rewrite the worktree's `.git` file) and disables hooks and fsmonitor
//!   (an agent may have planted them).
//! - Commits, refs and notes are written with git2, under the same lock.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use git2::{Oid, Repository};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("`{}` is not inside a git repository", path.display())]
    NotARepo {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("`{rev}` does not name a commit in this repository")]
    BadRev {
        rev: String,
        #[source]
        source: git2::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Git { command: String, stderr: String },
    #[error("{what}")]
    Git2 {
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error("{what}: {}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out waiting for the repository lock {}", path.display())]
    Lock { path: PathBuf },
}

type Result<T> = std::result::Result<T, WorkspaceError>;

fn g2(what: impl Into<String>) -> impl FnOnce(git2::Error) -> WorkspaceError {
    let what = what.into();
    move |source| WorkspaceError::Git2 { what, source }
}

fn io(what: impl Into<String>, path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError {
    let what = what.into();
    let path = path.to_path_buf();
    move |source| WorkspaceError::Io { what, path, source }
}

/// One repository, opened for one operation.
pub struct Repo {
    repo: Repository,
    common: PathBuf,
}

/// A run's worktree.
#[derive(Debug, Clone, Serialize)]
pub struct Worktree {
    pub path: PathBuf,
    /// `<common>/worktrees/<name>`.
    pub admin_dir: PathBuf,
    pub sparse: bool,
}

impl Worktree {
    /// Whether the worktree's `.git` file no longer points at its admin dir.
    pub fn git_file_tampered(&self) -> bool {
        let expected = format!("gitdir: {}", self.admin_dir.display());
        match fs::symlink_metadata(self.path.join(".git")) {
            Ok(meta) if meta.is_file() => fs::read_to_string(self.path.join(".git"))
                .map(|t| t.trim_end() != expected)
                .unwrap_or(true),
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    TypeChanged,
}

/// One changed path between the base and the worktree.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub path: String,
    pub old_path: Option<String>,
    pub kind: ChangeKind,
    pub old_mode: Option<u32>,
    pub new_mode: Option<u32>,
    #[serde(serialize_with = "oid_hex")]
    pub new_blob: Option<Oid>,
    pub lines_added: usize,
    pub lines_removed: usize,
    pub binary: bool,
    pub symlink_target: Option<String>,
    /// A nested repository (mode 160000).
    pub gitlink: bool,
}

fn oid_hex<S: serde::Serializer>(oid: &Option<Oid>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match oid {
        Some(o) => s.serialize_str(&o.to_string()),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub base: Oid,
    /// The worktree's whole content as a tree.
    pub tree: Oid,
    pub changes: Vec<Change>,
}

/// A snapshot of the parts of the main repository an agent must not change.
#[derive(Debug, Clone)]
pub struct RepoGuard {
    common: PathBuf,
    files: BTreeMap<String, Option<Vec<u8>>>,
}

const GUARDED_FILES: &[&str] = &["config", "info/attributes", "info/exclude", "commondir"];

impl RepoGuard {
    fn take(common: &Path) -> Result<RepoGuard> {
        let mut files = BTreeMap::new();
        for name in GUARDED_FILES {
            files.insert(name.to_string(), fs::read(common.join(name)).ok());
        }
        let hooks = common.join("hooks");
        if let Ok(entries) = fs::read_dir(&hooks) {
            for e in entries.flatten() {
                let name = format!("hooks/{}", e.file_name().to_string_lossy());
                files.insert(name, fs::read(e.path()).ok());
            }
        }
        Ok(RepoGuard {
            common: common.to_path_buf(),
            files,
        })
    }

    /// What changed since the snapshot; puts the snapshot back.
    pub fn check_and_restore(&self) -> Result<Vec<String>> {
        let now = RepoGuard::take(&self.common)?;
        let mut changed = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            self.files.keys().chain(now.files.keys()).collect();
        for name in names {
            let before = self.files.get(name).cloned().flatten();
            let after = now.files.get(name).cloned().flatten();
            if before == after {
                continue;
            }
            changed.push(if name == "config" {
                "git config".to_string()
            } else {
                format!("`{name}`")
            });
            let path = self.common.join(name);
            match before {
                Some(bytes) => {
                    let _ = fs::remove_file(&path);
                    fs::write(&path, bytes).map_err(io("could not restore", &path))?;
                    #[cfg(unix)]
                    if name.starts_with("hooks/") {
                        use std::os::unix::fs::PermissionsExt;
                        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o755));
                    }
                }
                None => {
                    let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
                }
            }
        }
        Ok(changed)
    }
}

/// Serializes repository-metadata steps across threads and processes.
static IN_PROCESS: Mutex<()> = Mutex::new(());

struct RepoLock {
    path: PathBuf,
    _guard: std::sync::MutexGuard<'static, ()>,
}

impl RepoLock {
    fn acquire(common: &Path) -> Result<RepoLock> {
        let guard = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let dir = common.join("agent");
        fs::create_dir_all(&dir).map_err(io("could not create", &dir))?;
        let path = dir.join("repo.lock");
        let start = Instant::now();
        let mut wait = Duration::from_millis(5);
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(RepoLock {
                        path,
                        _guard: guard,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // A lock whose owner died is stale.
                    let stale = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok())
                        .is_some_and(|pid| {
                            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                                == Err(nix::errno::Errno::ESRCH)
                        });
                    let old = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(120));
                    if stale || old {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if start.elapsed() > Duration::from_secs(300) {
                        return Err(WorkspaceError::Lock { path });
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(io("could not create the lock", &path)(e)),
            }
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Repo {
    pub fn discover(start: &Path) -> Result<Repo> {
        let repo = Repository::discover(start).map_err(|source| WorkspaceError::NotARepo {
            path: start.to_path_buf(),
            source,
        })?;
        let common = repo.commondir().to_path_buf();
        Ok(Repo { repo, common })
    }

    pub fn common_dir(&self) -> &Path {
        &self.common
    }

    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    pub fn resolve_commit(&self, rev: &str) -> Result<Oid> {
        self.repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .map_err(|source| WorkspaceError::BadRev {
                rev: rev.to_string(),
                source,
            })
    }

    pub fn guard(&self) -> Result<RepoGuard> {
        RepoGuard::take(&self.common)
    }

    /// `git` with hooks and fsmonitor off, in the common dir.
    fn git(&self, args: &[&str]) -> Result<String> {
        run_git(&self.common, &[], args)
    }

    fn git_in(&self, wt: &Worktree, args: &[&str]) -> Result<String> {
        let git_dir = format!("--git-dir={}", wt.admin_dir.display());
        let work_tree = format!("--work-tree={}", wt.path.display());
        let mut pre = vec![git_dir.as_str(), work_tree.as_str()];
        if wt.sparse {
            pre.extend([
                "-c",
                "core.sparseCheckout=true",
                "-c",
                "core.sparseCheckoutCone=false",
            ]);
        }
        run_git(&wt.path, &pre, args)
    }

    pub fn create_worktree(
        &self,
        path: &Path,
        commit: Oid,
        sparse: Option<&[String]>,
    ) -> Result<Worktree> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(io("could not create the worktree directory", parent))?;
        }
        let sha = commit.to_string();
        let path_s = path.to_string_lossy().into_owned();
        {
            let _lock = RepoLock::acquire(&self.common)?;
            let mut args = vec!["worktree", "add", "--detach"];
            if sparse.is_some() {
                args.push("--no-checkout");
            }
            args.extend([path_s.as_str(), sha.as_str()]);
            self.git(&args)?;
        }
        let git_file = path.join(".git");
        let text = fs::read_to_string(&git_file).map_err(io("could not read", &git_file))?;
        let admin_dir = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
        let wt = Worktree {
            path: path.to_path_buf(),
            admin_dir,
            sparse: sparse.is_some(),
        };
        if let Some(patterns) = sparse {
            let info = wt.admin_dir.join("info");
            fs::create_dir_all(&info).map_err(io("could not create", &info))?;
            let mut text = String::new();
            for p in patterns {
                text.push('/');
                text.push_str(p.trim_start_matches('/'));
                text.push('\n');
            }
            let file = info.join("sparse-checkout");
            fs::write(&file, text).map_err(io("could not write", &file))?;
            self.git_in(&wt, &["read-tree", "-mu", "HEAD"])?;
        }
        Ok(wt)
    }

    /// Removes a run's worktree directory and its admin entry.
    pub fn remove_worktree(&self, wt: &Worktree) -> Result<()> {
        self.remove_worktree_path(&wt.path)
    }

    pub fn remove_worktree_path(&self, path: &Path) -> Result<()> {
        let _lock = RepoLock::acquire(&self.common)?;
        let p = path.to_string_lossy().into_owned();
        let removed = !path.exists()
            || self
                .git(&["worktree", "remove", "--force", "--force", &p])
                .is_ok();
        if !removed {
            fs::remove_dir_all(path).map_err(io("could not remove the worktree", path))?;
        }
        self.git(&["worktree", "prune"])?;
        Ok(())
    }

    /// `git worktree prune`: drop entries whose directory is gone.
    pub fn prune_worktrees(&self) -> Result<()> {
        let _lock = RepoLock::acquire(&self.common)?;
        self.git(&["worktree", "prune"]).map(|_| ())
    }

    /// Everything that differs between `base` and the worktree's files,
    /// whatever the agent did with its own index or HEAD.
    pub fn change_set(&self, wt: &Worktree, base: Oid) -> Result<ChangeSet> {
        // `add --all` stages what is on disk whatever the agent did to its
        // index; `--sparse` stages files it created outside the sparse
        // patterns, while skip-worktree entries are not taken as deleted.
        self.git_in(wt, &["add", "--all", "--sparse", "--", "."])?;
        let tree_hex = self.git_in(wt, &["write-tree"])?;
        let tree =
            Oid::from_str(tree_hex.trim()).map_err(g2("git write-tree printed no tree id"))?;
        let changes = self.diff(base, tree)?;
        Ok(ChangeSet {
            base,
            tree,
            changes,
        })
    }

    fn diff(&self, base: Oid, tree: Oid) -> Result<Vec<Change>> {
        let repo = &self.repo;
        let base_tree = repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(g2("could not read the base tree"))?;
        let new_tree = repo
            .find_tree(tree)
            .map_err(g2("could not read the worktree's tree"))?;
        let mut opts = git2::DiffOptions::new();
        opts.include_typechange(true);
        let mut diff = repo
            .diff_tree_to_tree(Some(&base_tree), Some(&new_tree), Some(&mut opts))
            .map_err(g2("could not diff the trees"))?;
        let mut find = git2::DiffFindOptions::new();
        find.renames(true);
        diff.find_similar(Some(&mut find))
            .map_err(g2("could not detect renames"))?;
        let mut out = Vec::new();
        for (i, delta) in diff.deltas().enumerate() {
            let kind = match delta.status() {
                git2::Delta::Added | git2::Delta::Untracked | git2::Delta::Copied => {
                    ChangeKind::Added
                }
                git2::Delta::Deleted => ChangeKind::Deleted,
                git2::Delta::Renamed => ChangeKind::Renamed,
                git2::Delta::Typechange => ChangeKind::TypeChanged,
                _ => ChangeKind::Modified,
            };
            let path_of =
                |f: git2::DiffFile<'_>| f.path().map(|p| p.to_string_lossy().into_owned());
            let new_path = path_of(delta.new_file());
            let old_path = path_of(delta.old_file());
            let path = new_path.clone().or(old_path.clone()).unwrap_or_default();
            let mode = |f: git2::DiffFile<'_>| {
                let m = u32::from(f.mode());
                (m != 0).then_some(m)
            };
            let new_mode = if kind == ChangeKind::Deleted {
                None
            } else {
                mode(delta.new_file())
            };
            let old_mode = if kind == ChangeKind::Added {
                None
            } else {
                mode(delta.old_file())
            };
            let new_blob = (kind != ChangeKind::Deleted).then(|| delta.new_file().id());
            let (mut added, mut removed, mut binary) = (0, 0, delta.flags().is_binary());
            if let Ok(Some(patch)) = git2::Patch::from_diff(&diff, i) {
                if let Ok((_, a, r)) = patch.line_stats() {
                    added = a;
                    removed = r;
                }
                binary |= patch.delta().flags().is_binary();
            }
            let symlink_target = match (new_mode, new_blob) {
                (Some(0o120000), Some(id)) => repo
                    .find_blob(id)
                    .ok()
                    .map(|b| String::from_utf8_lossy(b.content()).into_owned()),
                _ => None,
            };
            out.push(Change {
                old_path: (kind == ChangeKind::Renamed)
                    .then(|| old_path.clone().unwrap_or_default()),
                path,
                kind,
                old_mode,
                new_mode,
                new_blob,
                lines_added: added,
                lines_removed: removed,
                binary,
                symlink_target,
                gitlink: new_mode == Some(0o160000),
            });
        }
        Ok(out)
    }

    /// The base tree with only `keep` applied.
    pub fn build_tree(&self, base: Oid, keep: &[&Change]) -> Result<Oid> {
        let base_tree = self
            .repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(g2("could not read the base tree"))?;
        let mut index = git2::Index::new().map_err(g2("could not make an index"))?;
        index
            .read_tree(&base_tree)
            .map_err(g2("could not read the base tree"))?;
        for c in keep {
            if let Some(old) = &c.old_path {
                index
                    .remove_path(Path::new(old))
                    .map_err(g2(format!("could not remove {old}")))?;
            }
            match (c.kind, c.new_blob, c.new_mode) {
                (ChangeKind::Deleted, _, _) => {
                    index
                        .remove_path(Path::new(&c.path))
                        .map_err(g2(format!("could not remove {}", c.path)))?;
                }
                (_, Some(id), Some(mode)) => {
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
                        flags: (c.path.len().min(0xfff)) as u16,
                        flags_extended: 0,
                        path: c.path.as_bytes().to_vec(),
                    };
                    index
                        .add(&entry)
                        .map_err(g2(format!("could not add {}", c.path)))?;
                }
                _ => {}
            }
        }
        index
            .write_tree_to(&self.repo)
            .map_err(g2("could not write the tree"))
    }

    /// Undoes `changes` on disk: base content back, added files removed.
    pub fn restore_in_worktree(&self, wt: &Worktree, base: Oid, changes: &[&Change]) -> Result<()> {
        let base_tree = self
            .repo
            .find_commit(base)
            .and_then(|c| c.tree())
            .map_err(g2("could not read the base tree"))?;
        for c in changes {
            let mut paths = vec![c.path.as_str()];
            if let Some(old) = &c.old_path {
                paths.push(old);
            }
            for rel in paths {
                let full = wt.path.join(rel);
                if !parents_are_real_dirs(&wt.path, rel) {
                    // Never write through a symlink the agent made.
                    remove_any(&wt.path.join(first_component(rel)));
                }
                remove_any(&full);
                if let Ok(entry) = base_tree.get_path(Path::new(rel)) {
                    let blob = self
                        .repo
                        .find_blob(entry.id())
                        .map_err(g2(format!("could not read {rel} from the base")))?;
                    if let Some(parent) = full.parent() {
                        fs::create_dir_all(parent).map_err(io("could not create", parent))?;
                    }
                    if entry.filemode() == 0o120000 {
                        let target = String::from_utf8_lossy(blob.content()).into_owned();
                        std::os::unix::fs::symlink(target, &full)
                            .map_err(io("could not restore symlink", &full))?;
                    } else {
                        fs::write(&full, blob.content()).map_err(io("could not restore", &full))?;
                        use std::os::unix::fs::PermissionsExt;
                        let mode = if entry.filemode() == 0o100755 {
                            0o755
                        } else {
                            0o644
                        };
                        let _ = fs::set_permissions(&full, fs::Permissions::from_mode(mode));
                    }
                }
            }
        }
        Ok(())
    }

    /// Commits `tree` on top of `base` and points `branch` at it. A branch
    /// whose tip is not ours (someone else committed) is never moved: the
    /// first free or ours of `branch-2`, `branch-3`, ... is used instead.
    pub fn commit_to_branch(
        &self,
        branch: &str,
        base: Oid,
        tree: Oid,
        message: &str,
        is_ours: &dyn Fn(&git2::Commit) -> bool,
    ) -> Result<(String, Oid)> {
        let _lock = RepoLock::acquire(&self.common)?;
        let repo = &self.repo;
        let sig = signature()?;
        let parent = repo
            .find_commit(base)
            .map_err(g2("could not read the base commit"))?;
        let tree = repo
            .find_tree(tree)
            .map_err(g2("could not read the tree"))?;
        let commit = repo
            .commit(None, &sig, &sig, message, &tree, &[&parent])
            .map_err(g2("could not create the commit"))?;
        let checked_out = self.checked_out_branches();
        for n in 1..1000 {
            let name = if n == 1 {
                branch.to_string()
            } else {
                format!("{branch}-{n}")
            };
            let refname = format!("refs/heads/{name}");
            if checked_out.contains(&refname) {
                continue;
            }
            let log = format!(
                "git-agent: {message_subject}",
                message_subject = message.lines().next().unwrap_or("")
            );
            match repo.find_reference(&refname) {
                Err(e) if e.code() == git2::ErrorCode::NotFound => {
                    match repo.reference(&refname, commit, false, &log) {
                        Ok(_) => return Ok((name, commit)),
                        Err(e) if e.code() == git2::ErrorCode::Exists => continue,
                        Err(e) => return Err(g2(format!("could not create {refname}"))(e)),
                    }
                }
                Err(e) => return Err(g2(format!("could not read {refname}"))(e)),
                Ok(existing) => {
                    let Some(tip) = existing.target() else {
                        continue;
                    };
                    let ours = tip == base || repo.find_commit(tip).is_ok_and(|c| is_ours(&c));
                    if !ours {
                        continue;
                    }
                    repo.reference_matching(&refname, commit, true, tip, &log)
                        .map_err(g2(format!("could not move {refname}")))?;
                    return Ok((name, commit));
                }
            }
        }
        Err(WorkspaceError::Git {
            command: format!("create branch {branch}"),
            stderr: "no free branch name".into(),
        })
    }

    /// Branches that some worktree (the user's included) has checked out.
    fn checked_out_branches(&self) -> Vec<String> {
        let mut heads = vec![self.common.join("HEAD")];
        if let Ok(entries) = fs::read_dir(self.common.join("worktrees")) {
            heads.extend(entries.flatten().map(|e| e.path().join("HEAD")));
        }
        heads
            .iter()
            .filter_map(|h| fs::read_to_string(h).ok())
            .filter_map(|t| t.trim().strip_prefix("ref: ").map(str::to_string))
            .collect()
    }

    /// Attaches the decision log to `commit` under `refs/notes/agent`.
    pub fn add_note(&self, commit: Oid, text: &str) -> Result<()> {
        let _lock = RepoLock::acquire(&self.common)?;
        let sig = signature()?;
        self.repo
            .note(&sig, &sig, Some("refs/notes/agent"), commit, text, true)
            .map(|_| ())
            .map_err(g2("could not write the note"))
    }
}

fn signature() -> Result<git2::Signature<'static>> {
    git2::Signature::now("git-agent", "git-agent@localhost")
        .map_err(g2("could not make a signature"))
}

fn first_component(rel: &str) -> &str {
    rel.split('/').next().unwrap_or(rel)
}

/// Whether every directory on the way to `rel` is a real directory (not a symlink).
fn parents_are_real_dirs(root: &Path, rel: &str) -> bool {
    let mut p = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        p.push(part);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => return false,
            Ok(m) if !m.is_dir() => return false,
            _ => {}
        }
    }
    true
}

fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

fn run_git(cwd: &Path, pre: &[&str], args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(cwd)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.untrackedCache=false",
        ])
        .args(pre)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null());
    let command = format!("git {} {}", pre.join(" "), args.join(" "));
    let out = cmd.output().map_err(|e| WorkspaceError::Git {
        command: command.clone(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(WorkspaceError::Git {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
