//! `.agents/config.yaml`: the agents a repository can use and run defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::diagnostic::{did_you_mean, duration_message, FileReport, Problem};
use crate::spec::duration;
use crate::spec::schema;
use crate::spec::yaml::{self, Node, Value};

pub const CONFIG_PATH: &str = ".agents/config.yaml";

/// The raw config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "git-agent config (.agents/config.yaml)")]
pub struct RawConfig {
    /// The agent used by briefs that name none.
    #[serde(default)]
    pub default_agent: Option<String>,
    /// The agents this repository can run, by name.
    #[serde(default)]
    pub agents: BTreeMap<String, RawAgent>,
    /// How many runs may work at once (default: the number of CPUs).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<u32>,
    /// Where worktrees are made (default: `~/.cache/git-agent/worktrees`).
    /// Never inside the repository: tools that walk up would find the parent project.
    #[serde(default)]
    pub worktree_dir: Option<String>,
    /// Grace between SIGTERM and SIGKILL when a run is stopped (default `5s`).
    #[serde(default)]
    pub kill_grace: Option<String>,
    /// Kernel-enforced confinement of agents and checks (Linux, Landlock).
    #[serde(default)]
    pub sandbox: Option<RawSandbox>,
    /// Delivery to GitHub (`output.deliver: push | pr | draft-pr`).
    #[serde(default)]
    pub github: Option<RawGithub>,
    /// What happens when a run ends: a command, a desktop notification, a bell.
    #[serde(default)]
    pub notify: Option<crate::spec::notify::RawNotify>,
    /// What a run's worktree gets before the agent: copied files, cached
    /// setup steps, a block of ports.
    #[serde(default)]
    pub workspace: Option<crate::spec::workspace::RawWorkspace>,
    /// Whose name git-agent's commits carry.
    #[serde(default)]
    pub commit: Option<crate::spec::commit::RawCommit>,
}

/// `github:` — where pull requests go and which variable holds the token.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGithub {
    /// The REST API base URL (default: from `origin`: `https://api.github.com`,
    /// or `https://<host>/api/v3` for GitHub Enterprise).
    #[serde(default)]
    pub api_url: Option<String>,
    /// The environment variable holding the token (default `GITHUB_TOKEN`,
    /// then `GH_TOKEN`). Read by git-agent only; agents never see it.
    #[serde(default)]
    pub token_env: Option<String>,
}

/// The validated `github:` section.
#[derive(Debug, Clone, Default)]
pub struct GithubConfig {
    pub api_url: Option<String>,
    pub token_env: Option<String>,
}

/// `sandbox:` — what agents and checks can touch, enforced by the kernel.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// `auto` (default): confine when the kernel supports Landlock, else warn;
    /// `required`: fail runs the kernel cannot confine; `off`: no confinement.
    #[serde(default)]
    pub mode: Option<SandboxMode>,
    /// `open` (default): the host's network; `none`: a private network
    /// namespace with only loopback; `{allow: ["host:port", ...]}`: a
    /// private network whose only way out is git-agent's proxy, which lets
    /// through only those endpoints.
    #[serde(default)]
    pub network: Option<RawNetwork>,
    /// Paths agents and checks cannot read, e.g. `~/.ssh`, `~/.config/gh`.
    #[serde(default)]
    pub read_deny: Vec<String>,
    /// Directories agents and checks may write besides the worktree and
    /// TMPDIR, e.g. caches: `~/.cargo/registry`.
    #[serde(default)]
    pub write_paths: Vec<String>,
    /// Unix sockets agents and checks may connect to by path, e.g. a local
    /// database's `/var/run/postgresql/.s.PGSQL.5432`. Every other socket
    /// outside the writable places is covered.
    #[serde(default)]
    pub sockets: Vec<String>,
}

/// `sandbox.network`: a mode, or an allowlist.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawNetwork {
    Mode(RawNetworkMode),
    Allow(RawAllow),
}

/// `open` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawNetworkMode {
    Open,
    None,
}

/// `{allow: ["api.anthropic.com:443", "*.githubusercontent.com:443"]}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    pub allow: Vec<String>,
}

/// Whether runs are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Fail the run when the kernel cannot confine it.
    Required,
    /// Confine when the kernel can; otherwise warn once and run unconfined.
    #[default]
    Auto,
    /// Never confine.
    Off,
}

pub use crate::model::sandbox::{Endpoint, NetworkPolicy};

/// The validated `sandbox:` section.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    pub network: NetworkPolicy,
    /// The endpoints the egress proxy lets through (`NetworkPolicy::Allowlist`).
    pub allow: Vec<Endpoint>,
    pub read_deny: Vec<PathBuf>,
    pub write_paths: Vec<PathBuf>,
    pub sockets: Vec<PathBuf>,
}

/// One agent.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// How git-agent drives it: `command` runs any program.
    pub adapter: Adapter,
    /// The program or shell command line (run with `sh -c`). Required for
    /// `adapter: command`; defaults to `claude`, `codex`, `aider` for those adapters.
    #[serde(default)]
    pub command: Option<String>,
    /// Extra arguments, appended shell-quoted.
    #[serde(default)]
    pub args: Vec<String>,
    /// Names of environment variables the agent may see (besides PATH, HOME, LANG, TERM, TMPDIR, USER).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// The model name, for adapters that take one.
    #[serde(default)]
    pub model: Option<String>,
}

/// How an agent is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Adapter {
    /// Any program: it reads the prompt from `$GIT_AGENT_PROMPT_FILE` and edits the worktree.
    Command,
    /// Claude Code (`claude -p`, stream-json output); see docs/agents/claude.md.
    Claude,
    /// The OpenAI Codex CLI (`codex exec --json`); see docs/agents/codex.md.
    Codex,
    /// aider (`aider --message-file`); see docs/agents/aider.md.
    Aider,
    /// GitHub Copilot CLI (`copilot -p`, JSON output); see docs/agents/copilot.md.
    Copilot,
    /// opencode (`opencode run --format json`); see docs/agents/opencode.md.
    Opencode,
}

impl Adapter {
    /// The program run when `command` is not given (`None`: it is required).
    pub fn default_command(self) -> Option<&'static str> {
        match self {
            Adapter::Command => None,
            Adapter::Claude => Some("claude"),
            Adapter::Codex => Some("codex"),
            Adapter::Aider => Some("aider"),
            Adapter::Copilot => Some("copilot"),
            Adapter::Opencode => Some("opencode"),
        }
    }
}

pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(RawConfig)).expect("a generated schema is JSON")
    })
}

/// A validated agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub adapter: Adapter,
    pub command: String,
    pub args: Vec<String>,
    pub pass_env: Vec<String>,
    pub model: Option<String>,
}

/// The validated config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub default_agent: Option<String>,
    pub agents: BTreeMap<String, Agent>,
    pub max_parallel: Option<u32>,
    pub worktree_dir: Option<PathBuf>,
    pub kill_grace: Option<std::time::Duration>,
    pub sandbox: SandboxConfig,
    pub github: GithubConfig,
    pub notify: crate::spec::notify::Notify,
    pub workspace: crate::spec::workspace::Workspace,
    pub commit: crate::spec::commit::CommitConfig,
    /// Whether the file existed.
    pub present: bool,
}

impl Config {
    pub fn agent_names(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }

    /// The agent a brief runs with: `--agent`, then the brief's, then the default.
    pub fn pick_agent(&self, wanted: Option<&str>) -> Result<&Agent, AgentChoiceError> {
        let name = match wanted.or(self.default_agent.as_deref()) {
            Some(n) => n,
            None if self.agents.len() == 1 => {
                return self
                    .agents
                    .values()
                    .next()
                    .ok_or(AgentChoiceError::NoDefault)
            }
            None if !self.present => return Err(AgentChoiceError::NoConfig),
            None => return Err(AgentChoiceError::NoDefault),
        };
        self.agents.get(name).ok_or_else(|| {
            let known = self.agent_names();
            AgentChoiceError::Unknown {
                name: name.to_string(),
                suggestion: did_you_mean(name, known.iter().map(String::as_str))
                    .map(str::to_string),
                known,
            }
        })
    }
}

/// Why no agent could be chosen for a brief.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentChoiceError {
    #[error("there is no {CONFIG_PATH}; run `git agent init` to create one")]
    NoConfig,
    #[error("no agent given and no `default_agent` in {CONFIG_PATH}")]
    NoDefault,
    #[error("no agent named `{name}` in {CONFIG_PATH}{}", match suggestion {
        Some(best) => format!("; did you mean `{best}`?"),
        None => format!(" (agents: {})", known.join(", ")),
    })]
    Unknown {
        name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },
}

/// Loads the config of the repository at `root`; a missing file is an empty config.
pub fn load(root: &Path) -> std::io::Result<(Config, Option<FileReport>)> {
    let path = root.join(CONFIG_PATH);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Config::default(), None)),
        Err(e) => return Err(e),
    };
    let (config, report) = parse(&path, CONFIG_PATH.to_string(), &text, root);
    Ok((config.unwrap_or_default(), Some(report)))
}

pub fn parse(
    path: &Path,
    display: String,
    text: &str,
    root: &Path,
) -> (Option<Config>, FileReport) {
    let mut report = FileReport::new(path, display, Arc::from(text));
    let mut problems = Vec::new();
    let config = parse_into(text, root, &mut problems);
    report.extend(problems);
    let config = if report.has_errors() { None } else { config };
    (config, report)
}

fn parse_into(text: &str, root: &Path, problems: &mut Vec<Problem>) -> Option<Config> {
    let node = match yaml::parse(text, 0) {
        Ok(n) => n,
        Err(e) => {
            problems.push(crate::spec::diagnostic::yaml_problem(
                text,
                e,
                "config::yaml-syntax",
                "config::duplicate-key",
                "fix the YAML; quote values that contain `: `",
            ));
            return None;
        }
    };
    if let Value::Null = node.value {
        return Some(Config {
            present: true,
            ..Config::default()
        });
    }
    let before = problems.len();
    schema::check(schema(), &node, schema::Prefix::Config, node.span, problems);
    if problems[before..].iter().any(Problem::is_error) {
        return None;
    }
    let raw: RawConfig = match yaml::decode(text) {
        Ok(r) => r,
        Err(message) => {
            problems.push(
                Problem::error("config::invalid-value", node.span, message.to_string())
                    .help("`git agent schema config` prints what each key accepts"),
            );
            return None;
        }
    };
    validate(raw, &node, root, problems)
}

fn validate(
    raw: RawConfig,
    node: &Node,
    root: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Config> {
    let before = problems.len();
    let span = |p: &[&str]| node.span_of(p);
    let mut agents = BTreeMap::new();
    for (name, agent) in &raw.agents {
        agents.insert(
            name.clone(),
            validate_agent(name, agent, &raw, node, problems),
        );
    }
    check_default_agent(&raw, node, problems);
    let worktree_dir = raw.worktree_dir.as_ref().map(|d| expand_home(d, root));
    if let Some(dir) = &worktree_dir {
        let inside =
            dir.starts_with(root) || std::fs::canonicalize(root).is_ok_and(|r| dir.starts_with(r));
        if inside {
            problems.push(
                Problem::error("config::worktree-inside-repo", span(&["worktree_dir"]), "`worktree_dir` is inside the repository")
                    .help("tools that walk up (cargo, node, jest) would find the parent project; pick a directory outside, e.g. `../.worktrees` or `~/.cache/git-agent/worktrees`"),
            );
        }
    }
    let kill_grace = match raw.kill_grace.as_deref().map(duration::parse) {
        Some(Err(message)) => {
            problems.push(
                Problem::error(
                    "config::bad-duration",
                    span(&["kill_grace"]),
                    duration_message(raw.kill_grace.as_deref().unwrap_or(""), &message),
                )
                .help("write a number with a unit: `5s`, `30s`"),
            );
            None
        }
        Some(Ok(d)) => Some(d),
        None => None,
    };
    let sandbox = validate_sandbox(&raw, node, root, problems);
    let github = validate_github(&raw, node, problems);
    let notify = crate::spec::notify::validate(raw.notify.as_ref(), node, problems);
    let workspace = crate::spec::workspace::validate(raw.workspace.as_ref(), node, problems);
    let commit = crate::spec::commit::validate(raw.commit.as_ref(), node, problems);
    if problems[before..].iter().any(Problem::is_error) {
        return None;
    }
    Some(Config {
        notify,
        workspace,
        commit,
        sandbox,
        github,
        default_agent: raw.default_agent,
        agents,
        max_parallel: raw.max_parallel,
        worktree_dir,
        kill_grace,
        present: true,
    })
}

/// One entry of `agents:`: a usable name, a command (given or the
/// adapter's), and `pass_env` names that are variables and not forge tokens.
fn validate_agent(
    name: &str,
    agent: &RawAgent,
    raw: &RawConfig,
    node: &Node,
    problems: &mut Vec<Problem>,
) -> Agent {
    let span = |p: &[&str]| node.span_of(p);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(
            Problem::error(
                "config::bad-agent-name",
                node.key_span(&["agents", name]).unwrap_or(node.span),
                format!("agent name `{name}` must use letters, digits, `-` and `_`"),
            )
            .help("rename the agent, e.g. `claude` or `my-script`"),
        );
    }
    let command = agent
        .command
        .clone()
        .or_else(|| agent.adapter.default_command().map(str::to_string))
        .unwrap_or_default();
    if agent.command.is_none() && command.is_empty() {
        problems.push(
            Problem::error(
                "config::missing-key",
                node.key_span(&["agents", name]).unwrap_or(node.span),
                format!("missing required key `agents.{name}.command`"),
            )
            .label("`adapter: command` runs the program given in `command`")
            .help("add `command: <program or shell command line>`, e.g. `command: ./scripts/agent.sh`"),
        );
    } else if command.trim().is_empty() {
        problems.push(
            Problem::error(
                "config::empty",
                span(&["agents", name, "command"]),
                format!("agent `{name}` has an empty `command`"),
            )
            .help("give the program or shell command to run, e.g. `command: ./scripts/agent.sh`"),
        );
    }
    let token_env = raw.github.as_ref().and_then(|g| g.token_env.as_deref());
    check_pass_env(name, agent, token_env, node, problems);
    Agent {
        name: name.to_string(),
        adapter: agent.adapter,
        command,
        args: agent.args.clone(),
        pass_env: agent.pass_env.clone(),
        model: agent.model.clone(),
    }
}

/// `pass_env` of agent `name` lists variable names, and no forge token.
fn check_pass_env(
    name: &str,
    agent: &RawAgent,
    token_env: Option<&str>,
    node: &Node,
    problems: &mut Vec<Problem>,
) {
    let span = |p: &[&str]| node.span_of(p);
    for (i, var) in agent.pass_env.iter().enumerate() {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            problems.push(
                Problem::error(
                    "config::invalid-value",
                    span(&["agents", name, "pass_env", &i.to_string()]),
                    format!("`{var}` is not an environment variable name"),
                )
                .help("list variable names only, e.g. `pass_env: [ANTHROPIC_API_KEY]`"),
            );
        } else if is_secret_forge_token(var) || token_env == Some(var.as_str()) {
            problems.push(
                Problem::error(
                    "config::token-to-agent",
                    span(&["agents", name, "pass_env", &i.to_string()]),
                    format!("`{var}` is a forge token; agents never see it"),
                )
                .label("refused")
                .help(
                    "git-agent pushes and talks to GitHub itself; remove this name from `pass_env`",
                ),
            );
        }
    }
}

/// `default_agent` names an agent under `agents`.
fn check_default_agent(raw: &RawConfig, node: &Node, problems: &mut Vec<Problem>) {
    let span = |p: &[&str]| node.span_of(p);
    if let Some(default) = &raw.default_agent {
        if !raw.agents.contains_key(default) {
            let known: Vec<&str> = raw.agents.keys().map(String::as_str).collect();
            let mut p = Problem::error(
                "config::unknown-agent",
                span(&["default_agent"]),
                format!("`default_agent` names `{default}`, which is not under `agents`"),
            );
            p = match did_you_mean(default, known.iter().copied()) {
                Some(best) => p.help(format!("did you mean `{best}`?")),
                None => p.help(format!(
                    "define `agents.{default}` or pick one of: {}",
                    known.join(", ")
                )),
            };
            problems.push(p);
        }
    }
}

/// `sandbox:` with its defaults; its paths must be usable.
fn validate_sandbox(
    raw: &RawConfig,
    node: &Node,
    root: &Path,
    problems: &mut Vec<Problem>,
) -> SandboxConfig {
    let span = |p: &[&str]| node.span_of(p);
    let raw_sandbox = raw.sandbox.clone().unwrap_or_default();
    let (network, allow) = validate_network(raw_sandbox.network.as_ref(), node, problems);
    let sandbox = SandboxConfig {
        mode: raw_sandbox.mode.unwrap_or_default(),
        network,
        allow,
        read_deny: raw_sandbox
            .read_deny
            .iter()
            .map(|d| expand_home(d, root))
            .collect(),
        write_paths: raw_sandbox
            .write_paths
            .iter()
            .map(|d| expand_home(d, root))
            .collect(),
        sockets: raw_sandbox
            .sockets
            .iter()
            .map(|d| expand_home(d, root))
            .collect(),
    };
    for (key, list) in [
        ("read_deny", &raw_sandbox.read_deny),
        ("write_paths", &raw_sandbox.write_paths),
        ("sockets", &raw_sandbox.sockets),
    ] {
        for (i, p) in list.iter().enumerate() {
            if p.trim().is_empty() || p.trim() == "/" || p.trim() == "~" {
                problems.push(
                    Problem::error(
                        "config::invalid-value",
                        span(&["sandbox", key, &i.to_string()]),
                        format!("`{p}` is not a usable path for `sandbox.{key}`"),
                    )
                    .help("name a directory below your home or the repository, e.g. `~/.cargo/registry`"),
                );
            }
        }
    }
    sandbox
}

/// `sandbox.network`: the policy, and the allowlist's endpoints.
fn validate_network(
    raw: Option<&RawNetwork>,
    node: &Node,
    problems: &mut Vec<Problem>,
) -> (NetworkPolicy, Vec<Endpoint>) {
    match raw {
        None | Some(RawNetwork::Mode(RawNetworkMode::Open)) => (NetworkPolicy::Open, Vec::new()),
        Some(RawNetwork::Mode(RawNetworkMode::None)) => (NetworkPolicy::None, Vec::new()),
        Some(RawNetwork::Allow(allow)) => {
            let mut endpoints = Vec::new();
            for (i, entry) in allow.allow.iter().enumerate() {
                match Endpoint::parse(entry.trim()) {
                    Ok(e) => endpoints.push(e),
                    Err(why) => problems.push(
                        Problem::error(
                            "config::invalid-value",
                            node.span_of(&["sandbox", "network", "allow", &i.to_string()]),
                            why,
                        )
                        .help("each entry is `host:port`, e.g. `api.anthropic.com:443` or `*.example.com:443`"),
                    ),
                }
            }
            if allow.allow.is_empty() {
                problems.push(
                    Problem::error(
                        "config::invalid-value",
                        node.span_of(&["sandbox", "network", "allow"]),
                        "`sandbox.network.allow` is empty",
                    )
                    .help("name the endpoints the agent needs, or write `network: none`"),
                );
            }
            (NetworkPolicy::Allowlist, endpoints)
        }
    }
}

/// `github:`: an http(s) API URL and a variable name for the token.
fn validate_github(raw: &RawConfig, node: &Node, problems: &mut Vec<Problem>) -> GithubConfig {
    let span = |p: &[&str]| node.span_of(p);
    let raw_github = raw.github.clone().unwrap_or_default();
    if let Some(url) = &raw_github.api_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            problems.push(
                Problem::error(
                    "config::invalid-value",
                    span(&["github", "api_url"]),
                    format!("`{url}` is not an http(s) URL"),
                )
                .help("e.g. `https://ghe.example.com/api/v3`"),
            );
        }
    }
    if let Some(name) = &raw_github.token_env {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.push(
                Problem::error(
                    "config::invalid-value",
                    span(&["github", "token_env"]),
                    format!("`{name}` is not an environment variable name"),
                )
                .help("name the variable, not the token: `token_env: GITHUB_TOKEN`"),
            );
        }
    }
    GithubConfig {
        api_url: raw_github.api_url,
        token_env: raw_github.token_env,
    }
}

/// The names written under `agents:` in a config file, whether or not the
/// file is valid: enough to check the `agent:` of briefs against when the
/// config has errors elsewhere. `None` when the YAML cannot be read or
/// `agents` is not a mapping.
pub fn written_agent_names(text: &str) -> Option<Vec<String>> {
    let node = yaml::parse(text, 0).ok()?;
    if matches!(node.value, Value::Null) {
        return Some(Vec::new());
    }
    let Value::Map(top) = &node.value else {
        return None;
    };
    let agents = top
        .iter()
        .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == "agents"))
        .map(|(_, v)| v);
    match agents.map(|a| &a.value) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(k, _)| match &k.value {
                Value::Str(name) => Some(name.clone()),
                _ => None,
            })
            .collect(),
        Some(_) => None,
    }
}

fn expand_home(dir: &str, root: &Path) -> PathBuf {
    if let Some(rest) = dir.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = PathBuf::from(dir);
    normalize(&if p.is_absolute() { p } else { root.join(p) })
}

/// Resolves `.` and `..` lexically, so `<root>/../x` is seen as outside `<root>`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Tokens that can act on the forge. Refused in `pass_env`.
pub const FORGE_TOKENS: &[&str] = &[
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "GITHUB_ENTERPRISE_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "GIT_ASKPASS",
    "SSH_AUTH_SOCK",
];

pub fn is_secret_forge_token(name: &str) -> bool {
    FORGE_TOKENS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (Option<Config>, FileReport) {
        parse(
            Path::new("c.yaml"),
            "c.yaml".into(),
            text,
            Path::new("/repo"),
        )
    }

    #[test]
    fn valid_config() {
        let (config, report) = check(
            "default_agent: s\nagents:\n  s:\n    adapter: command\n    command: ./agent.sh\n",
        );
        let config = config.unwrap_or_else(|| panic!("{}", report.render(false, 100)));
        assert_eq!(
            config.pick_agent(None).expect("default").command,
            "./agent.sh"
        );
        assert!(config.pick_agent(Some("t")).is_err());
    }

    #[test]
    fn agent_names_are_read_from_an_invalid_config() {
        let text = "max_parallel: 0\nagents:\n  a:\n    adapter: nope\n  b:\n    command: x\n";
        assert!(check(text).0.is_none());
        assert_eq!(
            written_agent_names(text),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(written_agent_names("max_parallel: 0\n"), Some(Vec::new()));
        assert_eq!(written_agent_names("agents: [a]\n"), None);
        assert_eq!(written_agent_names("agents: {a: 1\n"), None);
        assert_eq!(written_agent_names("agents:\n  1: {}\n"), None);
    }

    #[test]
    fn rejects_typos_tokens_and_inside_worktrees() {
        let (config, report) = check(
            "default_agnt: s\nworktree_dir: wt\nagents:\n  s:\n    adapter: comand\n    command: x\n    pass_env: [GITHUB_TOKEN]\n",
        );
        assert!(config.is_none());
        let codes: Vec<_> = report.problems.iter().map(|p| p.code).collect();
        assert!(codes.contains(&"config::unknown-key"), "{codes:?}");
        assert!(codes.contains(&"config::invalid-value"), "{codes:?}");
    }
}
