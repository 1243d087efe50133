//! What a base branch's history holds of git-agent's results
//! ([`BaseHistory`]), for `git agent stats`.

use git2::{BranchType, Oid};

use super::error::Result;
use super::repo::Repo;
use crate::model::reached::BaseHistory;

impl Repo {
    /// The commits reachable from `branch` — the local branch, its
    /// upstream and `origin/<branch>`, so a pull request merged on the
    /// forge counts once fetched — with the `Agent-Run` trailers of their
    /// messages. The walk stops at `since` (the commit the branch's first
    /// run started from: nothing older can hold a result) when it is
    /// known. `None` when no such branch exists.
    pub fn base_history(&self, branch: &str, since: Option<&str>) -> Result<Option<BaseHistory>> {
        let repo = self.open()?;
        let mut tips: Vec<Oid> = Vec::new();
        if let Ok(local) = repo.find_branch(branch, BranchType::Local) {
            tips.extend(local.get().target());
            if let Ok(upstream) = local.upstream() {
                tips.extend(upstream.get().target());
            }
        }
        if let Ok(remote) = repo.find_branch(&format!("origin/{branch}"), BranchType::Remote) {
            tips.extend(remote.get().target());
        }
        if tips.is_empty() {
            return Ok(None);
        }
        let walk_err = self.git2_err("walking the history of", branch);
        let mut walk = repo.revwalk().map_err(walk_err)?;
        for tip in tips {
            walk.push(tip)
                .map_err(self.git2_err("walking the history of", branch))?;
        }
        // A base that is gone (a force push, then gc) only makes the walk longer.
        if let Some(oid) = since.and_then(|s| Oid::from_str(s).ok()) {
            if repo.find_commit(oid).is_ok() {
                walk.hide(oid)
                    .map_err(self.git2_err("walking the history of", branch))?;
            }
        }
        let mut history = BaseHistory::default();
        for oid in walk {
            let oid = oid.map_err(self.git2_err("walking the history of", branch))?;
            let commit = repo
                .find_commit(oid)
                .map_err(self.git2_err("reading a commit of", branch))?;
            history.add(
                oid.to_string(),
                &String::from_utf8_lossy(commit.message_bytes()),
            );
        }
        Ok(Some(history))
    }
}

#[cfg(test)]
mod tests {
    use crate::git::test_support::*;

    #[test]
    fn the_walk_sees_trailers_back_to_the_first_base() {
        let fx = fixture();
        let base = fx.base.to_string();
        write(&fx.root.join("picked.txt"), "x\n");
        git_in(&fx.root, &["add", "picked.txt"]);
        git_in(
            &fx.root,
            &[
                "commit",
                "-qm",
                "Picked\n\nAgent-Run: 20240101-000000-t-0001",
            ],
        );
        let history = fx
            .repo
            .base_history("main", Some(&base))
            .expect("walk")
            .expect("main exists");
        assert!(history.runs.contains("20240101-000000-t-0001"));
        assert_eq!(history.commits.len(), 1, "the base itself is not walked");
        let all = fx
            .repo
            .base_history("main", None)
            .expect("walk")
            .expect("main");
        assert!(all.commits.contains(&base));
        assert!(fx
            .repo
            .base_history("no-such-branch", None)
            .expect("walk")
            .is_none());
    }
}
