//! The one helper that builds real repositories for integration tests.
//!
//! A [`TestRepo`] is a git repository in a fresh temp dir, made with the git
//! CLI under an environment that ignores the user's and the system's git
//! config, with a fake `HOME` and fixed commit dates, so that results do not
//! depend on the machine. [`TestRepo::cmd`] runs the built `git-agent` binary
//! in it under the same clean environment.
//!
//! Layout of the temp dir: `repo/` (the working tree, [`TestRepo::root`]) and
//! `home/` (`$HOME`, outside the repository, [`TestRepo::home`]).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Commit dates of every commit made by tests (2024-01-01T00:00:00Z).
pub const GIT_DATE: &str = "1704067200 +0000";
pub const GIT_NAME: &str = "Test User";
pub const GIT_EMAIL: &str = "test@example.com";

/// The `git-agent` binary built by cargo for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_git-agent"))
}

/// The variables every child (git, git-agent) gets; everything else is cleared.
fn clean_env(cmd: &mut Command, home: &Path) {
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", home)
        .env("LANG", "C.UTF-8")
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

/// A git repository in a temp dir, removed on drop.
pub struct TestRepo {
    // Held for its Drop, which removes the directory.
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
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
        let root = base.join("repo");
        let home = base.join("home");
        std::fs::create_dir_all(&root).expect("create repo dir");
        std::fs::create_dir_all(&home).expect("create home dir");
        let repo = TestRepo {
            _tmp: tmp,
            root,
            home,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        // Local config, in case a test runs git without our environment.
        repo.git(&["config", "user.name", GIT_NAME]);
        repo.git(&["config", "user.email", GIT_EMAIL]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    /// A repository with one commit holding `README.md`.
    pub fn with_commit() -> Self {
        let repo = Self::new();
        repo.write("README.md", "# test repo\n");
        repo.commit_all("initial commit");
        repo
    }

    /// The working tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `$HOME` for children: outside the repository, empty at first.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// An absolute path for a repo-relative one.
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

    /// Writes an executable file (mode 755), e.g. a scripted fake agent.
    pub fn write_executable(&self, rel: impl AsRef<Path>, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(rel, text);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
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

    /// `git add -A && git commit`; returns the new HEAD commit id.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// The commit id of HEAD.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A `git` command in the repository with the clean environment.
    pub fn git_command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("git");
        clean_env(&mut cmd, &self.home);
        cmd.current_dir(&self.root).args(args);
        cmd
    }

    /// Runs git and returns its stdout; panics (with stderr) when it fails.
    pub fn git<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let output = self.git_command(args).output().expect("spawn git");
        if !output.status.success() {
            panic!(
                "git {:?} failed ({}):\n{}",
                args.iter()
                    .map(|a| a.as_ref().to_owned())
                    .collect::<Vec<_>>(),
                output.status,
                stderr(&output)
            );
        }
        stdout(&output)
    }

    /// The `git-agent` binary in the repository with the clean environment;
    /// add `.env(..)`, `.current_dir(..)` or stdin before running it.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(bin());
        clean_env(&mut cmd, &self.home);
        cmd.current_dir(&self.root).args(args);
        cmd
    }

    /// Runs `git-agent` with `args` in the repository and waits for it.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.command(args).output().expect("spawn git-agent")
    }

    /// Runs `git-agent` in a subdirectory of the repository.
    pub fn cmd_in<S: AsRef<OsStr>>(&self, dir: impl AsRef<Path>, args: &[S]) -> Output {
        self.command(args)
            .current_dir(self.path(dir))
            .output()
            .expect("spawn git-agent")
    }

    /// Replaces machine-specific paths in `text` with `[REPO]` and `[HOME]`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[REPO]")
            .replace(&self.home.display().to_string(), "[HOME]")
    }
}

/// The exit code; `-<signal>` when the process was killed by a signal.
pub fn status_of(output: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match output.status.code() {
        Some(code) => code,
        None => -output.status.signal().unwrap_or(0),
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit status, stdout and stderr in one text: for snapshots and for
/// assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        status_of(output),
        stdout(output),
        stderr(output)
    )
}

/// Asserts the exit status, showing everything when it differs.
#[track_caller]
pub fn assert_status(output: &Output, expected: i32) {
    assert_eq!(
        status_of(output),
        expected,
        "unexpected exit status\n{}",
        describe(output)
    );
}
