//! A mount namespace per step in which the whole filesystem is read-only
//! except the places the run may write, and every pathname unix socket
//! outside them is covered: the layer below Landlock that also stops what
//! Landlock does not see — changes to file metadata (mode, owner, times,
//! extended attributes) and links anywhere else, and connections to
//! daemons by socket path (ssh-agent, docker.sock, D-Bus, a database).
//!
//! As in bubblewrap, the plan (which paths, as C strings) is made in the
//! parent; the child makes raw `mount` and `mount_setattr` calls only:
//!
//! 1. every mount becomes private, so nothing propagates back to the host;
//! 2. each writable place is bind-mounted onto itself (a mount of its own);
//! 3. `/dev/null` is bind-mounted over each socket found;
//! 4. the whole tree, recursively, becomes read-only (`mount_setattr`);
//! 5. the writable binds become writable again (their own mount only).
//!
//! Sockets are found where they can be: the kernel's list of bound
//! pathname sockets of git-agent's network namespace (`/proc/net/unix`),
//! and, for sockets bound elsewhere (a container's mounted
//! `/var/run/docker.sock`), a bounded walk of the directories that hold
//! runtime sockets.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Directories walked for sockets bound outside git-agent's network
/// namespace, and how deep.
const SOCKET_DIRS: &[&str] = &["/run", "/var/run", "/tmp", "/var/tmp", "/dev/shm"];
const SOCKET_DEPTH: usize = 3;
/// Upper bound on the entries the walk looks at (a huge `/tmp`).
const SOCKET_WALK_LIMIT: usize = 5_000;

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const AT_RECURSIVE: u32 = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What the child mounts, prepared in the parent.
#[derive(Debug)]
pub struct Plan {
    writable: Vec<CString>,
    masks: Vec<CString>,
    root: CString,
    null: CString,
    /// Sockets covered, for the run's sandbox record.
    pub masked: Vec<PathBuf>,
}

impl Plan {
    /// A plan that covers no socket: for probing whether the namespace can
    /// be made at all (the walk for sockets is the real plan's cost).
    pub fn bare() -> Plan {
        Plan {
            writable: Vec::new(),
            masks: Vec::new(),
            root: CString::from(c"/"),
            null: CString::from(c"/dev/null"),
            masked: Vec::new(),
        }
    }

    /// The plan for a run that may write `writable` (directories and
    /// files) and connect to the sockets in `allowed_sockets`.
    pub fn new(writable: &[PathBuf], allowed_sockets: &[PathBuf]) -> Plan {
        Plan::with_sockets(writable, allowed_sockets, sockets())
    }

    /// As [`Plan::new`], covering the sockets `found` by a scan made for
    /// this run (see [`SocketScan`]).
    pub fn with_sockets(
        writable: &[PathBuf],
        allowed_sockets: &[PathBuf],
        found: Vec<PathBuf>,
    ) -> Plan {
        let writable: Vec<PathBuf> = writable
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let allowed: Vec<PathBuf> = allowed_sockets
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let mut masked: Vec<PathBuf> = found
            .into_iter()
            .filter(|s| !writable.iter().any(|w| s.starts_with(w)))
            .filter(|s| !allowed.contains(s))
            .collect();
        masked.sort();
        masked.dedup();
        Plan {
            writable: writable.iter().filter_map(|p| c_path(p)).collect(),
            masks: masked.iter().filter_map(|p| c_path(p)).collect(),
            root: CString::from(c"/"),
            null: CString::from(c"/dev/null"),
            masked,
        }
    }

    /// Applies the plan in a child that has unshared `CLONE_NEWNS` (inside
    /// its own user namespace, with its id maps written).
    ///
    /// # Safety
    /// Only between fork and exec: raw system calls on prepared buffers.
    pub unsafe fn apply(&self) -> io::Result<()> {
        let none = std::ptr::null::<libc::c_char>();
        if libc::mount(
            none,
            self.root.as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        for path in &self.writable {
            let flags = libc::MS_BIND | libc::MS_REC;
            if libc::mount(path.as_ptr(), path.as_ptr(), none, flags, std::ptr::null()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        for socket in &self.masks {
            let bound = libc::mount(
                self.null.as_ptr(),
                socket.as_ptr(),
                none,
                libc::MS_BIND,
                std::ptr::null(),
            );
            // A socket removed since the plan was made needs no cover, nor
            // one on a path this user cannot search (nor can the step).
            let errno = *libc::__errno_location();
            if bound != 0 && errno != libc::ENOENT && errno != libc::EACCES {
                return Err(io::Error::last_os_error());
            }
        }
        set_attr(&self.root, AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0)?;
        for path in &self.writable {
            set_attr(path, 0, 0, MOUNT_ATTR_RDONLY)?;
        }
        // The working directory (set before this runs) is still on the
        // mount below its bind: walk to it again from the root.
        let mut cwd = [0 as libc::c_char; 4096];
        if libc::getcwd(cwd.as_mut_ptr(), cwd.len()).is_null() || libc::chdir(cwd.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

unsafe fn set_attr(path: &CString, flags: u32, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let done = libc::syscall(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path.as_ptr(),
        flags,
        &raw const attr,
        std::mem::size_of::<MountAttr>(),
    );
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// A scan for sockets on a thread of its own, begun when a run starts so
/// that the walk overlaps the making of its worktree; the run's plan,
/// made once for all its steps, takes the result.
#[derive(Debug)]
pub struct SocketScan(Option<std::thread::JoinHandle<Vec<PathBuf>>>);

impl SocketScan {
    pub fn start() -> SocketScan {
        SocketScan(
            std::thread::Builder::new()
                .name("socket-scan".into())
                .spawn(sockets)
                .ok(),
        )
    }

    /// The sockets found (scanned now if the thread could not be made or
    /// died).
    pub fn take(self) -> Vec<PathBuf> {
        self.0
            .and_then(|scan| scan.join().ok())
            .unwrap_or_else(sockets)
    }
}

/// Every pathname unix socket that can be found (see the module docs).
pub fn sockets() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = bound_sockets()
        .into_iter()
        .filter(|p| is_socket(p))
        .collect();
    let mut budget = SOCKET_WALK_LIMIT;
    let mut dirs: Vec<PathBuf> = SOCKET_DIRS.iter().map(PathBuf::from).collect();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        dirs.push(PathBuf::from(runtime));
    }
    // `/var/run` is a link to `/run` on most systems: each place once.
    let mut walked: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let Ok(dir) = std::fs::canonicalize(&dir) else {
            continue;
        };
        if walked.contains(&dir) {
            continue;
        }
        walk(&dir, SOCKET_DEPTH, &mut budget, &mut found);
        walked.push(dir);
    }
    found
}

/// The paths in `/proc/net/unix` (the last field of a line, when it is a
/// path: abstract sockets start with `@` and are scoped by Landlock).
fn bound_sockets() -> Vec<PathBuf> {
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return Vec::new();
    };
    table
        .split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line
                .split(|&b| b == b' ')
                .filter(|f| !f.is_empty())
                .collect();
            let path = fields.get(7)?;
            path.starts_with(b"/")
                .then(|| PathBuf::from(std::ffi::OsStr::from_bytes(path)))
        })
        .collect()
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Sockets below `dir`, not following symlinks, at most `depth` levels.
fn walk(dir: &Path, depth: usize, budget: &mut usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_socket() {
            found.push(entry.path());
        } else if kind.is_dir() && depth > 1 {
            walk(&entry.path(), depth - 1, budget, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_the_kernels_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Deeper than the walk goes: only /proc/net/unix can name it.
        let deep = dir.path().join("a/b/c/d/e");
        std::fs::create_dir_all(&deep).expect("mkdir");
        let path = deep.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let path = std::fs::canonicalize(&path).expect("canonical");
        assert!(sockets().contains(&path), "{path:?} not found");
        let plan = Plan::new(&[], &[]);
        assert!(plan.masked.contains(&path));
        let plan = Plan::new(&[dir.path().to_path_buf()], &[]);
        assert!(!plan.masked.contains(&path), "a socket in a writable place");
        let plan = Plan::new(&[], std::slice::from_ref(&path));
        assert!(!plan.masked.contains(&path), "an allowed socket");
    }
}
