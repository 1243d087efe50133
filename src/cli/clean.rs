//! `git agent clean`: remove kept worktrees and stale worktree entries.

use std::time::Duration;

use super::{exit, CliError, CliResult, Ctx};
use crate::git::Repo;
use crate::model::store::{RunRecord, State, Store};

/// Remove the worktrees of finished runs and abandoned reviews (branches are kept)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or prefix), or a task id (every run of it); default: every finished run
    pub run: Option<String>,
    /// Also remove the run records, not only the worktrees
    #[arg(long)]
    pub records: bool,
    /// Only runs that finished longer ago than this, e.g. `7d`
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
}

/// What cleaning removed so far.
#[derive(Default)]
struct Removed {
    worktrees: usize,
    bytes: u64,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let store = super::helper::store(ctx)?;
    let older = match &args.older_than {
        Some(t) => Some(humantime::parse_duration(t).map_err(|e| {
            CliError::usage(format!("invalid --older-than `{t}`: {e}")).hint("e.g. --older-than 7d")
        })?),
        None => None,
    };
    let all = store
        .list()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the runs", &e))?;
    let records: Vec<RunRecord> = match &args.run {
        // A task: every run of it (`--records` forgets the task's history).
        Some(q) if !all.iter().any(|r| &r.run_id == q) && all.iter().any(|r| &r.task == q) => {
            all.into_iter().filter(|r| &r.task == q).collect()
        }
        Some(q) => vec![store.resolve(q).map_err(CliError::usage)?],
        None => all,
    };
    let repo = Repo::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let mut removed = Removed::default();
    for r in records {
        clean_run(&repo, &store, r, &args, older, &mut removed)?;
    }
    if args.run.is_none() {
        clean_reviews(&repo, &store, &mut removed)?;
        clean_pool(ctx, &repo, &store, older, &mut removed)?;
    }
    repo.prune_worktrees().map_err(|e| {
        CliError::from_error(exit::RUN_FAILED, "could not prune worktree entries", &e)
    })?;
    super::outln!(
        "removed {} worktree{}, {} freed",
        removed.worktrees,
        if removed.worktrees == 1 { "" } else { "s" },
        super::helper::human_bytes(removed.bytes)
    );
    Ok(exit::OK)
}

/// The pool's worktrees that no run holds (taken longer ago than `older`).
fn clean_pool(
    ctx: &Ctx,
    repo: &Repo,
    store: &Store,
    older: Option<Duration>,
    removed: &mut Removed,
) -> CliResult<()> {
    for slot in super::background::pool_slots(ctx, store) {
        let old_enough = match (older, slot.taken) {
            (None, _) => true,
            (Some(age), Some(at)) => at.elapsed().is_ok_and(|e| e > age),
            (Some(_), None) => false,
        };
        if slot.busy || !old_enough {
            continue;
        }
        let Some(_held) = crate::engine::pool::evict(store, slot.index) else {
            continue;
        };
        if slot.path.exists() {
            removed.bytes += remove_worktree(repo, &slot.path, &mut removed.worktrees)?;
        }
    }
    Ok(())
}

/// Clean one finished run (older than `older`, if given): kill what an
/// interrupted run left running, remove its worktree, then update or remove
/// its record.
fn clean_run(
    repo: &Repo,
    store: &Store,
    mut r: RunRecord,
    args: &Args,
    older: Option<Duration>,
    removed: &mut Removed,
) -> CliResult<()> {
    let state = r.effective_state();
    if !state.is_terminal() {
        return Ok(()); // a live run owns its worktree
    }
    if r.is_orphaned() {
        // Its orchestrator died; what the agent or a check left running goes now.
        let killed = crate::exec::process::kill_marked("GIT_AGENT_RUN_ID", &r.run_id);
        if killed > 0 {
            eprintln!(
                "{}: killed {killed} process(es) left by the interrupted run",
                r.run_id
            );
        }
    }

    let _ = store.open(&r.run_id).remove_stale_tmp();
    if let Some(age) = older {
        if !finished_before(&r, age) {
            return Ok(());
        }
    }
    if let Some(wt) = &r.worktree {
        removed.bytes += remove_worktree(repo, wt, &mut removed.worktrees)?;
    }
    r.worktree = None;
    let dir = store.open(&r.run_id);
    if state == State::Interrupted && r.state != State::Interrupted {
        r.state = State::Interrupted;
        r.reason
            .get_or_insert_with(|| "the orchestrator died while the run was working".into());
    }
    if args.records {
        let _ = std::fs::remove_dir_all(&dir.path);
    } else {
        dir.write_record(&r).map_err(|e| {
            CliError::from_error(exit::RUN_FAILED, "could not update the run record", &e)
        })?;
    }
    Ok(())
}

/// Reviews keep no record; one whose process died left its worktree.
fn clean_reviews(repo: &Repo, store: &Store, removed: &mut Removed) -> CliResult<()> {
    let reviews = store.dir().with_file_name("reviews");
    for (name, worktree) in crate::engine::review::abandoned(&reviews) {
        let killed = crate::exec::process::kill_marked("GIT_AGENT_RUN_ID", &name);
        if killed > 0 {
            eprintln!("{name}: killed {killed} process(es) left by the review");
        }
        if let Some(wt) = &worktree {
            removed.bytes += remove_worktree(repo, wt, &mut removed.worktrees)?;
        }
        let _ = std::fs::remove_dir_all(reviews.join(&name));
    }
    Ok(())
}

/// Removes `wt` when it exists (counting it); returns the bytes freed.
fn remove_worktree(repo: &Repo, wt: &std::path::Path, removed: &mut usize) -> CliResult<u64> {
    if std::fs::symlink_metadata(wt).is_err() {
        return Ok(0);
    }
    let size = super::helper::dir_size(wt);
    repo.remove_worktree_path(wt).map_err(|e| {
        CliError::from_error(
            exit::RUN_FAILED,
            format!("could not remove {}", wt.display()),
            &e,
        )
    })?;
    *removed += 1;
    // The repository's directory under `worktree_dir`, once it holds no
    // worktree, goes too (the next run makes it again).
    if let Some(parent) = wt.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(size)
}

/// Whether `r` finished at least `age` ago. A stamp in the future (the
/// clock was stepped back since) or one that does not parse tells no age:
/// such a run is kept, never taken for an old one.
fn finished_before(r: &RunRecord, age: Duration) -> bool {
    let stamp = r.finished_at.as_deref().unwrap_or(&r.started_at);
    match time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339) {
        Ok(t) => {
            let elapsed = (time::OffsetDateTime::now_utc() - t).whole_seconds();
            u64::try_from(elapsed).is_ok_and(|secs| secs >= age.as_secs())
        }
        Err(_) => false,
    }
}
