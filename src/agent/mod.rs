//! The adapter seam: how git-agent drives each kind of agent.
//!
//! [`invocation`] builds the command line and extra environment of one
//! attempt; [`supervise`] runs it under [`process::run`] while watching the
//! CLI's event stream for budgets (`escalate.max_turns`,
//! `escalate.max_cost_usd`); [`report`] parses the stream afterwards into an
//! [`AgentActivity`] for the decision log and maps failures (CLI missing,
//! authentication, model, crash) to a clear outcome.
//!
//! One file per real CLI: [`claude`] (Claude Code), [`codex`] (OpenAI Codex
//! CLI), [`aider`]. The `command` adapter runs any program with
//! `sh -c '<command> "$@"'` and reports nothing.

pub mod aider;
pub mod claude;
pub mod codex;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::exec::process::{self, ProcessError, ProcessOutcome, ProcessSpec, StopSignal};
use crate::model::event::{AgentActivity, CommandRun, ToolCall};
use crate::spec::brief::Brief;
use crate::spec::config::{Adapter, Agent};

/// What an attempt needs to know to build its invocation.
pub struct Context<'a> {
    pub brief: &'a Brief,
    pub worktree: &'a Path,
    /// The run's directory (adapters keep their side files there).
    pub run_dir: &'a Path,
    /// The rendered prompt (it carries the previous attempt's feedback).
    pub prompt_file: &'a Path,
    pub attempt: u32,
    /// The failing checks' output from the previous attempt, if any.
    pub feedback: Option<&'a str>,
    /// The orchestrator's environment (adapters pick their provider's variables from it).
    pub env_source: &'a [(String, String)],
    /// git-agent's own sandbox confines the agent (adapters drop theirs where they clash).
    pub sandboxed: bool,
}

/// The program, arguments and extra environment of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    /// Added to the agent's allowlisted environment (wins over it).
    pub env: Vec<(String, String)>,
}

/// Builds the invocation of one attempt, or says why the agent cannot start
/// (e.g. the CLI is not installed).
pub fn invocation(agent: &Agent, cx: &Context<'_>) -> Result<Invocation, String> {
    let adapter_args = match agent.adapter {
        Adapter::Command => Vec::new(),
        Adapter::Claude => claude::args(agent, cx)?,
        Adapter::Codex => codex::args(agent, cx)?,
        Adapter::Aider => aider::args(agent, cx)?,
    };
    if agent.adapter != Adapter::Command {
        check_installed(agent, cx)?;
    }
    let mut args = vec![
        "-c".to_string(),
        format!("{} \"$@\"", agent.command),
        "git-agent".to_string(),
    ];
    args.extend(adapter_args);
    args.extend(agent.args.iter().cloned());
    if agent.adapter == Adapter::Aider {
        args.extend(aider::trailing(cx));
    }
    let mut env = Vec::new();
    for (name, value) in fixed_env(agent.adapter) {
        env.push((name.to_string(), value.to_string()));
    }
    for name in provider_env(agent.adapter) {
        if let Some((_, v)) = cx.env_source.iter().find(|(k, _)| k == name) {
            env.push((name.to_string(), v.clone()));
        }
    }
    Ok(Invocation {
        program: "sh".into(),
        args,
        env,
    })
}

/// Variables an adapter passes from the orchestrator's environment when they
/// are set, without listing them in `pass_env`: the provider's key and
/// endpoint, and the CLI's own home.
pub fn provider_env(adapter: Adapter) -> &'static [&'static str] {
    match adapter {
        Adapter::Command => &[],
        Adapter::Claude => &[
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_MODEL",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "CLAUDE_CONFIG_DIR",
            "CLAUDE_CODE_USE_BEDROCK",
            "CLAUDE_CODE_USE_VERTEX",
        ],
        Adapter::Codex => &[
            "OPENAI_API_KEY",
            "CODEX_API_KEY",
            "OPENAI_BASE_URL",
            "CODEX_HOME",
        ],
        Adapter::Aider => &[
            "OPENAI_API_KEY",
            "OPENAI_API_BASE",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "DEEPSEEK_API_KEY",
            "OPENROUTER_API_KEY",
        ],
    }
}

/// Variables an adapter always sets: no update checks, telemetry or error
/// reporting from a background run.
fn fixed_env(adapter: Adapter) -> &'static [(&'static str, &'static str)] {
    match adapter {
        Adapter::Claude => &[
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ],
        Adapter::Codex => &[("NO_COLOR", "1")],
        Adapter::Aider => &[("NO_COLOR", "1"), ("AIDER_CHECK_UPDATE", "false")],
        Adapter::Command => &[],
    }
}

/// How to install each CLI, for the "not installed" message.
/// Where an agent CLI keeps its own state (sessions, logs, settings): it
/// must be able to write there under the sandbox. Only paths that exist
/// are returned (a sandbox rule needs an open file descriptor).
pub fn state_paths(
    adapter: Adapter,
    env_source: &[(String, String)],
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let var = |name: &str| {
        env_source
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| PathBuf::from(v))
    };
    let home = var("HOME");
    let in_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
    let (dirs, files): (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) = match adapter {
        Adapter::Command => (Vec::new(), Vec::new()),
        Adapter::Claude => (
            vec![var("CLAUDE_CONFIG_DIR").or_else(|| in_home(".claude"))],
            vec![in_home(".claude.json")],
        ),
        Adapter::Codex => (
            vec![var("CODEX_HOME").or_else(|| in_home(".codex"))],
            Vec::new(),
        ),
        Adapter::Aider => (vec![in_home(".aider")], Vec::new()),
    };
    let keep = |v: Vec<Option<PathBuf>>, dir: bool| -> Vec<PathBuf> {
        v.into_iter()
            .flatten()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_dir() == dir))
            .collect()
    };
    (keep(dirs, true), keep(files, false))
}

pub fn install_hint(adapter: Adapter) -> &'static str {
    match adapter {
        Adapter::Claude => "npm install -g @anthropic-ai/claude-code",
        Adapter::Codex => "npm install -g @openai/codex",
        Adapter::Aider => "python3 -m pip install aider-chat (or pipx install aider-chat)",
        Adapter::Command => "",
    }
}

/// The human name of an adapter's CLI.
pub fn cli_name(adapter: Adapter) -> &'static str {
    match adapter {
        Adapter::Claude => "Claude Code",
        Adapter::Codex => "the Codex CLI",
        Adapter::Aider => "aider",
        Adapter::Command => "the command",
    }
}

/// Fails with an install hint when the command's program is not on the
/// agent's `PATH` (only for a plain program name or path; a shell line is
/// left to the shell).
fn check_installed(agent: &Agent, cx: &Context<'_>) -> Result<(), String> {
    let program = agent.command.trim();
    if program.is_empty()
        || program
            .chars()
            .any(|c| c.is_whitespace() || "|&;<>()$`\"'*?[]{}=".contains(c))
    {
        return Ok(());
    }
    let found = if program.contains('/') {
        is_executable(&cx.worktree.join(program))
    } else {
        let path = cx
            .env_source
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .any(|d| is_executable(&Path::new(d).join(program)))
    };
    if found {
        return Ok(());
    }
    Err(format!(
        "{} (`{program}`) is not installed or not on PATH: install it with `{}`, \
         or set `command:` of agent `{}` in .agents/config.yaml to its path",
        cli_name(agent.adapter),
        install_hint(agent.adapter),
        agent.name
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What kind of failure an agent's CLI reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad or missing credentials: retrying cannot help.
    Auth,
    /// The model does not exist or the provider refused it: retrying cannot help.
    Model,
    /// The CLI ended abnormally (an error event, a crash, a signal).
    Crash,
}

/// A parser of one CLI's output, fed line by line (live and afterwards).
pub trait StreamParser: Send {
    fn line(&mut self, line: &str);
    /// Called once with the whole stderr after the process ended.
    fn stderr(&mut self, _text: &str) {}
    fn activity(&self) -> AgentActivity;
    /// A failure the stream reported, with its message.
    fn failure(&self) -> Option<(FailureKind, String)>;
}

/// Feeds a recorded stream from `tests/fixtures/agent_streams/` to a parser.
#[cfg(test)]
pub(crate) fn feed_fixture<P: StreamParser + Default>(fixture: &str) -> P {
    let path = format!(
        "{}/tests/fixtures/agent_streams/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    let mut parser = P::default();
    for line in text.lines() {
        parser.line(line);
    }
    parser
}

/// A fresh parser for an adapter (`None` for `command`).
pub fn parser(adapter: Adapter) -> Option<Box<dyn StreamParser>> {
    match adapter {
        Adapter::Command => None,
        Adapter::Claude => Some(Box::new(claude::Parser::default())),
        Adapter::Codex => Some(Box::new(codex::Parser::default())),
        Adapter::Aider => Some(Box::new(aider::Parser::default())),
    }
}

/// Parses a whole recorded stdout (and stderr).
pub fn parse(adapter: Adapter, stdout: &str, stderr: &str) -> Option<Box<dyn StreamParser>> {
    let mut p = parser(adapter)?;
    for line in stdout.lines() {
        p.line(line);
    }
    p.stderr(stderr);
    Some(p)
}

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
    let Some(mut parser) = parser(agent.adapter) else {
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

/// What an attempt's agent did, and what the run should make of it.
#[derive(Debug, Clone, Default)]
pub struct AgentReport {
    /// For the decision log (`None` for the `command` adapter).
    pub activity: Option<AgentActivity>,
    /// Retrying cannot help (authentication, model): the run fails with this.
    pub fatal: Option<String>,
    /// Reasons to hand the run to a human (budgets).
    pub escalations: Vec<String>,
}

/// Parses the attempt's output after the agent ended.
pub fn report(
    agent: &Agent,
    brief: &Brief,
    stdout_path: &Path,
    stderr_path: &Path,
    outcome: &ProcessOutcome,
    budget_stop: Option<String>,
) -> AgentReport {
    let stdout = std::fs::read(stdout_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let stderr = std::fs::read(stderr_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let Some(parser) = parse(agent.adapter, &stdout, &stderr) else {
        return AgentReport::default();
    };
    let mut activity = parser.activity();
    let mut out = AgentReport::default();
    let budget = Budget::of(brief);
    if let Some(reason) = budget_stop {
        activity.stopped = Some(format!("stopped while running: {reason}"));
        out.escalations.push(reason);
    } else if let Some(reason) = budget.exceeded(&activity) {
        activity.stopped = Some(reason.clone());
        out.escalations.push(reason);
    } else if let Some(reason) = activity.stopped.clone() {
        // The CLI stopped itself at a budget it was given (claude --max-turns, --max-budget-usd).
        out.escalations.push(reason);
    }
    if budget.max_cost_usd.is_some() && activity.cost_usd.is_none() {
        activity.notes.push(format!(
            "{} does not report cost: escalate.max_cost_usd was not enforced",
            cli_name(agent.adapter)
        ));
    }
    let exit_ok = matches!(outcome.exit, process::ExitKind::Code(0));
    let name = cli_name(agent.adapter);
    match parser.failure() {
        Some((FailureKind::Auth, msg)) => {
            out.fatal = Some(format!(
                "{name} could not authenticate: {msg} (check the API key in the agent's `pass_env`, or log the CLI in)"
            ));
            activity.error = Some(format!("authentication: {msg}"));
        }
        Some((FailureKind::Model, msg)) => {
            out.fatal = Some(format!(
                "{name} could not use its model: {msg} (check `model:` of agent `{}`)",
                agent.name
            ));
            activity.error = Some(format!("model: {msg}"));
        }
        Some((FailureKind::Crash, msg)) => activity.error = Some(msg),
        None if !exit_ok && !outcome.timed_out && out.escalations.is_empty() => {
            let last = stderr.trim().lines().last().unwrap_or("").to_string();
            activity.error = Some(format!("{name} ended with {}: {last}", outcome.exit));
        }
        None => {}
    }
    out.activity = Some(activity);
    out
}

/// Classifies an error message from a CLI or its provider.
pub fn classify(message: &str) -> FailureKind {
    let m = message.to_ascii_lowercase();
    let auth = [
        "401",
        "unauthorized",
        "authentication",
        "invalid api key",
        "invalid x-api-key",
        "invalid_api_key",
        "api key",
        "not logged in",
        "please run /login",
        "login",
        "403",
        "permission_denied",
    ];
    let model = [
        "model_not_found",
        "model not found",
        "does not exist",
        "unknown model",
        "not_found_error",
        "notfounderror",
        "invalid model",
        "404",
        "llm provider not provided",
        "badrequesterror",
    ];
    if auth.iter().any(|k| m.contains(k)) {
        FailureKind::Auth
    } else if model.iter().any(|k| m.contains(k)) {
        FailureKind::Model
    } else {
        FailureKind::Crash
    }
}

/// Adds `path` to `files` once.
pub(crate) fn push_unique(files: &mut Vec<String>, path: String) {
    if !files.contains(&path) {
        files.push(path);
    }
}

/// Makes an absolute path inside `cwd` relative; leaves others alone.
pub(crate) fn relative(path: &str, cwd: Option<&str>) -> String {
    if let Some(cwd) = cwd {
        if let Some(rest) = path.strip_prefix(cwd) {
            if let Some(rest) = rest.strip_prefix('/') {
                return rest.to_string();
            }
        }
    }
    path.to_string()
}

/// Shortens a value for the log.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

pub(crate) fn tool(name: &str, detail: impl Into<String>) -> ToolCall {
    ToolCall {
        name: name.to_string(),
        detail: clip(&detail.into(), 200),
    }
}

pub(crate) fn command(command: &str, exit_code: Option<i32>) -> CommandRun {
    CommandRun {
        command: clip(command, 300),
        exit_code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures() {
        assert_eq!(
            classify("Invalid API key · Please run /login"),
            FailureKind::Auth
        );
        assert_eq!(
            classify("unexpected status 401 Unauthorized"),
            FailureKind::Auth
        );
        assert_eq!(
            classify("The model `gpt-9` does not exist"),
            FailureKind::Model
        );
        assert_eq!(classify("stream disconnected"), FailureKind::Crash);
    }

    #[test]
    fn budgets() {
        let b = Budget {
            max_turns: Some(3),
            max_cost_usd: Some(0.5),
        };
        let mut a = AgentActivity {
            turns: Some(3),
            ..AgentActivity::default()
        };
        assert_eq!(b.exceeded(&a), None);
        a.turns = Some(4);
        assert!(b.exceeded(&a).expect("over").contains("max_turns (3)"));
        a.turns = Some(1);
        a.cost_usd = Some(0.75);
        assert!(b.exceeded(&a).expect("over").contains("max_cost_usd"));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative("/w/t/src/a.rs", Some("/w/t")), "src/a.rs");
        assert_eq!(relative("/etc/passwd", Some("/w/t")), "/etc/passwd");
    }
}
