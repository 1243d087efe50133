//! A cross-process lock file in the common git dir, for the steps git itself
//! does not serialize (adding worktrees, writing notes).

use std::fs;
use std::io::{self, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::command::backoff;
use super::error::{io_err, Result, WorkspaceError};

/// How long to wait for the lock before giving up.
const LOCK_TIMEOUT: Duration = Duration::from_secs(180);

/// An exclusive `flock(2)` on a file that stays in place: the kernel
/// releases it when the holder's descriptor closes, however the holder
/// ends (a killed one too), so nothing is ever stale; and taking it makes
/// no file, so a run does not add to the churn of inodes that slows every
/// file creation on ext4.
#[derive(Debug)]
pub(super) struct LockFile {
    _file: fs::File,
}

impl LockFile {
    pub(super) fn acquire(path: &Path) -> Result<LockFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        }
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("opening lock file", path))?;
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            // SAFETY: flock on a descriptor `file` owns, alive for the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock && err.raw_os_error() != Some(libc::EINTR) {
                return Err(io_err("locking", path)(err));
            }
            if start.elapsed() > LOCK_TIMEOUT {
                return Err(WorkspaceError::LockTimeout {
                    path: path.to_path_buf(),
                    waited: start.elapsed(),
                    holder: fs::read_to_string(path)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                });
            }
            std::thread::sleep(backoff(attempt));
            attempt += 1;
        }
        // Who holds it, for the message of one that waits too long.
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| {
            writeln!(
                file,
                "pid {} since {:?}",
                std::process::id(),
                SystemTime::now()
            )
        });
        Ok(LockFile { _file: file })
    }
}

pub(super) fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (COUNTER.fetch_add(1, Ordering::Relaxed) << 32) ^ nanos
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;

    /// A holder that is killed releases the lock at once (the kernel drops
    /// it with the descriptor); one that lives keeps it. No file is made
    /// or removed by taking it.
    #[test]
    fn a_killed_holder_releases_the_lock_and_a_live_one_keeps_it() {
        let fx = fixture();
        let lock = fx.repo.common_dir().join("agent/worktree.lock");
        fs::create_dir_all(lock.parent().expect("dir")).expect("dir");
        // flock(1) holding it for `sleep`, in a process group of its own.
        let mut held = std::os::unix::process::CommandExt::process_group(
            std::process::Command::new("flock")
                .arg(&lock)
                .args(["sleep", "30"]),
            0,
        )
        .spawn()
        .expect("flock(1)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let file = fs::File::open(&lock).expect("open");
        // SAFETY: a non-blocking flock on a descriptor owned here.
        let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        assert!(!free, "control: a live holder keeps the lock");
        drop(file);
        // SAFETY: SIGKILL to the holder's own process group.
        unsafe { libc::kill(-(held.id() as i32), libc::SIGKILL) };
        held.wait().expect("wait");
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).expect("meta"));
        let before = inode(&lock);
        let taken = Instant::now();
        let wt = fx.full("after-a-killed-holder");
        assert!(
            taken.elapsed() < Duration::from_secs(5),
            "waited for a dead holder"
        );
        assert_eq!(inode(&lock), before, "the lock file stays the same file");
        fx.repo.remove_worktree(&wt).expect("remove");
    }
}
