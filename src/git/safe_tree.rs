//! Writing and removing inside a worktree without escaping it: no symlink
//! is followed out of the worktree, and [`Repo::restore_in_worktree`]
//! undoes chosen changes on disk.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use super::changes::{Change, ChangeKind, MODE_EXEC, MODE_GITLINK, MODE_LINK, MODE_TREE};
use super::error::{io_err, Result, WorkspaceError};
use super::repo::Repo;
use super::worktree::Worktree;

impl Repo {
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
            let Some((path, gitlink_in_way)) = base_side(change)? else {
                continue;
            };
            let (mode, content) = self.base_content(&repo, &base_tree, base, path)?;
            fs_tree.write(path, mode, content.as_deref(), gitlink_in_way)?;
        }
        Ok(())
    }

    /// The mode and content `path` has in `base_tree` (the tree of `base`);
    /// no content for a gitlink.
    fn base_content(
        &self,
        repo: &Repository,
        base_tree: &git2::Tree,
        base: Oid,
        path: &str,
    ) -> Result<(u32, Option<Vec<u8>>)> {
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
        Ok((mode, content))
    }
}

/// Where undoing `change` writes the base's content back: the path and
/// whether a nested repository there belongs to the change (and may be
/// deleted). `None` for an added path, which the base did not have.
fn base_side(change: &Change) -> Result<Option<(&str, bool)>> {
    match change.kind {
        ChangeKind::Added => Ok(None),
        ChangeKind::Renamed => {
            let old = change
                .old_path
                .as_deref()
                .ok_or_else(|| WorkspaceError::InvalidChange {
                    path: change.path.clone(),
                    reason: "rename without old path".into(),
                })?;
            Ok(Some((old, false)))
        }
        ChangeKind::Deleted | ChangeKind::Modified | ChangeKind::TypeChanged => {
            Ok(Some((change.path.as_str(), change.gitlink)))
        }
    }
}

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

/// Removes a directory tree without following symlinks; tolerates absence
/// and directories the agent made unwritable.
pub(super) fn remove_tree(path: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use std::os::unix::fs::MetadataExt;
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
}
