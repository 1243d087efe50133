//! Kernel-enforced confinement of agents and checks (Linux): a Landlock
//! ruleset, a private user namespace (so every process of the run can be
//! found again, even after `setsid` and `env -i`), and optionally a private
//! network namespace with only loopback.
//!
//! Everything that allocates or opens paths happens in the parent, in
//! [`Prepared::new`]: the ruleset is created and filled there (the path fds
//! are opened, the rules added) and only its file descriptor is kept. Between
//! fork and exec, [`Prepared::apply_in_child`] makes raw system calls only
//! (`unshare`, `open`/`write`/`close` of `/proc/self/*_map` with buffers
//! built beforehand, `socket`/`ioctl` for `lo`, `prctl`,
//! `landlock_restrict_self`): all async-signal-safe, nothing allocates.
//! The ruleset fd is close-on-exec, so the agent never holds it.
//!
//! See `docs/SECURITY.md` for the threat model and the limits.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};

use crate::exec::{egress, mountns, pidns};
use crate::model::sandbox::{Effective, Endpoint, Enforcement, NetworkPolicy};
use crate::spec::config::SandboxMode;

/// The highest Landlock ABI whose rights we ask for (best effort below it).
const TARGET_ABI: ABI = ABI::V6;

/// What the sandbox of one run allows, before it is turned into a ruleset.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Directories the run may write beneath (worktree, TMPDIR, caches,
    /// the object store, the worktree's admin dir).
    pub write_dirs: Vec<PathBuf>,
    /// Single files the run may write (append to) but not replace or create:
    /// the decisions file.
    pub write_files: Vec<PathBuf>,
    /// Paths that cannot be read (nor listed below them).
    pub read_deny: Vec<PathBuf>,
    pub network: NetworkPolicy,
    /// Unix sockets the run may connect to (all others outside the
    /// writable places are covered).
    pub sockets: Vec<PathBuf>,
    /// What the egress proxy lets through (`network: allowlist`).
    pub allow: Vec<Endpoint>,
    /// The sockets a scan made for this run found (see
    /// [`mountns::SocketScan`]); `None`: scanned when the plan is made.
    pub sockets_found: Option<Vec<PathBuf>>,
}

/// Descriptors the child is given for the layers that report back.
#[derive(Debug, Clone, Copy)]
pub struct ChildFds {
    /// Where the PID namespace's init writes its report.
    pub report: RawFd,
    /// Where the egress proxy's listener is handed over.
    pub proxy: RawFd,
}

impl ChildFds {
    #[cfg(test)]
    pub const NONE: ChildFds = ChildFds {
        report: -1,
        proxy: -1,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox is required (`sandbox.mode: required`) but this kernel does not support Landlock ({0})")]
    Unsupported(String),
    #[error(
        "`sandbox.network: none` needs user namespaces, which this system does not allow ({0})"
    )]
    NoUserNamespace(ProbeError),
    #[error("could not build the Landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    #[error("could not build the Landlock ruleset: {}: {source}", path.display())]
    Rule {
        path: PathBuf,
        #[source]
        source: landlock::RulesetError,
    },
    #[error("could not build the Landlock ruleset: {0}")]
    Io(#[from] io::Error),
    #[error("could not build the Landlock ruleset: the kernel returned no ruleset")]
    NoRuleset,
}

/// Why this process may not create a user namespace.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    #[error("probe exited with {0}")]
    Exited(std::process::ExitStatus),
    #[error("{0}")]
    Spawn(std::sync::Arc<io::Error>),
}

/// Set in git-agent's environment, makes it behave as on a kernel without
/// Landlock (for tests of `auto` and `required`; agents never see it).
pub const SIMULATE_NO_LANDLOCK: &str = "GIT_AGENT_SIMULATE_NO_LANDLOCK";

/// The Landlock ABI version of the running kernel (0 when unsupported).
pub fn landlock_abi() -> i32 {
    if std::env::var_os(SIMULATE_NO_LANDLOCK).is_some() {
        return 0;
    }
    static ABI_VERSION: OnceLock<i32> = OnceLock::new();
    *ABI_VERSION.get_or_init(|| {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns a number.
            let v = unsafe {
                libc::syscall(
                    libc::SYS_landlock_create_ruleset,
                    std::ptr::null::<u8>(),
                    0usize,
                    1u32, // LANDLOCK_CREATE_RULESET_VERSION
                )
            };
            i32::try_from(v).unwrap_or(0).max(0)
        }
        #[cfg(not(target_os = "linux"))]
        0
    })
}

/// Runs `/bin/sh -c 'exit 0'` with `setup` between fork and exec: whether
/// the system lets a child do what `setup` does.
fn probe(
    setup: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
) -> io::Result<std::process::ExitStatus> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: every `setup` given here makes raw, async-signal-safe system
    // calls on buffers made before the fork.
    unsafe {
        cmd.pre_exec(setup);
    }
    cmd.status()
}

/// Runs the kernel probes (Landlock, user, PID and mount namespaces) on a
/// thread of their own, so that their children are done by the time the
/// first run's sandbox is prepared (the worktree is made meanwhile). A
/// probe asked for before it finished waits for it (`OnceLock`).
pub fn warm_up() {
    let _ = std::thread::Builder::new()
        .name("sandbox-probes".into())
        .spawn(|| {
            let _ = landlock_abi();
            let _ = user_namespaces();
            let _ = pid_namespaces();
            let _ = mount_namespaces();
        });
}

/// Whether one child can make all three namespaces at once, as a run's
/// step does (user namespace with its maps, a read-only mount namespace, a
/// PID namespace whose init execs): where it can, as on most systems,
/// that one child stands for the three probes below; where it cannot,
/// they find which layer is missing.
fn all_namespaces() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let ns = UserNs::of_current_user();
        let plan = mountns::Plan::bare();
        // The raw calls of the three probes, in one child, on buffers made here.
        let status = probe(move || unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) != 0 {
                return Err(io::Error::last_os_error());
            }
            write_proc(&ns.setgroups, b"deny")?;
            write_proc(&ns.uid_map_path, &ns.uid_map)?;
            write_proc(&ns.gid_map_path, &ns.gid_map)?;
            plan.apply()?;
            first_in_pid_namespace()
        });
        matches!(status, Ok(s) if s.success())
    })
}

/// In a probe's child that has unshared `CLONE_NEWPID`: forks the
/// namespace's first process (its pid 1), which returns to exec the shell,
/// while the probe waits for it and exits as it did.
///
/// # Safety
/// Only between fork and exec: raw system calls only.
unsafe fn first_in_pid_namespace() -> io::Result<()> {
    match libc::fork() {
        0 => Ok(()),
        pid if pid > 0 => {
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
            libc::_exit(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                1
            });
        }
        _ => Err(io::Error::last_os_error()),
    }
}

/// Whether this process may create a user namespace (probed once with a
/// short-lived child).
pub fn user_namespaces() -> Result<(), ProbeError> {
    static PROBE: OnceLock<Result<(), ProbeError>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            if all_namespaces() {
                return Ok(());
            }
            // As the run's children do: unshare, then write the id maps.
            // Where AppArmor restricts unprivileged user namespaces
            // (Ubuntu 23.10+), the unshare succeeds but the namespace has no
            // capabilities and the maps cannot be written: no namespace.
            let ns = UserNs::of_current_user();
            // unshare(2) and writes to /proc/self on buffers made here.
            let status = probe(move || unsafe {
                libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
                if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                    return Err(io::Error::last_os_error());
                }
                write_proc(&ns.setgroups, b"deny")?;
                write_proc(&ns.uid_map_path, &ns.uid_map)?;
                write_proc(&ns.gid_map_path, &ns.gid_map)
            });
            match status {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(ProbeError::Exited(s)),
                Err(e) => Err(ProbeError::Spawn(std::sync::Arc::new(e))),
            }
        })
        .clone()
}

/// Whether this process may give a child a PID namespace inside a user
/// namespace (probed once, like [`user_namespaces`]).
pub fn pid_namespaces() -> bool {
    if std::env::var_os(SIMULATE_NO_PID_NAMESPACE).is_some() {
        return false;
    }
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        if all_namespaces() {
            return true;
        }
        // unshare(2) and fork(2) only; the probe's own child (pid 1 of the
        // namespace) execs the shell, the probe waits for it.
        let status = probe(|| unsafe {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) != 0 {
                return Err(io::Error::last_os_error());
            }
            first_in_pid_namespace()
        });
        matches!(status, Ok(s) if s.success())
    })
}

/// Whether this process may give a child a mount namespace in which the
/// tree is made read-only (`mount_setattr`, Linux 5.12+), probed once.
pub fn mount_namespaces() -> bool {
    if std::env::var_os(SIMULATE_NO_MOUNT_NAMESPACE).is_some() {
        return false;
    }
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        if all_namespaces() {
            return true;
        }
        let ns = UserNs::of_current_user();
        let plan = mountns::Plan::bare();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "exit 0"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // The same raw calls as `apply_in_child`, on buffers made here.
        let status = probe(move || unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            write_proc(&ns.setgroups, b"deny")?;
            write_proc(&ns.uid_map_path, &ns.uid_map)?;
            write_proc(&ns.gid_map_path, &ns.gid_map)?;
            plan.apply()
        });
        matches!(status, Ok(s) if s.success())
    })
}

/// What the system refused of the layers beside Landlock, said where the
/// run's sandbox is reported (AppArmor's restriction of unprivileged user
/// namespaces, Ubuntu 23.10+, is the usual cause).
fn missing_layers(userns: bool, pid: bool, mounts: bool) -> Option<String> {
    const WHY: &str = "this system does not let git-agent create namespaces \
        (on Ubuntu 23.10+: `sysctl kernel.apparmor_restrict_unprivileged_userns=0`)";
    if !userns {
        return Some(format!(
            "no user, PID or mount namespace: processes that detach are swept, not contained, \
             and metadata and sockets outside the worktree are not confined; {WHY}"
        ));
    }
    let mut missing = Vec::new();
    if !pid {
        missing.push("no PID namespace: processes that detach are swept, not contained");
    }
    if !mounts {
        missing.push("no read-only mount namespace: metadata and sockets outside the worktree are not confined");
    }
    (!missing.is_empty()).then(|| format!("{}; {WHY}", missing.join("; ")))
}

/// Set in git-agent's environment, makes it behave as on a system where
/// mount namespaces cannot be made read-only (tests of the fallback).
pub const SIMULATE_NO_MOUNT_NAMESPACE: &str = "GIT_AGENT_SIMULATE_NO_MOUNT_NAMESPACE";

/// Set in git-agent's environment, makes it behave as on a system where
/// PID namespaces cannot be made (tests of the fallback).
pub const SIMULATE_NO_PID_NAMESPACE: &str = "GIT_AGENT_SIMULATE_NO_PID_NAMESPACE";

/// A sandbox ready to be applied in a child: the ruleset fd and the
/// buffers the child writes, all made before fork.
#[derive(Debug)]
pub struct Prepared {
    ruleset: Option<OwnedFd>,
    userns: Option<UserNs>,
    /// A network namespace of its own (`none`, or `allowlist` with the
    /// proxy's listener made in it).
    network_private: bool,
    /// The egress proxy's allowlist, when the network is `allowlist`.
    allow: Option<std::sync::Arc<Vec<Endpoint>>>,
    /// Each step gets its own PID namespace (inside the user namespace).
    pid_namespace: bool,
    /// Each step gets a mount namespace, read-only but for these places.
    mounts: Option<mountns::Plan>,
    pub effective: Effective,
}

impl Prepared {
    /// Whether the kernel confines the filesystem writes (Landlock applied).
    pub fn confines_writes(&self) -> bool {
        self.ruleset.is_some()
    }
}

#[derive(Debug)]
struct UserNs {
    setgroups: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl UserNs {
    /// A user namespace that maps the current user and group to themselves.
    fn of_current_user() -> UserNs {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        UserNs {
            setgroups: CString::new("/proc/self/setgroups").expect("no NUL"),
            uid_map_path: CString::new("/proc/self/uid_map").expect("no NUL"),
            gid_map_path: CString::new("/proc/self/gid_map").expect("no NUL"),
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }
}

impl Prepared {
    /// Builds the sandbox for `policy` under `mode`. Returns `Ok(None)` when
    /// the mode is `off`. Under `auto`, a kernel without Landlock gives a
    /// sandbox without a ruleset (and a note saying so); under `required`,
    /// an error.
    pub fn new(mode: SandboxMode, policy: &Policy) -> Result<Option<Prepared>, SandboxError> {
        if mode == SandboxMode::Off {
            return Ok(None);
        }
        let abi = landlock_abi();
        let mut note = None;
        if abi == 0 {
            let why = "no Landlock ABI; Linux 5.13+ with `lsm=landlock` is needed".to_string();
            if mode == SandboxMode::Required {
                return Err(SandboxError::Unsupported(why));
            }
            note = Some(format!("not confined: {why}"));
        }
        let userns_ok = user_namespaces();
        let network_private = policy.network != NetworkPolicy::Open;
        if network_private {
            if let Err(e) = &userns_ok {
                return Err(SandboxError::NoUserNamespace(e.clone()));
            }
        }
        let userns = userns_ok.is_ok().then(UserNs::of_current_user);
        let pid_namespace = userns.is_some() && pid_namespaces();
        let mounts = (userns.is_some() && mount_namespaces()).then(|| mount_plan(policy));
        if let Some(missing) = missing_layers(userns.is_some(), pid_namespace, mounts.is_some()) {
            note = Some(match note {
                Some(n) => format!("{n}; {missing}"),
                None => missing,
            });
        }
        let ruleset = if abi > 0 {
            Some(build_ruleset(policy)?)
        } else {
            None
        };
        let mut effective = effective_of(policy, abi, mounts.as_ref());
        effective.enforcement = if ruleset.is_some() {
            Enforcement::Landlock
        } else {
            Enforcement::None
        };
        effective.user_namespace = userns.is_some();
        effective.pid_namespace = pid_namespace;
        effective.note = note;
        Ok(Some(Prepared {
            effective,
            ruleset,
            userns,
            network_private,
            allow: (policy.network == NetworkPolicy::Allowlist)
                .then(|| std::sync::Arc::new(policy.allow.clone())),
            pid_namespace,
            mounts,
        }))
    }

    /// Whether the run's processes get their own user namespace.
    pub fn uses_user_namespace(&self) -> bool {
        self.userns.is_some()
    }

    /// The egress proxy's allowlist, when the network is `allowlist`.
    pub fn egress_allowlist(&self) -> Option<std::sync::Arc<Vec<Endpoint>>> {
        self.allow.clone()
    }

    /// Whether each step gets its own PID namespace (see [`pidns`]), whose
    /// init reports to the pipe given to [`Prepared::apply_in_child`].
    pub fn uses_pid_namespace(&self) -> bool {
        self.pid_namespace
    }

    /// Applies the sandbox to the calling process. Call only between fork
    /// and exec: raw system calls on data prepared in the parent, no
    /// allocation, no locks.
    ///
    /// # Safety
    /// Must run in a freshly forked child (it changes the calling process
    /// irrevocably). With a PID namespace, returns only in the command
    /// (the waiter and the init never return; `fds.report` is the init's,
    /// `fds.proxy` where the egress proxy's listener is handed over).
    pub unsafe fn apply_in_child(&self, fds: ChildFds) -> io::Result<()> {
        // A session of its own: no controlling terminal, so no `/dev/tty`
        // and no TIOCSTI into the user's shell. Also a new process group
        // whose id is the pid, which the supervisor signals.
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(ns) = &self.userns {
            // The orchestrator is non-dumpable (`harden_self`), and so is
            // this fork until exec: its /proc/self files would belong to
            // root and the id maps could not be written by a normal user.
            // Exec resets the flag anyway; nothing secret is left to read
            // in this child.
            if libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut flags = libc::CLONE_NEWUSER;
            if self.network_private {
                flags |= libc::CLONE_NEWNET;
            }
            if self.pid_namespace {
                flags |= libc::CLONE_NEWPID;
            }
            if self.mounts.is_some() {
                flags |= libc::CLONE_NEWNS;
            }
            if libc::unshare(flags) != 0 {
                return Err(io::Error::last_os_error());
            }
            write_proc(&ns.setgroups, b"deny")?;
            write_proc(&ns.uid_map_path, &ns.uid_map)?;
            write_proc(&ns.gid_map_path, &ns.gid_map)?;
            if self.network_private {
                loopback_up()?;
            }
            if self.allow.is_some() {
                egress::hand_over_listener(fds.proxy)?;
            }
            // Before Landlock, which forbids mounting.
            if let Some(plan) = &self.mounts {
                plan.apply()?;
            }
        }
        if let Some(fd) = &self.ruleset {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0u32) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if self.pid_namespace {
            // The waiter and the init never exec: they keep a copy of
            // git-agent's memory and environment (tokens included), so no
            // process of the run may read them. The command's exec makes
            // it dumpable again.
            if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            pidns::split(fds.report)?;
        }
        Ok(())
    }
}

/// The read-only mount namespace of `policy`: its writable places (and
/// the devices) stay writable, its allowed sockets reachable.
fn mount_plan(policy: &Policy) -> mountns::Plan {
    let writable: Vec<PathBuf> = policy
        .write_dirs
        .iter()
        .chain(&policy.write_files)
        .cloned()
        .chain(DEVICES.iter().map(PathBuf::from))
        .collect();
    match &policy.sockets_found {
        Some(found) => mountns::Plan::with_sockets(&writable, &policy.sockets, found.clone()),
        None => mountns::Plan::new(&writable, &policy.sockets),
    }
}

/// The record of what `policy` gives, before the layers' own findings
/// (enforcement, namespaces, note) are filled in.
fn effective_of(policy: &Policy, abi: i32, mounts: Option<&mountns::Plan>) -> Effective {
    Effective {
        enforcement: Enforcement::None,
        landlock_abi: abi,
        network: policy.network,
        writable: writable_paths(policy, abi),
        read_deny: policy
            .read_deny
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        user_namespace: false,
        pid_namespace: false,
        read_only_root: mounts.is_some(),
        allow: policy.allow.iter().map(ToString::to_string).collect(),
        masked_sockets: mounts
            .iter()
            .flat_map(|m| &m.masked)
            .map(|p| p.display().to_string())
            .collect(),
        note: None,
    }
}

/// The paths the agent may write, as reported: the policy's, and the
/// devices when Landlock is there to grant them.
fn writable_paths(policy: &Policy, abi: i32) -> Vec<String> {
    let mut writable: Vec<String> = policy
        .write_dirs
        .iter()
        .chain(&policy.write_files)
        .map(|p| p.display().to_string())
        .collect();
    if abi > 0 {
        writable.extend(DEVICES.iter().map(|d| d.to_string()));
    }
    writable
}

/// Device files a shell and common tools need to write.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/shm"];

/// Terminals: never readable or writable by default (an agent could read
/// the user's keystrokes or write to their terminal by path). Opt in with
/// `write_paths: [/dev/pts, /dev/ptmx]` for agents that need a pty.
const TERMINALS: &[&str] = &["/dev/pts", "/dev/ptmx", "/dev/tty", "/dev/console"];

unsafe fn write_proc(path: &CString, data: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let err = io::Error::last_os_error();
    libc::close(fd);
    if n < 0 || n as usize != data.len() {
        return Err(err);
    }
    Ok(())
}

/// `ip link set lo up` with two ioctls.
unsafe fn loopback_up() -> io::Result<()> {
    let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut req: libc::ifreq = std::mem::zeroed();
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    let mut result = Ok(());
    if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
        result = Err(io::Error::last_os_error());
    } else {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
            result = Err(io::Error::last_os_error());
        }
    }
    libc::close(sock);
    result
}

/// Creates and fills the ruleset (in the parent) and returns its fd.
fn build_ruleset(policy: &Policy) -> Result<OwnedFd, SandboxError> {
    let all = AccessFs::from_all(TARGET_ABI);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)?;
    ruleset = ruleset.scope(Scope::from_all(TARGET_ABI))?;
    let rules = access_rules(policy);

    let mut created = ruleset.create()?;
    for (path, access) in rules {
        let fd = match PathFd::new(&path) {
            Ok(fd) => fd,
            // A path that does not exist grants nothing.
            Err(_) => continue,
        };
        let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
        let access = if is_dir {
            access
        } else {
            access & AccessFs::from_file(TARGET_ABI)
        };
        match created.try_clone() {
            // Objects Landlock does not take (a pipe behind /dev/stderr, a
            // socket) grant nothing.
            Ok(copy) => match copy.add_rule(PathBeneath::new(fd, access)) {
                Ok(next) => created = next,
                Err(source) if writable_path(policy, &path) => {
                    return Err(SandboxError::Rule { path, source })
                }
                Err(_) => {}
            },
            Err(err) => return Err(err.into()),
        }
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or(SandboxError::NoRuleset)
}

/// What the ruleset grants, path by path: reads everywhere but the denied
/// subtrees, the devices, and writes where the policy allows them.
fn access_rules(policy: &Policy) -> Vec<(PathBuf, BitFlags<AccessFs>)> {
    let all = AccessFs::from_all(TARGET_ABI);
    let read = AccessFs::from_read(TARGET_ABI);
    let file_read = read & AccessFs::from_file(TARGET_ABI);
    let mut rules: Vec<(PathBuf, BitFlags<AccessFs>)> = Vec::new();

    // Reads: everywhere, except the denied subtrees.
    let deny: Vec<PathBuf> = policy
        .read_deny
        .iter()
        .map(|p| fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .chain(TERMINALS.iter().map(PathBuf::from))
        .collect();
    let mut grants = Vec::new();
    read_grants(Path::new("/"), &deny, &mut grants);
    for (path, whole) in grants {
        // An ancestor of a denied path is only listed; its other entries
        // get their own grants.
        let access = if whole {
            read
        } else {
            BitFlags::from(AccessFs::ReadDir)
        };
        rules.push((path, access));
    }
    // Devices: ioctls on what can be opened, writes to the harmless ones.
    rules.push((PathBuf::from("/dev"), BitFlags::from(AccessFs::IoctlDev)));
    for dev in DEVICES {
        rules.push((PathBuf::from(dev), all));
    }
    for dir in &policy.write_dirs {
        rules.push((dir.clone(), all));
    }
    for file in &policy.write_files {
        rules.push((file.clone(), file_read | AccessFs::WriteFile));
    }
    rules
}

fn writable_path(policy: &Policy, path: &Path) -> bool {
    policy
        .write_dirs
        .iter()
        .chain(&policy.write_files)
        .any(|p| p == path)
}

/// Read grants that cover everything under `dir` except `deny`: `(path,
/// true)` grants the whole subtree, `(path, false)` only listing.
fn read_grants(dir: &Path, deny: &[PathBuf], out: &mut Vec<(PathBuf, bool)>) {
    if deny.iter().any(|d| d == dir) {
        return;
    }
    if !deny.iter().any(|d| d.starts_with(dir)) {
        out.push((dir.to_path_buf(), true));
        return;
    }
    out.push((dir.to_path_buf(), false));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            // Landlock rules bind to the target: a symlink here could point
            // into a denied subtree. Its target is granted where it lives.
            continue;
        }
        if kind.is_dir() {
            read_grants(&path, deny, out);
        } else if !deny.iter().any(|d| d == &path) {
            out.push((path, true));
        }
    }
}

/// Keeps other processes of the same user (an agent included, should it
/// escape its sandbox) from reading this process's memory and
/// `/proc/<pid>/environ`, where tokens may live.
pub fn harden_self() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Names whose values `--print-env` hides.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "TOKEN",
        "KEY",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| upper.contains(w))
}

/// The inode of a process's user namespace, as `/proc/<pid>/ns/user` names it.
pub fn user_namespace_of(pid: i32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/user"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `~/x` → `$HOME/x`; other paths as given.
    fn expand_home(path: &str) -> PathBuf {
        if let Some(rest) = path.strip_prefix("~/") {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home).join(rest);
            }
        }
        if path == "~" {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home);
            }
        }
        PathBuf::from(path)
    }

    #[test]
    fn read_grants_skip_the_denied_subtree() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().canonicalize().expect("canon");
        for d in ["home/.ssh", "home/.config/gh", "home/.config/other", "etc"] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        fs::write(root.join("home/.bashrc"), "x").expect("file");
        let deny = vec![root.join("home/.ssh"), root.join("home/.config/gh")];
        let mut out = Vec::new();
        read_grants(&root, &deny, &mut out);
        let whole: Vec<_> = out.iter().filter(|(_, w)| *w).map(|(p, _)| p).collect();
        assert!(whole.contains(&&root.join("etc")));
        assert!(whole.contains(&&root.join("home/.bashrc")));
        assert!(whole.contains(&&root.join("home/.config/other")));
        assert!(!out
            .iter()
            .any(|(p, _)| p.starts_with(root.join("home/.ssh"))));
        assert!(!out
            .iter()
            .any(|(p, _)| p.starts_with(root.join("home/.config/gh"))));
    }

    /// `cargo test --lib sandbox::tests::overhead -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn overhead() {
        use std::os::unix::process::CommandExt;
        use std::time::Instant;
        let tmp = tempfile::tempdir().expect("tmp");
        let policy = Policy {
            write_dirs: vec![tmp.path().to_path_buf()],
            write_files: Vec::new(),
            read_deny: vec![expand_home("~/.ssh"), expand_home("~/.config/gh")],
            network: NetworkPolicy::Open,
            sockets: Vec::new(),
            allow: Vec::new(),
            sockets_found: None,
        };
        let n = 200;
        let t = Instant::now();
        for _ in 0..n {
            Prepared::new(SandboxMode::Auto, &policy).expect("prepare");
        }
        println!(
            "prepare (ruleset built in the parent): {:?} each",
            t.elapsed() / n
        );
        let prepared = std::sync::Arc::new(
            Prepared::new(SandboxMode::Auto, &policy)
                .expect("prepare")
                .expect("on"),
        );
        println!("effective: {:?}", prepared.effective);
        for sandboxed in [false, true, false, true] {
            let t = Instant::now();
            for _ in 0..n {
                let mut cmd = std::process::Command::new("/bin/true");
                let p = prepared.clone();
                // SAFETY: see Prepared::apply_in_child.
                unsafe {
                    cmd.pre_exec(move || {
                        if sandboxed {
                            p.apply_in_child(ChildFds::NONE)?;
                        }
                        Ok(())
                    });
                }
                assert!(cmd.status().expect("spawn").success());
            }
            println!(
                "spawn+wait /bin/true, sandboxed={sandboxed}: {:?} each",
                t.elapsed() / n
            );
        }
    }

    #[test]
    fn secret_names() {
        for n in [
            "GITHUB_TOKEN",
            "ANTHROPIC_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "DB_PASSWORD",
        ] {
            assert!(looks_secret(n), "{n}");
        }
        for n in ["PATH", "HOME", "TMPDIR", "GIT_AGENT_RUN_ID"] {
            assert!(!looks_secret(n), "{n}");
        }
    }
}
