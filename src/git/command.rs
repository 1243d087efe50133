//! The hardened git CLI runner: hooks and fsmonitor off, stdin null, no
//! prompts, the repository-locating environment scrubbed (see the module
//! docs of [`crate::git`]), and the helpers that read its output.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use git2::Oid;

use super::error::{Result, WorkspaceError};

/// Attempts for git operations that fail on someone else's `*.lock`.
const LOCK_RETRIES: u32 = 8;
/// Longest stderr kept in an error.
const STDERR_LIMIT: usize = 8 * 1024;

/// Environment variables that locate a repository or alter object lookup; a
/// parent process (e.g. `git agent` run as a git subcommand, or a hook) may
/// have set them, and they must not leak into our calls.
pub(super) const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_REPLACE_REF_BASE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_SHALLOW_FILE",
    "GIT_QUARANTINE_PATH",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_EXTERNAL_DIFF",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_PAGER",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
];

#[derive(Debug, Clone)]
pub(super) struct Git {
    cwd: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    /// When set, the command is killed at this instant (and not started
    /// after it): git-agent's work on what an agent left counts against
    /// the run's time limit.
    deadline: Option<std::time::Instant>,
}

/// Variables the config names as holding a forge token
/// (`github.token_env`): scrubbed from every git child, as the well-known
/// ones are.
static CONFIGURED_TOKENS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// Scrubs `name` from the environment of every git command from now on
/// (called when the config is loaded).
pub fn scrub_token_env(name: &str) {
    if let Ok(mut names) = CONFIGURED_TOKENS.write() {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
}

fn configured_tokens() -> Vec<String> {
    CONFIGURED_TOKENS
        .read()
        .map(|n| n.clone())
        .unwrap_or_default()
}

/// Kills a child at a deadline unless told first that it has exited.
struct Watchdog {
    done: std::sync::mpsc::Sender<()>,
    fired: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(pid: u32, deadline: std::time::Instant) -> Watchdog {
        let (done, exited) = std::sync::mpsc::channel::<()>();
        let fired = std::thread::spawn(move || {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match exited.recv_timeout(left) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // The child is not reaped before `fired` is asked, so
                    // the pid is still its own.
                    if let Ok(pid) = i32::try_from(pid) {
                        // SAFETY: kill(2) on our own unreaped child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    true
                }
                _ => false,
            }
        });
        Watchdog { done, fired }
    }

    /// Whether the deadline killed the child.
    fn fired(self) -> bool {
        let _ = self.done.send(());
        self.fired.join().unwrap_or(false)
    }
}

pub(super) fn arg_eq(flag: &str, path: &Path) -> OsString {
    let mut s = OsString::from(flag);
    s.push(path);
    s
}

impl Git {
    pub(super) fn new(cwd: &Path, extra_env: &[(OsString, OsString)]) -> Git {
        let mut args: Vec<OsString> = vec!["--no-pager".into()];
        for kv in [
            "core.hooksPath=/dev/null",
            "core.fsmonitor=false",
            "gc.auto=0",
            "maintenance.auto=false",
            "advice.addEmbeddedRepo=false",
            "advice.updateSparsePath=false",
            "advice.detachedHead=false",
        ] {
            args.push("-c".into());
            args.push(kv.into());
        }
        Git {
            cwd: cwd.to_path_buf(),
            args,
            env: extra_env.to_vec(),
            deadline: None,
        }
    }

    /// Kills the command at `deadline` (see the field).
    pub(super) fn deadline(mut self, deadline: Option<std::time::Instant>) -> Git {
        self.deadline = deadline;
        self
    }

    pub(super) fn arg(mut self, a: impl Into<OsString>) -> Git {
        self.args.push(a.into());
        self
    }

    pub(super) fn config(self, kv: &str) -> Git {
        self.arg("-c").arg(kv)
    }

    pub(super) fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Git {
        self.env.push((k.into(), v.as_ref().to_os_string()));
        self
    }

    pub(super) fn command_line(&self, sub: &[&OsStr]) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (k, v) in &self.env {
            if k.to_string_lossy().starts_with("GIT_") {
                parts.push(format!("{}={}", k.to_string_lossy(), shell_quote(v)));
            }
        }
        parts.push("git".into());
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.extend(sub.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    /// Runs and returns the output whatever the exit status.
    pub(super) fn run_unchecked(
        &self,
        sub: &[&OsStr],
        stdin: Option<&[u8]>,
    ) -> Result<(Output, String)> {
        let command = self.command_line(sub);
        tracing::debug!(%command, cwd = %self.cwd.display(), "git");
        let mut cmd = self.command(sub, stdin.is_some());
        let spawn_err = |source| WorkspaceError::Spawn {
            command: command.clone(),
            cwd: self.cwd.clone(),
            source,
        };
        let over = || WorkspaceError::Deadline {
            command: command.clone(),
        };
        if self
            .deadline
            .is_some_and(|d| std::time::Instant::now() >= d)
        {
            return Err(over());
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let watchdog = self.deadline.map(|d| Watchdog::start(child.id(), d));
        let output = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => std::thread::scope(|s| {
                let writer = s.spawn(move || {
                    // A write error (git exited early) shows up in the status.
                    let _ = pipe.write_all(data);
                });
                let out = child.wait_with_output();
                let _ = writer.join();
                out
            }),
            _ => child.wait_with_output(),
        }
        .map_err(spawn_err)?;
        if watchdog.is_some_and(Watchdog::fired) {
            return Err(over());
        }
        Ok((output, command))
    }

    /// git with these args, in `cwd`, with the environment git-agent's git
    /// children get: scrubbed of what could redirect or confuse them and of
    /// every forge token.
    fn command(&self, sub: &[&OsStr], stdin: bool) -> Command {
        let mut cmd = Command::new("git");
        cmd.args(&self.args)
            .args(sub)
            .current_dir(&self.cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        // Local git needs no forge token; the push gets its own through a
        // credential helper's pipe (`deliver::forge::push`).
        for k in crate::spec::config::FORGE_TOKENS {
            cmd.env_remove(k);
        }
        for k in configured_tokens() {
            cmd.env_remove(k);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ADVICE", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Args given as `&str`; fails on a non-zero exit.
    pub(super) fn run(&self, sub: &[&str]) -> Result<Output> {
        let sub: Vec<&OsStr> = sub.iter().map(OsStr::new).collect();
        self.run_os(&sub, None)
    }

    pub(super) fn run_os(&self, sub: &[&OsStr], stdin: Option<&[u8]>) -> Result<Output> {
        let (out, command) = self.run_unchecked(sub, stdin)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(command, &out))
        }
    }

    /// Like [`Git::run_os`] without stdin, for [`retry_on_lock`]: a failure
    /// caused by someone else's lock file is [`AttemptError::Locked`].
    pub(super) fn try_run(
        &self,
        sub: &[&OsStr],
    ) -> std::result::Result<Output, AttemptError<WorkspaceError>> {
        let (out, command) = self.run_unchecked(sub, None)?;
        if out.status.success() {
            Ok(out)
        } else if is_lock_contention(&out.stderr) {
            Err(AttemptError::Locked(self.failure(command, &out)))
        } else {
            Err(AttemptError::Failed(self.failure(command, &out)))
        }
    }

    pub(super) fn failure(&self, command: String, out: &Output) -> WorkspaceError {
        WorkspaceError::GitCommand {
            command,
            cwd: self.cwd.clone(),
            status: out.status.to_string(),
            stderr: truncate(&String::from_utf8_lossy(&out.stderr)),
        }
    }
}

fn truncate(s: &str) -> String {
    let s = s.trim_end();
    if s.len() <= STDERR_LIMIT {
        return s.to_string();
    }
    let mut end = STDERR_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &s[..end], s.len() - end)
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@^{}+%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(super) fn parse_oid(stdout: &[u8], git: &Git, what: &str) -> Result<Oid> {
    let text = String::from_utf8_lossy(stdout);
    Oid::from_str(text.trim()).map_err(|source| WorkspaceError::Git2 {
        action: "parsing object id",
        context: format!("output of {what}: {:?}", text.trim()),
        repo: git.cwd.clone(),
        source,
    })
}

/// Stderr says another process held a lock file we needed.
fn is_lock_contention(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.contains(".lock") && (s.contains("File exists") || s.contains("nable to create"))
        || s.contains("could not lock")
        || s.contains("another git process")
}

pub(super) fn backoff(attempt: u32) -> Duration {
    // 20 ms, 40 ms, ... capped at 1 s, plus jitter so racers spread out.
    let base = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    Duration::from_millis(base + rand::random_range(0..=base / 2))
}

/// How often [`retry_on_lock`] tries an operation, and how long it waits in
/// between.
#[derive(Debug, Clone, Copy)]
pub(super) struct LockRetries {
    /// Tries in all, the first one included.
    pub(super) attempts: u32,
    /// The [`backoff`] step of the first wait; each later wait takes the next.
    pub(super) first_step: u32,
}

impl LockRetries {
    /// For git CLI calls that fail on someone else's `*.lock`.
    pub(super) const GIT_CLI: LockRetries = LockRetries {
        attempts: LOCK_RETRIES,
        first_step: 0,
    };
    /// For creating or moving a branch while another writer updates it.
    pub(super) const BRANCH: LockRetries = LockRetries {
        attempts: 20,
        first_step: 1,
    };
    /// For writing a note while another writer holds the notes ref.
    pub(super) const NOTE: LockRetries = LockRetries {
        attempts: 30,
        first_step: 0,
    };
}

/// Why one try of an operation run by [`retry_on_lock`] failed.
#[derive(Debug)]
pub(super) enum AttemptError<E> {
    /// Another process held a lock we needed: worth another try.
    Locked(E),
    /// Anything else: trying again would not help.
    Failed(E),
}

impl<E> From<E> for AttemptError<E> {
    fn from(e: E) -> Self {
        AttemptError::Failed(e)
    }
}

/// Runs `op` (given the number of the try, from 0) until it succeeds, fails
/// with [`AttemptError::Failed`], or has been tried `retries.attempts` times,
/// sleeping a [`backoff`] between tries; returns the last error. For the
/// steps where git and libgit2 give up at once when another process holds a
/// lock file instead of waiting for it.
pub(super) fn retry_on_lock<T, E>(
    retries: LockRetries,
    mut op: impl FnMut(u32) -> std::result::Result<T, AttemptError<E>>,
) -> std::result::Result<T, E> {
    let mut attempt = 0;
    loop {
        match op(attempt) {
            Ok(value) => return Ok(value),
            Err(AttemptError::Locked(_)) if attempt + 1 < retries.attempts => {
                std::thread::sleep(backoff(retries.first_step + attempt));
                attempt += 1;
            }
            Err(AttemptError::Locked(e) | AttemptError::Failed(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_command_is_killed_at_its_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        // Control: without a deadline, hashing a FIFO blocks (until a
        // writer comes, which here is the test after a second).
        let fifo_arg = fifo.display().to_string();
        let path = fifo.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1000));
            std::fs::write(&path, "x").expect("write the fifo");
        });
        let started = std::time::Instant::now();
        Git::new(dir.path(), &[])
            .run(&["hash-object", &fifo_arg])
            .expect("hash-object");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "control: it blocks"
        );
        writer.join().expect("writer");

        let started = std::time::Instant::now();
        let git = Git::new(dir.path(), &[]).deadline(Some(started + Duration::from_millis(200)));
        let err = git.run(&["hash-object", &fifo_arg]).expect_err("killed");
        assert!(matches!(err, WorkspaceError::Deadline { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Past the deadline, nothing more is started.
        let err = git.run(&["--version"]).expect_err("not started");
        assert!(matches!(err, WorkspaceError::Deadline { .. }), "{err}");
        // A command that ends in time is not affected.
        let git = Git::new(dir.path(), &[])
            .deadline(Some(std::time::Instant::now() + Duration::from_secs(30)));
        assert!(git.run(&["--version"]).is_ok());
    }

    #[test]
    fn retry_on_lock_retries_only_lock_failures_and_only_so_often() {
        let three = LockRetries {
            attempts: 3,
            first_step: 0,
        };
        let mut tries = Vec::new();
        let locked: std::result::Result<(), &str> = retry_on_lock(three, |n| {
            tries.push(n);
            Err(AttemptError::Locked("locked"))
        });
        assert_eq!((locked, tries.as_slice()), (Err("locked"), &[0, 1, 2][..]));

        tries.clear();
        let failed: std::result::Result<(), &str> = retry_on_lock(three, |n| {
            tries.push(n);
            Err(AttemptError::Failed("broken"))
        });
        assert_eq!((failed, tries.as_slice()), (Err("broken"), &[0][..]));

        let third_time = retry_on_lock(three, |n| {
            if n < 2 {
                Err(AttemptError::Locked("locked"))
            } else {
                Ok(n)
            }
        });
        assert_eq!(third_time, Ok(2));
    }
}
