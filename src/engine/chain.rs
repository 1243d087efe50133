//! Runs chained by `after:`: where such a run starts (its predecessors'
//! results that are not in the base yet — one: its branch's tip, and the
//! pull request stacks on that branch; several: their merge) and the
//! record of a run that never started because one it runs after failed.

use crate::engine::run::{new_record, Engine, Run, RunError, RunRequest};
use crate::model::chain::{Chain, Link};
use crate::model::event::{Event, EventKind};
use crate::model::store::{RunRecord, State};

/// A task a run is after, as the request names it.
#[derive(Debug, Clone)]
pub struct Predecessor {
    pub task: String,
    /// Its brief's `output.branch`.
    pub branch: String,
    /// In a batch: the branch and commit its run just made (the branch may
    /// be `agent/x-2` when `agent/x` was someone else's).
    pub result: Option<(String, String)>,
}

impl Run {
    /// Where the run starts: `base`, or the results of the tasks it is
    /// after that `base` does not hold yet. Records the chain (and, when
    /// it stacks on one branch, that branch as what its pull request
    /// targets). `Err` is why the run cannot start.
    pub(super) async fn chain_start(
        &mut self,
        req: &RunRequest,
        base: git2::Oid,
    ) -> Result<Result<git2::Oid, String>, RunError> {
        if req.after.is_empty() {
            return Ok(Ok(base));
        }
        let after = req.after.clone();
        let base_name = self
            .record
            .base_branch
            .clone()
            .unwrap_or_else(|| req.brief.base.clone());
        let links = self
            .git(move |repo| links(repo, &after, base, &base_name))
            .await?;
        let links = match links {
            Ok(links) => links,
            Err(reason) => return Ok(Err(reason)),
        };
        let pending: Vec<&Link> = links.iter().filter(|l| l.commit.is_some()).collect();
        let start = match self.start_of(req, base, &pending).await? {
            Ok(start) => start,
            Err(reason) => return Ok(Err(reason)),
        };
        let stacked_on = match pending.as_slice() {
            [one] => Some(one.branch.clone()),
            _ => None,
        };
        let chain = Chain {
            after: links.clone(),
            stacked_on: stacked_on.clone(),
            onto: self.record.base_branch.clone(),
        };
        if let Some(branch) = stacked_on {
            self.record.base_branch = Some(branch);
        }
        self.record.chain = Some(chain);
        Ok(Ok(start))
    }
}

impl Run {
    /// The commit the run starts from: `base`, the one pending result, or
    /// the pending results merged; `Err` when they do not merge.
    async fn start_of(
        &self,
        req: &RunRequest,
        base: git2::Oid,
        pending: &[&Link],
    ) -> Result<Result<git2::Oid, String>, RunError> {
        let tips: Vec<git2::Oid> = pending
            .iter()
            .filter_map(|l| {
                l.commit
                    .as_deref()
                    .and_then(|c| git2::Oid::from_str(c).ok())
            })
            .collect();
        let several = match tips.as_slice() {
            [] => return Ok(Ok(base)),
            [one] => return Ok(Ok(*one)),
            several => several.to_vec(),
        };
        let names = task_list(pending);
        let message = format!(
            "git-agent: the results of {names}, merged for {}",
            req.brief.id
        );
        Ok(self
            .git(move |repo| repo.merge_results(&several, &message))
            .await?
            .map_err(|paths| {
                format!(
                    "the results of {names} do not merge ({}): land one of them first",
                    paths.join(", ")
                )
            }))
    }
}

/// `a`, `a and b`, `a, b and c`.
fn task_list(links: &[&Link]) -> String {
    let names: Vec<String> = links.iter().map(|l| format!("`{}`", l.task)).collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Each predecessor's result and whether `base` holds it already; `Err`
/// when one has no result at all.
fn links(
    repo: &crate::git::Repo,
    after: &[Predecessor],
    base: git2::Oid,
    base_name: &str,
) -> Result<Result<Vec<Link>, String>, crate::git::WorkspaceError> {
    let mut links = Vec::new();
    for p in after {
        let (branch, tip) = match &p.result {
            Some((branch, commit)) => (branch.clone(), git2::Oid::from_str(commit).ok()),
            None => (p.branch.clone(), repo.result_of(&p.task, &p.branch)?),
        };
        let commit = match tip {
            Some(tip) if repo.holds_result(base, tip)? => None,
            Some(tip) => Some(tip.to_string()),
            None if repo.holds_task(base, &p.task)? => None,
            None => {
                return Ok(Err(format!(
                    "runs after `{task}`, which has no result to start from: no succeeded commit of git-agent for `{task}` on {branch} (nor origin/{branch}), and {base_name} holds none; run `{task}` first, or both together (`git agent run {task} <this task>`)",
                    task = p.task
                )))
            }
        };
        links.push(Link {
            task: p.task.clone(),
            branch,
            commit,
        });
    }
    Ok(Ok(links))
}

/// The event saying where a chained run started.
pub(super) fn chained_event(
    record: &RunRecord,
    base: git2::Oid,
    start: git2::Oid,
) -> Option<EventKind> {
    record.chain.clone().map(|chain| EventKind::Chained {
        chain,
        start: (start != base).then(|| start.to_string()),
    })
}

/// The record of a request that never started because a run it is after
/// did not succeed: failed, saying why.
pub fn not_started(
    engine: &Engine,
    req: &RunRequest,
    reason: String,
) -> Result<RunRecord, RunError> {
    let store_err = |source| RunError::Store {
        path: engine.store.dir().to_path_buf(),
        source,
    };
    let dir = engine
        .store
        .create(req.brief.id.as_str())
        .map_err(store_err)?;
    let mut record = new_record(&dir, req);
    record.state = State::Failed;
    record.reason = Some(reason.clone());
    record.finished_at = Some(crate::model::time::now_rfc3339());
    record.duration_ms = Some(0);
    dir.append_event(&Event::now(EventKind::RunFinished {
        outcome: State::Failed,
        duration_ms: 0,
        reason: Some(reason),
    }))
    .map_err(store_err)?;
    dir.write_record(&record).map_err(store_err)?;
    Ok(record)
}
