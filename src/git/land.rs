//! Landing a result on a branch: its commits replayed onto the branch's tip
//! in memory (the user's working tree, index and HEAD are never read or
//! written for it), the checkouts that have the branch updated as `git merge
//! --ff-only` would, the branch moved by compare-and-swap, and refs removed
//! only from the value they were seen at.

use std::path::PathBuf;

use git2::{Oid, Repository, Sort};

use super::command::{arg_eq, retry_on_lock, AttemptError, Git, LockRetries};
use super::commit::signature;
use super::error::{Result, WorkspaceError};
use super::repo::Repo;

/// What replaying a range of commits onto a tip gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The commits now on the tip, oldest first (the last is the new tip);
    /// empty when every change was already there. A commit whose parent is
    /// already the tip is kept as it is, so an unmoved base fast-forwards.
    Applied(Vec<Oid>),
    /// `commit` does not apply to the tip: these paths conflict.
    Conflict { commit: Oid, paths: Vec<String> },
}

/// A checkout (the main one or a linked worktree) with a branch checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// Its working tree.
    pub path: PathBuf,
    /// Its git dir (`.git` of the main checkout, or `.git/worktrees/<name>`).
    pub git_dir: PathBuf,
}

/// Files in a git dir that say an operation is half done there.
const IN_PROGRESS: &[(&str, &str)] = &[
    ("MERGE_HEAD", "a merge is in progress"),
    ("CHERRY_PICK_HEAD", "a cherry-pick is in progress"),
    ("REVERT_HEAD", "a revert is in progress"),
    ("rebase-merge", "a rebase is in progress"),
    ("rebase-apply", "a rebase or `git am` is in progress"),
];

impl Repo {
    /// The commit `refname` points at, if it exists and points at one.
    pub fn ref_target(&self, refname: &str) -> Result<Option<Oid>> {
        let repo = self.open()?;
        let target = match repo.find_reference(refname) {
            Ok(r) => r.target(),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(self.git2_err("reading", refname)(e)),
        };
        Ok(target)
    }

    /// Whether `ancestor` is `commit` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: Oid, commit: Oid) -> Result<bool> {
        if ancestor == commit {
            return Ok(true);
        }
        self.open()?
            .graph_descendant_of(commit, ancestor)
            .map_err(self.git2_err("comparing", format!("{ancestor} and {commit}")))
    }

    /// The commits `upstream..head` replayed, oldest first, onto `onto` in
    /// memory (a cherry-pick each, the way `git rebase` goes): each keeps
    /// its author and message and gets git-agent as committer; one whose
    /// change is already on the tip is dropped. Nothing but new objects is
    /// written: no ref, no index, no working tree.
    pub fn replay_commits(&self, upstream: Oid, head: Oid, onto: Oid) -> Result<Replay> {
        let repo = self.open()?;
        let err = |what: &str| self.git2_err("replaying", format!("{what} of {upstream}..{head}"));
        let mut walk = repo.revwalk().map_err(err("walking"))?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(err("sorting"))?;
        walk.push(head).map_err(err("the head"))?;
        walk.hide(upstream).map_err(err("the upstream"))?;
        let ids = walk
            .collect::<std::result::Result<Vec<Oid>, _>>()
            .map_err(err("walking"))?;
        let sig = signature().map_err(self.git2_err("creating signature", ""))?;
        let mut tip = onto;
        let mut applied = Vec::new();
        for id in ids {
            let commit = repo
                .find_commit(id)
                .map_err(self.git2_err("reading commit", id.to_string()))?;
            if commit.parent_count() != 1 {
                return Err(WorkspaceError::CannotReplay {
                    commit: id.to_string(),
                    reason: "it is a merge commit (or has no parent)".into(),
                });
            }
            if commit.parent_id(0).ok() == Some(tip) {
                applied.push(id);
                tip = id;
                continue;
            }
            match self.pick(&repo, &commit, tip, &sig)? {
                Picked::Commit(new) => {
                    applied.push(new);
                    tip = new;
                }
                Picked::Empty => {}
                Picked::Conflict(paths) => return Ok(Replay::Conflict { commit: id, paths }),
            }
        }
        Ok(Replay::Applied(applied))
    }

    /// `commit` cherry-picked onto `tip` in memory.
    fn pick(
        &self,
        repo: &Repository,
        commit: &git2::Commit,
        tip: Oid,
        sig: &git2::Signature,
    ) -> Result<Picked> {
        let context = format!("{} onto {tip}", commit.id());
        let target = repo
            .find_commit(tip)
            .map_err(self.git2_err("reading commit", tip.to_string()))?;
        let index = repo
            .cherrypick_commit(commit, &target, 0, None)
            .map_err(self.git2_err("cherry-picking", context.clone()))?;
        if index.has_conflicts() {
            return Ok(Picked::Conflict(conflicting_paths(&index)));
        }
        let mut index = index;
        let tree = index
            .write_tree_to(repo)
            .map_err(self.git2_err("writing the tree of", context.clone()))?;
        if tree == target.tree_id() {
            return Ok(Picked::Empty);
        }
        let tree = repo
            .find_tree(tree)
            .map_err(self.git2_err("reading the tree of", context.clone()))?;
        let message = String::from_utf8_lossy(commit.message_raw_bytes()).into_owned();
        repo.commit(None, &commit.author(), sig, &message, &tree, &[&target])
            .map(Picked::Commit)
            .map_err(self.git2_err("committing", context))
    }

    /// Every checkout whose HEAD is `refname` (a branch, `refs/heads/...`):
    /// the main one (unless bare) and the linked worktrees whose directory
    /// is there.
    pub fn checkouts_of(&self, refname: &str) -> Result<Vec<Checkout>> {
        let main = Repository::open(&self.common_dir).map_err(|source| {
            WorkspaceError::NotARepository {
                path: self.common_dir.clone(),
                source,
            }
        })?;
        let mut found = Vec::new();
        let mut consider = |r: &Repository| {
            let on_it = r
                .find_reference("HEAD")
                .is_ok_and(|h| h.symbolic_target().ok().flatten() == Some(refname));
            if let (true, Some(path)) = (on_it, r.workdir()) {
                let canonical = |p: &std::path::Path| {
                    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
                };
                found.push(Checkout {
                    path: canonical(path),
                    git_dir: canonical(r.path()),
                });
            }
        };
        if !main.is_bare() {
            consider(&main);
        }
        let names = main
            .worktrees()
            .map_err(self.git2_err("listing worktrees", ""))?;
        for name in names.iter().filter_map(|n| n.ok().flatten()) {
            let linked = main
                .find_worktree(name)
                .and_then(|wt| Repository::open_from_worktree(&wt));
            if let Ok(linked) = linked {
                consider(&linked);
            }
        }
        Ok(found)
    }

    /// What keeps `checkout` from being moved to another commit: tracked
    /// files modified or staged (as `git status --porcelain` lists them,
    /// untracked files aside) and operations half done there.
    pub fn local_changes(&self, checkout: &Checkout) -> Result<Vec<String>> {
        let out = self.checkout_git(checkout).run(&[
            "status",
            "--porcelain=v1",
            "--untracked-files=no",
        ])?;
        let mut changes: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.len() > 3)
            .map(|l| l[3..].to_string())
            .collect();
        for (file, what) in IN_PROGRESS {
            if checkout.git_dir.join(file).exists() {
                changes.push((*what).to_string());
            }
        }
        Ok(changes)
    }

    /// Moves `checkout`'s index and working tree from `old` to `new`
    /// (`git read-tree -m -u`, a two-tree merge: it refuses to overwrite a
    /// local change or an untracked file, and then changes nothing). Its
    /// HEAD, the branch, is moved separately ([`Repo::move_ref`]).
    pub fn update_checkout(&self, checkout: &Checkout, old: Oid, new: Oid) -> Result<()> {
        self.checkout_git(checkout)
            .config("checkout.workers=0")
            .run(&["read-tree", "-m", "-u", &old.to_string(), &new.to_string()])
            .map(drop)
    }

    /// Why `checkout` cannot move from `old` to `new` — git's own words
    /// from a dry run of [`Repo::update_checkout`] (an untracked file in
    /// the way, say) — or `None` when it can. Nothing is changed.
    pub fn checkout_blocker(
        &self,
        checkout: &Checkout,
        old: Oid,
        new: Oid,
    ) -> Result<Option<String>> {
        let (old, new) = (old.to_string(), new.to_string());
        let args = ["read-tree", "-m", "-u", "-n", &old, &new];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let (out, _) = self.checkout_git(checkout).run_unchecked(&args, None)?;
        if out.status.success() {
            return Ok(None);
        }
        let said: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(|l| l.trim().trim_start_matches("error: ").to_string())
            .filter(|l| !l.is_empty())
            .collect();
        Ok(Some(said.join("; ")))
    }

    /// Points `refname` at `new` if it still points at `old`
    /// (compare-and-swap): a concurrent update in between is
    /// [`WorkspaceError::RefMoved`], never overwritten.
    pub fn move_ref(&self, refname: &str, old: Oid, new: Oid, log: &str) -> Result<()> {
        let repo = self.open()?;
        retry_on_lock(LockRetries::BRANCH, |_| {
            let now = repo.refname_to_id(refname).ok();
            if now != Some(old) {
                return Err(AttemptError::Failed(WorkspaceError::RefMoved {
                    refname: refname.to_string(),
                    expected: old.to_string(),
                    found: now.map(|o| o.to_string()),
                }));
            }
            repo.reference_matching(refname, new, true, old, log)
                .map(drop)
                .map_err(|e| self.ref_failure("moving", refname, e))
        })
    }

    /// Deletes `refname` if it still points at `expected` (`git update-ref
    /// -d` with the old value).
    pub fn delete_ref(&self, refname: &str, expected: Oid) -> Result<()> {
        self.git()
            .run(&["update-ref", "-d", refname, &expected.to_string()])
            .map(drop)
    }

    /// git CLI in a checkout of the user's, with its own git dir and work
    /// tree named explicitly.
    fn checkout_git(&self, checkout: &Checkout) -> Git {
        Git::new(&checkout.path, &self.git_env)
            .arg(arg_eq("--git-dir=", &checkout.git_dir))
            .arg(arg_eq("--work-tree=", &checkout.path))
            .env("GIT_COMMON_DIR", &self.common_dir)
    }
}

/// One commit cherry-picked in memory.
enum Picked {
    Commit(Oid),
    /// Its change is already on the tip.
    Empty,
    Conflict(Vec<String>),
}

/// The paths of an index's conflicts, sorted, each once.
fn conflicting_paths(index: &git2::Index) -> Vec<String> {
    let mut paths: Vec<String> = index
        .conflicts()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|c| c.our.or(c.their).or(c.ancestor))
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;

    /// A commit on `parent` with the top-level `file` set to `content`.
    fn commit_with(f: &Fixture, parent: Oid, file: &str, content: &str) -> Oid {
        commit_file(
            &f.repo,
            parent,
            file,
            content,
            &format!("{file}\n\nAgent-Task: t\n"),
        )
    }

    #[test]
    fn a_range_replays_onto_a_moved_tip_or_names_its_conflicts() {
        let f = fixture();
        let one = commit_with(&f, f.base, "a.txt", "a\n");
        let two = commit_with(&f, one, "b.txt", "b\n");
        // The base has not moved: the commits as they are.
        assert_eq!(
            f.repo.replay_commits(f.base, two, f.base).expect("replay"),
            Replay::Applied(vec![one, two])
        );
        let moved = commit_with(&f, f.base, "c.txt", "c\n");
        let Replay::Applied(landed) = f.repo.replay_commits(f.base, two, moved).expect("replay")
        else {
            panic!("the replay conflicts");
        };
        assert_eq!(landed.len(), 2);
        let r = f.repo.open().expect("open");
        let tip = r.find_commit(landed[1]).expect("tip");
        assert_eq!(tip.parent_id(0).expect("parent"), landed[0]);
        assert_eq!(
            r.find_commit(landed[0]).expect("first").parent_id(0).ok(),
            Some(moved)
        );
        for file in ["a.txt", "b.txt", "c.txt"] {
            assert!(tip.tree().expect("tree").get_name(file).is_some(), "{file}");
        }
        assert_eq!(tip.author().email().ok(), Some("someone@example.com"));
        assert!(tip.message().expect("message").contains("Agent-Task: t"));

        // A change already on the tip is dropped.
        let same = commit_with(&f, f.base, "a.txt", "a\n");
        let Replay::Applied(rest) = f.repo.replay_commits(f.base, two, same).expect("replay")
        else {
            panic!("conflicts");
        };
        assert_eq!(rest.len(), 1, "only b.txt is left to apply");

        let clash = commit_with(&f, f.base, "a.txt", "someone else's a\n");
        assert_eq!(
            f.repo.replay_commits(f.base, two, clash).expect("replay"),
            Replay::Conflict {
                commit: one,
                paths: vec!["a.txt".into()]
            }
        );
        f.assert_user_untouched();
    }

    #[test]
    fn a_ref_moves_only_from_the_value_it_was_seen_at() {
        let f = fixture();
        let next = commit_with(&f, f.base, "a.txt", "a\n");
        let other = commit_with(&f, f.base, "b.txt", "b\n");
        let r = f.repo.open().expect("open");
        r.reference("refs/heads/target", f.base, false, "test")
            .expect("branch");
        let err = f
            .repo
            .move_ref("refs/heads/target", other, next, "test")
            .expect_err("not at `other`");
        assert!(matches!(err, WorkspaceError::RefMoved { .. }), "{err}");
        assert_eq!(
            f.repo.ref_target("refs/heads/target").expect("read"),
            Some(f.base)
        );
        f.repo
            .move_ref("refs/heads/target", f.base, next, "test")
            .expect("moved");
        assert_eq!(
            f.repo.ref_target("refs/heads/target").expect("read"),
            Some(next)
        );
        assert!(f.repo.delete_ref("refs/heads/target", f.base).is_err());
        f.repo
            .delete_ref("refs/heads/target", next)
            .expect("deleted");
        assert_eq!(f.repo.ref_target("refs/heads/target").expect("read"), None);
    }

    #[test]
    fn the_user_s_checkout_is_found_with_its_local_changes() {
        let f = fixture();
        let found = f.repo.checkouts_of("refs/heads/main").expect("checkouts");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            std::fs::canonicalize(&found[0].path).expect("canon"),
            std::fs::canonicalize(&f.root).expect("canon")
        );
        let changes = f.repo.local_changes(&found[0]).expect("status");
        assert_eq!(changes, vec!["README.md", "staged.txt"]);
        assert!(f
            .repo
            .checkouts_of("refs/heads/other")
            .expect("none")
            .is_empty());
        f.assert_user_untouched();
    }
}
