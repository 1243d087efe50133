//! After the agent: what it did to git's own state ([`Run::inspect`]), and
//! the verifier's judgement of what it changed ([`Run::judge`]), both turned
//! into violation events and escalation reasons.

use crate::engine::attempt::{Attempts, Step};
use crate::engine::decisions;
use crate::engine::run::{write_file, Run, RunError};
use crate::engine::verify::{Unsafe, Verifier, MAX_FILE_BYTES};
use crate::git::{Change, ChangeSet};
use crate::model::event::{DecisionKind, EventKind, ScopedChange};
use crate::spec::brief::OnScopeViolation;

/// The change set of an attempt that may go on to the checks.
pub(super) struct Judged {
    /// The tree of the agent's change (before the checks run).
    pub(super) tree: git2::Oid,
    /// What the scope allows, minus nothing: the candidate to commit.
    pub(super) in_scope: Vec<Change>,
    /// Reasons a human must look even when the checks pass.
    pub(super) for_human: Vec<String>,
    /// What is on disk and not in `tree`: set aside while the checks run.
    pub(super) not_in_tree: Vec<String>,
    /// Every change of `tree` is in `in_scope`: `tree` is the commit's.
    pub(super) whole: bool,
}

impl Run {
    /// What the agent did to git's own state: objects it wrote (imported
    /// when sound), the repository's config and hooks (restored), its
    /// worktree's HEAD and `.git` file. Returns escalation reasons.
    pub(super) async fn inspect(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        head_before: Option<&[u8]>,
    ) -> Result<Vec<String>, RunError> {
        let mut escalations = Vec::new();
        escalations.extend(self.import_objects(attempt).await?);
        escalations.extend(self.restore_guarded(run, attempt).await?);
        escalations.extend(self.reattached_head(run, attempt, head_before)?);
        escalations.extend(self.rewired_links(run, attempt)?);
        Ok(escalations)
    }

    /// What the agent's git wrote went to the run's own object store:
    /// verified, it joins the repository's (the worktree's index and any
    /// commit of the agent refer to it); a corrupt object escalates.
    async fn import_objects(&self, attempt: u32) -> Result<Option<String>, RunError> {
        let objects = self.dir.objects_dir();
        let imported = self
            .git(move |repo| {
                let imported = repo.import_objects(&objects)?;
                // Emptied, not removed: the sandbox holds the directory.
                if let Ok(entries) = std::fs::read_dir(&objects) {
                    for e in entries.flatten() {
                        let _ = std::fs::remove_dir_all(e.path())
                            .or_else(|_| std::fs::remove_file(e.path()));
                    }
                }
                Ok(imported)
            })
            .await?;
        if imported.corrupt.is_empty() {
            return Ok(None);
        }
        for oid in &imported.corrupt {
            self.event(EventKind::Violation {
                attempt,
                what: "wrote a git object whose content does not match its name (not imported)"
                    .into(),
                path: Some(oid.clone()),
            })?;
        }
        Ok(Some(format!(
            "the agent wrote {} corrupt git object(s)",
            imported.corrupt.len()
        )))
    }

    /// The repository's config, hooks and `info/`, compared with the
    /// snapshot taken before the first attempt and restored.
    async fn restore_guarded(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
    ) -> Result<Option<String>, RunError> {
        let guard = run.guard.clone();
        let tampered = self.git(move |_| guard.check_and_restore()).await?;
        for what in &tampered {
            self.event(EventKind::Violation {
                attempt,
                what: format!("changed the repository's {what} (restored)"),
                path: None,
            })?;
        }
        Ok((!tampered.is_empty())
            .then(|| format!("the agent changed the repository's {}", tampered.join(", "))))
    }

    /// The worktree's `.git` file and its admin dir's `commondir` and
    /// `gitdir`: a rewrite escalates, and they are written back.
    fn rewired_links(&self, run: &Attempts<'_>, attempt: u32) -> Result<Vec<String>, RunError> {
        let mut escalations = Vec::new();
        let git_file = run.wt.git_file_tampered();
        if git_file {
            self.event(EventKind::Violation {
                attempt,
                what: "rewrote the worktree's .git file (restored)".into(),
                path: Some(".git".into()),
            })?;
            escalations.push("the agent rewrote the worktree's .git file".into());
        }
        let rewired = run.wt.admin_dir_problems();
        for problem in &rewired {
            self.event(EventKind::Violation {
                attempt,
                what: format!("rewired the worktree's admin dir (restored): {problem}"),
                path: None,
            })?;
        }
        if !rewired.is_empty() {
            escalations.push("the agent rewired its worktree's admin dir".into());
        }
        if !escalations.is_empty() {
            run.wt.restore_links()?;
        }
        Ok(escalations)
    }

    /// The admin dir is writable (git needs it to commit), so the agent can
    /// write anything into its worktree's HEAD — only a detached commit id
    /// (its own commits move it) is kept — or attach it to a branch (`git symbolic-ref`,
    /// `checkout -b`): a later commit there would move that branch. Detach
    /// it again.
    fn reattached_head(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        before: Option<&[u8]>,
    ) -> Result<Option<String>, RunError> {
        let head_path = run.wt.admin_dir.join("HEAD");
        let (Some(before), Ok(after)) = (before, std::fs::read(&head_path)) else {
            return Ok(None);
        };
        if after == before || names_a_commit(&after) {
            return Ok(None);
        }
        write_file(&head_path, &String::from_utf8_lossy(before))?;
        let (what, reason) = match after.strip_prefix(b"ref:") {
            Some(target) => {
                let target = String::from_utf8_lossy(target).trim().to_string();
                (
                    format!("attached the worktree's HEAD to {target} (detached again)"),
                    format!("the agent attached its worktree's HEAD to {target}"),
                )
            }
            // Garbage there makes every git in the worktree (and the
            // user's `fsck`) fail: "not a git repository".
            None => (
                "wrote something other than a commit id into the worktree's HEAD (restored)"
                    .to_string(),
                "the agent broke its worktree's HEAD".to_string(),
            ),
        };
        self.event(EventKind::Violation {
            attempt,
            what,
            path: None,
        })?;
        Ok(Some(reason))
    }

    /// The verifier on the attempt's change set: oversized files, the scope
    /// (escalate or revert), unsafe links and embedded repositories, then
    /// what a human must see. `escalations` so far end the run here when
    /// there are any, keeping only what may be committed.
    pub(super) async fn judge(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        mut escalations: Vec<String>,
    ) -> Result<Step<Judged>, RunError> {
        let verifier = Verifier {
            brief: &run.req.brief,
            root: &run.wt.path,
        };
        // Before anything hashes the worktree: a huge (or sparse) file
        // would cost minutes and gigabytes to stage; a human decides.
        if let Some(reason) = self.oversized(&verifier, attempt)? {
            escalations.push(reason);
            return self.escalate(escalations.join("; "), None).map(Step::Stop);
        }
        let (staged, in_scope) = match self.scope(run, attempt, &verifier, &mut escalations).await {
            Err(RunError::Workspace(crate::git::WorkspaceError::Deadline { .. })) => {
                escalations.push(
                    "the run's time limit (and the allowance after it) passed before git-agent could take in what the agent left"
                        .to_string(),
                );
                return self.escalate(escalations.join("; "), None).map(Step::Stop);
            }
            judged => judged?,
        };
        escalations.extend(self.unsafe_changes(&verifier, &in_scope, attempt)?);
        if !escalations.is_empty() {
            let keep = verifier.committable(in_scope);
            return self
                .escalate(escalations.join("; "), Some((run.base, keep)))
                .map(Step::Stop);
        }
        Ok(Step::Next(Judged {
            tree: staged.tree,
            for_human: for_human(&verifier, &in_scope),
            whole: in_scope.len() == staged.changes.len(),
            in_scope,
            not_in_tree: staged.not_in_tree,
        }))
    }

    /// Files over [`MAX_FILE_BYTES`], each a violation; the reason to escalate.
    fn oversized(&self, verifier: &Verifier<'_>, attempt: u32) -> Result<Option<String>, RunError> {
        let big = verifier.oversized();
        if big.is_empty() {
            return Ok(None);
        }
        for (path, len) in &big {
            self.event(EventKind::Violation {
                attempt,
                what: format!(
                    "wrote a file of {len} bytes, over the limit of {MAX_FILE_BYTES} (not staged)"
                ),
                path: Some(path.clone()),
            })?;
        }
        Ok(Some(format!(
            "{} file{} over {} MiB: {}",
            big.len(),
            plural(big.len()),
            MAX_FILE_BYTES >> 20,
            list_paths(big.iter().map(|(p, _)| p.as_str()))
        )))
    }

    /// Symlinks out of the worktree and embedded repositories among the
    /// changes in scope, each a violation and a reason to escalate.
    fn unsafe_changes(
        &self,
        verifier: &Verifier<'_>,
        in_scope: &[Change],
        attempt: u32,
    ) -> Result<Vec<String>, RunError> {
        let mut reasons = Vec::new();
        for found in verifier.unsafe_changes(in_scope) {
            let (what, path, reason) = match found {
                Unsafe::SymlinkEscapes { path, target } => (
                    format!("made a symlink pointing outside the worktree (→ {target})"),
                    path.clone(),
                    format!("`{path}` is a symlink pointing outside the worktree"),
                ),
                Unsafe::Gitlink { path } => (
                    "added an embedded git repository".to_string(),
                    path.clone(),
                    format!("`{path}` is an embedded git repository"),
                ),
                Unsafe::GitPath { path } => (
                    "made a path some file systems read as `.git`".to_string(),
                    path.clone(),
                    format!("`{path}` is a path some file systems read as `.git`"),
                ),
            };
            self.event(EventKind::Violation {
                attempt,
                what,
                path: Some(path),
            })?;
            reasons.push(reason);
        }
        Ok(reasons)
    }

    /// The change set judged by the scope; out-of-scope changes escalate
    /// (reasons added to `escalations`) or are reverted, as the brief says.
    /// Returns the change set and the changes in scope.
    async fn scope(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        verifier: &Verifier<'_>,
        escalations: &mut Vec<String>,
    ) -> Result<(ChangeSet, Vec<Change>), RunError> {
        let base = run.base;
        let changes = self.stage(run).await?;
        escalations.extend(self.refused_paths(attempt, &changes.refused)?);
        let judged = verifier.scope(&changes.changes);
        self.scope_report(attempt, judged.scoped)?;
        if judged.outside.is_empty() {
            return Ok((changes, judged.allowed));
        }
        match run.req.brief.escalate.on_scope_violation {
            OnScopeViolation::Escalate => {
                for c in &judged.outside {
                    self.event(EventKind::Violation {
                        attempt,
                        what: "changed a path outside the scope".into(),
                        path: Some(c.path.clone()),
                    })?;
                }
                escalations.push(format!(
                    "{} path{} outside the scope: {}",
                    judged.outside.len(),
                    plural(judged.outside.len()),
                    list_paths(judged.outside.iter().map(|c| c.path.as_str()))
                ));
                Ok((changes, judged.allowed))
            }
            OnScopeViolation::Revert => {
                let (wt, undo) = (run.wt.clone(), judged.outside.clone());
                self.git(move |repo| {
                    repo.restore_in_worktree(&wt, base, &undo.iter().collect::<Vec<_>>())
                })
                .await?;
                self.event(EventKind::Reverted {
                    attempt,
                    paths: judged.outside.iter().map(|c| c.path.clone()).collect(),
                })?;
                let changes = self.stage(run).await?;
                let judged = verifier.scope(&changes.changes);
                self.scope_report(attempt, judged.scoped)?;
                Ok((changes, judged.allowed))
            }
        }
    }

    /// Paths git refused to stage, each a violation; the reason to escalate.
    fn refused_paths(&self, attempt: u32, refused: &[String]) -> Result<Option<String>, RunError> {
        for path in refused {
            self.event(EventKind::Violation {
                attempt,
                what: "made a path git refuses to record (some file systems read it as `.git`)"
                    .into(),
                path: Some(path.clone()),
            })?;
        }
        Ok((!refused.is_empty()).then(|| {
            format!(
                "{} path{} git refuses to record: {}",
                refused.len(),
                plural(refused.len()),
                list_paths(refused.iter().map(String::as_str))
            )
        }))
    }

    /// The worktree's change set against the base. Staged, it is objects
    /// no ref holds: kept reachable (`refs/agent/runs/<run>`) until the
    /// commit does.
    async fn stage(&self, run: &Attempts<'_>) -> Result<ChangeSet, RunError> {
        let (base, wt, id) = (run.base, run.wt.clone(), self.dir.id.clone());
        self.git(move |repo| {
            let changes = repo.candidate(&wt, base)?;
            repo.protect(&id, changes.tree)?;
            Ok(changes)
        })
        .await
    }

    fn scope_report(&self, attempt: u32, changes: Vec<ScopedChange>) -> Result<(), RunError> {
        self.event(EventKind::ScopeReport { attempt, changes })
    }

    /// Reads decisions appended since the last read (bounded: see
    /// [`decisions`]); returns the summary of an `escalate` decision if
    /// the agent recorded one.
    pub(super) fn read_decisions(
        &self,
        attempt: u32,
        read: &mut decisions::Progress,
    ) -> Result<Option<String>, RunError> {
        let mut escalate = None;
        for line in decisions::read_new(&self.dir.decisions_path(), read) {
            match line {
                decisions::Line::Decision(decision) => {
                    if decision.kind == DecisionKind::Escalate {
                        escalate = Some(decision.summary.clone());
                    }
                    self.event(EventKind::Decision { attempt, decision })?;
                }
                decisions::Line::Rejected { line, error } => {
                    self.event(EventKind::DecisionRejected {
                        attempt,
                        line,
                        error,
                    })?
                }
            }
        }
        Ok(escalate)
    }
}

/// Escalations that still let checks run: a human must look anyway.
fn for_human(verifier: &Verifier<'_>, in_scope: &[Change]) -> Vec<String> {
    let mut for_human = Vec::new();
    let watched = verifier.watched(in_scope);
    if !watched.is_empty() {
        for_human.push(format!(
            "changed {} (listed in escalate.paths)",
            list_paths(watched.into_iter())
        ));
    }
    if let Some((lines, max)) = verifier.too_many_lines(in_scope) {
        for_human.push(format!(
            "changed {lines} lines, more than max_changed_lines ({max})"
        ));
    }
    for_human
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Up to five paths in backticks, then how many more.
pub(super) fn list_paths<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = paths.collect();
    let mut shown: Vec<String> = all.iter().take(5).map(|p| format!("`{p}`")).collect();
    if all.len() > 5 {
        shown.push(format!("and {} more", all.len() - 5));
    }
    shown.join(", ")
}

/// A detached HEAD's content: one SHA-1 or SHA-256 object id.
fn names_a_commit(head: &[u8]) -> bool {
    let id = head.strip_suffix(b"\n").unwrap_or(head);
    matches!(id.len(), 40 | 64) && id.iter().all(|b| b.is_ascii_hexdigit())
}
