//! A block of ports per live run (`workspace.ports`): reserved across
//! processes by one lock file per port in a directory every git-agent of
//! this user shares, held while the run lives and released by the kernel
//! when its holder dies. A port something else listens on is skipped.

use std::path::PathBuf;

use crate::model::locks::FileLock;

/// Where blocks start; below are the ports services usually take.
const FIRST: u16 = 20000;
const LAST: u16 = 60999;

/// A reserved block: `first .. first + count`.
#[derive(Debug)]
pub struct PortBlock {
    pub first: u16,
    pub count: u16,
    _locks: Vec<FileLock>,
}

impl PortBlock {
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("GIT_AGENT_PORT".to_string(), self.first.to_string()),
            ("GIT_AGENT_PORTS".to_string(), self.count.to_string()),
        ]
    }
}

/// The locks of this user's git-agents, whichever repository they run in:
/// under the user's runtime dir (`$XDG_RUNTIME_DIR`, private to them) or
/// cache dir, never a shared `/tmp` path another user could have made first.
fn lock_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = var("XDG_RUNTIME_DIR")
        .or_else(|| var("XDG_CACHE_HOME"))
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("git-agent").join("ports")
}

/// The first free block of `count` ports.
pub fn reserve(count: u16) -> std::io::Result<PortBlock> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)?;
    let count = count.max(1);
    let mut first = FIRST;
    while u32::from(first) + u32::from(count) <= u32::from(LAST) + 1 {
        if let Some(block) = try_block(&dir, first, count)? {
            return Ok(block);
        }
        first += count;
    }
    Err(std::io::Error::other(format!(
        "no free block of {count} ports between {FIRST} and {LAST}"
    )))
}

fn try_block(dir: &std::path::Path, first: u16, count: u16) -> std::io::Result<Option<PortBlock>> {
    let mut locks = Vec::new();
    for port in first..first + count {
        let Some(lock) = FileLock::try_acquire(&dir.join(format!("{port}.lock")))? else {
            return Ok(None);
        };
        // Taken by something that is not a run: not ours to give.
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Ok(None);
        }
        locks.push(lock);
    }
    Ok(Some(PortBlock {
        first,
        count,
        _locks: locks,
    }))
}
