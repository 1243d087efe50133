//! What the end-to-end tests of the agent adapters share (`agents_e2e.rs`,
//! `agents_full.rs`): finding the real CLIs, a repository whose agent is
//! one of them, running `git agent run` with the provider's variables
//! pointing at the scripted model (`tests/fake_model`), reading what the run
//! left, and each CLI's [`Setup`] (`clis.rs`): its environment and the
//! scripts of the shared cases.

// Each test binary uses part of it.
#![allow(dead_code)]

pub mod clis;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_model::{FakeModel, Turn};
use crate::support::{of_type, yaml_str, TestRepo};

/// One e2e run at a time: timings stay meaningful and the CLIs do not
/// fight over two cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const MARKER: &str = "MARKER-7: the greeting lacks the word fixed";

pub fn check_fails_first() -> String {
    // The marker is computed by the shell, so the prompt's copy of the
    // command does not contain it: only the check's output does.
    let rest = MARKER.strip_prefix("MARKER-7").expect("marker");
    format!("grep -q 'hello fixed' src/greet.txt || {{ echo \"MARKER-$((3+4)){rest}\"; exit 1; }}")
}

/// The CLI's path, or `None` (with a notice) when it is not installed
/// locally. Under `CI=true` a missing CLI fails the test.
pub fn cli(name: &str) -> Option<PathBuf> {
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

/// A repository with `src/greet.txt`, `README.md` and `test.sh` (a test
/// command that is not a check), and an agent `a` of `adapter` running
/// `program`.
pub fn repo(adapter: &str, program: &Path, model: &str, extra_args: &[&str]) -> TestRepo {
    repo_with(adapter, program, model, extra_args, "")
}

/// [`repo`], with `config` appended to its `.agents/config.yaml`.
pub fn repo_with(
    adapter: &str,
    program: &Path,
    model: &str,
    extra_args: &[&str],
    config: &str,
) -> TestRepo {
    let repo = TestRepo::with_files(&[
        ("README.md", "# Project\n"),
        ("src/greet.txt", "hello\n"),
        ("test.sh", "echo 'tests: 1 passed'\n"),
    ]);
    let args = extra_args
        .iter()
        .map(|a| yaml_str(a))
        .collect::<Vec<_>>()
        .join(", ");
    repo.write(
        ".agents/config.yaml",
        format!(
            "default_agent: a\nagents:\n  a:\n    adapter: {adapter}\n    command: {}\n    model: {}\n    args: [{args}]\n\
             worktree_dir: {}\nkill_grace: 2s\n{config}",
            yaml_str(&program.display().to_string()),
            yaml_str(model),
            yaml_str(&repo.wt.display().to_string()),
        ),
    );
    repo
}

/// Whether the run's agent was confined by Landlock (its `sandbox` event).
pub fn confined(events: &[Value]) -> bool {
    of_type(events, "sandbox")
        .first()
        .is_some_and(|s| s["enforcement"] == "landlock")
}

/// `git agent run <id> --json` with the provider's variables; returns the
/// exit code, the run object, stderr and the wall time.
pub fn run(repo: &TestRepo, id: &str, env: &[(String, String)]) -> (i32, Value, String, Duration) {
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
pub fn dump(repo: &TestRepo, run: &Value, stderr: &str, server: &FakeModel) -> String {
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

pub fn activity(events: &[Value], attempt: u64) -> Value {
    of_type(events, "agent_activity")
        .into_iter()
        .find(|e| e["attempt"] == attempt)
        .cloned()
        .unwrap_or(Value::Null)
}

pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Copies an attempt's stdout to `$GIT_AGENT_RECORD_STREAMS/<name>` (to refresh fixtures).
pub fn record(repo: &TestRepo, run: &Value, attempt: u32, name: &str) {
    if let Some(dir) = std::env::var_os("GIT_AGENT_RECORD_STREAMS") {
        let id = run["run_id"].as_str().unwrap_or("");
        let from = repo.run_dir(id).join(format!("agent-{attempt}.stdout"));
        let _ = std::fs::copy(from, Path::new(&dir).join(name));
    }
}

pub fn timing(cli: &str, case: &str, took: Duration) {
    eprintln!("TIMING {cli} {case}: {:.1}s", took.as_secs_f64());
}

/// One CLI, as the shared cases drive it.
pub struct Setup {
    pub name: &'static str,
    pub adapter: &'static str,
    pub model: &'static str,
    pub args: Vec<&'static str>,
    /// Provider variables for git-agent's environment (the adapter passes them on).
    pub env: fn(&TestRepo, &FakeModel) -> Vec<(String, String)>,
    /// Only requests with tools consume a turn (CLIs that ask for titles).
    pub tools_only: bool,
    /// A turn running a shell command (`None`: the CLI runs none).
    pub shell: Option<fn(&str) -> Turn>,
    /// (a): run `ls` and `sh test.sh` (where it has a shell), edit
    /// src/greet.txt to `hello fixed`, run the check, say "Changed the greeting."
    pub success: fn() -> Vec<Turn>,
    /// (b): edit README.md.
    pub outside: fn() -> Vec<Turn>,
    /// (c): attempt 1 writes `hello world` and says "First try."; attempt 2 `hello fixed`.
    pub retry: fn() -> Vec<Turn>,
    /// What the command line (or environment) holds without the sandbox.
    pub narrow: &'static [&'static str],
    /// What it never holds without the sandbox.
    pub not_narrow: &'static [&'static str],
    /// Without the sandbox, it refuses `sh test.sh` (Codex runs it in its
    /// own sandbox instead).
    pub narrow_refuses: bool,
}

impl Setup {
    pub fn server(&self, turns: Vec<Turn>) -> FakeModel {
        if self.tools_only {
            FakeModel::start_tools_only(turns)
        } else {
            FakeModel::start(turns)
        }
    }
}

/// What the attempt's requests to the model were: their number, the
/// bytes of the first and of all, and the messages of the first.
pub fn requests_of(requests: &[crate::fake_model::Request]) -> String {
    let model: Vec<_> = requests.iter().filter(|r| r.turn.is_some()).collect();
    let bytes: usize = model.iter().map(|r| r.body.len()).sum();
    let Some(first) = model.first() else {
        return "no requests".into();
    };
    format!(
        "{} requests, the first {} bytes and {} messages, {} bytes in all",
        model.len(),
        first.body.len(),
        messages(&first.body),
        bytes
    )
}

/// The messages (chat, Anthropic) or input items (responses) of a request.
pub fn messages(body: &str) -> usize {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["messages"]
        .as_array()
        .or(v["input"].as_array())
        .map_or(0, Vec::len)
}

/// A finished run of a shared case, for assertions.
pub struct Finished {
    pub code: i32,
    pub run: Value,
    pub events: Vec<Value>,
    pub server: FakeModel,
    pub repo: TestRepo,
    /// Everything, for assertion messages.
    pub why: String,
}

impl Finished {
    pub fn activity(&self, attempt: u64) -> Value {
        activity(&self.events, attempt)
    }

    /// The model requests from the first that carries `needle` on.
    pub fn requests_from(&self, needle: &str) -> Vec<crate::fake_model::Request> {
        let requests = self.server.requests();
        let at = requests
            .iter()
            .position(|r| r.body.contains(needle))
            .unwrap_or_else(|| panic!("no request carries {needle:?}\n{}", self.why));
        requests[at..].to_vec()
    }
}

/// How a shared case runs.
pub struct Case<'a> {
    pub task: &'a str,
    pub brief: crate::support::Brief,
    pub turns: Vec<Turn>,
    /// Appended to the config (`sandbox: {mode: off}`).
    pub config: &'a str,
    /// More variables for git-agent's environment.
    pub env: Vec<(String, String)>,
    /// Runs this instead of the CLI (a wrapper), when set.
    pub program: Option<PathBuf>,
}

impl Case<'_> {
    pub fn new(task: &str, brief: crate::support::Brief, turns: Vec<Turn>) -> Case<'_> {
        Case {
            task,
            brief,
            turns,
            config: "",
            env: Vec::new(),
            program: None,
        }
    }
}

/// Runs `case` with `s`'s CLI (`None`: it is not installed here); `label`
/// names the timing line.
pub fn run_case(s: &Setup, case: Case<'_>, label: &str) -> Option<Finished> {
    let program = cli(s.name)?;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = s.server(case.turns);
    let program = case.program.unwrap_or(program);
    let repo = repo_with(s.adapter, &program, s.model, &s.args, case.config);
    repo.brief(case.task, &case.brief);
    repo.commit_all("config");
    let mut env = (s.env)(&repo, &server);
    env.extend(case.env);
    let (code, run, stderr, took) = run(&repo, case.task, &env);
    timing(s.name, label, took);
    let why = dump(&repo, &run, &stderr, &server);
    let id = run["run_id"].as_str().unwrap_or("").to_string();
    let events = repo.events(&id);
    Some(Finished {
        code,
        run,
        events,
        server,
        repo,
        why,
    })
}

/// A brief whose check fails on attempt 1 (its output carries [`MARKER`])
/// and passes once the greeting is fixed.
pub fn retry_brief() -> crate::support::Brief {
    crate::support::Brief::new(&["src/**"])
        .title("Fix the greeting, eventually")
        .check("greeting", &check_fails_first())
        .attempts(2)
        .timeout("280s")
}

/// The retry case, run and judged as far as every way of it agrees: two
/// attempts, the check failing then passing, its output in a request of
/// attempt 2. Prints the figures of the requests of each attempt.
pub fn retried(s: &Setup, case: Case<'_>, label: &str) -> Option<Finished> {
    let f = run_case(s, case, label)?;
    let why = &f.why;
    assert_eq!(f.code, 0, "{why}");
    assert_eq!(f.run["outcome"], "succeeded", "{why}");
    assert_eq!(f.run["attempts"], 2, "{why}");
    assert_eq!(
        f.repo.show("agent/retry", "src/greet.txt").as_deref(),
        Some("hello fixed\n")
    );
    let checks: Vec<(u64, bool)> = of_type(&f.events, "check_finished")
        .iter()
        .map(|c| {
            (
                c["attempt"].as_u64().unwrap_or(0),
                c["passed"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(checks, [(1, false), (2, true)], "{why}");
    let all = f.server.requests();
    let second = f.requests_from(MARKER);
    assert!(
        second.len() < all.len()
            && all[..all.len() - second.len()]
                .iter()
                .any(|r| r.turn.is_some()),
        "the feedback arrived before attempt 1 ran\n{why}"
    );
    let first = &all[..all.len() - second.len()];
    eprintln!(
        "REQUESTS {} {label}: attempt 1: {}; attempt 2: {}",
        s.name,
        requests_of(first),
        requests_of(&second)
    );
    assert!(
        !f.activity(1).is_null() && !f.activity(2).is_null(),
        "{why}"
    );
    Some(f)
}
