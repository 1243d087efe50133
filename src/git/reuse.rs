//! A worktree git-agent made before, made again for a new run (the pool of
//! `workspace.pool`): the same files a fresh checkout of the new commit
//! would have, in time proportional to what differs.
//!
//! Everything an earlier agent could have left is undone from git-agent's
//! own record, never read from the worktree: the admin dir's links, config
//! and sparse patterns are rewritten ([`Worktree::sanitize_admin`]), the
//! index and files are reset to the commit (`read-tree --reset -u`, which
//! skips files whose stat data says they are unchanged), everything git
//! does not track is removed (`clean -ffdx`), and `HEAD` is detached at
//! the commit. Any error on the way means the caller makes a fresh one.

use std::ffi::OsStr;
use std::path::Path;

use git2::Oid;

use super::error::{io_err, Result};
use super::worktree::sparse_patterns;
use super::{Repo, Worktree};

impl Repo {
    /// `path`'s worktree (admin dir `admin_dir`, as git-agent recorded it)
    /// reset to `commit`, sparse with `sparse`.
    pub fn reuse_worktree(
        &self,
        path: &Path,
        admin_dir: &Path,
        commit: Oid,
        sparse: Option<&[String]>,
    ) -> Result<Worktree> {
        let patterns = sparse.map(sparse_patterns).transpose()?;
        let worktrees = self.common_dir.join("worktrees");
        if admin_dir.parent() != Some(worktrees.as_path()) || !admin_dir.is_dir() {
            return Err(super::WorkspaceError::InvalidWorktreePath {
                path: path.to_path_buf(),
                reason: format!(
                    "admin dir {} is not one of this repository's",
                    admin_dir.display()
                ),
            });
        }
        let wt = Worktree {
            path: path.to_path_buf(),
            admin_dir: admin_dir.to_path_buf(),
            sparse: patterns.is_some(),
            patterns: patterns.clone(),
            deadline: None,
            excluded: Vec::new(),
        };
        wt.sanitize_admin()?;
        // The index the agent left is not read: git starts from git-agent's
        // own copy of the one it wrote at checkout, whose stat data (ctime
        // included, which no process can set back) tells the files the
        // agent touched from those it did not. Without one, every file is
        // written again.
        let index = admin_dir.join("index");
        let _ = std::fs::remove_file(&index);
        // A sparse checkout on either side changes which files are there:
        // then everything is written again, from no index.
        let usable = |p: &std::path::PathBuf| p.is_file() && !wt.sparse && !has_skip_worktree(p);
        match wt.pristine_index().filter(usable) {
            Some(pristine) => super::worktree::copy_index(&pristine, &index)
                .map_err(io_err("copying index", &pristine))?,
            // Without it nothing on disk can be told from what git wrote:
            // all of it goes, and the checkout is written whole.
            None => empty_but_dotgit(path)?,
        }
        let hex = commit.to_string();
        let git = || {
            wt.git(&self.git_env)
                .config(if wt.sparse {
                    "core.sparseCheckout=true"
                } else {
                    "core.sparseCheckout=false"
                })
                .config("core.sparseCheckoutCone=false")
                .config("checkout.workers=0")
                .config("core.splitIndex=false")
                .config("core.trustctime=true")
                .config("core.checkStat=default")
        };
        git().run(&["read-tree", "--reset", "-u", &hex])?;
        let clean: [&OsStr; 3] = ["clean".as_ref(), "-ffdxq".as_ref(), "--".as_ref()];
        git().run_os(&clean, None)?;
        // A detached HEAD at the commit, written by us: no ref, no reflog to trust.
        let head = admin_dir.join("HEAD");
        let _ = std::fs::remove_file(&head);
        std::fs::write(&head, format!("{hex}\n")).map_err(io_err("writing", &head))?;
        let aside = wt.aside_dir();
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(io_err("removing", &aside))?;
        }
        wt.save_pristine_index()?;
        Ok(wt)
    }
}

/// Whether an index marks entries skip-worktree (it was a sparse checkout's).
fn has_skip_worktree(index: &Path) -> bool {
    const SKIP_WORKTREE: u16 = 1 << 14;
    match git2::Index::open(index) {
        Ok(index) => index.iter().any(|e| e.flags_extended & SKIP_WORKTREE != 0),
        Err(_) => true,
    }
}

/// Removes everything in the worktree but its `.git` link.
fn empty_but_dotgit(path: &Path) -> Result<()> {
    for entry in std::fs::read_dir(path)
        .map_err(io_err("reading", path))?
        .flatten()
    {
        if entry.file_name() == ".git" {
            continue;
        }
        let p = entry.path();
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        removed.map_err(io_err("removing", &p))?;
    }
    Ok(())
}
