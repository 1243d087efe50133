//! One run's state machine: prepare → agent → verify → checks → commit.
//!
//! Every step appends an event; `run.json` always says where the run is.
//! Git work is synchronous (git2 and the git CLI) and runs on the blocking
//! pool; the agent and checks are supervised children.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::spec::brief::{Brief, OnScopeViolation};
use crate::spec::config::Agent;
use crate::model::event::{self, Decision, DecisionKind, Event, EventKind, ScopedChange};
use crate::exec::process::{self, ProcessError, ProcessSpec, StopSignal};
use crate::engine::prompt::{self, FailedCheck};
use crate::model::store::{CheckSummary, RunDir, RunRecord, State, Store};
use crate::git::{Change, ChangeKind, Repo, WorkspaceError, Worktree};
use crate::engine::checks;
use crate::exec::env;
use crate::engine::symlink;

/// Largest file a run may leave in its worktree (GitHub refuses bigger
/// ones); a bigger one escalates the run before anything is hashed.
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// Bytes of agent output kept on disk per stream.
pub const AGENT_OUTPUT_LIMIT: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("could not write the run record in {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("could not start the agent")]
    Agent(#[source] ProcessError),
    #[error("could not run check `{name}`")]
    Check {
        name: String,
        #[source]
        source: ProcessError,
    },
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("a background git task failed: {0}")]
    Join(String),
}

/// What all runs of one invocation share.
pub struct Engine {
    /// The user's working tree root (never touched by a run).
    pub root: PathBuf,
    pub store: Store,
    /// Where this repository's worktrees go (outside the repository).
    pub worktree_base: PathBuf,
    pub grace: Duration,
    /// The environment the allowlist picks from (the orchestrator's own).
    pub env_source: Vec<(String, String)>,
    /// `sandbox:` of the config: the confinement of agents and checks.
    pub sandbox: crate::spec::config::SandboxConfig,
    /// `github:` of the config: where and with which token to deliver.
    pub github: crate::spec::config::GithubConfig,
}

impl Engine {
    pub fn new(
        root: &Path,
        common_dir: &Path,
        worktree_dir: Option<PathBuf>,
        grace: Duration,
    ) -> Engine {
        let base = worktree_dir.unwrap_or_else(default_worktree_dir);
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        let hash = git2::Oid::hash_object(
            git2::ObjectType::Blob,
            common_dir.to_string_lossy().as_bytes(),
        )
        .map(|o| o.to_string()[..8].to_string())
        .unwrap_or_default();
        Engine {
            root: root.to_path_buf(),
            store: Store::new(common_dir),
            worktree_base: base.join(format!("{name}-{hash}")),
            grace,
            env_source: std::env::vars().collect(),
            sandbox: crate::spec::config::SandboxConfig::default(),
            github: crate::spec::config::GithubConfig::default(),
        }
    }
}

fn default_worktree_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("git-agent").join("worktrees")
}

/// Called whenever a run's record changes, for progress displays.
pub type Progress = Arc<dyn Fn(&RunRecord) + Send + Sync>;

/// One brief to run with one agent.
pub struct RunRequest {
    pub brief: Brief,
    pub agent: Agent,
    pub brief_display: String,
    /// Continue this interrupted run in its kept worktree instead of starting anew.
    pub resume: Option<RunRecord>,
    /// Review comments to address (`run --address-review PR`), and the
    /// commit to start from: the task's earlier result, which the comments
    /// are about. The change is still judged, and committed, against `base`.
    pub review: Option<ReviewInput>,
}

/// A pull request's review comments for the agent to address.
#[derive(Debug, Clone)]
pub struct ReviewInput {
    pub pull_request: u64,
    pub comments: Vec<crate::deliver::forge::ReviewComment>,
    /// The earlier result of the task (git-agent's own commit), if any.
    pub start_at: Option<git2::Oid>,
}

/// Runs a brief to its end. Errors only when even the run record cannot be
/// written; every other failure ends as a `failed` record with the reason.
pub async fn execute(
    engine: Arc<Engine>,
    req: RunRequest,
    stop: watch::Receiver<StopSignal>,
    progress: Progress,
) -> Result<RunRecord, RunError> {
    let run_dir = match &req.resume {
        Some(prev) => engine.store.open(&prev.run_id),
        None => engine
            .store
            .create(req.brief.id.as_str())
            .map_err(|source| RunError::Store {
                path: engine.store.dir().to_path_buf(),
                source,
            })?,
    };
    let record = match &req.resume {
        Some(prev) => RunRecord {
            state: State::Preparing,
            pid: std::process::id(),
            reason: None,
            finished_at: None,
            duration_ms: None,
            brief_blob: req.brief.blob_id.clone(),
            max_attempts: req.brief.escalate.attempts,
            ..prev.clone()
        },
        None => RunRecord {
            schema: 1,
            run_id: run_dir.id.clone(),
            task: req.brief.id.to_string(),
            title: req.brief.title.clone(),
            brief_path: req.brief_display.clone(),
            brief_blob: req.brief.blob_id.clone(),
            agent: req.agent.name.clone(),
            state: State::Preparing,
            base_ref: req.brief.base.clone(),
            base_commit: None,
            branch: None,
            commit: None,
            attempts: 0,
            max_attempts: req.brief.escalate.attempts,
            worktree: None,
            reason: None,
            checks: Vec::new(),
            pid: std::process::id(),
            started_at: crate::model::time::now_rfc3339(),
            finished_at: None,
            duration_ms: None,
            delivery: None,
        },
    };
    let mut run = Run {
        record,
        dir: run_dir,
        engine: engine.clone(),
        progress,
        started: Instant::now(),
        worktree: None,
    };
    run.save()?;
    let end = match run.steps(&req, stop).await {
        Ok(end) => end,
        Err(err) => End::failed(error_chain(&err)),
    };
    run.finish(&req, end).await?;
    Ok(run.record)
}

/// How a run ends, before committing.
struct End {
    state: State,
    reason: Option<String>,
    /// In-scope changes to commit (succeeded or escalated runs).
    keep: Option<(git2::Oid, Vec<Change>)>,
}

impl End {
    fn failed(reason: String) -> End {
        End {
            state: State::Failed,
            reason: Some(reason),
            keep: None,
        }
    }
}

struct Run {
    record: RunRecord,
    dir: RunDir,
    engine: Arc<Engine>,
    progress: Progress,
    started: Instant,
    worktree: Option<Worktree>,
}

impl Run {
    fn save(&self) -> Result<(), RunError> {
        self.dir
            .write_record(&self.record)
            .map_err(|source| RunError::Store {
                path: self.dir.record_path(),
                source,
            })?;
        (self.progress)(&self.record);
        Ok(())
    }

    fn event(&self, kind: EventKind) -> Result<(), RunError> {
        self.dir
            .append_event(&Event::now(kind))
            .map_err(|source| RunError::Store {
                path: self.dir.events_path(),
                source,
            })
    }

    fn set_state(&mut self, state: State) -> Result<(), RunError> {
        self.record.state = state;
        self.save()
    }

    async fn git<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Repo) -> Result<T, WorkspaceError> + Send + 'static,
    ) -> Result<T, RunError> {
        let root = self.engine.root.clone();
        tokio::task::spawn_blocking(move || {
            let repo = Repo::discover(&root)?;
            op(&repo)
        })
        .await
        .map_err(|e| RunError::Join(e.to_string()))?
        .map_err(RunError::from)
    }

    async fn steps(
        &mut self,
        req: &RunRequest,
        stop: watch::Receiver<StopSignal>,
    ) -> Result<End, RunError> {
        let brief = &req.brief;
        if req.resume.is_some() {
            return self.resume(req, stop).await;
        }
        let base_ref = brief.base.clone();
        let base = self.git(move |repo| repo.resolve_commit(&base_ref)).await?;
        self.record.base_commit = Some(base.to_string());
        self.save()?;
        self.event(EventKind::RunStarted {
            task: brief.id.to_string(),
            title: brief.title.clone(),
            brief: req.brief_display.clone(),
            brief_blob: brief.blob_id.clone(),
            agent: req.agent.name.clone(),
            base_ref: brief.base.clone(),
            base_commit: base.to_string(),
            goal: crate::spec::brief::goal_of(&brief.body),
        })?;

        let wt_path = self.engine.worktree_base.join(&self.dir.id);
        // Written ahead: if we die while git makes it, `clean` still finds it.
        self.record.worktree = Some(wt_path.clone());
        self.save()?;
        let sparse = brief.sparse_patterns();
        let t = Instant::now();
        let is_sparse = sparse.is_some();
        // Addressing a review starts from the work the comments are about,
        // replayed onto today's base (which may have moved since).
        let earlier = req.review.as_ref().and_then(|r| r.start_at);
        let start = match earlier {
            Some(result) => self
                .git(move |repo| repo.replay_onto(result, base))
                .await?
                .unwrap_or_else(|| {
                    tracing::warn!(%result, "the earlier result does not apply to the base; starting from the base");
                    base
                }),
            None => base,
        };
        let wt = self
            .git(move |repo| repo.create_worktree(&wt_path, start, sparse.as_deref()))
            .await?;
        self.record.worktree = Some(wt.path.clone());
        self.worktree = Some(wt.clone());
        self.save()?;
        self.event(EventKind::WorktreeReady {
            path: wt.path.display().to_string(),
            sparse: is_sparse,
            ms: t.elapsed().as_millis() as u64,
        })?;
        if let Some(review) = &req.review {
            self.event(EventKind::ReviewFeedback {
                pull_request: review.pull_request,
                comments: review.comments.len(),
                start_at: (start != base).then(|| start.to_string()),
            })?;
        }
        self.attempts(req, stop, base, wt, 1, None, 0).await
    }

    /// Continues an interrupted run: same worktree, same base, the
    /// interrupted attempt again with the feedback it had.
    async fn resume(
        &mut self,
        req: &RunRequest,
        stop: watch::Receiver<StopSignal>,
    ) -> Result<End, RunError> {
        let prev = req
            .resume
            .as_ref()
            .expect("resume() is only called for a resumed run");
        let base = prev
            .base_commit
            .as_deref()
            .and_then(|b| git2::Oid::from_str(b).ok())
            .ok_or_else(|| RunError::Resume("the run never resolved its base commit".into()))?;
        let path = prev
            .worktree
            .clone()
            .ok_or_else(|| RunError::Resume("the run has no worktree".into()))?;
        let sparse = req.brief.sparse_patterns().is_some();
        let wt = self
            .git(move |repo| Ok(repo.find_worktree(&path, sparse)))
            .await?
            .ok_or_else(|| {
                RunError::Resume("its worktree is gone (removed by `git agent clean`?)".into())
            })?;
        self.record.worktree = Some(wt.path.clone());
        self.worktree = Some(wt.clone());
        let attempt = prev.attempts.clamp(1, req.brief.escalate.attempts);
        self.event(EventKind::Resumed { attempt })?;
        let feedback = std::fs::read_to_string(self.dir.feedback_path())
            .ok()
            .filter(|f| !f.trim().is_empty());
        let decisions_read = std::fs::read_to_string(self.dir.decisions_path())
            .map(|t| t.lines().count())
            .unwrap_or(0);
        self.attempts(req, stop, base, wt, attempt, feedback, decisions_read)
            .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the state a fresh or a resumed run hands over"
    )]
    async fn attempts(
        &mut self,
        req: &RunRequest,
        mut stop: watch::Receiver<StopSignal>,
        base: git2::Oid,
        wt: Worktree,
        first_attempt: u32,
        mut feedback: Option<String>,
        mut decisions_read: usize,
    ) -> Result<End, RunError> {
        let brief = &req.brief;
        let guard = self.git(|repo| repo.guard()).await?;
        let tmp = self.dir.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|source| RunError::Store {
            path: tmp.clone(),
            source,
        })?;
        let deadline = self.started + brief.escalate.timeout;
        let marker = ("GIT_AGENT_RUN_ID".to_string(), self.dir.id.clone());
        let sandbox = match self.prepare_sandbox(&wt, &req.agent) {
            Ok(s) => s,
            Err(reason) => return Ok(End::failed(reason)),
        };

        for attempt in first_attempt..=brief.escalate.attempts {
            if *stop.borrow_and_update() != StopSignal::Run {
                return Ok(interrupted());
            }
            self.record.attempts = attempt;
            self.set_state(State::Running)?;
            self.event(EventKind::AttemptStarted { attempt })?;

            let review = req
                .review
                .as_ref()
                .map(|r| prompt::review_comments(r.pull_request, &r.comments));
            let prompt_text =
                prompt::render(brief, attempt, feedback.as_deref(), review.as_deref());
            write_file(&self.dir.prompt_path(), &prompt_text)?;
            write_file(&self.dir.feedback_path(), feedback.as_deref().unwrap_or(""))?;
            let extra = agent_extra_env(&self.dir, brief.id.as_str(), attempt);
            // The adapter (src/agent/) builds the command line; a missing CLI ends the run here.
            let invocation = match crate::agent::invocation(
                &req.agent,
                &crate::agent::Context {
                    brief,
                    worktree: &wt.path,
                    run_dir: &self.dir.path,
                    prompt_file: &self.dir.prompt_path(),
                    attempt,
                    feedback: feedback.as_deref(),
                    env_source: &self.engine.env_source,
                    sandboxed: sandbox.as_ref().is_some_and(|s| s.confines_writes()),
                },
            ) {
                Ok(invocation) => invocation,
                Err(message) => return Ok(End::failed(message)),
            };
            let mut extra = extra;
            extra.extend(invocation.env);
            let agent_env = env::build(self.engine.env_source.clone(), &req.agent.pass_env, &extra);
            let remaining = deadline.saturating_duration_since(Instant::now());
            let spec = ProcessSpec {
                program: invocation.program,
                args: invocation.args,
                cwd: wt.path.clone(),
                env: agent_env,
                stdout_path: self.dir.agent_output(attempt, "stdout"),
                stderr_path: self.dir.agent_output(attempt, "stderr"),
                output_limit: AGENT_OUTPUT_LIMIT,
                timeout: Some(remaining.max(Duration::from_millis(1))),
                grace: self.engine.grace,
                marker: Some(marker.clone()),
                sandbox: sandbox.clone(),
            };
            let head_path = wt.admin_dir.join("HEAD");
            let head_before = std::fs::read(&head_path).ok();
            let (outcome, budget_stop) =
                crate::agent::supervise(&spec, stop.clone(), &req.agent, brief)
                    .await
                    .map_err(RunError::Agent)?;
            let (exit_code, signal) = match outcome.exit {
                process::ExitKind::Code(c) => (Some(c), None),
                process::ExitKind::Signal(s) => (None, Some(s)),
            };
            self.event(EventKind::AgentFinished {
                attempt,
                exit_code,
                signal,
                timed_out: outcome.timed_out,
                duration_ms: outcome.duration.as_millis() as u64,
                stdout_bytes: outcome.stdout_bytes,
                stderr_bytes: outcome.stderr_bytes,
                leaked: outcome.leaked,
            })?;
            let asked_for_human = self.read_decisions(attempt, &mut decisions_read)?;
            if outcome.stopped.is_some() {
                return Ok(interrupted());
            }
            let agent_stderr =
                process::tail(&self.dir.agent_output(attempt, "stderr"), 600).unwrap_or_default();
            if let process::ExitKind::Code(code @ (126 | 127)) = outcome.exit {
                // The shell could not find or run the command: retrying cannot help.
                return Ok(End::failed(format!(
                    "the agent command `{}` could not start (exit {code}): {}",
                    req.agent.command,
                    agent_stderr.trim()
                )));
            }

            // Verify.
            self.set_state(State::Verifying)?;
            let mut escalations: Vec<String> = Vec::new();
            // What the agent CLI reported (tool calls, turns, cost), its budgets and failures.
            let report = crate::agent::report(
                &req.agent,
                brief,
                &self.dir.agent_output(attempt, "stdout"),
                &self.dir.agent_output(attempt, "stderr"),
                &outcome,
                budget_stop,
            );
            if let Some(activity) = report.activity {
                self.event(EventKind::AgentActivity { attempt, activity })?;
            }
            if let Some(reason) = report.fatal {
                return Ok(End::failed(reason));
            }
            escalations.extend(report.escalations);
            if let Some(summary) = asked_for_human {
                escalations.push(format!("the agent asked for a human: {summary}"));
            }
            if outcome.timed_out {
                escalations.push(format!(
                    "the run hit its time limit of {}",
                    humantime::format_duration(brief.escalate.timeout)
                ));
            }
            // What the agent's git wrote went to the run's own object store:
            // verified, it joins the repository's (the worktree's index and
            // any commit of the agent refer to it).
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
            if !imported.corrupt.is_empty() {
                for oid in &imported.corrupt {
                    self.event(EventKind::Violation {
                        attempt,
                        what: "wrote a git object whose content does not match its name (not imported)"
                            .into(),
                        path: Some(oid.clone()),
                    })?;
                }
                escalations.push(format!(
                    "the agent wrote {} corrupt git object(s)",
                    imported.corrupt.len()
                ));
            }
            let g = guard.clone();
            let tampered = self.git(move |_| guard_check(&g)).await?;
            for what in &tampered {
                self.event(EventKind::Violation {
                    attempt,
                    what: format!("changed the repository's {what} (restored)"),
                    path: None,
                })?;
            }
            if !tampered.is_empty() {
                escalations.push(format!(
                    "the agent changed the repository's {}",
                    tampered.join(", ")
                ));
            }
            // The admin dir is writable (git needs it to commit), so the
            // agent can attach its worktree's HEAD to a branch (`git
            // symbolic-ref`, `checkout -b`): a later commit there would move
            // that branch. Detach it again.
            if let (Some(before), Ok(after)) = (&head_before, std::fs::read(&head_path)) {
                if after.starts_with(b"ref:") && &after != before {
                    let target = String::from_utf8_lossy(&after[4..]).trim().to_string();
                    write_file(&head_path, &String::from_utf8_lossy(before))?;
                    self.event(EventKind::Violation {
                        attempt,
                        what: format!("attached the worktree's HEAD to {target} (detached again)"),
                        path: None,
                    })?;
                    escalations.push(format!(
                        "the agent attached its worktree's HEAD to {target}"
                    ));
                }
            }
            if wt.git_file_tampered() {
                self.event(EventKind::Violation {
                    attempt,
                    what: "rewrote the worktree's .git file".into(),
                    path: Some(".git".into()),
                })?;
                escalations.push("the agent rewrote the worktree's .git file".into());
            }

            // Before anything hashes the worktree: a huge (or sparse) file
            // would cost minutes and gigabytes to stage; a human decides.
            let big = oversized_files(&wt.path, MAX_FILE_BYTES);
            if !big.is_empty() {
                for (path, len) in &big {
                    self.event(EventKind::Violation {
                        attempt,
                        what: format!(
                            "wrote a file of {len} bytes, over the limit of {MAX_FILE_BYTES} (not staged)"
                        ),
                        path: Some(path.clone()),
                    })?;
                }
                escalations.push(format!(
                    "{} file{} over {} MiB: {}",
                    big.len(),
                    if big.len() == 1 { "" } else { "s" },
                    MAX_FILE_BYTES >> 20,
                    list_paths(big.iter().map(|(p, _)| p.as_str()))
                ));
                let reason = escalations.join("; ");
                return self.escalate(reason, None);
            }

            let wt2 = wt.clone();
            let mut changes = self.git(move |repo| repo.change_set(&wt2, base)).await?;
            let mut scoped = self.scope_report(attempt, brief, &changes.changes)?;
            let outside: Vec<Change> = changes
                .changes
                .iter()
                .zip(&scoped)
                .filter(|(_, s)| !matches!(s.verdict, crate::model::event::VerdictRecord::Allowed { .. }))
                .map(|(c, _)| c.clone())
                .collect();
            if !outside.is_empty() {
                match brief.escalate.on_scope_violation {
                    OnScopeViolation::Escalate => {
                        for c in &outside {
                            self.event(EventKind::Violation {
                                attempt,
                                what: "changed a path outside the scope".into(),
                                path: Some(c.path.clone()),
                            })?;
                        }
                        escalations.push(format!(
                            "{} path{} outside the scope: {}",
                            outside.len(),
                            if outside.len() == 1 { "" } else { "s" },
                            list_paths(outside.iter().map(|c| c.path.as_str()))
                        ));
                    }
                    OnScopeViolation::Revert => {
                        let wt3 = wt.clone();
                        let undo = outside.clone();
                        self.git(move |repo| {
                            repo.restore_in_worktree(&wt3, base, &undo.iter().collect::<Vec<_>>())
                        })
                        .await?;
                        self.event(EventKind::Reverted {
                            attempt,
                            paths: outside.iter().map(|c| c.path.clone()).collect(),
                        })?;
                        let wt4 = wt.clone();
                        changes = self.git(move |repo| repo.change_set(&wt4, base)).await?;
                        scoped = self.scope_report(attempt, brief, &changes.changes)?;
                    }
                }
            }
            let in_scope: Vec<Change> = changes
                .changes
                .iter()
                .zip(&scoped)
                .filter(|(_, s)| matches!(s.verdict, crate::model::event::VerdictRecord::Allowed { .. }))
                .map(|(c, _)| c.clone())
                .collect();
            for c in &in_scope {
                if let Some(target) = &c.symlink_target {
                    if symlink_escapes(&c.path, target) || symlink::escapes(&wt.path, &c.path) {
                        self.event(EventKind::Violation {
                            attempt,
                            what: format!(
                                "made a symlink pointing outside the worktree (→ {target})"
                            ),
                            path: Some(c.path.clone()),
                        })?;
                        escalations.push(format!(
                            "`{}` is a symlink pointing outside the worktree",
                            c.path
                        ));
                    }
                }
                if c.gitlink {
                    self.event(EventKind::Violation {
                        attempt,
                        what: "added an embedded git repository".into(),
                        path: Some(c.path.clone()),
                    })?;
                    escalations.push(format!("`{}` is an embedded git repository", c.path));
                }
            }
            if !escalations.is_empty() {
                let reason = escalations.join("; ");
                return self.escalate(reason, Some((base, without_unsafe(&wt.path, in_scope))));
            }

            // Escalations that still let checks run: a human must look anyway.
            let mut review: Vec<String> = Vec::new();
            let watched: Vec<&str> = in_scope
                .iter()
                .filter(|c| brief.escalate.paths.first_match(&c.path).is_some())
                .map(|c| c.path.as_str())
                .collect();
            if !watched.is_empty() {
                review.push(format!(
                    "changed {} (listed in escalate.paths)",
                    list_paths(watched.into_iter())
                ));
            }
            let lines: usize = in_scope
                .iter()
                .map(|c| c.lines_added + c.lines_removed)
                .sum();
            if let Some(max) = brief.escalate.max_changed_lines {
                if lines as u64 > max {
                    review.push(format!(
                        "changed {lines} lines, more than max_changed_lines ({max})"
                    ));
                }
            }

            if in_scope.is_empty() {
                let reason = match outcome.exit {
                    process::ExitKind::Code(0) => "the agent changed nothing in scope".to_string(),
                    exit => format!(
                        "the agent changed nothing in scope; it ended with {exit}: {}",
                        agent_stderr.trim().lines().last().unwrap_or("")
                    ),
                };
                self.event(EventKind::AttemptFailed {
                    attempt,
                    reason: reason.clone(),
                })?;
                feedback = Some(prompt::feedback(
                    &[format!("Attempt {attempt} changed no file inside the scope. Make the change the task asks for.")],
                    &[],
                ));
                if attempt == brief.escalate.attempts {
                    return Ok(End::failed(reason));
                }
                continue;
            }

            // Checks.
            self.set_state(State::Checking)?;
            let check_env = env::build(
                self.engine.env_source.clone(),
                &[],
                &[
                    ("TMPDIR".to_string(), path_str(&tmp)),
                    ("GIT_AGENT_TASK".to_string(), brief.id.to_string()),
                    (
                        "GIT_OBJECT_DIRECTORY".to_string(),
                        path_str(&self.dir.objects_dir()),
                    ),
                    (
                        "GIT_ALTERNATE_OBJECT_DIRECTORIES".to_string(),
                        path_str(&self.dir.shared_objects()),
                    ),
                ],
            );
            let runner = checks::CheckRunner {
                worktree: &wt.path,
                env: &check_env,
                grace: self.engine.grace,
                marker: marker.clone(),
                sandbox: sandbox.clone(),
            };
            let mut results = Vec::new();
            for (i, check) in brief.checks.iter().enumerate() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let result = checks::run_check(
                    &runner,
                    check,
                    self.dir.check_output(attempt, i),
                    remaining.max(Duration::from_millis(1)),
                    stop.clone(),
                )
                .await
                .map_err(|source| RunError::Check {
                    name: check.name.clone(),
                    source,
                })?;
                let (exit_code, _) = match result.exit {
                    process::ExitKind::Code(c) => (Some(c), None::<i32>),
                    process::ExitKind::Signal(_) => (None, None),
                };
                self.event(EventKind::CheckFinished {
                    attempt,
                    name: result.name.clone(),
                    command: result.command.clone(),
                    passed: result.passed,
                    exit_code,
                    timed_out: result.timed_out,
                    duration_ms: result.duration.as_millis() as u64,
                    output_tail: if result.passed {
                        String::new()
                    } else {
                        result.tail.clone()
                    },
                })?;
                if result.stopped {
                    return Ok(interrupted());
                }
                results.push(result);
            }
            self.record.checks = results
                .iter()
                .map(|r| CheckSummary {
                    name: r.name.clone(),
                    passed: r.passed,
                })
                .collect();
            self.save()?;
            let failed: Vec<&checks::CheckResult> = results.iter().filter(|r| !r.passed).collect();
            if failed.is_empty() {
                if !review.is_empty() {
                    let reason = review.join("; ");
                    return self.escalate(reason, Some((base, in_scope)));
                }
                return Ok(End {
                    state: State::Succeeded,
                    reason: None,
                    keep: Some((base, in_scope)),
                });
            }
            if attempt < brief.escalate.attempts {
                self.discard_check_artifacts(attempt, &wt, base, changes.tree)
                    .await?;
            }
            let names = failed
                .iter()
                .map(|r| format!("`{}`", r.name))
                .collect::<Vec<_>>()
                .join(", ");
            let reason = format!(
                "check{} {names} failed",
                if failed.len() == 1 { "" } else { "s" }
            );
            self.event(EventKind::AttemptFailed {
                attempt,
                reason: reason.clone(),
            })?;
            feedback = Some(prompt::feedback(
                &[],
                &failed
                    .iter()
                    .map(|r| FailedCheck {
                        name: r.name.clone(),
                        command: r.command.clone(),
                        exit: if r.timed_out {
                            "timed out".into()
                        } else {
                            r.exit.to_string()
                        },
                        output_tail: r.tail.clone(),
                    })
                    .collect::<Vec<_>>(),
            ));
            if Instant::now() >= deadline {
                let reason = format!("{reason}, and the run hit its time limit");
                return self.escalate(reason, None);
            }
            if attempt == brief.escalate.attempts {
                return Ok(End::failed(format!(
                    "{reason} on the last attempt ({attempt} of {attempt})"
                )));
            }
        }
        Ok(End::failed("no attempts were made".into()))
    }

    /// The run's sandbox, prepared once (ruleset built, paths opened) and
    /// applied to every agent attempt and check; its effective policy is
    /// recorded as a `sandbox` event. An error is the reason the run fails.
    fn prepare_sandbox(
        &self,
        wt: &Worktree,
        agent: &Agent,
    ) -> Result<Option<Arc<crate::exec::sandbox::Prepared>>, String> {
        let config = &self.engine.sandbox;
        let decisions = self.dir.decisions_path();
        // Only this file of the run dir is writable, and only as an
        // existing file: create it now.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&decisions)
            .map_err(|e| format!("could not create {}: {e}", decisions.display()))?;
        // What `git add`/`git commit` in a detached worktree writes: objects
        // (into the run's own store), and the worktree's HEAD, index, logs.
        let objects = self.dir.objects_dir();
        std::fs::create_dir_all(&objects)
            .map_err(|e| format!("could not create {}: {e}", objects.display()))?;
        let mut write_dirs = vec![wt.path.clone(), self.dir.tmp_dir(), objects];
        write_dirs.push(wt.admin_dir.clone());
        write_dirs.extend(config.write_paths.iter().cloned());
        // The agent CLI's own state (Codex's CODEX_HOME, Claude's config dir).
        let (state_dirs, state_files) =
            crate::agent::state_paths(agent.adapter, &self.engine.env_source);
        write_dirs.extend(state_dirs);
        let mut write_files = vec![decisions];
        write_files.extend(state_files);
        let policy = crate::exec::sandbox::Policy {
            write_dirs,
            write_files,
            read_deny: config.read_deny.clone(),
            network: config.network,
        };
        let prepared =
            crate::exec::sandbox::Prepared::new(config.mode, &policy).map_err(|e| e.to_string())?;
        let Some(prepared) = prepared else {
            self.event(EventKind::Sandbox {
                policy: crate::model::sandbox::Effective {
                    enforcement: crate::model::sandbox::Enforcement::Off,
                    landlock_abi: crate::exec::sandbox::landlock_abi(),
                    network: crate::model::sandbox::NetworkPolicy::Open,
                    writable: Vec::new(),
                    read_deny: Vec::new(),
                    user_namespace: false,
                    note: Some("`sandbox.mode: off` in the config".into()),
                },
            })
            .map_err(|e| error_chain(&e))?;
            return Ok(None);
        };
        if let Some(note) = &prepared.effective.note {
            crate::exec::sandbox::warn_once(note);
        }
        self.event(EventKind::Sandbox {
            policy: prepared.effective.clone(),
        })
        .map_err(|e| error_chain(&e))?;
        Ok(Some(Arc::new(prepared)))
    }

    /// Puts the worktree back as the agent left it: what the checks wrote
    /// (build output, caches git does not ignore, formatter edits) must not
    /// count as the agent's change on the next attempt.
    async fn discard_check_artifacts(
        &self,
        attempt: u32,
        wt: &Worktree,
        base: git2::Oid,
        agent_tree: git2::Oid,
    ) -> Result<(), RunError> {
        let wt = wt.clone();
        let paths = self
            .git(move |repo| {
                let before_checks = repo.snapshot_commit(base, agent_tree)?;
                let artifacts = repo.change_set(&wt, before_checks)?;
                if artifacts.changes.is_empty() {
                    return Ok(Vec::new());
                }
                let refs: Vec<&Change> = artifacts.changes.iter().collect();
                repo.restore_in_worktree(&wt, before_checks, &refs)?;
                Ok(artifacts
                    .changes
                    .iter()
                    .map(|c| c.path.clone())
                    .collect::<Vec<_>>())
            })
            .await?;
        if !paths.is_empty() {
            self.event(EventKind::CheckArtifactsRemoved { attempt, paths })?;
        }
        Ok(())
    }

    /// Ends the run as escalated: logs why and keeps `keep` for the branch.
    fn escalate(
        &self,
        reason: String,
        keep: Option<(git2::Oid, Vec<Change>)>,
    ) -> Result<End, RunError> {
        self.event(EventKind::Escalated {
            reason: reason.clone(),
        })?;
        Ok(End {
            state: State::Escalated,
            reason: Some(reason),
            keep,
        })
    }

    /// Reads decisions appended since the last read; returns the summary of
    /// an `escalate` decision if the agent recorded one.
    fn read_decisions(&self, attempt: u32, read: &mut usize) -> Result<Option<String>, RunError> {
        let text = std::fs::read_to_string(self.dir.decisions_path()).unwrap_or_default();
        let mut escalate = None;
        for line in text.lines().skip(*read) {
            *read += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Decision>(line) {
                Ok(decision) => {
                    if decision.kind == DecisionKind::Escalate {
                        escalate = Some(decision.summary.clone());
                    }
                    self.event(EventKind::Decision { attempt, decision })?;
                }
                Err(e) => self.event(EventKind::DecisionRejected {
                    attempt,
                    line: line.chars().take(500).collect(),
                    error: e.to_string(),
                })?,
            }
        }
        Ok(escalate)
    }

    fn scope_report(
        &self,
        attempt: u32,
        brief: &Brief,
        changes: &[Change],
    ) -> Result<Vec<ScopedChange>, RunError> {
        let scoped = scope_changes(brief, changes);
        self.event(EventKind::ScopeReport {
            attempt,
            changes: scoped.clone(),
        })?;
        Ok(scoped)
    }

    async fn finish(&mut self, req: &RunRequest, end: End) -> Result<(), RunError> {
        let brief = &req.brief;
        self.record.reason = end.reason.clone();
        let mut end_state = end.state;
        if let (Some((base, keep)), State::Succeeded | State::Escalated) = (end.keep, end.state) {
            if !keep.is_empty() {
                self.set_state(State::Committing)?;
                let message = commit_message(brief, &self.dir.id, end.state);
                let branch = brief.output.branch.clone();
                let task = brief.id.to_string();
                let committed = self
                    .git(move |repo| {
                        let refs: Vec<&Change> = keep.iter().collect();
                        let tree = repo.build_tree(base, &refs)?;
                        repo.commit_to_branch(&branch, base, tree, &message, &|c: &git2::Commit| {
                            crate::git::is_agent_commit(c, &task)
                        })
                    })
                    .await;
                match committed {
                    Ok((branch, commit)) => {
                        self.record.branch = Some(branch.clone());
                        self.record.commit = Some(commit.to_string());
                        self.event(EventKind::Committed {
                            branch,
                            commit: commit.to_string(),
                        })?;
                    }
                    Err(e) => {
                        end_state = State::Failed;
                        self.record.reason = Some(format!("could not commit: {}", error_chain(&e)));
                    }
                }
            }
        }
        let duration = self.started.elapsed();
        self.record.state = end_state;
        self.record.finished_at = Some(crate::model::time::now_rfc3339());
        self.record.duration_ms = Some(duration.as_millis() as u64);
        self.event(EventKind::RunFinished {
            outcome: end_state,
            duration_ms: duration.as_millis() as u64,
            reason: self.record.reason.clone(),
        })?;
        if let Some(commit) = self.record.commit.clone() {
            let events = self.dir.read_events().unwrap_or_default();
            let note = crate::report::markdown::render_markdown(&self.record, &events);
            if let Ok(oid) = git2::Oid::from_str(&commit) {
                // The branch is the deliverable; a missing note is logged, not fatal.
                if let Err(e) = self.git(move |repo| repo.add_note(oid, &note)).await {
                    tracing::warn!(error = %error_chain(&e), "could not attach the decision log note");
                }
            }
        }
        // An escalated run with `escalate.fallback: issue` is handed to a
        // human even when it committed nothing.
        let hand_back = end_state == State::Escalated
            && brief.escalate.fallback == crate::spec::brief::EscalateFallback::Issue
            && matches!(
                brief.output.deliver,
                crate::spec::brief::Deliver::Pr | crate::spec::brief::Deliver::DraftPr
            );
        if brief.output.deliver != crate::spec::brief::Deliver::Branch
            && (self.record.commit.is_some() || hand_back)
        {
            self.deliver(brief).await?;
        }
        if end_state == State::Succeeded {
            if let Some(wt) = self.worktree.take() {
                match self.git(move |repo| repo.remove_worktree(&wt)).await {
                    Ok(()) => self.record.worktree = None,
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "could not remove the worktree")
                    }
                }
            }
        }
        self.save()
    }
}

impl Run {
    /// Pushes and opens the pull request. A failure is recorded in
    /// `run.json` (`delivery.state: failed`) and never loses the run: the
    /// branch and the log stay, and `git agent deliver RUN` retries.
    async fn deliver(&mut self, brief: &Brief) -> Result<(), RunError> {
        use crate::deliver::Target;
        use crate::model::delivery::{DeliveryRecord, DeliveryState};
        let out = &brief.output;
        let base = brief.base.strip_prefix("origin/").unwrap_or(&brief.base);
        self.record.delivery = Some(DeliveryRecord::new(
            out.deliver,
            brief.escalate.fallback,
            base,
            &out.labels,
            &out.reviewers,
        ));
        let common = self.engine.store.dir().join("../..");
        let github = &self.engine.github;
        let delivery = match Target::discover(
            &common,
            github.api_url.clone(),
            github.token_env.as_deref(),
            &self.engine.env_source,
        ) {
            Ok(target) => {
                let events = self.dir.read_events().unwrap_or_default();
                crate::deliver::deliver(&target, &self.record, &events).await
            }
            Err(reason) => DeliveryRecord {
                state: DeliveryState::Failed,
                reason: Some(reason),
                ..self.record.delivery.clone().unwrap_or_default()
            },
        };
        if let Some(reason) = &delivery.reason {
            tracing::warn!(%reason, "delivery failed; the branch stays, retry with `git agent deliver`");
        }
        self.event(delivery.event())?;
        self.record.delivery = Some(delivery);
        Ok(())
    }
}

/// The variables git-agent adds to an agent's allowlisted environment.
pub fn agent_extra_env(dir: &RunDir, task: &str, attempt: u32) -> Vec<(String, String)> {
    vec![
        ("GIT_AGENT_RUN_ID".to_string(), dir.id.clone()),
        ("GIT_AGENT_TASK".to_string(), task.to_string()),
        (
            "GIT_AGENT_PROMPT_FILE".to_string(),
            path_str(&dir.prompt_path()),
        ),
        (
            "GIT_AGENT_DECISIONS".to_string(),
            path_str(&dir.decisions_path()),
        ),
        ("GIT_AGENT_ATTEMPT".to_string(), attempt.to_string()),
        (
            "GIT_AGENT_FEEDBACK_FILE".to_string(),
            path_str(&dir.feedback_path()),
        ),
        ("TMPDIR".to_string(), path_str(&dir.tmp_dir())),
        // New objects go to the run's own store; the repository's is only
        // read (Landlock forbids writing it), so existing objects are safe.
        (
            "GIT_OBJECT_DIRECTORY".to_string(),
            path_str(&dir.objects_dir()),
        ),
        (
            "GIT_ALTERNATE_OBJECT_DIRECTORIES".to_string(),
            path_str(&dir.shared_objects()),
        ),
    ]
}

/// Regular files under `root` (not `.git`, symlinks not followed) larger
/// than `limit`, as repository-relative paths with their sizes.
pub(crate) fn oversized_files(root: &Path, limit: u64) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if dir == root && entry.file_name() == ".git" {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && meta.len() > limit {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                found.push((rel.to_string_lossy().into_owned(), meta.len()));
            }
        }
    }
    found.sort();
    found
}

fn guard_check(guard: &crate::git::RepoGuard) -> Result<Vec<String>, WorkspaceError> {
    guard.check_and_restore()
}

fn interrupted() -> End {
    End {
        state: State::Interrupted,
        reason: Some("interrupted by a signal".into()),
        keep: None,
    }
}

/// In-scope changes minus the ones that must never be committed.
/// Each change with the brief's verdict on it. A rename must be allowed at
/// both ends: moving a file out of a denied path is a change to that path.
pub fn scope_changes(brief: &Brief, changes: &[Change]) -> Vec<ScopedChange> {
    changes
        .iter()
        .map(|c| {
            let mut verdict = brief.scope.classify(&c.path);
            if let Some(old) = &c.old_path {
                let old_verdict = brief.scope.classify(old);
                if verdict.is_allowed() && !old_verdict.is_allowed() {
                    verdict = old_verdict;
                }
            }
            ScopedChange {
                path: c.path.clone(),
                old_path: c.old_path.clone(),
                kind: kind_name(c).into(),
                lines_added: c.lines_added,
                lines_removed: c.lines_removed,
                verdict: verdict.into(),
                symlink_target: c.symlink_target.clone(),
            }
        })
        .collect()
}

fn without_unsafe(worktree: &Path, changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .filter(|c| {
            !c.gitlink
                && !c.symlink_target.as_deref().is_some_and(|t| {
                    symlink_escapes(&c.path, t) || symlink::escapes(worktree, &c.path)
                })
        })
        .collect()
}

/// Whether a symlink at `path` (repo-relative) with `target` resolves
/// outside the worktree.
pub fn symlink_escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: i64 = path.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn kind_name(c: &Change) -> &'static str {
    match c.kind {
        ChangeKind::Added => "added",
        ChangeKind::Modified => {
            if c.old_mode != c.new_mode {
                "mode changed"
            } else {
                "modified"
            }
        }
        ChangeKind::Deleted => "deleted",
        ChangeKind::Renamed => "renamed",
        ChangeKind::TypeChanged => "type changed",
    }
}

fn commit_message(brief: &Brief, run_id: &str, state: State) -> String {
    let subject = match state {
        State::Escalated => format!("WIP (escalated): {}", brief.title),
        _ => brief.title.clone(),
    };
    let goal = crate::spec::brief::goal_of(&brief.body);
    let mut msg = subject;
    msg.push_str("\n\n");
    if !goal.is_empty() {
        msg.push_str(&goal);
        msg.push_str("\n\n");
    }
    msg.push_str(&format!(
        "Agent-Task: {}\nAgent-Run: {run_id}\nAgent-Brief: {}\nAgent-Outcome: {}\n",
        brief.id,
        brief.blob_id,
        state.outcome()
    ));
    msg
}

fn list_paths<'a>(paths: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = paths.collect();
    let mut shown: Vec<String> = all.iter().take(5).map(|p| format!("`{p}`")).collect();
    if all.len() > 5 {
        shown.push(format!("and {} more", all.len() - 5));
    }
    shown.join(", ")
}

fn write_file(path: &Path, text: &str) -> Result<(), RunError> {
    std::fs::write(path, text).map_err(|source| RunError::Store {
        path: path.to_path_buf(),
        source,
    })
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// An error and its causes on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        s.push_str(": ");
        s.push_str(&e.to_string());
        source = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::symlink_escapes;

    #[test]
    fn symlinks_that_leave_the_worktree() {
        assert!(symlink_escapes("a", "/etc/passwd"));
        assert!(symlink_escapes("a", "../x"));
        assert!(symlink_escapes("src/a", "../../x"));
        assert!(!symlink_escapes("src/a", "../README.md"));
        assert!(!symlink_escapes("src/a", "b/../c"));
        assert!(symlink_escapes("src/a", "b/../../../c"));
    }
}
