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

/// Live processes whose environment has `name=value` (git-agent marks every
/// process of a run with `GIT_AGENT_RUN_ID=<run>`).
pub fn processes_with_marker(name: &str, value: &str) -> Vec<i32> {
    let wanted = format!("{name}={value}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) && alive(pid) {
            found.push(pid);
        }
    }
    found
}
