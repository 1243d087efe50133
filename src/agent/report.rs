//! What an attempt's agent did, parsed from its recorded output after it
//! ended: the activity for the decision log, budgets, and failures that
//! retrying cannot help (authentication, model).

use std::path::Path;

use super::supervise::Budget;
use super::{cli_for, parse, FailureKind};
use crate::exec::process::{self, ProcessOutcome};
use crate::model::event::AgentActivity;
use crate::model::usage::Usage;
use crate::spec::brief::Brief;
use crate::spec::config::Agent;

/// One attempt's agent, as it was started and where it left its output.
pub struct Attempt<'a> {
    pub number: u32,
    pub worktree: &'a Path,
    pub stdout: &'a Path,
    pub stderr: &'a Path,
    /// The run's side directory (the CLI's side output).
    pub side_dir: &'a Path,
    /// What the invocation let the agent do ([`super::Invocation::access`]).
    pub access: Option<String>,
    /// The session this attempt continued, and what that session had
    /// reported before (for CLIs that report a session's total).
    pub continued: Option<(&'a str, Usage)>,
}

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
    attempt: &Attempt<'_>,
    outcome: &ProcessOutcome,
    budget_stop: Option<String>,
) -> AgentReport {
    let stdout = read_lossy(attempt.stdout);
    let stderr = read_lossy(attempt.stderr);
    let exit_ok = matches!(outcome.exit, process::ExitKind::Code(0));
    let cli = cli_for(agent.adapter);
    let Some(mut parser) = parse(agent.adapter, attempt.worktree, &stdout, &stderr) else {
        return AgentReport::default();
    };
    if let Some(path) = cli.side_output(attempt.side_dir, attempt.number) {
        parser.side_output(&read_lossy(&path));
    }
    let mut activity = parser.activity();
    activity.access = attempt.access.clone();
    activity.session = parser.session();
    if let Some((session, before)) = attempt.continued {
        activity.continued = true;
        if cli.cumulative_usage() && activity.session.as_deref() == Some(session) {
            since(&mut activity, before);
        }
    }
    let mut out = AgentReport::default();
    check_budget(agent, brief, budget_stop, &mut activity, &mut out);
    let name = cli.name();
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

/// Makes a continued session's totals this attempt's own: what the
/// session had reported `before` is taken off.
fn since(activity: &mut AgentActivity, before: Usage) {
    let less =
        |now: Option<u64>, then: Option<u64>| now.map(|n| n.saturating_sub(then.unwrap_or(0)));
    activity.input_tokens = less(activity.input_tokens, before.input_tokens);
    activity.output_tokens = less(activity.output_tokens, before.output_tokens);
    if let (Some(now), Some(then)) = (activity.cost_usd, before.cost_usd) {
        activity.cost_usd = Some((now - then).max(0.0));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continued_session_counts_only_its_own_tokens() {
        let mut a = AgentActivity {
            input_tokens: Some(300),
            output_tokens: Some(60),
            ..AgentActivity::default()
        };
        since(
            &mut a,
            Usage {
                input_tokens: Some(200),
                output_tokens: Some(40),
                cost_usd: None,
            },
        );
        assert_eq!((a.input_tokens, a.output_tokens), (Some(100), Some(20)));
    }

    #[test]
    fn a_lost_session_is_told_apart() {
        assert!(crate::agent::session_lost(
            "",
            "No conversation found with session ID: 0a1b"
        ));
        assert!(crate::agent::session_lost(
            "",
            "Error: thread/resume failed: no rollout found for thread id 0a1b (code -32600)"
        ));
        assert!(!crate::agent::session_lost("", "stream disconnected"));
    }
}
