//! What an attempt's agent did, parsed from its recorded output after it
//! ended: the activity for the decision log, budgets, and failures that
//! retrying cannot help (authentication, model).

use std::path::Path;

use super::supervise::Budget;
use super::{cli_for, parse, FailureKind};
use crate::exec::process::{self, ProcessOutcome};
use crate::model::event::AgentActivity;
use crate::spec::brief::Brief;
use crate::spec::config::Agent;

/// What an attempt's agent did, and what the run should make of it.
#[derive(Debug, Clone, Default)]
pub struct AgentReport {
    /// For the decision log (`None` for the `command` adapter).
    pub activity: Option<AgentActivity>,
    /// Retrying cannot help (authentication, model): the run fails with this.
    pub fatal: Option<String>,
    /// Reasons to hand the run to a human (budgets).
    pub escalations: Vec<String>,
}

/// Parses the attempt's output after the agent ended.
pub fn report(
    agent: &Agent,
    brief: &Brief,
    worktree: &Path,
    stdout_path: &Path,
    stderr_path: &Path,
    outcome: &ProcessOutcome,
    budget_stop: Option<String>,
) -> AgentReport {
    let stdout = read_lossy(stdout_path);
    let stderr = read_lossy(stderr_path);
    let Some(parser) = parse(agent.adapter, worktree, &stdout, &stderr) else {
        return AgentReport::default();
    };
    let mut activity = parser.activity();
    let mut out = AgentReport::default();
    check_budget(agent, brief, budget_stop, &mut activity, &mut out);
    let exit_ok = matches!(outcome.exit, process::ExitKind::Code(0));
    let name = cli_for(agent.adapter).name();
    match parser.failure() {
        Some((FailureKind::Auth, msg)) => {
            out.fatal = Some(format!(
                "{name} could not authenticate: {msg} (check the API key in the agent's `pass_env`, or log the CLI in)"
            ));
            activity.error = Some(format!("authentication: {msg}"));
        }
        Some((FailureKind::Model, msg)) => {
            out.fatal = Some(format!(
                "{name} could not use its model: {msg} (check `model:` of agent `{}`)",
                agent.name
            ));
            activity.error = Some(format!("model: {msg}"));
        }
        Some((FailureKind::Crash, msg)) => activity.error = Some(msg),
        None if !exit_ok && !outcome.timed_out && out.escalations.is_empty() => {
            let last = stderr.trim().lines().last().unwrap_or("").to_string();
            activity.error = Some(format!("{name} ended with {}: {last}", outcome.exit));
        }
        None => {}
    }
    out.activity = Some(activity);
    out
}

/// A recorded output file as text (empty when it cannot be read).
fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A budget the attempt went over (stopped while running, found after, or
/// stopped at by the CLI itself) escalates; a cost limit the CLI cannot
/// report is noted.
fn check_budget(
    agent: &Agent,
    brief: &Brief,
    budget_stop: Option<String>,
    activity: &mut AgentActivity,
    out: &mut AgentReport,
) {
    let budget = Budget::of(brief);
    if let Some(reason) = budget_stop {
        activity.stopped = Some(format!("stopped while running: {reason}"));
        out.escalations.push(reason);
    } else if let Some(reason) = budget.exceeded(activity) {
        activity.stopped = Some(reason.clone());
        out.escalations.push(reason);
    } else if let Some(reason) = activity.stopped.clone() {
        // The CLI stopped itself at a budget it was given (claude --max-turns, --max-budget-usd).
        out.escalations.push(reason);
    }
    if budget.max_cost_usd.is_some() && activity.cost_usd.is_none() {
        activity.notes.push(format!(
            "{} does not report cost: escalate.max_cost_usd was not enforced",
            cli_for(agent.adapter).name()
        ));
    }
}
