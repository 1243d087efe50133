//! `git agent log`: a run's decision log as Markdown (the PR body) or JSON.

use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::model::store::{RunRecord, State};
use crate::report::markdown::render_markdown;

/// Show a run's decision log: Markdown (the PR body) or JSON events
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: String,
    /// Output format
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Same as `--format json` (the flag every other command has)
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Stream the run as it goes, a line per event, until it ends; the exit
    /// code is the run's (0 succeeded, 1 failed, 3 escalated, 130 interrupted)
    #[arg(long, short = 'f', conflicts_with_all = ["format", "json"])]
    pub follow: bool,
    /// Show the agent's raw stdout and stderr of an attempt (default: the
    /// latest), as it wrote them (control characters shown, not obeyed)
    #[arg(long, value_name = "ATTEMPT", num_args = 0..=1, default_missing_value = "0",
          conflicts_with_all = ["format", "json", "follow"])]
    pub agent_output: Option<u32>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Md,
    Json,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = super::helper::store(ctx)?;
    let record = store.resolve(&args.run).map_err(|m| {
        // A task with a brief but no run yet is not a typo.
        let briefed = ctx
            .root()
            .ok()
            .is_some_and(|root| crate::spec::repo_files::brief_path(&root, &args.run).is_file());
        if briefed && matches!(m, crate::model::store::ResolveError::NotFound(_)) {
            CliError::usage(format!("task `{}` has not run yet", args.run))
                .hint(format!("start it with `git agent run {}`", args.run))
        } else {
            CliError::usage(m).hint("list runs with `git agent status`")
        }
    })?;
    if args.follow {
        return follow(&store, record);
    }
    if let Some(attempt) = args.agent_output {
        return agent_output(&store, &record, attempt);
    }
    let events = store
        .open(&record.run_id)
        .read_events()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the run's events", &e))?;
    let format = if args.json { Format::Json } else { args.format };
    match format {
        Format::Md => super::print_out(&render_markdown(&record, &events)),
        Format::Json => print_json(&serde_json::json!({
            "run": super::helper::to_json(&record),
            "events": events,
        }))?,
    }
    Ok(exit::OK)
}

/// `--agent-output`: the streams the agent wrote in one attempt, stdout
/// then stderr, each under a header on stderr.
fn agent_output(store: &crate::model::store::Store, record: &RunRecord, attempt: u32) -> CliResult {
    let attempt = if attempt == 0 {
        record.attempts
    } else {
        attempt
    };
    if attempt == 0 || attempt > record.attempts {
        return Err(CliError::usage(match record.attempts {
            0 => format!("run {} has not started an attempt yet", record.run_id),
            n => format!(
                "run {} has {n} attempt{}; there is no attempt {attempt}",
                record.run_id,
                if n == 1 { "" } else { "s" }
            ),
        })
        .hint(format!(
            "`git agent log {} --agent-output` shows the latest",
            record.run_id
        )));
    }
    let dir = store.open(&record.run_id);
    for stream in ["stdout", "stderr"] {
        let path = dir.agent_output(attempt, stream);
        let bytes = std::fs::read(&path).unwrap_or_default();
        eprintln!(
            "== attempt {attempt}/{}: agent {stream} ({}) ==",
            record.attempts,
            super::helper::human_bytes(bytes.len() as u64)
        );
        let text = String::from_utf8_lossy(&bytes);
        super::print_out(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            super::print_out("\n");
        }
    }
    Ok(exit::OK)
}

/// How often `--follow` looks for new events.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// `--follow`: every event so far, then each new one, until the run ends.
fn follow(store: &crate::model::store::Store, mut record: RunRecord) -> CliResult {
    let dir = store.open(&record.run_id);
    let mut shown = 0;
    loop {
        let events = dir.read_events().map_err(|e| {
            CliError::from_error(exit::USAGE, "could not read the run's events", &e)
        })?;
        for event in events.iter().skip(shown) {
            if let Some(line) = crate::report::follow::line(event) {
                super::outln!("{line}");
            }
        }
        shown = shown.max(events.len());
        if record.state.is_terminal() {
            break;
        }
        if record.is_orphaned() {
            super::outln!(
                "the run's process is gone: interrupted (`git agent run --resume {}` continues it)",
                record.run_id
            );
            return Ok(exit::INTERRUPTED);
        }
        std::thread::sleep(FOLLOW_POLL);
        // The record is written after its last event: read it after them.
        if let Ok(now) = dir.read_record() {
            record = now;
        }
    }
    Ok(match record.state {
        State::Succeeded => exit::OK,
        State::Escalated => exit::ESCALATED,
        State::Interrupted => exit::INTERRUPTED,
        _ => exit::RUN_FAILED,
    })
}
