//! `git agent review`: verify any change (a pull request's head, a branch)
//! against its brief, the way a run verifies an agent's work: every changed
//! path judged by the scope, symlinks and embedded repositories refused,
//! `escalate.paths` and `max_changed_lines` flagged for a human, and the
//! brief's checks run — confined like a run's — in a detached worktree at the
//! change's head, which is removed afterwards.
//!
//! The brief and the config are the caller's to choose; the CLI reads both
//! from the merge base, never from the change itself, so a change cannot
//! widen its own scope or turn a check into `true`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use git2::Oid;
use tokio::sync::watch;

use crate::engine::checks::{self, CheckResult, CheckRunner};
use crate::engine::run::Notice;
use crate::engine::verify::{Unsafe, Verifier, MAX_FILE_BYTES};
use crate::exec::process::StopSignal;
use crate::git::{Repo, WorkspaceError, Worktree};
use crate::model::event::{ScopedChange, VerdictRecord};
pub use crate::model::review::{ReviewReport, Verdict};
use crate::model::sandbox::Enforcement;
use crate::spec::brief::{Brief, Check};
use crate::spec::config::SandboxConfig;

/// In a review's directory: the reviewing process's pid, then its worktree.
pub const OWNER_FILE: &str = "owner";

/// The reviews under `reviews_dir` whose process is gone: (name, worktree).
pub fn abandoned(reviews_dir: &Path) -> Vec<(String, Option<PathBuf>)> {
    let Ok(entries) = std::fs::read_dir(reviews_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let owner = std::fs::read_to_string(e.path().join(OWNER_FILE)).unwrap_or_default();
            let mut lines = owner.lines();
            let pid: u32 = lines.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            if crate::model::store::pid_alive(pid) {
                return None;
            }
            Some((
                e.file_name().to_string_lossy().into_owned(),
                lines.next().map(PathBuf::from),
            ))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("could not prepare the review directory {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not confine the checks: {0}")]
    Sandbox(String),
    #[error("could not run check `{name}`")]
    Check {
        name: String,
        #[source]
        source: crate::exec::process::ProcessError,
    },
}

/// What to review.
pub struct ReviewRequest {
    pub brief: Brief,
    /// The change's head commit.
    pub head: Oid,
    /// What it is judged against: the merge base with the target branch.
    pub base: Oid,
}

/// Where and how checks run.
pub struct Setup {
    /// Parent of the review's worktree (outside the repository).
    pub worktree_base: PathBuf,
    /// The review's directory: check output, TMPDIR.
    pub dir: PathBuf,
    pub sandbox: SandboxConfig,
    pub env_source: Vec<(String, String)>,
    pub grace: Duration,
    /// Where warnings go (the sandbox cannot confine, say).
    pub notice: Notice,
}

/// Reviews `req` in a fresh worktree at its head; removes the worktree.
pub async fn review(
    repo: &Repo,
    req: &ReviewRequest,
    setup: &Setup,
    stop: watch::Receiver<StopSignal>,
) -> Result<ReviewReport, ReviewError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReviewError::Io { path, source }
    };
    let tmp = setup.dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let name = setup
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "review".into());
    // Written before the worktree exists: if this process dies, `git agent
    // clean` finds the worktree and knows its owner is gone.
    let wt_path = setup.worktree_base.join(&name);
    let owner = format!("{}\n{}\n", std::process::id(), wt_path.display());
    let owner_file = setup.dir.join(OWNER_FILE);
    std::fs::write(&owner_file, owner).map_err(io(&owner_file))?;
    let wt = repo.create_worktree(&wt_path, req.head, None)?;
    let result = review_in(repo, req, setup, &wt, &tmp, &name, stop).await;
    if let Err(e) = repo.remove_worktree(&wt) {
        tracing::warn!(error = %e, path = %wt.path.display(), "could not remove the review worktree");
    }
    result
}

/// Where one review's checks run.
struct Place<'a> {
    repo: &'a Repo,
    setup: &'a Setup,
    wt: &'a Worktree,
    tmp: &'a Path,
    name: &'a str,
}

async fn review_in(
    repo: &Repo,
    req: &ReviewRequest,
    setup: &Setup,
    wt: &Worktree,
    tmp: &Path,
    name: &str,
    stop: watch::Receiver<StopSignal>,
) -> Result<ReviewReport, ReviewError> {
    let brief = &req.brief;
    let Findings {
        scoped,
        violations,
        needs_human,
    } = judge(repo, req, wt)?;
    let place = Place {
        repo,
        setup,
        wt,
        tmp,
        name,
    };
    let (checks, enforcement) = run_checks(&place, brief, stop).await?;
    let verdict = if !violations.is_empty() || checks.iter().any(|c| !c.passed) {
        Verdict::Fail
    } else if !needs_human.is_empty() {
        Verdict::NeedsHuman
    } else {
        Verdict::Pass
    };
    Ok(ReviewReport {
        task: brief.id.to_string(),
        title: brief.title.clone(),
        head: req.head.to_string(),
        base: req.base.to_string(),
        verdict,
        changes: scoped,
        violations,
        needs_human,
        checks,
        sandbox: enforcement,
    })
}

/// The brief's checks at the change's head, confined like a run's.
async fn run_checks(
    place: &Place<'_>,
    brief: &Brief,
    stop: watch::Receiver<StopSignal>,
) -> Result<(Vec<CheckResult>, Enforcement), ReviewError> {
    let Place {
        repo,
        setup,
        wt,
        tmp,
        name,
    } = *place;
    // Git objects the checks write (a `git stash`, a test that commits) go
    // to the review's own store, thrown away with it; the repository's
    // store is only read.
    let objects = setup.dir.join("objects");
    std::fs::create_dir_all(&objects).map_err(|source| ReviewError::Io {
        path: objects.clone(),
        source,
    })?;
    let (sandbox, enforcement) = prepare_sandbox(&setup.sandbox, wt, tmp, &objects, &setup.notice)?;
    let env = crate::exec::env::build(
        setup.env_source.clone(),
        &[],
        &[
            ("TMPDIR".to_string(), tmp.display().to_string()),
            ("GIT_AGENT_TASK".to_string(), brief.id.to_string()),
            (
                "GIT_OBJECT_DIRECTORY".to_string(),
                objects.display().to_string(),
            ),
            (
                "GIT_ALTERNATE_OBJECT_DIRECTORIES".to_string(),
                repo.common_dir().join("objects").display().to_string(),
            ),
        ],
    );
    let runner = CheckRunner {
        worktree: &wt.path,
        env: &env,
        grace: setup.grace,
        marker: ("GIT_AGENT_RUN_ID".to_string(), name.to_string()),
        sandbox,
    };
    let mut outcomes = Vec::new();
    for (i, check) in brief.checks.iter().enumerate() {
        outcomes.push(
            run_one(
                &runner,
                check,
                setup.dir.join(format!("check-{i}.log")),
                brief,
                stop.clone(),
            )
            .await?,
        );
    }
    Ok((outcomes, enforcement))
}

/// What the verifier found, worded for a reviewer.
struct Findings {
    scoped: Vec<ScopedChange>,
    /// What the change must not do (out of scope, denied, unsafe links).
    violations: Vec<String>,
    /// In scope, but a human must look.
    needs_human: Vec<String>,
}

/// The verifier's findings on the change, worded for a reviewer: what it
/// must not do (violations) and what a human must look at.
fn judge(repo: &Repo, req: &ReviewRequest, wt: &Worktree) -> Result<Findings, ReviewError> {
    let verifier = Verifier {
        brief: &req.brief,
        root: &wt.path,
    };
    let mut violations = Vec::new();
    let mut needs_human = Vec::new();
    let big = verifier.oversized();
    for (path, len) in &big {
        violations.push(format!(
            "`{path}` is {len} bytes, over the limit of {} MiB",
            MAX_FILE_BYTES >> 20
        ));
    }
    if !big.is_empty() {
        return Ok(Findings {
            scoped: Vec::new(),
            violations,
            needs_human,
        });
    }
    let changes = repo.change_set(wt, req.base)?.changes;
    let judged = verifier.scope(&changes);
    for (change, s) in changes.iter().zip(&judged.scoped) {
        match &s.verdict {
            VerdictRecord::OutOfScope => {
                violations.push(format!("`{}` is outside the scope", s.path))
            }
            VerdictRecord::Denied { glob } => {
                violations.push(format!("`{}` is denied by the scope (`{glob}`)", s.path))
            }
            VerdictRecord::Allowed { .. } => {
                if verifier.touches_own_files(change) {
                    needs_human.push(format!(
                        "`{}` changes git-agent's own briefs or config",
                        change.path
                    ));
                }
                for path in verifier.watched(std::slice::from_ref(change)) {
                    needs_human.push(format!("`{path}` is listed in escalate.paths"));
                }
            }
        }
        for found in verifier.unsafe_changes(std::slice::from_ref(change)) {
            violations.push(match found {
                Unsafe::SymlinkEscapes { path, target } => {
                    format!("`{path}` is a symlink pointing outside the repository (→ {target})")
                }
                Unsafe::Gitlink { path } => format!("`{path}` is an embedded git repository"),
                Unsafe::GitPath { path } => {
                    format!("`{path}` is a path some file systems read as `.git`")
                }
            });
        }
    }
    if let Some((lines, max)) = verifier.too_many_lines(&changes) {
        needs_human.push(format!(
            "changes {lines} lines, more than max_changed_lines ({max})"
        ));
    }
    Ok(Findings {
        scoped: judged.scoped,
        violations,
        needs_human,
    })
}

async fn run_one(
    runner: &CheckRunner<'_>,
    check: &Check,
    output: PathBuf,
    brief: &Brief,
    stop: watch::Receiver<StopSignal>,
) -> Result<CheckResult, ReviewError> {
    let result = checks::run_check(runner, check, output, brief.escalate.timeout, stop)
        .await
        .map_err(|source| ReviewError::Check {
            name: check.name.clone(),
            source,
        })?;
    Ok(result)
}

/// The checks' confinement: they run code the change brought, so they may
/// write only the worktree, its admin dir, the review's TMPDIR and its own
/// object store.
fn prepare_sandbox(
    config: &SandboxConfig,
    wt: &Worktree,
    tmp: &Path,
    objects: &Path,
    notice: &Notice,
) -> Result<(Option<Arc<crate::exec::sandbox::Prepared>>, Enforcement), ReviewError> {
    let mut write_dirs = vec![
        wt.path.clone(),
        tmp.to_path_buf(),
        wt.admin_dir.clone(),
        objects.to_path_buf(),
    ];
    write_dirs.extend(config.write_paths.iter().cloned());
    let policy = crate::exec::sandbox::Policy {
        write_dirs,
        write_files: Vec::new(),
        read_deny: config.read_deny.clone(),
        network: config.network,
        sockets: config.sockets.clone(),
        allow: config.allow.clone(),
        sockets_found: None,
    };
    let prepared = crate::exec::sandbox::Prepared::new(config.mode, &policy)
        .map_err(|e| ReviewError::Sandbox(e.to_string()))?;
    Ok(match prepared {
        None => (None, crate::model::sandbox::Enforcement::Off),
        Some(p) => {
            if let Some(note) = &p.effective.note {
                notice(&format!("sandbox: {note}"));
            }
            let enforcement = p.effective.enforcement;
            (Some(Arc::new(p)), enforcement)
        }
    })
}

/// The task's earlier result to build on: the tip of its branch (local,
/// else `origin/`) when git-agent made it for this task.
pub fn earlier_result(repo: &git2::Repository, branch: &str, task: &str) -> Option<Oid> {
    [
        format!("refs/heads/{branch}"),
        format!("refs/remotes/origin/{branch}"),
    ]
    .iter()
    .filter_map(|r| repo.refname_to_id(r).ok())
    .find(|oid| {
        repo.find_commit(*oid)
            .is_ok_and(|c| crate::git::is_agent_commit(&c, task))
    })
}
