//! Running an agent under its budget: `escalate.max_turns` and
//! `escalate.max_cost_usd` are watched live in the CLI's event stream, and
//! the agent is stopped (SIGTERM, grace, SIGKILL) as soon as one is exceeded.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::cli_for;
use crate::exec::process::{self, ProcessError, ProcessOutcome, ProcessSpec, StopSignal};
use crate::model::event::AgentActivity;
use crate::spec::brief::Brief;
use crate::spec::config::Agent;

/// The budget an attempt runs under.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub max_turns: Option<u32>,
    pub max_cost_usd: Option<f64>,
}

impl Budget {
    pub fn of(brief: &Brief) -> Budget {
        Budget {
            max_turns: brief.escalate.max_turns,
            max_cost_usd: brief.escalate.max_cost_usd,
        }
    }

    /// Why `a` is over this budget, if it is.
    pub fn exceeded(&self, a: &AgentActivity) -> Option<String> {
        if let (Some(max), Some(turns)) = (self.max_turns, a.turns) {
            if turns > max {
                return Some(format!(
                    "the agent used {turns} turns, more than escalate.max_turns ({max})"
                ));
            }
        }
        if let (Some(max), Some(cost)) = (self.max_cost_usd, a.cost_usd) {
            if cost > max {
                return Some(format!(
                    "the agent spent ${cost:.4}, more than escalate.max_cost_usd (${max})"
                ));
            }
        }
        None
    }
}

/// How often the live budget watcher reads the agent's stdout.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Runs the agent like [`process::run`]; for adapters with an event stream
/// and a brief with a budget, also watches stdout while the agent runs and
/// stops it (SIGTERM, grace, SIGKILL) as soon as the budget is exceeded.
/// Returns the outcome and, when the watcher stopped the agent, why.
/// A budget stop is not an interruption: `stopped` stays `None` unless the
/// orchestrator asked for a stop too.
pub async fn supervise(
    spec: &ProcessSpec,
    stop: watch::Receiver<StopSignal>,
    agent: &Agent,
    brief: &Brief,
) -> Result<(ProcessOutcome, Option<String>), ProcessError> {
    let budget = Budget::of(brief);
    let Some(mut parser) = cli_for(agent.adapter).parser(&spec.cwd) else {
        return Ok((process::run(spec, stop).await?, None));
    };
    if budget == Budget::default() {
        return Ok((process::run(spec, stop).await?, None));
    }
    let (tx, rx) = watch::channel(*stop.borrow());
    let tx = Arc::new(tx);
    let mut outer = stop.clone();
    let forward_tx = tx.clone();
    let forward = tokio::spawn(async move {
        while outer.changed().await.is_ok() {
            let s = *outer.borrow_and_update();
            forward_tx.send_replace(s);
        }
    });
    let tripped: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let path = spec.stdout_path.clone();
    let watch_tx = tx.clone();
    let watch_tripped = tripped.clone();
    let watcher = tokio::spawn(async move {
        let mut offset = 0u64;
        let mut pending = String::new();
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if let Some(chunk) = read_from(&path, &mut offset) {
                pending.push_str(&chunk);
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    parser.line(line.trim_end());
                }
                if let Some(reason) = budget.exceeded(&parser.activity()) {
                    *watch_tripped.lock().expect("budget lock") = Some(reason);
                    if *watch_tx.borrow() == StopSignal::Run {
                        watch_tx.send_replace(StopSignal::Graceful);
                    }
                    return;
                }
            }
        }
    });
    let result = process::run(spec, rx).await;
    watcher.abort();
    forward.abort();
    let mut outcome = result?;
    let reason = tripped.lock().expect("budget lock").take();
    if reason.is_some() && *stop.borrow() == StopSignal::Run {
        outcome.stopped = None;
    }
    Ok((outcome, reason))
}

fn read_from(path: &PathBuf, offset: &mut u64) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::Start(*offset)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    if buf.is_empty() {
        return None;
    }
    *offset += buf.len() as u64;
    Some(String::from_utf8_lossy(&buf).into_owned())
}
