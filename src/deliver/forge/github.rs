//! The GitHub implementation of [`Forge`] on octocrab's raw requests.
//!
//! Retries are ours, not octocrab's (its retry layer is switched off): 5xx
//! and secondary rate limits are retried with exponential backoff and
//! jitter, and a `Retry-After` header is honoured. A 422 names the fields
//! GitHub rejected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use octocrab::service::middleware::retry::RetryConfig;
use octocrab::Octocrab;
use serde_json::{json, Value};

use super::{
    CheckKind, CheckReport, Forge, ForgeError, Issue, IssueSpec, PrSpec, PullRequest, RepoId,
    ReviewComment,
};

/// How failed requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    pub base_delay: Duration,
    /// The longest wait, `Retry-After` included; a longer one gives up.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
}

/// Why one try of a request failed.
enum Failure {
    /// No answer (a transport error).
    Transport(ForgeError),
    /// GitHub answered with an error: whether to retry, and when it asked to.
    Status {
        status: u16,
        error: ForgeError,
        retryable: bool,
        retry_after: Option<Duration>,
    },
}

pub struct GitHub {
    client: Octocrab,
    api: String,
    repo: RepoId,
    retry: RetryPolicy,
    /// Check runs were refused (a personal token): post statuses instead.
    statuses: AtomicBool,
    /// Messages for the user (the fallback to statuses, said once).
    notices: std::sync::Mutex<Vec<String>>,
}

impl GitHub {
    /// A client for `repo` at `api_url` with `token`. The token stays in
    /// octocrab's `SecretString`; it is sent only as `Authorization`.
    pub fn new(
        api_url: &str,
        repo: RepoId,
        token: String,
        retry: RetryPolicy,
    ) -> Result<GitHub, ForgeError> {
        let err = |m: String| ForgeError {
            status: None,
            operation: "connecting to GitHub".into(),
            message: m,
            fields: Vec::new(),
        };
        let api = api_url.trim_end_matches('/').to_string();
        let client = Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(|e| err(format!("bad API URL `{api}`: {e}")))?
            .personal_token(token)
            // GitHub refuses requests without a User-Agent and asks that it
            // name the application; octocrab adds its own after this one.
            .add_header(
                http::header::USER_AGENT,
                format!("git-agent/{}", env!("CARGO_PKG_VERSION")),
            )
            // GitHub's media type, and plain JSON, which the description (and
            // so a strict mock) declares.
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json, application/json".into(),
            )
            .add_header(
                http::header::HeaderName::from_static("x-github-api-version"),
                "2022-11-28".into(),
            )
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(20)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(GitHub {
            client,
            api,
            repo,
            retry,
            statuses: AtomicBool::new(false),
            notices: Default::default(),
        })
    }

    fn notice(&self, text: String) {
        let mut notices = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        if !notices.contains(&text) {
            notices.push(text);
        }
    }

    /// Notices collected so far (each said once), drained.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn repo_path(&self, rest: &str) -> String {
        format!(
            "{}/repos/{}/{}{rest}",
            self.api, self.repo.owner, self.repo.repo
        )
    }

    /// One request with retries; the parsed JSON body of a 2xx.
    async fn send(
        &self,
        operation: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, ForgeError> {
        self.send_retrying(operation, method, url, body, self.retry.retries)
            .await
            .map(|reply| reply.json)
    }

    /// Every item of a listing, following `Link: <…>; rel="next"` (at most
    /// [`MAX_PAGES`] pages, and only to this API: a link elsewhere would
    /// carry the token there).
    async fn send_pages(&self, operation: &str, url: &str) -> Result<Vec<Value>, ForgeError> {
        let mut items = Vec::new();
        let mut url = url.to_string();
        for _ in 0..MAX_PAGES {
            let reply = self
                .send_retrying(operation, Method::Get, &url, None, self.retry.retries)
                .await?;
            if let Value::Array(page) = reply.json {
                items.extend(page);
            }
            match reply.next {
                Some(next) if next.starts_with(&format!("{}/", self.api)) => url = next,
                Some(next) => {
                    tracing::warn!(%operation, %next, "not following a page link to another host");
                    break;
                }
                None => break,
            }
        }
        Ok(items)
    }

    /// The open issue the task's marker (the body's last line, where
    /// git-agent alone writes: quoted agent text inside the body, escaped
    /// anyway, does not count) names, among those labelled for it. The
    /// issues list includes pull requests; those carry `pull_request`.
    async fn find_issue(&self, spec: &IssueSpec) -> Result<Option<Value>, ForgeError> {
        let url = self.repo_path(&format!(
            "/issues?state=open&labels={}&per_page=100",
            query_value(&spec.search_label)
        ));
        let issues = self.send_pages("finding the issue", &url).await?;
        Ok(issues.into_iter().find(|i| {
            i.get("pull_request").is_none()
                && i["body"]
                    .as_str()
                    .is_some_and(|b| b.trim_end().ends_with(spec.marker.as_str()))
        }))
    }

    /// A create (POST) is not idempotent: a retry after a reply that was
    /// lost (a 5xx or a dropped connection after the write) would make a
    /// second pull request or issue. Before each retry, `find` looks for
    /// what the failed try may have made.
    async fn create<F, Fut>(
        &self,
        operation: &str,
        url: &str,
        body: &Value,
        find: F,
    ) -> Result<Value, ForgeError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Value>, ForgeError>>,
    {
        let mut attempt = 0u32;
        loop {
            let (error, wait) = match self
                .try_once(operation, Method::Post, url, Some(body))
                .await
            {
                Ok(created) => return Ok(created.json),
                Err(Failure::Status {
                    error,
                    retryable,
                    retry_after,
                    ..
                }) => {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    (error, retryable.then_some(wait))
                }
                Err(Failure::Transport(error)) => (error, Some(self.backoff(attempt))),
            };
            // What the forge may have done before the failure is looked for
            // whatever the failure (a 422 "already exists" included).
            if let Some(made) = find().await? {
                return Ok(made);
            }
            match wait {
                Some(wait) if attempt < self.retry.retries && wait <= self.retry.max_delay => {
                    tracing::warn!(%operation, wait_ms = wait.as_millis() as u64, "retrying a create");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }

    async fn send_retrying(
        &self,
        operation: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        retries: u32,
    ) -> Result<Reply, ForgeError> {
        let mut attempt = 0u32;
        loop {
            match self.try_once(operation, method, url, body).await {
                Ok(reply) => return Ok(reply),
                Err(Failure::Status {
                    status,
                    error,
                    retryable,
                    retry_after,
                }) => {
                    if !retryable || attempt >= retries {
                        return Err(error);
                    }
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    if wait > self.retry.max_delay {
                        return Err(ForgeError {
                            message: format!(
                                "{} (GitHub asked to wait {}s, longer than the {}s limit)",
                                error.message,
                                wait.as_secs(),
                                self.retry.max_delay.as_secs()
                            ),
                            ..error
                        });
                    }
                    tracing::warn!(%operation, status, wait_ms = wait.as_millis() as u64, "retrying");
                    if matches!(status, 403 | 429) {
                        self.notice(format!(
                            "GitHub's rate limit: waited {}s before {operation} again",
                            wait.as_secs()
                        ));
                    }
                    tokio::time::sleep(wait).await;
                }
                // Transport errors: retried like a 5xx.
                Err(Failure::Transport(failure)) => {
                    if attempt >= retries {
                        return Err(failure);
                    }
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
            }
            attempt += 1;
        }
    }

    /// One try of a request: the parsed JSON body of a 2xx, or what went
    /// wrong and whether GitHub asked (or may be asked) again.
    async fn try_once(
        &self,
        operation: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let response = match method {
            Method::Get => self.client._get(url).await,
            Method::Patch => self.client._patch(url, body).await,
            Method::Post => self.client._post(url, body).await,
        };
        let response = response.map_err(|e| {
            Failure::Transport(ForgeError {
                status: None,
                operation: operation.into(),
                message: e.to_string(),
                fields: Vec::new(),
            })
        })?;
        let status = response.status().as_u16();
        let next = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let hints = RetryHints {
            retry_after: response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            remaining_zero: response
                .headers()
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v.as_bytes() == b"0"),
            reset_in: response
                .headers()
                .get("x-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(until_epoch),
        };
        let text = self
            .client
            .body_to_string(response)
            .await
            .unwrap_or_default();
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        if (200..300).contains(&status) {
            return Ok(Reply { json, next });
        }
        Err(status_failure(operation, status, &text, &json, hints))
    }

    /// Exponential backoff with full jitter in [d/2, d].
    fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(10))
            .min(self.retry.max_delay);
        let half = d / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// How many pages of a listing are read at most (100 items each).
const MAX_PAGES: usize = 10;

/// A 2xx answer: its JSON, and the next page when it is a listing.
struct Reply {
    json: Value,
    next: Option<String>,
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// What an error response said about retrying.
#[derive(Debug, Clone, Copy)]
struct RetryHints {
    /// `Retry-After`, in seconds.
    retry_after: Option<Duration>,
    /// `X-RateLimit-Remaining: 0`.
    remaining_zero: bool,
    /// How long until `X-RateLimit-Reset` (epoch seconds), from now.
    reset_in: Option<Duration>,
}

/// From now until the epoch second `reset` (zero when it has passed), plus
/// a second: GitHub's reset is rounded down.
fn until_epoch(reset: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(reset.saturating_sub(now) + 1)
}

/// The failure an error status is: its message (and for a 422, the fields
/// GitHub rejected), and whether it is worth retrying (5xx, rate limits).
fn status_failure(
    operation: &str,
    status: u16,
    text: &str,
    json: &Value,
    hints: RetryHints,
) -> Failure {
    let message = json
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or(text)
        .to_string();
    let rate_limited = (status == 403 || status == 429)
        && (hints.retry_after.is_some()
            || hints.remaining_zero
            || message.to_lowercase().contains("rate limit"));
    let error = ForgeError {
        status: Some(status),
        operation: operation.into(),
        fields: if status == 422 {
            rejected_fields(json)
        } else {
            Vec::new()
        },
        message,
    };
    // A primary limit says when it resets; a secondary one, Retry-After.
    let retry_after = hints
        .retry_after
        .or_else(|| hints.remaining_zero.then_some(hints.reset_in).flatten());
    Failure::Status {
        status,
        error,
        retryable: status >= 500 || rate_limited,
        retry_after,
    }
}

/// `errors: [{resource, field, code, message}]` of a 422, as text.
fn rejected_fields(json: &Value) -> Vec<String> {
    json.get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let s = |k: &str| e.get(k).and_then(Value::as_str);
                    match (s("resource"), s("field")) {
                        (Some(r), Some(f)) => format!(
                            "{r}.{f}: {}",
                            s("message").or(s("code")).unwrap_or("invalid")
                        ),
                        _ => s("message")
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string()),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pull_from(v: &Value) -> PullRequest {
    PullRequest {
        number: v.get("number").and_then(Value::as_u64).unwrap_or(0),
        url: v
            .get("html_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        draft: v.get("draft").and_then(Value::as_bool).unwrap_or(false),
        base: v["base"]["ref"].as_str().unwrap_or_default().to_string(),
    }
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GitHub's limits on a status description and a check run's text.
const STATUS_DESCRIPTION_MAX: usize = 140;
const CHECK_TEXT_MAX: usize = 65_535;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl GitHub {
    /// The open pull requests from `branch`, whatever their base (every page).
    async fn open_prs_from(&self, branch: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let url = self.repo_path(&format!(
            "/pulls?head={}&state=open&per_page=100",
            query_value(&format!("{}:{branch}", self.repo.owner))
        ));
        let list = self.send_pages("finding the pull request", &url).await?;
        Ok(list.iter().map(pull_from).collect())
    }

    /// The open pull request from `head` to `base`: the one a delivery
    /// updates (one from the same head to another base is someone else's).
    async fn find_pr(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        Ok(self
            .open_prs_from(head)
            .await?
            .into_iter()
            .find(|pr| pr.base.is_empty() || pr.base == base))
    }

    /// Pull request `number`: its head and base.
    pub async fn pull_request(&self, number: u64) -> Result<PullHead, ForgeError> {
        let url = self.repo_path(&format!("/pulls/{number}"));
        let v = self
            .send("reading the pull request", Method::Get, &url, None)
            .await?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(PullHead {
            number,
            head_ref: text(&v["head"]["ref"]),
            head_sha: text(&v["head"]["sha"]),
            head_repo: text(&v["head"]["repo"]["full_name"]),
            base_ref: text(&v["base"]["ref"]),
        })
    }

    /// Adds reaction `content` (`eyes`, `+1`, `-1`, `confused`, …) to
    /// issue or pull request comment `comment`.
    pub async fn react(&self, comment: u64, content: &str) -> Result<(), ForgeError> {
        let url = self.repo_path(&format!("/issues/comments/{comment}/reactions"));
        self.send(
            "reacting to the comment",
            Method::Post,
            &url,
            Some(&json!({ "content": content })),
        )
        .await
        .map(drop)
    }

    /// `owner/repo` of this repository.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.repo.owner, self.repo.repo)
    }
}

/// A pull request's head and base, as a slash command needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullHead {
    pub number: u64,
    pub head_ref: String,
    pub head_sha: String,
    /// `owner/repo` of the head's repository (another one for a fork).
    pub head_repo: String,
    pub base_ref: String,
}

impl Forge for GitHub {
    async fn find_pr_by_head(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError> {
        Ok(self.open_prs_from(branch).await?.into_iter().next())
    }

    async fn open_or_update_pr(&self, spec: &PrSpec) -> Result<(PullRequest, bool), ForgeError> {
        let mut found = self.find_pr(&spec.head, &spec.base).await?;
        // A stacked pull request whose base has landed moves to the base.
        let mut moved = false;
        for from in spec.retarget_from.iter().filter(|b| **b != spec.base) {
            if found.is_some() {
                break;
            }
            found = self.find_pr(&spec.head, from).await?;
            moved = found.is_some();
        }
        if let Some(existing) = found {
            let url = self.repo_path(&format!("/pulls/{}", existing.number));
            let body = if moved {
                json!({ "title": spec.title, "body": spec.body, "base": spec.base })
            } else {
                json!({ "title": spec.title, "body": spec.body })
            };
            let updated = self
                .send(
                    "updating the pull request",
                    Method::Patch,
                    &url,
                    Some(&body),
                )
                .await?;
            let mut pr = pull_from(&updated);
            if pr.number == 0 {
                pr = existing;
            }
            if moved {
                pr.base = spec.base.clone();
            }
            return Ok((pr, false));
        }
        let body = json!({
            "title": spec.title,
            "head": spec.head,
            "base": spec.base,
            "body": spec.body,
            "draft": spec.draft,
            "maintainer_can_modify": true,
        });
        let made = || async {
            Ok(self.find_pr(&spec.head, &spec.base).await?.map(|pr| {
                json!({ "number": pr.number, "html_url": pr.url, "draft": pr.draft,
                        "base": { "ref": pr.base } })
            }))
        };
        let created = self
            .create(
                "opening the pull request",
                &self.repo_path("/pulls"),
                &body,
                made,
            )
            .await?;
        Ok((pull_from(&created), true))
    }

    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError> {
        if labels.is_empty() {
            return Ok(());
        }
        let url = self.repo_path(&format!("/issues/{number}/labels"));
        self.send(
            "adding labels",
            Method::Post,
            &url,
            Some(&json!({ "labels": labels })),
        )
        .await
        .map(drop)
    }

    async fn request_reviewers(&self, number: u64, reviewers: &[String]) -> Result<(), ForgeError> {
        if reviewers.is_empty() {
            return Ok(());
        }
        let (teams, users): (Vec<&String>, Vec<&String>) =
            reviewers.iter().partition(|r| r.contains('/'));
        let teams: Vec<&str> = teams
            .iter()
            .map(|t| t.rsplit('/').next().unwrap_or(t))
            .collect();
        let url = self.repo_path(&format!("/pulls/{number}/requested_reviewers"));
        self.send(
            "requesting reviewers",
            Method::Post,
            &url,
            Some(&json!({ "reviewers": users, "team_reviewers": teams })),
        )
        .await
        .map(drop)
    }

    async fn post_check(&self, check: &CheckReport) -> Result<CheckKind, ForgeError> {
        if !self.statuses.load(Ordering::Relaxed) {
            let mut output = json!({
                "title": if check.passed { "passed" } else { "failed" },
                "summary": clip(&check.summary, CHECK_TEXT_MAX),
            });
            if let Some(text) = &check.text {
                output["text"] = json!(clip(text, CHECK_TEXT_MAX));
            }
            let mut body = json!({
                "name": check.name,
                "head_sha": check.head_sha,
                "status": "completed",
                "conclusion": if check.passed { "success" } else { "failure" },
                "output": output,
            });
            if let Some(s) = &check.started_at {
                body["started_at"] = json!(s);
            }
            body["completed_at"] = json!(check
                .completed_at
                .clone()
                .unwrap_or_else(crate::model::time::now_rfc3339));
            match self
                .send(
                    "creating a check run",
                    Method::Post,
                    &self.repo_path("/check-runs"),
                    Some(&body),
                )
                .await
            {
                Ok(_) => return Ok(CheckKind::CheckRun),
                Err(e) if e.status == Some(403) || e.status == Some(404) => {
                    if !self.statuses.swap(true, Ordering::Relaxed) {
                        self.notices
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!(
                                "check runs need a GitHub App or Actions token (HTTP {}); posting commit statuses instead",
                                e.status.unwrap_or(403)
                            ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let url = self.repo_path(&format!("/statuses/{}", check.head_sha));
        let body = json!({
            "state": if check.passed { "success" } else { "failure" },
            "description": clip(&check.summary, STATUS_DESCRIPTION_MAX),
            "context": check.name,
        });
        self.send("creating a commit status", Method::Post, &url, Some(&body))
            .await?;
        Ok(CheckKind::Status)
    }

    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError> {
        let url = self.repo_path(&format!("/issues/{number}/comments"));
        self.send(
            "commenting",
            Method::Post,
            &url,
            Some(&json!({ "body": body })),
        )
        .await
        .map(drop)
    }

    async fn comment_bodies(&self, number: u64) -> Result<Vec<String>, ForgeError> {
        let url = self.repo_path(&format!("/issues/{number}/comments?per_page=100"));
        let list = self.send_pages("listing comments", &url).await?;
        Ok(list
            .iter()
            .filter_map(|c| c["body"].as_str().map(str::to_string))
            .collect())
    }

    async fn open_or_update_issue(&self, spec: &IssueSpec) -> Result<(Issue, bool), ForgeError> {
        let existing = self.find_issue(spec).await?;
        let issue_of = |v: &Value| Issue {
            number: v["number"].as_u64().unwrap_or(0),
            url: v["html_url"].as_str().unwrap_or_default().to_string(),
        };
        if let Some(existing) = &existing {
            let number = existing["number"].as_u64().unwrap_or(0);
            let url = self.repo_path(&format!("/issues/{number}"));
            let body = json!({ "title": spec.title, "body": spec.body });
            let updated = self
                .send("updating the issue", Method::Patch, &url, Some(&body))
                .await?;
            let mut issue = issue_of(&updated);
            if issue.number == 0 {
                issue = issue_of(existing);
            }
            return Ok((issue, false));
        }
        let body = json!({ "title": spec.title, "body": spec.body, "labels": spec.labels });
        let created = self
            .create(
                "opening the issue",
                &self.repo_path("/issues"),
                &body,
                || self.find_issue(spec),
            )
            .await?;
        Ok((issue_of(&created), true))
    }

    async fn list_review_comments(&self, number: u64) -> Result<Vec<ReviewComment>, ForgeError> {
        let url = self.repo_path(&format!("/pulls/{number}/comments?per_page=100"));
        let list = self.send_pages("listing review comments", &url).await?;
        Ok(list
            .iter()
            .map(|c| ReviewComment {
                path: c["path"].as_str().unwrap_or_default().to_string(),
                body: c["body"].as_str().unwrap_or_default().to_string(),
                user: c["user"]["login"].as_str().map(str::to_string),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let h = r#"<https://api.github.com/repositories/1/issues?page=2&per_page=100>; rel="next", <https://api.github.com/repositories/1/issues?page=5&per_page=100>; rel="last""#;
        assert_eq!(
            super::next_link(h).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2&per_page=100")
        );
        assert_eq!(super::next_link(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(super::next_link(""), None);
    }
}
