//! Delivering to a forge: our own small trait, with GitHub behind it.
//!
//! The trait is what delivery needs and no more: push, find the pull request
//! of a head branch, open or update one, labels, reviewers, a check (run or
//! commit status), a comment, an issue (for escalations that must not become
//! pull requests), review comments. `github.rs` implements it on
//! octocrab; `push.rs` pushes with the git CLI and a credential helper fed
//! from memory.

pub use crate::model::review::ReviewComment;

pub mod event;
pub mod github;
pub mod push;

use std::fmt;

/// Where a repository lives on a forge, from its `origin` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    pub host: String,
    pub owner: String,
    pub repo: String,
}

impl RepoId {
    /// The REST API base: `https://api.github.com` for github.com, else the
    /// GitHub Enterprise form `https://<host>/api/v3`, unless configured.
    pub fn api_url(&self, configured: Option<&str>) -> String {
        match configured {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if self.host == "github.com" => "https://api.github.com".to_string(),
            None => format!("https://{}/api/v3", self.host),
        }
    }
}

/// A remote URL that names no owner and repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot tell owner and repository from the remote URL `{0}`")]
pub struct RemoteUrlError(pub String);

/// Parses `https://host/owner/repo(.git)`, `ssh://git@host(:port)/owner/repo`
/// and the scp form `git@host:owner/repo.git`.
pub fn parse_remote_url(url: &str) -> Result<RepoId, RemoteUrlError> {
    let url = url.trim();
    let bad = || RemoteUrlError(url.to_string());
    let (host, path) = if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .or_else(|| url.strip_prefix("ssh://"))
        .or_else(|| url.strip_prefix("git://"))
    {
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = host.split(':').next().unwrap_or(host);
        (host.to_string(), path.to_string())
    } else if let Some((left, path)) = url.split_once(':') {
        if left.contains('/') {
            return Err(bad());
        }
        let host = left.rsplit('@').next().unwrap_or(left);
        (host.to_string(), path.to_string())
    } else {
        return Err(bad());
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    match (parts.next(), parts.next(), parts.next()) {
        (Some(owner), Some(repo), None) if !host.is_empty() => Ok(RepoId {
            host: host.to_lowercase(),
            owner: owner.to_string(),
            repo: repo.to_string(),
        }),
        _ => Err(bad()),
    }
}

/// A pull request as delivery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub draft: bool,
    /// The branch it targets (`base.ref`).
    pub base: String,
}

/// What to open or update.
#[derive(Debug, Clone)]
pub struct PrSpec {
    /// The branch name on the remote (no `owner:`).
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    /// Bases an open pull request of `head` may have that it is moved
    /// from to `base` (a stacked pull request whose base landed).
    pub retarget_from: Vec<String>,
}

/// An issue as delivery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub number: u64,
    pub url: String,
}

/// The issue an escalated run opens instead of a pull request.
#[derive(Debug, Clone)]
pub struct IssueSpec {
    pub title: String,
    /// Ends with `marker`, by which a re-run finds the issue again.
    pub body: String,
    pub labels: Vec<String>,
    /// A hidden line (`<!-- git-agent task=<id> -->`) naming the task: the
    /// body's last line, by which a re-run finds the issue.
    pub marker: String,
    /// Only open issues with this label are searched for `marker`.
    pub search_label: String,
}

/// One check's result, posted as a check run or a commit status.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// `git-agent / <name>`.
    pub name: String,
    pub head_sha: String,
    pub passed: bool,
    pub summary: String,
    /// Failing output, for the check run's text.
    pub text: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

/// How a check was posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    CheckRun,
    Status,
}

/// A forge call that failed, with what the forge said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeError {
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    pub operation: String,
    pub message: String,
    /// For a 422: the fields the forge rejected, `resource.field: code`.
    pub fields: Vec<String>,
}

impl fmt::Display for ForgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} failed: HTTP {s}: {}", self.operation, self.message)?,
            None => write!(f, "{} failed: {}", self.operation, self.message)?,
        }
        if !self.fields.is_empty() {
            write!(f, " (rejected: {})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ForgeError {}

/// The forge operations delivery uses.
#[expect(
    async_fn_in_trait,
    reason = "the forge is called from one runtime; no caller needs a Send bound spelled out"
)]
pub trait Forge {
    /// The open pull request whose head is `branch` of this repository.
    async fn find_pr_by_head(&self, branch: &str) -> Result<Option<PullRequest>, ForgeError>;
    /// Opens a pull request, or updates title and body of the open one for
    /// the same head (re-runs never open a second one). Returns it and
    /// whether it was created.
    async fn open_or_update_pr(&self, spec: &PrSpec) -> Result<(PullRequest, bool), ForgeError>;
    async fn add_labels(&self, number: u64, labels: &[String]) -> Result<(), ForgeError>;
    async fn request_reviewers(&self, number: u64, reviewers: &[String]) -> Result<(), ForgeError>;
    /// A check run, or a commit status when check runs are refused.
    async fn post_check(&self, check: &CheckReport) -> Result<CheckKind, ForgeError>;
    async fn comment(&self, number: u64, body: &str) -> Result<(), ForgeError>;
    /// The bodies of the comments on issue or pull request `number`.
    async fn comment_bodies(&self, number: u64) -> Result<Vec<String>, ForgeError>;
    /// Opens an issue, or updates title and body of the open one whose body
    /// holds the same marker (re-runs never open a second one). Returns it
    /// and whether it was created.
    async fn open_or_update_issue(&self, spec: &IssueSpec) -> Result<(Issue, bool), ForgeError>;
    async fn list_review_comments(&self, number: u64) -> Result<Vec<ReviewComment>, ForgeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls() {
        let want = RepoId {
            host: "github.com".into(),
            owner: "octo".into(),
            repo: "hello".into(),
        };
        for url in [
            "https://github.com/octo/hello.git",
            "https://github.com/octo/hello",
            "https://user@github.com/octo/hello/",
            "git@github.com:octo/hello.git",
            "ssh://git@github.com/octo/hello.git",
            "ssh://git@github.com:22/octo/hello",
        ] {
            assert_eq!(parse_remote_url(url).as_ref(), Ok(&want), "{url}");
        }
        let ghe = parse_remote_url("git@ghe.example.com:team/svc.git").unwrap();
        assert_eq!(ghe.api_url(None), "https://ghe.example.com/api/v3");
        assert_eq!(want.api_url(None), "https://api.github.com");
        assert_eq!(
            want.api_url(Some("http://127.0.0.1:9/")),
            "http://127.0.0.1:9"
        );
        assert!(parse_remote_url("/srv/repo.git").is_err());
        assert!(parse_remote_url("https://github.com/octo").is_err());
    }
}
