//! Success criteria: each check of a brief runs in the worktree, in its own
//! process group, with its own timeout and bounded output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::exec::process::{self, ProcessError, ProcessSpec, StopSignal};
pub use crate::model::check::CheckResult;
use crate::spec::brief::Check;

/// Bytes of check output kept on disk per stream.
pub const OUTPUT_LIMIT: u64 = 1024 * 1024;
/// Bytes of a failing check's output shown in feedback and the log.
pub const TAIL_BYTES: usize = 4 * 1024;

/// What every check of a run shares.
pub struct CheckRunner<'a> {
    pub worktree: &'a Path,
    pub env: &'a [(String, String)],
    pub grace: Duration,
    /// The run's marker variable, for sweeping escaped processes.
    pub marker: (String, String),
    /// The run's sandbox: checks execute code the agent wrote.
    pub sandbox: Option<std::sync::Arc<crate::exec::sandbox::Prepared>>,
}

/// Runs one check. `deadline` caps its timeout (the run's wall clock).
pub async fn run_check(
    runner: &CheckRunner<'_>,
    check: &Check,
    output_path: PathBuf,
    deadline: Duration,
    stop: watch::Receiver<StopSignal>,
) -> Result<CheckResult, ProcessError> {
    let CheckRunner {
        worktree,
        env,
        grace,
        ref marker,
        ref sandbox,
    } = *runner;
    // One file for both streams keeps the order a human expects to read.
    let spec = ProcessSpec {
        program: "sh".into(),
        args: vec!["-c".into(), format!("exec 2>&1\n{}", check.run)],
        cwd: worktree.to_path_buf(),
        env: env.to_vec(),
        stdout_path: output_path.clone(),
        stderr_path: output_path.with_extension("stderr"),
        output_limit: OUTPUT_LIMIT,
        timeout: Some(check.timeout.min(deadline)),
        grace,
        marker: Some(marker.clone()),
        sandbox: sandbox.clone(),
    };
    let outcome = process::run(&spec, stop).await?;
    let mut tail = process::tail(&output_path, TAIL_BYTES).unwrap_or_default();
    if tail.trim().is_empty() {
        tail = format!("[git-agent: the check printed nothing; {}]", outcome.exit);
    }
    let timed_out = outcome.timed_out;
    let stopped = outcome.stopped.is_some();
    Ok(CheckResult {
        name: check.name.clone(),
        command: check.run.clone(),
        passed: outcome.exit.success() && !timed_out && !stopped,
        exit: outcome.exit,
        timed_out,
        stopped,
        duration: outcome.duration,
        tail: if timed_out {
            format!(
                "{tail}\n[git-agent: the check timed out after {}]",
                humantime::format_duration(spec.timeout.unwrap_or_default())
            )
        } else {
            tail
        },
    })
}
