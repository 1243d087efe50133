//! What an agent changed: [`Change`], [`ChangeKind`], [`ChangeSet`], and
//! [`Repo::change_set`], which stages a worktree in a private index and
//! diffs the result against the base tree.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use git2::{Delta, DiffFindOptions, DiffOptions, Oid, Repository};
use serde::{Serialize, Serializer};

use super::command::{parse_oid, Git};
use super::error::{io_err, Result, WorkspaceError};
use super::lock::unique;
use super::repo::Repo;
use super::worktree::Worktree;

pub(super) const MODE_TREE: u32 = 0o040000;
pub(super) const MODE_EXEC: u32 = 0o100755;
pub(super) const MODE_LINK: u32 = 0o120000;
pub(super) const MODE_GITLINK: u32 = 0o160000;

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
    #[cfg(test)]
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
    /// Paths on disk git refuses to record (`error: invalid path`): names
    /// some file systems read as `.git` (`core.protectNTFS`/`protectHFS`).
    /// Never in the tree; the judge makes each a violation.
    pub refused: Vec<String>,
    /// What is on disk and not in `tree` — untracked or ignored, whatever
    /// `.gitignore` (which the agent writes) says — collapsed to the
    /// topmost directory: what checks would see that a commit of `tree`
    /// would not. Listed by [`Repo::candidate`] only (empty otherwise).
    #[serde(skip)]
    pub not_in_tree: Vec<String>,
}

impl ChangeSet {
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
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

impl Repo {
    /// Stages the whole worktree (in a copy of its index, so the agent's own
    /// index is left alone), writes it as a tree and diffs `base`'s tree
    /// against it.
    pub fn change_set(&self, wt: &Worktree, base: Oid) -> Result<ChangeSet> {
        self.staged_change_set(wt, base, false)
    }

    /// The change set the checks will judge, with what is on disk and not
    /// in its tree ([`ChangeSet::not_in_tree`]), listed from the same
    /// private index that made the tree: the paths that index does not
    /// hold are exactly those the tree does not.
    pub fn candidate(&self, wt: &Worktree, base: Oid) -> Result<ChangeSet> {
        self.staged_change_set(wt, base, true)
    }

    fn staged_change_set(&self, wt: &Worktree, base: Oid, list_others: bool) -> Result<ChangeSet> {
        self.check_owns(wt)?;
        let index = TempIndex::new(wt)?;
        let git = self.staging_git(wt, &index)?;
        // git-agent's own copy has no bits the agent set; only an index
        // taken from the admin dir (older worktrees) needs them cleared.
        if !index.from_pristine {
            clear_index_bits(&git, !wt.sparse)?;
        }
        let staged = stage_all(&git, &wt.excluded)?;
        let (tree, held) = self.write_tree(&git, &index, list_others)?;
        let not_in_tree = match (list_others, held) {
            (false, _) => Vec::new(),
            (true, Some(held)) => others_on_disk(&wt.path, &held, wt.deadline)?,
            (true, None) => others(&git)?,
        };
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
            uncommitted_nested_repos: staged.nested,
            refused: staged.refused,
            not_in_tree,
        })
    }

    /// The staged index as a tree and, when `with_paths`, the paths it
    /// holds (sorted): written in this process (libgit2), or by
    /// `git write-tree` (no paths) when libgit2 cannot read what git wrote.
    fn write_tree(
        &self,
        git: &Git,
        index: &TempIndex,
        with_paths: bool,
    ) -> Result<(Oid, Option<Vec<Vec<u8>>>)> {
        let in_process = self.open().ok().and_then(|repo| {
            let mut staged = git2::Index::open(&index.path).ok()?;
            let tree = staged.write_tree_to(&repo).ok()?;
            let paths = with_paths.then(|| {
                let mut paths: Vec<Vec<u8>> = staged.iter().map(|e| e.path).collect();
                paths.sort();
                paths.dedup();
                paths
            });
            Some((tree, paths))
        });
        if let Some((tree, paths)) = in_process {
            return Ok((tree, paths));
        }
        let out = git.run(&["write-tree"])?;
        Ok((parse_oid(&out.stdout, git, "write-tree")?, None))
    }

    /// `wt`'s admin dir is in this repository's common dir.
    fn check_owns(&self, wt: &Worktree) -> Result<()> {
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
        Ok(())
    }

    /// git on `wt` with the private `index` and the sparse setting `wt` was
    /// created with, after its admin dir is rewritten from git-agent's own
    /// record: nothing the agent configured there (a filter, fsmonitor or
    /// pager command, `core.trustctime=false`) reaches this git.
    fn staging_git(&self, wt: &Worktree, index: &TempIndex) -> Result<Git> {
        wt.sanitize_admin()?;
        Ok(wt
            .git(&self.git_env)
            .env("GIT_INDEX_FILE", &index.path)
            .config(if wt.sparse {
                "core.sparseCheckout=true"
            } else {
                "core.sparseCheckout=false"
            })
            .config("sparse.expectFilesOutsideOfPatterns=false")
            .config("core.splitIndex=false")
            // Stat data is trusted only with the change time, which no
            // process can set back.
            .config("core.trustctime=true")
            .config("core.checkStat=default")
            .deadline(wt.deadline))
    }
}

/// What `git ls-files --others --directory` says of `root` against an
/// index holding `held` (sorted), without a git process: files and
/// symlinks the index does not hold, and directories under which it holds
/// nothing, not descended (nested repositories among them); `.git` at any
/// depth and special files (fifos, sockets) are not listed, as git lists
/// neither. Bounded by the run's `deadline`, as the git it stands for is.
fn others_on_disk(
    root: &Path,
    held: &[Vec<u8>],
    deadline: Option<std::time::Instant>,
) -> Result<Vec<String>> {
    let mut listing = Listing {
        root,
        held,
        deadline,
        seen: 0,
        out: Vec::new(),
    };
    listing.walk(b"")?;
    listing.out.sort();
    Ok(listing.out)
}

/// The walk of [`others_on_disk`].
struct Listing<'a> {
    root: &'a Path,
    held: &'a [Vec<u8>],
    deadline: Option<std::time::Instant>,
    seen: usize,
    out: Vec<String>,
}

impl Listing<'_> {
    fn walk(&mut self, rel: &[u8]) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.root.join(OsStr::from_bytes(rel));
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            self.seen += 1;
            if self.seen % 4096 == 0 && self.deadline.is_some_and(|d| std::time::Instant::now() > d)
            {
                return Err(WorkspaceError::Deadline {
                    command: "listing what the worktree holds beyond the candidate tree".into(),
                });
            }
            let name = entry.file_name();
            if name.as_bytes() == b".git" {
                continue;
            }
            let mut path = rel.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            let kind = entry.file_type().map_err(io_err("listing", &dir))?;
            let listed = if self.held.binary_search(&path).is_ok() {
                false
            } else if kind.is_dir() {
                if self.holds_below(&path) {
                    self.walk(&path)?;
                    false
                } else {
                    true
                }
            } else {
                kind.is_file() || kind.is_symlink()
            };
            if listed {
                self.out.push(String::from_utf8_lossy(&path).into_owned());
            }
        }
        Ok(())
    }

    /// The index holds something below the directory `dir`.
    fn holds_below(&self, dir: &[u8]) -> bool {
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        let at = self
            .held
            .partition_point(|p| p.as_slice() < prefix.as_slice());
        self.held.get(at).is_some_and(|p| p.starts_with(&prefix))
    }
}

/// The paths on disk the staged index does not hold (untracked or
/// ignored), collapsed to their topmost directory.
fn others(git: &Git) -> Result<Vec<String>> {
    let out = git.run(&["ls-files", "--others", "--directory", "-z"])?;
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).trim_end_matches('/').to_string())
        .collect())
}

/// What `git add -A` could not stage.
struct Staged {
    /// Nested repositories without a commit.
    nested: Vec<String>,
    /// Paths git calls invalid.
    refused: Vec<String>,
}

/// `git add -A` of the whole worktree. Nested repositories without a commit
/// and paths git refuses cannot be staged: they are returned; any other
/// error fails.
fn stage_all(git: &Git, excluded: &[String]) -> Result<Staged> {
    let staged = stage_everything(git)?;
    if !excluded.is_empty() {
        // What git-agent put in the worktree (copied files, caches) is
        // never staged, whatever `.gitignore` (the agent's) says: taken out
        // of the index again (none of it is tracked at the base).
        let mut args: Vec<std::ffi::OsString> = [
            "rm",
            "--cached",
            "-r",
            "-q",
            "--ignore-unmatch",
            "--sparse",
            "--",
        ]
        .iter()
        .map(Into::into)
        .collect();
        args.extend(excluded.iter().map(|p| format!(":(literal){p}").into()));
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (out, command) = git.run_unchecked(&refs, None)?;
        if !out.status.success() {
            return Err(git.failure(command, &out));
        }
    }
    Ok(staged)
}

fn stage_everything(git: &Git) -> Result<Staged> {
    let (out, command) = git.run_unchecked(
        &[
            "add".as_ref(),
            "-A".as_ref(),
            "--sparse".as_ref(),
            "--ignore-errors".as_ref(),
        ],
        None,
    )?;
    let mut staged = Staged {
        nested: Vec::new(),
        refused: Vec::new(),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut unknown = false;
        for line in stderr.lines() {
            let quoted = |prefix: &str, suffix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    .map(str::to_string)
            };
            if let Some(p) = quoted("error: '", "/' does not have a commit checked out") {
                staged.nested.push(p);
            } else if let Some(p) = quoted("error: invalid path '", "'") {
                staged.refused.push(p);
            } else if quoted("error: unable to add '", "' to index").is_some() {
                // Follows the line that says why.
            } else if line.starts_with("error:") || line.starts_with("fatal:") {
                unknown = true;
            }
        }
        if unknown || (staged.nested.is_empty() && staged.refused.is_empty()) {
            return Err(git.failure(command, &out));
        }
    }
    Ok(staged)
}

/// Private copy of a worktree's index, removed on drop.
struct TempIndex {
    path: PathBuf,
    /// Copied from git-agent's own record of the checkout.
    from_pristine: bool,
}

impl TempIndex {
    /// A copy of the index git-agent wrote when it checked the worktree out
    /// (kept where the agent cannot write), never of the agent's own: its
    /// stat data, skip-worktree and assume-unchanged bits are git-agent's.
    /// Worktrees made before that copy existed fall back to the admin dir's.
    fn new(wt: &Worktree) -> Result<TempIndex> {
        let pristine = wt.pristine_index();
        let (source, from_pristine) = match &pristine {
            Some(p) if p.is_file() => (p.clone(), true),
            _ => (wt.admin_dir.join("index"), false),
        };
        let path = wt.admin_dir.join(format!(
            "git-agent-index.{}.{}",
            std::process::id(),
            unique()
        ));
        match super::worktree::copy_index(&source, &path) {
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
        Ok(TempIndex {
            path,
            from_pristine,
        })
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
        match change_of(repo, &diff, idx, &delta)? {
            Ok(change) => changes.push(change),
            Err(lossy) => return Ok(Err(lossy)),
        }
    }
    Ok(Ok(changes))
}

/// Delta `idx` of `diff` as a [`Change`]. The inner error is a non-UTF-8
/// path.
fn change_of(
    repo: &Repository,
    diff: &git2::Diff,
    idx: usize,
    delta: &git2::DiffDelta,
) -> std::result::Result<std::result::Result<Change, String>, git2::Error> {
    let kind = change_kind(delta.status());
    let (old_f, new_f) = (delta.old_file(), delta.new_file());
    let (path, old_path) = match change_paths(kind, &old_f, &new_f) {
        Ok(paths) => paths,
        Err(lossy) => return Ok(Err(lossy)),
    };
    let mode = |f: &git2::DiffFile| u32::from(f.mode());
    let old_mode = (kind != ChangeKind::Added).then(|| mode(&old_f));
    let new_mode = (kind != ChangeKind::Deleted).then(|| mode(&new_f));
    let gitlink = old_mode == Some(MODE_GITLINK) || new_mode == Some(MODE_GITLINK);
    let (lines_added, lines_removed, binary) = if gitlink {
        (0, 0, false)
    } else {
        line_stats(diff, idx)?
    };
    let new_blob = new_mode.map(|_| new_f.id());
    let symlink_target = match (new_mode, new_blob) {
        (Some(MODE_LINK), Some(id)) => {
            Some(String::from_utf8_lossy(repo.find_blob(id)?.content()).into_owned())
        }
        _ => None,
    };
    Ok(Ok(Change {
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
    }))
}

fn change_kind(status: Delta) -> ChangeKind {
    match status {
        Delta::Added | Delta::Copied | Delta::Untracked => ChangeKind::Added,
        Delta::Deleted => ChangeKind::Deleted,
        Delta::Renamed => ChangeKind::Renamed,
        Delta::Typechange => ChangeKind::TypeChanged,
        Delta::Modified
        | Delta::Ignored
        | Delta::Unmodified
        | Delta::Conflicted
        | Delta::Unreadable => ChangeKind::Modified,
    }
}

/// The change's path and, for a rename, its old path; the error is the
/// first one that is not UTF-8, lossily decoded.
fn change_paths(
    kind: ChangeKind,
    old_f: &git2::DiffFile,
    new_f: &git2::DiffFile,
) -> std::result::Result<(String, Option<String>), String> {
    let utf8 = |f: &git2::DiffFile| -> std::result::Result<String, String> {
        let bytes = f.path_bytes().unwrap_or_default();
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| String::from_utf8_lossy(bytes).into_owned())
    };
    Ok(match kind {
        ChangeKind::Deleted => (utf8(old_f)?, None),
        ChangeKind::Renamed => (utf8(new_f)?, Some(utf8(old_f)?)),
        _ => (utf8(new_f)?, None),
    })
}

/// Lines added and removed by delta `idx` of `diff`, and whether it is
/// binary.
fn line_stats(
    diff: &git2::Diff,
    idx: usize,
) -> std::result::Result<(usize, usize, bool), git2::Error> {
    let Some(patch) = git2::Patch::from_diff(diff, idx)? else {
        return Ok((0, 0, false));
    };
    let binary = patch.delta().flags().is_binary();
    let (_, added, removed) = patch.line_stats()?;
    Ok((added, removed, binary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// The candidate's `not_in_tree` is listed without git; it must say
    /// what `git ls-files --others --directory` says against the same
    /// index, on a worktree made to trip a hand-written walk.
    #[test]
    fn what_the_candidate_lacks_is_what_git_lists() {
        let fx = fixture();
        let wt = fx.full("others");
        let p = &wt.path;
        write(&p.join(".gitignore"), "*.o\nbuild/\n");
        write(&p.join("src/main.o"), "ignored, in a tracked dir");
        write(&p.join("build/out/a.bin"), "ignored dir");
        write(&p.join("notes/todo.txt"), "untracked dir");
        write(&p.join("src/deep/new.rs"), "staged");
        fs::create_dir_all(p.join("empty/inner")).expect("empty dirs");
        git_in(p, &["init", "-q", "nested"]);
        write(&p.join("nested/f.txt"), "in a nested repo");
        git_in(p, &["init", "-q", "src/nested2"]);
        std::os::unix::fs::symlink("/etc", p.join("src/to_etc")).expect("symlink");
        nix::unistd::mkfifo(&p.join("src/fifo"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        let cs = fx.repo.candidate(&wt, fx.base).expect("candidate");
        // The same listing by git, against the index the candidate staged:
        // the tree read into a fresh index.
        let index = wt.admin_dir.join("compare-index");
        let env = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .current_dir(p)
                .env("GIT_INDEX_FILE", &index)
                .args(args)
                .output()
                .expect("git");
            assert!(out.status.success(), "{args:?}");
            out.stdout
        };
        env(&["read-tree", &cs.tree.to_string()]);
        let mut git: Vec<String> = env(&["ls-files", "--others", "--directory", "-z"])
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).trim_end_matches('/').to_string())
            .collect();
        git.sort();
        assert!(git.contains(&"src/main.o".to_string()), "control: {git:?}");
        assert!(git.contains(&"nested".to_string()), "control: {git:?}");
        assert_eq!(cs.not_in_tree, git);
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
        // Two drivers: a plain name, and one whose name holds `=` (a `-c
        // filter.<name>.clean=` override of it would set another key).
        let config = format!(
            "[filter \"evil\"]\n\tclean = {0}\n\trequired = true\n[filter \"a=b\"]\n\tclean = {0}\n",
            script.display()
        );
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(wt.admin_dir.join("config.worktree"))
            .expect("config.worktree exists in a sparse worktree");
        f.write_all(config.as_bytes()).expect("plant filter");
        for (attributes, file) in [
            ("* filter=evil\n", "src/lib.rs"),
            ("* filter=a=b\n", "src/b.rs"),
        ] {
            write(&wt.path.join(".gitattributes"), attributes);
            write(&wt.path.join(file), "edit\n");
            // Control: the agent's own git runs the planted filter.
            git_in(&wt.path, &["add", file]);
            assert!(marker.exists(), "control: {attributes} runs for the agent");
            fs::remove_file(&marker).expect("reset");
        }
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        assert!(
            !marker.exists(),
            "a planted clean filter ran in git-agent's git"
        );
        assert_eq!(by_path(&cs, "src/lib.rs").kind, ChangeKind::Modified);
        assert!(
            !fs::read_to_string(wt.admin_dir.join("config.worktree"))
                .expect("config.worktree")
                .contains("filter"),
            "the admin dir is rewritten from git-agent's record"
        );
    }
}
