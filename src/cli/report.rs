//! `git agent report DIR...`: run records made elsewhere — the artifacts
//! of a fan-out's jobs, one per machine — as one table and the decision
//! logs, in the Markdown of a GitHub Actions job summary (or as JSON).

use std::path::{Path, PathBuf};

use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::model::store::{RunDir, RunRecord, State};

/// Show run records from other machines (downloaded artifacts) as one job summary
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directories holding run records: `<run-id>/run.json` and
    /// `events.jsonl`, at any depth (a `.git/agent/runs` copied as is, or
    /// one artifact per job)
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Print the runs on stdout as one JSON array, an object per run
    #[arg(long)]
    pub json: bool,
}

/// How deep under each directory run records are looked for.
const DEPTH: usize = 8;

pub fn exec(args: Args, _ctx: &Ctx) -> CliResult {
    let mut runs: Vec<(RunDir, RunRecord)> = Vec::new();
    for dir in &args.dirs {
        if !dir.is_dir() {
            return Err(CliError::usage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        collect(dir, DEPTH, &mut runs);
    }
    // A run uploaded twice (a retried job) is one run.
    runs.sort_by(|a, b| {
        (&a.1.started_at, &a.1.task, &a.1.run_id).cmp(&(&b.1.started_at, &b.1.task, &b.1.run_id))
    });
    runs.dedup_by(|a, b| a.1.run_id == b.1.run_id);
    let records: Vec<&RunRecord> = runs.iter().map(|(_, r)| r).collect();
    if args.json {
        print_json(
            &records
                .iter()
                .map(|r| super::helper::to_json(r))
                .collect::<Vec<_>>(),
        )?;
    } else if records.is_empty() {
        super::print_out("## git-agent\n\n_No run records were found._\n");
    } else {
        let events = |r: &RunRecord| {
            runs.iter()
                .find(|(_, x)| x.run_id == r.run_id)
                .and_then(|(d, _)| d.read_events().ok())
                .unwrap_or_default()
        };
        super::print_out(&crate::report::actions::summary_of(&records, &events));
    }
    if records.is_empty() {
        eprintln!("warning: no run records under {}", shown(&args.dirs));
    }
    Ok(code(&records))
}

/// The directories' names, for a message.
fn shown(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every run directory (one holding `run.json`) under `dir`.
fn collect(dir: &Path, depth: usize, out: &mut Vec<(RunDir, RunRecord)>) {
    if dir.join("run.json").is_file() {
        let run = RunDir {
            id: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: dir.to_path_buf(),
        };
        let record = match run.read_record() {
            Ok(record) => Some(record),
            Err(e) => run.salvage(&e.to_string()),
        };
        if let Some(record) = record {
            out.push((run, record));
        }
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        collect(&child, depth - 1, out);
    }
}

/// The exit code of the runs, as `run` gives it.
fn code(records: &[&RunRecord]) -> u8 {
    let any = |s: State| records.iter().any(|r| r.effective_state() == s);
    if any(State::Interrupted) {
        exit::INTERRUPTED
    } else if any(State::Failed)
        || records
            .iter()
            .any(|r| r.delivery.as_ref().is_some_and(|d| d.failed()))
    {
        exit::RUN_FAILED
    } else if any(State::Escalated) {
        exit::ESCALATED
    } else {
        exit::OK
    }
}
