//! A run as it goes, one line per event (`git agent log --follow`): what
//! started, what the agent did (files, commands and their exit codes, as the
//! adapter parsed them), each decision and violation, each check's result,
//! the commit, the delivery and the end. Plain text; the terminal layer
//! cleans it.

use std::time::Duration;

use crate::model::event::{Event, EventKind};

/// The line `event` is worth, if any.
pub fn line(event: &Event) -> Option<String> {
    match &event.kind {
        EventKind::AgentActivity { .. } | EventKind::AgentFinished { .. } => {
            agent_line(&event.kind)
        }
        EventKind::CheckFinished { .. } | EventKind::AttemptFailed { .. } => {
            check_line(&event.kind)
        }
        EventKind::Committed { .. }
        | EventKind::CommitPending { .. }
        | EventKind::Escalated { .. }
        | EventKind::Delivered { .. }
        | EventKind::DeliveryFailed { .. }
        | EventKind::Landed { .. }
        | EventKind::RunFinished { .. } => end_line(&event.kind),
        kind => start_line(kind),
    }
}

fn secs(ms: u64) -> String {
    crate::spec::duration::short(Duration::from_millis(ms))
}

/// The run's start, its attempts, decisions and violations.
fn start_line(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::RunStarted {
            task,
            agent,
            base_ref,
            ..
        } => {
            format!("started {task} with agent `{agent}` from {base_ref}")
        }
        EventKind::WorktreeReady { path, ms, .. } => {
            format!("worktree ready in {}: {path}", secs(*ms))
        }
        EventKind::AttemptStarted { attempt } => format!("attempt {attempt}"),
        EventKind::WorkspaceReady { copied, port, .. } => {
            let mut s = format!("workspace: {} file(s) copied", copied.len());
            if let Some(port) = port {
                s.push_str(&format!(", GIT_AGENT_PORT={port}"));
            }
            s
        }
        EventKind::SetupFinished {
            name, cached, ms, ..
        } => {
            if *cached {
                format!("setup `{name}`: cached")
            } else {
                format!("setup `{name}`: ran in {}", secs(*ms))
            }
        }
        EventKind::Resumed { attempt } => format!("resumed at attempt {attempt}"),
        EventKind::Decision { attempt, decision } => {
            format!("attempt {attempt}: decided: {}", decision.summary)
        }
        EventKind::Violation {
            attempt,
            what,
            path,
        } => match path {
            Some(p) => format!("attempt {attempt}: violation: {what} {p}"),
            None => format!("attempt {attempt}: violation: {what}"),
        },
        _ => return None,
    })
}

/// What the agent did (as its adapter parsed it) and how it ended.
fn agent_line(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::AgentActivity { attempt, activity } => {
            let mut said: Vec<String> = activity
                .files_edited
                .iter()
                .map(|f| format!("attempt {attempt}: edited {f}"))
                .collect();
            said.extend(activity.commands.iter().map(|c| match c.exit_code {
                Some(code) => format!("attempt {attempt}: ran `{}` (exit {code})", c.command),
                None => format!("attempt {attempt}: ran `{}`", c.command),
            }));
            (!said.is_empty()).then(|| said.join("\n"))
        }
        EventKind::AgentFinished {
            attempt,
            exit_code,
            signal,
            timed_out,
            duration_ms,
            ..
        } => {
            let how = match (exit_code, signal, timed_out) {
                (_, _, true) => "hit the time limit".to_string(),
                (Some(code), _, _) => format!("exited {code}"),
                (None, Some(sig), _) => format!("was killed by signal {sig}"),
                (None, None, _) => "ended".to_string(),
            };
            Some(format!(
                "attempt {attempt}: the agent {how} after {}",
                secs(*duration_ms)
            ))
        }
        _ => None,
    }
}

/// Each check's result, and an attempt's failure.
fn check_line(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::CheckFinished {
            attempt,
            name,
            passed,
            exit_code,
            timed_out,
            duration_ms,
            ..
        } => {
            let verdict = match (passed, timed_out, exit_code) {
                (true, _, _) => "passed".to_string(),
                (false, true, _) => "timed out".to_string(),
                (false, false, Some(code)) => format!("failed (exit {code})"),
                (false, false, None) => "failed".to_string(),
            };
            Some(format!(
                "attempt {attempt}: check `{name}` {verdict} in {}",
                secs(*duration_ms)
            ))
        }
        EventKind::AttemptFailed { attempt, reason } => {
            Some(format!("attempt {attempt} failed: {reason}"))
        }
        _ => None,
    }
}

/// The commit, the delivery and the end.
fn end_line(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Committed { branch, commit } => {
            format!(
                "committed {} to {branch}",
                commit.get(..12).unwrap_or(commit)
            )
        }
        EventKind::CommitPending { error, .. } => format!("could not commit: {error}"),
        EventKind::Escalated { reason } => format!("escalated: {reason}"),
        EventKind::Delivered { mode, url, .. } => match url {
            Some(url) => format!("delivered ({mode}): {url}"),
            None => format!("delivered ({mode})"),
        },
        EventKind::DeliveryFailed { reason, .. } => format!("delivery failed: {reason}"),
        EventKind::Landed { landing } => format!(
            "landed on {} at {}",
            landing.branch,
            landing.new_tip.get(..12).unwrap_or(&landing.new_tip)
        ),
        EventKind::RunFinished {
            outcome,
            duration_ms,
            reason,
        } => {
            let after = format!(
                "finished: {} after {}",
                outcome.outcome(),
                secs(*duration_ms)
            );
            match reason {
                Some(reason) => format!("{after} — {reason}"),
                None => after,
            }
        }
        _ => return None,
    })
}
