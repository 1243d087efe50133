//! Processes a run may have left behind.

/// Whether a process is still there (a zombie counts as gone: it has exited).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `pid` is still alive; if it is, it is killed (SIGKILL) so that
/// it does not outlive the test.
pub fn kill_if_alive(pid: i32) -> bool {
    let survived = alive(pid);
    if survived {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    survived
}
