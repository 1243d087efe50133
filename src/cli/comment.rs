//! `git agent comment EVENT`: a slash command in a pull request or issue
//! comment (the Action's `comment` mode, on `issue_comment` events).
//!
//! First call: decide from the payload whether and what to do
//! (`deliver::forge::event`), answer with a reaction (👀 taken, 👎
//! refused, with a comment saying why), and print the `git agent` command
//! line to run, one argument per line (nothing when there is nothing to
//! do). Second call, `--reply RESULT --status N`: the comment that says
//! how it went (from the command's `--json` output), and a reaction
//! (👍 done, 😕 a human must look, 👎 failed).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::helper::{forge_target, load_config, small_runtime};
use super::{exit, CliError, CliResult, Ctx};
use crate::deliver::forge::event::{self, Comment, Decision, SlashCommand};
use crate::deliver::forge::github::GitHub;
use crate::deliver::forge::Forge as _;

/// Act on a slash command in a pull request or issue comment (the Action's comment mode)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `issue_comment` event's payload (`$GITHUB_EVENT_PATH`)
    pub event: PathBuf,
    /// Reply with how the command went: its `--json` output in this file
    #[arg(long, value_name = "RESULT", requires = "status")]
    pub reply: Option<PathBuf>,
    /// The command's exit code (with --reply)
    #[arg(long, value_name = "N", requires = "reply")]
    pub status: Option<i32>,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let text = std::fs::read_to_string(&args.event).map_err(|e| {
        CliError::from_error(
            exit::USAGE,
            format!("could not read {}", args.event.display()),
            &e,
        )
    })?;
    let payload: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::usage(format!("{} is not JSON: {e}", args.event.display())))?;
    let comment = event::parse(&payload).map_err(CliError::usage)?;
    let decision = event::decide(&comment);
    if let Decision::Ignore(why) = &decision {
        eprintln!("git-agent: nothing to do: {why}");
        return Ok(exit::OK);
    }
    let root = ctx.root()?;
    let config = load_config(&root, ctx)?;
    let common = git2::Repository::discover(&root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not open the repository", &e))?
        .commondir()
        .to_path_buf();
    let target = forge_target(&common, &config).map_err(CliError::usage)?;
    let runtime = small_runtime()?;
    // The client is made inside the runtime (its connection pool needs one).
    let _inside = runtime.enter();
    let gh = target.github().map_err(CliError::usage)?;
    if let (Some(result), Some(status)) = (&args.reply, args.status) {
        return runtime.block_on(reply(&gh, &comment, result, status));
    }
    let argv = match decision {
        Decision::Do(cmd) => runtime.block_on(resolve(&gh, &target, &root, &comment, cmd)),
        Decision::Refuse(why) => Err(why),
        Decision::Ignore(_) => unreachable!("returned above"),
    };
    runtime.block_on(answer(&gh, &comment, &argv))?;
    if let Ok(argv) = argv {
        for arg in argv {
            super::outln!("{arg}");
        }
    }
    Ok(exit::OK)
}

/// The reaction (and, for a refusal, the comment) that answers the command.
async fn answer(
    gh: &GitHub,
    comment: &Comment,
    argv: &Result<Vec<String>, String>,
) -> CliResult<()> {
    let failed = |e: crate::deliver::forge::ForgeError| {
        CliError::failed(format!("could not answer the comment: {e}"))
    };
    match argv {
        Ok(argv) => {
            eprintln!(
                "git-agent: @{} asked for `git agent {}`",
                comment.author,
                argv.join(" ")
            );
            gh.react(comment.id, "eyes").await.map_err(failed)
        }
        Err(why) => {
            eprintln!("git-agent: refused: {why}");
            gh.react(comment.id, "-1").await.map_err(failed)?;
            let body = format!(
                "> {}\n\n{}\n\n{}",
                quote_line(&comment.body),
                crate::report::escape::message(why),
                marker(comment.id)
            );
            gh.comment(comment.number, &body).await.map_err(failed)
        }
    }
}

/// The command line a slash command stands for.
async fn resolve(
    gh: &GitHub,
    target: &crate::deliver::Target,
    root: &Path,
    comment: &Comment,
    cmd: SlashCommand,
) -> Result<Vec<String>, String> {
    let task_of = |branch: &str| task_of_branch(root, branch);
    match cmd {
        SlashCommand::Run { task } => Ok(vec!["run".into(), task]),
        SlashCommand::Retry => {
            let pr = gh
                .pull_request(comment.number)
                .await
                .map_err(|e| e.to_string())?;
            if pr.head_repo != gh.full_name() {
                return Err(format!(
                    "pull request #{} comes from {}: git-agent retries only its own branches",
                    pr.number, pr.head_repo
                ));
            }
            let task = task_of(&pr.head_ref).ok_or_else(|| {
                format!(
                    "`{}` is the branch of no brief (`output.branch`, or `agent/<task>`)",
                    pr.head_ref
                )
            })?;
            Ok(vec!["run".into(), task])
        }
        SlashCommand::Review => review_args(gh, target, comment.number).await,
    }
}

/// `review <head> --base origin/<base> --post-required` for pull request
/// `number`, its head fetched (`refs/pull/<n>/head`) to be reviewed.
async fn review_args(
    gh: &GitHub,
    target: &crate::deliver::Target,
    number: u64,
) -> Result<Vec<String>, String> {
    let pr = gh.pull_request(number).await.map_err(|e| e.to_string())?;
    let (target, refname) = (target.clone(), format!("refs/pull/{number}/head"));
    let fetched = tokio::task::spawn_blocking(move || {
        let token = target.token.as_ref().map(|(t, _)| t.as_str());
        let url = target.fetch_url.as_deref().unwrap_or(&target.remote_url);
        let scrub = crate::deliver::scrub_env(&target);
        crate::deliver::forge::push::fetch_objects(&target.git_dir, url, &refname, &scrub, token)
    })
    .await
    .map_err(|e| e.to_string())?;
    fetched.map_err(|e| format!("could not fetch the pull request's head: {e}"))?;
    Ok(vec![
        "review".into(),
        pr.head_sha,
        "--base".into(),
        format!("origin/{}", pr.base_ref),
        "--post-required".into(),
    ])
}

/// The task whose brief's `output.branch` (default `agent/<task>`) is
/// `branch`.
fn task_of_branch(root: &Path, branch: &str) -> Option<String> {
    let ctx = crate::spec::brief::Context::default();
    for path in crate::spec::repo_files::list_briefs(root).unwrap_or_default() {
        let Ok((Some(brief), _)) = crate::spec::brief::load(&path, String::new(), &ctx) else {
            continue;
        };
        if brief.output.branch == branch {
            return Some(brief.id.to_string());
        }
    }
    None
}

/// The reply: how the command went, from its `--json` output.
async fn reply(gh: &GitHub, comment: &Comment, result: &Path, status: i32) -> CliResult {
    let json: Option<Value> = std::fs::read_to_string(result)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let said = match &json {
        Some(Value::Array(runs)) => runs_said(runs),
        Some(review @ Value::Object(_)) => review_said(review),
        _ => format!("The command ended with exit code {status} and said nothing git-agent could read; the workflow run's log tells why."),
    };
    let run_url = match (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
        std::env::var("GITHUB_RUN_ID"),
    ) {
        (Ok(s), Ok(r), Ok(id)) => format!("\n\n[The workflow run]({s}/{r}/actions/runs/{id})"),
        _ => String::new(),
    };
    let body = format!(
        "> {}\n\n{said}{run_url}\n\n{}",
        quote_line(&comment.body),
        marker(comment.id)
    );
    let failed =
        |e: crate::deliver::forge::ForgeError| CliError::failed(format!("could not reply: {e}"));
    gh.comment(comment.number, &body).await.map_err(failed)?;
    let reaction = match status {
        0 => "+1",
        3 => "confused",
        _ => "-1",
    };
    gh.react(comment.id, reaction).await.map_err(failed)?;
    Ok(exit::OK)
}

/// One line per run: task, outcome, where it was delivered.
fn runs_said(runs: &[Value]) -> String {
    if runs.is_empty() {
        return "No run started.".into();
    }
    let lines: Vec<String> = runs
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("?").to_string();
            let url = r["delivery"]["pr_url"]
                .as_str()
                .or(r["delivery"]["issue_url"].as_str());
            let mut line = format!("- `{}`: **{}**", s("task"), s("outcome"));
            if let Some(url) = url {
                line.push_str(&format!(" — {url}"));
            } else if let Some(branch) = r["branch"].as_str() {
                line.push_str(&format!(" — branch `{branch}`"));
            }
            if let Some(reason) = r["reason"].as_str() {
                line.push_str(&format!(": {}", crate::report::escape::message(reason)));
            }
            line
        })
        .collect();
    format!("git-agent ran:\n\n{}", lines.join("\n"))
}

/// A review's verdict and its checks.
fn review_said(review: &Value) -> String {
    let head = review["head"].as_str().unwrap_or("?");
    format!(
        "git-agent reviewed {} against `{}`: **{}** (the checks are on the head commit)",
        &head[..head.len().min(12)],
        review["task"].as_str().unwrap_or("?"),
        review["verdict"].as_str().unwrap_or("?")
    )
}

/// The command's first line, quoted as plain text.
fn quote_line(body: &str) -> String {
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("/agent"))
        .unwrap_or("");
    crate::report::escape::code(line)
}

/// The hidden last line of git-agent's replies.
fn marker(comment: u64) -> String {
    format!("<!-- git-agent reply comment={comment} -->")
}
