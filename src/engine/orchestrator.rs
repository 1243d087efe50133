//! Many runs at once: a bounded pool, runs whose write scopes overlap kept
//! apart, and one signal path (first Ctrl-C stops cleanly, second kills).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::run::{self, Engine, Progress, RunError, RunRequest};
use crate::exec::process::StopSignal;
use crate::model::store::RunRecord;
use crate::spec::scope::may_overlap;

/// The order runs will start in, and which waits for which.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub task: String,
    /// Earlier tasks in the batch whose write scope may overlap this one's.
    pub waits_for: Vec<String>,
}

pub fn plan(reqs: &[RunRequest], allow_overlap: bool) -> Vec<PlanEntry> {
    reqs.iter()
        .enumerate()
        .map(|(i, r)| PlanEntry {
            task: r.brief.id.to_string(),
            waits_for: if allow_overlap {
                Vec::new()
            } else {
                reqs[..i]
                    .iter()
                    .filter(|o| {
                        may_overlap(
                            o.brief.scope.write.patterns(),
                            r.brief.scope.write.patterns(),
                        )
                    })
                    .map(|o| o.brief.id.to_string())
                    .collect()
            },
        })
        .collect()
}

/// What became of each request, in request order.
#[expect(clippy::large_enum_variant, reason = "one value per run, moved once")]
pub enum Finished {
    Ran(Result<RunRecord, RunError>),
    /// Never started: the batch was interrupted first.
    NotStarted {
        task: String,
    },
}

/// Runs the requests with at most `jobs` at once. Returns when all have
/// ended; `stop` (fed by the signal handler) stops starting new runs and is
/// passed to every running child.
pub async fn run_all(
    engine: Arc<Engine>,
    reqs: Vec<RunRequest>,
    jobs: usize,
    allow_overlap: bool,
    stop: watch::Receiver<StopSignal>,
    progress: Progress,
) -> Vec<Finished> {
    let entries = plan(&reqs, allow_overlap);
    let count = reqs.len();
    let mut results: Vec<Option<Finished>> = (0..count).map(|_| None).collect();
    let mut pending: VecDeque<(usize, RunRequest)> = reqs.into_iter().enumerate().collect();
    let mut running: Vec<usize> = Vec::new();
    let mut set = JoinSet::new();
    let mut task_ids = std::collections::HashMap::new();
    let jobs = jobs.max(1);

    loop {
        let stopping = *stop.borrow() != StopSignal::Run;
        if !stopping {
            // Start every pending run that waits for nothing still unfinished.
            let mut i = 0;
            while i < pending.len() && running.len() < jobs {
                if waits(&entries, &results, pending[i].0) {
                    i += 1;
                    continue;
                }
                let (idx, req) = pending.remove(i).expect("index checked above");
                running.push(idx);
                let engine = engine.clone();
                let stop = stop.clone();
                let progress = progress.clone();
                let handle = set
                    .spawn(async move { (idx, run::execute(engine, req, stop, progress).await) });
                task_ids.insert(handle.id(), idx);
            }
        } else {
            for (idx, req) in pending.drain(..) {
                results[idx] = Some(Finished::NotStarted {
                    task: req.brief.id.to_string(),
                });
            }
        }
        if set.is_empty() {
            break;
        }
        let (idx, result) = match set.join_next().await {
            Some(Ok(done)) => done,
            Some(Err(join_error)) => {
                // A panicking run must not take the batch down; report it.
                tracing::error!(%join_error, "a run task panicked");
                let Some(idx) = task_ids.get(&join_error.id()).copied() else {
                    continue;
                };
                (idx, Err(RunError::Join(join_error.to_string())))
            }
            None => break,
        };
        running.retain(|r| *r != idx);
        results[idx] = Some(Finished::Ran(result));
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or(Finished::NotStarted {
                task: entries[i].task.clone(),
            })
        })
        .collect()
}

/// Whether request `idx` waits for an earlier request, still unfinished,
/// whose write scope may overlap its own.
fn waits(entries: &[PlanEntry], results: &[Option<Finished>], idx: usize) -> bool {
    entries[idx].waits_for.iter().any(|t| {
        entries
            .iter()
            .enumerate()
            .any(|(j, e)| &e.task == t && j < idx && results[j].is_none())
    })
}

/// Installs the signal handler: first SIGINT/SIGTERM → `Graceful`, second → `Kill`.
pub fn install_signal_handler(tx: watch::Sender<StopSignal>, on_first: impl Fn() + Send + 'static) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // A closed terminal or a dropped ssh session (SIGHUP) stops the runs
        // like Ctrl-C: gracefully, supervised to the end, resumable.
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::warn!("could not install signal handlers");
            return;
        };
        let mut count = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = hup.recv() => {}
                _ = term.recv() => {}
            }
            count += 1;
            if count == 1 {
                on_first();
                let _ = tx.send(StopSignal::Graceful);
            } else {
                let _ = tx.send(StopSignal::Kill);
            }
        }
    });
}
