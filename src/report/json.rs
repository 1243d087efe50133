//! The stable JSON views of records (`run --json`, `status --json`, the
//! Actions step output `runs`).

use serde::Serialize;

use crate::model::store::RunRecord;

/// The stable JSON shape of a run (also used by `status --json`).
#[derive(Serialize)]
pub struct RunJson<'a> {
    pub run_id: &'a str,
    pub task: &'a str,
    pub outcome: &'static str,
    pub state: &'static str,
    pub branch: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub attempts: u32,
    pub worktree: Option<String>,
    pub reason: Option<&'a str>,
    pub checks: &'a [crate::model::store::CheckSummary],
    pub duration_ms: Option<u64>,
    pub started_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'a crate::model::delivery::DeliveryRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landed: Option<&'a crate::model::landing::Landing>,
    /// Tokens and cost the agent CLI reported, over all attempts: always
    /// present, `null` where it reported nothing (the `command` adapter,
    /// Codex's cost).
    pub usage: &'a crate::model::usage::Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<&'a crate::model::chain::Chain>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub conflicts: &'a [crate::model::chain::Conflict],
}

pub fn to_json(r: &RunRecord) -> RunJson<'_> {
    let state = r.effective_state();
    RunJson {
        run_id: &r.run_id,
        task: &r.task,
        outcome: state.outcome(),
        state: state.as_str(),
        branch: r.branch.as_deref(),
        commit: r.commit.as_deref(),
        attempts: r.attempts,
        worktree: r.worktree.as_ref().map(|p| p.display().to_string()),
        reason: r.reason.as_deref(),
        checks: &r.checks,
        duration_ms: r.duration_ms,
        started_at: &r.started_at,
        delivery: r.delivery.as_ref(),
        landed: r.landed.as_ref(),
        usage: &r.usage,
        chain: r.chain.as_ref(),
        conflicts: &r.conflicts,
    }
}
