//! Running as a GitHub Actions step: the job summary and the step outputs.
//!
//! When `GITHUB_ACTIONS=true`, `git agent run` appends a table of the runs
//! and each run's decision log to `$GITHUB_STEP_SUMMARY`, and writes the
//! step outputs `runs` (the `--json` array), `outcome` (the worst outcome)
//! and `pull-requests` (one URL per line) to `$GITHUB_OUTPUT`, in the
//! runner's `name<<DELIMITER` form. Everything else — scope, checks,
//! delivery — is the same as on a laptop.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::model::store::{RunRecord, State, Store};

/// GitHub's limit on one step's summary, in bytes.
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

/// A runner file (summary, outputs) that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("could not write {}: {error}", path.display())]
pub struct PublishError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Where the runner wants the step's results, from its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runner {
    pub summary: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

impl Runner {
    /// `Some` when running as an Actions step (`GITHUB_ACTIONS=true`).
    pub fn detect(env: impl Fn(&str) -> Option<String>) -> Option<Runner> {
        if env("GITHUB_ACTIONS").as_deref() != Some("true") {
            return None;
        }
        let path = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Some(Runner {
            summary: path("GITHUB_STEP_SUMMARY"),
            output: path("GITHUB_OUTPUT"),
        })
    }

    /// Appends the summary and the outputs. Errors name the file.
    pub fn publish(&self, store: &Store, records: &[&RunRecord]) -> Result<(), PublishError> {
        if let Some(path) = &self.summary {
            append(path, summary(store, records).as_bytes())?;
        }
        if let Some(path) = &self.output {
            append(path, outputs(records).as_bytes())?;
        }
        Ok(())
    }

    /// A review's report in the summary; `verdict` and `report` (JSON) as
    /// outputs.
    pub fn publish_review(
        &self,
        report: &crate::model::review::ReviewReport,
        text: &str,
    ) -> Result<(), PublishError> {
        if let Some(path) = &self.summary {
            let md = format!("## git-agent review\n\n```\n{}\n```\n", text.trim_end());
            append(path, md.as_bytes())?;
        }
        if let Some(path) = &self.output {
            let verdict = serde_json::to_value(report.verdict)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let json = serde_json::to_string(report).unwrap_or_default();
            append(
                path,
                multiline(&[("verdict", verdict.as_str()), ("report", json.as_str())]).as_bytes(),
            )?;
        }
        Ok(())
    }
}

fn append(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|error| PublishError {
            path: path.to_path_buf(),
            error,
        })
}

/// The worst outcome among `records`, in the order of the exit codes.
pub fn overall(records: &[&RunRecord]) -> &'static str {
    let any = |s: State| records.iter().any(|r| r.effective_state() == s);
    if records.is_empty() {
        "none"
    } else if any(State::Interrupted) {
        "interrupted"
    } else if any(State::Failed) {
        "failed"
    } else if any(State::Escalated) {
        "escalated"
    } else {
        "succeeded"
    }
}

/// The step outputs in the runner's multi-line form.
pub fn outputs(records: &[&RunRecord]) -> String {
    let runs: Vec<_> = records
        .iter()
        .map(|r| crate::report::json::to_json(r))
        .collect();
    let json = serde_json::to_string(&runs).unwrap_or_else(|_| "[]".into());
    let prs: Vec<&str> = records
        .iter()
        .filter_map(|r| r.delivery.as_ref())
        .filter_map(|d| d.pr_url.as_deref().or(d.issue_url.as_deref()))
        .collect();
    multiline(&[
        ("runs", json.as_str()),
        ("outcome", overall(records)),
        ("pull-requests", &prs.join("\n")),
    ])
}

/// `name<<DELIMITER\nvalue\nDELIMITER` entries.
fn multiline(entries: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in entries {
        // A delimiter no value can contain, so no value can end the entry
        // early and set another output.
        let mut delimiter = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        while value.contains(&delimiter) {
            delimiter = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        }
        let _ = write!(out, "{name}<<{delimiter}\n{value}\n{delimiter}\n");
    }
    out
}

/// The job summary: a table of the runs, then each decision log folded.
pub fn summary(store: &Store, records: &[&RunRecord]) -> String {
    summary_of(records, &|r| {
        store.open(&r.run_id).read_events().unwrap_or_default()
    })
}

/// [`summary`] of records from anywhere (`git agent report`: run records
/// other machines made), each run's events from `events`.
pub fn summary_of(
    records: &[&RunRecord],
    events: &dyn Fn(&RunRecord) -> Vec<crate::model::event::Event>,
) -> String {
    let mut md = String::from(
        "## git-agent\n\n| Task | Outcome | Checks | Branch | Delivered |\n|---|---|---|---|---|\n",
    );
    for r in records {
        let passed = r.checks.iter().filter(|c| c.passed).count();
        let delivered = match &r.delivery {
            Some(d) if d.failed() => "⚠️ failed".to_string(),
            Some(d) => d
                .issue_url
                .as_ref()
                .or(d.pr_url.as_ref())
                .map(|u| format!("[{}]({u})", short_url(u)))
                .unwrap_or_else(|| d.mode.to_string()),
            None => "-".into(),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} {} | {}/{} | {} | {} |",
            r.task,
            icon(r.effective_state()),
            r.effective_state().outcome(),
            passed,
            r.checks.len(),
            r.branch
                .as_deref()
                .map(|b| format!("`{b}`"))
                .unwrap_or_else(|| "-".into()),
            delivered
        );
    }
    md.push('\n');
    md.push_str(&conflicts(records));
    let mut logs = String::new();
    for r in records {
        let events = events(r);
        let log = crate::report::markdown::render_markdown(r, &events);
        let _ = write!(
            logs,
            "<details><summary>Decision log: <code>{}</code> ({})</summary>\n\n{log}\n</details>\n\n",
            r.task,
            r.effective_state().outcome()
        );
    }
    if md.len() + logs.len() > SUMMARY_LIMIT {
        logs = "_The decision logs exceed the job summary's 1 MiB limit; `git agent log RUN` shows each._\n".into();
    }
    md + &logs
}

/// A line per result that does not merge with another's beside it.
fn conflicts(records: &[&RunRecord]) -> String {
    let mut md = String::new();
    for r in records {
        for c in &r.conflicts {
            let _ = writeln!(
                md,
                "- ⚠️ `{}` {}",
                r.task,
                crate::report::escape::message(&c.describe())
            );
        }
    }
    if !md.is_empty() {
        md.push('\n');
    }
    md
}

fn icon(state: State) -> &'static str {
    match state {
        State::Succeeded => "✅",
        State::Escalated => "✋",
        State::Interrupted => "⏹️",
        _ => "❌",
    }
}

/// `owner/repo#12` for a pull request or issue URL.
fn short_url(url: &str) -> String {
    let parts: Vec<&str> = url.trim_end_matches('/').rsplit('/').take(4).collect();
    match parts.as_slice() {
        [n, "pull" | "issues", repo, owner] => format!("{owner}/{repo}#{n}"),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_runner_only_under_actions() {
        let env = |pairs: &'static [(&str, &str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Runner::detect(env(&[])), None);
        assert_eq!(Runner::detect(env(&[("GITHUB_ACTIONS", "false")])), None);
        assert_eq!(
            Runner::detect(env(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_OUTPUT", "/o"),
                ("GITHUB_STEP_SUMMARY", "")
            ])),
            Some(Runner {
                summary: None,
                output: Some("/o".into())
            })
        );
    }

    #[test]
    fn short_urls() {
        assert_eq!(
            short_url("https://github.com/octo/hello/pull/12"),
            "octo/hello#12"
        );
        assert_eq!(
            short_url("https://github.com/octo/hello/issues/7"),
            "octo/hello#7"
        );
        assert_eq!(short_url("https://x.test/a"), "https://x.test/a");
    }
}
