//! `git agent diff`: a run's result as a patch against its base, each file
//! headed by the scope's verdict on it (the glob that allowed it).

use super::{exit, CliError, CliResult, Ctx};

/// Show a run's result as a diff against its base, each file with the glob allowing it
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: String,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let store = super::helper::store(ctx)?;
    let record = store
        .resolve(&args.run)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status`"))?;
    let (Some(base), Some(commit)) = (record.base_commit.as_deref(), record.commit.as_deref())
    else {
        return Err(CliError::usage(format!(
            "run {} committed nothing: there is no diff",
            record.run_id
        )));
    };
    let events = store.open(&record.run_id).read_events().unwrap_or_default();
    let repo = git2::Repository::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let patch = crate::report::diff::annotated_patch(&repo, base, commit, &events)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not diff the run's commit", &e))?;
    super::print_out(&patch);
    Ok(exit::OK)
}
