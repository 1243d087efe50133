//! The one helper that builds real repositories for integration tests.
//!
//! A [`TestRepo`] is a git repository in a fresh temp dir, made with the git
//! CLI. Every child a test starts (git, git-agent, and through git-agent the
//! agents) runs under [`clean_env`]: nothing inherited but `PATH`, a fake
//! `HOME` and cache dir, no user or system git config, a fixed identity,
//! dates, locale and time zone, so that results do not depend on the machine.
//!
//! Layout of the temp dir ([`TestRepo::tmp`]): `repo/` (the working tree,
//! [`TestRepo::root`]), `home/` (`$HOME`), `cache/` (`$XDG_CACHE_HOME`),
//! `wt/` (the config's `worktree_dir`) and `out/` (`$FIXTURE_OUT`, where
//! scripted agents report), all outside the repository.
//!
//! One job per file:
//! - `mod.rs`: the temp repository, the environment, files;
//! - `git.rs`: git in the repository, and reading what runs left in it;
//! - `cli.rs`: running `git-agent` and reading its output;
//! - `brief.rs`: writing briefs and the agent config;
//! - `events.rs`: a run's events and decision log;
//! - `process.rs`: processes a run left behind.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

mod brief;
mod cli;
mod events;
mod git;
mod process;

// The free helpers, as `support::…` (each binary imports only some).
#[allow(unused_imports)]
pub use self::{
    brief::{fixture, yaml_str, Brief},
    cli::{assert_status, bin, describe, status_of, stderr, stdout, BIN},
    events::{of_type, types},
    git::trailer,
    process::{alive, kill_if_alive, processes_with_marker},
};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Commit dates of every commit made by tests (2024-01-01T00:00:00Z).
pub const GIT_DATE: &str = "1704067200 +0000";
pub const GIT_NAME: &str = "Test User";
pub const GIT_EMAIL: &str = "test@example.com";

/// A git repository in a temp dir, removed on drop.
pub struct TestRepo {
    // Held for its Drop, which removes the directory.
    _tmp: tempfile::TempDir,
    /// The temp dir everything lives in (canonical).
    pub tmp: PathBuf,
    /// The repository's working tree (the user's checkout).
    pub root: PathBuf,
    /// `$HOME` for children: outside the repository.
    pub home: PathBuf,
    /// `$XDG_CACHE_HOME` for children.
    pub cache: PathBuf,
    /// `worktree_dir` of the config written by [`TestRepo::config`].
    pub wt: PathBuf,
    /// A directory outside the repository that agents may write to (passed
    /// to them as `$FIXTURE_OUT` through `pass_env`).
    pub out: PathBuf,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    /// An empty repository on branch `main` (no commits yet).
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("git-agent-test-")
            .tempdir()
            .expect("create a temp dir");
        // Canonical, so that paths printed by git and git-agent match ours
        // (e.g. /tmp being a symlink on macOS).
        let base = tmp
            .path()
            .canonicalize()
            .expect("canonicalize the temp dir");
        let repo = TestRepo {
            root: base.join("repo"),
            home: base.join("home"),
            cache: base.join("cache"),
            wt: base.join("wt"),
            out: base.join("out"),
            tmp: base,
            _tmp: tmp,
        };
        for dir in [&repo.root, &repo.home, &repo.cache, &repo.out] {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        // Agents get HOME but not GIT_CONFIG_GLOBAL (see `env.rs`): their
        // `git commit` finds an identity here.
        std::fs::write(
            repo.home.join(".gitconfig"),
            "[user]\n\tname = Scripted Agent\n\temail = agent@example.invalid\n",
        )
        .expect("write home gitconfig");
        repo.git(&["init", "-q", "-b", "main"]);
        // Local config, in case a test runs git without our environment.
        repo.git(&["config", "user.name", GIT_NAME]);
        repo.git(&["config", "user.email", GIT_EMAIL]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    /// A repository on `main` with one commit holding `files` (path, text);
    /// no commit when `files` is empty.
    pub fn with_files(files: &[(&str, &str)]) -> Self {
        let repo = Self::new();
        for (path, text) in files {
            repo.write(path, text);
        }
        if !files.is_empty() {
            repo.commit_all("base");
        }
        repo
    }

    /// A repository with one commit holding `README.md`.
    pub fn with_commit() -> Self {
        Self::with_files(&[("README.md", "# test repo\n")])
    }

    /// An absolute path for a repo-relative one (an absolute one stays).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes a file (creating its directories); returns its absolute path.
    pub fn write(&self, rel: impl AsRef<Path>, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Reads a file as text.
    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.path(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Reads a file's bytes.
    pub fn read_bytes(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        let path = self.path(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.path(rel).exists()
    }

    /// Replaces machine-specific paths in `text` with `[REPO]` and `[HOME]`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[REPO]")
            .replace(&self.home.display().to_string(), "[HOME]")
    }

    /// A command in the repository under [`clean_env`].
    fn clean_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        clean_env(&mut cmd, self);
        cmd.current_dir(&self.root);
        cmd
    }
}

/// The environment every child (git, git-agent) starts from; everything
/// else is cleared, and stdin is `/dev/null`.
fn clean_env(cmd: &mut Command, repo: &TestRepo) {
    // The binary's dir first, so that `git agent` (and agents calling it)
    // find the build under test.
    let bin = bin();
    let bin_dir = bin.parent().expect("binary dir");
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf()).chain(std::env::split_paths(&path)),
    )
    .expect("PATH joins");
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", &repo.home)
        .env("XDG_CACHE_HOME", &repo.cache)
        // The locale git-agent gives its own git calls.
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", GIT_NAME)
        .env("GIT_AUTHOR_EMAIL", GIT_EMAIL)
        .env("GIT_AUTHOR_DATE", GIT_DATE)
        .env("GIT_COMMITTER_NAME", GIT_NAME)
        .env("GIT_COMMITTER_EMAIL", GIT_EMAIL)
        .env("GIT_COMMITTER_DATE", GIT_DATE)
        .stdin(Stdio::null());
}
