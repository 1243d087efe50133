//! [`Repo`], the user's repository: how it is found and opened, and the
//! handles every other part of [`crate::git`] starts from.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{Oid, Repository};

use super::command::{arg_eq, Git};
use super::error::{io_err, Result, WorkspaceError};

/// The handles [`Repo::open`] lends, while nobody holds them: shared by
/// every thread of the process (a `Repository` is used by one thread at a
/// time, and may move between them), so that a run's steps on the
/// runtime's blocking threads do not each parse the config again.
static SPARE: Mutex<Vec<(PathBuf, Repository)>> = Mutex::new(Vec::new());

/// Spare handles kept at most (a batch of `-j N` runs holds up to N).
const SPARE_LIMIT: usize = 16;

/// A libgit2 handle lent by [`Repo::open`]; given back to the spares when
/// dropped.
pub struct Opened {
    git_dir: PathBuf,
    repo: Option<Repository>,
}

impl std::ops::Deref for Opened {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        self.repo.as_ref().expect("held until dropped")
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        let Some(repo) = self.repo.take() else {
            return;
        };
        let git_dir = std::mem::take(&mut self.git_dir);
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < SPARE_LIMIT {
            spare.push((git_dir, repo));
        }
    }
}

/// The user's repository. Holds paths only; see the module docs.
#[derive(Debug, Clone)]
pub struct Repo {
    pub(super) git_dir: PathBuf,
    pub(super) common_dir: PathBuf,
    pub(super) workdir: Option<PathBuf>,
    pub(super) git_env: Vec<(OsString, OsString)>,
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
    #[cfg(test)]
    pub fn with_git_env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Repo {
        self.git_env
            .push((key.into(), value.as_ref().to_os_string()));
        self
    }

    /// The shared git dir (`.git` of the main checkout).
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// The user's checkout; `None` for a bare repository.
    #[cfg(test)]
    pub fn workdir(&self) -> Option<&Path> {
        self.workdir.as_deref()
    }

    /// A libgit2 handle: one an earlier call gave back when it was dropped
    /// (on any thread), else a fresh one. Opening parses every config file
    /// (system, global, the repository's), which a run would otherwise do
    /// some twenty times; a kept handle still reads refs, objects and
    /// config changes from disk as it goes.
    pub fn open(&self) -> Result<Opened> {
        let kept = {
            let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
            spare
                .iter()
                .rposition(|(dir, _)| *dir == self.git_dir)
                .map(|i| spare.swap_remove(i).1)
        };
        let repo = match kept {
            Some(repo) => repo,
            None => Repository::open(&self.git_dir).map_err(|source| {
                WorkspaceError::NotARepository {
                    path: self.git_dir.clone(),
                    source,
                }
            })?,
        };
        Ok(Opened {
            git_dir: self.git_dir.clone(),
            repo: Some(repo),
        })
    }

    pub(super) fn git2_err(
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
    pub(super) fn git(&self) -> Git {
        Git::new(&self.common_dir, &self.git_env).arg(arg_eq("--git-dir=", &self.git_dir))
    }

    /// The branch `rev` names, as a pull request's base: `HEAD` is the
    /// branch checked out in the user's checkout (none when detached);
    /// `origin/x` and `x` are `x` when such a branch exists here or on
    /// `origin`.
    pub fn branch_of(&self, rev: &str) -> Option<String> {
        let repo = self.open().ok()?;
        if rev == "HEAD" || rev == "@" {
            let head = repo.head().ok()?;
            if !head.is_branch() {
                return None;
            }
            return head.shorthand().map(str::to_string).ok();
        }
        let name = rev.strip_prefix("origin/").unwrap_or(rev);
        let exists = |r: String| repo.find_reference(&r).is_ok();
        (exists(format!("refs/heads/{name}")) || exists(format!("refs/remotes/origin/{name}")))
            .then(|| name.to_string())
    }

    /// The blob at each of `paths` (relative to the top of the checkout) in
    /// `HEAD`'s tree, read with one open of the repository; `None` where
    /// there is no commit or no such file.
    pub fn blobs_at_head(&self, paths: &[&Path]) -> Vec<Option<Oid>> {
        self.entries_at(None, paths, true)
    }

    /// As [`Repo::blobs_at_head`], in the tree of `rev` (a brief's base).
    pub fn blobs_at(&self, rev: &str, paths: &[&Path]) -> Vec<Option<Oid>> {
        let commit = self.open().ok().and_then(|r| {
            r.revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .ok()
                .map(|c| c.id())
        });
        match commit {
            Some(oid) => self.entries_at(Some(oid), paths, true),
            None => vec![None; paths.len()],
        }
    }

    /// The object at each of `paths` in the tree of `commit` (`None`:
    /// `HEAD`): blobs only when `blobs_only`, else trees too.
    pub fn entries_at(
        &self,
        commit: Option<Oid>,
        paths: &[&Path],
        blobs_only: bool,
    ) -> Vec<Option<Oid>> {
        let Ok(repo) = self.open() else {
            return vec![None; paths.len()];
        };
        let tree = match commit {
            None => repo.head().ok().and_then(|h| h.peel_to_tree().ok()),
            Some(oid) => repo.find_commit(oid).ok().and_then(|c| c.tree().ok()),
        };
        let Some(tree) = tree else {
            return vec![None; paths.len()];
        };
        paths
            .iter()
            .map(|rel| {
                let entry = tree.get_path(rel).ok()?;
                let kind = entry.kind();
                (kind == Some(git2::ObjectType::Blob)
                    || (!blobs_only && kind == Some(git2::ObjectType::Tree)))
                .then(|| entry.id())
            })
            .collect()
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;

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
}
