//! The one error type of the command line: a message, its causes, hints,
//! and a stable exit code.

use std::fmt;

/// Stable exit codes (documented in the README).
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// A run failed (checks failed on the last attempt, the agent crashed, ...)
    /// or its delivery failed (the branch stays; `git agent deliver` retries).
    pub const RUN_FAILED: u8 = 1;
    /// Bad input or usage: an invalid brief or config, an unknown task, a bad flag.
    pub const USAGE: u8 = 2;
    /// A run escalated: it stopped to hand back to a human.
    pub const ESCALATED: u8 = 3;
    /// Interrupted by Ctrl-C / SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub causes: Vec<String>,
    pub hints: Vec<String>,
    pub exit: u8,
    /// The details were already printed (e.g. diagnostics); print nothing more.
    pub reported: bool,
}

impl CliError {
    /// Bad input: `message` is a library error or any text.
    pub fn usage(message: impl fmt::Display) -> Self {
        CliError {
            message: message.to_string(),
            causes: Vec::new(),
            hints: Vec::new(),
            exit: exit::USAGE,
            reported: false,
        }
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        CliError {
            exit: exit::RUN_FAILED,
            ..CliError::usage(message)
        }
    }

    /// An error whose details are already on stderr; only the exit code is left.
    pub fn reported(exit: u8) -> Self {
        CliError {
            reported: true,
            exit,
            ..CliError::usage("")
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Wraps a library error, keeping its `source()` chain as causes.
    pub fn from_error(exit: u8, context: impl Into<String>, err: &dyn std::error::Error) -> Self {
        CliError {
            message: context.into(),
            causes: crate::model::error_causes(err),
            hints: Vec::new(),
            exit,
            reported: false,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        for cause in &self.causes {
            write!(f, "\n  caused by: {cause}")?;
        }
        for hint in &self.hints {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

pub type CliResult<T = u8> = Result<T, CliError>;
