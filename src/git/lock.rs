//! A cross-process lock file in the common git dir, for the steps git itself
//! does not serialize (adding worktrees, writing notes).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::command::backoff;
use super::error::{io_err, Result, WorkspaceError};

/// A lock file older than this is considered abandoned.
const LOCK_STALE_AFTER: Duration = Duration::from_secs(60);
/// How long to wait for the worktree lock before giving up.
const LOCK_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug)]
pub(super) struct LockFile {
    path: PathBuf,
}

impl LockFile {
    pub(super) fn acquire(path: &Path) -> Result<LockFile> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
        }
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(
                        f,
                        "pid {} since {:?}",
                        std::process::id(),
                        SystemTime::now()
                    );
                    return Ok(LockFile {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if Self::break_if_stale(path) {
                        continue;
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
                Err(e) => return Err(io_err("creating lock file", path)(e)),
            }
        }
    }

    /// Removes `path` if it is stale: older than [`LOCK_STALE_AFTER`], or
    /// held by a process that is gone (the pid it names is dead). The stale
    /// file is first renamed to a unique name, so that two processes breaking
    /// the same stale lock cannot delete a fresh one taken in between.
    fn break_if_stale(path: &Path) -> bool {
        let stale = |p: &Path| {
            let old = fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > LOCK_STALE_AFTER);
            old || holder_is_gone(p)
        };
        if !stale(path) {
            return false;
        }
        let aside = path.with_extension(format!("stale.{}.{}", std::process::id(), unique()));
        if fs::rename(path, &aside).is_err() {
            return true; // someone else broke it; try again
        }
        if stale(&aside) {
            tracing::warn!(lock = %path.display(), "removed a stale lock file");
            let _ = fs::remove_file(&aside);
        } else {
            // We grabbed a fresh lock: put it back unless a new one exists.
            let _ = fs::hard_link(&aside, path);
            let _ = fs::remove_file(&aside);
        }
        true
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(lock = %self.path.display(), error = %e, "could not remove lock file");
        }
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

/// Whether the lock file names a pid (`pid N since …`, as [`LockFile`]
/// writes it) of a process that no longer exists. A file not yet written
/// names none: it is not taken for abandoned.
fn holder_is_gone(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let pid = text
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|pid| pid != std::process::id() && !crate::model::store::pid_alive(pid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::test_support::*;
    use std::time::{Duration, SystemTime};
    #[test]
    fn stale_lock_file_is_broken() {
        let fx = fixture();
        let lock = fx.repo.common_dir().join("agent/worktree.lock");
        write(&lock, "pid 1\n");
        let old = SystemTime::now() - Duration::from_secs(120);
        fs::File::options()
            .write(true)
            .open(&lock)
            .and_then(|f| f.set_modified(old))
            .expect("age the lock");
        let wt = fx.full("after-stale");
        assert!(!lock.exists());
        fx.repo.remove_worktree(&wt).expect("remove");
    }

    /// A fresh lock whose holder is dead is stale at once; one whose holder
    /// lives is not, however the file looks.
    #[test]
    fn a_lock_of_a_dead_process_is_broken_at_once() {
        let fx = fixture();
        let lock = fx.repo.common_dir().join("agent/notes.lock");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        write(&lock, &format!("pid {dead} since now\n"));
        assert!(super::LockFile::break_if_stale(&lock), "the holder is gone");
        assert!(!lock.exists());
        let alive = std::os::unix::process::parent_id();
        write(&lock, &format!("pid {alive} since now\n"));
        assert!(!super::LockFile::break_if_stale(&lock), "the holder lives");
        assert!(lock.exists());
    }
}
