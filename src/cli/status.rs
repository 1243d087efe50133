//! `git agent status`: runs of this repository and where they stand.

use std::path::Path;
use std::time::Duration;

use super::helper::{dir_size, human_bytes, push_reasons, store, to_json};
use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::model::store::{RunRecord, State, Store};

/// Show runs: id, task, state, start, duration, checks, branch; kept worktrees
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: Option<String>,
    /// Print JSON on stdout
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Show every run, not only the latest run of each task (and every
    /// queued or running one)
    #[arg(long, short)]
    pub all: bool,
    /// Refresh in place every second until no run is queued or running
    #[arg(long, short)]
    pub watch: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = store(ctx)?;
    let root = ctx.root()?;
    if args.watch {
        return watch(&store, &args, &root);
    }
    let records = select(&store, &args)?;
    if args.json {
        print_json(&records.iter().map(to_json).collect::<Vec<_>>())?;
        return Ok(exit::OK);
    }
    if records.is_empty() {
        eprintln!("no runs yet; start one with `git agent run <id>`");
        return Ok(exit::OK);
    }
    let records = mark_deleted_briefs(&root, records);
    let mut text = render(&records, supervised(&store));
    text.push_str(&pool_line(ctx, &store));
    super::print_out(&text);
    Ok(exit::OK)
}

/// `pool: 2 worktrees (1 in use), 310 MiB` when the repository keeps one.
fn pool_line(ctx: &Ctx, store: &Store) -> String {
    let slots = super::background::pool_slots(ctx, store);
    let present: Vec<_> = slots.iter().filter(|s| s.path.exists()).collect();
    if present.is_empty() {
        return String::new();
    }
    let bytes: u64 = present.iter().map(|s| dir_size(&s.path)).sum();
    let busy = present.iter().filter(|s| s.busy).count();
    format!(
        "pool: {} worktree{} ({busy} in use), {} on disk; `git agent clean` empties it\n",
        present.len(),
        if present.len() == 1 { "" } else { "s" },
        human_bytes(bytes)
    )
}

fn supervised(store: &Store) -> bool {
    crate::model::locks::Locks::of(store).supervisor_alive()
}

/// The runs `args` asks for, oldest first.
fn select(store: &Store, args: &Args) -> CliResult<Vec<RunRecord>> {
    if let Some(q) = &args.run {
        return Ok(vec![store.resolve(q).map_err(|m| {
            CliError::usage(m).hint("list runs with `git agent status`")
        })?]);
    }
    let all = store
        .list()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the runs", &e))?;
    if args.all {
        return Ok(all);
    }
    Ok(crate::report::runs::shown(all))
}

/// The table, the reasons of runs that did not succeed, kept worktrees.
fn render(records: &[RunRecord], supervised: bool) -> String {
    let mut out = crate::report::runs::table(records);
    push_reasons(&mut out, &records.iter().collect::<Vec<_>>());
    let waiting = records.iter().filter(|r| r.state == State::Queued).count();
    if waiting > 0 && !supervised {
        out.push_str(&format!(
            "{waiting} queued run(s) wait for a supervisor, and none is running (it was killed?): `git agent supervise` runs the queue (any `git agent run --detach` starts one too)\n"
        ));
    }
    let kept: Vec<_> = records
        .iter()
        .filter(|r| r.effective_state().is_terminal())
        .filter_map(|r| r.worktree.as_ref().filter(|w| w.exists()))
        .collect();
    if !kept.is_empty() {
        let bytes: u64 = kept.iter().map(|w| dir_size(w)).sum();
        out.push_str(&format!(
            "{} worktree{} kept for inspection, {} on disk; remove with `git agent clean`\n",
            kept.len(),
            if kept.len() == 1 { "" } else { "s" },
            human_bytes(bytes)
        ));
    }
    let orphaned = records.iter().filter(|r| r.is_orphaned()).count();
    if orphaned > 0 {
        out.push_str(&format!("{orphaned} run(s) were interrupted (their process is gone); `git agent clean` removes their worktrees\n"));
    }
    out
}

/// `--watch`: the table again every second, in place on a terminal (only
/// when it changed, otherwise), until nothing is queued or working.
fn watch(store: &Store, args: &Args, root: &Path) -> CliResult {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let mut last = Vec::new();
    loop {
        let records = mark_deleted_briefs(root, select(store, args)?);
        // Off a terminal a table is printed when a state changes, not
        // every second because durations grow.
        let key: Vec<String> = records
            .iter()
            .map(|r| format!("{} {}", r.run_id, crate::report::runs::state_cell(r)))
            .collect();
        let text = if records.is_empty() {
            "no runs yet; start one with `git agent run <id>`\n".to_string()
        } else {
            render(&records, supervised(store))
        };
        if tty {
            // Home, clear the screen: the table redrawn where it was.
            super::print_control("\u{1b}[H\u{1b}[2J");
            super::print_out(&text);
        } else if key != last {
            super::print_out(&text);
        }
        last = key;
        if records.iter().all(|r| r.effective_state().is_terminal()) {
            return Ok(exit::OK);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs of briefs that are no longer in the checkout say so in their TASK
/// cell: `fix-typo (brief deleted)`.
fn mark_deleted_briefs(root: &Path, mut records: Vec<RunRecord>) -> Vec<RunRecord> {
    for r in &mut records {
        if !r.brief_path.is_empty() && !root.join(&r.brief_path).exists() {
            r.task.push_str(" (brief deleted)");
        }
    }
    records
}
