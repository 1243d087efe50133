//! opencode (`opencode run --format json --auto PROMPT`).
//!
//! Permissions: `--auto` approves whatever is not explicitly denied. Under
//! git-agent's sandbox nothing more is denied: the kernel confines its
//! writes. Without it, `OPENCODE_PERMISSION` denies every shell command but
//! the brief's checks, read-only git and `git agent decide`, web fetches and
//! paths outside the worktree; a refused call shows as a denial. A later
//! attempt continues the session of the one before (`--session <id>`).
//! Tokens and cost come from its `step_finish` events, per model request;
//! a cost of 0 (a model without a price) counts as not reported.
//!
//! On a fresh config directory opencode installs its plugin packages from
//! the npm registry; `--pure` in the agent's `args` runs without external
//! plugins (the end-to-end tests use it to stay off the network).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::jsonl::{End, Item, Mapping, Parser, Tool};
use super::{AgentCli, AgentError, Context, FailureKind, StreamParser, Var};
use crate::spec::config::Agent;

/// opencode, driven non-interactively.
pub struct Opencode;

impl AgentCli for Opencode {
    fn name(&self) -> &'static str {
        "opencode"
    }

    fn install_hint(&self) -> &'static str {
        "npm install -g opencode-ai"
    }

    fn args(&self, agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        let prompt = super::read_prompt(cx)?;
        let mut args: Vec<String> = ["run", "--format", "json", "--auto"]
            .map(String::from)
            .to_vec();
        if let Some(model) = &agent.model {
            args.extend(["--model".to_string(), model.clone()]);
        }
        if let Some(session) = cx.resume {
            args.extend(["--session".to_string(), session.to_string()]);
        }
        // The prompt is the positional message; the user's `args` follow
        // it and must be options.
        args.push(prompt);
        Ok(args)
    }

    fn access(&self, cx: &Context<'_>) -> Option<String> {
        let (checks, prefixes) = super::narrow_commands(cx);
        let mut allowed: Vec<String> = checks;
        allowed.extend(prefixes.iter().map(|p| format!("{p} …")));
        Some(if cx.sandboxed {
            "all tools (`--auto`): git-agent's sandbox confines it".to_string()
        } else {
            super::narrow_access(&format!(
                "file edits in the worktree and the commands `{}` (`OPENCODE_PERMISSION`)",
                allowed.join("`, `")
            ))
        })
    }

    fn env(&self, cx: &Context<'_>) -> Vec<(String, String)> {
        if cx.sandboxed {
            return Vec::new();
        }
        vec![(
            "OPENCODE_PERMISSION".to_string(),
            narrow_permission(cx).to_string(),
        )]
    }

    fn resumes(&self) -> bool {
        true
    }

    fn fixed_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("OPENCODE_DISABLE_AUTOUPDATE", "1")]
    }

    fn provider_env(&self) -> &'static [&'static str] {
        &[
            "OPENCODE_CONFIG",
            "OPENCODE_CONFIG_CONTENT",
            "OPENCODE_CONFIG_DIR",
            "OPENCODE_DISABLE_MODELS_FETCH",
            "OPENCODE_MODELS_PATH",
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "OPENROUTER_API_KEY",
            "GEMINI_API_KEY",
            "GOOGLE_GENERATIVE_AI_API_KEY",
            "DEEPSEEK_API_KEY",
            "GROQ_API_KEY",
        ]
    }

    fn state_paths(
        &self,
        _var: Var<'_>,
        in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) {
        // The agent sees no XDG_* variables: opencode uses these under HOME.
        // Sessions and snapshots, locks, its cache, its config dir.
        (
            vec![
                in_home(".local/share/opencode"),
                in_home(".local/state/opencode"),
                in_home(".cache/opencode"),
                in_home(".config/opencode"),
            ],
            Vec::new(),
        )
    }

    fn parser(&self, worktree: &Path) -> Option<Box<dyn StreamParser>> {
        Some(Box::new(Parser::new(
            OpencodeLines,
            &worktree.to_string_lossy(),
        )))
    }
}

/// `OPENCODE_PERMISSION` without the sandbox: shell commands denied but
/// the allowed ones (the last matching rule wins), no web, no other paths.
fn narrow_permission(cx: &Context<'_>) -> Value {
    let (checks, prefixes) = super::narrow_commands(cx);
    let mut bash = serde_json::Map::new();
    bash.insert("*".into(), json!("deny"));
    for c in checks {
        bash.insert(c, json!("allow"));
    }
    for p in prefixes {
        bash.insert(format!("{p}*"), json!("allow"));
    }
    json!({"bash": bash, "edit": "allow", "webfetch": "deny", "external_directory": "deny"})
}

/// opencode's `--format json` lines.
#[derive(Debug, Default)]
pub struct OpencodeLines;

impl Mapping for OpencodeLines {
    fn map(&mut self, v: &Value, out: &mut Vec<Item>) {
        if let Some(id) = v["sessionID"].as_str() {
            out.push(Item::Session(id.to_string()));
        }
        let part = &v["part"];
        match v["type"].as_str() {
            Some("step_start") => out.push(Item::Turn),
            Some("text") => {
                if let Some(t) = part["text"].as_str() {
                    out.push(Item::Text(t.to_string()));
                }
            }
            Some("tool_use") => out.push(Item::Done {
                id: part["callID"].as_str().unwrap_or("").to_string(),
                name: part["tool"].as_str().map(str::to_string),
                input: Some(part["state"]["input"].clone()),
                end: end_of(&part["state"]),
            }),
            Some("step_finish") => {
                let t = &part["tokens"];
                let n = |v: &Value| v.as_u64().unwrap_or(0);
                out.push(Item::Usage {
                    input: n(&t["input"]) + n(&t["cache"]["read"]) + n(&t["cache"]["write"]),
                    output: n(&t["output"]) + n(&t["reasoning"]),
                    cost: part["cost"].as_f64().filter(|c| *c > 0.0),
                });
            }
            Some("error") => {
                let e = &v["error"];
                let message = e["data"]["message"]
                    .as_str()
                    .or(e["name"].as_str())
                    .unwrap_or("error")
                    .to_string();
                let kind = match e["data"]["statusCode"].as_u64() {
                    Some(401 | 403) => Some(FailureKind::Auth),
                    _ => None,
                };
                out.push(Item::Failure(kind, message));
            }
            _ => {}
        }
    }

    fn tool(&self, name: &str) -> Tool {
        match name {
            "bash" => Tool::Shell("command"),
            "edit" | "write" | "multiedit" => Tool::Edit(&["filePath"]),
            _ => Tool::Other,
        }
    }
}

/// How a `tool_use` part's state ended.
fn end_of(state: &Value) -> End {
    let exit = state["metadata"]["exit"].as_i64().map(|c| c as i32);
    match state["status"].as_str() {
        Some("completed") => End::Ran {
            exit,
            files: Vec::new(),
        },
        _ => {
            let error = state["error"].as_str().unwrap_or("").to_ascii_lowercase();
            if error.contains("prevents you from using") || error.contains("rejected permission") {
                End::Refused
            } else {
                End::Failed { exit }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::feed_stream;

    #[test]
    fn parses_a_successful_run() {
        let p = feed_stream(&Opencode, "opencode-success.jsonl");
        let a = p.activity();
        crate::agent::assert_scripted_success(&a);
        assert_eq!((a.input_tokens, a.output_tokens), (Some(600), Some(120)));
        assert!(
            a.cost_usd.is_some_and(|c| (c - 0.00084).abs() < 1e-9),
            "{a:?}"
        );
        assert!(p.session().is_some_and(|s| s.starts_with("ses_")));
        assert!(p.failure().is_none());
    }

    #[test]
    fn reports_refused_commands() {
        let a = feed_stream(&Opencode, "opencode-denied.jsonl").activity();
        assert_eq!(a.permission_denials, ["bash ls"]);
        let ran: Vec<&str> = a.commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(ran, ["grep -q hello greet.txt"]);
    }

    #[test]
    fn maps_an_auth_error() {
        let p = feed_stream(&Opencode, "opencode-auth-error.jsonl");
        let (kind, msg) = p.failure().expect("a failure");
        assert_eq!(kind, FailureKind::Auth, "{msg}");
    }
}
