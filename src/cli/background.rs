//! What the commands of background runs share (`run --detach`, `run`,
//! `status`, `clean`): the task locks of a batch, starting the supervisor,
//! the pool's slots.

use super::{exit, CliError, CliResult, Ctx};
use crate::model::store::{State, Store};
use crate::spec::config;

/// One run per task: the task locks of the batch, held until it ends. A
/// task that runs elsewhere (another terminal, the supervisor) fails the
/// command at once, naming that run.
pub(crate) fn lock_tasks(
    store: &Store,
    tasks: &[String],
) -> CliResult<Vec<crate::model::locks::FileLock>> {
    use crate::model::locks::{FileLock, Locks};
    let locks = Locks::of(store);
    let mut held = Vec::new();
    for task in tasks {
        let path = locks.task(task);
        match FileLock::try_acquire(&path) {
            Ok(Some(lock)) => held.push(lock),
            Ok(None) => {
                let running = store
                    .list()
                    .unwrap_or_default()
                    .into_iter()
                    .rev()
                    .find(|r| {
                        &r.task == task
                            && !r.effective_state().is_terminal()
                            && r.state != State::Queued
                    });
                let id = running.as_ref().map_or_else(
                    || "another process".to_string(),
                    |r| format!("run {}", r.run_id),
                );
                let shown = running
                    .as_ref()
                    .map_or(task.as_str(), |r| r.run_id.as_str());
                return Err(CliError::usage(format!(
                    "`{task}` is already running ({id}); one run per task at a time"
                ))
                .hint(format!(
                    "follow it with `git agent log {shown} --follow`, stop it with `git agent stop {shown}`, or queue this one behind it with `git agent run --detach {task}`"
                )));
            }
            Err(e) => {
                return Err(CliError::from_error(
                    exit::RUN_FAILED,
                    format!("could not take the lock of `{task}` ({})", path.display()),
                    &e,
                ))
            }
        }
    }
    Ok(held)
}

/// Starts the repository's supervisor: this binary's `supervise`, in a
/// session of its own (no controlling terminal: closing the terminal
/// does not stop it), stdin closed, its output appended to the
/// supervisor's log.
pub(crate) fn spawn_supervisor(root: &std::path::Path, store: &Store) -> CliResult<u32> {
    use std::os::unix::process::CommandExt;
    let locks = crate::model::locks::Locks::of(store);
    let log_path = locks.supervisor_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| {
            CliError::from_error(
                exit::RUN_FAILED,
                format!("could not open {}", log_path.display()),
                &e,
            )
        })?;
    let err_log = log
        .try_clone()
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not open the log", &e))?;
    let exe = std::env::current_exe()
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not find this program", &e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("-C")
        .arg(root)
        .arg("supervise")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log);
    // SAFETY: `setsid` is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        CliError::from_error(exit::RUN_FAILED, "could not start the supervisor", &e)
    })?;
    // Not waited for: it outlives this process (and is reaped by init).
    Ok(child.id())
}

/// The pool's slots of this repository (`workspace.pool`), as `status` and
/// `clean` see them; none when the config cannot be read.
pub(crate) fn pool_slots(ctx: &Ctx, store: &Store) -> Vec<crate::engine::pool::SlotInfo> {
    let Ok(root) = ctx.root() else {
        return Vec::new();
    };
    let worktree_dir = config::load(&root).ok().and_then(|(c, _)| c.worktree_dir);
    // The common dir as git2 spells it, as the engine hashed it.
    let Ok(repo) = git2::Repository::discover(&root) else {
        return Vec::new();
    };
    let base = crate::engine::run::worktree_base(&root, repo.commondir(), worktree_dir);
    crate::engine::pool::slots(store, &base)
}
