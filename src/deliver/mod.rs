//! Delivering a finished run: push the branch and `refs/notes/agent`, open
//! or update the pull request (body = the decision log), post the brief's
//! checks and the scope verdict as checks, and make an escalated run a
//! draft that asks for a human — or, with `escalate.fallback: issue`, an
//! issue instead of any pull request.
//!
//! The branch is pushed with a lease: the remote branch must be absent, be
//! an ancestor of the new commit, or be a commit git-agent made for the same
//! task; anything else (a human's commit) is never overwritten.
//!
//! Works from `run.json` and `events.jsonl` only, so `git agent deliver RUN`
//! can retry it later. A failure is recorded, never fatal to the run.

mod checks;
pub mod forge;
mod notes;

pub use checks::{check_reports, review_check_reports};

use std::path::{Path, PathBuf};

use crate::engine::run::{Deliverer, Delivering};
use crate::spec::config::GithubConfig;

use crate::deliver::forge::github::{GitHub, RetryPolicy};
use crate::deliver::forge::push::{fetch_objects, push, remote_ref, PushSpec};
use crate::deliver::forge::{
    parse_remote_url, CheckReport, Forge, ForgeError, IssueSpec, PrSpec, RemoteUrlError,
};
use crate::model::delivery::{DeliveryRecord, DeliveryState};
use crate::model::event::Event;
use crate::model::store::{RunRecord, State};
use crate::report::fold::fit;
use crate::report::markdown::render_markdown;

/// GitHub's limit on a pull request body, in characters.
pub const BODY_LIMIT: usize = 65_536;
/// The label of an escalated run's pull request.
pub const NEEDS_HUMAN: &str = "needs-human";

/// The engine's [`Deliverer`]: the forge found from the repository's
/// `origin` and the config's `github:` when the run ends (so a run that
/// needs no delivery never looks for a token).
pub struct ForgeDelivery {
    /// The repository's common git dir.
    pub common_dir: PathBuf,
    pub github: GithubConfig,
    /// The environment the token is read from (git-agent's own).
    pub env_source: Vec<(String, String)>,
}

impl Deliverer for ForgeDelivery {
    fn deliver<'a>(&'a self, record: &'a RunRecord, events: &'a [Event]) -> Delivering<'a> {
        Box::pin(async move {
            let github = &self.github;
            match Target::discover(
                &self.common_dir,
                github.api_url.clone(),
                github.token_env.as_deref(),
                &self.env_source,
            ) {
                Ok(target) => deliver(&target, record, events).await,
                Err(reason) => DeliveryRecord {
                    state: DeliveryState::Failed,
                    reason: Some(reason.to_string()),
                    ..DeliveryRecord::of(record)
                },
            }
        })
    }
}

/// Why a delivery (or a forge call outside one) could not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("no token: set GITHUB_TOKEN or GH_TOKEN (or `github.token_env`)")]
    NoToken,
    #[error(transparent)]
    RemoteUrl(#[from] RemoteUrlError),
    #[error("could not open the repository: {}", .0.message())]
    Open(git2::Error),
    #[error("the repository has no `origin` remote")]
    NoOrigin,
    #[error("`origin` has no usable URL")]
    OriginUrl,
    #[error("the run has no branch to deliver")]
    NoBranch,
    #[error("`{0}` is not a branch a pull request can target: set `base:` in the brief to a branch on the remote")]
    NoBaseBranch(String),
    #[error("pushed {branch} ({commit}), then: {error}")]
    AfterPush {
        branch: String,
        commit: String,
        error: Box<DeliverError>,
    },
    #[error("push task: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

/// Where and with what to deliver.
#[derive(Debug, Clone)]
pub struct Target {
    /// The repository's git directory.
    pub git_dir: std::path::PathBuf,
    /// The remote pushed to (default `origin`).
    pub remote: String,
    /// The remote's push URL (owner/repo/host are read from it).
    pub remote_url: String,
    /// The remote's fetch URL, when it differs from the push URL.
    pub fetch_url: Option<String>,
    /// A configured API base URL (GitHub Enterprise, tests).
    pub api_url: Option<String>,
    /// The token and the variable it came from.
    pub token: Option<(String, String)>,
    pub retry: RetryPolicy,
}

impl Target {
    /// The GitHub client for this remote, with the token.
    pub fn github(&self) -> Result<GitHub, DeliverError> {
        let (token, _) = self.token.as_ref().ok_or(DeliverError::NoToken)?;
        let repo = parse_remote_url(&self.remote_url)?;
        let api = repo.api_url(self.api_url.as_deref());
        Ok(GitHub::new(&api, repo, token.clone(), self.retry)?)
    }

    /// Reads `origin` and the token (`token_env`, else `GITHUB_TOKEN`, else
    /// `GH_TOKEN`) from `env` — the orchestrator's environment.
    pub fn discover(
        git_dir: &Path,
        api_url: Option<String>,
        token_env: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Target, DeliverError> {
        let repo = git2::Repository::open(git_dir).map_err(DeliverError::Open)?;
        let remote = repo
            .find_remote("origin")
            .map_err(|_| DeliverError::NoOrigin)?;
        let url = remote
            .url()
            .map_err(|_| DeliverError::OriginUrl)?
            .to_string();
        let (remote_url, fetch_url) = match remote.pushurl() {
            Ok(Some(push)) if push != url => (push.to_string(), Some(url)),
            _ => (url, None),
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
            fetch_url,
            api_url,
            token,
            retry: RetryPolicy::default(),
        })
    }
}

/// Delivers `record` (whose `delivery` says how); returns the updated
/// delivery record, `state` `delivered` or `failed` with the reason.
pub async fn deliver(target: &Target, record: &RunRecord, events: &[Event]) -> DeliveryRecord {
    let mut delivery = DeliveryRecord::of(record);
    delivery.attempted_at = Some(crate::model::time::now_rfc3339());
    delivery.notices.clear();
    stacked_base(target, record, &mut delivery);
    match deliver_inner(target, record, events, &mut delivery).await {
        Ok(()) => {
            delivery.state = DeliveryState::Delivered;
            delivery.reason = None;
        }
        Err(reason) => {
            delivery.state = DeliveryState::Failed;
            delivery.reason = Some(reason.to_string());
        }
    }
    delivery
}

/// A run stacked on another task's result (`after:`) targets that
/// result's branch until the result has landed in the branch the brief's
/// base names; from then on, that branch.
fn stacked_base(target: &Target, record: &RunRecord, delivery: &mut DeliveryRecord) {
    let Some(chain) = &record.chain else {
        return;
    };
    let (Some(link), Some(onto)) = (chain.stacked_link(), &chain.onto) else {
        return;
    };
    let Some(commit) = link
        .commit
        .as_deref()
        .and_then(|c| git2::Oid::from_str(c).ok())
    else {
        return;
    };
    if delivery.base != link.branch {
        return;
    }
    let landed = crate::git::Repo::discover(&target.git_dir).is_ok_and(|repo| {
        let Ok(git) = repo.open() else { return false };
        [
            format!("refs/heads/{onto}"),
            format!("refs/remotes/origin/{onto}"),
        ]
        .iter()
        .filter_map(|r| git.refname_to_id(r).ok())
        .any(|tip| repo.holds_result(tip, commit).unwrap_or(false))
    });
    if landed {
        delivery.notices.push(format!(
            "`{}` has landed on {onto}: the pull request targets {onto} now, not {}",
            link.task, link.branch
        ));
        delivery.base = onto.clone();
    }
}

/// The branches a pull request of `record` may have been opened onto
/// before (the results it ran after), to be moved from.
fn retarget_from(record: &RunRecord) -> Vec<String> {
    record
        .chain
        .iter()
        .flat_map(|c| c.after.iter().map(|l| l.branch.clone()))
        .collect()
}

async fn deliver_inner(
    target: &Target,
    record: &RunRecord,
    events: &[Event],
    delivery: &mut DeliveryRecord,
) -> Result<(), DeliverError> {
    let as_issue = delivery.as_issue(record);
    let pushed = match (&record.branch, &record.commit) {
        (Some(branch), Some(commit)) => Some((branch.clone(), commit.clone())),
        // An escalated run that committed nothing still reaches a human.
        _ if as_issue => None,
        _ => return Err(DeliverError::NoBranch),
    };
    // Everything a pull request or an issue needs is checked before the
    // first push: a delivery that cannot finish does not start.
    let gh = if delivery.wants_pr() {
        if matches!(delivery.base.as_str(), "" | "HEAD") {
            return Err(DeliverError::NoBaseBranch(delivery.base.clone()));
        }
        Some(target.github()?)
    } else {
        None
    };
    let token = target.token.as_ref().map(|(t, _)| t.clone());
    if let Some((branch, commit)) = &pushed {
        let (target2, branch2, commit2) = (target.clone(), branch.clone(), commit.clone());
        let (task, token2) = (record.task.clone(), token.clone());
        let notice = tokio::task::spawn_blocking(move || {
            push_run(&target2, token2.as_deref(), &branch2, &commit2, &task)
        })
        .await??;
        delivery.pushed = Some(commit.clone());
        delivery.notices.extend(notice);
    }
    let Some(gh) = gh else {
        return Ok(());
    };
    let result = match &pushed {
        _ if as_issue => deliver_issue(&gh, record, events, delivery).await,
        Some((branch, commit)) => deliver_pr(&gh, record, events, branch, commit, delivery).await,
        None => unreachable!("checked above: no commit means an issue"),
    };
    delivery.notices.extend(gh.take_notices());
    match (result, &pushed) {
        (Ok(()), _) => Ok(()),
        // Said as it is: the branch is on the remote.
        (Err(e), Some((branch, commit))) => Err(DeliverError::AfterPush {
            branch: branch.clone(),
            commit: commit[..commit.len().min(12)].to_string(),
            error: Box::new(e.into()),
        }),
        (Err(e), None) => Err(e.into()),
    }
}

/// The token's variables, removed from git's environment.
pub fn scrub_env(target: &Target) -> Vec<String> {
    ["GITHUB_TOKEN", "GH_TOKEN"]
        .iter()
        .map(|s| s.to_string())
        .chain(target.token.as_ref().map(|(_, n)| n.clone()))
        .collect()
}

/// Pushes the run's branch under a lease, then the notes. Returns a notice
/// when the notes could not be pushed (they are a log, not the deliverable).
fn push_run(
    target: &Target,
    token: Option<&str>,
    branch: &str,
    commit: &str,
    task: &str,
) -> Result<Option<String>, ForgeError> {
    let scrub = scrub_env(target);
    let refname = format!("refs/heads/{branch}");
    let remote = remote_ref(&target.git_dir, &target.remote, &refname, &scrub, token)?;
    let expected = match remote.as_deref() {
        None => Some(String::new()),
        Some(sha) if sha == commit => None,
        Some(sha) => {
            may_replace(target, token, &scrub, &refname, sha, commit, task)?;
            Some(sha.to_string())
        }
    };
    if let Some(expected) = expected {
        push(
            &PushSpec {
                git_dir: &target.git_dir,
                remote: &target.remote,
                refspecs: vec![format!("{commit}:{refname}")],
                leases: vec![(refname.clone(), expected)],
                scrub_env: scrub.clone(),
            },
            token,
        )?;
    }
    // Other runners push the notes too: theirs are merged with ours, never
    // overwritten. A notes push that still fails is said, not fatal.
    Ok(notes::push_notes(target, token, &scrub)
        .err()
        .map(|e| format!("the decision-log notes were not pushed: {e}")))
}

/// Whether the remote branch at `theirs` may be replaced by `ours`: when it
/// is an ancestor of ours, or a commit git-agent made for the same task.
/// A commit this repository lacks (pushed from CI or another clone) is
/// fetched first, without writing any ref.
fn may_replace(
    target: &Target,
    token: Option<&str>,
    scrub: &[String],
    refname: &str,
    theirs: &str,
    ours: &str,
    task: &str,
) -> Result<(), ForgeError> {
    let fail = |message: String| ForgeError {
        status: None,
        operation: "pushing".into(),
        message,
        fields: Vec::new(),
    };
    let open = || {
        git2::Repository::open(&target.git_dir)
            .map_err(|e| fail(format!("could not open the repository: {}", e.message())))
    };
    let (Ok(their_oid), Ok(our_oid)) = (git2::Oid::from_str(theirs), git2::Oid::from_str(ours))
    else {
        return Err(fail(format!("bad commit id `{theirs}` from the remote")));
    };
    if open()?.find_commit(their_oid).is_err() {
        let url = target.fetch_url.as_deref().unwrap_or(&target.remote_url);
        fetch_objects(&target.git_dir, url, refname, scrub, token)?;
    }
    let repo = open()?;
    let their_commit = repo.find_commit(their_oid).map_err(|e| {
        fail(format!(
            "the remote's {refname} is at {theirs}, which could not be fetched: {}",
            e.message()
        ))
    })?;
    let fast_forward = repo
        .graph_descendant_of(our_oid, their_oid)
        .unwrap_or(false);
    if fast_forward || crate::git::is_agent_commit(&their_commit, task) {
        return Ok(());
    }
    let short = &theirs[..theirs.len().min(12)];
    let author = their_commit.author();
    Err(fail(format!(
        "the remote's {refname} is at {short} (\"{}\" by {}), which git-agent did not make for task `{task}`; it was left as it is. Look at it, then delete the remote branch or set `output.branch` to another name, and run `git agent deliver` again",
        their_commit.summary().ok().flatten().unwrap_or("").trim(),
        author.name().unwrap_or("someone"),
    )))
}

/// The issue an escalated run opens instead of a pull request.
pub async fn deliver_issue(
    forge: &impl Forge,
    record: &RunRecord,
    events: &[Event],
    delivery: &mut DeliveryRecord,
) -> Result<(), ForgeError> {
    let why = record.reason.as_deref().unwrap_or("the run escalated");
    let work = match (&record.branch, &record.commit) {
        (Some(branch), Some(commit)) => format!(
            "The work so far is on branch `{branch}` (commit {}); no pull request was opened (`escalate.fallback: issue`).",
            &commit[..commit.len().min(12)]
        ),
        _ => "The run committed nothing; no pull request was opened (`escalate.fallback: issue`).".into(),
    };
    let marker = format!("<!-- git-agent task={} -->", record.task);
    let head = format!(
        "**git-agent escalated task `{}` and needs a human.**\n\nTrigger: {}\n\n{work}\n\n---\n\n",
        record.task,
        crate::report::escape::message(why)
    );
    let room = BODY_LIMIT.saturating_sub(head.chars().count() + marker.chars().count() + 2);
    let body = format!(
        "{head}{}\n\n{marker}",
        pr_body(&render_markdown(record, events), room)
    );
    let mut labels = delivery.labels.clone();
    if !labels.iter().any(|l| l == NEEDS_HUMAN) {
        labels.push(NEEDS_HUMAN.into());
    }
    let spec = IssueSpec {
        title: format!("git-agent needs a human: {}", record.title),
        body,
        labels: labels.clone(),
        marker,
        search_label: NEEDS_HUMAN.into(),
    };
    let (issue, created) = forge.open_or_update_issue(&spec).await?;
    if !created {
        forge.add_labels(issue.number, &labels).await?;
    }
    delivery.issue_url = Some(issue.url);
    delivery.issue_number = Some(issue.number);
    Ok(())
}

/// Posts `reports` (checks of a review) for their head commits. Returns
/// the notices (the fallback to statuses).
pub async fn post_checks(
    target: &Target,
    reports: &[CheckReport],
) -> Result<Vec<String>, DeliverError> {
    let gh = target.github()?;
    for report in reports {
        gh.post_check(report).await?;
    }
    Ok(gh.take_notices())
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
        draft: escalated || delivery.mode == crate::model::delivery::Deliver::DraftPr,
        retarget_from: retarget_from(record),
    };
    let (pr, created) = forge.open_or_update_pr(&spec).await?;
    // A retry of this run's delivery, which opened the PR and then failed.
    let retry_of_this_run = delivery.pr_number == Some(pr.number);
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
    if created || (retry_of_this_run && !delivery.reviewers_requested) {
        forge
            .request_reviewers(pr.number, &delivery.reviewers)
            .await?;
        delivery.reviewers_requested = true;
    }
    for check in check_reports(record, events, commit) {
        forge.post_check(&check).await?;
    }
    if escalated {
        let why =
            crate::report::escape::message(record.reason.as_deref().unwrap_or("the run escalated"));
        // Once per run: a retried delivery finds its own comment by the
        // marker on its last line (where only git-agent writes).
        let marker = format!("<!-- git-agent escalated run={} -->", record.run_id);
        let said = forge.comment_bodies(pr.number).await?;
        if !said.iter().any(|b| b.trim_end().ends_with(&marker)) {
            forge
                .comment(
                    pr.number,
                    &format!(
                        "**git-agent escalated this run and needs a human.**\n\nTrigger: {why}\n\nRun `{}`; the decision log is the description above.\n\n{marker}",
                        record.run_id
                    ),
                )
                .await?;
        }
    }
    Ok(())
}

/// `markdown` cut to `limit` characters for a PR or issue body (see
/// [`fit`]).
pub fn pr_body(markdown: &str, limit: usize) -> String {
    fit(
        markdown,
        limit,
        "> **Trimmed to fit GitHub's 65,536-character limit**: the longest sections are folded; `git agent log` shows the whole decision log.\n\n",
    )
}

/// The review comments of pull request `number` (line comments of reviews).
pub async fn review_comments(
    target: &Target,
    number: u64,
) -> Result<Vec<forge::ReviewComment>, DeliverError> {
    use crate::deliver::forge::Forge as _;
    Ok(target.github()?.list_review_comments(number).await?)
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

    /// A log as the renderer writes it, with tens of thousands of
    /// decisions: the decisions fold, the outcome, goal, scope and checks
    /// stay.
    #[test]
    fn a_huge_rendered_log_keeps_what_a_reviewer_needs() {
        use crate::model::event::{Decision, DecisionKind, EventKind, ScopedChange, VerdictRecord};
        let record: RunRecord = serde_json::from_value(serde_json::json!({
            "schema": 1, "run_id": "20261125-120000-hello-abcd", "task": "hello",
            "title": "Say hello", "brief_path": ".agents/tasks/hello.md", "brief_blob": "0",
            "agent": "fx", "state": "succeeded", "base_ref": "main", "base_commit": null,
            "branch": "agent/hello", "commit": null, "attempts": 1, "max_attempts": 1,
            "worktree": null, "reason": null, "checks": [], "pid": 0,
            "started_at": "2026-11-25T12:00:00Z", "finished_at": null, "duration_ms": 1
        }))
        .expect("record");
        let event = |kind| Event {
            v: 1,
            ts: "2026-11-25T12:00:00Z".into(),
            kind,
        };
        let mut events = vec![event(EventKind::RunStarted {
            task: "hello".into(),
            title: "Say hello".into(),
            brief: "b".into(),
            brief_blob: "0".into(),
            agent: "fx".into(),
            base_ref: "main".into(),
            base_commit: "0".into(),
            goal: "Greet the world.".into(),
        })];
        for i in 0..20_000 {
            events.push(event(EventKind::Decision {
                attempt: 1,
                decision: Decision {
                    kind: DecisionKind::Decision,
                    summary: format!("decision number {i}"),
                    options: Vec::new(),
                    chosen: None,
                    why: None,
                },
            }));
        }
        events.push(event(EventKind::ScopeReport {
            attempt: 1,
            changes: vec![ScopedChange {
                path: "src/hello.rs".into(),
                old_path: None,
                kind: crate::model::event::ChangeKindRecord::Modified,
                lines_added: 1,
                lines_removed: 0,
                verdict: VerdictRecord::Allowed {
                    glob: "src/**".into(),
                },
                symlink_target: None,
            }],
        }));
        events.push(event(EventKind::CheckFinished {
            attempt: 1,
            name: "tests".into(),
            command: "cargo test".into(),
            passed: true,
            exit_code: Some(0),
            timed_out: false,
            duration_ms: 10,
            output_tail: String::new(),
        }));
        let md = crate::report::markdown::render_markdown(&record, &events);
        assert!(md.chars().count() > 2 * BODY_LIMIT, "the log is huge");
        let body = pr_body(&md, BODY_LIMIT);
        assert!(body.chars().count() <= BODY_LIMIT);
        for kept in [
            "Succeeded — Say hello",
            "### Goal\n\nGreet the world.",
            "### Scope",
            "src/hello.rs",
            "### Checks",
            "### Decisions\n\n_Folded: ",
        ] {
            assert!(body.contains(kept), "`{kept}` missing from:\n{body}");
        }
    }
}
