//! `git agent status`: runs of this repository and where they stand.

use super::helper::{dir_size, human_bytes, print_summary, store, to_json};
use super::{exit, print_json, CliError, CliResult, Ctx};

/// Show runs: outcome, attempts, checks, branch; kept worktrees and their disk use
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: Option<String>,
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Show every run, not only the latest run of each task
    #[arg(long, short)]
    pub all: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = store(ctx)?;
    let records = match &args.run {
        Some(q) => vec![store
            .resolve(q)
            .map_err(|m| CliError::usage(m).hint("list runs with `git agent status`"))?],
        None => {
            let all = store
                .list()
                .map_err(|e| CliError::from_error(exit::USAGE, "could not read the runs", &e))?;
            if args.all {
                all
            } else {
                let mut latest: Vec<_> = Vec::new();
                for r in all.into_iter().rev() {
                    if !latest
                        .iter()
                        .any(|l: &crate::model::store::RunRecord| l.task == r.task)
                    {
                        latest.push(r);
                    }
                }
                latest.reverse();
                latest
            }
        }
    };
    if args.json {
        print_json(&records.iter().map(to_json).collect::<Vec<_>>())?;
        return Ok(exit::OK);
    }
    if records.is_empty() {
        eprintln!("no runs yet; start one with `git agent run <id>`");
        return Ok(exit::OK);
    }
    print_summary(&records.iter().collect::<Vec<_>>());
    let kept: Vec<_> = records
        .iter()
        .filter_map(|r| r.worktree.as_ref().filter(|w| w.exists()))
        .collect();
    if !kept.is_empty() {
        let bytes: u64 = kept.iter().map(|w| dir_size(w)).sum();
        super::outln!(
            "{} worktree{} kept for inspection, {} on disk; remove with `git agent clean`",
            kept.len(),
            if kept.len() == 1 { "" } else { "s" },
            human_bytes(bytes)
        );
    }
    let orphaned = records.iter().filter(|r| r.is_orphaned()).count();
    if orphaned > 0 {
        super::outln!("{orphaned} run(s) were interrupted (their process is gone); `git agent clean` removes their worktrees");
    }
    Ok(exit::OK)
}
