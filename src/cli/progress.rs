//! Progress on stderr while runs work: one line per run that updates in
//! place on a terminal, plain state-change lines otherwise (CI logs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::run::Progress;
use crate::model::store::{RunRecord, State};

/// `bell`: a terminal bell when a run ends (`notify.bell`, on a terminal).
pub fn reporter(tty: bool, bell: bool) -> Progress {
    if tty {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
        let style = ProgressStyle::with_template("{spinner} {prefix:<24} {msg} [{elapsed}]")
            .expect("a valid template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        let finished = ProgressStyle::with_template("{prefix:<26} {msg} [{elapsed}]")
            .expect("a valid template");
        Arc::new(move |r: &RunRecord| {
            let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
            let bar = bars.entry(r.run_id.clone()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(r.task.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(describe(r));
            if r.state.is_terminal() && !bar.is_finished() {
                // The mark says the outcome: only a success gets a tick.
                let mark = match r.state {
                    State::Succeeded => "✓",
                    State::Escalated => "✋",
                    State::Interrupted => "■",
                    _ => "✗",
                };
                bar.set_style(finished.clone());
                bar.set_prefix(format!("{mark} {}", r.task));
                bar.finish();
                if bell {
                    eprint!("\x07");
                }
            }
        })
    } else {
        let last: Mutex<HashMap<String, (State, u32)>> = Mutex::new(HashMap::new());
        Arc::new(move |r: &RunRecord| {
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            let now = (r.state, r.attempts);
            if last.get(&r.run_id) != Some(&now) {
                last.insert(r.run_id.clone(), now);
                eprintln!("[{}] {}", r.task, describe(r));
            }
        })
    }
}

/// A run's state in words: `agent (attempt 2/3), after `test` (exit code 1) failed`.
pub(crate) fn describe(r: &RunRecord) -> String {
    let attempt = if r.attempts > 0 {
        format!(" (attempt {}/{})", r.attempts, r.max_attempts)
    } else {
        String::new()
    };
    match r.state {
        State::Queued => "queued".to_string(),
        State::Succeeded | State::Failed | State::Escalated | State::Interrupted => {
            let mut s = format!("{}{attempt}", r.state.outcome());
            if let Some(reason) = &r.reason {
                s.push_str(": ");
                s.push_str(&super::terminal::clean(reason));
            }
            s
        }
        // A new attempt after failing checks says which failed, and how.
        State::Running if r.attempts > 1 && r.checks.iter().any(|c| !c.passed) => {
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| match &c.exit {
                    Some(exit) => format!("`{}` ({exit})", c.name),
                    None => format!("`{}`", c.name),
                })
                .collect();
            format!(
                "{}{attempt}, after {} failed",
                r.state.as_str(),
                failed.join(", ")
            )
        }
        state => format!("{}{attempt}", state.as_str()),
    }
}
