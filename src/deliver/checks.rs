//! The forge's checks of a run or a review: one per brief check, plus
//! `git-agent / scope`, built from the records alone.

use crate::deliver::forge::CheckReport;
use crate::model::event::{Event, EventKind, VerdictRecord};
use crate::model::review::ReviewReport;
use crate::model::store::RunRecord;

/// One report per check of the last attempt, plus `git-agent / scope`.
pub fn check_reports(record: &RunRecord, events: &[Event], commit: &str) -> Vec<CheckReport> {
    let mut out = last_attempt_checks(events, commit);
    let bad = scope_problems(events);
    let scope_passed = bad.lines.is_empty();
    out.push(CheckReport {
        name: "git-agent / scope".into(),
        head_sha: commit.to_string(),
        passed: scope_passed,
        summary: if scope_passed {
            "every change is inside the brief's write scope".into()
        } else if bad.paths.len() == bad.lines.len() {
            format!("{} path(s) outside the scope", bad.paths.len())
        } else {
            format!("{} problem(s) with the scope", bad.lines.len())
        },
        text: (!scope_passed).then(|| bad.lines.join("\n")),
        started_at: None,
        completed_at: record.finished_at.clone(),
    });
    out
}

/// A report for each check that finished in the last attempt.
fn last_attempt_checks(events: &[Event], commit: &str) -> Vec<CheckReport> {
    let last = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CheckFinished { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .max();
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CheckFinished {
                attempt,
                name,
                command,
                passed,
                exit_code,
                timed_out,
                duration_ms,
                output_tail,
            } if Some(*attempt) == last => Some(CheckReport {
                name: format!("git-agent / {name}"),
                head_sha: commit.to_string(),
                passed: *passed,
                summary: format!(
                    "`{command}` {} in {:.1}s (attempt {attempt})",
                    if *timed_out {
                        "timed out".to_string()
                    } else {
                        match exit_code {
                            Some(0) => "passed".to_string(),
                            Some(c) => format!("exited {c}"),
                            None => "was killed".to_string(),
                        }
                    },
                    *duration_ms as f64 / 1000.0
                ),
                text: (!passed && !output_tail.is_empty())
                    .then(|| crate::report::escape::block(output_tail, "")),
                started_at: started_at(&e.ts, *duration_ms),
                completed_at: Some(e.ts.clone()),
            }),
            _ => None,
        })
        .collect()
}

/// What the scope check reports: each offending path once (however many
/// attempts and events name it), and each violation that names no path.
struct ScopeProblems {
    paths: Vec<String>,
    lines: Vec<String>,
}

/// The run's violations and its out-of-scope or denied changes, a line per
/// path (its first description) and per pathless violation.
fn scope_problems(events: &[Event]) -> ScopeProblems {
    let mut found = ScopeProblems {
        paths: Vec::new(),
        lines: Vec::new(),
    };
    let mut add = |path: Option<&str>, line: String| {
        match path {
            Some(p) if found.paths.iter().any(|q| q == p) => return,
            Some(p) => found.paths.push(p.to_string()),
            None if found.lines.contains(&line) => return,
            None => {}
        }
        found.lines.push(line);
    };
    for e in events {
        match &e.kind {
            EventKind::Violation { what, path, .. } => match path {
                Some(p) => add(Some(p), format!("{what}: {p}")),
                None => add(None, what.clone()),
            },
            EventKind::ScopeReport { changes, .. } => {
                for c in changes {
                    let verdict = match &c.verdict {
                        VerdictRecord::OutOfScope => "out_of_scope",
                        VerdictRecord::Denied { .. } => "denied",
                        VerdictRecord::Allowed { .. } => continue,
                    };
                    add(Some(&c.path), format!("{verdict}: {}", c.path));
                }
            }
            _ => {}
        }
    }
    found
}

/// The commit-status / check-run reports of a review, for `--post`.
pub fn review_check_reports(report: &ReviewReport) -> Vec<CheckReport> {
    let mut out: Vec<CheckReport> = report
        .checks
        .iter()
        .map(|c| CheckReport {
            name: format!("git-agent / {}", c.name),
            head_sha: report.head.clone(),
            passed: c.passed,
            summary: format!(
                "`{}` {} in {:.1}s (review)",
                c.command,
                if c.passed {
                    "passed".to_string()
                } else {
                    c.exit_short()
                },
                c.duration_ms() as f64 / 1000.0
            ),
            text: (!c.failing_tail().is_empty())
                .then(|| crate::report::escape::block(c.failing_tail(), "")),
            started_at: None,
            completed_at: None,
        })
        .collect();
    let scope_ok = report.violations.is_empty();
    out.push(CheckReport {
        name: "git-agent / scope".into(),
        head_sha: report.head.clone(),
        passed: scope_ok,
        summary: if scope_ok && report.needs_human.is_empty() {
            format!(
                "all {} changes are inside the brief's write scope",
                report.changes.len()
            )
        } else if scope_ok {
            format!(
                "in scope; a human must look: {}",
                report.needs_human.join("; ")
            )
        } else {
            format!("{} problem(s) with the scope", report.violations.len())
        },
        text: (!scope_ok).then(|| report.violations.join("\n")),
        started_at: None,
        completed_at: None,
    });
    out
}

/// When a check that ended at `ended` (RFC 3339) and took `ms` started.
fn started_at(ended: &str, ms: u64) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let end = time::OffsetDateTime::parse(ended, &Rfc3339).ok()?;
    (end - time::Duration::milliseconds(ms as i64))
        .format(&Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{ChangeKindRecord, ScopedChange};

    fn event(kind: EventKind) -> Event {
        Event {
            v: 1,
            ts: "2026-11-25T12:00:00Z".into(),
            kind,
        }
    }

    /// One path out of scope, named by a violation and by the scope report
    /// of two attempts, is one path.
    #[test]
    fn the_scope_check_counts_paths_not_events() {
        let outside = || ScopedChange {
            path: "README.md".into(),
            old_path: None,
            kind: ChangeKindRecord::Modified,
            lines_added: 1,
            lines_removed: 0,
            verdict: VerdictRecord::OutOfScope,
            symlink_target: None,
        };
        let mut events = Vec::new();
        for attempt in 1..=2 {
            events.push(event(EventKind::ScopeReport {
                attempt,
                changes: vec![outside()],
            }));
            events.push(event(EventKind::Violation {
                attempt,
                what: "changed a path outside the scope".into(),
                path: Some("README.md".into()),
            }));
        }
        let bad = scope_problems(&events);
        assert_eq!(bad.paths, ["README.md"]);
        assert_eq!(bad.lines, ["out_of_scope: README.md"]);
    }
}
