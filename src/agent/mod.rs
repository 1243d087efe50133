//! The adapter seam: how git-agent drives each kind of agent.
//!
//! Each kind is an [`AgentCli`]: the command line and environment of one
//! attempt, where the CLI keeps its state, and a parser of its event
//! stream. [`invocation`] builds an attempt's command from it;
//! [`supervise`] runs it while watching the stream for budgets
//! (`escalate.max_turns`, `escalate.max_cost_usd`); [`report`] parses the
//! stream afterwards into an [`AgentActivity`] for the decision log and
//! maps failures (CLI missing, authentication, model, crash) to a clear
//! outcome.
//!
//! One file per kind: [`claude`] (Claude Code), [`codex`] (OpenAI Codex
//! CLI), [`aider`], [`copilot`] (GitHub Copilot CLI), [`opencode`], and
//! [`command`], which runs any program with `sh -c '<command> "$@"'` and
//! reports nothing. Copilot and opencode map their JSON lines onto the
//! generic parser of [`jsonl`].
//!
//! Two choices every adapter makes from its [`Context`]: where git-agent's
//! sandbox confines writes (`sandboxed`), the CLI gets its broadest
//! non-interactive mode, since the kernel, not the CLI's permission list,
//! is the boundary; elsewhere the narrow list it always had, and the log
//! says which ([`AgentCli::access`]). And on a later attempt, where the CLI
//! can continue a session ([`AgentCli::resumes`]), it continues the one of
//! the attempt before (`resume`) with the failing checks as its new
//! message, instead of starting afresh.

pub mod aider;
pub mod claude;
pub mod codex;
pub mod command;
pub mod copilot;
pub mod jsonl;
pub mod opencode;
pub mod report;
pub mod supervise;

use std::path::{Path, PathBuf};

use crate::model::event::{AgentActivity, CommandRun, ToolCall};
use crate::spec::brief::Brief;
use crate::spec::config::{Adapter, Agent};

pub use report::report;
pub use supervise::supervise;

/// Why an attempt's agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read the prompt {}: {source}", path.display())]
    Prompt {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{cli} (`{program}`) is not installed or not on PATH: install it with `{hint}`, \
         or set `command:` of agent `{agent}` in .agents/config.yaml to its path"
    )]
    NotInstalled {
        cli: &'static str,
        program: String,
        hint: &'static str,
        agent: String,
    },
}

/// Looks a variable up in the orchestrator's environment.
pub type Var<'a> = &'a dyn Fn(&str) -> Option<PathBuf>;

/// One kind of agent CLI, as git-agent drives it non-interactively.
pub trait AgentCli: Sync {
    /// The CLI's human name, for messages ("Claude Code").
    fn name(&self) -> &'static str;
    /// How to install it, for the "not installed" message; empty when
    /// there is nothing to install (the `command` adapter).
    fn install_hint(&self) -> &'static str;
    /// The arguments before the user's `args`.
    fn args(&self, agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError>;
    /// The arguments after the user's `args` (aider's files, Codex's
    /// subcommand and prompt).
    fn trailing(&self, _cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        Ok(Vec::new())
    }
    /// Variables it always gets: no update checks, telemetry or error
    /// reporting from a background run.
    fn fixed_env(&self) -> &'static [(&'static str, &'static str)];
    /// Variables passed from the orchestrator's environment when set,
    /// without listing them in `pass_env`: the provider's key and
    /// endpoint, and the CLI's own home.
    fn provider_env(&self) -> &'static [&'static str];
    /// Where the CLI keeps its state (directories, files), given the
    /// environment (`var`) and a path under `$HOME` (`in_home`).
    fn state_paths(
        &self,
        var: Var<'_>,
        in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>);
    /// A fresh parser of its output, for an agent working in `worktree`
    /// (`None`: the CLI has no event stream).
    fn parser(&self, worktree: &Path) -> Option<Box<dyn StreamParser>>;
    /// What these arguments let the agent do, one line for the log.
    fn access(&self, _cx: &Context<'_>) -> Option<String> {
        None
    }
    /// Variables that depend on the attempt (added to [`AgentCli::fixed_env`]).
    fn env(&self, _cx: &Context<'_>) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether it can continue a session of an earlier attempt.
    fn resumes(&self) -> bool {
        false
    }
    /// Whether a continued session reports the session's tokens so far,
    /// not this invocation's (the report subtracts what came before).
    fn cumulative_usage(&self) -> bool {
        false
    }
    /// A file it writes besides its stream (Copilot's usage figures), in
    /// the run's side directory; read into the parser after it ends.
    fn side_output(&self, _side_dir: &Path, _attempt: u32) -> Option<PathBuf> {
        None
    }
}

/// The CLI of an adapter kind.
pub fn cli_for(adapter: Adapter) -> &'static dyn AgentCli {
    match adapter {
        Adapter::Command => &command::Command,
        Adapter::Claude => &claude::Claude,
        Adapter::Codex => &codex::Codex,
        Adapter::Aider => &aider::Aider,
        Adapter::Copilot => &copilot::Copilot,
        Adapter::Opencode => &opencode::Opencode,
    }
}

/// Parses a whole recorded stdout (and stderr) of an agent that worked in
/// `worktree`.
pub fn parse(
    adapter: Adapter,
    worktree: &Path,
    stdout: &str,
    stderr: &str,
) -> Option<Box<dyn StreamParser>> {
    let mut p = cli_for(adapter).parser(worktree)?;
    for line in stdout.lines() {
        p.line(line);
    }
    p.stderr(stderr);
    Some(p)
}

/// What an attempt needs to know to build its invocation.
pub struct Context<'a> {
    pub brief: &'a Brief,
    pub worktree: &'a Path,
    /// The rendered prompt (it carries the previous attempt's feedback).
    pub prompt_file: &'a Path,
    pub attempt: u32,
    /// The orchestrator's environment (adapters pick their provider's variables from it).
    pub env_source: &'a [(String, String)],
    /// git-agent's own sandbox confines the agent's writes: the CLI gets
    /// all its tools (and drops its own sandbox where they clash).
    pub sandboxed: bool,
    /// The run's directory for the CLI's side files (aider's chat history,
    /// Copilot's usage figures): writable under the sandbox, kept with the run.
    pub side_dir: &'a Path,
    /// The session this attempt continues (the previous attempt's); `None`:
    /// a fresh session, the prompt carrying the feedback.
    pub resume: Option<&'a str>,
}

/// The program, arguments and extra environment of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    /// Added to the agent's allowlisted environment (wins over it).
    pub env: Vec<(String, String)>,
    /// What the agent may do, for the log.
    pub access: Option<String>,
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Builds the invocation of one attempt, or says why the agent cannot start
/// (e.g. the CLI is not installed).
pub fn invocation(agent: &Agent, cx: &Context<'_>) -> Result<Invocation, AgentError> {
    let cli = cli_for(agent.adapter);
    let adapter_args = cli.args(agent, cx)?;
    if !cli.install_hint().is_empty() {
        check_installed(agent, cx)?;
    }
    let mut args = vec![
        "-c".to_string(),
        format!("{} \"$@\"", agent.command),
        "git-agent".to_string(),
    ];
    args.extend(adapter_args);
    args.extend(agent.args.iter().cloned());
    args.extend(cli.trailing(cx)?);
    let mut env = Vec::new();
    for (name, value) in cli.fixed_env() {
        env.push((name.to_string(), value.to_string()));
    }
    env.extend(cli.env(cx));
    for name in cli.provider_env() {
        if let Some((_, v)) = cx.env_source.iter().find(|(k, _)| k == name) {
            env.push((name.to_string(), v.clone()));
        }
    }
    Ok(Invocation {
        program: "sh".into(),
        args,
        env,
        access: cli.access(cx),
    })
}

/// Reads the prompt file an invocation passes on the command line.
pub(crate) fn read_prompt(cx: &Context<'_>) -> Result<String, AgentError> {
    std::fs::read_to_string(cx.prompt_file).map_err(|source| AgentError::Prompt {
        path: cx.prompt_file.to_path_buf(),
        source,
    })
}

/// What the adapters with a narrow mode allow in a shell without the
/// sandbox: the brief's check commands, then read-only git and
/// `git agent decide` (each a command prefix).
pub(crate) fn narrow_commands(cx: &Context<'_>) -> (Vec<String>, &'static [&'static str]) {
    let checks = cx.brief.checks.iter().map(|c| c.run.trim().to_string());
    (
        checks.collect(),
        &[
            "git status",
            "git diff",
            "git log",
            "git agent decide",
            "git-agent decide",
        ],
    )
}

/// The log's line for an adapter's narrow mode.
pub(crate) fn narrow_access(allowed: &str) -> String {
    format!(
        "narrow: git-agent's sandbox does not confine this run (`sandbox.mode: off`, or no \
         Landlock), so only {allowed}"
    )
}

/// Whether a CLI asked to continue a session said it has no such session
/// (removed, or kept elsewhere): the attempt then starts afresh.
pub fn session_lost(stdout: &str, stderr: &str) -> bool {
    const SAID: &[&str] = &[
        "no conversation found with session id",
        "no rollout found for thread id",
        "no session, task, or name matched",
        "session not found",
    ];
    let tail = |t: &str| {
        let start = t.len().saturating_sub(4000);
        let start = (start..=t.len())
            .find(|i| t.is_char_boundary(*i))
            .unwrap_or(0);
        t[start..].to_ascii_lowercase()
    };
    let (out, err) = (tail(stdout), tail(stderr));
    SAID.iter().any(|s| out.contains(s) || err.contains(s))
}

/// Where an agent CLI keeps its own state (sessions, logs, settings): it
/// must be able to write there under the sandbox, or a later attempt has
/// no session to continue. Its directories are made when missing (the CLI
/// would make them itself); only paths that exist are returned (a sandbox
/// rule needs an open file descriptor).
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
    let (dirs, files) = cli_for(adapter).state_paths(&var, &in_home);
    let keep = |v: Vec<Option<PathBuf>>, dir: bool| -> Vec<PathBuf> {
        v.into_iter()
            .flatten()
            .filter(|p| !dir || p.is_absolute() && std::fs::create_dir_all(p).is_ok())
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_dir() == dir))
            .collect()
    };
    (keep(dirs, true), keep(files, false))
}

/// Fails with an install hint when the command's program is not on the
/// agent's `PATH` (only for a plain program name or path; a shell line is
/// left to the shell).
fn check_installed(agent: &Agent, cx: &Context<'_>) -> Result<(), AgentError> {
    let path = cx
        .env_source
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    match missing_program(agent, cx.worktree, path) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The agent's program when it is a plain name not on `path` (or a path,
/// relative to `dir`, that is no executable); `None` when it is found, or
/// is a shell command line this cannot tell about. `git agent validate`
/// says it before a run fails on it.
pub fn missing_program(agent: &Agent, dir: &Path, path: Option<&str>) -> Option<AgentError> {
    let program = agent.command.trim();
    if program.is_empty()
        || program
            .chars()
            .any(|c| c.is_whitespace() || "|&;<>()$`\"'*?[]{}=".contains(c))
    {
        return None;
    }
    let found = if program.contains('/') {
        is_executable(&dir.join(program))
    } else {
        path.unwrap_or("/usr/local/bin:/usr/bin:/bin")
            .split(':')
            .filter(|d| !d.is_empty())
            .any(|d| is_executable(&Path::new(d).join(program)))
    };
    (!found).then(|| AgentError::NotInstalled {
        cli: cli_for(agent.adapter).name(),
        program: program.to_string(),
        hint: cli_for(agent.adapter).install_hint(),
        agent: agent.name.clone(),
    })
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
    /// The session the CLI reported, which a later attempt may continue.
    fn session(&self) -> Option<String> {
        None
    }
    /// The content of the adapter's [`AgentCli::side_output`] file.
    fn side_output(&mut self, _text: &str) {}
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

/// Feeds a recorded stream from `tests/fixtures/agent_streams/` to the
/// parser of `cli`, for an agent that worked in the directory the stream
/// names first (the directory of its first absolute `…/src/` or `…/greet.txt` path).
/// What every CLI's scripted success run did (the fake model's script:
/// `ls`, `sh test.sh`, an edit of `src/greet.txt`, the check's grep, six
/// turns): the activity its parser must report alike.
#[cfg(test)]
pub(crate) fn assert_scripted_success(a: &crate::model::event::AgentActivity) {
    assert_eq!(a.files_edited, ["src/greet.txt"]);
    let ran: Vec<(&str, Option<i32>)> = a
        .commands
        .iter()
        .map(|c| (c.command.as_str(), c.exit_code))
        .collect();
    assert_eq!(
        ran,
        [
            ("ls", Some(0)),
            ("sh test.sh", Some(0)),
            ("grep -q 'hello fixed' src/greet.txt", Some(0))
        ]
    );
    assert_eq!(a.final_message.as_deref(), Some("Changed the greeting."));
    assert_eq!(a.turns, Some(6));
}

#[cfg(test)]
pub(crate) fn feed_stream(cli: &dyn AgentCli, fixture: &str) -> Box<dyn StreamParser> {
    let path = format!(
        "{}/tests/fixtures/agent_streams/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    let worktree = text
        .split('"')
        .filter(|s| s.starts_with("/tmp/"))
        .find_map(|s| {
            let end = s.find("/src/").or_else(|| s.rfind("/greet.txt"))?;
            Some(s[..end].to_string())
        })
        .unwrap_or_default();
    let mut p = cli.parser(Path::new(&worktree)).expect("a parser");
    for line in text.lines() {
        p.line(line);
    }
    p
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
        let b = supervise::Budget {
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
