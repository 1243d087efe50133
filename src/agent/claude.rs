//! Claude Code (`claude -p ... --output-format stream-json`).
//!
//! Permissions: under git-agent's sandbox, every tool
//! (`--permission-mode bypassPermissions`, with `IS_SANDBOX=1`, without
//! which Claude Code refuses that mode to root): the kernel confines its
//! writes. Without the sandbox, `--permission-mode acceptEdits` (file edits
//! inside the working directory are accepted, anything outside is refused)
//! and an `--allowedTools` list: the file tools, and `Bash` only for the
//! brief's check commands, `git status|diff|log` and `git agent decide`.
//! Anything else is a permission denial, reported in the stream's `result`
//! event. A later attempt continues the session of the one before
//! (`--resume <session_id>`, the id from the stream). Budgets are passed
//! natively (`--max-turns`, `--max-budget-usd`) and also watched live by
//! [`super::supervise`].

use std::collections::{HashMap, HashSet};

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    classify, command, push_unique, relative, tool, AgentCli, AgentError, Context, FailureKind,
    StreamParser, Var,
};
use crate::model::event::AgentActivity;
use crate::spec::config::Agent;

/// File tools Claude Code may use without asking.
const FILE_TOOLS: &[&str] = &[
    "Read",
    "Edit",
    "MultiEdit",
    "Write",
    "NotebookEdit",
    "Glob",
    "Grep",
    "LS",
    "TodoWrite",
];

/// The tool list for `--allowedTools` (without the sandbox).
pub fn allowed_tools(cx: &Context<'_>) -> Vec<String> {
    let mut tools: Vec<String> = FILE_TOOLS.iter().map(|t| t.to_string()).collect();
    let (checks, prefixes) = super::narrow_commands(cx);
    tools.extend(checks.iter().map(|c| format!("Bash({c})")));
    tools.extend(prefixes.iter().map(|p| format!("Bash({p}:*)")));
    tools
}

/// Claude Code, driven non-interactively.
pub struct Claude;

impl AgentCli for Claude {
    fn name(&self) -> &'static str {
        "Claude Code"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @anthropic-ai/claude-code"
    }

    fn args(&self, agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        args(agent, cx)
    }

    fn access(&self, cx: &Context<'_>) -> Option<String> {
        Some(if cx.sandboxed {
            "all tools (`--permission-mode bypassPermissions`): git-agent's sandbox confines it"
                .to_string()
        } else {
            super::narrow_access(&format!(
                "`--permission-mode acceptEdits` and `--allowedTools {}`",
                allowed_tools(cx).join(" ")
            ))
        })
    }

    fn env(&self, cx: &Context<'_>) -> Vec<(String, String)> {
        // Claude Code refuses bypassPermissions to root outside a sandbox.
        if cx.sandboxed {
            vec![("IS_SANDBOX".to_string(), "1".to_string())]
        } else {
            Vec::new()
        }
    }

    fn resumes(&self) -> bool {
        true
    }

    fn fixed_env(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("DISABLE_AUTOUPDATER", "1"),
            ("DISABLE_TELEMETRY", "1"),
            ("DISABLE_ERROR_REPORTING", "1"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ]
    }

    fn provider_env(&self) -> &'static [&'static str] {
        &[
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_MODEL",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "CLAUDE_CONFIG_DIR",
            "CLAUDE_CODE_USE_BEDROCK",
            "CLAUDE_CODE_USE_VERTEX",
        ]
    }

    fn state_paths(
        &self,
        var: Var<'_>,
        in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) {
        (
            vec![var("CLAUDE_CONFIG_DIR").or_else(|| in_home(".claude"))],
            vec![in_home(".claude.json")],
        )
    }

    fn parser(&self, worktree: &Path) -> Option<Box<dyn StreamParser>> {
        // Claude Code names its working directory in its init event.
        let _ = worktree;
        Some(Box::new(Parser::default()))
    }
}

pub fn args(agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
    let mut args = vec!["-p".to_string(), super::read_prompt(cx)?];
    if let Some(session) = cx.resume {
        args.extend(["--resume".to_string(), session.to_string()]);
    }
    let mode = if cx.sandboxed {
        "bypassPermissions"
    } else {
        args.push("--allowedTools".to_string());
        args.extend(allowed_tools(cx));
        "acceptEdits"
    };
    args.extend(
        [
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            mode,
        ]
        .map(String::from),
    );
    if let Some(model) = &agent.model {
        args.extend(["--model".to_string(), model.clone()]);
    }
    if let Some(turns) = cx.brief.escalate.max_turns {
        args.extend(["--max-turns".to_string(), turns.to_string()]);
    }
    if let Some(cost) = cx.brief.escalate.max_cost_usd {
        args.extend(["--max-budget-usd".to_string(), cost.to_string()]);
    }
    Ok(args)
}

/// Parses `--output-format stream-json --verbose` output.
#[derive(Debug, Default)]
pub struct Parser {
    a: AgentActivity,
    cwd: Option<String>,
    messages: HashSet<String>,
    /// tool_use id → (name, input)
    pending: HashMap<String, (String, Value)>,
    result_seen: bool,
    failure: Option<(FailureKind, String)>,
    last_text: Option<String>,
    session: Option<String>,
}

impl StreamParser for Parser {
    fn line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        match v["type"].as_str() {
            Some("system") if v["subtype"] == "init" => {
                self.cwd = v["cwd"].as_str().map(str::to_string);
                self.session = v["session_id"].as_str().map(str::to_string);
            }
            Some("assistant") => self.assistant(&v),
            Some("user") => self.user(&v),
            Some("result") => self.result(&v),
            _ => {}
        }
    }

    fn stderr(&mut self, text: &str) {
        if !self.result_seen && self.failure.is_none() {
            if let Some(last) = text.trim().lines().rev().find(|l| !l.trim().is_empty()) {
                self.failure = Some((classify(last), last.trim().to_string()));
            }
        }
    }

    fn activity(&self) -> AgentActivity {
        let mut a = self.a.clone();
        if a.final_message.is_none() {
            a.final_message = self.last_text.clone();
        }
        if !self.result_seen && !self.messages.is_empty() {
            a.turns = Some(self.messages.len() as u32);
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
    fn assistant(&mut self, v: &Value) {
        let msg = &v["message"];
        if let Some(id) = msg["id"].as_str() {
            self.messages.insert(id.to_string());
        }
        if let Some(err) = v["error"].as_str() {
            // e.g. "authentication_failed"; the text block says more.
            let text = msg["content"][0]["text"].as_str().unwrap_or(err);
            let kind = match err {
                "authentication_failed" | "billing_error" => FailureKind::Auth,
                "invalid_request" => classify(text),
                _ => classify(&format!("{err} {text}")),
            };
            self.failure = Some((kind, text.to_string()));
        }
        for block in msg["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") => {
                    if let Some(t) = block["text"].as_str() {
                        if !t.trim().is_empty() {
                            self.last_text = Some(t.to_string());
                        }
                    }
                }
                Some("tool_use") => {
                    let name = block["name"].as_str().unwrap_or("?").to_string();
                    let input = block["input"].clone();
                    let detail = detail(&name, &input, self.cwd.as_deref());
                    self.a.tool_calls.push(tool(&name, detail));
                    if let Some(id) = block["id"].as_str() {
                        self.pending.insert(id.to_string(), (name, input));
                    }
                }
                _ => {}
            }
        }
    }

    fn user(&mut self, v: &Value) {
        for block in v["message"]["content"].as_array().into_iter().flatten() {
            if block["type"] != "tool_result" {
                continue;
            }
            let Some((name, input)) = block["tool_use_id"]
                .as_str()
                .and_then(|id| self.pending.remove(id))
            else {
                continue;
            };
            let is_error = block["is_error"].as_bool().unwrap_or(false);
            let content = result_text(&block["content"]);
            match name.as_str() {
                "Edit" | "MultiEdit" | "Write" | "NotebookEdit" if !is_error => {
                    if let Some(p) = input["file_path"]
                        .as_str()
                        .or(input["notebook_path"].as_str())
                    {
                        push_unique(&mut self.a.files_edited, relative(p, self.cwd.as_deref()));
                    }
                }
                "Bash" => {
                    let cmd = input["command"].as_str().unwrap_or("");
                    let denied = is_error && looks_denied(&content);
                    if !denied {
                        let code = if is_error {
                            exit_code_in(&content).or(Some(1))
                        } else {
                            Some(0)
                        };
                        self.a.commands.push(command(cmd, code));
                    }
                }
                _ => {}
            }
        }
    }

    fn result(&mut self, v: &Value) {
        self.result_seen = true;
        self.record_usage(v);
        if let Some(r) = v["result"].as_str() {
            if !r.trim().is_empty() {
                self.a.final_message = Some(r.to_string());
            }
        }
        self.record_denials(v);
        let subtype = v["subtype"].as_str().unwrap_or("");
        self.record_limit_stop(subtype);
        if v["is_error"].as_bool().unwrap_or(false) && self.a.stopped.is_none() {
            self.record_failure(v, subtype);
        }
    }

    /// Turns, cost and tokens (cache reads and writes count as input).
    fn record_usage(&mut self, v: &Value) {
        self.a.turns = v["num_turns"].as_u64().map(|n| n as u32);
        self.a.cost_usd = v["total_cost_usd"].as_f64();
        let usage = &v["usage"];
        if usage.is_object() {
            let input = [
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ]
            .iter()
            .filter_map(|k| usage[k].as_u64())
            .sum();
            self.a.input_tokens = Some(input);
            self.a.output_tokens = usage["output_tokens"].as_u64();
        }
    }

    /// The tool calls Claude Code refused.
    fn record_denials(&mut self, v: &Value) {
        for d in v["permission_denials"].as_array().into_iter().flatten() {
            let name = d["tool_name"].as_str().unwrap_or("?");
            let detail = detail(name, &d["tool_input"], self.cwd.as_deref());
            self.a.permission_denials.push(if detail.is_empty() {
                name.to_string()
            } else {
                format!("{name} {detail}")
            });
        }
        // A denied Bash call never ran: it is a denial, not a command.
        let denied: Vec<&str> = v["permission_denials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["tool_name"] == "Bash")
            .filter_map(|d| d["tool_input"]["command"].as_str())
            .collect();
        self.a
            .commands
            .retain(|c| !denied.contains(&c.command.as_str()));
    }

    /// A stop at the brief's turn or spending limit, from the result's subtype.
    fn record_limit_stop(&mut self, subtype: &str) {
        match subtype {
            "error_max_turns" => {
                // At `--max-turns N` Claude Code takes N model turns and
                // reports `num_turns` N + 1: it counts the turn it refused to
                // start. Count the turns taken, or the log would say the
                // agent went over a limit it kept.
                self.a.turns = self.a.turns.map(|n| n.saturating_sub(1));
                self.a.stopped = Some(format!(
                    "Claude Code stopped at its turn limit (escalate.max_turns) after {} turns",
                    self.a.turns.unwrap_or(0)
                ))
            }
            s if s.contains("budget") => {
                self.a.stopped =
                    Some("Claude Code stopped at its spending limit (escalate.max_cost_usd)".into())
            }
            _ => {}
        }
    }

    /// An error result: its message, and what kind of failure it is (a kind
    /// already known, other than a crash, stands).
    fn record_failure(&mut self, v: &Value, subtype: &str) {
        let msg = v["result"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                v["errors"].as_array().map(|e| {
                    e.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            })
            .unwrap_or_else(|| subtype.to_string());
        let kind = match &self.failure {
            Some((k, _)) if *k != FailureKind::Crash => *k,
            _ => classify(&msg),
        };
        self.failure = Some((kind, msg));
    }
}

fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn looks_denied(content: &str) -> bool {
    let c = content.to_ascii_lowercase();
    c.contains("permission")
        && (c.contains("denied")
            || c.contains("haven't granted")
            || c.contains("requested permissions"))
}

fn exit_code_in(content: &str) -> Option<i32> {
    let i = content.find("Exit code ")?;
    content[i + "Exit code ".len()..]
        .split(|c: char| !c.is_ascii_digit() && c != '-')
        .next()?
        .parse()
        .ok()
}

fn detail(name: &str, input: &Value, cwd: Option<&str>) -> String {
    let s = |k: &str| input[k].as_str().map(str::to_string);
    let path = s("file_path")
        .or_else(|| s("notebook_path"))
        .or_else(|| s("path"));
    match name {
        "Bash" => s("command").unwrap_or_default(),
        "Glob" | "Grep" => s("pattern").unwrap_or_default(),
        _ => match path {
            Some(p) => relative(&p, cwd),
            None => input
                .as_object()
                .and_then(|o| o.values().find_map(|v| v.as_str().map(str::to_string)))
                .unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fixture: &str) -> Parser {
        crate::agent::feed_fixture(fixture)
    }

    #[test]
    fn parses_a_successful_run() {
        let p = parse("claude-success.jsonl");
        let a = p.activity();
        assert_eq!(a.files_edited, ["src/greet.txt"]);
        let names: Vec<&str> = a.tool_calls.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["Read", "Edit", "Bash"]);
        assert_eq!(a.commands.len(), 1);
        assert_eq!(a.commands[0].exit_code, Some(0));
        assert!(a.turns.is_some_and(|t| t >= 3), "{a:?}");
        assert!(a.cost_usd.is_some());
        assert!(a.input_tokens.is_some() && a.output_tokens.is_some());
        assert_eq!(a.final_message.as_deref(), Some("Changed the greeting."));
        assert!(p.failure().is_none());
    }

    #[test]
    fn reports_permission_denials() {
        let a = parse("claude-outside.jsonl").activity();
        assert!(
            a.permission_denials.iter().any(|d| d.starts_with("Bash")),
            "{a:?}"
        );
        assert!(a.commands.is_empty(), "{a:?}");
    }

    #[test]
    fn maps_an_auth_error() {
        let p = parse("claude-auth-error.jsonl");
        let (kind, msg) = p.failure().expect("a failure");
        assert_eq!(kind, FailureKind::Auth, "{msg}");
    }

    #[test]
    fn counts_turns_of_a_stream_cut_short() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/agent_streams/claude-success.jsonl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let mut p = Parser::default();
        for line in text.lines().filter(|l| !l.contains("\"type\":\"result\"")) {
            p.line(line);
        }
        assert!(p.activity().turns.is_some_and(|t| t >= 3));
    }

    #[test]
    fn a_turn_limit_counts_the_turns_taken() {
        // `--max-turns 3`: three model turns, `num_turns: 4` in the result.
        let a = parse("claude-max-turns.jsonl").activity();
        assert_eq!(a.turns, Some(3), "{a:?}");
        let stopped = a.stopped.as_deref().unwrap_or("");
        assert!(stopped.contains("escalate.max_turns"), "{stopped}");
        let budget = crate::agent::supervise::Budget {
            max_turns: Some(3),
            max_cost_usd: None,
        };
        assert_eq!(budget.exceeded(&a), None);
    }

    #[test]
    fn a_spending_limit_reports_the_cost() {
        // `--max-budget-usd 0.015`: stopped after the answer that crossed it.
        let p = parse("claude-max-cost.jsonl");
        let a = p.activity();
        assert!(a.cost_usd.is_some_and(|c| c > 0.015), "{a:?}");
        assert!(a
            .stopped
            .is_some_and(|s| s.contains("escalate.max_cost_usd")));
        assert!(p.failure().is_none());
    }

    #[test]
    fn exit_codes_from_bash_errors() {
        assert_eq!(exit_code_in("Exit code 2\nboom"), Some(2));
        assert_eq!(exit_code_in("nothing"), None);
    }
}
