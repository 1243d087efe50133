//! git in the repository, and reading what runs left in it.

use std::process::{Command, Output};

use super::TestRepo;

impl TestRepo {
    /// A `git` command in the repository under the clean environment.
    pub fn git_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.clean_command("git");
        // Reads must never refresh (rewrite) the index.
        cmd.env("GIT_OPTIONAL_LOCKS", "0").args(args);
        cmd
    }

    /// `git <args>`, whatever its exit status.
    pub fn git_output(&self, args: &[&str]) -> Output {
        self.git_command(args).output().expect("spawn git")
    }

    /// `git <args>` in the repository: its stdout; panics (with stderr)
    /// unless it succeeds.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(
            out.status.success(),
            "git {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `git add -A && git commit`; returns the new HEAD commit id.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.rev("HEAD")
    }

    /// The commit id `rev` names; panics when there is none.
    pub fn rev(&self, rev: &str) -> String {
        self.git(&["rev-parse", "--verify", "--quiet", rev])
            .trim()
            .to_string()
    }

    /// The commit id `rev` names, or `None`.
    pub fn rev_opt(&self, rev: &str) -> Option<String> {
        let out = self.git_output(&["rev-parse", "--verify", "--quiet", rev]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The content of `path` on `rev`, or `None` when it is not there.
    pub fn show(&self, rev: &str, path: &str) -> Option<String> {
        let out = self.git_output(&["show", &format!("{rev}:{path}")]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The paths of `git worktree list --porcelain`.
    pub fn worktrees(&self) -> Vec<String> {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree ").map(str::to_string))
            .collect()
    }

    /// `refs/heads/*` with their targets.
    pub fn heads(&self) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// Every path that occurs in any commit reachable from any ref.
    pub fn paths_in_history(&self) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for c in self.git(&["rev-list", "--all"]).lines() {
            for p in self.git(&["ls-tree", "-r", "--name-only", c]).lines() {
                if !paths.iter().any(|q| q == p) {
                    paths.push(p.to_string());
                }
            }
        }
        paths
    }
}

/// The value of trailer `key` in a commit message.
pub fn trailer(message: &str, key: &str) -> Option<String> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
}
