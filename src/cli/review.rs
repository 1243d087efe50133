//! `git agent review`: verify a change (a pull request's head, a branch)
//! against its brief — scope and checks — without running an agent.

use std::path::Path;

use super::rules::{self, short};
use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::engine::review::{ReviewReport, ReviewRequest, Verdict};
use crate::git::Repo;
use crate::spec::brief;
use crate::spec::config::Config;

/// Verify a change against the brief it was made under: scope and checks
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The change's head: a commit, branch or `refs/pull/N/head` (default HEAD)
    pub rev: Option<String>,
    /// The branch the change targets (default: origin/HEAD)
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The brief to judge by (default: the `Agent-Task` trailer of the change's commits)
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Post the checks and the scope verdict to GitHub for the head commit
    #[arg(long)]
    pub post: bool,
    /// As --post, and a review that cannot post fails (exit 1): a CI step
    /// must not pass without its checks
    #[arg(long)]
    pub post_required: bool,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let repo = git2::Repository::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let change = resolve_change(&repo, &args)?;
    if args.base.is_none() {
        eprintln!(
            "no --base: judging against {}, the remote's default branch (merge base {}); pass --base <branch> for another",
            change.target,
            short(change.base)
        );
    }
    say_if_escalated(ctx, &change);
    // The rules come from the merge base: a change cannot rewrite them.
    let config = rules::config_at(&repo, &root, change.base, ctx)?;
    let brief = brief_at_base(&repo, &root, &change, &config, ctx)?;
    let common = repo.commondir().to_path_buf();
    drop(repo);

    let setup = rules::check_setup(&root, &common, &config, "review", &change.task);
    let workspace = Repo::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?;
    let runtime = rules::checks_runtime()?;
    eprintln!(
        "reviewing {} against `{}` (base {})",
        short(change.head),
        change.task,
        short(change.base)
    );
    let req = ReviewRequest {
        brief,
        head: change.head,
        base: change.base,
    };
    let report = rules::run_review(&runtime, &workspace, &req, &setup, "the review")?;
    let mut posting_failed = None;
    if args.post || args.post_required {
        // A fork's pull request gets a read-only token: with --post the
        // verdict (the exit code) still stands when the checks cannot be
        // posted; with --post-required it does not.
        if let Err(e) = post(&runtime, &common, &config, &report) {
            eprintln!("warning: could not post the review to GitHub: {e}");
            posting_failed = Some(e);
        }
    }
    publish(&report, args.json)?;
    if let (true, Some(e)) = (args.post_required, posting_failed) {
        return Err(CliError::failed(format!(
            "could not post the review to GitHub: {e}"
        ))
        .hint("--post-required: the checks must reach the pull request; give the token `checks: write` (or `statuses: write`)"));
    }
    Ok(match report.verdict {
        Verdict::Pass => exit::OK,
        Verdict::Fail => exit::RUN_FAILED,
        Verdict::NeedsHuman => exit::ESCALATED,
    })
}

/// The change under review: its head, its merge base with the target, and
/// the task it is judged by.
struct Change {
    head: git2::Oid,
    base: git2::Oid,
    task: String,
    /// The branch the change targets, as shown (`origin/main`).
    target: String,
}

/// Resolve the head, the merge base with the target branch and the task
/// from the arguments (and, without `--task`, the commits' trailers).
fn resolve_change(repo: &git2::Repository, args: &Args) -> CliResult<Change> {
    let head_rev = args.rev.as_deref().unwrap_or("HEAD");
    let head = commit_of(repo, head_rev)?;
    let base_rev = target_rev(repo, args)?;
    let target = commit_of(repo, &base_rev)?;
    let base = repo.merge_base(target, head).map_err(|_| {
        CliError::usage(format!(
            "`{head_rev}` and `{base_rev}` have no common history"
        ))
    })?;
    let task = match &args.task {
        Some(t) => t.clone(),
        None => task_from_trailers(repo, head, base)?.ok_or_else(|| {
            CliError::usage(format!(
                "no commit in {}..{} names its task (an `Agent-Task:` trailer)",
                short(base),
                short(head)
            ))
            .hint("pass --task <id>")
        })?,
    };
    let target = repo
        .find_reference(&base_rev)
        .ok()
        .and_then(|r| r.symbolic_target().ok().flatten().map(str::to_string))
        .unwrap_or(base_rev);
    let target = target
        .strip_prefix("refs/remotes/")
        .or_else(|| target.strip_prefix("refs/heads/"))
        .unwrap_or(&target)
        .to_string();
    Ok(Change {
        head,
        base,
        task,
        target,
    })
}

/// A change that is the result of a run that escalated is said to be: the
/// run handed it to a human, and why is in its reason.
fn say_if_escalated(ctx: &Ctx, change: &Change) {
    let head = change.head.to_string();
    let Ok(records) = super::helper::store(ctx).and_then(|s| {
        s.list()
            .map_err(|e| CliError::from_error(exit::USAGE, "could not read the runs", &e))
    }) else {
        return;
    };
    let escalated = records.iter().rev().find(|r| {
        r.commit.as_deref() == Some(head.as_str())
            && r.effective_state() == crate::model::store::State::Escalated
    });
    if let Some(r) = escalated {
        eprintln!(
            "note: {} is the result of run {}, which escalated: {}",
            short(change.head),
            r.run_id,
            super::terminal::clean(r.reason.as_deref().unwrap_or("a human must look"))
        );
    }
}

/// The branch the change targets: `--base`, else `origin/HEAD`.
fn target_rev(repo: &git2::Repository, args: &Args) -> CliResult<String> {
    match &args.base {
        Some(b) => Ok(b.clone()),
        None if repo.revparse_single("refs/remotes/origin/HEAD").is_ok() => {
            Ok("refs/remotes/origin/HEAD".into())
        }
        None => Err(
            CliError::usage("cannot tell which branch the change targets")
                .hint("pass --base <branch>, e.g. `--base main`"),
        ),
    }
}

/// Print the report (text or JSON), and hand it to GitHub Actions when
/// running there.
fn publish(report: &ReviewReport, json: bool) -> CliResult<()> {
    let text = render(report);
    if let Some(runner) = crate::report::actions::Runner::detect(|k| std::env::var(k).ok()) {
        if let Err(e) = runner.publish_review(report, &text) {
            eprintln!("warning: GitHub Actions summary/outputs: {e}");
        }
    }
    if json {
        print_json(report)?;
    } else {
        super::print_out(&text);
    }
    Ok(())
}

fn commit_of(repo: &git2::Repository, rev: &str) -> CliResult<git2::Oid> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .map_err(|_| CliError::usage(format!("`{rev}` is not a commit in this repository")))
}

/// The newest `Agent-Task:` trailer among the commits `base..head`.
fn task_from_trailers(
    repo: &git2::Repository,
    head: git2::Oid,
    base: git2::Oid,
) -> CliResult<Option<String>> {
    let walk = || -> Result<Option<String>, git2::Error> {
        let mut revwalk = repo.revwalk()?;
        revwalk.push(head)?;
        revwalk.hide(base)?;
        for oid in revwalk {
            let commit = repo.find_commit(oid?)?;
            let task = commit.message().ok().and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("Agent-Task: "))
                    .map(|t| t.trim().to_string())
            });
            if task.is_some() {
                return Ok(task);
            }
        }
        Ok(None)
    };
    walk().map_err(|e| CliError::from_error(exit::USAGE, "could not read the change's commits", &e))
}

/// The brief the change is judged by: its task's, as committed at the
/// merge base.
fn brief_at_base(
    repo: &git2::Repository,
    root: &Path,
    change: &Change,
    config: &Config,
    ctx: &Ctx,
) -> CliResult<brief::Brief> {
    let found = rules::brief_at(repo, root, change.base, &change.task, config, ctx)?;
    found.ok_or_else(|| {
        CliError::usage(format!(
            "there is no {}/{}.md at the merge base ({}): a change is judged by the brief it was made under",
            brief::TASKS_DIR,
            change.task,
            short(change.base)
        ))
        .hint("commit the brief to the target branch first, or pass --task <id>")
    })
}

fn post(
    runtime: &tokio::runtime::Runtime,
    common: &Path,
    config: &Config,
    report: &ReviewReport,
) -> Result<(), crate::deliver::DeliverError> {
    let target = super::helper::forge_target(common, config)?;
    let reports = crate::deliver::review_check_reports(report);
    let notices = runtime.block_on(crate::deliver::post_checks(&target, &reports))?;
    for n in notices {
        eprintln!("note: {n}");
    }
    eprintln!("posted {} checks for {}", reports.len(), &report.head[..10]);
    Ok(())
}

/// The human report.
pub fn render(r: &ReviewReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "review of {} against `{}` ({}), base {}",
        &r.head[..10],
        r.task,
        r.title,
        &r.base[..10]
    );
    render_changes(&mut out, r);
    render_checks(&mut out, r);
    for v in &r.violations {
        let _ = writeln!(out, "\nviolation: {v}");
    }
    for n in &r.needs_human {
        let _ = writeln!(out, "\nneeds a human: {n}");
    }
    let _ = writeln!(out, "\nverdict: {}", verdict_text(r));
    out
}

/// Each changed path with the scope's verdict on it.
fn render_changes(out: &mut String, r: &ReviewReport) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\nchanges ({}):", r.changes.len());
    for c in &r.changes {
        let verdict = match &c.verdict {
            crate::model::event::VerdictRecord::Allowed { glob } => format!("in scope ({glob})"),
            crate::model::event::VerdictRecord::Denied { glob } => format!("DENIED ({glob})"),
            crate::model::event::VerdictRecord::OutOfScope => "OUT OF SCOPE".into(),
        };
        let _ = writeln!(out, "  {:<13} {}  {verdict}", c.kind, c.path);
    }
}

/// Each check's outcome, with the last lines of a failing one's output.
fn render_checks(out: &mut String, r: &ReviewReport) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "\nchecks (sandbox: {}):", r.sandbox);
    for c in &r.checks {
        let _ = writeln!(
            out,
            "  {} {}  `{}`  {:.1}s{}",
            if c.passed { "ok  " } else { "FAIL" },
            c.name,
            c.command,
            c.duration_ms() as f64 / 1000.0,
            if c.passed {
                String::new()
            } else {
                format!("  ({})", c.exit_short())
            }
        );
        for line in c
            .failing_tail()
            .lines()
            .rev()
            .take(10)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let _ = writeln!(out, "       | {line}");
        }
    }
}

/// The verdict line's text; a failure says what failed.
fn verdict_text(r: &ReviewReport) -> String {
    let failed = r.checks.iter().filter(|c| !c.passed).count();
    match r.verdict {
        Verdict::Pass => "pass".to_string(),
        Verdict::NeedsHuman => "needs a human".to_string(),
        Verdict::Fail => format!(
            "fail ({} scope problem(s), {failed} failing check(s))",
            r.violations.len()
        ),
    }
}
