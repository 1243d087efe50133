//! `git agent stop RUN|TASK`: stops a run gracefully, wherever it runs (a
//! terminal's `git agent run`, the supervisor): recorded `interrupted`,
//! its worktree kept, resumable with `git agent run --resume`.

use std::time::{Duration, Instant};

use super::helper::{load_config, store};
use super::{exit, CliError, CliResult, Ctx};
use crate::engine::stop;
use crate::model::store::State;

/// Stop a run gracefully (recorded interrupted, resumable) or take it off the queue
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: String,
    /// SIGKILL the run's processes at once instead of SIGTERM and the grace
    #[arg(long)]
    pub kill: bool,
    /// Return once the stop is asked for, without waiting for the run to end
    #[arg(long)]
    pub no_wait: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = store(ctx)?;
    let record = store
        .resolve(&args.run)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status`"))?;
    let id = record.run_id.clone();
    let state = record.effective_state();
    if state.is_terminal() {
        return Err(CliError::usage(format!(
            "run {id} is not running: it {}",
            match state {
                State::Interrupted => "was interrupted (its process is gone)".to_string(),
                other => format!("ended {}", other.outcome()),
            }
        ))
        .hint("list runs with `git agent status`"));
    }
    let dir = store.open(&id);
    match stop::request(&store, &record, args.kill).map_err(|e| CliError::failed(e.to_string()))? {
        stop::Requested::TakenOffQueue => {
            super::outln!("{id}: taken off the queue (it never started)");
            return Ok(exit::OK);
        }
        stop::Requested::Asked => {}
    }
    if args.no_wait {
        eprintln!("{id}: asked to stop");
        return Ok(exit::OK);
    }
    eprintln!("{id}: stopping (its processes get SIGTERM and a grace period)…");
    // The grace of each step, then the run's own cleanup.
    let root = ctx.root()?;
    let grace = load_config(&root, ctx)?
        .kill_grace
        .unwrap_or(Duration::from_secs(5));
    let deadline = Instant::now() + grace * 2 + Duration::from_secs(60);
    loop {
        let now = dir.read_record().ok();
        match now {
            Some(r) if r.effective_state().is_terminal() => {
                let state = r.effective_state();
                super::outln!("{id}: {}", state.outcome());
                if state == State::Interrupted && r.worktree.as_ref().is_some_and(|w| w.exists()) {
                    eprintln!("continue it with `git agent run --resume {id}`");
                }
                return Ok(exit::OK);
            }
            _ if Instant::now() > deadline => {
                return Err(CliError::failed(format!(
                    "run {id} has not ended yet; it was asked to stop"
                ))
                .hint(format!("`git agent stop --kill {id}` kills it at once")));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
