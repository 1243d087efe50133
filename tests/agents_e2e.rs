//! End-to-end tests of the `claude`, `codex`, `aider`, `copilot` and
//! `opencode` adapters: the real CLIs, driven by `git agent run`, talking to
//! a scripted fake model server on 127.0.0.1 (`tests/fake_model`). No
//! network, no account. What the tests share is `tests/agent_clis/`.
//!
//! The CLIs are found under `$GIT_AGENT_TEST_AGENTS_DIR` (set by
//! `.ci/install-agents.sh`: `npm/node_modules/.bin/{claude,codex,copilot,opencode}`,
//! `venv/bin/aider`). When one is missing the test fails loudly under
//! `CI=true`, and is skipped with a notice otherwise.
//!
//! For each CLI: (a) an in-scope edit that succeeds, after a shell command
//! that is no check (`ls`, `sh test.sh`), which runs because the sandbox
//! confines the agent and the adapter gives it all its tools; (b) an edit
//! outside the scope that escalates; (c) a failing check on attempt 1 whose
//! output reaches the model, as the new message of the session attempt 1
//! left (the request carries the first conversation), and a second attempt
//! that succeeds. Then the budgets (`escalate.max_turns`,
//! `escalate.max_cost_usd`) where a CLI reports what they limit: Claude
//! Code (both), Codex (turns), aider (cost). The runs are serialized (a
//! lock) so that their durations, printed, mean something.
//! `agents_full.rs` has the runs without the sandbox and without sessions.

mod agent_clis;
mod fake_model;
mod support;

use std::path::Path;
use std::time::Duration;

use agent_clis::clis::{aider, claude, codex, codex_shell, copilot, opencode, search_replace};
use agent_clis::{
    activity, cli, confined, dump, record, repo, run, strs, timing, Setup, MARKER, SERIAL,
};
use fake_model::{Call, FakeModel, Turn};
use serde_json::{json, Value};
use support::{of_type, Brief};

// ---------------------------------------------------------------------------
// The three cases, shared by the CLIs.

fn case_success(s: &Setup) {
    let Some(program) = cli(s.name) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = s.server((s.success)());
    let repo = repo(s.adapter, &program, s.model, &s.args);
    repo.brief(
        "greet",
        &Brief::new(&["src/**"])
            .title("Fix the greeting")
            .check("greeting", "grep -q 'hello fixed' src/greet.txt")
            .timeout("240s"),
    );
    let base = repo.commit_all("config");
    let (code, run, stderr, took) = run(&repo, "greet", &(s.env)(&repo, &server));
    timing(s.name, "success", took);
    record(
        &repo,
        &run,
        1,
        &format!("{}-success.{}", s.name, ext(s.name)),
    );
    let why = dump(&repo, &run, &stderr, &server);
    assert_eq!(code, 0, "{why}");
    assert_eq!(run["outcome"], "succeeded", "{why}");
    assert_eq!(run["branch"], "agent/greet");
    assert_eq!(repo.rev("agent/greet^"), base);
    assert_eq!(
        repo.show("agent/greet", "src/greet.txt").as_deref(),
        Some("hello fixed\n")
    );
    assert_eq!(run["checks"], json!([{"name": "greeting", "passed": true}]));
    let id = run["run_id"].as_str().expect("run id");
    let events = repo.events(id);
    let scope = of_type(&events, "scope_report");
    let changes = scope.last().expect("a scope report")["changes"].clone();
    assert_eq!(changes.as_array().map(Vec::len), Some(1), "{changes:#}");
    assert_eq!(changes[0]["path"], "src/greet.txt");
    assert_eq!(changes[0]["verdict"], "allowed");
    let a = activity(&events, 1);
    // Repository paths, whatever the CLI reports (Codex: absolute ones).
    assert_eq!(strs(&a["files_edited"]), ["src/greet.txt"], "{a:#}\n{why}");
    assert!(
        !a["tool_calls"]
            .as_array()
            .map(Vec::is_empty)
            .unwrap_or(true),
        "{a:#}"
    );
    assert!(
        a["final_message"]
            .as_str()
            .is_some_and(|m| m.contains("Changed the greeting")),
        "{a:#}\n{why}"
    );
    assert!(a["turns"].as_u64().is_some_and(|t| t >= 1), "{a:#}");
    let md = repo.log_md(id);
    assert!(md.contains("### What the agent did"), "{md}");
    assert!(md.contains("Changed the greeting"), "{md}");
    assert!(md.contains("src/greet.txt"), "{md}");
    assert!(md.contains("**Cost:** "), "{md}");
    if s.shell.is_some() && confined(&events) {
        // The kernel confines it: the CLI got all its tools, and a shell
        // command that is no check ran.
        let access = a["access"].as_str().unwrap_or("");
        assert!(access.starts_with("all tools"), "{a:#}\n{why}");
        let ran: Vec<(String, Value)> = a["commands"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["command"].as_str().unwrap_or("").to_string(),
                    c["exit_code"].clone(),
                )
            })
            .collect();
        assert!(
            ran.iter()
                .any(|(c, code)| c.contains("sh test.sh") && *code == 0),
            "{a:#}\n{why}"
        );
        assert!(a["permission_denials"].is_null(), "{a:#}\n{why}");
        assert!(
            server.received("tests: 1 passed"),
            "the command's output reached the model\n{why}"
        );
    }
}

fn case_outside(s: &Setup) {
    let Some(program) = cli(s.name) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = s.server((s.outside)());
    let repo = repo(s.adapter, &program, s.model, &s.args);
    repo.brief(
        "stray",
        &Brief::new(&["src/**"]).title("Stray").timeout("240s"),
    );
    repo.commit_all("config");
    let (code, run, stderr, took) = run(&repo, "stray", &(s.env)(&repo, &server));
    timing(s.name, "outside-scope", took);
    record(
        &repo,
        &run,
        1,
        &format!("{}-outside.{}", s.name, ext(s.name)),
    );
    let why = dump(&repo, &run, &stderr, &server);
    assert_eq!(code, 3, "{why}");
    assert_eq!(run["outcome"], "escalated", "{why}");
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|r| r.contains("outside the scope") && r.contains("README.md")),
        "{why}"
    );
    let id = run["run_id"].as_str().expect("run id");
    let events = repo.events(id);
    assert!(
        of_type(&events, "violation")
            .iter()
            .any(|v| v["path"] == "README.md"),
        "{events:#?}"
    );
    // Never committed anywhere.
    for head in repo.heads() {
        let rev = head.split(' ').nth(1).unwrap_or("");
        assert_eq!(repo.show(rev, "README.md").as_deref(), Some("# Project\n"));
    }
    let a = activity(&events, 1);
    assert!(
        strs(&a["files_edited"])
            .iter()
            .any(|f| f.ends_with("README.md")),
        "{a:#}\n{why}"
    );
}

/// (c): attempt 2 continues attempt 1's session: its first request
/// carries the first conversation (attempt 1's last words, "First try.")
/// and the check's output as the new message.
fn case_retry(s: &Setup) {
    let case = agent_clis::Case::new("retry", agent_clis::retry_brief(), (s.retry)());
    let Some(f) = agent_clis::retried(s, case, "retry") else {
        return;
    };
    record(
        &f.repo,
        &f.run,
        2,
        &format!("{}-retry-2.{}", s.name, ext(s.name)),
    );
    let why = &f.why;
    let (a1, a2) = (f.activity(1), f.activity(2));
    assert!(a1["session"].is_string(), "{a1:#}\n{why}");
    assert_eq!(a2["continued"], true, "{a2:#}\n{why}");
    let second = f.requests_from(MARKER);
    assert!(
        second[0].body.contains("First try."),
        "attempt 2's first request does not carry attempt 1's conversation\n{why}"
    );
    // Only the feedback is new: the brief's prompt is not sent again as a message.
    assert!(!second[0].body.contains("attempt 2 of 2."), "{why}");
    // Tokens of this attempt alone, also where the CLI reports the
    // session's total (Codex, Copilot): at most 100 per request of it.
    if let Some(tokens) = a2["input_tokens"].as_u64() {
        assert!(tokens <= 100 * second.len() as u64, "{a2:#}\n{why}");
    }
    let md = f.repo.log_md(f.run["run_id"].as_str().unwrap_or(""));
    assert!(md.contains("continued its session"), "{md}");
}

fn ext(name: &str) -> &'static str {
    if name == "aider" {
        "txt"
    } else {
        "jsonl"
    }
}

// ---------------------------------------------------------------------------
// Each CLI

#[test]
fn claude_edits_in_scope_and_succeeds() {
    case_success(&claude());
}

#[test]
fn claude_out_of_scope_edit_escalates() {
    case_outside(&claude());
}

#[test]
fn claude_retries_with_the_check_output() {
    case_retry(&claude());
}

#[test]
fn codex_edits_in_scope_and_succeeds() {
    case_success(&codex());
}

#[test]
fn codex_out_of_scope_edit_escalates() {
    case_outside(&codex());
}

#[test]
fn codex_retries_with_the_check_output() {
    case_retry(&codex());
}

#[test]
fn aider_edits_in_scope_and_succeeds() {
    case_success(&aider());
}

#[test]
fn aider_out_of_scope_edit_escalates() {
    case_outside(&aider());
}

#[test]
fn aider_retries_with_the_check_output() {
    case_retry(&aider());
}

#[test]
fn copilot_edits_in_scope_and_succeeds() {
    case_success(&copilot());
}

#[test]
fn copilot_out_of_scope_edit_escalates() {
    case_outside(&copilot());
}

#[test]
fn copilot_retries_with_the_check_output() {
    case_retry(&copilot());
}

#[test]
fn opencode_edits_in_scope_and_succeeds() {
    case_success(&opencode());
}

#[test]
fn opencode_out_of_scope_edit_escalates() {
    case_outside(&opencode());
}

#[test]
fn opencode_retries_with_the_check_output() {
    case_retry(&opencode());
}

// ---------------------------------------------------------------------------
// Failure mapping (real CLIs)

/// A CLI that is not installed fails the run with an install hint.
#[test]
fn missing_cli_fails_with_an_install_hint() {
    let repo = repo("claude", Path::new("claude-not-installed-here"), "m", &[]);
    repo.brief("x", &Brief::new(&["src/**"]));
    repo.commit_all("config");
    let (code, run, stderr, _) = run(&repo, "x", &[]);
    assert_eq!(code, 1, "{run:#}\n{stderr}");
    let reason = run["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("not installed")
            && reason.contains("npm install -g @anthropic-ai/claude-code"),
        "{reason}"
    );
}

/// Not a test: serves a script from `$FAKE_TURNS` (JSON) for manual recording.
/// `FAKE_TURNS='[...]' cargo test --test agents_e2e serve -- --ignored --nocapture`
#[test]
#[ignore]
fn serve() {
    let turns: Vec<serde_json::Value> =
        serde_json::from_str(&std::env::var("FAKE_TURNS").unwrap_or("[]".into())).expect("json");
    let turns = turns
        .into_iter()
        .map(|t| Turn {
            text: t["text"].as_str().map(str::to_string),
            calls: t["calls"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| match c["custom"].as_str() {
                            Some(input) => Call::Custom {
                                name: c["name"].as_str().unwrap_or("").into(),
                                input: input.into(),
                            },
                            None => Call::Function {
                                name: c["name"].as_str().unwrap_or("").into(),
                                input: c["input"].clone(),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ..Turn::default()
        })
        .collect();
    let server = if std::env::var_os("FAKE_TOOLS_ONLY").is_some() {
        FakeModel::start_tools_only(turns)
    } else {
        FakeModel::start(turns)
    };
    std::fs::write(
        std::env::var("FAKE_PORT_FILE").unwrap_or("/tmp/fake-port".into()),
        server.port.to_string(),
    )
    .unwrap();
    let secs: u64 = std::env::var("FAKE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let log: Vec<_> = server
        .requests()
        .iter()
        .map(|r| serde_json::json!({"method":r.method,"path":r.path,"turn":r.turn,"body":r.body}))
        .collect();
    std::fs::write(
        std::env::var("FAKE_LOG").unwrap_or("/tmp/fake-log.json".into()),
        serde_json::to_string_pretty(&log).unwrap(),
    )
    .unwrap();
}

/// An authentication error from the provider fails the run at once (no
/// second attempt), with the CLI's message.
fn case_auth_error(s: &Setup) {
    let Some(program) = cli(s.name) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = FakeModel::rejecting(
        "401 Unauthorized",
        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key","code":"invalid_api_key"}}"#,
    );
    let repo = repo(s.adapter, &program, s.model, &s.args);
    repo.brief("auth", &Brief::new(&["src/**"]).attempts(2).timeout("240s"));
    repo.commit_all("config");
    let (code, run, stderr, took) = run(&repo, "auth", &(s.env)(&repo, &server));
    timing(s.name, "auth-error", took);
    record(
        &repo,
        &run,
        1,
        &format!("{}-auth-error.{}", s.name, ext(s.name)),
    );
    let why = dump(&repo, &run, &stderr, &server);
    assert_eq!(code, 1, "{why}");
    assert_eq!(run["outcome"], "failed", "{why}");
    assert_eq!(run["attempts"], 1, "{why}");
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|r| r.contains("could not authenticate")),
        "{why}"
    );
}

#[test]
fn claude_auth_error_fails_the_run() {
    case_auth_error(&claude());
}

#[test]
fn codex_auth_error_fails_the_run() {
    case_auth_error(&codex());
}

#[test]
fn aider_auth_error_fails_the_run() {
    case_auth_error(&aider());
}

#[test]
fn copilot_auth_error_fails_the_run() {
    case_auth_error(&copilot());
}

#[test]
fn opencode_auth_error_fails_the_run() {
    case_auth_error(&opencode());
}

// ---------------------------------------------------------------------------
// Budgets: escalate.max_turns and escalate.max_cost_usd, against the real
// CLIs. Claude Code enforces both itself (`--max-turns`, `--max-budget-usd`)
// and git-agent escalates with the reason. Codex and aider have no such
// flags: git-agent's live watcher (`agent::supervise`, every 0.2 s) reads
// their stdout and stops them. The watcher only sees a budget exceeded once
// the step over it is done, and the request the CLI sent meanwhile still
// reaches the model: the fake model answers slowly (0.8 s) so that this
// slack is one step and one request, not a race.

/// Requests that consumed a turn of the script (or asked for one past its end).
fn turn_requests(server: &FakeModel) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.turn.is_some())
        .count()
}

/// A finished budget run, for assertions.
struct BudgetRun {
    code: i32,
    run: Value,
    /// Attempt 1's `agent_activity`.
    activity: Value,
    /// The decision log.
    md: String,
    server: FakeModel,
    /// Everything, for assertion messages.
    why: String,
}

impl BudgetRun {
    fn reason(&self) -> &str {
        self.run["reason"].as_str().unwrap_or("")
    }
    fn stopped(&self) -> &str {
        self.activity["stopped"].as_str().unwrap_or("")
    }
    /// Exit 3, outcome `escalated`, `needle` in the reason, the activity's
    /// `stopped` and the decision log.
    fn assert_escalated(&self, needle: &str) {
        let why = &self.why;
        assert_eq!(self.code, 3, "{why}");
        assert_eq!(self.run["outcome"], "escalated", "{why}");
        assert!(self.reason().contains(needle), "{needle}\n{why}");
        assert!(self.stopped().contains(needle), "{needle}\n{why}");
        assert!(self.md.contains(needle), "{needle}\n{}", self.md);
    }
}

/// Runs `brief` (task `budget`) with `s`'s CLI against the script `turns`.
fn budget_run(s: &Setup, turns: Vec<Turn>, brief: Brief, case: &str) -> Option<BudgetRun> {
    let program = cli(s.name)?;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = FakeModel::start(turns);
    let repo = repo(s.adapter, &program, s.model, &s.args);
    repo.brief("budget", &brief);
    repo.commit_all("config");
    let (code, run, stderr, took) = run(&repo, "budget", &(s.env)(&repo, &server));
    timing(s.name, case, took);
    record(
        &repo,
        &run,
        1,
        &format!("{}-{case}.{}", s.name, ext(s.name)),
    );
    let why = dump(&repo, &run, &stderr, &server);
    let id = run["run_id"].as_str().unwrap_or("").to_string();
    let activity = activity(&repo.events(&id), 1);
    let md = repo.log_md(&id);
    let why = format!("{why}\nactivity: {activity:#}\n");
    Some(BudgetRun {
        code,
        run,
        activity,
        md,
        server,
        why,
    })
}

fn claude_read() -> Turn {
    Turn::tool("Read", json!({"file_path": "{cwd}/src/greet.txt"}))
}

/// `max_turns: 3` while the model would use 8 tool turns: Claude Code gets
/// `--max-turns 3`, answers exactly 3 model turns (it runs the third turn's
/// tool, then does not send a fourth request: no slack), and the run
/// escalates with Claude Code's own stop, counted as 3 turns (its result
/// says `num_turns: 4`).
#[test]
fn claude_stops_at_max_turns_and_escalates() {
    let turns = (0..8).map(|_| claude_read()).collect();
    let brief = Brief::new(&["src/**"])
        .title("Read forever")
        .max_turns(3)
        .timeout("120s");
    let Some(r) = budget_run(&claude(), turns, brief, "max-turns") else {
        return;
    };
    let why = &r.why;
    r.assert_escalated("turn limit (escalate.max_turns) after 3 turns");
    assert_eq!(turn_requests(&r.server), 3, "{why}");
    assert_eq!(r.activity["turns"], 3, "{why}");
    assert_eq!(
        r.activity["tool_calls"].as_array().map(Vec::len),
        Some(3),
        "{why}"
    );
    assert!(!r.stopped().starts_with("stopped while running"), "{why}");
}

/// `max_cost_usd: 0.015` while every answer reports 1000 input and 200
/// output tokens: $0.006 at Claude Sonnet 4.5's $3/$15 per million tokens,
/// which Claude Code reports as `total_cost_usd`. With `--max-budget-usd
/// 0.015` it checks its spend after each answer and stops after the one
/// that crosses the budget (the third, $0.018), before running its tool.
#[test]
fn claude_stops_at_max_cost_and_escalates() {
    let edit = || {
        Turn::tool(
            "Edit",
            json!({"file_path": "{cwd}/src/greet.txt", "old_string": "hello", "new_string": "hello costly"}),
        )
        .usage(1000, 200)
    };
    let turns = vec![
        claude_read().usage(1000, 200),
        claude_read().usage(1000, 200),
        edit(),
        edit(),
        edit(),
        Turn::text("Spent it all.").usage(1000, 200),
    ];
    let brief = Brief::new(&["src/**"])
        .title("Spend")
        .max_cost_usd(0.015)
        .timeout("120s");
    let Some(r) = budget_run(&claude(), turns, brief, "max-cost") else {
        return;
    };
    let why = &r.why;
    r.assert_escalated("the agent spent $0.0180, more than escalate.max_cost_usd ($0.015)");
    assert_eq!(turn_requests(&r.server), 3, "{why}");
    let cost = r.activity["cost_usd"].as_f64().unwrap_or(0.0);
    assert!((cost - 0.018).abs() < 1e-9, "{why}");
    // The third answer's edit never ran.
    assert!(r.activity["files_edited"].is_null(), "{why}");
}

/// Codex has no turn limit: git-agent counts its steps (`item.completed`:
/// commands, patches, messages) live and stops it at the first step over
/// `max_turns: 2`. Each answer takes 0.8 s, so the watcher (every 0.2 s)
/// stops Codex while its fourth request waits: 4 requests, 3 steps,
/// instead of the script's 8.
#[test]
fn codex_is_stopped_live_at_max_turns() {
    let slow = Duration::from_millis(800);
    let turns = (0..8)
        .map(|_| codex_shell("cat src/greet.txt").delayed(slow))
        .collect();
    let brief = Brief::new(&["src/**"])
        .title("Cat forever")
        .max_turns(2)
        .timeout("120s");
    let Some(r) = budget_run(&codex(), turns, brief, "max-turns") else {
        return;
    };
    let why = &r.why;
    r.assert_escalated("the agent used 3 turns, more than escalate.max_turns (2)");
    assert!(r.stopped().starts_with("stopped while running:"), "{why}");
    assert_eq!(r.activity["turns"], 3, "{why}");
    let requests = turn_requests(&r.server);
    assert!((3..=4).contains(&requests), "{requests} requests\n{why}");
}

/// Codex reports no cost: `max_cost_usd` cannot be enforced, the run goes
/// on, and the log says so.
#[test]
fn codex_cost_budget_is_not_enforced_and_says_so() {
    let brief = Brief::new(&["src/**"])
        .title("Fix the greeting")
        .check("greeting", "grep -q 'hello fixed' src/greet.txt")
        .max_cost_usd(0.0001)
        .timeout("120s");
    let s = codex();
    let Some(r) = budget_run(&s, (s.success)(), brief, "max-cost") else {
        return;
    };
    let why = &r.why;
    assert_eq!(r.code, 0, "{why}");
    assert_eq!(r.run["outcome"], "succeeded", "{why}");
    assert!(r.activity["cost_usd"].is_null(), "{why}");
    let note = "the Codex CLI does not report cost: escalate.max_cost_usd was not enforced";
    assert!(
        strs(&r.activity["notes"]).iter().any(|n| n == note),
        "{why}"
    );
    assert!(r.md.contains(note), "{}", r.md);
}

/// aider prints its session cost after each model request; a SEARCH block
/// that does not match makes it ask again (up to 3 reflections: 4
/// requests). At $0.00014 a request (the price list of `aider_env`), the
/// second crosses `max_cost_usd: 0.0002` and the live watcher stops aider
/// while its third request waits.
#[test]
fn aider_is_stopped_live_at_max_cost() {
    let slow = Duration::from_millis(800);
    let turns = (0..4)
        .map(|i| {
            search_replace(
                "src/greet.txt",
                "no such line",
                &format!("hello {i}"),
                "Trying again.",
            )
            .delayed(slow)
        })
        .collect();
    let brief = Brief::new(&["src/**"])
        .title("Spend")
        .max_cost_usd(0.0002)
        .timeout("120s");
    let Some(r) = budget_run(&aider(), turns, brief, "max-cost") else {
        return;
    };
    let why = &r.why;
    r.assert_escalated("the agent spent $0.0003, more than escalate.max_cost_usd ($0.0002)");
    assert!(r.stopped().starts_with("stopped while running:"), "{why}");
    assert_eq!(r.activity["turns"], 2, "{why}");
    let cost = r.activity["cost_usd"].as_f64().unwrap_or(0.0);
    assert!((cost - 0.00028).abs() < 1e-9, "{why}");
    let requests = turn_requests(&r.server);
    assert!((2..=3).contains(&requests), "{requests} requests\n{why}");
}
