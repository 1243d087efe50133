//! aider (`aider --message-file PROMPT --yes-always FILES...`).
//!
//! Permissions: aider edits files through SEARCH/REPLACE blocks; it runs no
//! shell commands here (`--no-suggest-shell-commands`, no `--auto-test`),
//! makes no commits (`--no-auto-commits --no-dirty-commits`; git-agent
//! commits) and does not touch `.gitignore` (`--no-gitignore`). The files
//! named on its command line are the existing files matching the brief's
//! `scope.write` (up to [`MAX_FILES`]; none when there are more, then aider
//! adds the files the model asks for — `--yes-always` accepts). Its history
//! files go to the run directory, never into the worktree, and the repo map
//! is off (`--map-tokens 0`) because its cache would be written into the
//! worktree. This is the same with git-agent's sandbox and without it:
//! aider never runs a shell command without a person saying yes. Its chat
//! history is one file for the run, in the run's side directory; a later
//! attempt continues that conversation (`--restore-chat-history`). aider
//! prints no JSON: its plain output is parsed (`Tokens: ... Cost: ...` per
//! model request, `Applied edit to ...`).

use std::path::{Path, PathBuf};

use super::{
    classify, push_unique, tool, AgentCli, AgentError, Context, FailureKind, StreamParser, Var,
};
use crate::model::event::AgentActivity;
use crate::spec::config::Agent;

/// More in-scope files than this: name none, let aider pick.
pub const MAX_FILES: usize = 30;

/// aider, driven non-interactively.
pub struct Aider;

impl AgentCli for Aider {
    fn name(&self) -> &'static str {
        "aider"
    }

    fn install_hint(&self) -> &'static str {
        "python3 -m pip install aider-chat (or pipx install aider-chat)"
    }

    fn args(&self, agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        args(agent, cx)
    }

    fn access(&self, _cx: &Context<'_>) -> Option<String> {
        Some(
            "file edits (SEARCH/REPLACE) only, no shell commands, with git-agent's sandbox or \
             without it (aider runs a command only when a person says yes)"
                .to_string(),
        )
    }

    fn resumes(&self) -> bool {
        true
    }

    fn trailing(&self, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        Ok(trailing(cx))
    }

    fn fixed_env(&self) -> &'static [(&'static str, &'static str)] {
        &[("NO_COLOR", "1"), ("AIDER_CHECK_UPDATE", "false")]
    }

    fn provider_env(&self) -> &'static [&'static str] {
        &[
            "OPENAI_API_KEY",
            "OPENAI_API_BASE",
            "ANTHROPIC_API_KEY",
            "GEMINI_API_KEY",
            "DEEPSEEK_API_KEY",
            "OPENROUTER_API_KEY",
        ]
    }

    fn state_paths(
        &self,
        var: Var<'_>,
        in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) {
        let _ = var;
        (vec![in_home(".aider")], Vec::new())
    }

    fn parser(&self, worktree: &Path) -> Option<Box<dyn StreamParser>> {
        let _ = worktree;
        Some(Box::new(Parser::default()))
    }
}

/// The chat history of a run's attempts (the one "session" aider has).
pub const CHAT_HISTORY: &str = "aider.chat.md";

pub fn args(agent: &Agent, cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
    let side = |name: &str| cx.side_dir.join(name).to_string_lossy().into_owned();
    let attempt = cx.attempt;
    let mut args: Vec<String> = [
        "--yes-always",
        "--no-check-update",
        "--analytics-disable",
        "--no-pretty",
        "--no-fancy-input",
        "--no-stream",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-gitignore",
        "--no-suggest-shell-commands",
        "--no-detect-urls",
        "--no-show-release-notes",
        "--map-tokens",
        "0",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--chat-history-file".to_string(), side(CHAT_HISTORY)]);
    if cx.resume.is_some() {
        args.push("--restore-chat-history".to_string());
    }
    args.extend([
        "--input-history-file".to_string(),
        side(&format!("aider-{attempt}.input.history")),
    ]);
    args.extend([
        "--llm-history-file".to_string(),
        side(&format!("aider-{attempt}.llm.md")),
    ]);
    if let Some(model) = &agent.model {
        args.extend(["--model".to_string(), model.clone()]);
    }
    args.extend([
        "--message-file".to_string(),
        cx.prompt_file.to_string_lossy().into_owned(),
    ]);
    Ok(args)
}

/// What goes after the user's `args`: `-- FILES...`.
pub fn trailing(cx: &Context<'_>) -> Vec<String> {
    let files = files_in_scope(cx);
    if files.is_empty() {
        return Vec::new();
    }
    let mut out = vec!["--".to_string()];
    out.extend(files);
    out
}

/// Existing files of the worktree that the brief's `scope.write` allows.
pub fn files_in_scope(cx: &Context<'_>) -> Vec<String> {
    let mut out = Vec::new();
    walk(cx.worktree, cx.worktree, &mut out, &|rel| {
        cx.brief.scope.classify(rel).is_allowed()
    });
    out.sort();
    if out.len() > MAX_FILES {
        return Vec::new();
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, allowed: &dyn Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(ty) = e.file_type() else { continue };
        if e.file_name() == ".git" {
            continue;
        }
        if ty.is_dir() {
            if out.len() <= MAX_FILES {
                walk(root, &path, out, allowed);
            }
        } else if ty.is_file() {
            if let Ok(rel) = path.strip_prefix(root) {
                let rel = rel.to_string_lossy().into_owned();
                if allowed(&rel) {
                    out.push(rel);
                }
            }
        }
    }
}

/// Parses aider's plain output.
#[derive(Debug, Default)]
pub struct Parser {
    a: AgentActivity,
    lines: Vec<String>,
    requests: u32,
    failure: Option<(FailureKind, String)>,
}

impl StreamParser for Parser {
    fn line(&mut self, line: &str) {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Tokens: ") {
            self.requests += 1;
            let (sent, received) = tokens(rest);
            self.a.input_tokens = Some(self.a.input_tokens.unwrap_or(0) + sent);
            self.a.output_tokens = Some(self.a.output_tokens.unwrap_or(0) + received);
            if let Some(cost) = session_cost(rest) {
                self.a.cost_usd = Some(cost);
            }
            if let Some(m) = reply_before(&self.lines) {
                self.a.final_message = Some(m);
            }
        } else if let Some(path) = t.strip_prefix("Applied edit to ") {
            self.a.tool_calls.push(tool("edit", path));
            push_unique(&mut self.a.files_edited, path.to_string());
        } else if let Some(rest) = t.strip_prefix("Skipping edits to ") {
            self.a.permission_denials.push(format!("edit {rest}"));
        } else if t.contains("Error") && (t.starts_with("litellm.") || t.contains("APIError")) {
            self.failure = Some((classify(t), t.to_string()));
        } else if t.starts_with("The API provider is not able to authenticate") {
            self.failure = Some((FailureKind::Auth, t.to_string()));
        } else if t.starts_with("Did not find the model") || t.contains("LLM Provider NOT provided")
        {
            self.failure = Some((FailureKind::Model, t.to_string()));
        }
        self.lines.push(line.to_string());
    }

    fn stderr(&mut self, text: &str) {
        if self.failure.is_none() {
            if let Some(l) = text
                .lines()
                .rev()
                .find(|l| l.contains("Error") || l.contains("error:"))
            {
                let kind = classify(l);
                if kind != FailureKind::Crash || self.requests == 0 {
                    self.failure = Some((kind, l.trim().to_string()));
                }
            }
        }
    }

    fn activity(&self) -> AgentActivity {
        let mut a = self.a.clone();
        if self.requests > 0 {
            a.turns = Some(self.requests);
        }
        a
    }

    fn failure(&self) -> Option<(FailureKind, String)> {
        self.failure.clone()
    }

    fn session(&self) -> Option<String> {
        (self.requests > 0).then(|| CHAT_HISTORY.to_string())
    }
}

/// `100 sent, 20 received. Cost: ...` → (100, 20); `1.2k` is 1200.
fn tokens(rest: &str) -> (u64, u64) {
    let num = |s: &str| -> u64 {
        let s = s.trim().replace(',', "");
        let (n, mul) = match s.strip_suffix('k') {
            Some(n) => (n.to_string(), 1000.0),
            None => match s.strip_suffix('M') {
                Some(n) => (n.to_string(), 1_000_000.0),
                None => (s.clone(), 1.0),
            },
        };
        (n.parse::<f64>().unwrap_or(0.0) * mul) as u64
    };
    let mut sent = 0;
    let mut received = 0;
    for w in rest.split(", ") {
        let mut words = w.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next()) {
            match what.trim_end_matches('.') {
                "sent" => sent = num(n),
                "received" => received = num(n),
                _ => {}
            }
        }
    }
    (sent, received)
}

/// `Cost: $0.01 message, $0.02 session.` → 0.02.
fn session_cost(rest: &str) -> Option<f64> {
    let i = rest.find(" session")?;
    let before = &rest[..i];
    let d = before.rfind('$')?;
    before[d + 1..].trim().parse().ok()
}

/// The prose of the model's reply printed before a `Tokens:` line: back to
/// the previous marker line, without SEARCH/REPLACE blocks.
fn reply_before(lines: &[String]) -> Option<String> {
    let mut reply = Vec::new();
    for l in lines.iter().rev() {
        let t = l.trim();
        if t.starts_with("Tokens: ")
            || t.starts_with("Applied edit to ")
            || t.starts_with("https://aider.chat")
            || t.starts_with("Added ")
            || t.starts_with("Repo-map:")
        {
            break;
        }
        reply.push(l.as_str());
    }
    reply.reverse();
    let mut prose = Vec::new();
    let mut in_fence = false;
    for (i, l) in reply.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("```") {
            in_fence = !in_fence;
            // A file name line right before a fence belongs to the edit.
            if in_fence && i > 0 && prose.last().is_some_and(|p: &&str| !p.trim().is_empty()) {
                prose.pop();
            }
            continue;
        }
        if !in_fence {
            prose.push(*l);
        }
    }
    let text = prose.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fixture: &str) -> Parser {
        crate::agent::feed_fixture(fixture)
    }

    #[test]
    fn parses_a_successful_run() {
        let p = parse("aider-success.txt");
        let a = p.activity();
        assert_eq!(a.files_edited, ["src/greet.txt"]);
        assert_eq!(a.turns, Some(1));
        assert_eq!(a.input_tokens, Some(100));
        assert_eq!(a.output_tokens, Some(20));
        assert!(a.cost_usd.is_some_and(|c| c > 0.0), "{a:?}");
        assert_eq!(a.final_message.as_deref(), Some("Changed the greeting."));
        assert!(p.failure().is_none());
    }

    #[test]
    fn maps_an_auth_error() {
        let p = parse("aider-auth-error.txt");
        let (kind, msg) = p.failure().expect("a failure");
        assert_eq!(kind, FailureKind::Auth, "{msg}");
    }

    #[test]
    fn token_and_cost_lines() {
        assert_eq!(
            tokens("1.2k sent, 34 received. Cost: $0.01 message, $0.02 session."),
            (1200, 34)
        );
        assert_eq!(
            session_cost("1.2k sent, 34 received. Cost: $0.01 message, $0.02 session."),
            Some(0.02)
        );
        assert_eq!(session_cost("100 sent, 20 received."), None);
    }
}
