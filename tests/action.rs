//! The GitHub Action (`action.yml`): its metadata parses as an action
//! (zizmor's `github-actions-models`), inputs reach scripts only through the
//! environment, and its run step — executed here the way the runner does,
//! `bash --noprofile --norc -eo pipefail <file>`, with the environment the
//! runner would build from the step's `env:` — runs real briefs in a real
//! repository and writes the step outputs and job summary in the runner's
//! formats. GitHub's runner itself can't run here; the install step is
//! exercised on its "already on PATH" branch only.

#![expect(
    clippy::unwrap_used,
    reason = "fake servers' helpers: a panic there is the test failing"
)]

mod fake_github;
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use github_actions_models::action::{Action, Runs, StepBody};
use github_actions_models::common::expr::LoE;
use github_actions_models::common::EnvValue;
use serde_json::Value;
use support::{describe, Brief, TestRepo, BIN};

fn action() -> Action {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("action.yml")).expect("an action")
}

/// A composite step: its id, its script and its `env:` (unevaluated).
struct RunStep {
    id: String,
    run: String,
    env: Vec<(String, String)>,
}

fn steps(action: &Action) -> Vec<RunStep> {
    let Runs::Composite(composite) = &action.runs else {
        panic!("a composite action");
    };
    composite
        .steps
        .iter()
        .map(|step| {
            let StepBody::Run { run, .. } = &step.body else {
                panic!("only run steps: no third-party code in the action");
            };
            let LoE::Literal(env) = &step.env else {
                panic!("a literal env map");
            };
            let env = env
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        EnvValue::String(s) => s.clone(),
                        other => panic!("env {k} is not a string: {other:?}"),
                    };
                    (k.clone(), v)
                })
                .collect();
            RunStep {
                id: step.id.clone().expect("every step has an id"),
                run: run.clone(),
                env,
            }
        })
        .collect()
}

#[test]
fn inputs_reach_scripts_only_through_the_environment() {
    let action = action();
    assert_eq!(action.name.as_deref(), Some("git-agent"));
    let steps = steps(&action);
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["install", "namespaces", "run"]);
    let mut used = Vec::new();
    for RunStep { id, run, env } in &steps {
        assert!(
            !run.contains("${{"),
            "step {id}: an expression inside `run:` is a script injection"
        );
        for (name, value) in env {
            let expr = value
                .strip_prefix("${{ ")
                .and_then(|v| v.strip_suffix(" }}"))
                .unwrap_or_else(|| panic!("step {id}: env {name} = {value} is not one expression"));
            if let Some(input) = expr.strip_prefix("inputs.") {
                used.push(input.to_string());
            }
        }
    }
    for input in action.inputs.keys() {
        assert!(
            used.contains(input) || input == "working-directory",
            "input `{input}` is never passed to a step"
        );
    }
    for (name, output) in &action.outputs {
        assert_eq!(
            output.value.as_deref(),
            Some(format!("${{{{ steps.run.outputs.{name} }}}}").as_str()),
            "output {name}"
        );
    }
}

/// The runner's `$GITHUB_OUTPUT` format: `name=value` or
/// `name<<DELIMITER\n...\nDELIMITER`.
fn parse_outputs(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}

struct Step {
    output: Output,
    outputs: HashMap<String, String>,
    summary: String,
}

/// Runs the `run` step's script as the runner would, with `inputs`.
fn run_step(repo: &TestRepo, inputs: &[(&str, &str)]) -> Step {
    run_step_in_event(repo, inputs, &[])
}

/// As [`run_step`], with the values the runner gives `${{ github.* }}`
/// expressions, by the step's env name (`PR_HEAD_SHA`, …).
fn run_step_in_event(repo: &TestRepo, inputs: &[(&str, &str)], event: &[(&str, &str)]) -> Step {
    let steps = steps(&action());
    let RunStep {
        run: script, env, ..
    } = steps.iter().find(|s| s.id == "run").expect("run step");
    let script_file = repo.tmp.join("step.sh");
    std::fs::write(&script_file, script).unwrap();
    let outputs = repo.tmp.join("github_output");
    let summary = repo.tmp.join("step_summary");
    std::fs::write(&outputs, "").unwrap();
    std::fs::write(&summary, "").unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script_file)
        .current_dir(&repo.root)
        .env_clear()
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("HOME", &repo.home)
        .env("XDG_CACHE_HOME", &repo.cache)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("FIXTURE_OUT", &repo.out)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .stdin(Stdio::null());
    // The runner evaluates each `${{ inputs.x }}` of the step's env.
    for (name, value) in env {
        if let Some(input) = value
            .strip_prefix("${{ inputs.")
            .and_then(|v| v.strip_suffix(" }}"))
        {
            let given = inputs.iter().find(|(k, _)| *k == input).map(|(_, v)| *v);
            let default = action().inputs[input].default.clone().unwrap_or_default();
            let v = given.map(str::to_string).unwrap_or(default);
            // `token` defaults to `${{ github.token }}`: none here.
            if !v.starts_with("${{") {
                cmd.env(name, v);
            }
        }
    }
    // Outside a pull request event, `${{ github.* }}` values are empty.
    for (name, value) in env {
        if value.starts_with("${{ github.") {
            cmd.env(name, "");
        }
    }
    for (name, value) in event {
        let declared = env.iter().find(|(n, _)| n == name);
        assert!(
            declared.is_some_and(|(_, v)| v.starts_with("${{ github.")),
            "{name} is not a github.* value of the step"
        );
        cmd.env(name, value);
    }
    let output = cmd.output().expect("bash");
    Step {
        output,
        outputs: parse_outputs(&std::fs::read_to_string(&outputs).unwrap()),
        summary: std::fs::read_to_string(&summary).unwrap(),
    }
}

fn repo_with_two_briefs() -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("batch.sh");
    repo.brief("ok-a", &Brief::new(&["ok-a.txt"]).title("Write a"));
    repo.brief("stray-b", &Brief::new(&["stray-b.txt"]).title("Write b"));
    repo.commit_all("briefs");
    repo
}

#[test]
fn the_run_step_runs_the_briefs_and_writes_outputs_and_summary() {
    let repo = repo_with_two_briefs();
    let step = run_step(&repo, &[]);
    let stderr = String::from_utf8_lossy(&step.output.stderr);
    assert_eq!(
        step.output.status.code(),
        Some(3),
        "an escalated run fails the step; stderr:\n{stderr}"
    );
    assert_eq!(step.outputs["outcome"], "escalated", "{:?}", step.outputs);
    let runs: Vec<Value> = serde_json::from_str(&step.outputs["runs"]).expect("runs JSON");
    let mut outcomes: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["task"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("ok-a".to_string(), "succeeded".to_string()),
            ("stray-b".to_string(), "escalated".to_string())
        ]
    );
    assert_eq!(step.outputs["pull-requests"], "");
    // The summary: a row per run, then each decision log folded.
    assert!(
        step.summary.starts_with("## git-agent\n"),
        "{}",
        step.summary
    );
    assert!(
        step.summary
            .contains("| `ok-a` | ✅ succeeded | 1/1 | `agent/ok-a` | - |"),
        "{}",
        step.summary
    );
    assert!(step.summary.contains("| `stray-b` | ✋ escalated |"));
    assert_eq!(step.summary.matches("<details>").count(), 2);
    assert!(
        step.summary.contains("outside-stray-b.txt"),
        "the log names the stray path"
    );
    assert!(repo.rev_opt("agent/ok-a").is_some());
}

#[test]
fn allow_escalated_passes_the_step_and_tasks_select_briefs() {
    let repo = repo_with_two_briefs();
    let step = run_step(&repo, &[("tasks", "stray-b"), ("allow-escalated", "true")]);
    let stdout = String::from_utf8_lossy(&step.output.stdout);
    assert_eq!(step.output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("::warning title=git-agent::"), "{stdout}");
    let runs: Vec<Value> = serde_json::from_str(&step.outputs["runs"]).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["task"], "stray-b");
    assert!(
        repo.rev_opt("agent/ok-a").is_none(),
        "ok-a was not asked for"
    );
}

#[test]
fn inputs_are_data_not_shell() {
    let repo = repo_with_two_briefs();
    let marker = repo.tmp.join("pwned");
    let evil = format!(
        "ok-a $(touch {m}) `touch {m}`; touch {m}",
        m = marker.display()
    );
    let step = run_step(&repo, &[("tasks", &evil), ("args", "; touch x")]);
    assert!(!marker.exists(), "an input ran as a command");
    assert!(!repo.root.join("x").exists());
    assert_eq!(
        step.output.status.code(),
        Some(2),
        "unknown task ids are bad input: {}",
        String::from_utf8_lossy(&step.output.stderr)
    );
}

#[test]
fn a_token_left_in_git_config_by_checkout_stops_the_step() {
    let repo = repo_with_two_briefs();
    // What actions/checkout writes with persist-credentials (the default).
    repo.git(&[
        "config",
        "--local",
        "http.https://github.com/.extraheader",
        "AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX3NlY3JldA==",
    ]);
    let step = run_step(&repo, &[]);
    let stdout = String::from_utf8_lossy(&step.output.stdout);
    assert_eq!(step.output.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("persist-credentials: false"), "{stdout}");
    assert!(step.outputs.is_empty(), "no run started");
    assert!(repo.rev_opt("agent/ok-a").is_none());
}

#[test]
fn outside_actions_nothing_is_written() {
    let repo = repo_with_two_briefs();
    let outputs = repo.tmp.join("github_output");
    let summary = repo.tmp.join("step_summary");
    // The files are named, but GITHUB_ACTIONS is not `true`.
    let out = repo.run_env(
        &["run", "ok-a"],
        &[
            ("GITHUB_OUTPUT", outputs.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!outputs.exists() && !summary.exists());
}

#[test]
fn review_mode_judges_the_pull_request_head_against_its_base() {
    let repo = repo_with_two_briefs();
    // What actions/checkout with fetch-depth 0 leaves: the base branch as
    // a remote-tracking ref, and the pull request's head commit.
    let main = repo.rev("main");
    repo.git(&["update-ref", "refs/remotes/origin/main", &main]);
    repo.git(&["checkout", "-q", "-b", "pr"]);
    repo.write("ok-a.txt", "done\n");
    repo.commit_all("write a\n\nAgent-Task: ok-a");
    let head = repo.rev("pr");
    repo.git(&["checkout", "-q", "main"]);
    let step = run_step_in_event(
        &repo,
        &[("mode", "review")],
        &[("PR_HEAD_SHA", &head), ("PR_BASE_REF", "main")],
    );
    let stderr = String::from_utf8_lossy(&step.output.stderr);
    // No origin remote here: the checks cannot be posted, and the review
    // step (`--post-required`) fails rather than pass without them; the
    // verdict and the report are still the step's outputs.
    assert_eq!(step.output.status.code(), Some(1), "{stderr}");
    assert_eq!(step.outputs["verdict"], "pass", "{:?}", step.outputs);
    let report: Value = serde_json::from_str(&step.outputs["report"]).unwrap();
    assert_eq!(report["head"], head.as_str());
    assert_eq!(report["task"], "ok-a");
    assert!(
        step.summary.starts_with("## git-agent review\n"),
        "{}",
        step.summary
    );
    assert!(step.summary.contains("verdict: pass"), "{}", step.summary);
    assert!(stderr.contains("could not post the review"), "{stderr}");

    let step = run_step(&repo, &[("mode", "deploy")]);
    assert_eq!(step.output.status.code(), Some(2));
}

#[test]
fn address_review_mode_needs_the_pull_request_and_passes_it_on() {
    let repo = repo_with_two_briefs();
    let step = run_step(&repo, &[("mode", "address-review"), ("tasks", "ok-a")]);
    assert_eq!(step.output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&step.output.stdout).contains("needs a pull request event"));
    // With the event's number, git-agent is asked to read the comments of
    // #7: here there is no `origin` to ask, which it says.
    let step = run_step_in_event(
        &repo,
        &[("mode", "address-review"), ("tasks", "ok-a")],
        &[("PR_NUMBER", "7")],
    );
    let stderr = String::from_utf8_lossy(&step.output.stderr);
    assert_eq!(step.output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no `origin` remote"), "{stderr}");
    assert!(repo.rev_opt("agent/ok-a").is_none(), "nothing ran");
}

// ---------------------------------------------------------------------------
// The install step: a prebuilt binary of the action's own version,
// downloaded from a release and checked against its SHA256SUMS; cargo only
// when there is none.

/// The runner's name for this machine's architecture, and the target's.
fn arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("ARM64", "aarch64"),
        _ => ("X64", "x86_64"),
    }
}

fn crate_version() -> String {
    let toml =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    toml.lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap()
        .to_string()
}

/// A release of the binary under test, as `.github/workflows/release.yml`
/// makes one: `<dir>/octo/git-agent/releases/download/v<version>/` with the
/// tarball and `SHA256SUMS`. Returns the release's directory.
fn release(dir: &Path) -> std::path::PathBuf {
    let version = crate_version();
    let at = dir.join(format!("octo/git-agent/releases/download/v{version}"));
    std::fs::create_dir_all(&at).unwrap();
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(BIN, stage.join("git-agent")).unwrap();
    let name = format!("git-agent-{version}-{}-unknown-linux-gnu.tar.gz", arch().1);
    let sh = |script: &str| {
        let st = Command::new("sh")
            .args(["-c", script])
            .current_dir(&at)
            .status()
            .unwrap();
        assert!(st.success(), "{script}");
    };
    sh(&format!(
        "tar -czf {name} -C '{}' git-agent",
        stage.display()
    ));
    sh(&format!("sha256sum {name} > SHA256SUMS"));
    at
}

/// Serves the files under `root` on 127.0.0.1 (GET; 404 for anything
/// else), counting the requests.
fn serve_files(root: std::path::PathBuf) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut line = String::new();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let file = root.join(&path);
            let reply = match std::fs::read(&file) {
                Ok(body) if !path.contains("..") => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    (port, hits)
}

struct Install {
    output: Output,
    outputs: HashMap<String, String>,
    /// Whether the fake `cargo` on PATH was asked to build.
    built: bool,
}

/// Runs the install step as the runner would, with no git-agent on PATH,
/// releases at `http://127.0.0.1:<port>` and a fake `cargo` that records
/// that it was asked and installs the binary under test.
fn install_step(repo: &TestRepo, port: u16) -> Install {
    let steps = steps(&action());
    let step = steps
        .iter()
        .find(|s| s.id == "install")
        .expect("install step");
    let action_dir = repo.tmp.join("action");
    std::fs::create_dir_all(&action_dir).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
        action_dir.join("Cargo.toml"),
    )
    .unwrap();
    let bin = repo.tmp.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let built = repo.tmp.join("cargo-was-asked");
    let cargo = format!(
        "#!/bin/sh\ntouch '{}'\nwhile [ \"$1\" != --root ]; do shift; done\nmkdir -p \"$2/bin\" && cp '{BIN}' \"$2/bin/git-agent\"\n",
        built.display()
    );
    std::fs::write(bin.join("cargo"), cargo).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = repo.tmp.join("install.sh");
    std::fs::write(&script, &step.run).unwrap();
    let outputs = repo.tmp.join("install_output");
    std::fs::write(&outputs, "").unwrap();
    let values = [
        ("ACTION_PATH", action_dir.display().to_string()),
        ("ACTION_REPO", "octo/git-agent".to_string()),
        ("SERVER_URL", format!("http://127.0.0.1:{port}")),
        ("RUNNER_ARCH", arch().0.to_string()),
        (
            "TOOL_CACHE",
            repo.tmp.join("toolcache").display().to_string(),
        ),
        ("INPUT_RELEASE_URL", String::new()),
    ];
    let mut cmd = Command::new("bash");
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", &repo.home)
        .env("GITHUB_OUTPUT", &outputs)
        .stdin(Stdio::null());
    for (name, _) in &step.env {
        let value = values
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not simulated"));
        cmd.env(name, &value.1);
    }
    let output = cmd.output().unwrap();
    Install {
        output,
        outputs: parse_outputs(&std::fs::read_to_string(&outputs).unwrap()),
        built: built.exists(),
    }
}

#[test]
fn the_install_step_downloads_the_release_of_its_version_and_verifies_it() {
    let repo = TestRepo::new();
    let served = repo.tmp.join("served");
    release(&served);
    let (port, _) = serve_files(served);
    let step = install_step(&repo, port);
    let stdout = String::from_utf8_lossy(&step.output.stdout);
    assert!(step.output.status.success(), "{}", describe(&step.output));
    assert!(!step.built, "cargo was not needed");
    assert!(stdout.contains("checksum verified"), "{stdout}");
    let bin = Path::new(&step.outputs["bin-dir"]).join("git-agent");
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("git-agent {}", crate_version())
    );
}

#[test]
fn a_binary_whose_checksum_does_not_match_is_refused() {
    let repo = TestRepo::new();
    let served = repo.tmp.join("served");
    let at = release(&served);
    // The tarball changed after SHA256SUMS was written (a tampered or
    // broken upload).
    let sums = std::fs::read_to_string(at.join("SHA256SUMS")).unwrap();
    let name = sums.split_whitespace().nth(1).unwrap().to_string();
    let mut bytes = std::fs::read(at.join(&name)).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(at.join(&name), bytes).unwrap();
    let (port, _) = serve_files(served);
    let step = install_step(&repo, port);
    let stdout = String::from_utf8_lossy(&step.output.stdout);
    assert_eq!(
        step.output.status.code(),
        Some(1),
        "{}",
        describe(&step.output)
    );
    assert!(
        stdout.contains("does not match the release's SHA256SUMS: refusing it"),
        "{stdout}"
    );
    assert!(!step.built, "nothing is built in its place");
    assert!(!step.outputs.contains_key("bin-dir"));
    assert!(!repo
        .tmp
        .join("toolcache/git-agent")
        .join(crate_version())
        .join("bin/git-agent")
        .exists());
}

#[test]
fn without_a_release_the_step_builds_with_cargo() {
    let repo = TestRepo::new();
    let empty = repo.tmp.join("served");
    std::fs::create_dir_all(&empty).unwrap();
    let (port, hits) = serve_files(empty);
    let step = install_step(&repo, port);
    let stdout = String::from_utf8_lossy(&step.output.stdout);
    assert!(step.output.status.success(), "{}", describe(&step.output));
    assert!(stdout.contains("no prebuilt binary"), "{stdout}");
    assert!(step.built, "cargo built it");
    assert!(
        hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the release was asked for"
    );
    assert!(Path::new(&step.outputs["bin-dir"])
        .join("git-agent")
        .exists());
}

#[test]
fn plan_mode_sets_the_matrix_and_report_mode_summarizes_records_from_elsewhere() {
    let repo = repo_with_two_briefs();
    let step = run_step(&repo, &[("mode", "plan")]);
    assert!(step.output.status.success(), "{}", describe(&step.output));
    let matrix: Value = serde_json::from_str(&step.outputs["matrix"]).unwrap();
    assert_eq!(
        matrix,
        serde_json::json!({"include": [
            {"chain": "ok-a", "tasks": "ok-a"},
            {"chain": "stray-b", "tasks": "stray-b"},
        ]})
    );
    // A job's records, as the summary job downloads them.
    let out = repo.run(&["run", "ok-a"]);
    assert!(out.status.success(), "{}", describe(&out));
    let artifacts = repo.tmp.join("git-agent-runs/git-agent-runs-0");
    std::fs::create_dir_all(&artifacts).unwrap();
    let st = Command::new("cp")
        .arg("-r")
        .arg(repo.root.join(".git/agent/runs"))
        .arg(&artifacts)
        .status()
        .unwrap();
    assert!(st.success());
    let dirs = repo.tmp.join("git-agent-runs").display().to_string();
    let step = run_step(&repo, &[("mode", "report"), ("args", &dirs)]);
    assert!(step.output.status.success(), "{}", describe(&step.output));
    assert!(
        step.summary
            .contains("| `ok-a` | ✅ succeeded | 1/1 | `agent/ok-a` | - |"),
        "{}",
        step.summary
    );
}

/// `.github/workflows/agents.yml`, the fan-out: it parses as a workflow, and
/// its jobs hand the matrix, the tasks and the run records on as the action
/// expects them.
#[test]
fn the_fan_out_workflow_plans_runs_each_chain_and_reports_them_all() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/agents.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let _: github_actions_models::workflow::Workflow =
        serde_yaml::from_str(&text).expect("a workflow");
    let w: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let on = &w["on"];
    assert!(on.get("workflow_call").is_some() && on.get("workflow_dispatch").is_some());
    let jobs = &w["jobs"];
    let action_step = |job: &str| -> serde_yaml::Value {
        jobs[job]["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|s| s["uses"].as_str() == Some("./git-agent"))
            .cloned()
            .unwrap_or_else(|| panic!("{job} runs the action"))
    };
    assert_eq!(action_step("plan")["with"]["mode"], "plan");
    assert_eq!(
        jobs["plan"]["outputs"]["matrix"],
        "${{ steps.plan.outputs.matrix }}"
    );
    assert_eq!(jobs["run"]["needs"], "plan");
    assert_eq!(
        jobs["run"]["strategy"]["matrix"],
        "${{ fromJSON(needs.plan.outputs.matrix) }}"
    );
    assert_eq!(jobs["run"]["strategy"]["fail-fast"], false);
    assert_eq!(action_step("run")["with"]["tasks"], "${{ matrix.tasks }}");
    let upload = jobs["run"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .unwrap();
    assert_eq!(upload["if"], "always()");
    assert!(upload["with"]["name"]
        .as_str()
        .unwrap()
        .starts_with("git-agent-runs-"));
    assert!(upload["with"]["path"]
        .as_str()
        .unwrap()
        .contains(".git/agent/runs/*/run.json"));
    assert_eq!(
        upload["with"]["include-hidden-files"], true,
        "the records are under .git"
    );
    let download = &jobs["summary"]["steps"][1];
    assert_eq!(download["with"]["pattern"], "git-agent-runs-*");
    assert_eq!(action_step("summary")["with"]["mode"], "report");
    assert_eq!(
        action_step("summary")["with"]["args"],
        download["with"]["path"]
    );
    // Only the jobs that need it may write.
    assert_eq!(
        w["permissions"],
        serde_yaml::from_str::<serde_yaml::Value>("{}").unwrap()
    );
    assert_eq!(jobs["plan"]["permissions"]["contents"], "read");
    assert_eq!(jobs["run"]["permissions"]["contents"], "write");
}

/// `.github/workflows/release.yml` makes the release the install step
/// downloads: the same targets, asset names and checksum file.
#[test]
fn the_release_workflow_makes_what_the_install_step_downloads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let _: github_actions_models::workflow::Workflow =
        serde_yaml::from_str(&text).expect("a workflow");
    let w: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(w["on"]["push"]["tags"][0], "v*");
    let targets: Vec<&str> = w["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"]
    );
    // The names the install step asks for: git-agent-<version>-<arch>-unknown-linux-gnu.tar.gz
    // holding `git-agent`, listed in SHA256SUMS as sha256sum writes it.
    assert!(
        text.contains(r#"tar -czf "dist/git-agent-$version-$TARGET.tar.gz" -C stage git-agent"#)
    );
    assert!(text.contains("sha256sum git-agent-*.tar.gz > SHA256SUMS"));
    let install = steps(&action())
        .into_iter()
        .find(|s| s.id == "install")
        .unwrap()
        .run;
    assert!(install.contains(r#"name="git-agent-$version-$arch-unknown-linux-gnu.tar.gz""#));
    assert!(install.contains(r#""$base/v$version/SHA256SUMS""#));
}

/// Comment mode, on GitHub's own `issue_comment` example: the owner's
/// `/agent run ok-a` is run, and answered with reactions and a comment.
#[test]
fn comment_mode_runs_the_slash_command_and_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, fake) = rt.block_on(fake_github::fake_github());
    let repo = repo_with_two_briefs();
    let (_remote, git) = fake_github::bare_remote(&repo.tmp);
    repo.config_with(
        "batch.sh",
        &format!("github:\n  api_url: {}\n", support::yaml_str(&server.uri())),
    );
    repo.commit_all("the fake GitHub");
    repo.git(&[
        "remote",
        "add",
        "origin",
        &format!("http://127.0.0.1:{}/octo/hello.git", git.port),
    ]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks/issue_comment.created.json");
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    event["comment"]["body"] = serde_json::json!("/agent run ok-a");
    let path = repo.tmp.join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    let step = run_step_in_event(
        &repo,
        &[("mode", "comment"), ("token", fake_github::TOKEN)],
        &[("EVENT_PATH", path.to_str().unwrap())],
    );
    assert!(step.output.status.success(), "{}", describe(&step.output));
    assert!(repo.rev_opt("agent/ok-a").is_some(), "ok-a ran");
    assert!(
        repo.rev_opt("agent/stray-b").is_none(),
        "only what was asked"
    );
    assert!(
        step.summary.contains("| `ok-a` | ✅ succeeded |"),
        "{}",
        step.summary
    );
    let reactions: Vec<String> = fake.state().reactions.iter().map(|r| r.1.clone()).collect();
    assert_eq!(reactions, ["eyes", "+1"]);
    let comments = fake.state().comments.clone();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0].1.contains("`ok-a`: **succeeded**"),
        "{}",
        comments[0].1
    );
    // A comment with no command: the step does nothing, quietly.
    event["comment"]["body"] = serde_json::json!("Thanks!");
    std::fs::write(&path, event.to_string()).unwrap();
    let step = run_step_in_event(
        &repo,
        &[("mode", "comment"), ("token", fake_github::TOKEN)],
        &[("EVENT_PATH", path.to_str().unwrap())],
    );
    assert!(step.output.status.success(), "{}", describe(&step.output));
    assert_eq!(fake.state().comments.len(), 1);
}
