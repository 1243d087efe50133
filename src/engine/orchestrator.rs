//! Many runs at once: a bounded pool, chained runs (`after:`) started
//! when those they run after have succeeded (never when one failed), runs
//! whose write scopes overlap side by side from the same base and their
//! results checked for conflicts when the batch ends ([`overlap`]), and
//! one signal path (first Ctrl-C stops cleanly, second kills).
//!
//! [`overlap`]: crate::engine::overlap

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::engine::run::{self, Engine, Progress, RunError, RunRequest};
use crate::exec::process::StopSignal;
use crate::model::store::{RunRecord, State};
use crate::spec::scope::may_overlap;

/// The order runs will start in, and which waits for which.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub task: String,
    /// Tasks of the batch this one runs after (`after:`): it starts once
    /// they have succeeded, from their results.
    pub waits_for: Vec<String>,
    /// Tasks of the batch whose write scopes may overlap this one's and
    /// that are not chained with it: they run side by side from the same
    /// base, and their results are checked for conflicts afterwards.
    pub overlaps: Vec<String>,
}

/// Each request's place in the batch: what it waits for, what it runs
/// beside.
pub fn plan(reqs: &[RunRequest]) -> Vec<PlanEntry> {
    let in_batch = |t: &str| reqs.iter().any(|r| r.brief.id.as_str() == t);
    let waits: Vec<Vec<String>> = reqs
        .iter()
        .map(|r| {
            r.after
                .iter()
                .map(|p| p.task.clone())
                .filter(|t| in_batch(t))
                .collect()
        })
        .collect();
    let chained =
        |i: usize, j: usize| is_before(reqs, &waits, i, j) || is_before(reqs, &waits, j, i);
    reqs.iter()
        .enumerate()
        .map(|(i, r)| PlanEntry {
            task: r.brief.id.to_string(),
            waits_for: waits[i].clone(),
            overlaps: reqs
                .iter()
                .enumerate()
                .filter(|(j, o)| {
                    *j != i
                        && !chained(i, *j)
                        && may_overlap(
                            o.brief.scope.write.patterns(),
                            r.brief.scope.write.patterns(),
                        )
                })
                .map(|(_, o)| o.brief.id.to_string())
                .collect(),
        })
        .collect()
}

/// Whether request `i` runs, through `after:` in the batch, before `j`.
fn is_before(reqs: &[RunRequest], waits: &[Vec<String>], i: usize, j: usize) -> bool {
    let target = reqs[i].brief.id.as_str();
    let mut stack = vec![j];
    let mut seen = vec![false; reqs.len()];
    while let Some(k) = stack.pop() {
        if std::mem::replace(&mut seen[k], true) {
            continue;
        }
        for t in &waits[k] {
            if t == target {
                return true;
            }
            stack.extend(reqs.iter().position(|r| r.brief.id.as_str() == t));
        }
    }
    false
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

/// A batch in flight: the requests not started yet and what became of the
/// others.
struct Batch {
    entries: Vec<PlanEntry>,
    results: Vec<Option<Finished>>,
    pending: VecDeque<(usize, RunRequest)>,
    running: usize,
}

/// Whether a request may start, given what became of those it is after.
enum Ready {
    Wait,
    Go(Vec<(String, String, String)>),
    /// One it is after did not succeed: it never starts, for this reason.
    Refuse(String),
    Interrupted,
}

impl Batch {
    fn ready(&self, idx: usize) -> Ready {
        let mut results = Vec::new();
        for task in &self.entries[idx].waits_for {
            let Some(j) = self.entries.iter().position(|e| &e.task == task) else {
                continue;
            };
            match &self.results[j] {
                None => return Ready::Wait,
                Some(Finished::NotStarted { .. }) => return Ready::Interrupted,
                Some(Finished::Ran(Ok(r))) if r.state == State::Succeeded => {
                    if let (Some(b), Some(c)) = (&r.branch, &r.commit) {
                        results.push((task.clone(), b.clone(), c.clone()));
                    }
                }
                Some(Finished::Ran(Ok(r))) => {
                    let why = r
                        .reason
                        .as_deref()
                        .map(|w| format!(": {w}"))
                        .unwrap_or_default();
                    return Ready::Refuse(format!(
                        "not started: `{task}`, which it runs after, {}{why}",
                        match r.effective_state() {
                            State::Escalated => "escalated",
                            State::Interrupted => "was interrupted",
                            _ => "failed",
                        }
                    ));
                }
                Some(Finished::Ran(Err(e))) => {
                    return Ready::Refuse(format!(
                        "not started: `{task}`, which it runs after, failed: {}",
                        run::error_chain(e)
                    ))
                }
            }
        }
        Ready::Go(results)
    }

    /// Starts every pending run that may start, within `jobs`; records the
    /// ones that never will.
    fn start_ready(
        &mut self,
        engine: &Arc<Engine>,
        jobs: usize,
        set: &mut JoinSet<(usize, Result<RunRecord, RunError>)>,
        stop: &watch::Receiver<StopSignal>,
        progress: &Progress,
    ) -> Vec<(tokio::task::Id, usize)> {
        let mut started = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            let idx = self.pending[i].0;
            let go = match self.ready(idx) {
                Ready::Wait => {
                    i += 1;
                    continue;
                }
                Ready::Go(_) if self.running >= jobs => {
                    i += 1;
                    continue;
                }
                other => other,
            };
            let (idx, mut req) = self.pending.remove(i).expect("index checked above");
            match go {
                Ready::Go(results) => {
                    for p in &mut req.after {
                        if let Some((_, b, c)) = results.iter().find(|r| r.0 == p.task) {
                            p.result = Some((b.clone(), c.clone()));
                        }
                    }
                    self.running += 1;
                    let (engine, stop, progress) = (engine.clone(), stop.clone(), progress.clone());
                    let handle =
                        set.spawn(
                            async move { (idx, run::execute(engine, req, stop, progress).await) },
                        );
                    started.push((handle.id(), idx));
                }
                Ready::Refuse(reason) => {
                    let record = crate::engine::chain::not_started(engine, &req, reason);
                    if let Ok(r) = &record {
                        progress(r);
                    }
                    self.results[idx] = Some(Finished::Ran(record));
                    // What waited for this one may be decided now.
                    i = 0;
                }
                _ => {
                    self.results[idx] = Some(Finished::NotStarted {
                        task: req.brief.id.to_string(),
                    });
                    i = 0;
                }
            }
        }
        started
    }
}

/// Runs the requests with at most `jobs` at once. Returns when all have
/// ended; `stop` (fed by the signal handler) stops starting new runs and is
/// passed to every running child.
pub async fn run_all(
    engine: Arc<Engine>,
    reqs: Vec<RunRequest>,
    jobs: usize,
    stop: watch::Receiver<StopSignal>,
    progress: Progress,
) -> Vec<Finished> {
    let entries = plan(&reqs);
    let scopes = crate::engine::overlap::Scopes::of(&reqs, &entries);
    let mut batch = Batch {
        results: (0..reqs.len()).map(|_| None).collect(),
        pending: reqs.into_iter().enumerate().collect(),
        entries,
        running: 0,
    };
    let mut set = JoinSet::new();
    let mut task_ids = std::collections::HashMap::new();
    loop {
        if *stop.borrow() == StopSignal::Run {
            task_ids.extend(batch.start_ready(&engine, jobs.max(1), &mut set, &stop, &progress));
        } else {
            for (idx, req) in batch.pending.drain(..) {
                batch.results[idx] = Some(Finished::NotStarted {
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
        batch.running -= 1;
        batch.results[idx] = Some(Finished::Ran(result));
    }
    let mut finished: Vec<Finished> = batch
        .results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or(Finished::NotStarted {
                task: batch.entries[i].task.clone(),
            })
        })
        .collect();
    crate::engine::overlap::check(&engine, &scopes, &mut finished).await;
    finished
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
