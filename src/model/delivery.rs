//! What delivery was asked for and how it went (`run.json`'s `delivery`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::event::EventKind;
use crate::model::store::{RunRecord, State};

/// How a run's result is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Deliver {
    /// A local branch.
    #[default]
    Branch,
    /// A branch pushed to the remote.
    Push,
    /// A pull request.
    Pr,
    /// A draft pull request.
    DraftPr,
}

/// How an escalated run reaches a human on the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EscalateFallback {
    /// A draft pull request labelled `needs-human`, with a comment naming the trigger.
    #[default]
    DraftPr,
    /// An issue with the decision log and the `needs-human` label; no pull request.
    Issue,
}

impl Deliver {
    pub fn as_str(self) -> &'static str {
        match self {
            Deliver::Branch => "branch",
            Deliver::Push => "push",
            Deliver::Pr => "pr",
            Deliver::DraftPr => "draft-pr",
        }
    }
}

impl std::fmt::Display for Deliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Asked for, not yet attempted (or cut short by a crash).
    #[default]
    Pending,
    Delivered,
    Failed,
}

/// `run.json`'s `delivery`: what was asked and how it went.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeliveryRecord {
    pub mode: Deliver,
    /// The branch the pull request targets.
    pub base: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub reviewers: Vec<String>,
    /// How an escalated run reaches a human: a draft PR or an issue.
    #[serde(default)]
    pub fallback: EscalateFallback,
    pub state: DeliveryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_number: Option<u64>,
    /// The issue an escalated run opened (`escalate.fallback: issue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_number: Option<u64>,
    /// The commit the remote branch points at after delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<String>,
    /// The brief's reviewers were requested on the pull request (a retry
    /// of a delivery that failed after opening it requests them then).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reviewers_requested: bool,
}

impl DeliveryRecord {
    pub fn new(
        deliver: Deliver,
        fallback: EscalateFallback,
        base: &str,
        labels: &[String],
        reviewers: &[String],
    ) -> Self {
        DeliveryRecord {
            mode: deliver,
            base: base.to_string(),
            labels: labels.to_vec(),
            reviewers: reviewers.to_vec(),
            fallback,
            state: DeliveryState::Pending,
            ..Default::default()
        }
    }

    /// The record's delivery, or a pull request against its base when the
    /// brief asked for none (`git agent deliver` on a branch-only run).
    pub fn of(record: &RunRecord) -> DeliveryRecord {
        record.delivery.clone().unwrap_or_else(|| {
            DeliveryRecord::new(
                Deliver::Pr,
                EscalateFallback::default(),
                record.base_branch.as_deref().unwrap_or(
                    record
                        .base_ref
                        .strip_prefix("origin/")
                        .unwrap_or(&record.base_ref),
                ),
                &[],
                &[],
            )
        })
    }

    pub fn failed(&self) -> bool {
        self.state == DeliveryState::Failed
    }

    /// Whether the brief asked for a pull request (`pr` or `draft-pr`).
    pub fn wants_pr(&self) -> bool {
        matches!(self.mode, Deliver::Pr | Deliver::DraftPr)
    }

    /// Whether `record` goes to an issue instead of a pull request.
    pub fn as_issue(&self, record: &RunRecord) -> bool {
        record.state == State::Escalated
            && self.wants_pr()
            && self.fallback == EscalateFallback::Issue
    }

    /// The event that says how this delivery went, for `events.jsonl`.
    pub fn event(&self) -> EventKind {
        match &self.reason {
            Some(reason) if self.failed() => EventKind::DeliveryFailed {
                mode: self.mode,
                reason: reason.clone(),
            },
            _ => EventKind::Delivered {
                mode: self.mode,
                url: self.issue_url.clone().or_else(|| self.pr_url.clone()),
                commit: self.pushed.clone(),
                notices: self.notices.clone(),
            },
        }
    }
}

/// Records built by hand (tests, older tools) name the mode as text; text
/// that names no mode is the default, `branch`.
impl From<&str> for Deliver {
    fn from(text: &str) -> Self {
        match text {
            "push" => Deliver::Push,
            "pr" => Deliver::Pr,
            "draft-pr" => Deliver::DraftPr,
            _ => Deliver::Branch,
        }
    }
}

/// As for [`Deliver`]: text that names no state is `pending`.
impl From<&str> for DeliveryState {
    fn from(text: &str) -> Self {
        match text {
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => DeliveryState::Pending,
        }
    }
}
