//! One parser for the CLIs whose JSON-lines streams share a shape (GitHub
//! Copilot CLI, opencode): a tool call named with its input, then its end
//! (done, with an exit code or the files it changed; failed; refused),
//! assistant text, model turns, tokens and cost, errors and a session id.
//! Each CLI maps its lines onto [`Item`]s (its [`Mapping`]); [`Parser`]
//! makes the activity of them the same way for all.

use std::collections::HashMap;

use serde_json::Value;

use super::{classify, command, push_unique, relative, tool, FailureKind, StreamParser};
use crate::model::event::AgentActivity;

/// What one line of a stream says, in the shared vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The CLI's session id (the first one counts).
    Session(String),
    /// A model turn began.
    Turn,
    /// Assistant text; the last is the final message.
    Text(String),
    /// The model asked for tool `name` (call `id`) with `input`.
    Call {
        id: String,
        name: String,
        input: Value,
    },
    /// Call `id` ended; `name` and `input` where the CLI names the call
    /// only when it is done.
    Done {
        id: String,
        name: Option<String>,
        input: Option<Value>,
        end: End,
    },
    /// Tokens and cost of one model request (summed over the attempt).
    Usage {
        input: u64,
        output: u64,
        cost: Option<f64>,
    },
    /// An error the CLI reported, and its kind when the CLI said it.
    Failure(Option<FailureKind>, String),
}

/// How a tool call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// It ran: a shell's exit code, the files it wrote (when the CLI says).
    Ran {
        exit: Option<i32>,
        files: Vec<String>,
    },
    /// It failed (a shell's exit code, when known).
    Failed { exit: Option<i32> },
    /// The CLI refused it (its permissions).
    Refused,
}

/// What a tool does, by its name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tool {
    /// Runs the command in this input key.
    Shell(&'static str),
    /// Writes the file in the first of these input keys present.
    Edit(&'static [&'static str]),
    /// Reads, searches, plans: named with its main argument.
    Other,
}

/// One CLI's stream, in terms of [`Item`]s.
pub trait Mapping: Send {
    /// The items of one parsed line.
    fn map(&mut self, line: &Value, out: &mut Vec<Item>);
    /// What the tool `name` does.
    fn tool(&self, name: &str) -> Tool;
    /// The items of the adapter's side output file (Copilot's usage).
    fn side_output(&mut self, _text: &str, _out: &mut Vec<Item>) {}
}

/// The activity of a stream, through a [`Mapping`].
pub struct Parser<M> {
    map: M,
    a: AgentActivity,
    /// The worktree: paths inside it are shown relative.
    cwd: Option<String>,
    /// call id → (name, input)
    pending: HashMap<String, (String, Value)>,
    turns: u32,
    session: Option<String>,
    failure: Option<(FailureKind, String)>,
    last_text: Option<String>,
}

impl<M: Mapping> Parser<M> {
    pub fn new(map: M, cwd: &str) -> Parser<M> {
        Parser {
            map,
            a: AgentActivity::default(),
            cwd: Some(cwd.to_string()),
            pending: HashMap::new(),
            turns: 0,
            session: None,
            failure: None,
            last_text: None,
        }
    }

    fn take(&mut self, items: Vec<Item>) {
        for item in items {
            self.item(item);
        }
    }

    fn item(&mut self, item: Item) {
        match item {
            Item::Session(id) => {
                self.session.get_or_insert(id);
            }
            Item::Turn => self.turns += 1,
            Item::Text(t) if !t.trim().is_empty() => self.last_text = Some(t),
            Item::Text(_) => {}
            Item::Call { id, name, input } => {
                self.a
                    .tool_calls
                    .push(tool(&name, self.detail(&name, &input)));
                self.pending.insert(id, (name, input));
            }
            Item::Done {
                id,
                name,
                input,
                end,
            } => self.done(&id, name, input, end),
            Item::Usage {
                input,
                output,
                cost,
            } => {
                self.a.input_tokens = Some(self.a.input_tokens.unwrap_or(0) + input);
                self.a.output_tokens = Some(self.a.output_tokens.unwrap_or(0) + output);
                if let Some(c) = cost {
                    self.a.cost_usd = Some(self.a.cost_usd.unwrap_or(0.0) + c);
                }
            }
            Item::Failure(kind, message) => {
                let kind = kind.unwrap_or_else(|| classify(&message));
                // A model or authentication failure decides; a later crash does not hide it.
                if !matches!(&self.failure, Some((k, _)) if *k != FailureKind::Crash) {
                    self.failure = Some((kind, message));
                }
            }
        }
    }

    /// A call's end: its command, the files it wrote, or its refusal.
    fn done(&mut self, id: &str, name: Option<String>, input: Option<Value>, end: End) {
        let (name, input) = match self.pending.remove(id) {
            Some(asked) => asked,
            None => {
                let name = name.unwrap_or_else(|| "?".to_string());
                let input = input.unwrap_or(Value::Null);
                self.a
                    .tool_calls
                    .push(tool(&name, self.detail(&name, &input)));
                (name, input)
            }
        };
        let detail = self.detail(&name, &input);
        let kind = self.map.tool(&name);
        match end {
            End::Refused => self.a.permission_denials.push(format!("{name} {detail}")),
            End::Ran { exit, files } => {
                if let Tool::Shell(_) = kind {
                    self.a.commands.push(command(&detail, exit.or(Some(0))));
                }
                if let Tool::Edit(_) = kind {
                    push_unique(&mut self.a.files_edited, detail);
                }
                for f in files {
                    push_unique(&mut self.a.files_edited, relative(&f, self.cwd.as_deref()));
                }
            }
            End::Failed { exit } => {
                if let Tool::Shell(_) = kind {
                    self.a.commands.push(command(&detail, exit.or(Some(1))));
                }
            }
        }
    }

    /// A call's main argument: the command, the path (relative), the pattern.
    fn detail(&self, name: &str, input: &Value) -> String {
        let s = |k: &str| input[k].as_str().map(str::to_string);
        match self.map.tool(name) {
            Tool::Shell(key) => s(key).unwrap_or_default(),
            Tool::Edit(keys) => keys
                .iter()
                .find_map(|k| s(k))
                .map(|p| relative(&p, self.cwd.as_deref()))
                .unwrap_or_default(),
            Tool::Other => ["path", "filePath", "file_path", "pattern", "query", "url"]
                .iter()
                .find_map(|k| s(k))
                .map(|p| relative(&p, self.cwd.as_deref()))
                .or_else(|| {
                    input
                        .as_object()
                        .and_then(|o| o.values().find_map(|v| v.as_str().map(str::to_string)))
                })
                .unwrap_or_default(),
        }
    }
}

impl<M: Mapping> StreamParser for Parser<M> {
    fn line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return;
        };
        let mut items = Vec::new();
        self.map.map(&v, &mut items);
        self.take(items);
    }

    fn stderr(&mut self, text: &str) {
        if self.failure.is_some() || self.turns > 0 {
            return;
        }
        let last = text
            .lines()
            .rev()
            .map(|l| strip_ansi(l).trim().to_string())
            .find(|l| l.contains("Error") || l.contains("error:"));
        if let Some(l) = last {
            self.failure = Some((classify(&l), l));
        }
    }

    fn activity(&self) -> AgentActivity {
        let mut a = self.a.clone();
        a.final_message = self.last_text.clone();
        if self.turns > 0 {
            a.turns = Some(self.turns);
        }
        a
    }

    fn failure(&self) -> Option<(FailureKind, String)> {
        self.failure.clone()
    }

    fn session(&self) -> Option<String> {
        self.session.clone()
    }

    fn side_output(&mut self, text: &str) {
        let mut items = Vec::new();
        self.map.side_output(text, &mut items);
        self.take(items);
    }
}

/// `\x1b[91mError:\x1b[0m x` → `Error: x`.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines;

    impl Mapping for Lines {
        fn map(&mut self, v: &Value, out: &mut Vec<Item>) {
            if let Ok(item) = serde_json::from_value::<Value>(v.clone()) {
                match item["k"].as_str() {
                    Some("call") => out.push(Item::Call {
                        id: "1".into(),
                        name: item["name"].as_str().unwrap_or("").into(),
                        input: item["input"].clone(),
                    }),
                    Some("ran") => out.push(Item::Done {
                        id: "1".into(),
                        name: None,
                        input: None,
                        end: End::Ran {
                            exit: Some(2),
                            files: vec![],
                        },
                    }),
                    Some("refused") => out.push(Item::Done {
                        id: "1".into(),
                        name: None,
                        input: None,
                        end: End::Refused,
                    }),
                    _ => {}
                }
            }
        }
        fn tool(&self, name: &str) -> Tool {
            match name {
                "sh" => Tool::Shell("cmd"),
                "write" => Tool::Edit(&["file"]),
                _ => Tool::Other,
            }
        }
    }

    #[test]
    fn calls_become_commands_files_and_denials() {
        let mut p = Parser::new(Lines, "/w");
        p.line(r#"{"k":"call","name":"sh","input":{"cmd":"make test"}}"#);
        p.line(r#"{"k":"ran"}"#);
        p.line(r#"{"k":"call","name":"write","input":{"file":"/w/src/a.rs"}}"#);
        p.line(r#"{"k":"ran"}"#);
        p.line(r#"{"k":"call","name":"sh","input":{"cmd":"curl x"}}"#);
        p.line(r#"{"k":"refused"}"#);
        let a = p.activity();
        assert_eq!(a.commands.len(), 1);
        assert_eq!(a.commands[0].exit_code, Some(2));
        assert_eq!(a.files_edited, ["src/a.rs"]);
        assert_eq!(a.permission_denials, ["sh curl x"]);
        assert_eq!(a.tool_calls.len(), 3);
    }

    #[test]
    fn ansi_is_stripped_from_errors() {
        let mut p = Parser::new(Lines, "/w");
        p.stderr("\u{1b}[91m\u{1b}[1mError: \u{1b}[0mSession not found\n");
        assert_eq!(
            p.failure().map(|f| f.1).as_deref(),
            Some("Error: Session not found")
        );
    }
}
