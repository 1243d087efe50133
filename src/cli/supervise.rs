//! `git agent supervise`: runs the repository's queue of detached runs.
//! `run --detach` starts it on its own (in its own session, without a
//! terminal, its output in `<git-common-dir>/agent/supervisor.log`); by
//! hand it runs the queue in the foreground, e.g. after a crash.

use std::sync::Arc;

use tokio::sync::watch;

use super::helper::{engine, load_config, load_requests, run_runtime, store};
use super::{exit, progress, CliError, CliResult, Ctx};
use crate::engine::{orchestrator, queue};
use crate::exec::process::StopSignal;
use crate::model::locks::{FileLock, Locks};
use crate::model::store::State;

/// Run the queue of detached runs until it is empty (`run --detach` starts it)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let store = store(ctx)?;
    let locks = Locks::of(&store);
    let supervisor = FileLock::try_acquire(&locks.supervisor()).map_err(|e| {
        CliError::from_error(exit::RUN_FAILED, "could not take the supervisor lock", &e)
    })?;
    let Some(supervisor) = supervisor else {
        eprintln!("a supervisor is already running the queue of this repository");
        return Ok(exit::OK);
    };
    let config = load_config(&root, ctx)?;
    crate::exec::sandbox::harden_self();
    let engine = engine(&root, &config)?;
    let load_root = root.clone();
    let load_config = config.clone();
    let load_ctx = Ctx {
        cwd: ctx.cwd.clone(),
        stderr_tty: false,
    };
    let load: queue::Loader = Arc::new(move |record| {
        let ids = [record.task.clone()];
        load_requests(
            &load_root,
            &load_config,
            &ids,
            Some(&record.agent),
            &load_ctx,
        )
        .map(|mut reqs| reqs.remove(0))
        .map_err(|e| {
            format!(
                "could not start: {} (the brief is read when a queued run starts)",
                e
            )
        })
    });
    let runtime = run_runtime()?;
    let progress = progress::reporter(ctx.stderr_tty, false);
    let ended = runtime.block_on(async move {
        let (tx, rx) = watch::channel(StopSignal::Run);
        orchestrator::install_signal_handler(tx, super::announce_stopping);
        queue::supervise(engine, supervisor, load, rx, progress).await
    });
    let failed = ended
        .iter()
        .any(|r| !matches!(r, Ok(record) if record.state == State::Succeeded));
    Ok(if failed { exit::RUN_FAILED } else { exit::OK })
}
