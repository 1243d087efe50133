//! The one result of a check — produced by the engine's check runner and
//! read by runs (feedback, events, `run.json`), reviews (their report) and
//! delivery (check runs on the forge).

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

/// How a process's leader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl ExitKind {
    pub fn success(self) -> bool {
        self == ExitKind::Code(0)
    }

    /// The exit code, when the process exited rather than being killed.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitKind::Code(c) => Some(c),
            ExitKind::Signal(_) => None,
        }
    }

    /// The signal that killed the process, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitKind::Code(_) => None,
            ExitKind::Signal(s) => Some(s),
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitKind::Code(code) => write!(f, "exit code {code}"),
            ExitKind::Signal(signal) => match Signal::try_from(signal) {
                Ok(name) => write!(f, "killed by signal {signal} ({name})"),
                Err(_) => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

/// One check, run once.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub command: String,
    pub passed: bool,
    pub exit: ExitKind,
    pub timed_out: bool,
    /// The run was stopped (Ctrl-C) while the check ran: no verdict.
    pub stopped: bool,
    pub duration: Duration,
    /// The end of the output (stdout and stderr interleaved as written).
    pub tail: String,
}

impl CheckResult {
    /// What ended the check, for feedback: `timed out`, or the exit.
    pub fn exit_text(&self) -> String {
        if self.timed_out {
            "timed out".into()
        } else {
            self.exit.to_string()
        }
    }

    /// The output a reader needs: the tail of a failing check, nothing of
    /// a passing one.
    pub fn failing_tail(&self) -> &str {
        if self.passed {
            ""
        } else {
            &self.tail
        }
    }

    /// The exit in a few words: `exit 1`, `killed by signal 9 (SIGKILL)`.
    pub fn exit_short(&self) -> String {
        match self.exit {
            ExitKind::Code(c) => format!("exit {c}"),
            other => other.to_string(),
        }
    }

    pub fn duration_ms(&self) -> u64 {
        self.duration.as_millis() as u64
    }

    pub fn summary(&self) -> CheckSummary {
        CheckSummary {
            name: self.name.clone(),
            passed: self.passed,
            exit: Some(self.exit_text()),
        }
    }
}

/// As a review report shows a check (`git agent review --json`).
impl Serialize for CheckResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View<'a> {
            name: &'a str,
            command: &'a str,
            passed: bool,
            exit: String,
            timed_out: bool,
            duration_ms: u64,
            #[serde(skip_serializing_if = "str::is_empty")]
            output_tail: &'a str,
        }
        View {
            name: &self.name,
            command: &self.command,
            passed: self.passed,
            exit: self.exit_short(),
            timed_out: self.timed_out,
            duration_ms: self.duration_ms(),
            output_tail: self.failing_tail(),
        }
        .serialize(s)
    }
}

/// A check's verdict as `run.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckSummary {
    pub name: String,
    pub passed: bool,
    /// How it ended (`exit code 1`, `timed out`), for live progress; not
    /// part of `run.json`, whose shape is a contract.
    #[serde(skip)]
    pub exit: Option<String>,
}
