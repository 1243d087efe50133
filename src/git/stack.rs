//! Results on results: a task's result on its branch, whether it is in a
//! base yet, several results merged for a run to start from (`after:`),
//! and whether two results merge cleanly (`git merge-tree`).

use std::ffi::OsStr;

use git2::{BranchType, Oid};

use super::commit::{is_agent_commit, signature};
use super::error::Result;
use super::repo::Repo;

/// How far back a base's history is searched for a task's result.
const HISTORY_LIMIT: usize = 20_000;

impl Repo {
    /// The task's succeeded result: the tip of `branch` here (else
    /// `origin/<branch>`) when git-agent committed it for `task` with the
    /// outcome `succeeded` (an escalated run's work in progress is not a
    /// result to build on).
    pub fn result_of(&self, task: &str, branch: &str) -> Result<Option<Oid>> {
        let repo = self.open()?;
        let tips = [
            repo.find_branch(branch, BranchType::Local),
            repo.find_branch(&format!("origin/{branch}"), BranchType::Remote),
        ];
        for tip in tips.into_iter().flatten() {
            let Some(oid) = tip.get().target() else {
                continue;
            };
            let Ok(commit) = repo.find_commit(oid) else {
                continue;
            };
            let succeeded = commit
                .message()
                .is_ok_and(|m| m.lines().any(|l| l.trim() == "Agent-Outcome: succeeded"));
            if is_agent_commit(&commit, task) && succeeded {
                return Ok(Some(oid));
            }
        }
        Ok(None)
    }

    /// Whether `result` is in the history of `base`: reachable from it
    /// (merged, fast-forwarded), or a commit there since they parted carries
    /// its `Agent-Run` trailer (landed, cherry-picked, squashed).
    pub fn holds_result(&self, base: Oid, result: Oid) -> Result<bool> {
        let repo = self.open()?;
        let err = || self.git2_err("walking the history of", base.to_string());
        if base == result || repo.graph_descendant_of(base, result).map_err(err())? {
            return Ok(true);
        }
        let commit = repo.find_commit(result).map_err(err())?;
        let Some(run) = trailer(&commit, "Agent-Run:") else {
            return Ok(false);
        };
        let mut walk = repo.revwalk().map_err(err())?;
        walk.push(base).map_err(err())?;
        if let Ok(fork) = repo.merge_base(base, result) {
            walk.hide(fork).map_err(err())?;
        }
        for oid in walk.take(HISTORY_LIMIT).flatten() {
            let Ok(c) = repo.find_commit(oid) else {
                continue;
            };
            if trailer(&c, "Agent-Run:").as_deref() == Some(run.as_str()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `base`'s history holds a result of `task` (an `Agent-Task`
    /// trailer): a result that landed and whose branch is gone.
    pub fn holds_task(&self, base: Oid, task: &str) -> Result<bool> {
        let repo = self.open()?;
        let err = || self.git2_err("walking the history of", base.to_string());
        let mut walk = repo.revwalk().map_err(err())?;
        walk.push(base).map_err(err())?;
        for oid in walk.take(HISTORY_LIMIT).flatten() {
            let Ok(c) = repo.find_commit(oid) else {
                continue;
            };
            if trailer(&c, "Agent-Task:").as_deref() == Some(task) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `tips` merged in memory into one commit (git-agent's, saying
    /// `message`) that a run starts from; `Err` with the conflicting paths
    /// when they do not merge cleanly.
    pub fn merge_results(
        &self,
        tips: &[Oid],
        message: &str,
    ) -> Result<std::result::Result<Oid, Vec<String>>> {
        let repo = self.open()?;
        let err = |what: &'static str| self.git2_err(what, "the results to start from");
        let commits = tips
            .iter()
            .map(|t| repo.find_commit(*t))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err("reading"))?;
        let Some((first, rest)) = commits.split_first() else {
            return Ok(Err(Vec::new()));
        };
        let mut ours = first.clone();
        for theirs in rest {
            let mut index = repo
                .merge_commits(&ours, theirs, None)
                .map_err(err("merging"))?;
            if index.has_conflicts() {
                let mut paths: Vec<String> = index
                    .conflicts()
                    .map_err(err("merging"))?
                    .flatten()
                    .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .collect();
                paths.dedup();
                return Ok(Err(paths));
            }
            let oid = index
                .write_tree_to(&repo)
                .map_err(err("writing the merged tree"))?;
            let tree = repo.find_tree(oid).map_err(err("reading"))?;
            // A later merge starts from what is merged so far.
            let sig = signature().map_err(err("creating signature"))?;
            let step = repo
                .commit(None, &sig, &sig, message, &tree, &[&ours, theirs])
                .map_err(err("writing the merge"))?;
            ours = repo.find_commit(step).map_err(err("reading"))?;
        }
        Ok(Ok(ours.id()))
    }

    /// The paths where `a` and `b` do not merge cleanly (`git merge-tree
    /// --write-tree`: nothing is written but objects); empty when they do.
    pub fn merge_conflicts(&self, a: Oid, b: Oid) -> Result<Vec<String>> {
        let (a, b) = (a.to_string(), b.to_string());
        let sub = [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
            &a,
            &b,
        ];
        let git = self.git();
        let args: Vec<&OsStr> = sub.iter().map(OsStr::new).collect();
        let (out, command) = git.run_unchecked(&args, None)?;
        match out.status.code() {
            Some(0) => Ok(Vec::new()),
            // Conflicts: the tree, then one conflicted path per entry.
            Some(1) => {
                let mut paths: Vec<String> = out
                    .stdout
                    .split(|b| *b == 0)
                    .skip(1)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                paths.dedup();
                Ok(paths)
            }
            _ => Err(git.failure(command, &out)),
        }
    }
}

/// The value of a commit message's trailer `key` (`Agent-Run:`).
fn trailer(commit: &git2::Commit<'_>, key: &str) -> Option<String> {
    let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
    message
        .lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().to_string())
        .next_back()
}

#[cfg(test)]
mod tests {
    use crate::git::test_support::*;

    #[test]
    fn two_results_that_change_one_line_conflict_there() {
        let fx = fixture();
        let commit = |content: &str| {
            let repo = fx.repo.open().unwrap();
            let base = repo.find_commit(fx.base).unwrap();
            let blob = repo.blob(content.as_bytes()).unwrap();
            let mut tb = repo.treebuilder(Some(&base.tree().unwrap())).unwrap();
            tb.insert("shared.txt", blob, 0o100_644).unwrap();
            let tree = repo.find_tree(tb.write().unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            repo.commit(None, &sig, &sig, "c", &tree, &[&base]).unwrap()
        };
        let (a, b, a2) = (commit("a\n"), commit("b\n"), commit("a\n"));
        assert_eq!(fx.repo.merge_conflicts(a, b).unwrap(), ["shared.txt"]);
        assert!(fx.repo.merge_conflicts(a, a2).unwrap().is_empty());
        assert_eq!(
            fx.repo.merge_results(&[a, b], "m").unwrap(),
            Err(vec!["shared.txt".to_string()])
        );
        let merged = fx.repo.merge_results(&[a, a2], "m").unwrap().unwrap();
        assert!(fx.repo.holds_result(merged, a).unwrap());
        assert!(!fx.repo.holds_result(fx.base, a).unwrap());
    }
}
