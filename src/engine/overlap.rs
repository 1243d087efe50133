//! Runs side by side: a batch's runs whose write scopes may overlap (and
//! that are not chained) run at once from the same base; when the batch
//! ends, each pair's results are merged in memory (`git merge-tree`) and a
//! pair that does not merge cleanly is said in both runs' records and
//! logs ("conflicts with agent/x in src/a.rs").

use crate::engine::orchestrator::{Finished, PlanEntry};
use crate::engine::run::{Engine, RunRequest};
use crate::model::chain::Conflict;
use crate::model::event::{Event, EventKind};
use crate::model::store::{RunRecord, State};

/// Which requests of a batch ran beside which (by index).
pub struct Scopes {
    pairs: Vec<(usize, usize)>,
}

impl Scopes {
    pub fn of(reqs: &[RunRequest], entries: &[PlanEntry]) -> Scopes {
        let index = |t: &str| reqs.iter().position(|r| r.brief.id.as_str() == t);
        let mut pairs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            for j in e.overlaps.iter().filter_map(|t| index(t)) {
                if i < j {
                    pairs.push((i, j));
                }
            }
        }
        Scopes { pairs }
    }
}

/// A record whose result may reach a reviewer: its branch and commit.
fn result(f: &Finished) -> Option<(&RunRecord, git2::Oid)> {
    match f {
        Finished::Ran(Ok(r)) if matches!(r.state, State::Succeeded | State::Escalated) => {
            let commit = git2::Oid::from_str(r.commit.as_deref()?).ok()?;
            r.branch.as_ref()?;
            Some((r, commit))
        }
        _ => None,
    }
}

/// Checks each pair of results that ran beside each other and records
/// the conflicts found in both runs (their `run.json` and events).
pub async fn check(engine: &Engine, scopes: &Scopes, finished: &mut [Finished]) {
    let mut found: Vec<(usize, Conflict)> = Vec::new();
    for &(i, j) in &scopes.pairs {
        let (Some((a, ca)), Some((b, cb))) = (result(&finished[i]), result(&finished[j])) else {
            continue;
        };
        let root = engine.root.clone();
        let paths = tokio::task::spawn_blocking(move || {
            crate::git::Repo::discover(&root).and_then(|repo| repo.merge_conflicts(ca, cb))
        })
        .await;
        let paths = match paths {
            Ok(Ok(paths)) => paths,
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::model::error_chain(&e), "could not merge two results to look for conflicts");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the conflict check panicked");
                continue;
            }
        };
        if paths.is_empty() {
            continue;
        }
        let with = |r: &RunRecord| Conflict {
            task: r.task.clone(),
            branch: r.branch.clone().unwrap_or_default(),
            paths: paths.clone(),
        };
        found.push((i, with(b)));
        found.push((j, with(a)));
    }
    for (idx, conflict) in found {
        if let Finished::Ran(Ok(record)) = &mut finished[idx] {
            record_conflict(engine, record, conflict);
        }
    }
}

fn record_conflict(engine: &Engine, record: &mut RunRecord, conflict: Conflict) {
    let dir = engine.store.open(&record.run_id);
    record.conflicts.push(conflict.clone());
    let saved = dir
        .append_event(&Event::now(EventKind::Conflicts { conflict }))
        .and_then(|()| dir.write_record(record));
    if let Err(e) = saved {
        tracing::warn!(error = %e, run = %record.run_id, "could not record a conflict");
    }
}
