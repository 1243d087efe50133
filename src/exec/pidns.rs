//! A PID namespace per agent or check, so that nothing the step started
//! outlives it, however it detached (`setsid`, double fork, `env -i`, a
//! nested user namespace), and so that the kernel ends the whole step when
//! git-agent itself is killed.
//!
//! Three processes, all made between fork and exec by raw system calls:
//!
//! - the **waiter** (the child git-agent forked, in git-agent's PID
//!   namespace): it has unshared `CLONE_NEWPID`, forks the init, closes
//!   every descriptor (so std's exec-error pipe and the output pipes do not
//!   stay open on its account), ignores the terminating signals the
//!   supervisor sends to the group, waits for the init and exits as it did.
//!   It dies with git-agent (`PR_SET_PDEATHSIG`).
//! - the **init** (pid 1 of the new namespace), which dies with the waiter
//!   (`PR_SET_PDEATHSIG`; the kernel delivers SIGKILL to an init from an
//!   ancestor namespace). It forks the command, reaps orphans while the
//!   command runs, and when the command has exited kills everything left in
//!   the namespace, counts it, and writes the command's exact wait status
//!   and that count to a report pipe git-agent reads. When an init exits,
//!   the kernel kills every process of its namespace, so nothing is left.
//! - the **command**, which returns from [`split`] and goes on to `exec`.
//!
//! The supervisor still signals the process group (the command and what
//! stayed in its group get SIGTERM; the init ignores it as every init does;
//! the waiter ignores it), and SIGKILL of the group ends all three.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What the init reports when the command has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The command's wait status, as `waitpid` gave it.
    pub status: i32,
    /// Processes of the namespace still there when the command ended; all
    /// killed.
    pub leaked: u32,
}

/// The pipe the init writes its [`Report`] to. Both ends are close-on-exec:
/// the command and everything it starts never hold it.
pub struct ReportPipe {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

impl ReportPipe {
    pub fn new() -> io::Result<ReportPipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned here only.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(ReportPipe {
            read,
            write: Some(write),
        })
    }

    /// The descriptor the forked child writes to.
    pub fn write_fd(&self) -> RawFd {
        self.write.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Closes git-agent's copy of the write end (after the spawn), so that
    /// reading sees the end once the init is gone.
    pub fn close_write(&mut self) {
        self.write = None;
    }

    /// The report, once the waiter has exited (the init exited before it).
    /// `None` when the init was killed before it could write one.
    pub fn read(&self) -> Option<Report> {
        let mut buf = [0u8; 8];
        // SAFETY: reads into a local buffer of the given length.
        let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n != 8 {
            return None;
        }
        let (status, leaked) = buf.split_at(4);
        Some(Report {
            status: i32::from_le_bytes(status.try_into().ok()?),
            leaked: u32::from_le_bytes(leaked.try_into().ok()?),
        })
    }
}

/// In a child that has just unshared `CLONE_NEWPID`: becomes the waiter,
/// forks the init and the command, and returns only in the command.
///
/// # Safety
/// Only between fork and exec, in a single-threaded child: raw,
/// async-signal-safe system calls, no allocation.
pub unsafe fn split(report_fd: RawFd) -> io::Result<()> {
    // Tells the init whether the waiter was still alive when the init
    // asked to die with it (a parent that died before is not signalled).
    let mut alive = [0; 2];
    if libc::pipe2(alive.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
        return Err(io::Error::last_os_error());
    }
    let init = libc::fork();
    if init < 0 {
        return Err(io::Error::last_os_error());
    }
    if init == 0 {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::close(alive[1]);
        libc::fcntl(alive[0], libc::F_SETFL, libc::O_NONBLOCK);
        let mut byte = 0u8;
        if libc::read(alive[0], (&raw mut byte).cast(), 1) == 0 {
            libc::_exit(128 + libc::SIGKILL);
        }
        libc::close(alive[0]);
        return run_init(report_fd);
    }
    libc::close(alive[0]);
    wait_as_waiter(init, alive[1])
}

/// The waiter: holds nothing but the liveness pipe, waits for the init and
/// leaves as it did.
unsafe fn wait_as_waiter(init: libc::pid_t, keep: RawFd) -> ! {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        libc::signal(signal, libc::SIG_IGN);
    }
    close_all_but(keep);
    let status = wait_for(init);
    exit_as(status)
}

/// The init: forks the command, reaps, and reports.
unsafe fn run_init(report_fd: RawFd) -> io::Result<()> {
    let command = libc::fork();
    if command < 0 {
        return Err(io::Error::last_os_error());
    }
    if command == 0 {
        // The command: the report pipe is close-on-exec; nothing else to do.
        return Ok(());
    }
    close_all_but(report_fd);
    // The supervisor's SIGTERM (a timeout, a graceful stop) reaches this
    // init too: pass it on to every process of the namespace (the ones that
    // left the group included), and remember it.
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
    libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    let mut status = 0;
    loop {
        let pid = libc::waitpid(-1, &mut status, 0);
        if pid == command {
            break;
        }
        if pid < 0 && *libc::__errno_location() != libc::EINTR {
            status = 128 + libc::SIGKILL;
            break;
        }
    }
    // What is left of the step dies now; the kernel would kill it when this
    // init exits anyway, but counting it is the supervisor's `leaked`.
    // While terminating (nextest's rule), the rest has the supervisor's
    // grace period to finish on its SIGTERM; its SIGKILL ends this init.
    if !TERMINATING.load(std::sync::atomic::Ordering::SeqCst) {
        libc::kill(-1, libc::SIGKILL);
    }
    let mut leaked: u32 = 0;
    loop {
        let mut ignored = 0;
        let pid = libc::waitpid(-1, &mut ignored, 0);
        if pid > 0 {
            leaked = leaked.saturating_add(1);
        } else if *libc::__errno_location() != libc::EINTR {
            break;
        }
    }
    let mut report = [0u8; 8];
    report[..4].copy_from_slice(&status.to_le_bytes());
    report[4..].copy_from_slice(&leaked.to_le_bytes());
    libc::write(report_fd, report.as_ptr().cast(), report.len());
    // An init cannot die of a signal it sends itself: exit with the
    // shell's convention; the exact status is in the report.
    if libc::WIFSIGNALED(status) {
        libc::_exit(128 + libc::WTERMSIG(status));
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// Set by the init's SIGTERM handler.
static TERMINATING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The init's SIGTERM handler: async-signal-safe (an atomic store, kill).
extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATING.store(true, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: kill(2) is async-signal-safe; -1 is every process of the
    // namespace but this init.
    unsafe {
        libc::kill(-1, libc::SIGTERM);
    }
}

/// `waitpid` for one child, through interruptions.
unsafe fn wait_for(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        if libc::waitpid(pid, &mut status, 0) == pid {
            return status;
        }
        if *libc::__errno_location() != libc::EINTR {
            return 128 + libc::SIGKILL;
        }
    }
}

/// Leaves with the same status as the child that gave `status`.
unsafe fn exit_as(status: i32) -> ! {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// Closes every descriptor except `keep` (stdio included).
unsafe fn close_all_but(keep: RawFd) {
    let keep = u32::try_from(keep).unwrap_or(u32::MAX);
    if keep > 0 {
        close_range(0, keep - 1);
    }
    if keep < u32::MAX {
        close_range(keep + 1, u32::MAX);
    }
}

unsafe fn close_range(first: u32, last: u32) {
    if libc::syscall(libc::SYS_close_range, first, last, 0u32) == 0 {
        return;
    }
    let last = last.min(65_535);
    for fd in first..=last {
        libc::close(fd as RawFd);
    }
}
