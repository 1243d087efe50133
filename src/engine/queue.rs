//! The repository's queue of detached runs (`run --detach`) and its one
//! supervisor.
//!
//! The queue is the run records in state `queued`: a request gets its run
//! id (and its record) when it joins, so it can be followed, stopped and
//! listed at once. The supervisor is a process of its own (own session, no
//! terminal) that claims queued runs in order, at most each run's `-j`
//! alive at once, one run per task (the task lock, across processes), and
//! exits when the queue is empty.
//!
//! The handover has no gap: a request joins under `queue.lock` and then
//! checks whether a supervisor holds `supervisor.lock`; the supervisor
//! decides to exit under `queue.lock` too, and gives up `supervisor.lock`
//! before it gives up `queue.lock`. So either the supervisor sees the new
//! request, or the request sees no supervisor and starts one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::run::{self, Engine, Progress, RunError, RunRequest};
use crate::exec::process::StopSignal;
use crate::model::locks::{FileLock, Locks};
use crate::model::store::{Queued, RunRecord, State, Store};

/// How often the supervisor looks for new requests while runs work.
const POLL: Duration = Duration::from_millis(250);

/// Why a request could not join the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("could not write to the run store {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn store_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Store {
        path: path.to_path_buf(),
        source,
    }
}

/// Queues the requests: one `queued` record each, in order. Returns the
/// records and whether a supervisor must be started (none holds its lock).
pub fn enqueue(
    store: &Store,
    reqs: &[RunRequest],
    jobs: usize,
    allow_overlap: bool,
) -> Result<(Vec<RunRecord>, bool), QueueError> {
    let locks = Locks::of(store);
    let _queue = FileLock::acquire(&locks.queue()).map_err(store_error(store.dir()))?;
    let mut records = Vec::new();
    for req in reqs {
        let dir = store
            .create(req.brief.id.as_str())
            .map_err(store_error(store.dir()))?;
        let mut record = run::new_record(&dir, req);
        record.state = State::Queued;
        record.pid = 0;
        record.queued = Some(Queued {
            at: record.started_at.clone(),
            jobs: jobs.max(1),
            allow_overlap,
        });
        dir.write_record(&record)
            .map_err(store_error(&dir.record_path()))?;
        records.push(record);
    }
    Ok((records, !locks.supervisor_alive()))
}

/// Takes a queued run off the queue before it started: recorded as
/// interrupted, never run. `false` when it is no longer queued (a
/// supervisor claimed it first).
pub fn cancel(store: &Store, run_id: &str) -> Result<bool, QueueError> {
    let locks = Locks::of(store);
    let _queue = FileLock::acquire(&locks.queue()).map_err(store_error(store.dir()))?;
    let dir = store.open(run_id);
    let mut record = dir.read_record().map_err(store_error(&dir.record_path()))?;
    if record.state != State::Queued {
        return Ok(false);
    }
    record.state = State::Interrupted;
    record.reason = Some("stopped while queued; it never started".into());
    record.finished_at = Some(crate::model::time::now_rfc3339());
    dir.write_record(&record)
        .map_err(store_error(&dir.record_path()))?;
    Ok(true)
}

/// Builds the request of a queued run from the repository as it is now
/// (the brief is read when the run starts); `Err` is the reason it fails.
pub type Loader = Arc<dyn Fn(&RunRecord) -> Result<RunRequest, String> + Send + Sync>;

/// A run the supervisor started, for the limits of later ones.
struct Live {
    run_id: String,
}

/// Whether a queued chained run may start.
enum After {
    Go,
    /// A run of a task it is after, queued before it, has not ended.
    Wait,
    /// The latest run of a task it is after, queued before it, did not
    /// succeed: it never starts, for this reason.
    Refuse(String),
}

/// What the runs queued before `record` of the tasks `req` is after say.
fn after_queued(store: &Store, record: &RunRecord, req: &RunRequest) -> After {
    if req.after.is_empty() {
        return After::Go;
    }
    let all = store.list().unwrap_or_default();
    let before = all
        .iter()
        .take_while(|r| r.run_id != record.run_id)
        .collect::<Vec<_>>();
    for p in &req.after {
        let Some(latest) = before.iter().rev().find(|r| r.task == p.task) else {
            continue;
        };
        let state = latest.effective_state();
        if !state.is_terminal() && latest.queued.is_some() {
            return After::Wait;
        }
        if latest.queued.is_some() && state.is_terminal() && state != State::Succeeded {
            return After::Refuse(format!(
                "not started: `{}`, which it runs after, {} (run {})",
                p.task,
                state.outcome(),
                latest.run_id
            ));
        }
    }
    After::Go
}

/// Runs the queue until it is empty (or `stop`), then returns holding
/// nothing: `supervisor` is released under the queue lock.
pub async fn supervise(
    engine: Arc<Engine>,
    supervisor: FileLock,
    load: Loader,
    stop: watch::Receiver<StopSignal>,
    progress: Progress,
) -> Vec<Result<RunRecord, RunError>> {
    let locks = Locks::of(&engine.store);
    let mut live: Vec<Live> = Vec::new();
    let mut set: JoinSet<(String, Result<RunRecord, RunError>)> = JoinSet::new();
    let mut ended = Vec::new();
    let mut supervisor = Some(supervisor);
    loop {
        let stopping = *stop.borrow() != StopSignal::Run;
        if !stopping {
            start_what_can_start(
                &engine, &locks, &load, &mut live, &mut set, &stop, &progress,
            );
        }
        if set.is_empty() {
            // Exit only if nothing joined meanwhile, deciding under the
            // queue lock and letting go of the supervisor lock first.
            let Ok(queue) = FileLock::acquire(&locks.queue()) else {
                break;
            };
            if stopping || queued(&engine.store).is_empty() {
                drop(supervisor.take());
                drop(queue);
                break;
            }
            drop(queue);
        }
        tokio::select! {
            Some(done) = set.join_next(), if !set.is_empty() => {
                match done {
                    Ok((run_id, result)) => {
                        live.retain(|l| l.run_id != run_id);
                        ended.push(result);
                    }
                    Err(join_error) => {
                        tracing::error!(%join_error, "a queued run panicked");
                        ended.push(Err(RunError::Join(join_error.to_string())));
                    }
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
        // A panicked run's entry is gone with it; drop entries whose run
        // is no longer in flight.
        if set.is_empty() {
            live.clear();
        }
    }
    ended
}

/// Queued records, oldest first.
fn queued(store: &Store) -> Vec<RunRecord> {
    store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.state == State::Queued)
        .collect()
}

/// Claims and starts every queued run that its limits let start now.
fn start_what_can_start(
    engine: &Arc<Engine>,
    locks: &Locks,
    load: &Loader,
    live: &mut Vec<Live>,
    set: &mut JoinSet<(String, Result<RunRecord, RunError>)>,
    stop: &watch::Receiver<StopSignal>,
    progress: &Progress,
) {
    for record in queued(&engine.store) {
        let Some(asked) = record.queued.clone() else {
            continue;
        };
        if live.len() >= asked.jobs {
            continue;
        }
        // One run per task: held by whoever runs it, here or elsewhere.
        let Ok(Some(task_lock)) = FileLock::try_acquire(&locks.task(&record.task)) else {
            continue;
        };
        let req = load(&record);
        // Runs with overlapping write scopes go side by side; a chained
        // one waits for the runs of the tasks it is after, queued before it.
        let after = match &req {
            Ok(req) => after_queued(&engine.store, &record, req),
            Err(_) => After::Go,
        };
        if matches!(after, After::Wait) {
            continue;
        }
        let Some(claimed) = claim(&engine.store, locks, &record) else {
            continue;
        };
        let mut req = match (req, after) {
            (Ok(req), After::Go) => req,
            (Err(reason), _) | (Ok(_), After::Refuse(reason)) => {
                fail_unstarted(&engine.store, claimed, reason, progress);
                continue;
            }
            (Ok(_), After::Wait) => unreachable!("waiting runs are skipped above"),
        };
        req.queued = Some(claimed);
        live.push(Live {
            run_id: record.run_id.clone(),
        });
        let (engine, stop, progress) = (engine.clone(), stop.clone(), progress.clone());
        let run_id = record.run_id.clone();
        set.spawn(async move {
            let result = run::execute(engine, req, stop, progress).await;
            drop(task_lock);
            (run_id, result)
        });
    }
}

/// Takes a queued record for this process, unless it left the queue
/// meanwhile (stopped, or claimed by another supervisor).
fn claim(store: &Store, locks: &Locks, record: &RunRecord) -> Option<RunRecord> {
    let _queue = FileLock::acquire(&locks.queue()).ok()?;
    let dir = store.open(&record.run_id);
    let mut now = dir.read_record().ok()?;
    if now.state != State::Queued {
        return None;
    }
    now.state = State::Preparing;
    now.pid = std::process::id();
    dir.write_record(&now).ok()?;
    Some(now)
}

/// A queued run whose brief can no longer be run (deleted, now invalid).
fn fail_unstarted(store: &Store, mut record: RunRecord, reason: String, progress: &Progress) {
    record.state = State::Failed;
    record.reason = Some(reason);
    record.finished_at = Some(crate::model::time::now_rfc3339());
    if let Err(e) = store.open(&record.run_id).write_record(&record) {
        tracing::warn!(error = %e, "could not record a queued run that cannot start");
    }
    progress(&record);
}
