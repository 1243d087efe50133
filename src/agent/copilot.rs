//! GitHub Copilot CLI (`copilot -p PROMPT --output-format json`).
//!
//! Permissions: under git-agent's sandbox, everything (`--allow-all`:
//! every tool, path and URL), since the kernel confines its writes. Without
//! it, the narrow list: `--allow-tool write` (file edits; Copilot keeps
//! them inside the working directory) and `shell(...)` only for the
//! brief's check commands, read-only git and `git agent decide`. Copilot
//! itself lets read-only commands (`ls`, `cat`) run; any other command is
//! refused in `-p` mode (no one to ask), and shows as a denial. A later
//! attempt continues the session of the one before (`--resume=<id>`).
//! Copilot's stream carries no token counts: they come from
//! `--usage-output-file` (a session's total, so a continued session's are
//! the session's so far). It reports premium requests, not money: no cost.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::jsonl::{End, Item, Mapping, Parser, Tool};
use super::{AgentCli, AgentError, Context, FailureKind, StreamParser, Var};
use crate::spec::config::Agent;

/// GitHub Copilot CLI, driven non-interactively.
pub struct Copilot;

impl AgentCli for Copilot {
    fn name(&self) -> &'static str {
        "GitHub Copilot CLI"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g @github/copilot"
    }

    fn args(&self, agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        let mut args = vec!["-p".to_string(), super::read_prompt(cx)?];
        args.extend(
            [
                "--output-format",
                "json",
                "--no-color",
                "--no-auto-update",
                "--no-ask-user",
            ]
            .map(String::from),
        );
        if cx.sandboxed {
            args.push("--allow-all".to_string());
        } else {
            for t in narrow_tools(cx) {
                args.push(format!("--allow-tool={t}"));
            }
        }
        if let Some(usage) = self.side_output(cx.side_dir, cx.attempt) {
            args.push(format!("--usage-output-file={}", usage.display()));
        }
        if let Some(session) = cx.resume {
            args.push(format!("--resume={session}"));
        }
        if let Some(model) = &agent.model {
            args.push(format!("--model={model}"));
        }
        Ok(args)
    }

    fn access(&self, cx: &Context<'_>) -> Option<String> {
        Some(if cx.sandboxed {
            "all tools, paths and URLs (`--allow-all`): git-agent's sandbox confines it".to_string()
        } else {
            super::narrow_access(&format!(
                "file edits in the worktree, read-only commands and `{}`",
                narrow_tools(cx).join("`, `")
            ))
        })
    }

    fn resumes(&self) -> bool {
        true
    }

    fn cumulative_usage(&self) -> bool {
        true
    }

    fn side_output(&self, side_dir: &Path, attempt: u32) -> Option<PathBuf> {
        Some(side_dir.join(format!("copilot-usage-{attempt}.json")))
    }

    fn fixed_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("COPILOT_AUTO_UPDATE", "false"), ("NO_COLOR", "1")]
    }

    fn provider_env(&self) -> &'static [&'static str] {
        &[
            "COPILOT_HOME",
            "COPILOT_MODEL",
            "COPILOT_OFFLINE",
            "COPILOT_PROVIDER_BASE_URL",
            "COPILOT_PROVIDER_TYPE",
            "COPILOT_PROVIDER_API_KEY",
            "COPILOT_PROVIDER_BEARER_TOKEN",
            "COPILOT_PROVIDER_WIRE_API",
            "COPILOT_PROVIDER_MODEL_ID",
            "COPILOT_PROVIDER_WIRE_MODEL",
        ]
    }

    fn state_paths(
        &self,
        var: Var<'_>,
        in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) {
        // Its config, sessions and logs; the cache it unpacks itself into.
        (
            vec![
                var("COPILOT_HOME").or_else(|| in_home(".copilot")),
                in_home(".cache/copilot"),
            ],
            Vec::new(),
        )
    }

    fn parser(&self, worktree: &Path) -> Option<Box<dyn StreamParser>> {
        Some(Box::new(Parser::new(
            CopilotLines,
            &worktree.to_string_lossy(),
        )))
    }
}

/// The `--allow-tool` patterns without the sandbox.
fn narrow_tools(cx: &Context<'_>) -> Vec<String> {
    let (checks, prefixes) = super::narrow_commands(cx);
    let mut tools = vec!["write".to_string()];
    tools.extend(checks.iter().map(|c| format!("shell({c})")));
    tools.extend(prefixes.iter().map(|p| format!("shell({p}:*)")));
    tools
}

/// Copilot's `--output-format json` lines.
#[derive(Debug, Default)]
pub struct CopilotLines;

impl Mapping for CopilotLines {
    fn map(&mut self, v: &Value, out: &mut Vec<Item>) {
        let d = &v["data"];
        match v["type"].as_str() {
            Some("assistant.turn_start") => out.push(Item::Turn),
            Some("assistant.message") => {
                if let Some(t) = d["content"].as_str() {
                    out.push(Item::Text(t.to_string()));
                }
                for r in d["toolRequests"].as_array().into_iter().flatten() {
                    out.push(Item::Call {
                        id: r["toolCallId"].as_str().unwrap_or("").to_string(),
                        name: r["name"].as_str().unwrap_or("?").to_string(),
                        input: r["arguments"].clone(),
                    });
                }
            }
            Some("tool.execution_complete") => out.push(Item::Done {
                id: d["toolCallId"].as_str().unwrap_or("").to_string(),
                name: None,
                input: None,
                end: end_of(d),
            }),
            Some("session.error") => {
                let message = d["message"].as_str().unwrap_or("error").to_string();
                let kind = match d["errorType"].as_str() {
                    Some("authentication") => Some(FailureKind::Auth),
                    _ => None,
                };
                out.push(Item::Failure(kind, message));
            }
            Some("result") => {
                if let Some(id) = v["sessionId"].as_str() {
                    out.push(Item::Session(id.to_string()));
                }
            }
            _ => {}
        }
    }

    fn tool(&self, name: &str) -> Tool {
        match name {
            "bash" => Tool::Shell("command"),
            "edit" | "create" => Tool::Edit(&["path"]),
            _ => Tool::Other,
        }
    }

    /// `--usage-output-file`: tokens per model, summed.
    fn side_output(&mut self, text: &str, out: &mut Vec<Item>) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let Some(models) = v["modelMetrics"].as_object() else {
            return;
        };
        let (mut input, mut output) = (0, 0);
        for m in models.values() {
            input += m["usage"]["inputTokens"].as_u64().unwrap_or(0);
            output += m["usage"]["outputTokens"].as_u64().unwrap_or(0);
        }
        out.push(Item::Usage {
            input,
            output,
            cost: None,
        });
    }
}

/// How a `tool.execution_complete` ended.
fn end_of(d: &Value) -> End {
    let exit = d["shellExecution"]["exitCode"].as_i64().map(|c| c as i32);
    if d["success"].as_bool().unwrap_or(false) {
        let files = d["fileEdits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["path"].as_str().map(str::to_string))
            .collect();
        End::Ran { exit, files }
    } else if d["error"]["code"] == "denied" {
        End::Refused
    } else {
        End::Failed { exit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::feed_stream;

    #[test]
    fn parses_a_successful_run() {
        let p = feed_stream(&Copilot, "copilot-success.jsonl");
        let a = p.activity();
        crate::agent::assert_scripted_success(&a);
        assert!(a.permission_denials.is_empty());
        assert!(p.session().is_some());
        assert!(p.failure().is_none());
    }

    #[test]
    fn usage_comes_from_the_usage_file() {
        let mut p = feed_stream(&Copilot, "copilot-retry-2.jsonl");
        assert_eq!(p.activity().input_tokens, None);
        let path = format!(
            "{}/tests/fixtures/agent_streams/copilot-usage.json",
            env!("CARGO_MANIFEST_DIR")
        );
        p.side_output(&std::fs::read_to_string(path).expect("usage fixture"));
        let a = p.activity();
        assert_eq!((a.input_tokens, a.output_tokens), (Some(200), Some(40)));
        assert_eq!(a.cost_usd, None);
    }

    #[test]
    fn reports_refused_commands() {
        let a = feed_stream(&Copilot, "copilot-denied.jsonl").activity();
        assert_eq!(
            a.permission_denials,
            ["bash touch made.txt", "bash python3 -c 1"]
        );
        let ran: Vec<&str> = a.commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(ran, ["cat greet.txt"]);
    }

    #[test]
    fn maps_an_auth_error() {
        let p = feed_stream(&Copilot, "copilot-auth-error.jsonl");
        let (kind, msg) = p.failure().expect("a failure");
        assert_eq!(kind, FailureKind::Auth, "{msg}");
    }
}
