//! OpenAI Codex CLI (`codex exec --json`).
//!
//! Permissions: `-s workspace-write` — Codex's own sandbox (bubblewrap +
//! seccomp on Linux) lets commands write only the working directory and the
//! temp dir, without network; the approval policy of `exec` is `never`, so
//! anything else fails inside the sandbox instead of asking. The linked
//! worktree's git dir is read-only in there: git-agent commits, not Codex.
//! Under git-agent's own sandbox (Landlock, which forbids the mounts
//! bubblewrap needs) Codex runs with `-s danger-full-access`: the kernel
//! already confines its writes to the worktree, tmp dir and its CODEX_HOME.
//! A later attempt continues the session of the one before (`codex exec
//! resume <thread_id>`); the last attempt, which none follows, keeps no
//! session files (`--ephemeral`). Codex reports tokens but no cost and no
//! model-turn count: `turns` counts its steps (tool calls and messages),
//! which is what `escalate.max_turns` limits, live. A continued session's
//! `turn.completed` gives the session's tokens so far.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    classify, command, push_unique, relative, tool, AgentCli, AgentError, Context, FailureKind,
    StreamParser, Var,
};
use crate::model::event::AgentActivity;
use crate::spec::config::Agent;

/// the Codex CLI, driven non-interactively.
pub struct Codex;

impl AgentCli for Codex {
    fn name(&self) -> &'static str {
        "the Codex CLI"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @openai/codex"
    }

    fn args(&self, agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        args(agent, cx)
    }

    /// `[resume <session>] <prompt>`, after the user's `args`: those are
    /// options of `exec`, which `exec resume` does not all take after it.
    fn trailing(&self, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        let mut out = Vec::new();
        if let Some(session) = cx.resume {
            out.extend(["resume".to_string(), session.to_string()]);
        }
        out.push(super::read_prompt(cx)?);
        Ok(out)
    }

    fn access(&self, cx: &Context<'_>) -> Option<String> {
        Some(if cx.sandboxed {
            "all tools (`--sandbox danger-full-access`): git-agent's sandbox confines it, \
             and Codex's own cannot run inside it"
                .to_string()
        } else {
            "Codex's own sandbox (`--sandbox workspace-write`): commands write only the \
             worktree and the temp dir, without network; git-agent's sandbox does not \
             confine this run"
                .to_string()
        })
    }

    fn resumes(&self) -> bool {
        true
    }

    fn cumulative_usage(&self) -> bool {
        true
    }

    fn fixed_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("NO_COLOR", "1")]
    }

    fn provider_env(&self) -> &'static [&'static str] {
        &[
            "OPENAI_API_KEY",
            "CODEX_API_KEY",
            "OPENAI_BASE_URL",
            "CODEX_HOME",
        ]
    }

    fn state_paths(
        &self,
        var: Var<'_>,
        in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) {
        (
            vec![var("CODEX_HOME").or_else(|| in_home(".codex"))],
            Vec::new(),
        )
    }

    fn parser(&self, worktree: &Path) -> Option<Box<dyn StreamParser>> {
        // Codex reports absolute paths and never its working directory.
        let mut parser = Parser::default();
        parser.set_cwd(&worktree.to_string_lossy());
        Some(Box::new(parser))
    }
}

pub fn args(agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
    let mut args: Vec<String> = [
        "exec",
        "--json",
        "--sandbox",
        if cx.sandboxed {
            "danger-full-access"
        } else {
            "workspace-write"
        },
        "--color",
        "never",
        "--skip-git-repo-check",
    ]
    .map(String::from)
    .to_vec();
    // Session files only where a later attempt may continue the session.
    if cx.attempt >= cx.brief.escalate.attempts {
        args.push("--ephemeral".to_string());
    }
    if let Some(model) = &agent.model {
        args.extend(["--model".to_string(), model.clone()]);
    }
    Ok(args)
}

/// Parses `codex exec --json` output.
#[derive(Debug, Default)]
pub struct Parser {
    a: AgentActivity,
    cwd: Option<String>,
    steps: u32,
    failure: Option<(FailureKind, String)>,
    completed: bool,
    session: Option<String>,
}

impl StreamParser for Parser {
    fn line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        match v["type"].as_str() {
            Some("thread.started") => {
                self.session = v["thread_id"].as_str().map(str::to_string);
            }
            Some("item.completed") => self.item(&v["item"]),
            Some("turn.completed") => {
                self.completed = true;
                let u = &v["usage"];
                self.a.input_tokens = Some(
                    self.a.input_tokens.unwrap_or(0) + u["input_tokens"].as_u64().unwrap_or(0),
                );
                self.a.output_tokens = Some(
                    self.a.output_tokens.unwrap_or(0) + u["output_tokens"].as_u64().unwrap_or(0),
                );
            }
            Some("turn.failed") => {
                let msg = v["error"]["message"].as_str().unwrap_or("the turn failed");
                self.fail(msg);
            }
            Some("error") => {
                let msg = v["message"].as_str().unwrap_or("error");
                // Reconnection notices are errors too; keep the last one.
                self.fail(msg);
            }
            _ => {}
        }
    }

    fn stderr(&mut self, text: &str) {
        if self.failure.is_none() && !self.completed {
            if let Some(last) = text
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.contains("ERROR") || l.starts_with("Error"))
            {
                self.failure = Some((classify(last), last.to_string()));
            }
        }
    }

    fn activity(&self) -> AgentActivity {
        let mut a = self.a.clone();
        if self.steps > 0 {
            a.turns = Some(self.steps);
        }
        a
    }

    fn failure(&self) -> Option<(FailureKind, String)> {
        self.failure.clone()
    }

    fn session(&self) -> Option<String> {
        self.session.clone()
    }
}

impl Parser {
    fn fail(&mut self, msg: &str) {
        // A model/auth failure decides; a later generic error does not hide it.
        let kind = classify(msg);
        if !matches!(&self.failure, Some((k, _)) if *k != FailureKind::Crash && kind == FailureKind::Crash)
        {
            self.failure = Some((kind, msg.to_string()));
        }
    }

    fn item(&mut self, item: &Value) {
        match item["type"].as_str() {
            Some("agent_message") => {
                self.steps += 1;
                if let Some(t) = item["text"].as_str() {
                    self.a.final_message = Some(t.to_string());
                }
            }
            Some("command_execution") => {
                self.steps += 1;
                let cmd = item["command"].as_str().unwrap_or("");
                let cmd = unwrap_shell(cmd);
                self.a.tool_calls.push(tool("shell", cmd.clone()));
                let code = item["exit_code"].as_i64().map(|c| c as i32);
                self.a.commands.push(command(&cmd, code));
                if item["status"] == "declined" {
                    self.a.permission_denials.push(format!("shell {cmd}"));
                }
            }
            Some("file_change") => {
                self.steps += 1;
                let mut paths = Vec::new();
                for c in item["changes"].as_array().into_iter().flatten() {
                    if let Some(p) = c["path"].as_str() {
                        let rel = relative(p, self.cwd.as_deref());
                        paths.push(format!("{} {rel}", c["kind"].as_str().unwrap_or("edit")));
                        if item["status"] != "failed" {
                            push_unique(&mut self.a.files_edited, rel);
                        }
                    }
                }
                self.a
                    .tool_calls
                    .push(tool("apply_patch", paths.join(", ")));
            }
            Some("mcp_tool_call") => {
                self.steps += 1;
                let name = format!(
                    "{}.{}",
                    item["server"].as_str().unwrap_or("mcp"),
                    item["tool"].as_str().unwrap_or("?")
                );
                self.a.tool_calls.push(tool(&name, ""));
            }
            Some("web_search") => {
                self.steps += 1;
                self.a
                    .tool_calls
                    .push(tool("web_search", item["query"].as_str().unwrap_or("")));
            }
            Some("error") => {
                if let Some(m) = item["message"].as_str() {
                    self.a.notes.push(format!("Codex: {m}"));
                }
            }
            _ => {}
        }
    }

    /// Paths Codex reports are absolute; make them relative to the worktree.
    pub fn set_cwd(&mut self, cwd: &str) {
        self.cwd = Some(cwd.to_string());
    }
}

/// `/bin/bash -lc 'cat x'` → `cat x`.
fn unwrap_shell(cmd: &str) -> String {
    for prefix in [
        "/bin/bash -lc ",
        "bash -lc ",
        "/bin/sh -c ",
        "sh -c ",
        "/usr/bin/bash -lc ",
    ] {
        if let Some(rest) = cmd.strip_prefix(prefix) {
            let rest = rest.trim();
            if rest.len() >= 2
                && ((rest.starts_with('\'') && rest.ends_with('\''))
                    || (rest.starts_with('"') && rest.ends_with('"')))
            {
                return rest[1..rest.len() - 1].to_string();
            }
            return rest.to_string();
        }
    }
    cmd.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fixture: &str) -> Parser {
        crate::agent::feed_fixture(fixture)
    }

    #[test]
    fn parses_a_successful_run() {
        let p = parse("codex-success.jsonl");
        let a = p.activity();
        assert!(
            a.files_edited.iter().any(|f| f.ends_with("src/greet.txt")),
            "{a:?}"
        );
        assert!(a.commands.iter().any(|c| c.exit_code == Some(0)), "{a:?}");
        assert_eq!(a.final_message.as_deref(), Some("Changed the greeting."));
        assert!(a.input_tokens.is_some() && a.output_tokens.is_some());
        assert!(a.turns.is_some_and(|t| t >= 3), "{a:?}");
        assert!(a.cost_usd.is_none());
        assert!(p.failure().is_none());
    }

    /// Codex names files by absolute path and never says where it works:
    /// the adapter's parser is given the worktree, so the log shows
    /// repository paths (the parser built without it, as before, did not).
    #[test]
    fn file_paths_are_relative_to_the_worktree() {
        let worktree = "/tmp/git-agent-run-cnGc2f/wt/repo-b48e9a31/20261125-160844-retry-385c";
        let path = format!(
            "{}/tests/fixtures/agent_streams/codex-retry-2.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let stream = std::fs::read_to_string(&path).expect("fixture");
        let parsed = crate::agent::parse(
            crate::spec::config::Adapter::Codex,
            Path::new(worktree),
            &stream,
            "",
        )
        .expect("codex has a parser");
        assert_eq!(parsed.activity().files_edited, vec!["src/greet.txt"]);
        let unanchored = parse("codex-retry-2.jsonl").activity();
        assert_eq!(
            unanchored.files_edited,
            vec![format!("{worktree}/src/greet.txt")],
            "control: without the worktree the path stays absolute"
        );
    }

    #[test]
    fn maps_an_auth_error() {
        let p = parse("codex-auth-error.jsonl");
        let (kind, msg) = p.failure().expect("a failure");
        assert_eq!(kind, FailureKind::Auth, "{msg}");
    }

    #[test]
    fn unwraps_shell_commands() {
        assert_eq!(unwrap_shell("/bin/bash -lc 'cat a.txt'"), "cat a.txt");
        assert_eq!(unwrap_shell("ls"), "ls");
    }
}
