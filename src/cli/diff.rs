//! `git agent diff`: a run's result as a patch against its base, each file
//! headed by the scope's verdict on it (the glob that allowed it).

use super::{exit, CliError, CliResult, Ctx};
use crate::model::event::{EventKind, ScopedChange, VerdictRecord};

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
    let scoped: Vec<ScopedChange> = events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::ScopeReport { changes, .. } => Some(changes.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let repo = git2::Repository::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let patch = patch_of(&repo, base, commit)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not diff the run's commit", &e))?;
    super::print_out(&annotate(&patch, &scoped));
    Ok(exit::OK)
}

/// The patch from `base` to `commit` (renames found), as `git diff` prints it.
fn patch_of(repo: &git2::Repository, base: &str, commit: &str) -> Result<String, git2::Error> {
    let tree = |rev: &str| repo.revparse_single(rev)?.peel_to_tree();
    let mut diff = repo.diff_tree_to_tree(Some(&tree(base)?), Some(&tree(commit)?), None)?;
    diff.find_similar(None)?;
    let mut out = Vec::new();
    diff.print(git2::DiffFormat::Patch, |_, _, line| {
        if matches!(line.origin(), '+' | '-' | ' ') {
            out.push(line.origin() as u8);
        }
        out.extend_from_slice(line.content());
        true
    })?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Puts a `# <verdict>` line before each file's `diff --git` header.
fn annotate(patch: &str, scoped: &[ScopedChange]) -> String {
    let mut out = String::with_capacity(patch.len());
    for line in patch.split_inclusive('\n') {
        if let Some(paths) = line.strip_prefix("diff --git a/") {
            let path = paths.split(" b/").last().unwrap_or("").trim_end();
            let verdict = scoped
                .iter()
                .find(|c| c.path == path)
                .map(|c| match &c.verdict {
                    VerdictRecord::Allowed { glob } => format!("allowed by `{glob}`"),
                    VerdictRecord::Denied { glob } => format!("denied by `{glob}`"),
                    VerdictRecord::OutOfScope => "outside the scope".to_string(),
                });
            out.push_str(&format!(
                "# {path}: {}\n",
                verdict.unwrap_or_else(|| "not in the scope report".into())
            ));
        }
        out.push_str(line);
    }
    out
}
