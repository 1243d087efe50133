//! The agent's part of an attempt: its prompt, its process and what its
//! CLI reported.
//!
//! A later attempt continues the agent's own session where the adapter
//! can ([`crate::agent::AgentCli::resumes`]) and the attempt before
//! reported one: its prompt is then only the failing checks
//! ([`prompt::continuation`]), since the session already holds the brief.
//! Where the CLI no longer has the session (it says so and fails), the
//! attempt starts again afresh, its prompt the whole brief with the
//! feedback, and the log says why. `GIT_AGENT_SIMULATE_NO_RESUME` in
//! git-agent's environment makes every attempt start afresh (the figures
//! of both ways, in tests).

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::agent::{cli_for, AgentError};
use crate::engine::attempt::{Attempts, Step, AGENT_OUTPUT_LIMIT};
use crate::engine::prompt;
use crate::engine::run::{agent_extra_env, write_file, End, Run, RunError};
use crate::exec::env;
use crate::exec::process::{ExitKind, ProcessOutcome, ProcessSpec, StopSignal};
use crate::model::event::EventKind;
use crate::model::usage::Usage;

/// Set in git-agent's environment: no attempt continues a session.
pub const SIMULATE_NO_RESUME: &str = "GIT_AGENT_SIMULATE_NO_RESUME";

/// The session an attempt continues, and what it had reported before.
#[derive(Debug, Clone)]
pub(super) struct Continue {
    session: String,
    before: Usage,
}

/// The agent's process of an attempt, ended.
pub(super) struct Launched {
    pub(super) outcome: ProcessOutcome,
    /// Why the budget watcher stopped it, when it did.
    pub(super) budget_stop: Option<String>,
    access: Option<String>,
    continued: Option<Continue>,
    /// Why the session it was to continue was not.
    lost: Option<String>,
}

impl Run {
    /// Writes the attempt's prompt and runs its agent under supervision:
    /// continuing the previous attempt's session where it can, afresh
    /// where that session is gone. `Err` when the agent cannot start.
    pub(super) async fn launch(
        &mut self,
        run: &Attempts<'_>,
        attempt: u32,
        feedback: Option<&str>,
        stop: &watch::Receiver<StopSignal>,
    ) -> Result<Result<Launched, AgentError>, RunError> {
        let mut continued = self.session_to_continue(run, attempt);
        let mut lost = None;
        loop {
            let session = continued.as_ref().map(|c| c.session.as_str());
            self.write_prompt(run, attempt, feedback, session.is_some())?;
            let (spec, access) = match self.agent_spec(run, attempt, session) {
                Ok(spec) => spec,
                Err(e) => return Ok(Err(e)),
            };
            let (outcome, budget_stop) =
                crate::agent::supervise(&spec, stop.clone(), &run.req.agent, &run.req.brief)
                    .await
                    .map_err(RunError::Agent)?;
            self.agent_finished(attempt, &outcome)?;
            if let Some(gone) = session.filter(|_| self.session_gone(attempt, &outcome)) {
                lost = Some(format!(
                    "the session `{gone}` of attempt {} could not be continued (the CLI no \
                     longer has it): this attempt started afresh",
                    attempt - 1
                ));
                continued = None;
                continue;
            }
            return Ok(Ok(Launched {
                outcome,
                budget_stop,
                access,
                continued,
                lost,
            }));
        }
    }

    /// The session of the attempt before, when the adapter continues
    /// sessions and that attempt reported one.
    fn session_to_continue(&self, run: &Attempts<'_>, attempt: u32) -> Option<Continue> {
        if attempt <= 1
            || !cli_for(run.req.agent.adapter).resumes()
            || std::env::var_os(SIMULATE_NO_RESUME).is_some()
        {
            return None;
        }
        let events = self.dir.read_events().unwrap_or_default();
        let activities: Vec<(u32, &crate::model::event::AgentActivity)> = events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::AgentActivity { attempt, activity } => Some((*attempt, activity)),
                _ => None,
            })
            .collect();
        let (_, last) = activities.iter().rev().find(|(a, _)| *a == attempt - 1)?;
        let session = last.session.clone()?;
        let mut before = Usage::default();
        for (_, a) in activities
            .iter()
            .filter(|(n, a)| *n < attempt && a.session.as_deref() == Some(session.as_str()))
        {
            before.add(a);
        }
        Some(Continue { session, before })
    }

    /// Whether a continuing agent failed because its CLI has no such session.
    fn session_gone(&self, attempt: u32, outcome: &ProcessOutcome) -> bool {
        if matches!(outcome.exit, ExitKind::Code(0)) || outcome.stopped.is_some() {
            return false;
        }
        let read = |stream| {
            std::fs::read(self.dir.agent_output(attempt, stream))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        crate::agent::session_lost(&read("stdout"), &read("stderr"))
    }

    fn agent_finished(&self, attempt: u32, outcome: &ProcessOutcome) -> Result<(), RunError> {
        self.event(EventKind::AgentFinished {
            attempt,
            exit_code: outcome.exit.code(),
            signal: outcome.exit.signal(),
            timed_out: outcome.timed_out,
            duration_ms: outcome.duration.as_millis() as u64,
            stdout_bytes: outcome.stdout_bytes,
            stderr_bytes: outcome.stderr_bytes,
            leaked: outcome.leaked,
            egress_refused: outcome.egress_refused.clone(),
        })
    }

    /// The prompt of this attempt — the whole brief with the last one's
    /// feedback and any review comments, or, continuing a session, only
    /// the feedback — and the feedback file, where the agent reads them.
    fn write_prompt(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        feedback: Option<&str>,
        continuing: bool,
    ) -> Result<(), RunError> {
        let req = run.req;
        let prompt_text = if continuing {
            prompt::continuation(&req.brief, attempt, feedback)
        } else {
            let review = req
                .review
                .as_ref()
                .map(|r| prompt::review_comments(r.pull_request, &r.comments));
            prompt::render(&req.brief, attempt, feedback, review.as_deref())
        };
        write_file(&self.dir.prompt_path(), &prompt_text)?;
        write_file(&self.dir.feedback_path(), feedback.unwrap_or(""))
    }

    /// What the agent CLI reported (tool calls, turns, cost) into the log
    /// and the record's usage; a failure retrying cannot help ends the
    /// run; budgets escalate.
    pub(super) fn agent_report(
        &mut self,
        run: &Attempts<'_>,
        attempt: u32,
        launched: &Launched,
    ) -> Result<Step<Vec<String>>, RunError> {
        let (stdout, stderr) = (
            self.dir.agent_output(attempt, "stdout"),
            self.dir.agent_output(attempt, "stderr"),
        );
        let side_dir = self.dir.side_dir();
        let report = crate::agent::report(
            &run.req.agent,
            &run.req.brief,
            &crate::agent::report::Attempt {
                number: attempt,
                worktree: &run.wt.path,
                stdout: &stdout,
                stderr: &stderr,
                side_dir: &side_dir,
                access: launched.access.clone(),
                continued: launched
                    .continued
                    .as_ref()
                    .map(|c| (c.session.as_str(), c.before)),
            },
            &launched.outcome,
            launched.budget_stop.clone(),
        );
        if let Some(mut activity) = report.activity {
            activity.notes.extend(launched.lost.clone());
            self.record.usage.add(&activity);
            self.event(EventKind::AgentActivity { attempt, activity })?;
            self.save()?;
        }
        if let Some(reason) = report.fatal {
            return Ok(Step::Stop(End::failed(reason)));
        }
        Ok(Step::Next(report.escalations))
    }

    /// The agent's process: the adapter's command line (a missing CLI is
    /// the error), the allowlisted environment, the run's limits; and what
    /// the command line lets it do.
    fn agent_spec(
        &self,
        run: &Attempts<'_>,
        attempt: u32,
        resume: Option<&str>,
    ) -> Result<(ProcessSpec, Option<String>), AgentError> {
        let req = run.req;
        let side_dir = self.dir.side_dir();
        let invocation = crate::agent::invocation(
            &req.agent,
            &crate::agent::Context {
                brief: &req.brief,
                worktree: &run.wt.path,
                prompt_file: &self.dir.prompt_path(),
                attempt,
                env_source: &self.engine.env_source,
                sandboxed: run.sandbox.as_ref().is_some_and(|s| s.confines_writes()),
                side_dir: &side_dir,
                resume,
            },
        )?;
        let mut extra = agent_extra_env(&self.dir, req.brief.id.as_str(), attempt);
        extra.extend(run.provided.env());
        extra.extend(invocation.env);
        let remaining = run.deadline.saturating_duration_since(Instant::now());
        let spec = ProcessSpec {
            program: invocation.program,
            args: invocation.args,
            cwd: run.wt.path.clone(),
            env: env::build(self.engine.env_source.clone(), &req.agent.pass_env, &extra),
            stdout_path: self.dir.agent_output(attempt, "stdout"),
            stderr_path: self.dir.agent_output(attempt, "stderr"),
            output_limit: AGENT_OUTPUT_LIMIT,
            timeout: Some(remaining.max(Duration::from_millis(1))),
            grace: self.engine.grace,
            marker: Some(run.marker.clone()),
            sandbox: run.sandbox.clone(),
        };
        Ok((spec, invocation.access))
    }
}
