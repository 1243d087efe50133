//! `git agent stats`: how the runs of this repository went, per task and
//! per agent. The figures are [`crate::report::stats`]'s (its module docs
//! hold the `--json` shape); what reached the base branch is read from git
//! ([`crate::model::reached`]). The forge is not asked: a pull request
//! merged there counts once its base is fetched (`origin/<base>`).

use std::collections::HashMap;
use std::time::Duration;

use super::helper::store;
use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::model::delivery::DeliveryState;
use crate::model::reached::{self, BaseHistory};
use crate::model::store::{RunRecord, Store};
use crate::report::stats::{self, Figures, RunFacts, Stats};

/// Count runs per task and per agent: outcomes, attempts, time, tokens, merged results
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = store(ctx)?;
    let records = store
        .list()
        .map_err(|e| CliError::from_error(exit::USAGE, "could not read the runs", &e))?;
    let bases = base_histories(ctx, &records)?;
    let facts: Vec<RunFacts> = records.iter().map(|r| facts(&store, r, &bases)).collect();
    let stats = stats::stats(&facts);
    if args.json {
        print_json(&stats)?;
        return Ok(exit::OK);
    }
    if records.is_empty() {
        eprintln!("no runs yet; start one with `git agent run <id>`");
        return Ok(exit::OK);
    }
    super::print_out(&render(&stats));
    Ok(exit::OK)
}

/// One run's facts: its record, the usage in its events, where its result is.
fn facts(store: &Store, r: &RunRecord, bases: &HashMap<String, Option<BaseHistory>>) -> RunFacts {
    let state = r.effective_state();
    // Only the adapters' reports are parsed; a run whose events cannot be
    // read reported no usage.
    let events = store
        .open(&r.run_id)
        .read_events_mentioning("agent_activity")
        .unwrap_or_default();
    let base = reached::base_branch(r).and_then(|b| bases.get(b)?.as_ref());
    RunFacts {
        task: r.task.clone(),
        agent: r.agent.clone(),
        state,
        attempts: r.attempts,
        duration_ms: r.duration_ms.filter(|_| state.is_terminal()),
        usage: stats::usage(&events),
        landing: reached::reached(r, base),
        delivered: r
            .delivery
            .as_ref()
            .is_some_and(|d| d.state == DeliveryState::Delivered),
    }
}

/// The history of each base branch that a result belongs in, walked once
/// back to the base the branch's first run started from.
fn base_histories(
    ctx: &Ctx,
    records: &[RunRecord],
) -> CliResult<HashMap<String, Option<BaseHistory>>> {
    let mut since: HashMap<&str, Option<&str>> = HashMap::new();
    for r in records {
        if let (Some(branch), Some(base)) = (reached::base_branch(r), r.base_commit.as_deref()) {
            // Oldest first: the first run of a branch sets where to stop.
            since.entry(branch).or_insert(Some(base));
        }
    }
    let wanted: Vec<&str> = records
        .iter()
        .filter(|r| r.commit.is_some())
        .filter_map(reached::base_branch)
        .collect();
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let repo = crate::git::Repo::discover(&ctx.root()?)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    for branch in wanted {
        if out.contains_key(branch) {
            continue;
        }
        let history = repo
            .base_history(branch, since.get(branch).copied().flatten())
            .unwrap_or_else(|e| {
                eprintln!(
                    "warning: could not read the history of {branch}: {}",
                    super::terminal::clean(&e.to_string())
                );
                None
            });
        out.insert(branch.to_string(), history);
    }
    Ok(out)
}

/// The two tables and the closing line. The usage columns are left out
/// when no run reported usage (the closing line says so).
fn render(stats: &Stats) -> String {
    let usage = stats.total.usage.runs_reporting > 0;
    let mut header = vec![
        "RUNS",
        "SUCCEEDED",
        "FAILED",
        "ESCALATED",
        "INTERRUPTED",
        "ATTEMPTS",
        "MEDIAN/TOTAL",
    ];
    if usage {
        header.extend(["TOKENS IN/OUT", "COST"]);
    }
    header.push("IN BASE");
    let tasks: Vec<(&str, &Figures)> = stats
        .tasks
        .iter()
        .map(|t| (t.task.as_str(), &t.figures))
        .collect();
    let agents: Vec<(&str, &Figures)> = stats
        .agents
        .iter()
        .map(|a| (a.agent.as_str(), &a.figures))
        .collect();
    let mut out = table("TASK", &header, &tasks, usage);
    out.push('\n');
    out.push_str(&table("AGENT", &header, &agents, usage));
    out.push('\n');
    out.push_str(&closing(&stats.total));
    if !usage {
        out.push_str("tokens and cost: not reported (no run's agent reported usage)\n");
    }
    out
}

/// An aligned table: the first column left, the figures right.
fn table(first: &str, header: &[&str], rows: &[(&str, &Figures)], usage: bool) -> String {
    let mut lines: Vec<Vec<String>> = vec![std::iter::once(first)
        .chain(header.iter().copied())
        .map(str::to_string)
        .collect()];
    lines.extend(rows.iter().map(|(name, f)| {
        std::iter::once(name.to_string())
            .chain(cells(f, usage))
            .collect::<Vec<_>>()
    }));
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let text: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A group's cells, in the order of the header.
fn cells(f: &Figures, usage: bool) -> Vec<String> {
    let o = &f.outcomes;
    let duration = |ms: u64| crate::spec::duration::short(Duration::from_millis(ms));
    let mut cells = vec![
        f.runs.to_string(),
        o.succeeded.to_string(),
        o.failed.to_string(),
        o.escalated.to_string(),
        o.interrupted.to_string(),
        format!("{:.1}", f.attempts.mean),
        match f.duration_ms.median {
            Some(median) => format!("{}/{}", duration(median), duration(f.duration_ms.total)),
            None => "-".into(),
        },
    ];
    if usage {
        let u = &f.usage;
        let partial = if u.runs_reporting > 0 && u.runs_reporting < f.runs {
            format!(" ({} of {} runs)", u.runs_reporting, f.runs)
        } else {
            String::new()
        };
        cells.push(if u.runs_reporting == 0 {
            "not reported".into()
        } else {
            format!(
                "{}/{}{partial}",
                count(u.input_tokens),
                count(u.output_tokens)
            )
        });
        cells.push(
            u.cost_usd
                .map_or_else(|| "-".into(), |c| format!("${c:.2}")),
        );
    }
    cells.push(if f.results == 0 {
        "-".into()
    } else {
        format!("{}/{}", f.merged + f.landed, f.results)
    });
    cells
}

/// A token count, short: `950`, `12.3k`, `4.1M`; `-` when not reported.
fn count(n: Option<u64>) -> String {
    match n {
        None => "-".into(),
        Some(n) if n < 1000 => n.to_string(),
        Some(n) if n < 1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        Some(n) => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// `7 runs: 4 succeeded, 2 failed, 1 escalated; 4 results, 2 in their base (1 merged, 1 landed)`.
fn closing(t: &Figures) -> String {
    let o = &t.outcomes;
    let outcomes: Vec<String> = [
        (o.succeeded, "succeeded"),
        (o.failed, "failed"),
        (o.escalated, "escalated"),
        (o.interrupted, "interrupted"),
        (o.running, "running"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}: {}; {}, {} in their base ({} merged, {} landed), {} delivered\n",
        plural(t.runs, "run", "runs"),
        outcomes.join(", "),
        plural(t.results, "result", "results"),
        t.merged + t.landed,
        t.merged,
        t.landed,
        t.delivered
    )
}
