//! `workspace:` in the config: what a run's worktree gets before the agent
//! starts — untracked files copied from the user's checkout, setup steps
//! whose output is cached by a key, and a block of ports of its own.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::diagnostic::{duration_message, Problem};
use crate::spec::duration;
use crate::spec::yaml::Node;

/// The raw section.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkspace {
    /// Worktrees kept per repository and reused (default 0: a fresh one
    /// each run). A succeeded run's worktree returns to the pool; taking
    /// one resets it to the new run's base.
    #[serde(default)]
    pub pool: Option<u32>,
    /// Untracked files copied from your checkout into each run's worktree
    /// when present (e.g. `.env`); never committed. `.worktreeinclude`
    /// (one path per line) is read too.
    #[serde(default)]
    pub copy: Vec<String>,
    /// Steps run in the worktree before the agent, in order.
    #[serde(default)]
    pub setup: Vec<RawSetupStep>,
    /// Ports per run: each live run gets `GIT_AGENT_PORT` ..
    /// `GIT_AGENT_PORT + ports - 1`, shared with no other live run.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub ports: Option<u16>,
}

/// One setup step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSetupStep {
    /// Its name in the log (`setup deps: cached`).
    pub name: String,
    /// The shell command, run in the worktree.
    pub run: String,
    /// Files (at the base commit) whose content keys the cache: the step is
    /// skipped while they and the step itself are unchanged.
    #[serde(default)]
    pub key: Vec<String>,
    /// What the step produces (paths in the worktree, e.g. `node_modules`):
    /// kept by git-agent and given to every attempt and check as it was made.
    #[serde(default)]
    pub cache: Vec<String>,
    /// The step's time limit (default `10m`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// `open` (default: installing dependencies needs it) or `none`.
    #[serde(default)]
    pub network: Option<crate::spec::config::RawNetworkMode>,
}

/// A validated setup step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupStep {
    pub name: String,
    pub run: String,
    pub key: Vec<String>,
    pub cache: Vec<String>,
    pub timeout: Duration,
    /// Whether the step may reach the network.
    pub network: bool,
}

/// The validated section; the default gives runs a bare worktree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    pub pool: u32,
    pub copy: Vec<String>,
    pub setup: Vec<SetupStep>,
    pub ports: Option<u16>,
}

impl Workspace {
    pub fn is_bare(&self) -> bool {
        self.pool == 0 && self.copy.is_empty() && self.setup.is_empty() && self.ports.is_none()
    }
}

const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(600);

/// A path relative to the worktree that stays inside it (and out of `.git`).
pub fn is_relative_inside(path: &str) -> bool {
    let p = std::path::Path::new(path);
    !path.is_empty()
        && !p.is_absolute()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
        && !p
            .components()
            .next()
            .is_some_and(|c| c.as_os_str().eq_ignore_ascii_case(".git"))
}

pub fn validate(raw: Option<&RawWorkspace>, node: &Node, problems: &mut Vec<Problem>) -> Workspace {
    let Some(raw) = raw else {
        return Workspace::default();
    };
    let span = |p: &[&str]| node.span_of(p);
    let bad_path = |at: Vec<&str>, path: &str, what: &str| {
        Problem::error(
            "config::invalid-value",
            span(&at),
            format!("{what} `{path}` is not a path inside the worktree"),
        )
        .help("give a relative path without `..`, e.g. `.env` or `node_modules`")
    };
    for (i, path) in raw.copy.iter().enumerate() {
        if !is_relative_inside(path) {
            let i = i.to_string();
            problems.push(bad_path(
                vec!["workspace", "copy", &i],
                path,
                "`copy` entry",
            ));
        }
    }
    let steps = validate_steps(&raw.setup, &["workspace", "setup"], node, problems);
    Workspace {
        pool: raw.pool.unwrap_or(0),
        copy: raw.copy.clone(),
        setup: steps,
        ports: raw.ports,
    }
}

fn bad_path(node: &Node, at: Vec<&str>, path: &str, what: &str) -> Problem {
    Problem::error(
        "config::invalid-value",
        node.span_of(&at),
        format!("{what} `{path}` is not a path inside the worktree"),
    )
    .help("give a relative path without `..`, e.g. `.env` or `node_modules`")
}

/// Setup steps (`workspace.setup` of the config, `setup` of a brief) at
/// `at` in `node`.
pub fn validate_steps(
    raw: &[RawSetupStep],
    at: &[&str],
    node: &Node,
    problems: &mut Vec<Problem>,
) -> Vec<SetupStep> {
    let mut steps: Vec<SetupStep> = Vec::new();
    for (i, step) in raw.iter().enumerate() {
        let valid = validate_step(step, at, i, &steps, node, problems);
        steps.push(valid);
    }
    steps
}

/// One setup step: paths inside the worktree, a duration, a unique name.
fn validate_step(
    step: &RawSetupStep,
    prefix: &[&str],
    i: usize,
    earlier: &[SetupStep],
    node: &Node,
    problems: &mut Vec<Problem>,
) -> SetupStep {
    let under = |rest: &[&str]| -> Vec<String> {
        prefix.iter().chain(rest).map(|s| s.to_string()).collect()
    };
    let at = i.to_string();
    check_paths(step, &under, &at, node, problems);
    let timeout = match step.timeout.as_deref().map(duration::parse) {
        None => DEFAULT_SETUP_TIMEOUT,
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            problems.push(
                Problem::error(
                    "config::bad-duration",
                    node.span_of(
                        &under(&[&at, "timeout"])
                            .iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>(),
                    ),
                    duration_message(step.timeout.as_deref().unwrap_or(""), &message),
                )
                .help("write a number with a unit: `10m`, `90s`"),
            );
            DEFAULT_SETUP_TIMEOUT
        }
    };
    if earlier.iter().any(|s| s.name == step.name) || step.name.trim().is_empty() {
        problems.push(
            Problem::error(
                "config::invalid-value",
                node.span_of(
                    &under(&[&at, "name"])
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                ),
                format!("setup step name `{}` is empty or used twice", step.name),
            )
            .help("give each step its own name: it keys the step's cache"),
        );
    }
    SetupStep {
        name: step.name.clone(),
        run: step.run.clone(),
        key: step.key.clone(),
        cache: step.cache.clone(),
        timeout,
        network: step.network != Some(crate::spec::config::RawNetworkMode::None),
    }
}

/// A step's `cache` and `key` paths stay inside the worktree.
fn check_paths(
    step: &RawSetupStep,
    under: &dyn Fn(&[&str]) -> Vec<String>,
    at: &str,
    node: &Node,
    problems: &mut Vec<Problem>,
) {
    for (j, path) in step.cache.iter().chain(&step.key).enumerate() {
        if !is_relative_inside(path) {
            let (field, k) = if j < step.cache.len() {
                ("cache", j)
            } else {
                ("key", j - step.cache.len())
            };
            let k = k.to_string();
            let place = under(&[at, field, &k]);
            problems.push(bad_path(
                node,
                place.iter().map(String::as_str).collect(),
                path,
                "setup path",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn span_of_a_setup_path() {
        let text = "title: Bad\nsetup:\n  - name: x\n    run: \"true\"\n    cache: [\"../out\"]\n";
        let node = crate::spec::yaml::parse(text, 0).expect("yaml");
        let span = node.span_of(&["setup", "0", "cache", "0"]);
        let at = &text[span.offset..span.offset + span.len];
        assert_eq!(at, "\"../out\"", "{span:?}");
    }
}
