//! A run's result as a patch against its base, each file headed by the
//! scope's verdict on it (the glob that allowed it): `git agent diff` and
//! the diff pane of `git agent watch`.

use crate::model::event::{Event, EventKind, ScopedChange, VerdictRecord};

/// The patch from `base` to `commit`, annotated from the run's last scope report.
pub fn annotated_patch(
    repo: &git2::Repository,
    base: &str,
    commit: &str,
    events: &[Event],
) -> Result<String, git2::Error> {
    let scoped: Vec<ScopedChange> = events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::ScopeReport { changes, .. } => Some(changes.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Ok(annotate(&patch_of(repo, base, commit)?, &scoped))
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
