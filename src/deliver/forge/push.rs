//! Talking to a remote with the git CLI (push, ls-remote, fetch), the
//! token fed from memory.
//!
//! The token never reaches argv, the environment of any process, a config
//! file or a remote URL on disk: git is started with its configured
//! credential helpers reset (`-c credential.helper=`) and one inline helper
//! that reads the token from file descriptor 3, a pipe this process filled
//! (a few copies, one per `get`) and closed. The helper is a shell function
//! whose only output is `printf`, a builtin: no child sees the token in its
//! argv either.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::ForgeError;

/// The inline credential helper: answers `get` with the token from fd 3.
const HELPER: &str = "!f() { test \"$1\" = get || { cat >/dev/null; exit 0; }; cat >/dev/null; IFS= read -r t <&3 || exit 1; printf 'username=x-access-token\\npassword=%s\\n' \"$t\"; }; f";

/// How many `get`s the pipe can answer (one push asks once or twice).
const COPIES: usize = 4;

/// What to push.
#[derive(Debug, Clone)]
pub struct PushSpec<'a> {
    /// The git directory of the repository.
    pub git_dir: &'a Path,
    /// A remote name or URL (never one with credentials in it).
    pub remote: &'a str,
    /// `<src>:<dst>` refspecs that must succeed.
    pub refspecs: Vec<String>,
    /// `--force-with-lease=<ref>:<expected>` leases (an empty expected value:
    /// the ref must not exist yet).
    pub leases: Vec<(String, String)>,
    /// Environment variables to remove from git's environment (the token's).
    pub scrub_env: Vec<String>,
}

fn err(operation: &str, message: String) -> ForgeError {
    ForgeError {
        status: None,
        operation: operation.into(),
        message,
        fields: Vec::new(),
    }
}

/// Pushes `spec.refspecs` with `token` (when given) as the HTTPS password.
pub fn push(spec: &PushSpec<'_>, token: Option<&str>) -> Result<(), ForgeError> {
    let mut args: Vec<String> = vec!["push".into(), "--porcelain".into(), "--no-verify".into()];
    for (name, expected) in &spec.leases {
        args.push(format!("--force-with-lease={name}:{expected}"));
    }
    args.push(spec.remote.into());
    args.extend(spec.refspecs.iter().cloned());
    let output = git_with_token(spec.git_dir, &args, &spec.scrub_env, token, "pushing")?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut message = stdout
        .lines()
        .filter(|l| l.starts_with('!'))
        .chain(stderr.lines().filter(|l| !l.trim().is_empty()))
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(token) = token {
        message = message.replace(token, "***");
    }
    Err(err(
        "pushing",
        format!("git push {}: {message}", spec.remote),
    ))
}

/// The commit `refname` points at on `remote`, if it exists there.
pub fn remote_ref(
    git_dir: &Path,
    remote: &str,
    refname: &str,
    scrub_env: &[String],
    token: Option<&str>,
) -> Result<Option<String>, ForgeError> {
    let args = ["ls-remote", "--refs", remote, refname].map(String::from);
    let output = git_with_token(git_dir, &args, scrub_env, token, "reading the remote")?;
    if !output.status.success() {
        return Err(failure(
            "reading the remote",
            "git ls-remote",
            &output,
            token,
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, name)| *name == refname)
        .map(|(sha, _)| sha.to_string()))
}

/// Fetches the objects of `refname` from `url` without writing any ref or
/// `FETCH_HEAD` (a URL, not a remote name: no remote-tracking ref moves).
pub fn fetch_objects(
    git_dir: &Path,
    url: &str,
    refname: &str,
    scrub_env: &[String],
    token: Option<&str>,
) -> Result<(), ForgeError> {
    let args = [
        "fetch",
        "--no-write-fetch-head",
        "--no-tags",
        "--quiet",
        url,
        refname,
    ]
    .map(String::from);
    let output = git_with_token(git_dir, &args, scrub_env, token, "fetching")?;
    if !output.status.success() {
        return Err(failure("fetching", "git fetch", &output, token));
    }
    Ok(())
}

fn failure(operation: &str, what: &str, output: &Output, token: Option<&str>) -> ForgeError {
    let mut message = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(token) = token {
        message = message.replace(token, "***");
    }
    err(operation, format!("{what}: {message}"))
}

/// Runs `git <args>` against the network with `token` (when given) as the
/// HTTPS password, fed through file descriptor 3.
fn git_with_token(
    git_dir: &Path,
    args: &[String],
    scrub_env: &[String],
    token: Option<&str>,
    operation: &str,
) -> Result<Output, ForgeError> {
    let mut cmd = Command::new("git");
    cmd.arg("--git-dir")
        .arg(git_dir)
        .args(["-c", "core.hooksPath=/dev/null"])
        .args(["-c", "credential.helper="])
        .args(["-c", "credential.interactive=false"]);
    if token.is_some() {
        cmd.args(["-c", &format!("credential.helper={HELPER}")]);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in scrub_env {
        cmd.env_remove(name);
    }
    let mut read_end: Option<OwnedFd> = None;
    if let Some(token) = token {
        let r = token_pipe(token, operation)?;
        let fd = r.as_raw_fd();
        // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and
        // exec; `fd` stays open in the parent until the child is spawned.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // dup2 onto itself keeps FD_CLOEXEC; clear it either way.
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                Ok(())
            });
        }
        read_end = Some(r);
    }
    let output = cmd
        .output()
        .map_err(|e| err(operation, format!("could not run git: {e}")))?;
    drop(read_end);
    Ok(output)
}

/// A pipe holding `COPIES` lines of `token` (one per credential request),
/// its write end closed: the read end for the credential helper.
fn token_pipe(token: &str, operation: &str) -> Result<OwnedFd, ForgeError> {
    if token.contains(['\n', '\r']) {
        return Err(err(operation, "the token contains a line break".into()));
    }
    let (r, w) = nix::unistd::pipe().map_err(|e| err(operation, format!("pipe: {e}")))?;
    let mut w = std::fs::File::from(w);
    let line = format!("{token}\n");
    if line.len() * COPIES > 32 * 1024 {
        return Err(err(operation, "the token is implausibly long".into()));
    }
    for _ in 0..COPIES {
        w.write_all(line.as_bytes())
            .map_err(|e| err(operation, format!("pipe: {e}")))?;
    }
    drop(w);
    Ok(r)
}
