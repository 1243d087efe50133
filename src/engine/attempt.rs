//! The attempt loop: the agent works, git-agent looks at what it left, the
//! checks judge it, and failures go back to the agent as feedback.
//!
//! One attempt is four steps, each in its own function: [`Run::invoke`]
//! (prompt, agent, its report), [`Run::inspect`] (what the agent did to
//! git's own state), [`Run::judge`] (the verifier on the change set) and
//! [`Run::check`] (the brief's checks). Each either hands its result on or
//! ends the run with an [`End`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::engine::checks::{self, CheckResult, CheckRunner};
use crate::engine::denied;
use crate::engine::prompt;
use crate::engine::run::{path_str, End, Run, RunError, RunRequest, Start};
use crate::exec::process::{self, ExitKind, StopSignal};
use crate::exec::{env, sandbox};
use crate::git::{Change, RepoGuard, Worktree};
use crate::model::event::EventKind;
use crate::model::store::State;

/// How long past the run's time limit git-agent may take to take in what
/// the agent left (an agent stopped at the limit still has its work kept
/// as a draft): past it, staging is killed and the run escalates. Bounded
/// either way, however many files the agent made.
pub(super) const STAGING_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Set (in milliseconds) in git-agent's environment, replaces
/// [`STAGING_ALLOWANCE`] (tests of the bound; agents never see it).
pub const SIMULATE_STAGING_ALLOWANCE: &str = "GIT_AGENT_SIMULATE_STAGING_ALLOWANCE_MS";

fn staging_allowance() -> std::time::Duration {
    std::env::var(SIMULATE_STAGING_ALLOWANCE)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(STAGING_ALLOWANCE, std::time::Duration::from_millis)
}

/// Bytes of agent output kept on disk per stream.
pub const AGENT_OUTPUT_LIMIT: u64 = 8 * 1024 * 1024;

/// Moves everything under `from` back to the same place under `to`,
/// merging directories; what is at the destination gives way. Removes
/// `from`. Nothing is followed: links are moved as links.
fn merge_back(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    if !std::fs::symlink_metadata(from).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)?.flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let both_dirs = entry.file_type().is_ok_and(|t| t.is_dir())
            && std::fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir());
        if both_dirs {
            merge_back(&src, &dst)?;
            continue;
        }
        if let Ok(meta) = std::fs::symlink_metadata(&dst) {
            if meta.is_dir() {
                std::fs::remove_dir_all(&dst)?;
            } else {
                std::fs::remove_file(&dst)?;
            }
        }
        std::fs::rename(&src, &dst)?;
    }
    std::fs::remove_dir_all(from)
}

/// What every attempt of one run shares.
pub(super) struct Attempts<'r> {
    pub(super) req: &'r RunRequest,
    pub(super) base: git2::Oid,
    pub(super) wt: Worktree,
    pub(super) guard: RepoGuard,
    pub(super) sandbox: Option<Arc<sandbox::Prepared>>,
    pub(super) deadline: Instant,
    /// The run's marker variable, by which escaped processes are swept.
    pub(super) marker: (String, String),
    pub(super) tmp: PathBuf,
    /// What `workspace:` gave the worktree, given again to each attempt
    /// after the first and to each check phase.
    pub(super) provided: crate::engine::workspace::Provided,
}

/// What an attempt carries to the next one.
struct Carry {
    feedback: Option<String>,
    decisions_read: crate::engine::decisions::Progress,
    /// A resumed run whose agent had finished its attempt goes on at the
    /// checks (see [`Start::agent_done`]).
    agent_done: bool,
}

/// How the agent's part of an attempt ended, when the run goes on.
pub(super) struct Invoked {
    pub(super) exit: ExitKind,
    /// The end of the agent's stderr, for reasons.
    pub(super) stderr_tail: String,
    /// Why a human must look, from the agent itself or its budgets.
    pub(super) escalations: Vec<String>,
    /// The index file's `HEAD` as the attempt began, to catch re-attachment.
    pub(super) head_before: Option<Vec<u8>>,
}

/// The run's confinement as recorded, for [`denied::hint`].
fn policy<'a>(run: &'a Attempts<'_>) -> Option<&'a crate::model::sandbox::Effective> {
    run.sandbox.as_deref().map(|s| &s.effective)
}

/// An attempt's step either hands its result on or ends the run.
pub(super) enum Step<T> {
    Next(T),
    Stop(End),
}

/// Returns the value of a [`Step`], or ends the attempt loop with its `End`.
macro_rules! next {
    ($step:expr) => {
        match $step {
            Step::Next(value) => value,
            Step::Stop(end) => return Ok(Some(end)),
        }
    };
}

/// Returns the value of a [`Step`], or hands its `End` on as a `Step`.
macro_rules! next_step {
    ($step:expr) => {
        match $step {
            Step::Next(value) => value,
            Step::Stop(end) => return Ok(Step::Stop(end)),
        }
    };
}

impl Run {
    pub(super) async fn attempts(
        &mut self,
        req: &RunRequest,
        mut stop: watch::Receiver<StopSignal>,
        start: Start,
    ) -> Result<End, RunError> {
        let brief = &req.brief;
        // The repository's config and hooks are snapshot while the sandbox
        // is prepared (which writes nothing there).
        let guard = self.git_begun(|repo| repo.guard());
        let tmp = self.dir.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|source| RunError::Store {
            path: tmp.clone(),
            source,
        })?;
        // A run interrupted while its checks ran left the agent's files
        // set aside: they go back before the agent works again.
        merge_back(&start.wt.aside_dir(), &start.wt.path).map_err(|source| RunError::Store {
            path: start.wt.aside_dir(),
            source,
        })?;
        let sandbox = match self.prepare_sandbox(&start.wt, &req.agent) {
            Ok(s) => s,
            Err(e) => return Ok(End::failed(e.to_string())),
        };
        let guard = guard.await?;
        // Setup is bounded by its own steps' limits, not the agent's.
        let setup_started = Instant::now();
        let provided = match self
            .prepare_workspace(req, &start.wt, start.base, &tmp, &stop)
            .await?
        {
            Ok(p) => p,
            Err(end) => return Ok(end),
        };
        let deadline = self.started + brief.escalate.timeout + setup_started.elapsed();
        let run = Attempts {
            req,
            base: start.base,
            wt: crate::git::Worktree {
                deadline: Some(deadline + staging_allowance()),
                excluded: provided.excluded(),
                ..start.wt
            },
            provided,
            guard,
            sandbox,
            deadline,
            marker: ("GIT_AGENT_RUN_ID".to_string(), self.dir.id.clone()),
            tmp,
        };
        let mut carry = Carry {
            feedback: start.feedback,
            decisions_read: start.decisions_read,
            agent_done: start.agent_done,
        };
        for attempt in start.first_attempt..=brief.escalate.attempts {
            if *stop.borrow_and_update() != StopSignal::Run {
                return Ok(End::interrupted());
            }
            if attempt > start.first_attempt {
                self.provision(&run)?;
            }
            if let Some(end) = self.attempt(&run, attempt, &mut carry, &stop).await? {
                return Ok(end);
            }
        }
        Ok(End::failed("no attempts were made".into()))
    }

    /// One attempt; `None` means another attempt follows, with the
    /// feedback left in `carry`.
    async fn attempt(
        &mut self,
        run: &Attempts<'_>,
        attempt: u32,
        carry: &mut Carry,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Option<End>, RunError> {
        self.record.attempts = attempt;
        let agent_done = std::mem::take(&mut carry.agent_done);
        self.set_state(if agent_done {
            State::Verifying
        } else {
            State::Running
        })?;
        self.event(EventKind::AttemptStarted { attempt })?;
        let invoked = if agent_done {
            self.agent_finished_before(attempt)
        } else {
            next!(self.invoke(run, attempt, carry, stop).await?)
        };
        let mut escalations = invoked.escalations.clone();
        escalations.extend(
            self.inspect(run, attempt, invoked.head_before.as_deref())
                .await?,
        );
        let judged = next!(self.judge(run, attempt, escalations).await?);
        if judged.in_scope.is_empty() {
            return self.changed_nothing(run, attempt, &invoked, carry);
        }
        // The checks judge the tree that would be committed: what it does
        // not have is out of their sight while they run.
        let aside = self.set_aside(run, attempt, &judged.not_in_tree)?;
        self.provision(run)?;
        let checked = self.check(run, attempt, stop).await;
        self.put_back(run, &aside)?;
        let results = next!(checked?);
        let failed: Vec<&CheckResult> = results.iter().filter(|r| !r.passed).collect();
        if failed.is_empty() {
            // The tree the checks passed is the one committed, as it is
            // (not rebuilt from the changes) when all of it is in scope.
            if judged.whole {
                self.verified_tree = Some(judged.tree);
            }
            let keep = Some((run.base, judged.in_scope));
            if !judged.for_human.is_empty() {
                return self.escalate(judged.for_human.join("; "), keep).map(Some);
            }
            return Ok(Some(End {
                state: State::Succeeded,
                reason: None,
                keep,
            }));
        }
        if attempt < run.req.brief.escalate.attempts {
            self.discard_check_artifacts(attempt, &run.wt, run.base, judged.tree)
                .await?;
        }
        self.checks_failed(run, attempt, &failed, carry)
    }

    /// The attempt left nothing in scope: said to the agent, fatal on the
    /// last attempt.
    fn changed_nothing(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        invoked: &Invoked,
        carry: &mut Carry,
    ) -> Result<Option<End>, RunError> {
        let mut reason = match invoked.exit {
            ExitKind::Code(0) => "the agent changed nothing in scope".to_string(),
            exit => format!(
                "the agent changed nothing in scope; it ended with {exit}: {}",
                invoked.stderr_tail.trim().lines().last().unwrap_or("")
            ),
        };
        if let Some(hint) = denied::hint(&invoked.stderr_tail, policy(run)) {
            reason.push_str(&format!("; {hint}"));
        }
        self.event(EventKind::AttemptFailed {
            attempt,
            reason: reason.clone(),
        })?;
        carry.feedback = Some(prompt::feedback(
            &[format!("Attempt {attempt} changed no file inside the scope. Make the change the task asks for.")],
            &[],
        ));
        if attempt == run.req.brief.escalate.attempts {
            return Ok(Some(End::failed(reason)));
        }
        Ok(None)
    }

    /// Checks failed: their output is the next attempt's feedback; past
    /// the time limit a human decides, on the last attempt the run fails.
    fn checks_failed(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        failed: &[&CheckResult],
        carry: &mut Carry,
    ) -> Result<Option<End>, RunError> {
        let names = failed
            .iter()
            .map(|r| format!("`{}`", r.name))
            .collect::<Vec<_>>()
            .join(", ");
        let reason = format!(
            "check{} {names} failed",
            if failed.len() == 1 { "" } else { "s" }
        );
        let hints: String = failed
            .iter()
            .filter_map(|r| denied::hint(&r.tail, policy(run)))
            .map(|h| format!("; {h}"))
            .collect();
        self.event(EventKind::AttemptFailed {
            attempt,
            reason: format!("{reason}{hints}"),
        })?;
        carry.feedback = Some(prompt::feedback(&[], failed));
        if Instant::now() >= run.deadline {
            let reason = format!("{reason}, and the run hit its time limit{hints}");
            return self.escalate(reason, None).map(Some);
        }
        if attempt == run.req.brief.escalate.attempts {
            return Ok(Some(End::failed(format!(
                "{reason} on the last attempt ({attempt} of {attempt}){hints}"
            ))));
        }
        Ok(None)
    }

    /// Renders the prompt, runs the agent under supervision, and reads what
    /// it and its CLI reported (decisions, activity, budgets).
    async fn invoke(
        &mut self,
        run: &Attempts<'_>,
        attempt: u32,
        carry: &mut Carry,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Step<Invoked>, RunError> {
        let req = run.req;
        let head_before = std::fs::read(run.wt.admin_dir.join("HEAD")).ok();
        let launched = match self
            .launch(run, attempt, carry.feedback.as_deref(), stop)
            .await?
        {
            Ok(launched) => launched,
            Err(e) => return Ok(Step::Stop(End::failed(e.to_string()))),
        };
        let outcome = &launched.outcome;
        let asked_for_human = self.read_decisions(attempt, &mut carry.decisions_read)?;
        if outcome.stopped.is_some() {
            return Ok(Step::Stop(End::interrupted()));
        }
        let stderr_tail =
            process::tail(&self.dir.agent_output(attempt, "stderr"), 600).unwrap_or_default();
        if let ExitKind::Code(code @ (126 | 127)) = outcome.exit {
            // The shell could not find or run the command: retrying cannot help.
            let hint = denied::hint(&stderr_tail, policy(run))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            return Ok(Step::Stop(End::failed(format!(
                "the agent command `{}` could not start (exit {code}): {}{hint}",
                req.agent.command,
                stderr_tail.trim()
            ))));
        }
        self.set_state(State::Verifying)?;
        let mut escalations = next_step!(self.agent_report(run, attempt, &launched)?);
        if let Some(summary) = asked_for_human {
            escalations.push(format!("the agent asked for a human: {summary}"));
        }
        if outcome.timed_out {
            escalations.push(format!(
                "the run hit its time limit of {}",
                humantime::format_duration(req.brief.escalate.timeout)
            ));
        }
        Ok(Step::Next(Invoked {
            exit: outcome.exit,
            stderr_tail,
            escalations,
            head_before,
        }))
    }

    /// Runs the brief's checks on the worktree, confined like the agent.
    async fn check(
        &mut self,
        run: &Attempts<'_>,
        attempt: u32,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Step<Vec<CheckResult>>, RunError> {
        let brief = &run.req.brief;
        self.set_state(State::Checking)?;
        let check_env = self.check_env(run);
        let runner = CheckRunner {
            worktree: &run.wt.path,
            env: &check_env,
            grace: self.engine.grace,
            marker: run.marker.clone(),
            sandbox: run.sandbox.clone(),
        };
        let mut results = Vec::new();
        for (i, check) in brief.checks.iter().enumerate() {
            let remaining = run.deadline.saturating_duration_since(Instant::now());
            let mut result = checks::run_check(
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
            if let Some(hint) = (!result.passed)
                .then(|| denied::hint(&result.tail, policy(run)))
                .flatten()
            {
                result.tail.push_str(&format!("\n[git-agent: {hint}]"));
            }
            if result.stopped {
                // Stopped, not failed: a resumed run runs it again.
                return Ok(Step::Stop(End::interrupted_in(format!(
                    "the check `{}`",
                    check.name
                ))));
            }
            self.event(EventKind::CheckFinished {
                attempt,
                name: result.name.clone(),
                command: result.command.clone(),
                passed: result.passed,
                exit_code: result.exit.code(),
                timed_out: result.timed_out,
                duration_ms: result.duration_ms(),
                output_tail: result.failing_tail().to_string(),
            })?;
            results.push(result);
        }
        // Saved with the next state (committing, the next attempt, the end):
        // the events hold every result meanwhile.
        self.record.checks = results.iter().map(CheckResult::summary).collect();
        Ok(Step::Next(results))
    }

    /// The checks' environment: the allowlist, the run's TMPDIR and object
    /// store (what they write to git is the run's, never the repository's).
    fn check_env(&self, run: &Attempts<'_>) -> Vec<(String, String)> {
        let provided = run.provided.env();
        env::build(
            self.engine.env_source.clone(),
            &[],
            &[
                &provided[..],
                &[
                    ("TMPDIR".to_string(), path_str(&run.tmp)),
                    ("GIT_AGENT_TASK".to_string(), run.req.brief.id.to_string()),
                    (
                        "GIT_OBJECT_DIRECTORY".to_string(),
                        path_str(&self.dir.objects_dir()),
                    ),
                    (
                        "GIT_ALTERNATE_OBJECT_DIRECTORIES".to_string(),
                        path_str(&self.dir.shared_objects()),
                    ),
                ],
            ]
            .concat(),
        )
    }

    /// The copied files and caches as they were made, over the agent's.
    fn provision(&self, run: &Attempts<'_>) -> Result<(), RunError> {
        if run.provided.is_empty() {
            return Ok(());
        }
        run.provided
            .provision(&run.wt.path)
            .map_err(|source| RunError::Store {
                path: run.wt.path.clone(),
                source,
            })
    }

    /// Moves `paths`, what the candidate tree does not have, out of the
    /// worktree (into `<worktree>.aside/`, on the same file system);
    /// returns the paths moved.
    fn set_aside(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        paths: &[String],
    ) -> Result<Vec<String>, RunError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let paths = paths.to_vec();
        let aside = run.wt.aside_dir();
        for path in &paths {
            let to = aside.join(path);
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).map_err(|source| RunError::Store {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            std::fs::rename(run.wt.path.join(path), &to).map_err(|source| RunError::Store {
                path: to.clone(),
                source,
            })?;
        }
        self.event(EventKind::SetAside {
            attempt,
            paths: paths.clone(),
        })?;
        Ok(paths)
    }

    /// Puts what [`Run::set_aside`] moved back where the agent left it (a
    /// later attempt builds on it). Whatever a check wrote in its place
    /// gives way.
    fn put_back(&self, run: &Attempts<'_>, paths: &[String]) -> Result<(), RunError> {
        let aside = run.wt.aside_dir();
        for path in paths {
            let to = run.wt.path.join(path);
            if let Ok(meta) = std::fs::symlink_metadata(&to) {
                let _ = if meta.is_dir() {
                    std::fs::remove_dir_all(&to)
                } else {
                    std::fs::remove_file(&to)
                };
            }
            if let Some(dir) = to.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::rename(aside.join(path), &to).map_err(|source| RunError::Store {
                path: to.clone(),
                source,
            })?;
        }
        if !paths.is_empty() {
            let _ = std::fs::remove_dir_all(&aside);
        }
        Ok(())
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
    pub(super) fn escalate(
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
}

#[cfg(test)]
mod tests {
    use super::merge_back;

    #[test]
    fn set_aside_files_merge_back_into_the_worktree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (from, to) = (tmp.path().join("wt.aside"), tmp.path().join("wt"));
        std::fs::create_dir_all(from.join("node_modules/x")).expect("aside");
        std::fs::write(from.join("node_modules/x/i.js"), "i").expect("file");
        std::fs::write(from.join("helper.txt"), "kept").expect("file");
        std::fs::create_dir_all(to.join("node_modules")).expect("wt");
        std::fs::write(to.join("node_modules/other.js"), "o").expect("file");
        std::fs::write(to.join("helper.txt"), "a check wrote this").expect("file");
        merge_back(&from, &to).expect("merge back");
        assert!(!from.exists());
        assert_eq!(
            std::fs::read_to_string(to.join("helper.txt")).expect("read"),
            "kept"
        );
        assert!(to.join("node_modules/x/i.js").is_file());
        assert!(to.join("node_modules/other.js").is_file());
    }
}
