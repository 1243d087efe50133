//! End-to-end tests of the `claude`, `codex` and `aider` adapters: the real
//! CLIs, driven by `git agent run`, talking to a scripted fake model server
//! on 127.0.0.1 (`tests/fake_model`). No network, no account.
//!
//! The CLIs are found under `$GIT_AGENT_TEST_AGENTS_DIR` (set by
//! `.ci/install-agents.sh`: `npm/node_modules/.bin/{claude,codex}`,
//! `venv/bin/aider`). When one is missing the test fails loudly under
//! `CI=true`, and is skipped with a notice otherwise.
//!
//! For each CLI: (a) an in-scope edit that succeeds, (b) an edit outside the
//! scope that escalates, (c) a failing check on attempt 1 whose output
//! reaches the model, and a second attempt that succeeds. Then the budgets
//! (`escalate.max_turns`, `escalate.max_cost_usd`) where a CLI reports what
//! they limit: Claude Code (both), Codex (turns), aider (cost). The runs are
//! serialized (a lock) so that their durations, printed, mean something.

mod fake_model;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fake_model::{Call, FakeModel, Turn};
use serde_json::{json, Value};
use support::{of_type, yaml_str, Brief, TestRepo};

/// One e2e run at a time: timings stay meaningful and the CLIs do not
/// fight over two cores.
static SERIAL: Mutex<()> = Mutex::new(());

const MARKER: &str = "MARKER-7: the greeting lacks the word fixed";

fn check_fails_first() -> String {
    // The marker is computed by the shell, so the prompt's copy of the
    // command does not contain it: only the check's output does.
    let rest = MARKER.strip_prefix("MARKER-7").expect("marker");
    format!("grep -q 'hello fixed' src/greet.txt || {{ echo \"MARKER-$((3+4)){rest}\"; exit 1; }}")
}

/// The CLI's path, or `None` (with a notice) when it is not installed
/// locally. Under `CI=true` a missing CLI fails the test.
fn cli(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("GIT_AGENT_TEST_AGENTS_DIR").map(PathBuf::from);
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let path = dir.as_ref().map(|d| match name {
        "aider" => d.join("venv/bin/aider"),
        _ => d.join("npm/node_modules/.bin").join(name),
    });
    match path {
        Some(p) if p.exists() => Some(p),
        Some(p) => {
            assert!(
                !ci,
                "{name} is not installed at {} (GIT_AGENT_TEST_AGENTS_DIR): .ci/install-agents.sh must install it; see its output",
                p.display()
            );
            eprintln!("SKIPPED: {name} not found at {}", p.display());
            None
        }
        None => {
            assert!(
                !ci,
                "GIT_AGENT_TEST_AGENTS_DIR is not set under CI=true: run .ci/install-agents.sh and export what it prints"
            );
            eprintln!(
                "SKIPPED: {name}: set GIT_AGENT_TEST_AGENTS_DIR (see .ci/install-agents.sh) to run the real-CLI tests"
            );
            None
        }
    }
}

/// A repository with `src/greet.txt` and `README.md`, and an agent `a`
/// of `adapter` running `program`.
fn repo(adapter: &str, program: &Path, model: &str, extra_args: &[&str]) -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n"), ("src/greet.txt", "hello\n")]);
    let args = extra_args
        .iter()
        .map(|a| yaml_str(a))
        .collect::<Vec<_>>()
        .join(", ");
    repo.write(
        ".agents/config.yaml",
        format!(
            "default_agent: a\nagents:\n  a:\n    adapter: {adapter}\n    command: {}\n    model: {}\n    args: [{args}]\n\
             worktree_dir: {}\nkill_grace: 2s\n",
            yaml_str(&program.display().to_string()),
            yaml_str(model),
            yaml_str(&repo.wt.display().to_string()),
        ),
    );
    repo
}

/// `git agent run <id> --json` with the provider's variables; returns the
/// exit code, the run object, stderr and the wall time.
fn run(repo: &TestRepo, id: &str, env: &[(String, String)]) -> (i32, Value, String, Duration) {
    // The real CLIs get a UTF-8 locale.
    let mut extra = vec![("LC_ALL", "C.UTF-8")];
    extra.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let start = Instant::now();
    let (code, runs, stderr) = repo.run_json_env(&[id], &extra);
    let took = start.elapsed();
    let run = runs.into_iter().next().unwrap_or(Value::Null);
    (code, run, stderr, took)
}

/// Everything about a finished run, for assertion messages.
fn dump(repo: &TestRepo, run: &Value, stderr: &str, server: &FakeModel) -> String {
    let id = run["run_id"].as_str().unwrap_or("");
    let dir = repo.run_dir(id);
    let mut s = format!(
        "run: {run:#}\nstderr:\n{stderr}\nserver:\n{}\n",
        server.describe()
    );
    for n in 1..=3 {
        for stream in ["stdout", "stderr"] {
            if let Ok(t) = std::fs::read_to_string(dir.join(format!("agent-{n}.{stream}"))) {
                let tail: String = t
                    .chars()
                    .rev()
                    .take(3000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                s.push_str(&format!("--- agent-{n}.{stream}\n{tail}\n"));
            }
        }
    }
    s
}

fn activity(events: &[Value], attempt: u64) -> Value {
    of_type(events, "agent_activity")
        .into_iter()
        .find(|e| e["attempt"] == attempt)
        .cloned()
        .unwrap_or(Value::Null)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Copies an attempt's stdout to `$GIT_AGENT_RECORD_STREAMS/<name>` (to refresh fixtures).
fn record(repo: &TestRepo, run: &Value, attempt: u32, name: &str) {
    if let Some(dir) = std::env::var_os("GIT_AGENT_RECORD_STREAMS") {
        let id = run["run_id"].as_str().unwrap_or("");
        let from = repo.run_dir(id).join(format!("agent-{attempt}.stdout"));
        let _ = std::fs::copy(from, Path::new(&dir).join(name));
    }
}

fn timing(cli: &str, case: &str, took: Duration) {
    eprintln!("TIMING {cli} {case}: {:.1}s", took.as_secs_f64());
}

// ---------------------------------------------------------------------------
// The three cases, shared by the CLIs.

struct Setup {
    name: &'static str,
    adapter: &'static str,
    model: &'static str,
    args: Vec<&'static str>,
    /// Provider variables for git-agent's environment (the adapter passes them on).
    env: fn(&TestRepo, &FakeModel) -> Vec<(String, String)>,
    /// (a): edit src/greet.txt to `hello fixed`, run the check, say "Changed the greeting."
    success: fn() -> Vec<Turn>,
    /// (b): edit README.md.
    outside: fn() -> Vec<Turn>,
    /// (c): attempt 1 writes `hello world`; attempt 2 `hello fixed`.
    retry: fn() -> Vec<Turn>,
}

fn case_success(s: &Setup) {
    let Some(program) = cli(s.name) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = FakeModel::start((s.success)());
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
}

fn case_outside(s: &Setup) {
    let Some(program) = cli(s.name) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = FakeModel::start((s.outside)());
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

fn case_retry(s: &Setup) {
    let Some(program) = cli(s.name) else { return };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = FakeModel::start((s.retry)());
    let repo = repo(s.adapter, &program, s.model, &s.args);
    repo.brief(
        "retry",
        &Brief::new(&["src/**"])
            .title("Fix the greeting, eventually")
            .check("greeting", &check_fails_first())
            .attempts(2)
            .timeout("280s"),
    );
    repo.commit_all("config");
    let (code, run, stderr, took) = run(&repo, "retry", &(s.env)(&repo, &server));
    timing(s.name, "retry", took);
    record(
        &repo,
        &run,
        2,
        &format!("{}-retry-2.{}", s.name, ext(s.name)),
    );
    let why = dump(&repo, &run, &stderr, &server);
    assert_eq!(code, 0, "{why}");
    assert_eq!(run["outcome"], "succeeded", "{why}");
    assert_eq!(run["attempts"], 2, "{why}");
    assert_eq!(
        repo.show("agent/retry", "src/greet.txt").as_deref(),
        Some("hello fixed\n")
    );
    let id = run["run_id"].as_str().expect("run id");
    let events = repo.events(id);
    let checks: Vec<(u64, bool)> = of_type(&events, "check_finished")
        .iter()
        .map(|c| {
            (
                c["attempt"].as_u64().unwrap_or(0),
                c["passed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(checks, [(1, false), (2, true)], "{why}");
    // The failing check's output reached the model, in a request of attempt 2.
    let requests = server.requests();
    let first_with_marker = requests
        .iter()
        .position(|r| r.body.contains(MARKER))
        .unwrap_or_else(|| panic!("the model never saw the check's output\n{why}"));
    assert!(
        requests[..first_with_marker]
            .iter()
            .any(|r| r.turn.is_some()),
        "the feedback arrived before attempt 1 ran\n{why}"
    );
    assert!(
        !activity(&events, 1).is_null() && !activity(&events, 2).is_null(),
        "{events:#?}"
    );
}

fn ext(name: &str) -> &'static str {
    if name == "aider" {
        "txt"
    } else {
        "jsonl"
    }
}

// ---------------------------------------------------------------------------
// Claude Code

fn claude() -> Setup {
    Setup {
        name: "claude",
        adapter: "claude",
        model: "claude-sonnet-4-5",
        args: vec![],
        env: |repo, server| {
            vec![
                ("ANTHROPIC_BASE_URL".into(), server.url()),
                ("ANTHROPIC_API_KEY".into(), "sk-ant-dummy".into()),
                (
                    "CLAUDE_CONFIG_DIR".into(),
                    repo.tmp.join("claude-config").display().to_string(),
                ),
            ]
        },
        success: || {
            vec![
                Turn::tool("Read", json!({"file_path": "{cwd}/src/greet.txt"})),
                Turn::tool(
                    "Edit",
                    json!({"file_path": "{cwd}/src/greet.txt", "old_string": "hello", "new_string": "hello fixed"}),
                ),
                Turn::tool(
                    "Bash",
                    json!({"command": "grep -q 'hello fixed' src/greet.txt", "description": "run the check"}),
                ),
                Turn::text("Changed the greeting."),
            ]
        },
        outside: || {
            vec![
                Turn::tool("Read", json!({"file_path": "{cwd}/README.md"})),
                Turn::tool(
                    "Edit",
                    json!({"file_path": "{cwd}/README.md", "old_string": "# Project", "new_string": "# Project (edited)"}),
                ),
                Turn::tool(
                    "Bash",
                    json!({"command": "curl -s http://example.invalid/", "description": "not allowed"}),
                ),
                Turn::text("Edited the README."),
            ]
        },
        retry: || {
            vec![
                Turn::tool("Read", json!({"file_path": "{cwd}/src/greet.txt"})),
                Turn::tool(
                    "Edit",
                    json!({"file_path": "{cwd}/src/greet.txt", "old_string": "hello", "new_string": "hello world"}),
                ),
                Turn::text("First try."),
                Turn::tool("Read", json!({"file_path": "{cwd}/src/greet.txt"})),
                Turn::tool(
                    "Edit",
                    json!({"file_path": "{cwd}/src/greet.txt", "old_string": "hello world", "new_string": "hello fixed"}),
                ),
                Turn::text("Changed the greeting after the feedback."),
            ]
        },
    }
}

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

// ---------------------------------------------------------------------------
// Codex

fn patch(path: &str, old: &str, new: &str) -> String {
    format!("*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n")
}

fn codex_env(repo: &TestRepo, server: &FakeModel) -> Vec<(String, String)> {
    let home = repo.tmp.join("codex-home");
    std::fs::create_dir_all(&home).expect("codex home");
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model_provider = \"fake\"\ncheck_for_update_on_startup = false\n\n\
             [analytics]\nenabled = false\n\n\
             [model_providers.fake]\nname = \"fake\"\nbase_url = \"{}\"\nwire_api = \"responses\"\n\
             env_key = \"OPENAI_API_KEY\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
            server.v1()
        ),
    )
    .expect("codex config");
    vec![
        ("CODEX_HOME".into(), home.display().to_string()),
        ("OPENAI_API_KEY".into(), "sk-dummy".into()),
    ]
}

fn codex_shell(cmd: &str) -> Turn {
    Turn::tool("exec_command", json!({"cmd": cmd, "workdir": "{cwd}"}))
}

fn codex() -> Setup {
    Setup {
        name: "codex",
        adapter: "codex",
        model: "gpt-5.5",
        args: vec![],
        env: codex_env,
        success: || {
            vec![
                codex_shell("cat src/greet.txt"),
                Turn::custom(
                    "apply_patch",
                    &patch("src/greet.txt", "hello", "hello fixed"),
                ),
                codex_shell("grep -q 'hello fixed' src/greet.txt"),
                Turn::text("Changed the greeting."),
            ]
        },
        outside: || {
            vec![
                Turn::custom(
                    "apply_patch",
                    &patch("README.md", "# Project", "# Project (edited)"),
                ),
                Turn::text("Edited the README."),
            ]
        },
        retry: || {
            vec![
                Turn::custom(
                    "apply_patch",
                    &patch("src/greet.txt", "hello", "hello world"),
                ),
                Turn::text("First try."),
                Turn::custom(
                    "apply_patch",
                    &patch("src/greet.txt", "hello world", "hello fixed"),
                ),
                Turn::text("Changed the greeting after the feedback."),
            ]
        },
    }
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

// ---------------------------------------------------------------------------
// aider

fn search_replace(path: &str, old: &str, new: &str, prose: &str) -> Turn {
    Turn::text(&format!(
        "{prose}\n\n{path}\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"
    ))
}

fn aider_env(repo: &TestRepo, server: &FakeModel) -> Vec<(String, String)> {
    // A price list with the fake model: no download, and a cost to report.
    let caches = repo.home.join(".aider/caches");
    std::fs::create_dir_all(&caches).expect("aider caches");
    std::fs::write(
        caches.join("model_prices_and_context_window.json"),
        json!({"openai/fake": {"max_tokens": 4096, "max_input_tokens": 100000, "max_output_tokens": 4096,
            "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002,
            "litellm_provider": "openai", "mode": "chat"}})
        .to_string(),
    )
    .expect("price list");
    vec![
        ("OPENAI_API_BASE".into(), server.v1()),
        ("OPENAI_API_KEY".into(), "sk-dummy".into()),
    ]
}

fn aider() -> Setup {
    Setup {
        name: "aider",
        adapter: "aider",
        model: "openai/fake",
        args: vec!["--edit-format", "diff"],
        env: aider_env,
        success: || {
            vec![search_replace(
                "src/greet.txt",
                "hello",
                "hello fixed",
                "Changed the greeting.",
            )]
        },
        outside: || {
            // aider first asks to add README.md to the chat (`--yes-always`
            // accepts) and sends the request again: the edit comes twice.
            let edit = || {
                search_replace(
                    "README.md",
                    "# Project",
                    "# Project (edited)",
                    "Edited the README.",
                )
            };
            vec![edit(), edit()]
        },
        retry: || {
            vec![
                search_replace("src/greet.txt", "hello", "hello world", "First try."),
                search_replace(
                    "src/greet.txt",
                    "hello world",
                    "hello fixed",
                    "Changed the greeting after the feedback.",
                ),
            ]
        },
    }
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
    let server = FakeModel::start(turns);
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
