//! `git agent decide`: record a decision from inside a run.

use std::io::Write;

use super::{exit, CliError, CliResult, Ctx};
use crate::model::event::{Decision, DecisionKind};

/// Record a decision in the running task's log (use from inside a run)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What was decided, assumed or found, in one line
    pub summary: String,
    /// What kind of entry this is
    #[arg(long, value_enum, default_value = "decision")]
    pub kind: DecisionKind,
    /// The option chosen
    #[arg(long, value_name = "OPTION")]
    pub chose: Option<String>,
    /// An option not chosen (repeatable)
    #[arg(long, value_name = "OPTION")]
    pub over: Vec<String>,
    /// Why
    #[arg(long, value_name = "REASON")]
    pub because: Option<String>,
}

pub fn exec(args: Args, _ctx: &Ctx) -> CliResult {
    let path = std::env::var_os("GIT_AGENT_DECISIONS").ok_or_else(|| {
        CliError::usage(
            "GIT_AGENT_DECISIONS is not set: `git agent decide` records into a running task's log",
        )
        .hint("run it from inside an agent started by `git agent run`")
    })?;
    let mut options = Vec::new();
    if let Some(c) = &args.chose {
        options.push(c.clone());
    }
    options.extend(args.over.iter().cloned());
    let decision = Decision {
        kind: args.kind,
        summary: args.summary,
        options,
        chosen: args.chose,
        why: args.because,
    };
    let mut line = serde_json::to_string(&decision).map_err(|e| CliError::failed(e.to_string()))?;
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| CliError::from_error(exit::USAGE, "could not append the decision", &e))?;
    Ok(exit::OK)
}
