//! `git agent stats`: runs counted per task and per agent, from the
//! records, the events and what the base branches hold
//! ([`crate::model::reached`]). Pure: the facts of each run in, the
//! figures out; the CLI gathers the one and prints the other.
//!
//! The JSON of `stats --json` is [`Stats`] as serialized here (stable:
//! fields are added, never renamed or removed):
//!
//! ```text
//! {
//!   "total":  Figures,
//!   "tasks":  [ { "task":  "<id>",   ...Figures } ],   sorted by task
//!   "agents": [ { "agent": "<name>", ...Figures } ]    sorted by agent
//! }
//! Figures = {
//!   "runs": n,
//!   "outcomes": { "succeeded": n, "failed": n, "escalated": n,
//!                 "interrupted": n, "running": n },
//!   "attempts": { "total": n, "mean": x },               mean over runs (0 when none)
//!   "duration_ms": { "total": n, "median": n | null },   finished runs only
//!   "usage": { "runs_reporting": n,                      runs whose agent reported usage
//!              "input_tokens": n | null, "output_tokens": n | null,
//!              "cost_usd": x | null },                   null: no run reported it
//!   "results": n,      runs that left a commit
//!   "merged": n,       results whose own commit is reachable from their base branch
//!   "landed": n,       results in their base rewritten (cherry-picked, rebased,
//!                      squashed): a commit there carries their Agent-Run trailer
//!   "delivered": n     runs delivered to the forge (pushed, a pull request or an issue)
//! }
//! ```

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::event::Event;
use crate::model::reached::Reached;
use crate::model::store::State;

pub use crate::model::usage::Usage;

/// The usage the adapters reported in a run's `agent_activity` events.
pub fn usage(events: &[Event]) -> Usage {
    Usage::of_events(events)
}

/// One run, as the figures need it.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub task: String,
    pub agent: String,
    /// The effective state (an orphaned run is interrupted).
    pub state: State,
    pub attempts: u32,
    /// Finished runs only.
    pub duration_ms: Option<u64>,
    pub usage: Usage,
    /// `None`: the run left no commit.
    pub landing: Option<Reached>,
    pub delivered: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Outcomes {
    pub succeeded: u64,
    pub failed: u64,
    pub escalated: u64,
    pub interrupted: u64,
    pub running: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Attempts {
    pub total: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Durations {
    pub total: u64,
    pub median: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UsageTotals {
    pub runs_reporting: u64,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

/// The figures of a group of runs.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Figures {
    pub runs: u64,
    pub outcomes: Outcomes,
    pub attempts: Attempts,
    pub duration_ms: Durations,
    pub usage: UsageTotals,
    pub results: u64,
    pub merged: u64,
    pub landed: u64,
    pub delivered: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskFigures {
    pub task: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentFigures {
    pub agent: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// `stats --json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub total: Figures,
    pub tasks: Vec<TaskFigures>,
    pub agents: Vec<AgentFigures>,
}

/// The figures of every run, of each task and of each agent.
pub fn stats(runs: &[RunFacts]) -> Stats {
    let mut by_task: BTreeMap<&str, Vec<&RunFacts>> = BTreeMap::new();
    let mut by_agent: BTreeMap<&str, Vec<&RunFacts>> = BTreeMap::new();
    for run in runs {
        by_task.entry(&run.task).or_default().push(run);
        by_agent.entry(&run.agent).or_default().push(run);
    }
    Stats {
        total: figures(runs.iter()),
        tasks: by_task
            .into_iter()
            .map(|(task, runs)| TaskFigures {
                task: task.to_string(),
                figures: figures(runs.into_iter()),
            })
            .collect(),
        agents: by_agent
            .into_iter()
            .map(|(agent, runs)| AgentFigures {
                agent: agent.to_string(),
                figures: figures(runs.into_iter()),
            })
            .collect(),
    }
}

fn figures<'a>(runs: impl Iterator<Item = &'a RunFacts>) -> Figures {
    let mut f = Figures::default();
    let mut durations = Vec::new();
    for run in runs {
        f.runs += 1;
        let o = &mut f.outcomes;
        *match run.state {
            State::Succeeded => &mut o.succeeded,
            State::Failed => &mut o.failed,
            State::Escalated => &mut o.escalated,
            State::Interrupted => &mut o.interrupted,
            _ => &mut o.running,
        } += 1;
        f.attempts.total += u64::from(run.attempts);
        if let Some(ms) = run.duration_ms {
            durations.push(ms);
        }
        if run.usage.reported() {
            let u = &mut f.usage;
            u.runs_reporting += 1;
            let sum = Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cost_usd: u.cost_usd,
            }
            .plus(run.usage);
            u.input_tokens = sum.input_tokens;
            u.output_tokens = sum.output_tokens;
            u.cost_usd = sum.cost_usd;
        }
        match run.landing {
            Some(Reached::Merged) => f.merged += 1,
            Some(Reached::Landed) => f.landed += 1,
            _ => {}
        }
        f.results += u64::from(run.landing.is_some());
        f.delivered += u64::from(run.delivered);
    }
    if f.runs > 0 {
        f.attempts.mean = f.attempts.total as f64 / f.runs as f64;
    }
    f.duration_ms = Durations {
        total: durations.iter().sum(),
        median: median(&mut durations),
    };
    f
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut [u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{AgentActivity, EventKind};

    fn run(task: &str, agent: &str, state: State) -> RunFacts {
        RunFacts {
            task: task.into(),
            agent: agent.into(),
            state,
            attempts: 1,
            duration_ms: Some(1000),
            usage: Usage::default(),
            landing: None,
            delivered: false,
        }
    }

    #[test]
    fn usage_is_summed_over_attempts_and_absent_when_never_reported() {
        let activity = |input, cost| {
            Event::now(EventKind::AgentActivity {
                attempt: 1,
                activity: AgentActivity {
                    input_tokens: Some(input),
                    output_tokens: Some(10),
                    cost_usd: cost,
                    ..AgentActivity::default()
                },
            })
        };
        let u = usage(&[activity(100, Some(0.5)), activity(50, None)]);
        assert_eq!(u.input_tokens, Some(150));
        assert_eq!(u.output_tokens, Some(20));
        assert_eq!(u.cost_usd, Some(0.5));
        assert!(!usage(&[Event::now(EventKind::AttemptStarted { attempt: 1 })]).reported());
    }

    #[test]
    fn figures_per_task_and_agent() {
        let mut a = run("t1", "claude", State::Succeeded);
        a.landing = Some(Reached::Merged);
        a.usage = Usage {
            input_tokens: Some(1000),
            output_tokens: Some(200),
            cost_usd: Some(0.25),
        };
        let mut b = run("t1", "codex", State::Failed);
        b.attempts = 3;
        b.duration_ms = Some(4000);
        let mut c = run("t2", "claude", State::Succeeded);
        c.landing = Some(Reached::Landed);
        c.duration_ms = Some(2000);
        let mut d = run("t2", "claude", State::Running);
        d.duration_ms = None;
        let s = stats(&[a, b, c, d]);
        assert_eq!(s.total.runs, 4);
        assert_eq!(s.total.results, 2);
        assert_eq!((s.total.merged, s.total.landed), (1, 1));
        assert_eq!(s.total.duration_ms.median, Some(2000));
        assert_eq!(s.total.duration_ms.total, 7000);
        assert_eq!(s.total.usage.runs_reporting, 1);
        assert_eq!(s.total.usage.cost_usd, Some(0.25));
        let t1 = &s.tasks[0];
        assert_eq!(t1.task, "t1");
        assert_eq!(t1.figures.outcomes.failed, 1);
        assert_eq!(t1.figures.attempts.mean, 2.0);
        assert_eq!(t1.figures.duration_ms.median, Some(2500));
        let agents: Vec<&str> = s.agents.iter().map(|a| a.agent.as_str()).collect();
        assert_eq!(agents, ["claude", "codex"]);
        assert_eq!(s.agents[0].figures.outcomes.running, 1);
        assert_eq!(s.agents[1].figures.usage.input_tokens, None);
    }
}
