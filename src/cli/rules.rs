//! The rules a tree is judged by, read from a commit (the config and the
//! brief as committed there, so a change cannot rewrite its own rules), and
//! the reviewer run on a tree. Shared by `review` (a change at its merge
//! base) and `land` (a result on its base's tip).

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

use super::{exit, CliError, CliResult, Ctx};
use crate::engine::review::{self, ReviewReport, ReviewRequest, Setup};
use crate::exec::process::StopSignal;
use crate::git::Repo;
use crate::spec::brief::{self, Context};
use crate::spec::config::{self, Config, CONFIG_PATH};

/// The first ten hex digits of a commit id.
pub(crate) fn short(o: git2::Oid) -> String {
    o.to_string()[..10].to_string()
}

/// The text of `path` in `commit`'s tree, if it is a file there.
fn file_at(repo: &git2::Repository, commit: git2::Oid, path: &str) -> CliResult<Option<String>> {
    let read = || -> Result<Option<Vec<u8>>, git2::Error> {
        let tree = repo.find_commit(commit)?.tree()?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        Ok(entry
            .to_object(repo)?
            .as_blob()
            .map(|b| b.content().to_vec()))
    };
    let bytes = read()
        .map_err(|e| CliError::from_error(exit::USAGE, format!("could not read {path}"), &e))?;
    bytes
        .map(|b| {
            String::from_utf8(b).map_err(|_| CliError::usage(format!("{path} is not UTF-8 text")))
        })
        .transpose()
}

/// The config as committed at `commit` (the defaults when there is none).
pub(crate) fn config_at(
    repo: &git2::Repository,
    root: &Path,
    commit: git2::Oid,
    ctx: &Ctx,
) -> CliResult<Config> {
    let Some(text) = file_at(repo, commit, CONFIG_PATH)? else {
        return Ok(Config::default());
    };
    let display = format!("{}:{CONFIG_PATH}", short(commit));
    let (config, report) = config::parse(&root.join(CONFIG_PATH), display, &text, root);
    if report.has_errors() {
        eprint!(
            "{}",
            report.render(ctx.stderr_tty, super::helper::terminal_width())
        );
        return Err(CliError::reported(exit::USAGE));
    }
    Ok(config.unwrap_or_default())
}

/// The brief of `task` as committed at `commit`; `None` when it is not
/// there; its problems, when it has any, on stderr.
pub(crate) fn brief_at(
    repo: &git2::Repository,
    root: &Path,
    commit: git2::Oid,
    task: &str,
    config: &Config,
    ctx: &Ctx,
) -> CliResult<Option<brief::Brief>> {
    if brief::TaskId::parse(task).is_err() {
        return Err(CliError::usage(format!("`{task}` is not a task id")));
    }
    let rel = format!("{}/{task}.md", brief::TASKS_DIR);
    let Some(text) = file_at(repo, commit, &rel)? else {
        return Ok(None);
    };
    let brief_ctx = Context {
        known_agents: config.present.then(|| config.agent_names()),
    };
    let (brief, report) = brief::parse(
        &root.join(&rel),
        format!("{}:{rel}", short(commit)),
        &text,
        &brief_ctx,
    );
    match brief {
        Some(b) if !report.has_errors() => Ok(Some(b)),
        _ => {
            eprint!(
                "{}",
                report.render(ctx.stderr_tty, super::helper::terminal_width())
            );
            Err(CliError::reported(exit::USAGE))
        }
    }
}

/// Where and how a reviewer's checks run: a fresh directory under the
/// common dir's `agent/reviews/` (named `<kind>-<time>-<task>-<hex>`, so
/// that `git agent clean` finds it if this process dies), the config's
/// sandbox and grace.
pub(crate) fn check_setup(
    root: &Path,
    common: &Path,
    config: &Config,
    kind: &str,
    task: &str,
) -> Setup {
    let mut engine = crate::engine::run::Engine::new(
        root,
        common,
        config.worktree_dir.clone(),
        config.kill_grace.unwrap_or(Duration::from_secs(5)),
    );
    let name = format!(
        "{kind}-{}-{task}-{:04x}",
        crate::model::time::now_compact(),
        rand::random::<u16>()
    );
    engine.withhold(config.github.token_env.as_deref());
    Setup {
        worktree_base: engine.worktree_base.clone(),
        dir: common.join("agent").join("reviews").join(&name),
        sandbox: config.sandbox.clone(),
        env_source: engine.env_source.clone(),
        grace: engine.grace,
        notice: super::stderr_notice(),
    }
}

/// A runtime for the reviewer's checks, this process made ready for them
/// (hardened, the subreaper of what they start).
pub(crate) fn checks_runtime() -> CliResult<tokio::runtime::Runtime> {
    crate::exec::sandbox::harden_self();
    crate::exec::process::become_subreaper();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::from_error(exit::RUN_FAILED, "could not start the runtime", &e))
}

/// Runs the reviewer on `req` (stoppable by a signal) and removes its
/// directory after; `what` names it in an error (`the review`).
pub(crate) fn run_review(
    runtime: &tokio::runtime::Runtime,
    workspace: &Repo,
    req: &ReviewRequest,
    setup: &Setup,
    what: &str,
) -> CliResult<ReviewReport> {
    let result = runtime.block_on(async {
        let (tx, rx) = watch::channel(StopSignal::Run);
        crate::engine::orchestrator::install_signal_handler(tx, super::announce_stopping);
        review::review(workspace, req, setup, rx).await
    });
    let _ = std::fs::remove_dir_all(&setup.dir);
    result.map_err(|e| {
        CliError::failed(format!(
            "{what} could not finish: {}",
            crate::engine::run::error_chain(&e)
        ))
    })
}
