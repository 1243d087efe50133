//! What will run is what is committed — or the user is told: a run (and a
//! review after it) works from the committed tree, so a brief edited but
//! not committed, or a script the config or a check names that the tree
//! lacks (untracked, or hidden by `.gitignore`), surprises later. Shared by
//! `run`, `plan` (lines of text) and `validate` (diagnostics).

use std::path::{Path, PathBuf};

use crate::engine::run::RunRequest;
use crate::git::Repo;

/// How a brief on disk stands against `HEAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BriefState {
    Committed,
    /// Committed, then changed on disk.
    Changed,
    /// Not in `HEAD`'s tree at all.
    Untracked,
}

/// Each brief (its path relative to the root, its blob id on disk) against
/// `HEAD`, read with one open of the repository.
pub(crate) fn brief_states(repo: &Repo, briefs: &[(&Path, &str)]) -> Vec<BriefState> {
    let paths: Vec<&Path> = briefs.iter().map(|(p, _)| *p).collect();
    repo.blobs_at_head(&paths)
        .into_iter()
        .zip(briefs)
        .map(|(blob, (_, on_disk))| match blob {
            None => BriefState::Untracked,
            Some(b) if b.to_string() == *on_disk => BriefState::Committed,
            Some(_) => BriefState::Changed,
        })
        .collect()
}

/// The files of the checkout that `command` names and the tree of `rev`
/// (the run's base) lacks: the run's worktree will not have them.
pub(crate) fn missing_from(root: &Path, repo: &Repo, rev: &str, command: &str) -> Vec<PathBuf> {
    let found = repository_paths(root, command);
    let paths: Vec<&Path> = found.iter().map(PathBuf::as_path).collect();
    let blobs = repo.blobs_at(rev, &paths);
    found
        .iter()
        .zip(blobs)
        .filter(|(_, blob)| blob.is_none())
        .map(|(p, _)| p.clone())
        .collect()
}

/// What to do about a brief in `state` (`None` when committed).
pub(crate) fn brief_advice(state: BriefState) -> Option<&'static str> {
    match state {
        BriefState::Committed => None,
        BriefState::Changed => Some("has changes that are not committed"),
        BriefState::Untracked => Some("is not committed"),
    }
}

/// Why an uncommitted brief matters.
pub(crate) const BRIEF_WHY: &str = "the run uses it as it is on disk, but a later `git agent review` judges by the committed brief (commit it first)";

/// Why a missing script matters.
pub(crate) const SCRIPT_WHY: &str =
    "the run's worktree will not have it (commit it, or stop ignoring it)";

/// Warnings (one line each, with what to do) about `reqs` under `root`.
pub(crate) fn warnings(root: &Path, reqs: &[RunRequest]) -> Vec<String> {
    let Ok(repo) = Repo::discover(root) else {
        return Vec::new();
    };
    let mut said = Vec::new();
    let briefs: Vec<(PathBuf, &str)> = reqs
        .iter()
        .map(|r| (PathBuf::from(&r.brief_display), r.brief.blob_id.as_str()))
        .collect();
    let asked: Vec<(&Path, &str)> = briefs.iter().map(|(p, b)| (p.as_path(), *b)).collect();
    for (req, state) in reqs.iter().zip(brief_states(&repo, &asked)) {
        if let Some(what) = brief_advice(state) {
            said.push(format!("{} {what}: {BRIEF_WHY}", req.brief_display));
        }
    }
    let mut named: Vec<(String, &str, &str)> = Vec::new();
    for req in reqs {
        named.push((
            format!("agents.{}.command", req.agent.name),
            &req.agent.command,
            &req.brief.base,
        ));
        for check in &req.brief.checks {
            named.push((
                format!("the check `{}` of {}", check.name, req.brief_display),
                &check.run,
                &req.brief.base,
            ));
        }
    }
    named.sort();
    named.dedup();
    for (whose, command, base) in named {
        for path in missing_from(root, &repo, base, command) {
            said.push(format!(
                "`{}` (named by {whose}) is not in the committed tree: {SCRIPT_WHY}",
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
