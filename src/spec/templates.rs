//! Files that `init` and `new` write. Each must validate as written (tested).

/// `.agents/config.yaml` as `git agent init` writes it.
pub const CONFIG: &str = r#"# git-agent config. Schema: `git agent schema config`.
# Agents run in their own worktree (cwd), get the prompt in
# $GIT_AGENT_PROMPT_FILE and never see GITHUB_TOKEN / GH_TOKEN.
# Adapters: claude, codex, aider, copilot, opencode (docs/agents/), or `command`.
default_agent: claude
agents:
  claude:
    adapter: claude          # passes ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL through when set
  codex:
    adapter: codex           # passes OPENAI_API_KEY / CODEX_HOME through when set
  aider:
    adapter: aider
    model: openai/gpt-4o
  copilot:
    adapter: copilot         # GitHub Copilot CLI; passes COPILOT_PROVIDER_* (BYOK) through when set
  opencode:
    adapter: opencode        # passes OPENCODE_CONFIG and provider keys through when set
    model: anthropic/claude-sonnet-4-5
  script:
    adapter: command
    command: ./scripts/agent.sh   # any program: reads $GIT_AGENT_PROMPT_FILE, edits files
# How many runs may work at once (default: number of CPUs).
# max_parallel: 4
# Where worktrees live; never inside the repository (default ~/.cache/git-agent/worktrees).
# worktree_dir: ~/.cache/git-agent/worktrees
sandbox:
  mode: auto                 # Landlock: writes only to the worktree, TMPDIR and these paths
  network: open              # `none`: only loopback (command agents, local models)
                             # {allow: ["api.anthropic.com:443"]}: only these, via git-agent's proxy
  read_deny: []              # e.g. ["~/.ssh", "~/.config/gh"]
  write_paths: []            # e.g. caches: ["~/.cargo/registry"]
"#;

/// A brief from `git agent new`; `{id}`, `{title}`, `{write}` and `{check}` are filled in.
pub const BRIEF: &str = r#"---
title: {title}
# agent: claude            # a name from .agents/config.yaml (default: default_agent)
# base: main               # the ref the run starts from (default: HEAD)
scope:
  write: [{write}]         # required: the only paths this run may change
  deny: []                 # never, even where `write` matches
  # read: ["src/**"]       # materialize only these paths (sparse checkout)
checks:                    # required: success means every check exits 0
  - name: check
    run: {check}
    timeout: 10m
escalate:
  attempts: 2              # agent attempts while checks fail
  timeout: 30m             # wall clock for the whole run
  # max_changed_lines: 400
  # paths: ["Cargo.lock"]  # in scope, but a human must look
  on_scope_violation: escalate   # or `revert`
  # fallback: issue        # escalated + pr: open an issue instead of a draft PR
output:
  deliver: branch          # branch | push | pr | draft-pr
  # branch: agent/{id}
---
# Goal

What should be true when this run is done.

# Why

The reason, so the agent can make sensible choices.

# Out of scope

What the agent must not do, even if it looks related.

# Notes

Anything else the agent should know: where to look, conventions, traps.
"#;

pub fn brief(id: &str, title: &str, write: &[String], check: &str) -> String {
    brief_with_checks(id, title, write, &[check.to_string()])
}

/// As [`brief`], with one check per command (`check`, `check-2`, ...).
pub fn brief_with_checks(id: &str, title: &str, write: &[String], checks: &[String]) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string encodes as JSON");
    let write = write
        .iter()
        .map(|w| quote(w))
        .collect::<Vec<_>>()
        .join(", ");
    let one = "  - name: check\n    run: {check}\n    timeout: 10m\n";
    let block: String = checks
        .iter()
        .enumerate()
        .map(|(i, command)| {
            let name = if i == 0 {
                "check".to_string()
            } else {
                format!("check-{}", i + 1)
            };
            format!(
                "  - name: {name}\n    run: {}\n    timeout: 10m\n",
                quote(command)
            )
        })
        .collect();
    BRIEF
        .replace(one, &block)
        .replace("{id}", id)
        .replace("{title}", &quote(title))
        .replace("{write}", &write)
}
