//! `notify:` — told when a run ends: the config's command (with the run's
//! id, task, outcome and decision log in its environment) and, when asked
//! for and installed, a desktop notification. Both run after the record is
//! final, bounded in time, and what they did is an event of the run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::run::Engine;
use crate::exec::process::{self, ProcessSpec, StopSignal};
use crate::model::event::{Event, EventKind};
use crate::model::store::{RunDir, RunRecord};

/// A notification that takes longer is stopped: it must not hold the queue.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs what `notify:` asks for; failures are recorded, never raised.
pub async fn run_ended(engine: &Arc<Engine>, record: &RunRecord, dir: &RunDir) {
    let notify = &engine.notify;
    if !notify.runs_something() {
        return;
    }
    let log = dir.path.join("log.md");
    let events = dir.read_events().unwrap_or_default();
    let rendered = crate::report::markdown::render_markdown(record, &events);
    if let Err(e) = crate::model::store::write_atomic(&log, rendered.as_bytes()) {
        tracing::warn!(error = %e, "could not write the log for notify");
    }
    let outcome = record.effective_state().outcome().to_string();
    let mut env: Vec<(String, String)> = engine.env_source.clone();
    env.retain(|(k, _)| !k.starts_with("GIT_AGENT_"));
    env.extend([
        ("GIT_AGENT_RUN_ID".to_string(), record.run_id.clone()),
        ("GIT_AGENT_TASK".to_string(), record.task.clone()),
        ("GIT_AGENT_OUTCOME".to_string(), outcome.clone()),
        ("GIT_AGENT_LOG".to_string(), log.display().to_string()),
    ]);
    if let Some(command) = &notify.command {
        let spec = spec(
            engine,
            dir,
            &env,
            "sh",
            vec!["-c".into(), command.clone()],
            "notify",
        );
        finish(dir, "command", run(&spec).await);
    }
    if notify.desktop {
        let Some(program) = on_path("notify-send", &env) else {
            return;
        };
        let summary = format!("git agent: {} {outcome}", record.task);
        let body = record
            .reason
            .clone()
            .unwrap_or_else(|| record.run_id.clone());
        let spec = spec(
            engine,
            dir,
            &env,
            &program,
            vec![summary, body],
            "notify-desktop",
        );
        finish(dir, "desktop", run(&spec).await);
    }
}

fn spec(
    engine: &Engine,
    dir: &RunDir,
    env: &[(String, String)],
    program: &str,
    args: Vec<String>,
    name: &str,
) -> ProcessSpec {
    ProcessSpec {
        program: program.to_string(),
        args,
        cwd: engine.root.clone(),
        env: env.to_vec(),
        stdout_path: dir.path.join(format!("{name}.out")),
        stderr_path: dir.path.join(format!("{name}.err")),
        output_limit: 1 << 20,
        timeout: Some(NOTIFY_TIMEOUT),
        grace: Duration::from_secs(1),
        marker: Some(("GIT_AGENT_NOTIFY".to_string(), format!("{}-{name}", dir.id))),
        sandbox: None,
    }
}

async fn run(spec: &ProcessSpec) -> (String, bool) {
    // A stop of the batch does not cut a notification short: it is bounded.
    let (_tx, rx) = watch::channel(StopSignal::Run);
    match process::run(spec, rx).await {
        Ok(out) if out.timed_out => (format!("stopped after {NOTIFY_TIMEOUT:?}"), false),
        Ok(out) => (out.exit.to_string(), out.exit.success()),
        Err(e) => (crate::model::error_chain(&e), false),
    }
}

fn finish(dir: &RunDir, via: &str, (result, ok): (String, bool)) {
    if !ok {
        tracing::warn!(via, %result, "notify did not succeed");
    }
    let event = Event::now(EventKind::Notified {
        via: via.to_string(),
        result,
        ok,
    });
    if let Err(e) = dir.append_event(&event) {
        tracing::warn!(error = %e, "could not record the notification");
    }
}

/// `program` found in the `PATH` of `env`.
fn on_path(program: &str, env: &[(String, String)]) -> Option<String> {
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())?;
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
