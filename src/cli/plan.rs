//! `git agent plan`: what `git agent run` would do with these briefs —
//! agent, base commit (or the results it starts from, `after:`), worktree,
//! scope, checks, escalation, delivery, which runs wait for which and which
//! run side by side, the chains — without running anything. `--matrix`
//! prints the chains as a GitHub Actions matrix.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::helper::load_requests;
use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::engine::orchestrator;
use crate::engine::run::RunRequest;
use crate::spec::brief::{Deliver, EscalateFallback, OnScopeViolation};

/// Show what `run` would do with these briefs, and in which order; run nothing
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Task ids (the brief file names in .agents/tasks)
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub tasks: Vec<String>,
    /// Every brief in .agents/tasks
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub batch: super::helper::Batch,
    /// Print the plan as JSON on stdout
    #[arg(long, conflicts_with = "matrix")]
    pub json: bool,
    /// Print the independent chains as a GitHub Actions matrix (JSON for
    /// `strategy.matrix`: `{"include": [{"chain": .., "tasks": ..}]}`)
    #[arg(long)]
    pub matrix: bool,
}

/// One run as planned.
#[derive(Debug, Serialize)]
pub struct Planned {
    pub task: String,
    pub title: String,
    pub agent: String,
    pub adapter: String,
    pub command: String,
    pub base: String,
    /// The commit `base` resolves to now.
    pub base_commit: Option<String>,
    /// `scope.read` plus the write globs: what a sparse worktree holds.
    pub sparse: Option<Vec<String>>,
    pub write: Vec<String>,
    pub deny: Vec<String>,
    pub checks: Vec<PlannedCheck>,
    pub attempts: u32,
    pub timeout_secs: u64,
    pub max_changed_lines: Option<u64>,
    pub escalate_paths: Vec<String>,
    pub on_scope_violation: &'static str,
    pub deliver: &'static str,
    pub branch: String,
    pub fallback: &'static str,
    /// The brief's `after:`.
    pub after: Vec<String>,
    /// Tasks of the batch this one runs after: it starts when they succeed.
    pub waits_for: Vec<String>,
    /// Where each task of `after:` outside the batch has its result.
    pub starts_from: Vec<StartsFrom>,
    /// Tasks of the batch it runs side by side with (write scopes that may
    /// overlap, not chained): their results are checked for conflicts.
    pub overlaps: Vec<String>,
}

/// A task of `after:` outside the batch, as the run would find it now.
#[derive(Debug, Serialize)]
pub struct StartsFrom {
    pub task: String,
    pub branch: String,
    /// Its result the run would start from; `None` when the base holds it
    /// (or, with `missing`, when there is none).
    pub commit: Option<String>,
    /// No result anywhere: the run would fail.
    pub missing: bool,
}

#[derive(Debug, Serialize)]
pub struct PlannedCheck {
    pub name: String,
    pub run: String,
    pub timeout_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct Plan {
    pub jobs: usize,
    pub runs: Vec<Planned>,
    /// The independent chains, each in the order its tasks run.
    pub chains: Vec<Vec<String>>,
}

/// One entry of `--matrix`: a chain, run by one job.
#[derive(Debug, Serialize)]
pub struct MatrixEntry {
    /// Its first task: a name for the job.
    pub chain: String,
    /// Its tasks in order, separated by spaces (the Action's `tasks`).
    pub tasks: String,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let config = super::helper::load_config(&root, ctx)?;
    let ids = super::helper::task_ids(&root, args.all, &args.tasks)?;
    let reqs = load_requests(&root, &config, &ids, args.batch.agent.as_deref(), ctx)?;
    let repo = git2::Repository::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let jobs = super::helper::jobs(args.batch.jobs, &config);
    let order = orchestrator::plan(&reqs);
    let chains = crate::spec::after::chains(
        &order
            .iter()
            .map(|e| (e.task.clone(), e.waits_for.clone()))
            .collect::<Vec<_>>(),
    );
    if args.matrix {
        return print_matrix(&chains);
    }
    let git = crate::git::Repo::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let runs: Vec<Planned> = reqs
        .iter()
        .zip(order)
        .map(|(req, entry)| {
            let mut p = planned(&repo, req, entry.waits_for);
            p.overlaps = entry.overlaps;
            p.starts_from = starts_from(&git, req, &p);
            p
        })
        .collect();
    let plan = Plan { jobs, runs, chains };
    if args.json {
        print_json(&plan)?;
    } else {
        super::print_out(&render(&plan));
    }
    // A base that does not resolve, or a task to start after that has no
    // result, would fail the run: say so by the code.
    let fails = |r: &Planned| r.base_commit.is_none() || r.starts_from.iter().any(|s| s.missing);
    Ok(if plan.runs.iter().any(fails) {
        exit::USAGE
    } else {
        exit::OK
    })
}

/// `--matrix`: one entry per chain, on one line (for `$GITHUB_OUTPUT`).
fn print_matrix(chains: &[Vec<String>]) -> CliResult {
    let include: Vec<MatrixEntry> = chains
        .iter()
        .map(|c| MatrixEntry {
            chain: c.first().cloned().unwrap_or_default(),
            tasks: c.join(" "),
        })
        .collect();
    let json = serde_json::json!({ "include": include });
    super::outln!("{json}");
    Ok(exit::OK)
}

/// Where the tasks of `after:` that are not in the batch have their
/// results, as the run would find them now.
fn starts_from(git: &crate::git::Repo, req: &RunRequest, p: &Planned) -> Vec<StartsFrom> {
    let base = p
        .base_commit
        .as_deref()
        .and_then(|c| git2::Oid::from_str(c).ok());
    req.after
        .iter()
        .filter(|a| !p.waits_for.contains(&a.task))
        .map(|a| {
            let tip = git.result_of(&a.task, &a.branch).ok().flatten();
            let held = |f: &dyn Fn(git2::Oid) -> bool| base.is_some_and(f);
            let (commit, missing) = match tip {
                Some(t) if held(&|b| git.holds_result(b, t).unwrap_or(false)) => (None, false),
                Some(t) => (Some(t.to_string()), false),
                None => (
                    None,
                    !held(&|b| git.holds_task(b, &a.task).unwrap_or(false)),
                ),
            };
            StartsFrom {
                task: a.task.clone(),
                branch: a.branch.clone(),
                commit,
                missing,
            }
        })
        .collect()
}

fn planned(repo: &git2::Repository, req: &RunRequest, waits_for: Vec<String>) -> Planned {
    let b = &req.brief;
    let secs = |d: Duration| d.as_secs();
    Planned {
        task: b.id.to_string(),
        title: b.title.clone(),
        agent: req.agent.name.clone(),
        adapter: format!("{:?}", req.agent.adapter).to_lowercase(),
        command: std::iter::once(req.agent.command.as_str())
            .chain(req.agent.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        base: b.base.clone(),
        base_commit: repo
            .revparse_single(&b.base)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id().to_string())
            .ok(),
        sparse: b.sparse_patterns(),
        write: b.scope.write.patterns().to_vec(),
        deny: b.scope.deny.patterns().to_vec(),
        checks: b
            .checks
            .iter()
            .map(|c| PlannedCheck {
                name: c.name.clone(),
                run: c.run.clone(),
                timeout_secs: secs(c.timeout),
            })
            .collect(),
        attempts: b.escalate.attempts,
        timeout_secs: secs(b.escalate.timeout),
        max_changed_lines: b.escalate.max_changed_lines,
        escalate_paths: b.escalate.paths.patterns().to_vec(),
        on_scope_violation: match b.escalate.on_scope_violation {
            OnScopeViolation::Escalate => "escalate",
            OnScopeViolation::Revert => "revert",
        },
        deliver: match b.output.deliver {
            Deliver::Branch => "branch",
            Deliver::Push => "push",
            Deliver::Pr => "pr",
            Deliver::DraftPr => "draft-pr",
        },
        branch: b.output.branch.clone(),
        fallback: match b.escalate.fallback {
            EscalateFallback::DraftPr => "draft-pr",
            EscalateFallback::Issue => "issue",
        },
        after: b.after.iter().map(|a| a.task.to_string()).collect(),
        waits_for,
        starts_from: Vec::new(),
        overlaps: Vec::new(),
    }
}

/// The human plan.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for r in &plan.runs {
        render_run(&mut out, r);
    }
    if plan.runs.iter().any(|r| !r.after.is_empty()) {
        let _ = writeln!(
            out,
            "chains (each in the order it runs; chains are independent)"
        );
        for chain in &plan.chains {
            let _ = writeln!(out, "  {}", chain.join(" → "));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} run{}, at most {} at once",
        plan.runs.len(),
        if plan.runs.len() == 1 { "" } else { "s" },
        plan.jobs
    );
    out
}

/// A duration in seconds, the short way (`90s`, `5m`).
fn short(d: u64) -> String {
    crate::spec::duration::short(Duration::from_secs(d))
}

/// One planned run: a line per aspect, then a blank line.
fn render_run(out: &mut String, r: &Planned) {
    let _ = writeln!(out, "{}  {}", r.task, r.title);
    let _ = writeln!(
        out,
        "  agent     {} ({}: {})",
        r.agent, r.adapter, r.command
    );
    let _ = writeln!(
        out,
        "  base      {} → {}",
        r.base,
        r.base_commit
            .as_deref()
            .map(|c| &c[..10])
            .unwrap_or("does not resolve: the run would fail")
    );
    let _ = writeln!(
        out,
        "  worktree  {}",
        match &r.sparse {
            Some(p) => format!("sparse: {}", p.join(", ")),
            None => "full checkout".into(),
        }
    );
    let _ = write!(out, "  writes    {}", r.write.join(", "));
    if !r.deny.is_empty() {
        let _ = write!(out, " (never: {})", r.deny.join(", "));
    }
    let _ = writeln!(out, "; outside → {}", r.on_scope_violation);
    for c in &r.checks {
        let _ = writeln!(
            out,
            "  check     {}: `{}` ({})",
            c.name,
            c.run,
            short(c.timeout_secs)
        );
    }
    let _ = writeln!(out, "  escalate  {}", escalation(r));
    render_delivery(out, r);
    out.push('\n');
}

/// When the run escalates: its attempts and time, and the limits a human
/// must look past.
fn escalation(r: &Planned) -> String {
    let mut esc = format!(
        "{} attempt{}, {} in all",
        r.attempts,
        if r.attempts == 1 { "" } else { "s" },
        short(r.timeout_secs)
    );
    if let Some(n) = r.max_changed_lines {
        let _ = write!(esc, ", at most {n} lines");
    }
    if !r.escalate_paths.is_empty() {
        let _ = write!(esc, ", a human looks at {}", r.escalate_paths.join(", "));
    }
    esc
}

/// How the run is delivered, and which runs it waits for.
fn render_delivery(out: &mut String, r: &Planned) {
    let _ = write!(out, "  deliver   {} on {}", r.deliver, r.branch);
    if r.deliver == "pr" || r.deliver == "draft-pr" {
        let _ = write!(out, "; escalated → {}", r.fallback);
    }
    out.push('\n');
    render_order(out, r);
}

/// What the run starts from and which runs it waits for or runs beside.
fn render_order(out: &mut String, r: &Planned) {
    if !r.waits_for.is_empty() {
        let _ = writeln!(
            out,
            "  after     {} (this batch: starts from their results once they succeed)",
            r.waits_for.join(", ")
        );
    }
    for s in &r.starts_from {
        let _ = match (&s.commit, s.missing) {
            (Some(c), _) => writeln!(
                out,
                "  after     {}: its result on {} ({}), the pull request stacked on it",
                s.task,
                s.branch,
                &c[..10]
            ),
            (None, false) => writeln!(out, "  after     {}: its result is in the base", s.task),
            (None, true) => writeln!(
                out,
                "  after     {}: has no result on {}: the run would fail",
                s.task, s.branch
            ),
        };
    }
    if !r.overlaps.is_empty() {
        let _ = writeln!(
            out,
            "  beside    {} (write scopes may overlap: side by side, results checked for conflicts)",
            r.overlaps.join(", ")
        );
    }
}
