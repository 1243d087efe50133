//! The run log's vocabulary: versioned events (`events.jsonl`) and the
//! agent's decisions. These types are the contract between the engine,
//! which emits them, and every reporter (Markdown log, PR body, checks,
//! progress), which only reads them.

use serde::{Deserialize, Serialize};

use crate::model::store::State;
use crate::model::time::now_rfc3339;

/// Version of the event schema; bump on incompatible changes.
pub const EVENTS_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub v: u32,
    pub ts: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    pub fn now(kind: EventKind) -> Event {
        Event {
            v: EVENTS_VERSION,
            ts: now_rfc3339(),
            kind,
        }
    }
}

/// A decision the agent recorded: one JSON line in `$GIT_AGENT_DECISIONS`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default = "default_kind")]
    pub kind: DecisionKind,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

fn default_kind() -> DecisionKind {
    DecisionKind::Decision
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Decision,
    Assumption,
    Unexpected,
    /// The agent asks for a human: the run escalates after this attempt.
    Escalate,
}

/// One changed path with the scope's verdict on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScopedChange {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub kind: ChangeKindRecord,
    pub lines_added: usize,
    pub lines_removed: usize,
    #[serde(flatten)]
    pub verdict: VerdictRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

/// What happened to a path, as the log and reports name it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ChangeKindRecord {
    #[serde(rename = "added")]
    Added,
    #[serde(rename = "modified")]
    Modified,
    /// Content unchanged, mode changed (made executable, say).
    #[serde(rename = "mode changed")]
    ModeChanged,
    #[serde(rename = "deleted")]
    Deleted,
    #[serde(rename = "renamed")]
    Renamed,
    /// A file became a symlink or the other way round.
    #[serde(rename = "type changed")]
    TypeChanged,
}

impl ChangeKindRecord {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKindRecord::Added => "added",
            ChangeKindRecord::Modified => "modified",
            ChangeKindRecord::ModeChanged => "mode changed",
            ChangeKindRecord::Deleted => "deleted",
            ChangeKindRecord::Renamed => "renamed",
            ChangeKindRecord::TypeChanged => "type changed",
        }
    }
}

impl std::fmt::Display for ChangeKindRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The scope's verdict on a path, as stored (owned, deserializable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum VerdictRecord {
    Allowed { glob: String },
    Denied { glob: String },
    OutOfScope,
}

/// What an agent CLI did in one attempt, parsed from its event stream
/// (adapters `claude`, `codex`, `aider`, `copilot`, `opencode`; see `src/agent/`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentActivity {
    /// Every tool call, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Files the agent edited, created or deleted (as it reported them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_edited: Vec<String>,
    /// Shell commands the agent ran, with their exit codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandRun>,
    /// Tool calls the CLI refused (not allowed by the adapter's permissions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_denials: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Why the agent was stopped (a budget), when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The error the CLI reported (authentication, model, crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the CLI was allowed to do: all its tools where git-agent's
    /// sandbox confines it, the adapter's narrow list where it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// The CLI's own session id, which the next attempt continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// This attempt continued the previous attempt's session (the failing
    /// checks were its new message) instead of starting afresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
}

/// One tool call of an agent CLI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolCall {
    pub name: String,
    /// The call's main argument (a path, a command, a pattern), shortened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One shell command an agent ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandRun {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        task: String,
        title: String,
        brief: String,
        brief_blob: String,
        agent: String,
        base_ref: String,
        base_commit: String,
        goal: String,
    },
    WorktreeReady {
        path: String,
        sparse: bool,
        ms: u64,
        /// A pooled worktree reset for this run (`workspace.pool`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reused: bool,
    },
    AttemptStarted {
        attempt: u32,
    },
    /// What the worktree got before the agent (`workspace:`): copied files
    /// (their paths, never their content) and the run's ports.
    WorkspaceReady {
        copied: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        #[serde(default)]
        ports: u16,
    },
    /// A setup step ran, or its cache was used.
    SetupFinished {
        name: String,
        cached: bool,
        ms: u64,
        /// The cache key (the step and its key files at the base).
        key: String,
    },
    /// The confinement of the run's agent and checks (`docs/SECURITY.md`).
    Sandbox {
        #[serde(flatten)]
        policy: crate::model::sandbox::Effective,
    },
    /// `run --resume` picked the run up again at this attempt.
    Resumed {
        attempt: u32,
    },
    AgentFinished {
        attempt: u32,
        exit_code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
        duration_ms: u64,
        stdout_bytes: u64,
        stderr_bytes: u64,
        leaked: usize,
        /// Endpoints the egress proxy refused (`network: {allow: [...]}`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        egress_refused: Vec<String>,
    },
    /// What the agent CLI did (adapters with an event stream).
    AgentActivity {
        attempt: u32,
        #[serde(flatten)]
        activity: AgentActivity,
    },
    Decision {
        attempt: u32,
        #[serde(flatten)]
        decision: Decision,
    },
    DecisionRejected {
        attempt: u32,
        line: String,
        error: String,
    },
    ScopeReport {
        attempt: u32,
        changes: Vec<ScopedChange>,
    },
    /// Something the agent must never do, found after an attempt.
    Violation {
        attempt: u32,
        what: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    Reverted {
        attempt: u32,
        paths: Vec<String>,
    },
    /// Files on disk that the candidate tree does not have (ignored or
    /// untracked: build output, caches), moved out of the worktree while
    /// the checks ran, so that the checks judge the tree that is committed.
    SetAside {
        attempt: u32,
        paths: Vec<String>,
    },
    /// Files the failing checks wrote, removed before the next attempt.
    CheckArtifactsRemoved {
        attempt: u32,
        paths: Vec<String>,
    },
    CheckFinished {
        attempt: u32,
        name: String,
        command: String,
        passed: bool,
        exit_code: Option<i32>,
        timed_out: bool,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        output_tail: String,
    },
    AttemptFailed {
        attempt: u32,
        reason: String,
    },
    Committed {
        branch: String,
        commit: String,
    },
    /// The verified result could not be committed (a blocked branch ref, a
    /// full disk): its tree is kept (`refs/agent/runs/<run>`) for
    /// `run --resume` to commit without running anything again.
    CommitPending {
        /// The outcome the commit was for (succeeded or escalated).
        outcome: crate::model::store::State,
        base: String,
        tree: String,
        error: String,
        /// Why the run ended as it did (an escalation's trigger).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Escalated {
        reason: String,
    },
    /// The run starts after other tasks (`after:`): from their results
    /// that are not in the base yet (one: its branch's tip; several: their
    /// merge, `start`), its pull request stacked on `stacked_on`.
    Chained {
        #[serde(flatten)]
        chain: crate::model::chain::Chain,
        /// The commit the run started from, when not the base's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
    },
    /// The result does not merge cleanly with a run's beside it (write
    /// scopes that overlap, not chained), found when the batch ended.
    Conflicts {
        #[serde(flatten)]
        conflict: crate::model::chain::Conflict,
    },
    /// The run addresses review comments of a pull request.
    ReviewFeedback {
        pull_request: u64,
        comments: usize,
        /// The earlier result the run started from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_at: Option<String>,
    },
    /// The run reached the forge (pushed; a pull request or an issue).
    Delivered {
        mode: crate::model::delivery::Deliver,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The commit the remote branch points at.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notices: Vec<String>,
    },
    /// Delivery failed; the branch and the log stay local.
    DeliveryFailed {
        mode: crate::model::delivery::Deliver,
        reason: String,
    },
    /// `git agent land` brought the result onto its base branch (after the
    /// run finished): the branch fast-forwarded, the result branch removed.
    Landed {
        #[serde(flatten)]
        landing: crate::model::landing::Landing,
    },
    RunFinished {
        outcome: State,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The config's `notify` ran after the run ended.
    Notified {
        /// What ran: `command` or `desktop` (`notify-send`).
        via: String,
        /// How it ended (`exit code 0`), or why it could not start.
        result: String,
        ok: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_lines_parse_with_defaults() {
        let d: Decision = serde_json::from_str(
            r#"{"summary":"use backoff","options":["fixed","exp"],"chosen":"exp"}"#,
        )
        .expect("decision");
        assert_eq!(d.kind, DecisionKind::Decision);
        assert!(serde_json::from_str::<Decision>(r#"{"summary":"x","extra":1}"#).is_err());
    }
}
