//! Delivering a finished run: push the branch and `refs/notes/agent`, open
//! or update the pull request (body = the decision log), post the brief's
//! checks and the scope verdict as checks, and make an escalated run a
//! draft that asks for a human.
//!
//! Works from `run.json` and `events.jsonl` only, so `git agent deliver RUN`
//! can retry it later. A failure is recorded, never fatal to the run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::brief::Deliver;
use crate::forge::github::{GitHub, RetryPolicy};
use crate::forge::push::{push, PushSpec};
use crate::forge::{parse_remote_url, CheckReport, Forge, ForgeError, PrSpec};
use crate::log::{render_markdown, Event, EventKind};
use crate::store::{RunRecord, State};

/// GitHub's limit on a pull request body, in characters.
pub const BODY_LIMIT: usize = 65_536;
/// The label of an escalated run's pull request.
pub const NEEDS_HUMAN: &str = "needs-human";

/// `run.json`'s `delivery`: what was asked and how it went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeliveryRecord {
    /// `push`, `pr` or `draft-pr`.
    pub mode: String,
    /// The branch the pull request targets.
    pub base: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<String>,
}

impl DeliveryRecord {
    pub fn new(deliver: Deliver, base: &str, labels: &[String], reviewers: &[String]) -> Self {
        DeliveryRecord {
            mode: match deliver {
                Deliver::Branch => "branch",
                Deliver::Push => "push",
                Deliver::Pr => "pr",
                Deliver::DraftPr => "draft-pr",
            }
            .to_string(),
            base: base.to_string(),
            labels: labels.to_vec(),
            reviewers: reviewers.to_vec(),
            state: "pending".into(),
            ..Default::default()
        }
    }

    pub fn failed(&self) -> bool {
        self.state == "failed"
    }
}

/// Where and with what to deliver.
#[derive(Debug, Clone)]
pub struct Target {
    /// The repository's git directory.
    pub git_dir: std::path::PathBuf,
    /// The remote pushed to (default `origin`).
    pub remote: String,
    /// The remote's URL (owner/repo/host are read from it).
    pub remote_url: String,
    /// A configured API base URL (GitHub Enterprise, tests).
    pub api_url: Option<String>,
    /// The token and the variable it came from.
    pub token: Option<(String, String)>,
    pub retry: RetryPolicy,
}

impl Target {
    /// Reads `origin` and the token (`token_env`, else `GITHUB_TOKEN`, else
    /// `GH_TOKEN`) from `env` — the orchestrator's environment.
    pub fn discover(
        git_dir: &Path,
        api_url: Option<String>,
        token_env: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Target, String> {
        let repo = git2::Repository::open(git_dir)
            .map_err(|e| format!("could not open the repository: {}", e.message()))?;
        let remote = repo
            .find_remote("origin")
            .map_err(|_| "the repository has no `origin` remote".to_string())?;
        let remote_url = match remote.pushurl() {
            Ok(Some(url)) => url.to_string(),
            _ => remote
                .url()
                .map_err(|_| "`origin` has no usable URL".to_string())?
                .to_string(),
        };
        let names: Vec<&str> = match token_env {
            Some(n) => vec![n],
            None => vec!["GITHUB_TOKEN", "GH_TOKEN"],
        };
        let token = names.iter().find_map(|n| {
            env.iter()
                .find(|(k, v)| k == n && !v.is_empty())
                .map(|(k, v)| (v.clone(), k.clone()))
        });
        Ok(Target {
            git_dir: git_dir.to_path_buf(),
            remote: "origin".into(),
            remote_url,
            api_url,
            token,
            retry: RetryPolicy::default(),
        })
    }
}

/// Delivers `record` (whose `delivery` says how); returns the updated
/// delivery record, `state` `delivered` or `failed` with the reason.
pub async fn deliver(target: &Target, record: &RunRecord, events: &[Event]) -> DeliveryRecord {
    let mut delivery = record
        .delivery
        .clone()
        .unwrap_or_else(|| DeliveryRecord::new(Deliver::Pr, &record.base_ref, &[], &[]));
    delivery.attempted_at = Some(crate::log::now_rfc3339());
    delivery.notices.clear();
    match deliver_inner(target, record, events, &mut delivery).await {
        Ok(()) => {
            delivery.state = "delivered".into();
            delivery.reason = None;
        }
        Err(reason) => {
            delivery.state = "failed".into();
            delivery.reason = Some(reason);
        }
    }
    delivery
}

async fn deliver_inner(
    target: &Target,
    record: &RunRecord,
    events: &[Event],
    delivery: &mut DeliveryRecord,
) -> Result<(), String> {
    let (Some(branch), Some(commit)) = (&record.branch, &record.commit) else {
        return Err("the run has no branch to deliver".into());
    };
    let token = target.token.as_ref().map(|(t, _)| t.as_str());
    let scrub: Vec<String> = ["GITHUB_TOKEN", "GH_TOKEN"]
        .iter()
        .map(|s| s.to_string())
        .chain(target.token.as_ref().map(|(_, n)| n.clone()))
        .collect();
    let git_dir = target.git_dir.clone();
    let remote = target.remote.clone();
    let branch_ref = format!("+refs/heads/{branch}:refs/heads/{branch}");
    let token_owned = token.map(str::to_string);
    let scrub2 = scrub.clone();
    let pushed = tokio::task::spawn_blocking(move || {
        let spec = PushSpec {
            git_dir: &git_dir,
            remote: &remote,
            refspecs: vec![branch_ref],
            scrub_env: scrub2.clone(),
        };
        push(&spec, token_owned.as_deref())?;
        // The notes are a log, not the deliverable: a rejected notes push
        // (someone else's notes moved on) is a notice, not a failure.
        let notes = PushSpec {
            git_dir: &git_dir,
            remote: &remote,
            refspecs: vec!["refs/notes/agent:refs/notes/agent".into()],
            scrub_env: scrub2,
        };
        Ok::<_, ForgeError>(push(&notes, token_owned.as_deref()).err())
    })
    .await
    .map_err(|e| format!("push task: {e}"))?
    .map_err(|e| e.to_string())?;
    if let Some(e) = pushed {
        delivery
            .notices
            .push(format!("the decision-log notes were not pushed: {e}"));
    }
    if delivery.mode == "push" || delivery.mode == "branch" {
        return Ok(());
    }
    let token = token.ok_or("no token: set GITHUB_TOKEN or GH_TOKEN (or `github.token_env`)")?;
    let repo = parse_remote_url(&target.remote_url)?;
    let api = repo.api_url(target.api_url.as_deref());
    let gh = GitHub::new(&api, repo, token.to_string(), target.retry).map_err(|e| e.to_string())?;
    let result = deliver_pr(&gh, record, events, branch, commit, delivery).await;
    delivery.notices.extend(gh.take_notices());
    result.map_err(|e| e.to_string())
}

/// The pull-request part, on any forge.
pub async fn deliver_pr(
    forge: &impl Forge,
    record: &RunRecord,
    events: &[Event],
    branch: &str,
    commit: &str,
    delivery: &mut DeliveryRecord,
) -> Result<(), ForgeError> {
    let escalated = record.state == State::Escalated;
    let body = pr_body(&render_markdown(record, events), BODY_LIMIT);
    let spec = PrSpec {
        head: branch.to_string(),
        base: delivery.base.clone(),
        title: record.title.clone(),
        body,
        draft: escalated || delivery.mode == "draft-pr",
    };
    let (pr, created) = forge.open_or_update_pr(&spec).await?;
    delivery.pr_url = Some(pr.url.clone());
    delivery.pr_number = Some(pr.number);
    if spec.draft && !pr.draft {
        delivery.notices.push(format!(
            "pull request #{} is not a draft; GitHub's REST API cannot make it one",
            pr.number
        ));
    }
    let mut labels = delivery.labels.clone();
    if escalated && !labels.iter().any(|l| l == NEEDS_HUMAN) {
        labels.push(NEEDS_HUMAN.into());
    }
    forge.add_labels(pr.number, &labels).await?;
    if created {
        forge
            .request_reviewers(pr.number, &delivery.reviewers)
            .await?;
    }
    for check in check_reports(record, events, commit) {
        forge.post_check(&check).await?;
    }
    if escalated {
        let why = record.reason.as_deref().unwrap_or("the run escalated");
        forge
            .comment(
                pr.number,
                &format!(
                    "**git-agent escalated this run and needs a human.**\n\nTrigger: {why}\n\nRun `{}`; the decision log is the description above.",
                    record.run_id
                ),
            )
            .await?;
    }
    Ok(())
}

/// One report per check of the last attempt, plus `git-agent / scope`.
pub fn check_reports(record: &RunRecord, events: &[Event], commit: &str) -> Vec<CheckReport> {
    let last = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CheckFinished { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .max();
    let mut out: Vec<CheckReport> = events
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
                    .then(|| format!("```\n{output_tail}\n```")),
                started_at: None,
                completed_at: Some(e.ts.clone()),
            }),
            _ => None,
        })
        .collect();
    let mut bad: Vec<String> = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::Violation { what, path, .. } => bad.push(match path {
                Some(p) => format!("{what}: {p}"),
                None => what.clone(),
            }),
            EventKind::ScopeReport { changes, .. } => {
                for c in changes {
                    let v = serde_json::to_value(c).unwrap_or_default();
                    let verdict = v.get("verdict").and_then(|v| v.as_str()).unwrap_or("");
                    if verdict == "out_of_scope" || verdict == "denied" {
                        bad.push(format!("{verdict}: {}", c.path));
                    }
                }
            }
            _ => {}
        }
    }
    bad.dedup();
    let scope_passed = bad.is_empty();
    out.push(CheckReport {
        name: "git-agent / scope".into(),
        head_sha: commit.to_string(),
        passed: scope_passed,
        summary: if scope_passed {
            "every change is inside the brief's write scope".into()
        } else {
            format!("{} change(s) outside the scope", bad.len())
        },
        text: (!scope_passed).then(|| bad.join("\n")),
        started_at: None,
        completed_at: record.finished_at.clone(),
    });
    out
}

/// The body within `limit` characters: the longest `## ` sections are
/// folded first (replaced by a line saying so), and a note says it was trimmed.
pub fn pr_body(markdown: &str, limit: usize) -> String {
    if markdown.chars().count() <= limit {
        return markdown.to_string();
    }
    // Split into a preamble and `## ` sections.
    let mut sections: Vec<String> = vec![String::new()];
    for line in markdown.split_inclusive('\n') {
        if line.starts_with("## ") {
            sections.push(String::new());
        }
        sections.last_mut().expect("one section").push_str(line);
    }
    let note = "> **Trimmed to fit GitHub's 65,536-character limit**: the longest sections are folded; `git agent log` shows the whole decision log.\n\n";
    let mut folded = vec![false; sections.len()];
    let total =
        |s: &[String]| note.chars().count() + s.iter().map(|x| x.chars().count()).sum::<usize>();
    while total(&sections) > limit {
        let Some((i, _)) = sections
            .iter()
            .enumerate()
            .filter(|(i, _)| !folded[*i])
            .max_by_key(|(_, s)| s.chars().count())
        else {
            break;
        };
        let s = &sections[i];
        let heading = if s.starts_with("## ") {
            s.lines().next().unwrap_or("").to_string()
        } else {
            String::new()
        };
        let size = s.chars().count();
        sections[i] = format!(
            "{}\n_Folded: {size} characters; see `git agent log`._\n\n",
            if heading.is_empty() {
                "".to_string()
            } else {
                format!("{heading}\n")
            }
        );
        folded[i] = true;
    }
    let mut out = String::from(note);
    for s in &sections {
        out.push_str(s);
    }
    if out.chars().count() > limit {
        out = out.chars().take(limit.saturating_sub(2)).collect();
        out.push_str("\n…");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_under_the_limit_is_untouched() {
        assert_eq!(pr_body("# t\n\n## a\nx\n", 100), "# t\n\n## a\nx\n");
    }

    #[test]
    fn longest_sections_fold_first() {
        let md = format!(
            "# Run\n\n## Small\nok\n\n## Huge\n{}\n\n## Medium\n{}\n",
            "h".repeat(80_000),
            "m".repeat(3_000)
        );
        let body = pr_body(&md, BODY_LIMIT);
        assert!(body.chars().count() <= BODY_LIMIT);
        assert!(body.contains("Trimmed to fit"));
        assert!(body.contains("## Huge\n\n_Folded: "));
        assert!(
            body.contains(&"m".repeat(3_000)),
            "the medium section stays"
        );
        assert!(body.contains("## Small\nok"));
    }
}
