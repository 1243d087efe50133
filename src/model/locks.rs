//! Locks across processes, on files under `<git-common-dir>/agent/`:
//! `flock(2)`, so a killed holder releases at once (the kernel drops the
//! lock with its last descriptor) and no stale lock file ever blocks.
//!
//! - `tasks/<task>.lock`: one run per task at a time, held by the process
//!   that executes the run for as long as it runs;
//! - `queue.lock`: held for the short moments the queue changes (a request
//!   joins, the supervisor claims one or decides to exit);
//! - `supervisor.lock`: held by the one supervisor of the repository for
//!   its whole life.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::model::store::Store;

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock, waiting for its holder.
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        let file = open(path)?;
        flock(&file, libc::LOCK_EX)?;
        Ok(FileLock { _file: file })
    }

    /// Takes the lock if nobody holds it (`None`: someone does).
    pub fn try_acquire(path: &Path) -> io::Result<Option<FileLock>> {
        let file = open(path)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether someone holds the lock now (a probe: takes and drops it).
    pub fn is_held(path: &Path) -> bool {
        if !path.exists() {
            return false;
        }
        matches!(FileLock::try_acquire(path), Ok(None))
    }
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor owned by `file`, alive for the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The lock files of one repository's runs.
#[derive(Debug, Clone)]
pub struct Locks {
    dir: PathBuf,
}

impl Locks {
    pub fn of(store: &Store) -> Locks {
        let dir = store
            .dir()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| store.dir().to_path_buf());
        Locks { dir }
    }

    /// The lock a run of `task` holds while it runs.
    pub fn task(&self, task: &str) -> PathBuf {
        // Task ids are file stems of briefs (letters, digits, `-`, `_`,
        // `/` for nested folders): `/` becomes `%` so one flat folder holds them.
        self.dir
            .join("tasks")
            .join(format!("{}.lock", task.replace('/', "%")))
    }

    pub fn queue(&self) -> PathBuf {
        self.dir.join("queue.lock")
    }

    pub fn supervisor(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }

    /// Where the supervisor writes what it has to say (it has no terminal).
    pub fn supervisor_log(&self) -> PathBuf {
        self.dir.join("supervisor.log")
    }

    /// Whether a supervisor is alive for this repository.
    pub fn supervisor_alive(&self) -> bool {
        FileLock::is_held(&self.supervisor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_to_a_second_open_and_released_on_drop() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("x.lock");
        let held = FileLock::try_acquire(&path).expect("lock").expect("free");
        assert!(FileLock::try_acquire(&path).expect("probe").is_none());
        assert!(FileLock::is_held(&path));
        drop(held);
        assert!(!FileLock::is_held(&path));
        assert!(FileLock::try_acquire(&path).expect("lock").is_some());
    }
}
