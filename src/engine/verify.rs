//! The one judge of a change set, for runs and reviews alike.
//!
//! A run asks it about what its agent left in the worktree; `git agent
//! review` asks it about a pull request's head. Both get the same findings
//! from the same rules — oversized files, the scope (a rename is judged at
//! both ends), symlinks that leave the worktree (by their target text *and*
//! on disk), embedded repositories, `escalate.paths`, `max_changed_lines` —
//! and word them for their own readers.

use std::path::Path;

use crate::engine::symlink;
use crate::git::{Change, ChangeKind};
use crate::model::event::{ChangeKindRecord, ScopedChange, VerdictRecord};
use crate::spec::brief::Brief;

/// Largest file a run may leave in its worktree (GitHub refuses bigger
/// ones); a bigger one escalates the run before anything is hashed.
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// git-agent's own files: a change to them changes the rules it is judged by.
pub const OWN_FILES: &str = ".agents/";

/// A change set judged by the brief's scope.
pub struct ScopeJudgement {
    /// Every change with its verdict, in the change set's order.
    pub scoped: Vec<ScopedChange>,
    /// The changes the scope allows.
    pub allowed: Vec<Change>,
    /// The changes it does not (outside `write`, or denied).
    pub outside: Vec<Change>,
}

/// A change that must never be committed, whatever the scope says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    /// A symlink whose target resolves outside the worktree.
    SymlinkEscapes { path: String, target: String },
    /// An embedded git repository (a gitlink).
    Gitlink { path: String },
    /// A path with a component that some file system reads as `.git`
    /// (`.GIT`, `.git.`, `git~1`, `.git` with HFS+-ignored code points):
    /// checked out there, it would be a repository's own git dir.
    GitPath { path: String },
}

/// The rules of one brief, applied to a worktree at `root`.
pub struct Verifier<'a> {
    pub brief: &'a Brief,
    pub root: &'a Path,
}

impl Verifier<'_> {
    /// Regular files larger than [`MAX_FILE_BYTES`], found before anything
    /// hashes the worktree (staging one would cost minutes and gigabytes).
    pub fn oversized(&self) -> Vec<(String, u64)> {
        oversized_files(self.root, MAX_FILE_BYTES)
    }

    /// Each change with the scope's verdict, split into allowed and not.
    pub fn scope(&self, changes: &[Change]) -> ScopeJudgement {
        let scoped = scope_changes(self.brief, changes);
        let (mut allowed, mut outside) = (Vec::new(), Vec::new());
        for (change, s) in changes.iter().zip(&scoped) {
            if matches!(s.verdict, VerdictRecord::Allowed { .. }) {
                allowed.push(change.clone());
            } else {
                outside.push(change.clone());
            }
        }
        ScopeJudgement {
            scoped,
            allowed,
            outside,
        }
    }

    /// The changes among `changes` that must never be committed.
    pub fn unsafe_changes(&self, changes: &[Change]) -> Vec<Unsafe> {
        let mut found = Vec::new();
        for c in changes {
            if let Some(target) = &c.symlink_target {
                if self.symlink_escapes(c, target) {
                    found.push(Unsafe::SymlinkEscapes {
                        path: c.path.clone(),
                        target: target.clone(),
                    });
                }
            }
            if c.gitlink {
                found.push(Unsafe::Gitlink {
                    path: c.path.clone(),
                });
            }
            if c.kind != ChangeKind::Deleted && c.path.split('/').any(reads_as_dot_git) {
                found.push(Unsafe::GitPath {
                    path: c.path.clone(),
                });
            }
        }
        found
    }

    /// `changes` without the ones [`Verifier::unsafe_changes`] names.
    pub fn committable(&self, changes: Vec<Change>) -> Vec<Change> {
        changes
            .into_iter()
            .filter(|c| self.unsafe_changes(std::slice::from_ref(c)).is_empty())
            .collect()
    }

    /// The paths among `changes` that `escalate.paths` lists: a human
    /// must look, though the checks may pass.
    pub fn watched<'c>(&self, changes: &'c [Change]) -> Vec<&'c str> {
        changes
            .iter()
            .filter(|c| self.brief.escalate.paths.first_match(&c.path).is_some())
            .map(|c| c.path.as_str())
            .collect()
    }

    /// `(lines, max)` when `changes` change more lines than
    /// `escalate.max_changed_lines` allows.
    pub fn too_many_lines(&self, changes: &[Change]) -> Option<(usize, u64)> {
        let lines = lines_changed(changes);
        let max = self.brief.escalate.max_changed_lines?;
        (lines as u64 > max).then_some((lines, max))
    }

    /// Whether `change` touches git-agent's own briefs or config.
    pub fn touches_own_files(&self, change: &Change) -> bool {
        change.paths().any(|p| p.starts_with(OWN_FILES))
    }

    /// A link escapes by its text (`../..`, absolute) or by what it
    /// resolves to on disk (through other links in the worktree).
    fn symlink_escapes(&self, change: &Change, target: &str) -> bool {
        symlink_escapes(&change.path, target) || symlink::escapes(self.root, &change.path)
    }
}

/// Whether a path component is `.git` to some file system, the way git's
/// own `core.protectHFS` / `core.protectNTFS` checks (and `git fsck`'s
/// `hasDotgit`) see it: case folded; HFS+ ignorable code points dropped;
/// NTFS trailing dots and spaces, its 8.3 short name `git~1`, and its
/// alternate data streams (`.git::$INDEX_ALLOCATION`).
pub fn reads_as_dot_git(component: &str) -> bool {
    let folded: String = component
        .chars()
        .filter(|c| {
            !matches!(c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
        })
        .collect::<String>()
        .to_ascii_lowercase();
    let name = folded.split(':').next().unwrap_or("");
    let name = name.trim_end_matches(['.', ' ']);
    name == ".git" || name == "git~1"
}

/// Lines added plus removed over `changes`.
pub fn lines_changed(changes: &[Change]) -> usize {
    changes
        .iter()
        .map(|c| c.lines_added + c.lines_removed)
        .sum()
}

/// Each change with the brief's verdict on it. A rename must be allowed at
/// both ends: moving a file out of a denied path is a change to that path.
pub fn scope_changes(brief: &Brief, changes: &[Change]) -> Vec<ScopedChange> {
    changes
        .iter()
        .map(|c| {
            let mut verdict = brief.scope.classify(&c.path);
            if let Some(old) = &c.old_path {
                let old_verdict = brief.scope.classify(old);
                if verdict.is_allowed() && !old_verdict.is_allowed() {
                    verdict = old_verdict;
                }
            }
            ScopedChange {
                path: c.path.clone(),
                old_path: c.old_path.clone(),
                kind: kind_of(c),
                lines_added: c.lines_added,
                lines_removed: c.lines_removed,
                verdict: verdict.into(),
                symlink_target: c.symlink_target.clone(),
            }
        })
        .collect()
}

/// Whether a symlink at `path` (repo-relative) with `target` resolves
/// outside the worktree, judged by the target text alone.
pub fn symlink_escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: i64 = path.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn kind_of(c: &Change) -> ChangeKindRecord {
    match c.kind {
        ChangeKind::Added => ChangeKindRecord::Added,
        ChangeKind::Modified if c.old_mode != c.new_mode => ChangeKindRecord::ModeChanged,
        ChangeKind::Modified => ChangeKindRecord::Modified,
        ChangeKind::Deleted => ChangeKindRecord::Deleted,
        ChangeKind::Renamed => ChangeKindRecord::Renamed,
        ChangeKind::TypeChanged => ChangeKindRecord::TypeChanged,
    }
}

/// Regular files under `root` (not `.git`, symlinks not followed) larger
/// than `limit`, as repository-relative paths with their sizes.
pub fn oversized_files(root: &Path, limit: u64) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if dir == root && entry.file_name() == ".git" {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && meta.len() > limit {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                found.push((rel.to_string_lossy().into_owned(), meta.len()));
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::symlink_escapes;

    #[test]
    fn names_that_some_file_system_reads_as_dot_git() {
        for name in [
            ".git",
            ".GIT",
            ".Git.",
            ".git ",
            "GIT~1",
            ".g\u{200c}it",
            ".git::$INDEX_ALLOCATION",
        ] {
            assert!(super::reads_as_dot_git(name), "{name:?}");
        }
        for name in [".github", ".gitignore", "git", "x.git", ".gi"] {
            assert!(!super::reads_as_dot_git(name), "{name:?}");
        }
    }

    #[test]
    fn symlinks_that_leave_the_worktree() {
        assert!(symlink_escapes("a", "/etc/passwd"));
        assert!(symlink_escapes("a", "../x"));
        assert!(symlink_escapes("src/a", "../../x"));
        assert!(!symlink_escapes("src/a", "../README.md"));
        assert!(!symlink_escapes("src/a", "b/../c"));
        assert!(symlink_escapes("src/a", "b/../../../c"));
    }
}
