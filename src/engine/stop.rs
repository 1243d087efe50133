//! Stop requests for one run, from another process (`git agent stop`):
//! a file in the run's directory, watched by the process that runs it and
//! merged with the batch's own stop signal (Ctrl-C, SIGTERM).

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::exec::process::StopSignal;

/// How often the stop file is looked for: a stop takes effect within this.
const POLL: Duration = Duration::from_millis(200);

/// The reason an interrupted run records when `git agent stop` stopped it.
pub const STOPPED_REASON: &str = "stopped by `git agent stop`";

/// What the stop file asks for: `kill` at once, anything else gracefully.
fn requested(path: &std::path::Path) -> Option<StopSignal> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(if text.trim() == "kill" {
        StopSignal::Kill
    } else {
        StopSignal::Graceful
    })
}

fn strength(s: StopSignal) -> u8 {
    match s {
        StopSignal::Run => 0,
        StopSignal::Graceful => 1,
        StopSignal::Kill => 2,
    }
}

/// A receiver that says the stronger of `batch` and the run's stop file.
pub fn requests(
    path: PathBuf,
    mut batch: watch::Receiver<StopSignal>,
) -> watch::Receiver<StopSignal> {
    let (tx, rx) = watch::channel(*batch.borrow());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        let mut batch_open = true;
        loop {
            tokio::select! {
                changed = batch.changed(), if batch_open => {
                    if changed.is_err() {
                        batch_open = false;
                        continue;
                    }
                }
                _ = tick.tick() => {}
                _ = tx.closed() => return,
            }
            let mut wanted = *batch.borrow();
            if let Some(asked) = requested(&path) {
                if strength(asked) > strength(wanted) {
                    wanted = asked;
                }
            }
            let current = *tx.borrow();
            if strength(wanted) > strength(current) && tx.send(wanted).is_err() {
                return;
            }
        }
    });
    rx
}

/// What asking a run to stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// It was still queued: recorded interrupted, it never starts.
    TakenOffQueue,
    /// The process running it was asked (through the stop file).
    Asked,
}

/// Asks the run `record` (queued or working) to stop.
pub fn request(
    store: &crate::model::store::Store,
    record: &crate::model::store::RunRecord,
    kill: bool,
) -> Result<Requested, crate::engine::queue::QueueError> {
    let id = &record.run_id;
    if record.state == crate::model::store::State::Queued
        && crate::engine::queue::cancel(store, id)?
    {
        return Ok(Requested::TakenOffQueue);
    }
    // Claimed meanwhile, or working: the process running it is asked.
    let dir = store.open(id);
    crate::model::store::write_atomic(&dir.stop_path(), if kill { b"kill" } else { b"graceful" })
        .map_err(|source| crate::engine::queue::QueueError::Store {
        path: dir.stop_path(),
        source,
    })?;
    Ok(Requested::Asked)
}
