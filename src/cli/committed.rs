//! What will run is what is committed — or the user is told: a run (and a
//! review after it) works from the committed tree, so a brief edited but
//! not committed, or a script the config or a check names that the tree
//! lacks (untracked, or hidden by `.gitignore`), surprises later. Shared by
//! `run`, `plan` and `validate`.

use std::path::{Path, PathBuf};

use crate::engine::run::RunRequest;
use crate::git::Repo;

/// Warnings (one line each, with what to do) about `reqs` under `root`.
pub(crate) fn warnings(root: &Path, reqs: &[RunRequest]) -> Vec<String> {
    let Ok(repo) = Repo::discover(root) else {
        return Vec::new();
    };
    let mut said = Vec::new();
    let briefs: Vec<PathBuf> = reqs
        .iter()
        .map(|r| PathBuf::from(&r.brief_display))
        .collect();
    let committed = repo.blobs_at_head(&briefs.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    for (req, blob) in reqs.iter().zip(committed) {
        if blob.map(|b| b.to_string()).as_deref() != Some(req.brief.blob_id.as_str()) {
            said.push(format!(
                "{} has changes that are not committed: the run uses them as they are on disk, but a later `git agent review` judges by the committed brief (commit it first)",
                req.brief_display
            ));
        }
    }
    let mut named: Vec<(String, &str)> = Vec::new();
    for req in reqs {
        named.push((
            format!("agents.{}.command", req.agent.name),
            &req.agent.command,
        ));
        for check in &req.brief.checks {
            named.push((
                format!("the check `{}` of {}", check.name, req.brief_display),
                &check.run,
            ));
        }
    }
    named.sort();
    named.dedup();
    let found: Vec<(String, PathBuf)> = named
        .into_iter()
        .flat_map(|(whose, command)| {
            repository_paths(root, command)
                .into_iter()
                .map(move |path| (whose.clone(), path))
        })
        .collect();
    let paths: Vec<&Path> = found.iter().map(|(_, p)| p.as_path()).collect();
    for ((whose, path), blob) in found.iter().zip(repo.blobs_at_head(&paths)) {
        if blob.is_none() {
            said.push(format!(
                "`{}` (named by {whose}) is not in the committed tree: the run's worktree will not have it (commit it, or stop ignoring it)",
                path.display()
            ));
        }
    }
    said
}

/// The words of `command` that are files of the checkout (relative paths,
/// inside `root`).
fn repository_paths(root: &Path, command: &str) -> Vec<PathBuf> {
    let Ok(top) = root.canonicalize() else {
        return Vec::new();
    };
    command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .filter(|w| !w.starts_with('-') && !w.starts_with('/') && !w.contains('='))
        .filter(|w| w.contains('/') || w.ends_with(".sh") || w.ends_with(".py"))
        .filter_map(|w| {
            let full = root.join(w).canonicalize().ok()?;
            if !full.is_file() {
                return None;
            }
            full.strip_prefix(&top).ok().map(Path::to_path_buf)
        })
        .collect()
}
