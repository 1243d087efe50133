//! Supervision of one untrusted child process, the way nextest runs tests.
//!
//! The child runs in its own process group with stdin from `/dev/null` and a
//! complete, explicit environment. Its stdout and stderr are drained by their
//! own tasks into files, capped at a byte limit (the rest is read and
//! discarded so the child never blocks on a full pipe). A timeout or a
//! graceful stop sends SIGTERM to the group, waits a grace period, then sends
//! SIGKILL; a hard stop sends SIGKILL at once.
//!
//! When the leader exits, anything of the run that is still alive is killed:
//! the remaining members of the process group, and any process whose initial
//! environment carries the run's marker variable (this catches grandchildren
//! that escaped the group with `setsid`). Call [`become_subreaper`] once at
//! startup so such orphans reparent to us and can be reaped.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::exec::channels::Channels;
use crate::exec::sandbox::ChildFds;

/// How long to wait for stdout/stderr to close after the leader exited and
/// the leftovers were killed (nextest's leak timeout).
pub const PIPE_CLOSE_WAIT: Duration = Duration::from_millis(100);

/// Upper bound on the time spent killing and reaping leftovers.
const SWEEP_DEADLINE: Duration = Duration::from_secs(2);

/// Pause between two rounds of the sweep.
const SWEEP_POLL: Duration = Duration::from_millis(5);

/// Size of the read buffer of each output stream.
const READ_CHUNK: usize = 64 * 1024;

/// What the orchestrator wants from a running child, sent through a
/// [`tokio::sync::watch`] channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopSignal {
    /// Keep running.
    #[default]
    Run,
    /// SIGTERM to the group, the grace period, then SIGKILL.
    Graceful,
    /// SIGKILL to the group at once.
    Kill,
}

/// Everything needed to start and supervise one child.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Program to run; looked up in the `PATH` of `env` when it has no slash.
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// The complete environment: the child inherits nothing else (except the
    /// marker, which is added when set).
    pub env: Vec<(String, String)>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Bytes kept per stream; the rest is drained, counted and discarded.
    pub output_limit: u64,
    /// Wall-clock limit; then SIGTERM to the group, `grace`, SIGKILL.
    pub timeout: Option<Duration>,
    pub grace: Duration,
    /// `NAME=VALUE` set in the child's environment and used after the leader
    /// exits to find processes of this run that left the process group.
    /// The value must be unique to this run.
    pub marker: Option<(String, String)>,
    /// Confinement applied between fork and exec (prepared in the parent).
    pub sandbox: Option<std::sync::Arc<crate::exec::sandbox::Prepared>>,
}

pub use crate::model::check::ExitKind;

pub(crate) fn exit_of(status: ExitStatus) -> ExitKind {
    if let Some(code) = status.code() {
        ExitKind::Code(code)
    } else if let Some(signal) = status.signal() {
        ExitKind::Signal(signal)
    } else {
        debug!(?status, "exit status has neither code nor signal");
        ExitKind::Code(-1)
    }
}

/// The result of a supervised run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    pub exit: ExitKind,
    /// The wall-clock timeout expired and we terminated the group.
    pub timed_out: bool,
    /// The orchestrator stopped the run (`Graceful` or `Kill`); the strongest
    /// stop that was applied.
    pub stopped: Option<StopSignal>,
    /// From spawn to the exit of the leader.
    pub duration: Duration,
    /// Bytes the child wrote to stdout, including discarded ones.
    pub stdout_bytes: u64,
    /// Bytes the child wrote to stderr, including discarded ones.
    pub stderr_bytes: u64,
    /// At least one stream went over `output_limit`.
    pub truncated: bool,
    /// Processes of this run still alive after the leader exited; all killed.
    pub leaked: usize,
    /// Endpoints the egress proxy refused (`host:port`), when the network
    /// is an allowlist.
    pub egress_refused: Vec<String>,
    /// stdout or stderr was still open [`PIPE_CLOSE_WAIT`] after the sweep:
    /// a process we could not identify holds it. Output after that is lost.
    pub pipes_left_open: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot run `{program}`: {}", spawn_reason(source))]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("working directory {} is not usable", path.display())]
    Cwd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write output file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lost track of child process {pid} (`{program}`)")]
    Wait {
        program: String,
        pid: i32,
        #[source]
        source: io::Error,
    },
}

fn spawn_reason(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::NotFound => {
            "program not found (check the name and the PATH of the run), or its interpreter is missing"
        }
        io::ErrorKind::PermissionDenied => "program is not executable (permission denied)",
        _ => "the operating system refused to start it",
    }
}

/// Makes this process the child subreaper: orphans of our children (for
/// example grandchildren that `setsid()` away) reparent to us instead of to
/// init, so the sweep can kill and reap them. Call once at startup; failure
/// is logged and otherwise ignored (the sweep still kills, but cannot reap).
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        warn!(%err, "cannot become child subreaper; orphaned agent processes will not be reaped by us");
    }
}

/// The last `max_bytes` bytes of a file as lossy UTF-8, starting at a line
/// boundary when the window holds one (otherwise at a character boundary).
pub fn tail(path: &Path, max_bytes: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let max = u64::try_from(max_bytes).unwrap_or(u64::MAX);
    let start = len.saturating_sub(max);
    // Read one byte before the window to tell whether it starts a line.
    let from = start.saturating_sub(u64::from(start > 0));
    file.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    file.take(len - from).read_to_end(&mut buf)?;
    let mut text: &[u8] = &buf;
    if start > 0 {
        // A trailing newline does not count: it would leave nothing.
        let search = &text[..text.len().saturating_sub(1)];
        match search.iter().position(|&b| b == b'\n') {
            Some(newline) => text = &text[newline + 1..],
            None => {
                text = text.get(1..).unwrap_or_default();
                while let [first, rest @ ..] = text {
                    if first & 0xC0 != 0x80 {
                        break;
                    }
                    text = rest;
                }
            }
        }
    }
    Ok(String::from_utf8_lossy(text).into_owned())
}

/// Runs the child described by `spec` to completion, honouring the timeout and
/// the orchestrator's stop requests, and kills whatever of the run survives the
/// leader. When this returns (or its future is dropped), nothing of the run is
/// left alive.
pub async fn run(
    spec: &ProcessSpec,
    mut stop: watch::Receiver<StopSignal>,
) -> Result<ProcessOutcome, ProcessError> {
    check_cwd(spec)?;
    let stdout_file = create_output(&spec.stdout_path).await?;
    let stderr_file = create_output(&spec.stderr_path).await?;
    let spawn_error = |source| ProcessError::Spawn {
        program: spec.program.clone(),
        source,
    };
    let mut channels = Channels::new(spec.sandbox.as_deref()).map_err(spawn_error)?;
    let mut cmd = command(spec, channels.child_fds(), channels.proxied());
    let started = Instant::now();
    let spawned = cmd.spawn();
    channels.close_child_ends();
    let mut child = spawned.map_err(spawn_error)?;
    channels.serve().map_err(spawn_error)?;
    let pid = child_pid(&child, spec)?;
    let lost = |source: io::Error| ProcessError::Wait {
        program: spec.program.clone(),
        pid,
        source,
    };
    debug!(pid, program = %spec.program, "spawned child in its own process group");
    // From here on, any early return or drop of this future kills the run.
    let mut guard = RunGuard {
        sweep: sweep_of(spec, pid),
        armed: true,
    };
    let drains = start_drains(&mut child, spec, stdout_file, stderr_file).map_err(lost)?;

    let deadline = spec
        .timeout
        .map(|t| tokio::time::Instant::from_std(started) + t);
    let (status, state) = wait_for_leader(&mut child, spec, pid, deadline, &mut stop)
        .await
        .map_err(lost)?;
    let duration = started.elapsed();
    if let (Some(at), false) = (state.kill_at, state.killed) {
        // The leader died of the SIGTERM: the rest of its group gets the
        // rest of the grace period too (nextest's rule), then the sweep.
        grace_for_group(pid, at).await;
    }
    let (exit, killed_in_namespace) = channels.exit(status);
    debug!(pid, %exit, ?duration, "leader exited");

    // A step whose PID namespace is gone left nothing alive: its init
    // killed what was left and the kernel ended the namespace with it (the
    // waiter, the group's only other member, is the leader tokio reaped).
    // Otherwise /proc is swept.
    let leaked = match killed_in_namespace {
        Some(killed) => killed,
        None => guard.sweep.run().await,
    };
    guard.armed = false;
    let (out, err, pipes_left_open) =
        close_pipes(pid, drains.stdout, drains.stderr, drains.give_up, spec).await?;

    Ok(ProcessOutcome {
        egress_refused: channels.refused(),
        exit,
        timed_out: state.timed_out,
        stopped: state.stopped,
        duration,
        stdout_bytes: out.total,
        stderr_bytes: err.total,
        truncated: out.truncated || err.truncated,
        leaked,
        pipes_left_open,
    })
}

/// The pid of the child just spawned.
fn child_pid(child: &tokio::process::Child, spec: &ProcessSpec) -> Result<i32, ProcessError> {
    child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| ProcessError::Wait {
            program: spec.program.clone(),
            pid: 0,
            source: io::Error::other("child has no pid right after spawn"),
        })
}

/// The sweep of the run led by `pid`: its process group, its marker, and
/// its own user namespace when the sandbox gave it one.
fn sweep_of(spec: &ProcessSpec, pid: i32) -> Sweep {
    let mut sweep = Sweep::new(pid, spec.marker.as_ref());
    if spec
        .sandbox
        .as_ref()
        .is_some_and(|s| s.uses_user_namespace())
    {
        // The leader has unshared before exec: its user namespace is the
        // run's, and no process can leave it (`setsid`, `env -i` do not).
        let own = crate::exec::sandbox::user_namespace_of(std::process::id() as i32);
        sweep.userns =
            crate::exec::sandbox::user_namespace_of(pid).filter(|ns| Some(ns) != own.as_ref());
    }
    sweep
}

/// The tasks draining the child's stdout and stderr, and the switch that
/// tells them to give up.
struct Drains {
    give_up: watch::Sender<bool>,
    stdout: tokio::task::JoinHandle<Result<StreamStats, ProcessError>>,
    stderr: tokio::task::JoinHandle<Result<StreamStats, ProcessError>>,
}

/// Takes the child's pipes and starts draining them into the output files.
fn start_drains(
    child: &mut tokio::process::Child,
    spec: &ProcessSpec,
    stdout_file: tokio::fs::File,
    stderr_file: tokio::fs::File,
) -> io::Result<Drains> {
    let (give_up, give_up_rx) = watch::channel(false);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("stdout pipe missing"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("stderr pipe missing"))?;
    let stdout_task = tokio::spawn(drain(
        stdout,
        stdout_file,
        spec.stdout_path.clone(),
        spec.output_limit,
        give_up_rx.clone(),
    ));
    let stderr_task = tokio::spawn(drain(
        stderr,
        stderr_file,
        spec.stderr_path.clone(),
        spec.output_limit,
        give_up_rx,
    ));
    Ok(Drains {
        give_up,
        stdout: stdout_task,
        stderr: stderr_task,
    })
}

fn check_cwd(spec: &ProcessSpec) -> Result<(), ProcessError> {
    match std::fs::metadata(&spec.cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ProcessError::Cwd {
                path: spec.cwd.clone(),
                source: io::Error::other("not a directory"),
            })
        }
        Err(source) => {
            return Err(ProcessError::Cwd {
                path: spec.cwd.clone(),
                source,
            })
        }
    }
    Ok(())
}

/// The child's command: exactly the spec's environment, stdin closed, its
/// own process group (or the sandbox's session), killed with its parent.
fn command(spec: &ProcessSpec, fds: ChildFds, proxied: bool) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some((name, value)) = &spec.marker {
        cmd.env(name, value);
    }
    if proxied {
        let url = crate::exec::egress::proxy_url();
        for name in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env(name, &url);
        }
        for name in ["NO_PROXY", "no_proxy"] {
            cmd.env(name, "localhost,127.0.0.1,::1");
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if spec.sandbox.is_none() {
        cmd.process_group(0);
    } // else the sandbox calls setsid(): a new session and process group.
      // If the orchestrator is SIGKILLed, the leader dies with it; what it left
      // behind is swept by `kill_marked` (`git agent clean`/`status`).
    #[cfg(target_os = "linux")]
    // SAFETY: only prctl(2), which is async-signal-safe, runs between fork
    // and exec, and the sandbox's raw system calls on buffers and fds
    // prepared before the fork (see `sandbox::Prepared::apply_in_child`).
    unsafe {
        let sandbox = spec.sandbox.clone();
        let max_fd = open_file_limit();
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            close_inherited_fds(max_fd);
            if let Some(sandbox) = &sandbox {
                sandbox.apply_in_child(fds)?;
            }
            Ok(())
        });
    }

    cmd
}

/// The highest file descriptor number to mark close-on-exec when the
/// kernel lacks `close_range` (read before the fork: `getrlimit` there is
/// fine, but a number is all the child needs).
fn open_file_limit() -> i32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        i32::try_from(limit.rlim_cur.min(65_536)).unwrap_or(65_536)
    } else {
        1024
    }
}

/// Between fork and exec: every descriptor above stderr becomes
/// close-on-exec, so nothing whoever started git-agent left open (a socket,
/// a secret file, a terminal) reaches the agent or a check. Descriptors the
/// exec itself needs (std's error pipe) are close-on-exec already.
///
/// # Safety
/// Only raw, async-signal-safe system calls.
unsafe fn close_inherited_fds(max_fd: i32) {
    #[cfg(target_os = "linux")]
    {
        let done = libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) == 0;
        if done {
            return;
        }
    }
    for fd in 3..max_fd {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// Waits for the leader while enforcing the timeout (SIGTERM, grace,
/// SIGKILL) and the orchestrator's stop requests.
async fn wait_for_leader(
    child: &mut tokio::process::Child,
    spec: &ProcessSpec,
    pid: i32,
    deadline: Option<tokio::time::Instant>,
    stop: &mut watch::Receiver<StopSignal>,
) -> io::Result<(ExitStatus, Shutdown)> {
    let mut state = Shutdown::default();
    // A stop requested before we started applies right away.
    let initial = *stop.borrow_and_update();
    state.on_stop(initial, pid, spec.grace);
    let mut stop_open = true;

    let status = loop {
        tokio::select! {
            res = child.wait() => break res?,
            () = sleep_until(deadline), if !state.terminating() => {
                debug!(pid, "timeout; terminating process group");
                state.timed_out = true;
                state.terminate(pid, spec.grace);
            }
            () = sleep_until(state.kill_at), if state.kill_at.is_some() && !state.killed => {
                debug!(pid, "grace period over; killing process group");
                state.kill(pid);
            }
            res = stop.changed(), if stop_open => {
                if res.is_err() {
                    // The orchestrator dropped the sender: nobody can stop us
                    // any more, which is not a request to stop.
                    stop_open = false;
                    continue;
                }
                let requested = *stop.borrow_and_update();
                state.on_stop(requested, pid, spec.grace);
            }
        }
    };
    Ok((status, state))
}

/// Nextest: wait briefly for the pipes to close, then stop reading. Returns
/// both streams' counts and whether a pipe was still open.
async fn close_pipes(
    pid: i32,
    stdout_task: tokio::task::JoinHandle<Result<StreamStats, ProcessError>>,
    stderr_task: tokio::task::JoinHandle<Result<StreamStats, ProcessError>>,
    give_up: watch::Sender<bool>,
    spec: &ProcessSpec,
) -> Result<(StreamStats, StreamStats, bool), ProcessError> {
    let both = async { (stdout_task.await, stderr_task.await) };
    tokio::pin!(both);
    let mut pipes_left_open = false;
    let (out, err) = match tokio::time::timeout(PIPE_CLOSE_WAIT, &mut both).await {
        Ok(results) => results,
        Err(_) => {
            warn!(
                pid,
                "output pipes still open after the run was swept; giving up on them"
            );
            pipes_left_open = true;
            // The receivers live in the tasks; a send error only means both ended.
            let _ = give_up.send(true);
            both.await
        }
    };
    let out = joined(out, &spec.stdout_path)?;
    let err = joined(err, &spec.stderr_path)?;

    Ok((out, err, pipes_left_open))
}

/// Waits until the process group `pgid` is empty or `until` comes.
async fn grace_for_group(pgid: i32, until: tokio::time::Instant) {
    while tokio::time::Instant::now() < until {
        if killpg(Pid::from_raw(pgid), None) == Err(Errno::ESRCH) {
            return;
        }
        tokio::time::sleep(SWEEP_POLL * 4).await;
    }
}

async fn create_output(path: &Path) -> Result<tokio::fs::File, ProcessError> {
    tokio::fs::File::create(path)
        .await
        .map_err(|source| ProcessError::Io {
            path: path.to_path_buf(),
            source,
        })
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn joined(
    res: Result<Result<StreamStats, ProcessError>, tokio::task::JoinError>,
    path: &Path,
) -> Result<StreamStats, ProcessError> {
    res.map_err(|join| ProcessError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(format!("output task failed: {join}")),
    })?
}

/// Escalation state of the leader's process group.
#[derive(Debug, Default)]
struct Shutdown {
    timed_out: bool,
    stopped: Option<StopSignal>,
    /// SIGTERM was sent; SIGKILL is due at this instant.
    kill_at: Option<tokio::time::Instant>,
    killed: bool,
}

impl Shutdown {
    fn terminating(&self) -> bool {
        self.kill_at.is_some() || self.killed
    }

    fn terminate(&mut self, pgid: i32, grace: Duration) {
        signal_group(pgid, Signal::SIGTERM);
        self.kill_at = Some(tokio::time::Instant::now() + grace);
    }

    fn kill(&mut self, pgid: i32) {
        signal_group(pgid, Signal::SIGKILL);
        self.killed = true;
    }

    fn on_stop(&mut self, requested: StopSignal, pgid: i32, grace: Duration) {
        match requested {
            StopSignal::Run => {}
            StopSignal::Graceful => {
                if !self.terminating() {
                    debug!(pgid, "graceful stop requested; terminating process group");
                    self.stopped = Some(StopSignal::Graceful);
                    self.terminate(pgid, grace);
                }
            }
            StopSignal::Kill => {
                if !self.killed {
                    debug!(pgid, "kill requested; killing process group");
                    self.stopped = Some(StopSignal::Kill);
                    self.kill(pgid);
                }
            }
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => warn!(pgid, %signal, %err, "cannot signal process group"),
    }
}

#[derive(Debug, Clone, Copy)]
struct StreamStats {
    total: u64,
    truncated: bool,
}

/// Copies `reader` into `file` up to `limit` bytes and discards the rest, so
/// the child never blocks on a full pipe. Stops at end of file or when told to
/// give up. A write error stops writing, not reading; it is reported at the end.
async fn drain<R: AsyncRead + Unpin>(
    mut reader: R,
    mut file: tokio::fs::File,
    path: PathBuf,
    limit: u64,
    mut give_up: watch::Receiver<bool>,
) -> Result<StreamStats, ProcessError> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total: u64 = 0;
    let mut kept: u64 = 0;
    let mut last_kept: Option<u8> = None;
    let mut write_error: Option<io::Error> = None;
    loop {
        let n = tokio::select! {
            biased;
            res = reader.read(&mut buf) => match res {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    debug!(path = %path.display(), %err, "reading child output failed");
                    break;
                }
            },
            // Err means run() is gone; stop reading either way.
            _ = give_up.wait_for(|g| *g) => break,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        total += n as u64;
        let room = usize::try_from(limit.saturating_sub(kept)).unwrap_or(usize::MAX);
        let keep = &chunk[..chunk.len().min(room)];
        if !keep.is_empty() && write_error.is_none() {
            match file.write_all(keep).await {
                Ok(()) => {
                    kept += keep.len() as u64;
                    last_kept = keep.last().copied();
                }
                Err(err) => write_error = Some(err),
            }
        }
    }
    let truncated = total > kept;
    if truncated && write_error.is_none() {
        let note = truncation_note(kept, total, last_kept);
        if let Err(err) = file.write_all(note.as_bytes()).await {
            write_error = Some(err);
        }
    }
    if write_error.is_none() {
        if let Err(err) = file.flush().await {
            write_error = Some(err);
        }
    }
    match write_error {
        Some(source) => Err(ProcessError::Io { path, source }),
        None => Ok(StreamStats { total, truncated }),
    }
}

/// The line that ends a truncated output file: what was kept and what
/// discarded, on a line of its own.
fn truncation_note(kept: u64, total: u64, last_kept: Option<u8>) -> String {
    let newline = if matches!(last_kept, None | Some(b'\n')) {
        ""
    } else {
        "\n"
    };
    format!(
        "{newline}[git-agent: output truncated after {kept} bytes; {} bytes discarded]\n",
        total - kept
    )
}

/// Kills the run if `run()` returns early or its future is dropped.
struct RunGuard {
    sweep: Sweep,
    armed: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.armed {
            debug!(
                pgid = self.sweep.pgid,
                "run abandoned; killing its processes"
            );
            signal_group(self.sweep.pgid, Signal::SIGKILL);
            self.sweep.round();
        }
    }
}

/// Kills every process whose initial environment holds `NAME=VALUE`: what
/// an orchestrator that died (SIGKILL, a crash) left of its runs. Returns
/// how many were killed.
pub fn kill_marked(name: &str, value: &str) -> usize {
    // No process group has this id, so only the marker selects.
    let mut sweep = Sweep::new(i32::MAX, Some(&(name.to_string(), value.to_string())));
    let deadline = Instant::now() + SWEEP_DEADLINE;
    while sweep.round() && Instant::now() < deadline {
        std::thread::sleep(SWEEP_POLL);
    }
    sweep.killed.len()
}

/// The live processes whose initial environment holds `NAME=VALUE` (other
/// than this process and its ancestors).
pub fn marked_alive(name: &str, value: &str) -> Vec<i32> {
    let sweep = Sweep::new(i32::MAX, Some(&(name.to_string(), value.to_string())));
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !sweep.protected.contains(pid))
        .filter(|pid| ProcInfo::read(*pid).is_some_and(|i| i.state != 'Z' && i.state != 'X'))
        .filter(|pid| sweep.carries_marker(*pid))
        .collect()
}

/// Finds, kills and reaps the processes of one run: members of its process
/// group and processes whose initial environment holds the marker.
struct Sweep {
    pgid: i32,
    needle: Option<Vec<u8>>,
    /// `/proc/<pid>/ns/user` of the run's own user namespace, when it has one.
    userns: Option<String>,
    me: i32,
    /// Ourselves and our ancestors, never touched even if they carry the marker.
    protected: HashSet<i32>,
    /// Every live process of the run we found (and killed).
    killed: HashSet<i32>,
}

impl Sweep {
    fn new(pgid: i32, marker: Option<&(String, String)>) -> Self {
        let me = Pid::this().as_raw();
        let mut protected = HashSet::from([me, 1]);
        let mut pid = me;
        while let Some(info) = ProcInfo::read(pid) {
            if info.ppid <= 1 || !protected.insert(info.ppid) {
                break;
            }
            pid = info.ppid;
        }
        Sweep {
            pgid,
            needle: marker.map(|(name, value)| format!("{name}={value}").into_bytes()),
            userns: None,
            me,
            protected,
            killed: HashSet::new(),
        }
    }

    /// Rounds until nothing of the run is alive and our zombies are reaped,
    /// or the deadline passes. Returns the number of processes killed.
    async fn run(&mut self) -> usize {
        let deadline = Instant::now() + SWEEP_DEADLINE;
        while self.round() {
            if Instant::now() >= deadline {
                warn!(
                    pgid = self.pgid,
                    "processes of the run are still dying after the sweep deadline"
                );
                break;
            }
            tokio::time::sleep(SWEEP_POLL).await;
        }
        if !self.killed.is_empty() {
            debug!(pgid = self.pgid, killed = ?self.killed, "killed leftover processes of the run");
        }
        self.killed.len()
    }

    /// One scan of /proc (in-memory, fast): SIGKILL whatever of the run is
    /// alive, reap its zombies that are our children. Returns whether more
    /// rounds are needed.
    fn round(&mut self) -> bool {
        let entries = match std::fs::read_dir("/proc") {
            Ok(entries) => entries,
            Err(err) => {
                warn!(%err, "cannot list /proc; only the process group is killed");
                signal_group(self.pgid, Signal::SIGKILL);
                return false;
            }
        };
        let mut pending = false;
        let mut group_alive = false;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            // The leader is reaped by tokio, never by us.
            if pid == self.pgid || self.protected.contains(&pid) {
                continue;
            }
            let Some(info) = ProcInfo::read(pid) else {
                continue;
            };
            let in_group = info.pgrp == self.pgid;
            if info.state == 'Z' || info.state == 'X' {
                pending |= self.settle_zombie(pid, &info, in_group);
                continue;
            }
            let ours = in_group
                || self.killed.contains(&pid)
                || self.carries_marker(pid)
                || self.in_user_namespace(pid);
            if !ours {
                continue;
            }
            self.kill_leftover(pid, &info, in_group);
            group_alive |= in_group;
            pending = true;
        }
        if group_alive {
            // Atomic with respect to fork, unlike killing pid by pid.
            signal_group(self.pgid, Signal::SIGKILL);
        }
        pending
    }

    /// Reaps a zombie of the run that is our child. Returns whether one of
    /// the run's is still to reparent to us.
    fn settle_zombie(&self, pid: i32, info: &ProcInfo, in_group: bool) -> bool {
        // A zombie's environment is gone; only known ones are ours.
        if !(in_group || self.killed.contains(&pid)) {
            return false;
        }
        if info.ppid == self.me {
            reap(pid);
        } else if self.killed.contains(&info.ppid) {
            // Its parent is dying; it will reparent to us.
            return true;
        }
        false
    }

    /// SIGKILLs a live process of the run, remembering it.
    fn kill_leftover(&mut self, pid: i32, info: &ProcInfo, in_group: bool) {
        if self.killed.insert(pid) {
            debug!(
                pid,
                ppid = info.ppid,
                in_group,
                "killing leftover process of the run"
            );
        }
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => warn!(pid, %err, "cannot kill leftover process"),
        }
    }

    fn in_user_namespace(&self, pid: i32) -> bool {
        self.userns
            .as_ref()
            .is_some_and(|ns| crate::exec::sandbox::user_namespace_of(pid).as_ref() == Some(ns))
    }

    fn carries_marker(&self, pid: i32) -> bool {
        let Some(needle) = &self.needle else {
            return false;
        };
        match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(environ) => environ.split(|&b| b == 0).any(|var| var == needle),
            Err(_) => false,
        }
    }
}

fn reap(pid: i32) {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => debug!(pid, ?status, "reaped leftover process"),
        Err(err) => debug!(pid, %err, "cannot reap leftover process"),
    }
}

/// The fields of `/proc/PID/stat` the sweep needs.
struct ProcInfo {
    state: char,
    ppid: i32,
    pgrp: i32,
}

impl ProcInfo {
    fn read(pid: i32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid pgrp ..."; comm may hold spaces and parens.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgrp = fields.next()?.parse().ok()?;
        Some(ProcInfo { state, ppid, pgrp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    const SLACK: Duration = Duration::from_millis(1500);

    fn spec(dir: &TempDir, script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.path().to_path_buf(),
            env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            stdout_path: dir.path().join("stdout.log"),
            stderr_path: dir.path().join("stderr.log"),
            output_limit: 1024 * 1024,
            timeout: Some(Duration::from_secs(2)),
            grace: Duration::from_millis(200),
            marker: None,
            sandbox: None,
        }
    }

    fn no_stop() -> watch::Receiver<StopSignal> {
        // The receiver stays usable after the sender is dropped.
        watch::channel(StopSignal::Run).1
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("output file is readable")
    }

    fn alive(pid: i32) -> bool {
        kill(Pid::from_raw(pid), None).is_ok()
    }

    fn read_pid(path: &Path) -> i32 {
        read(path).trim().parse().expect("pid file holds a pid")
    }

    /// Waits until the child has written `path` (so it is past its setup).
    async fn wait_for_file(path: &Path) {
        let start = Instant::now();
        while !path.exists() || read(path).is_empty() {
            assert!(start.elapsed() < SLACK, "{} never appeared", path.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn exit_code_cwd_and_output_are_reported() {
        let dir = TempDir::new().expect("temp dir");
        let spec = spec(&dir, "pwd; echo oops >&2; exit 3");
        let outcome = run(&spec, no_stop()).await.expect("run");
        assert_eq!(outcome.exit, ExitKind::Code(3));
        assert!(!outcome.exit.success());
        assert_eq!(
            read(&spec.stdout_path),
            format!("{}\n", dir.path().display())
        );
        assert_eq!(read(&spec.stderr_path), "oops\n");
        assert_eq!(
            outcome.stdout_bytes,
            dir.path().as_os_str().len() as u64 + 1
        );
        assert_eq!(outcome.stderr_bytes, 5);
        assert!(!outcome.truncated && !outcome.timed_out && !outcome.pipes_left_open);
        assert_eq!((outcome.stopped, outcome.leaked), (None, 0));
    }

    #[tokio::test]
    async fn stdin_is_dev_null() {
        let dir = TempDir::new().expect("temp dir");
        // `cat` would block forever on an inherited terminal or pipe.
        let spec = spec(&dir, "cat; readlink /proc/$$/fd/0");
        let outcome = run(&spec, no_stop()).await.expect("run");
        assert_eq!(outcome.exit, ExitKind::Code(0));
        assert!(!outcome.timed_out);
        assert_eq!(read(&spec.stdout_path), "/dev/null\n");
    }

    #[tokio::test]
    async fn output_is_capped_but_fully_drained() {
        let dir = TempDir::new().expect("temp dir");
        let mut spec = spec(&dir, "yes | head -c 5000000; echo finished >&2");
        spec.output_limit = 64 * 1024;
        let outcome = run(&spec, no_stop()).await.expect("run");
        // The child was never blocked: it wrote everything and went on.
        assert_eq!(outcome.exit, ExitKind::Code(0));
        assert!(!outcome.timed_out);
        assert_eq!(read(&spec.stderr_path), "finished\n");
        assert_eq!(outcome.stdout_bytes, 5_000_000);
        assert_eq!(outcome.stderr_bytes, 9);
        assert!(outcome.truncated);
        let out = read(&spec.stdout_path);
        let note = "[git-agent: output truncated after 65536 bytes; 4934464 bytes discarded]\n";
        assert!(
            out.ends_with(note),
            "tail: {:?}",
            tail(&spec.stdout_path, 200)
        );
        assert_eq!(out.len(), 65536 + note.len());
        assert!(out[..65536].lines().all(|l| l == "y"));
    }

    #[tokio::test]
    async fn truncation_note_starts_on_its_own_line() {
        let dir = TempDir::new().expect("temp dir");
        let mut spec = spec(&dir, "printf 'abcdef'");
        spec.output_limit = 4;
        let outcome = run(&spec, no_stop()).await.expect("run");
        assert_eq!((outcome.stdout_bytes, outcome.truncated), (6, true));
        assert_eq!(
            read(&spec.stdout_path),
            "abcd\n[git-agent: output truncated after 4 bytes; 2 bytes discarded]\n"
        );
    }

    #[tokio::test]
    async fn timeout_kills_a_child_that_ignores_sigterm() {
        let dir = TempDir::new().expect("temp dir");
        // SIG_IGN is inherited, so `sleep` ignores TERM too.
        let mut spec = spec(&dir, "trap '' TERM; echo ready; sleep 30");
        spec.timeout = Some(Duration::from_millis(500));
        let start = Instant::now();
        let outcome = run(&spec, no_stop()).await.expect("run");
        let elapsed = start.elapsed();
        assert!(outcome.timed_out);
        assert_eq!(outcome.stopped, None);
        assert_eq!(outcome.exit, ExitKind::Signal(Signal::SIGKILL as i32));
        assert_eq!(read(&spec.stdout_path), "ready\n");
        // TERM was ignored, so the grace period ran out before the KILL.
        assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(700) + SLACK, "{elapsed:?}");
    }

    #[tokio::test]
    async fn background_grandchild_is_killed_and_reaped() {
        become_subreaper();
        let dir = TempDir::new().expect("temp dir");
        let spec = spec(&dir, "sleep 1000 & echo $! > bg.pid; exit 0");
        let outcome = run(&spec, no_stop()).await.expect("run");
        assert_eq!(outcome.exit, ExitKind::Code(0));
        assert_eq!(outcome.leaked, 1);
        let pid = read_pid(&dir.path().join("bg.pid"));
        // Gone entirely: not even a zombie is left.
        assert!(!alive(pid), "grandchild {pid} survived");
        // The sleep held the pipes; it was killed, so they closed in time.
        assert!(!outcome.pipes_left_open);
    }

    #[tokio::test]
    async fn setsid_grandchild_is_caught_by_the_marker() {
        become_subreaper();
        let script = "setsid sh -c 'echo $$ > esc.pid; exec sleep 1000' >/dev/null 2>&1 &
                      while [ ! -s esc.pid ]; do sleep 0.01; done";

        // Control: without a marker the escaped process survives the run.
        let dir = TempDir::new().expect("temp dir");
        let outcome = run(&spec(&dir, script), no_stop()).await.expect("run");
        let pid = read_pid(&dir.path().join("esc.pid"));
        let escaped = alive(pid);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        // It reparented to us (subreaper); reap it so no zombie is left.
        let _ = waitpid(Pid::from_raw(pid), None);
        assert!(
            escaped,
            "control: the setsid grandchild should escape the group"
        );
        assert_eq!(outcome.leaked, 0);

        let dir = TempDir::new().expect("temp dir");
        let mut spec = spec(&dir, script);
        spec.marker = Some((
            "GIT_AGENT_RUN".into(),
            format!("test-{}", std::process::id()),
        ));
        let outcome = run(&spec, no_stop()).await.expect("run");
        let pid = read_pid(&dir.path().join("esc.pid"));
        assert_eq!(outcome.exit, ExitKind::Code(0));
        assert_eq!(outcome.leaked, 1);
        assert!(!alive(pid), "escaped grandchild {pid} survived");
    }

    #[tokio::test]
    async fn graceful_stop_sends_sigterm_to_the_group() {
        let dir = TempDir::new().expect("temp dir");
        let spec = spec(&dir, "echo started; sleep 30");
        let (tx, rx) = watch::channel(StopSignal::Run);
        let stopper = async {
            wait_for_file(&spec.stdout_path).await;
            tx.send(StopSignal::Graceful).expect("run() listens");
        };
        let start = Instant::now();
        let (outcome, ()) = tokio::join!(run(&spec, rx), stopper);
        let outcome = outcome.expect("run");
        assert_eq!(outcome.stopped, Some(StopSignal::Graceful));
        assert!(!outcome.timed_out);
        // The shell died of the TERM itself; no KILL was needed.
        assert_eq!(outcome.exit, ExitKind::Signal(Signal::SIGTERM as i32));
        assert!(start.elapsed() < SLACK, "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn kill_stop_kills_without_grace() {
        let dir = TempDir::new().expect("temp dir");
        let mut spec = spec(&dir, "trap '' TERM; echo started; sleep 30");
        spec.grace = Duration::from_secs(30);
        spec.timeout = None;
        let (tx, rx) = watch::channel(StopSignal::Run);
        let stopper = async {
            wait_for_file(&spec.stdout_path).await;
            tx.send(StopSignal::Kill).expect("run() listens");
        };
        let start = Instant::now();
        let (outcome, ()) = tokio::join!(run(&spec, rx), stopper);
        let outcome = outcome.expect("run");
        assert_eq!(outcome.stopped, Some(StopSignal::Kill));
        assert_eq!(outcome.exit, ExitKind::Signal(Signal::SIGKILL as i32));
        assert!(start.elapsed() < SLACK, "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error_naming_it() {
        let dir = TempDir::new().expect("temp dir");
        let mut spec = spec(&dir, "");
        spec.program = "git-agent-no-such-agent".into();
        let err = run(&spec, no_stop()).await.expect_err("must not start");
        assert!(
            matches!(&err, ProcessError::Spawn { program, .. } if program == "git-agent-no-such-agent")
        );
        let msg = err.to_string();
        assert!(
            msg.contains("`git-agent-no-such-agent`") && msg.contains("not found"),
            "{msg}"
        );

        let script = dir.path().join("agent.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write script");
        spec.program = script.display().to_string();
        let msg = run(&spec, no_stop())
            .await
            .expect_err("not executable")
            .to_string();
        assert!(
            msg.contains("agent.sh") && msg.contains("not executable"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn environment_is_exactly_the_spec_plus_marker() {
        let dir = TempDir::new().expect("temp dir");
        let mut spec = spec(&dir, "");
        spec.program = "env".into();
        spec.args = vec![];
        spec.env.push(("FOO".into(), "bar baz".into()));
        spec.marker = Some(("GIT_AGENT_RUN".into(), "r-1".into()));
        let outcome = run(&spec, no_stop()).await.expect("run");
        assert_eq!(outcome.exit, ExitKind::Code(0));
        let mut vars: Vec<String> = read(&spec.stdout_path).lines().map(str::to_owned).collect();
        vars.sort();
        assert_eq!(
            vars,
            [
                "FOO=bar baz",
                "GIT_AGENT_RUN=r-1",
                "PATH=/usr/local/bin:/usr/bin:/bin"
            ]
        );
    }

    #[test]
    fn tail_starts_at_a_line_boundary() {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("log");
        std::fs::write(&path, "first line\nsecond line\nthird\n").expect("write");
        assert_eq!(tail(&path, 14).expect("tail"), "third\n");
        // The window starts exactly at a line start: keep that line.
        assert_eq!(tail(&path, 18).expect("tail"), "second line\nthird\n");
        assert_eq!(
            tail(&path, 1000).expect("tail"),
            "first line\nsecond line\nthird\n"
        );
        assert_eq!(tail(&path, 0).expect("tail"), "");
    }

    #[test]
    fn tail_without_newline_starts_at_a_char_boundary() {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("log");
        std::fs::write(&path, "ééé").expect("write");
        // 3 bytes: the second half of an é, then a whole é.
        assert_eq!(tail(&path, 3).expect("tail"), "é");
        assert!(tail(&dir.path().join("missing"), 10).is_err());
    }
}
