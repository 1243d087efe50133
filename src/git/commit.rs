//! What git-agent writes into the repository: trees of chosen changes,
//! commits on agent branches, snapshot commits, replays and notes, all
//! signed as [`SIGNATURE_NAME`].

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Mutex;

use git2::{ErrorCode, Oid, Repository};

use super::changes::{Change, ChangeKind};
use super::command::{retry_on_lock, AttemptError, LockRetries};
use super::error::{Result, WorkspaceError};
use super::lock::LockFile;
use super::repo::Repo;

/// Notes ref that carries a run's decision log.
pub const NOTES_REF: &str = "refs/notes/agent";
/// Where a run keeps its staged change set reachable until it commits.
pub const RUNS_REF_PREFIX: &str = "refs/agent/runs/";
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

/// Serializes note writes between threads of this process.
pub(super) static NOTES: Mutex<()> = Mutex::new(());

impl Repo {
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

    /// Commits `tree` (parent `base`) and points `refs/heads/<branch>` at it,
    /// or `<branch>-2`, `-3`, ... when the branch holds someone else's work
    /// (tip neither `base` nor accepted by `is_ours`) or is checked out
    /// somewhere. Returns the branch used and the commit. Its author is
    /// `author` (name, email) when given, git-agent otherwise; its
    /// committer always git-agent.
    pub fn commit_to_branch(
        &self,
        branch: &str,
        base: Oid,
        tree: Oid,
        message: &str,
        author: Option<(&str, &str)>,
        is_ours: &dyn Fn(&git2::Commit) -> bool,
    ) -> Result<(String, Oid)> {
        const MAX_CANDIDATES: usize = 100;
        if !valid_branch_name(branch) {
            return Err(WorkspaceError::InvalidBranch {
                branch: branch.to_string(),
            });
        }
        let repo = self.open()?;
        let sig = signature().map_err(self.git2_err("creating signature", ""))?;
        let author = match author {
            Some((name, email)) => git2::Signature::now(name, email)
                .map_err(self.git2_err("creating signature", format!("{name} <{email}>")))?,
            None => sig.clone(),
        };
        let parent = repo
            .find_commit(base)
            .map_err(self.git2_err("looking up base commit", base.to_string()))?;
        let tree_obj = repo
            .find_tree(tree)
            .map_err(self.git2_err("looking up tree", tree.to_string()))?;
        let commit = repo
            .commit(None, &author, &sig, message, &tree_obj, &[&parent])
            .map_err(self.git2_err("creating commit", format!("tree {tree} on {base}")))?;
        let checked_out = self.checked_out_branches();

        for n in 1..=MAX_CANDIDATES {
            let name = if n == 1 {
                branch.to_string()
            } else {
                format!("{branch}-{n}")
            };
            let refname = format!("refs/heads/{name}");
            if !valid_branch_name(&name) {
                return Err(WorkspaceError::InvalidBranch { branch: name });
            }
            if checked_out.contains(&refname) {
                continue;
            }
            if self.claim_branch(&repo, &refname, base, commit, is_ours)? {
                return Ok((name, commit));
            }
        }
        Err(WorkspaceError::NoFreeBranch {
            branch: branch.to_string(),
            repo: self.common_dir.clone(),
            tried: MAX_CANDIDATES,
        })
    }

    /// Points `refname` at `commit` if it is free: creates it, or moves it
    /// from a tip that is `base`, `commit` itself or accepted by `is_ours`
    /// (compare-and-swap, so a concurrent writer's update is never lost).
    /// `false` when the branch holds someone else's work.
    fn claim_branch(
        &self,
        repo: &Repository,
        refname: &str,
        base: Oid,
        commit: Oid,
        is_ours: &dyn Fn(&git2::Commit) -> bool,
    ) -> Result<bool> {
        let log = format!("git-agent: commit {commit}");
        retry_on_lock(LockRetries::BRANCH, |_| {
            match repo.find_reference(refname) {
                Err(e) if e.code() == ErrorCode::NotFound => repo
                    .reference(refname, commit, false, &log)
                    .map(|_| true)
                    .map_err(|e| match self.ref_failure("creating branch", refname, e) {
                        // Refs below its name: no wait helps (libgit2 words
                        // that as a lock failure).
                        AttemptError::Locked(err) if self.common_dir.join(refname).is_dir() => {
                            AttemptError::Failed(err)
                        }
                        other => other,
                    }),
                Err(e) => Err(self.git2_err("reading branch", refname)(e).into()),
                Ok(reference) => {
                    let Some(tip) = reference.target() else {
                        return Ok(false); // symbolic ref: not ours to move
                    };
                    let ours = tip == base
                        || tip == commit
                        || repo.find_commit(tip).is_ok_and(|c| is_ours(&c));
                    if !ours {
                        return Ok(false);
                    }
                    repo.reference_matching(refname, commit, true, tip, &log)
                        .map(|_| true)
                        .map_err(|e| self.ref_failure("moving branch", refname, e))
                }
            }
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

    /// A commit of `tree` on `base` that no ref points at: a fixed point to
    /// diff against and restore to (e.g. the worktree before the checks ran).
    /// Unreferenced, it is collected by git's next gc.
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

    /// Keeps `tree` (a run's staged change set, not yet committed) reachable
    /// from `refs/agent/runs/<run>`: a `git gc --prune=now` by the user in
    /// the meantime must not take the objects a passed run is about to
    /// commit. The ref names the tree itself (git's reachability, `gc` and
    /// `log --all` take a ref to a tree as they take a tag of one): no
    /// commit is made only to hold it.
    pub fn protect(&self, run: &str, tree: Oid) -> Result<()> {
        self.open()?
            .reference(
                &format!("{RUNS_REF_PREFIX}{run}"),
                tree,
                true,
                "git-agent: keep a run's change set until it is committed",
            )
            .map(drop)
            .map_err(self.git2_err("write", format!("{RUNS_REF_PREFIX}{run}")))
    }

    /// Drops what [`Repo::protect`] kept (the commit, when there is one,
    /// now holds it).
    pub fn unprotect(&self, run: &str) -> Result<()> {
        let repo = self.open()?;
        let deleted = match repo.find_reference(&format!("{RUNS_REF_PREFIX}{run}")) {
            Ok(mut reference) => reference
                .delete()
                .map_err(self.git2_err("delete", format!("{RUNS_REF_PREFIX}{run}"))),
            Err(_) => Ok(()),
        };
        deleted
    }

    /// Attaches `text` to `commit` under [`NOTES_REF`], replacing any note;
    /// the notes commit says `message` (not libgit2's default words).
    pub fn add_note(&self, commit: Oid, text: &str, message: &str) -> Result<()> {
        let repo = self.open()?;
        let sig = signature().map_err(self.git2_err("creating signature", ""))?;
        // Neither libgit2 nor git compare-and-swap the notes ref: concurrent
        // writers lose notes. Serialize them (threads, then processes).
        let _thread = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        let _process = LockFile::acquire(&self.common_dir.join("agent/notes.lock"))?;
        // Refs below the notes ref's name make it a directory: no wait
        // helps (libgit2 words that as a lock failure).
        let blocked = || self.common_dir.join(NOTES_REF).is_dir();
        retry_on_lock(LockRetries::NOTE, |_| {
            write_note(&repo, &sig, commit, text, message).map_err(|e| {
                let context = format!("{NOTES_REF} on {commit}");
                match self.ref_failure("writing note", &context, e) {
                    AttemptError::Locked(err) if blocked() => AttemptError::Failed(err),
                    other => other,
                }
            })
        })
    }

    /// A failed ref update, as [`AttemptError::Locked`] when another writer
    /// held the ref (see [`retryable_ref_error`]).
    pub(super) fn ref_failure(
        &self,
        action: &'static str,
        context: &str,
        e: git2::Error,
    ) -> AttemptError<WorkspaceError> {
        let locked = retryable_ref_error(&e);
        let err = self.git2_err(action, context)(e);
        if locked {
            AttemptError::Locked(err)
        } else {
            AttemptError::Failed(err)
        }
    }
}

/// The note `text` on `commit` as a new commit of [`NOTES_REF`] saying
/// `message`, the ref moved only from the tip it was read at; the tree
/// laid out as git lays it out ([`super::notes::with_note`]).
fn write_note(
    repo: &Repository,
    sig: &git2::Signature<'_>,
    commit: Oid,
    text: &str,
    message: &str,
) -> std::result::Result<(), git2::Error> {
    let parent = match repo.find_reference(NOTES_REF) {
        Ok(r) => Some(r.peel_to_commit()?),
        Err(e) if e.code() == ErrorCode::NotFound => None,
        Err(e) => return Err(e),
    };
    let parent_tree = parent.as_ref().map(git2::Commit::tree).transpose()?;
    let blob = repo.blob(text.as_bytes())?;
    let tree = super::notes::with_note(repo, parent_tree.as_ref(), commit, blob)?;
    let tree = repo.find_tree(tree)?;
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let new = repo.commit(None, sig, sig, message, &tree, &parents)?;
    match &parent {
        Some(p) => repo.reference_matching(NOTES_REF, new, true, p.id(), message)?,
        None => repo.reference(NOTES_REF, new, false, message)?,
    };
    Ok(())
}

/// A name `refs/heads/<name>` can take (and that does not read as an option).
fn valid_branch_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && git2::Reference::is_valid_name(&format!("refs/heads/{name}"))
}

pub(super) fn signature() -> std::result::Result<git2::Signature<'static>, git2::Error> {
    git2::Signature::now(SIGNATURE_NAME, SIGNATURE_EMAIL)
}

fn retryable_ref_error(e: &git2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Locked | ErrorCode::Modified | ErrorCode::Exists
    ) || e.message().contains("lock")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use git2::{DiffFindOptions, DiffOptions};
    use std::sync::Arc;
    #[test]
    fn replay_onto_moves_a_result_to_a_new_base_or_says_it_conflicts() {
        let f = fixture();
        let r = f.repo.open().expect("open");
        // A commit on `parent` with the top-level `file` set to `content`.
        let commit_with = |parent: Oid, file: &str, content: &str| -> Oid {
            commit_file(&f.repo, parent, file, content, file)
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
    fn commit_to_branch_creates_moves_and_never_overwrites_others() {
        let fx = fixture();
        let wt = fx.full("commit");
        write(&wt.path.join("src/lib.rs"), "first run\n");
        let cs = fx.repo.change_set(&wt, fx.base).expect("change set");
        let is_ours = |c: &git2::Commit| c.message().is_ok_and(|m| m.contains("Agent-Task: t1"));
        let msg = "Do the thing\n\nAgent-Task: t1\n";
        let (branch, c1) = fx
            .repo
            .commit_to_branch("agent/t1", fx.base, cs.tree, msg, None, &is_ours)
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
            .commit_to_branch("agent/t1", fx.base, cs2.tree, msg, None, &is_ours)
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
            .commit_to_branch("agent/t1", fx.base, cs2.tree, msg, None, &is_ours)
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
            .commit_to_branch("agent/t1", fx.base, cs.tree, msg, None, &is_ours)
            .expect("commit 4");
        assert_eq!(branch4, "agent/t1-2");

        // A branch the user has checked out is never moved.
        let user_branch = git_in(&fx.root, &["symbolic-ref", "--short", "HEAD"]);
        let (branch5, _) = fx
            .repo
            .commit_to_branch(user_branch.trim(), fx.base, cs.tree, msg, None, &|_| true)
            .expect("commit 5");
        assert_eq!(branch5, format!("{}-2", user_branch.trim()));

        let err = fx
            .repo
            .commit_to_branch("bad..name", fx.base, cs.tree, msg, None, &is_ours)
            .expect_err("invalid");
        assert!(matches!(err, WorkspaceError::InvalidBranch { .. }), "{err}");
        fx.assert_user_untouched();
    }

    #[test]
    fn notes_are_readable_by_git_and_overwritten() {
        let fx = fixture();
        fx.repo
            .add_note(fx.base, "first log\n", "note")
            .expect("note");
        fx.repo
            .add_note(fx.base, "decision log\n", "note")
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
                        .add_note(*c, &format!("note {i}"), "note")
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
}
