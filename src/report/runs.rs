//! Runs as a table (`status`, `status --watch`, the plain `watch`): one
//! row per run with its id, task, state, start, duration, checks, branch.

use std::time::Duration;

use crate::model::store::{RunRecord, State};

/// The latest run of each task, and every run still queued or working (a
/// queued run behind a running one of the same task hides neither).
pub fn shown(all: Vec<RunRecord>) -> Vec<RunRecord> {
    let mut shown: Vec<RunRecord> = Vec::new();
    for r in all.into_iter().rev() {
        let latest = !shown.iter().any(|l| l.task == r.task);
        if latest || !r.effective_state().is_terminal() {
            shown.push(r);
        }
    }
    shown.reverse();
    shown
}

/// The aligned table with its header.
pub fn table(records: &[RunRecord]) -> String {
    let header = [
        "RUN", "TASK", "STATE", "STARTED", "DURATION", "CHECKS", "BRANCH",
    ];
    let rows: Vec<Vec<String>> = records.iter().map(row).collect();
    align(&header, &rows)
}

/// `header` and `rows` as columns two spaces apart, each as wide as its
/// widest cell; no trailing blanks.
pub fn align(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        format!("{}\n", text.join("  ").trim_end())
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

/// How long the run took, or has taken so far.
pub fn duration(r: &RunRecord) -> Option<Duration> {
    let state = r.effective_state();
    let ms = match (r.duration_ms, state) {
        (Some(ms), _) => Some(ms),
        (None, State::Queued) => None,
        (None, s) if !s.is_terminal() => crate::model::time::ms_since(&r.started_at),
        (None, _) => None,
    };
    ms.map(Duration::from_millis)
}

pub fn row(r: &RunRecord) -> Vec<String> {
    let state = r.effective_state();
    let passed = r.checks.iter().filter(|c| c.passed).count();
    vec![
        r.run_id.clone(),
        r.task.clone(),
        state_cell(r),
        if state == State::Queued {
            "-".to_string()
        } else {
            crate::model::time::short(&r.started_at)
        },
        duration(r)
            .map(crate::spec::duration::short)
            .unwrap_or_else(|| "-".into()),
        if r.checks.is_empty() {
            "-".into()
        } else {
            format!("{passed}/{} passed", r.checks.len())
        },
        r.branch.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// `queued`, `agent 2/3`, `checking 1/3`, `delivering`, or the outcome.
pub fn state_cell(r: &RunRecord) -> String {
    let state = r.effective_state();
    match state {
        State::Running | State::Verifying | State::Checking => {
            format!("{} {}/{}", state.as_str(), r.attempts, r.max_attempts)
        }
        s if s.is_terminal() => match &r.delivery {
            Some(d) if d.failed() => format!("{} (delivery failed)", s.outcome()),
            _ => s.outcome().to_string(),
        },
        s => s.as_str().to_string(),
    }
}
