//! A scripted fake model server for end-to-end tests of the agent adapters.
//!
//! It listens on `127.0.0.1:0` and speaks just enough HTTP/1.1 (by hand, one
//! thread per connection, `Connection: close`) for three wire protocols:
//!
//! - Anthropic messages (`POST /v1/messages`, SSE when `"stream": true`) — Claude Code;
//! - OpenAI responses (`POST /v1/responses`, SSE) — Codex;
//! - OpenAI chat completions (`POST /v1/chat/completions`, JSON or SSE) — aider.
//!
//! It serves a list of [`Turn`]s in order. A request consumes a turn when it
//! carries a non-empty `tools` list (side requests for titles and the like
//! do not) or when it is a chat completion (aider sends no tools). When the
//! script is exhausted it answers `Done.`. Every request is logged, so tests
//! can assert that the feedback reached the model.
//!
//! Tool inputs may contain `{cwd}`: it is replaced with the working
//! directory the CLI announced in its request (Claude Code's tools want
//! absolute paths, and the worktree's path is only known at run time).
//!
//! Every answer reports token usage (100 input, 20 output unless the turn
//! says otherwise with [`Turn::usage`]): Claude Code prices it by the model
//! name and reports `total_cost_usd`, aider prices it from its price list.
//! A turn may also be [`Turn::delayed`], to give a watcher time to act.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// One model response.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// Assistant text (for chat completions: the whole reply, e.g. SEARCH/REPLACE blocks).
    pub text: Option<String>,
    pub calls: Vec<Call>,
    /// Reported usage (input, output tokens); `None`: (100, 20).
    pub usage: Option<(u64, u64)>,
    /// How long to wait before answering.
    pub delay: Option<Duration>,
}

/// One tool call in a turn.
#[derive(Debug, Clone)]
pub enum Call {
    /// A JSON-argument tool call (Anthropic `tool_use`, OpenAI `function_call`).
    Function { name: String, input: Value },
    /// A freeform tool call (OpenAI `custom_tool_call`, e.g. Codex's `apply_patch`).
    Custom { name: String, input: String },
}

impl Turn {
    pub fn text(t: &str) -> Turn {
        Turn {
            text: Some(t.to_string()),
            ..Turn::default()
        }
    }
    pub fn tool(name: &str, input: Value) -> Turn {
        Turn {
            calls: vec![Call::Function {
                name: name.to_string(),
                input,
            }],
            ..Turn::default()
        }
    }
    pub fn custom(name: &str, input: &str) -> Turn {
        Turn {
            calls: vec![Call::Custom {
                name: name.to_string(),
                input: input.to_string(),
            }],
            ..Turn::default()
        }
    }
    /// Reports `input` and `output` tokens for this answer.
    pub fn usage(mut self, input: u64, output: u64) -> Turn {
        self.usage = Some((input, output));
        self
    }
    /// Answers only after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Turn {
        self.delay = Some(delay);
        self
    }
    /// (input, output) tokens this answer reports.
    fn tokens(&self) -> (u64, u64) {
        self.usage.unwrap_or((100, 20))
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Whether it consumed a turn (and which).
    pub turn: Option<usize>,
}

struct State {
    turns: Vec<Turn>,
    next: AtomicUsize,
    log: Mutex<Vec<Request>>,
    ids: AtomicUsize,
    stop: AtomicBool,
    /// Answer every POST with this status line and JSON body (e.g. a 401).
    reject: Option<(String, String)>,
    /// Only requests with tools consume a turn, chat completions too
    /// (CLIs that ask for titles without tools); otherwise every chat
    /// completion does (aider sends no tools).
    tools_only: bool,
}

/// A running server; stops when dropped.
pub struct FakeModel {
    pub port: u16,
    state: Arc<State>,
}

impl FakeModel {
    pub fn start(turns: Vec<Turn>) -> FakeModel {
        Self::start_with(turns, None, false)
    }

    /// Like [`FakeModel::start`], but a chat completion without tools (a
    /// title, a summary) consumes no turn either: for CLIs that call tools
    /// over chat completions (Copilot CLI, opencode).
    pub fn start_tools_only(turns: Vec<Turn>) -> FakeModel {
        Self::start_with(turns, None, true)
    }

    /// A server that answers every model request with `status` (e.g.
    /// `401 Unauthorized`) and `body`: for authentication and model errors.
    pub fn rejecting(status: &str, body: &str) -> FakeModel {
        Self::start_with(
            Vec::new(),
            Some((status.to_string(), body.to_string())),
            false,
        )
    }

    fn start_with(
        turns: Vec<Turn>,
        reject: Option<(String, String)>,
        tools_only: bool,
    ) -> FakeModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State {
            turns,
            next: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            ids: AtomicUsize::new(1),
            stop: AtomicBool::new(false),
            reject,
            tools_only,
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &st);
                });
            }
        });
        FakeModel { port, state }
    }

    /// `http://127.0.0.1:PORT` (Anthropic clients append `/v1/...`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/v1` (OpenAI clients append `/responses`, `/chat/completions`).
    pub fn v1(&self) -> String {
        format!("{}/v1", self.url())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().expect("log").clone()
    }

    /// Turns served so far.
    pub fn served(&self) -> usize {
        self.state
            .next
            .load(Ordering::SeqCst)
            .min(self.state.turns.len())
    }

    /// Whether any request that consumed a turn, or any request at all, contains `needle`.
    pub fn received(&self, needle: &str) -> bool {
        self.requests().iter().any(|r| r.body.contains(needle))
    }

    /// A summary of the log, for assertion messages.
    pub fn describe(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {} turn={:?} ({} bytes)",
                    r.method,
                    r.path,
                    r.turn,
                    r.body.len()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, st: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                let _ = reader.read_line(&mut end);
                break;
            }
            let mut chunk = vec![0; n];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![0; len];
        reader.read_exact(&mut body)?;
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let has_tools = json["tools"].as_array().is_some_and(|t| !t.is_empty());
    let route = path.split('?').next().unwrap_or("").to_string();
    let chat = route.ends_with("/chat/completions");
    let model_route = chat || route.ends_with("/messages") || route.ends_with("/responses");
    let consumes = method == "POST" && model_route && (has_tools || (chat && !st.tools_only));
    let turn_index = consumes.then(|| st.next.fetch_add(1, Ordering::SeqCst));
    let turn = match turn_index {
        Some(i) if i < st.turns.len() => st.turns[i].clone(),
        _ => Turn::text("Done."),
    };
    let turn = with_cwd(turn, &body);
    st.log.lock().expect("log").push(Request {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        body,
        turn: turn_index,
    });
    if let Some(delay) = turn.delay {
        std::thread::sleep(delay);
    }
    let id = st.ids.fetch_add(1, Ordering::SeqCst);
    let stream_wanted = json["stream"].as_bool().unwrap_or(false);
    let mut out = stream;
    if method != "POST" {
        if route.ends_with("/models") {
            return respond(
                &mut out,
                "200 OK",
                "application/json",
                r#"{"object":"list","data":[]}"#,
            );
        }
        return respond(
            &mut out,
            "404 Not Found",
            "application/json",
            r#"{"error":"not found"}"#,
        );
    }
    if let Some((status, body)) = &st.reject {
        // `x-should-retry: false`: SDKs would otherwise back off and retry for minutes.
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nx-should-retry: false\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        out.write_all(head.as_bytes())?;
        out.write_all(body.as_bytes())?;
        let _ = out.shutdown(std::net::Shutdown::Write);
        return Ok(());
    }
    if route.ends_with("/messages/count_tokens") {
        return respond(
            &mut out,
            "200 OK",
            "application/json",
            r#"{"input_tokens":10}"#,
        );
    }
    if route.ends_with("/messages") {
        if stream_wanted {
            let sse = anthropic_sse(&turn, id);
            return respond(&mut out, "200 OK", "text/event-stream", &sse);
        }
        let msg = anthropic_message(&turn, id);
        return respond(&mut out, "200 OK", "application/json", &msg.to_string());
    }
    if route.ends_with("/responses") {
        let sse = responses_sse(&turn, id);
        return respond(&mut out, "200 OK", "text/event-stream", &sse);
    }
    if chat {
        if stream_wanted {
            let sse = chat_sse(&turn, id);
            return respond(&mut out, "200 OK", "text/event-stream", &sse);
        }
        let reply = chat_message(&turn, id);
        return respond(&mut out, "200 OK", "application/json", &reply.to_string());
    }
    respond(
        &mut out,
        "404 Not Found",
        "application/json",
        r#"{"error":"not found"}"#,
    )
}

fn respond(out: &mut TcpStream, status: &str, ty: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Replaces `{cwd}` in tool inputs with the working directory the request names.
fn with_cwd(mut turn: Turn, body: &str) -> Turn {
    let cwd = find_cwd(body);
    let Some(cwd) = cwd else { return turn };
    for call in &mut turn.calls {
        match call {
            Call::Function { input, .. } => {
                let s = input.to_string().replace("{cwd}", &cwd);
                *input = serde_json::from_str(&s).unwrap_or(Value::Null);
            }
            Call::Custom { input, .. } => *input = input.replace("{cwd}", &cwd),
        }
    }
    turn
}

fn find_cwd(body: &str) -> Option<String> {
    // The body is JSON: newlines are escaped as `\n`.
    let lower = body.to_ascii_lowercase();
    for marker in ["working directory: ", "<cwd>"] {
        if let Some(i) = lower.find(marker) {
            let rest = &body[i + marker.len()..];
            let end = rest.find(['<', '"', '\\']).unwrap_or(rest.len());
            return Some(rest[..end].trim().to_string());
        }
    }
    None
}

fn anthropic_blocks(turn: &Turn, id: usize) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(t) = &turn.text {
        blocks.push(json!({"type":"text","text":t}));
    }
    for (i, c) in turn.calls.iter().enumerate() {
        if let Call::Function { name, input } = c {
            blocks.push(
                json!({"type":"tool_use","id":format!("toolu_{id}_{i}"),"name":name,"input":input}),
            );
        }
    }
    blocks
}

fn stop_reason(turn: &Turn) -> &'static str {
    if turn.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    }
}

fn anthropic_message(turn: &Turn, id: usize) -> Value {
    let (input, output) = turn.tokens();
    json!({"id":format!("msg_{id}"),"type":"message","role":"assistant","model":"claude-fake",
        "content":anthropic_blocks(turn, id),"stop_reason":stop_reason(turn),"stop_sequence":null,
        "usage":{"input_tokens":input,"output_tokens":output}})
}

fn anthropic_sse(turn: &Turn, id: usize) -> String {
    let (input, output) = turn.tokens();
    let mut s = String::new();
    let mut ev = |name: &str, data: Value| s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    ev(
        "message_start",
        json!({"type":"message_start","message":{"id":format!("msg_{id}"),"type":"message","role":"assistant",
            "model":"claude-fake","content":[],"stop_reason":null,"stop_sequence":null,
            "usage":{"input_tokens":input,"output_tokens":1}}}),
    );
    for (index, block) in anthropic_blocks(turn, id).into_iter().enumerate() {
        if block["type"] == "text" {
            ev(
                "content_block_start",
                json!({"type":"content_block_start","index":index,"content_block":{"type":"text","text":""}}),
            );
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":block["text"]}}),
            );
        } else {
            ev(
                "content_block_start",
                json!({"type":"content_block_start","index":index,"content_block":{"type":"tool_use",
                    "id":block["id"],"name":block["name"],"input":{}}}),
            );
            ev(
                "content_block_delta",
                json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta",
                    "partial_json":block["input"].to_string()}}),
            );
        }
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":index}),
        );
    }
    ev(
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":stop_reason(turn),"stop_sequence":null},
            "usage":{"output_tokens":output}}),
    );
    ev("message_stop", json!({"type":"message_stop"}));
    s
}

fn responses_sse(turn: &Turn, id: usize) -> String {
    let (input, output) = turn.tokens();
    let mut items = Vec::new();
    if let Some(t) = &turn.text {
        items.push(json!({"type":"message","id":format!("msg_{id}"),"role":"assistant","status":"completed",
            "content":[{"type":"output_text","text":t,"annotations":[]}]}));
    }
    for (i, c) in turn.calls.iter().enumerate() {
        items.push(match c {
            Call::Function { name, input } => json!({"type":"function_call","id":format!("fc_{id}_{i}"),
                "call_id":format!("call_{id}_{i}"),"name":name,"arguments":input.to_string(),"status":"completed"}),
            Call::Custom { name, input } => json!({"type":"custom_tool_call","id":format!("ctc_{id}_{i}"),
                "call_id":format!("call_{id}_{i}"),"name":name,"input":input,"status":"completed"}),
        });
    }
    let mut s = String::new();
    let mut ev = |name: &str, data: Value| s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    let resp = json!({"id":format!("resp_{id}"),"object":"response","status":"in_progress","model":"fake","output":[]});
    ev(
        "response.created",
        json!({"type":"response.created","response":resp}),
    );
    for (index, item) in items.iter().enumerate() {
        ev(
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":index,"item":item}),
        );
        ev(
            "response.output_item.done",
            json!({"type":"response.output_item.done","output_index":index,"item":item}),
        );
    }
    ev(
        "response.completed",
        json!({"type":"response.completed","response":{"id":format!("resp_{id}"),"object":"response",
            "status":"completed","model":"fake","output":items,
            "usage":{"input_tokens":input,"input_tokens_details":{"cached_tokens":0},"output_tokens":output,
                "output_tokens_details":{"reasoning_tokens":0},"total_tokens":input + output}}}),
    );
    s
}

/// A chat completion's tool calls (`function` calls; a freeform call is sent as one too).
fn chat_tool_calls(turn: &Turn, id: usize) -> Vec<Value> {
    turn.calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (name, arguments) = match c {
                Call::Function { name, input } => (name.clone(), input.to_string()),
                Call::Custom { name, input } => (name.clone(), json!({"input": input}).to_string()),
            };
            json!({"id":format!("call_{id}_{i}"),"type":"function",
                "function":{"name":name,"arguments":arguments}})
        })
        .collect()
}

/// The text of a chat answer: the turn's, `Done.` when it has neither text nor calls.
fn chat_text(turn: &Turn) -> Option<String> {
    match (&turn.text, turn.calls.is_empty()) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => Some("Done.".into()),
        (None, false) => None,
    }
}

fn chat_finish(turn: &Turn) -> &'static str {
    if turn.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    }
}

fn chat_usage(turn: &Turn) -> Value {
    let (input, output) = turn.tokens();
    json!({"prompt_tokens":input,"completion_tokens":output,"total_tokens":input + output})
}

fn chat_message(turn: &Turn, id: usize) -> Value {
    let mut message = json!({"role":"assistant","content":chat_text(turn)});
    let calls = chat_tool_calls(turn, id);
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({"id":format!("chatcmpl-{id}"),"object":"chat.completion","created":0,"model":"fake",
        "choices":[{"index":0,"message":message,"finish_reason":chat_finish(turn)}],
        "usage":chat_usage(turn)})
}

/// A streamed chat completion: the text, each tool call whole in one delta,
/// the finish reason, then a usage chunk (what `stream_options.include_usage` asks for).
fn chat_sse(turn: &Turn, id: usize) -> String {
    let mut deltas = vec![];
    let mut first = json!({"role":"assistant"});
    if let Some(t) = chat_text(turn) {
        first["content"] = json!(t);
    }
    deltas.push((first, Value::Null));
    for (index, mut call) in chat_tool_calls(turn, id).into_iter().enumerate() {
        call["index"] = json!(index);
        deltas.push((json!({"tool_calls":[call]}), Value::Null));
    }
    deltas.push((json!({}), json!(chat_finish(turn))));
    let mut sse = String::new();
    for (delta, finish) in deltas {
        let chunk = json!({"id":format!("chatcmpl-{id}"),"object":"chat.completion.chunk","created":0,"model":"fake",
            "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    let usage = json!({"id":format!("chatcmpl-{id}"),"object":"chat.completion.chunk","created":0,"model":"fake",
        "choices":[],"usage":chat_usage(turn)});
    sse.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    sse
}
