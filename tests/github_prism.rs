//! A contract test of the GitHub client: the real `GitHub` forge, call by
//! call, against Prism (`@stoplight/prism-cli`), a mock server that serves
//! an OpenAPI document and rejects every request that does not conform to
//! it. Prism stands in for GitHub because GitHub cannot be reached from
//! tests (no network, no account, no token to spend on test pull requests).
//!
//! The document is `tests/fixtures/github/openapi-prism.json`, made by
//! `generate_prism.py` from GitHub's official OpenAPI description: the
//! operations git-agent calls, with their parameters and request bodies as
//! GitHub describes them (bodies closed to unknown fields) and the official
//! response examples. Prism runs with `--errors`: a request that violates
//! the description gets a 422 (or 400) listing the violations instead of
//! the example, so every call below that succeeds shows our requests
//! conform, and deliberately invalid requests show that Prism really checks.
//!
//! Prism is found at `$GIT_AGENT_TEST_AGENTS_DIR/npm/node_modules/.bin/prism`
//! (installed by `.ci/install-agents.sh`) or on `PATH`. When it is missing
//! the tests fail under `CI=true`, and are skipped with a notice otherwise.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use git_agent::forge::github::{GitHub, RetryPolicy};
use git_agent::forge::{
    CheckKind, CheckReport, Forge, ForgeError, Issue, IssueSpec, PrSpec, PullRequest, RepoId,
    ReviewComment,
};
use serde_json::{json, Value};

/// The longest Prism may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(90);

/// What Prism logs for each request that passed validation.
const PASSED: &str = "The request passed the validation rules";

fn document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github/openapi-prism.json")
}

/// Prism's path, or `None` (with a notice) when it is not installed.
/// Under `CI=true` a missing Prism fails the test.
fn prism_program() -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let installed = std::env::var_os("GIT_AGENT_TEST_AGENTS_DIR")
        .map(|d| PathBuf::from(d).join("npm/node_modules/.bin/prism"));
    if let Some(p) = installed.as_ref().filter(|p| p.exists()) {
        return Some(p.clone());
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("prism"))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let why = match installed {
        Some(p) => format!(
            "prism is neither at {} (GIT_AGENT_TEST_AGENTS_DIR) nor on PATH: .ci/install-agents.sh must install it; see its output",
            p.display()
        ),
        None => "prism is not on PATH and GIT_AGENT_TEST_AGENTS_DIR is not set: run .ci/install-agents.sh and export what it prints".to_string(),
    };
    assert!(
        !ci,
        "{why} (CI=true: the Prism contract test may not be skipped)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// A `prism mock` child in its own process group, killed (group and all)
/// on drop. Its output goes to a file, shown when something fails.
struct Prism {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: Rc<tempfile::TempDir>,
}

impl Prism {
    /// Starts Prism on a free port of 127.0.0.1 serving the committed
    /// document, or `variant` of it, and waits until it listens.
    fn start(program: &Path, variant: Option<&Value>) -> Prism {
        let dir = Rc::new(tempfile::tempdir().expect("tempdir"));
        let doc = match variant {
            Some(v) => {
                let p = dir.path().join("openapi.json");
                std::fs::write(&p, serde_json::to_vec(v).expect("json")).expect("write variant");
                p
            }
            None => document(),
        };
        let log = dir.path().join("prism.log");
        let mut output = String::new();
        // A port taken between our probe and Prism's bind: try another.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let out = std::fs::File::create(&log).expect("prism log");
            let err = out.try_clone().expect("prism log");
            let child = Command::new(program)
                .arg("mock")
                .arg(&doc)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--errors"])
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let mut prism = Prism {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log: log.clone(),
                _dir: dir.clone(),
            };
            match prism.wait_ready(port) {
                Ok(()) => return prism,
                Err(out) => output = out,
            }
            if !output.contains("EADDRINUSE") {
                break;
            }
        }
        panic!(
            "Prism did not start ({} mock {} -h 127.0.0.1 -p PORT --errors); its output:\n{output}",
            program.display(),
            doc.display()
        )
    }

    /// Waits for the "listening" line and an accepted connection; the
    /// output so far when Prism exits or takes longer than `START_LIMIT`.
    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait prism") {
                return Err(format!("(exited: {status})\n{}", self.output()));
            }
            if self.output().contains("Prism is listening on")
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Ok(());
            }
            if start.elapsed() > START_LIMIT {
                return Err(format!(
                    "(not listening after {START_LIMIT:?})\n{}",
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Prism's output once `done` holds of it (its log may trail its
    /// responses a little), or after a few seconds.
    fn output_when(&self, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let output = self.output();
            if done(&output) || start.elapsed() > Duration::from_secs(5) {
                return output;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts how many requests passed Prism's validation.
    fn assert_passed(&self, want: usize) {
        let output = self.output_when(|o| o.matches(PASSED).count() >= want);
        assert_eq!(
            output.matches(PASSED).count(),
            want,
            "requests that passed Prism's validation (`{PASSED}`); its output:\n{output}"
        );
    }

    /// The value of a forge call, or a panic with Prism's output (its
    /// validator says what was wrong with the request).
    fn ok<T>(&self, what: &str, r: Result<T, ForgeError>) -> T {
        r.unwrap_or_else(|e| panic!("{what}: {e}\nPrism's output:\n{}", self.output()))
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn client(prism: &Prism) -> GitHub {
    GitHub::new(
        &prism.url,
        RepoId {
            host: "github.com".into(),
            owner: "octo".into(),
            repo: "hello".into(),
        },
        "ghp_testTOKEN0123456789abcdef".into(),
        // No retries: Prism answers at once, and a rejection must show.
        RetryPolicy {
            retries: 0,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        },
    )
    .expect("client")
}

fn spec(draft: bool) -> PrSpec {
    PrSpec {
        head: "agent/hello".into(),
        // The official example's pull request targets `master`.
        base: "master".into(),
        title: "Say hello".into(),
        body: "## Decision log\n\n- attempt 1: checks passed\n".into(),
        draft,
        retarget_from: Vec::new(),
    }
}

fn check(passed: bool) -> CheckReport {
    CheckReport {
        name: "git-agent / tests".into(),
        head_sha: "6dcb09b5b57875f334f61aebed695e2e4193db5e".into(),
        passed,
        summary: if passed {
            "`cargo test` passed in 1.5s".into()
        } else {
            format!("`cargo clippy` failed (exit 1): {}", "x".repeat(300))
        },
        text: (!passed).then(|| "error: unused variable".into()),
        started_at: Some("2026-11-25T12:00:10Z".into()),
        completed_at: Some("2026-11-25T12:00:20Z".into()),
    }
}

const MARKER: &str = "<!-- git-agent task=hello -->";

fn issue_spec() -> IssueSpec {
    IssueSpec {
        title: "git-agent: hello needs a human".into(),
        body: format!("The agent edited a file outside its scope.\n\n{MARKER}"),
        labels: vec!["agent".into(), "needs-human".into()],
        marker: MARKER.into(),
        search_label: "needs-human".into(),
    }
}

/// The official example's issue.
fn example_issue() -> Issue {
    Issue {
        number: 1347,
        url: "https://github.com/octocat/Hello-World/issues/1347".into(),
    }
}

/// The official example's pull request, as `pull_from` reads it.
fn example_pr() -> PullRequest {
    PullRequest {
        number: 1347,
        url: "https://github.com/octocat/Hello-World/pull/1347".into(),
        draft: false,
        base: "master".into(),
    }
}

/// A repository with an open pull request for the head, check runs
/// allowed and no issue of ours (the official example lists a pull
/// request): find, update (PATCH), labels, reviewers, check runs, a
/// comment, an issue opened (POST), review comments.
#[tokio::test]
async fn every_forge_call_conforms_to_githubs_description() {
    let Some(program) = prism_program() else {
        return;
    };
    let prism = Prism::start(&program, None);
    let gh = client(&prism);

    let found = prism.ok("find_pr_by_head", gh.find_pr_by_head("agent/hello").await);
    assert_eq!(found, Some(example_pr()));

    let (pr, created) = prism.ok(
        "open_or_update_pr",
        gh.open_or_update_pr(&spec(false)).await,
    );
    assert_eq!((pr, created), (example_pr(), false), "updated, not opened");

    let labels = ["agent".to_string(), "escalated".to_string()];
    prism.ok("add_labels", gh.add_labels(1347, &labels).await);
    let reviewers = ["octocat".to_string(), "octo/reviewers".to_string()];
    prism.ok(
        "request_reviewers",
        gh.request_reviewers(1347, &reviewers).await,
    );

    for passed in [true, false] {
        let kind = prism.ok("post_check", gh.post_check(&check(passed)).await);
        assert_eq!(kind, CheckKind::CheckRun);
    }
    prism.ok(
        "comment",
        gh.comment(
            1347,
            "Escalated: the agent edited a file outside its scope.",
        )
        .await,
    );
    let (issue, created) = prism.ok(
        "open_or_update_issue",
        gh.open_or_update_issue(&issue_spec()).await,
    );
    assert_eq!(
        (issue, created),
        (example_issue(), true),
        "opened, not updated"
    );
    let comments = prism.ok("list_review_comments", gh.list_review_comments(1347).await);
    assert_eq!(
        comments,
        vec![ReviewComment {
            path: "file1.txt".into(),
            body: "Great stuff!".into(),
            user: Some("octocat".into()),
        }]
    );
    assert!(gh.take_notices().is_empty());

    // find, find + PATCH, labels, reviewers, 2 check runs, comment,
    // issues + POST, review comments.
    prism.assert_passed(11);
}

/// A repository with no pull request for the head, a token that may not
/// create check runs (the route is missing, so Prism answers 404 as GitHub
/// does), and our issue open: open the PR (POST, draft), commit statuses,
/// update the issue (PATCH).
#[tokio::test]
async fn opening_a_pr_and_the_status_fallback_conform() {
    let Some(program) = prism_program() else {
        return;
    };
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(document()).expect("document"))
            .expect("json");
    let paths = doc["paths"].as_object_mut().expect("paths");
    paths
        .remove("/repos/{owner}/{repo}/check-runs")
        .expect("check-runs");
    paths["/repos/{owner}/{repo}/pulls"]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"] = json!({ "none": { "value": [] } });
    // The official issue (not a pull request), with our marker.
    let issues = &mut paths["/repos/{owner}/{repo}/issues"]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"];
    let (_, example) = issues
        .as_object_mut()
        .expect("examples")
        .iter_mut()
        .next()
        .expect("one");
    let issue = &mut example["value"][0];
    issue.as_object_mut().expect("issue").remove("pull_request");
    issue["body"] = json!(issue_spec().body);
    let prism = Prism::start(&program, Some(&doc));
    let gh = client(&prism);

    assert_eq!(
        prism.ok("find_pr_by_head", gh.find_pr_by_head("agent/hello").await),
        None
    );
    let (pr, created) = prism.ok("open_or_update_pr", gh.open_or_update_pr(&spec(true)).await);
    assert_eq!(pr.number, 1347);
    assert!(created, "opened, not updated");

    for passed in [false, true] {
        let kind = prism.ok("post_check", gh.post_check(&check(passed)).await);
        assert_eq!(kind, CheckKind::Status);
    }
    let notices = gh.take_notices();
    assert!(
        notices.len() == 1 && notices[0].contains("HTTP 404"),
        "{notices:?}"
    );

    let (issue, created) = prism.ok(
        "open_or_update_issue",
        gh.open_or_update_issue(&issue_spec()).await,
    );
    assert_eq!(
        (issue, created),
        (example_issue(), false),
        "updated, not opened"
    );

    // find, find + POST, 2 statuses (the refused check run matched no
    // route), issues + PATCH.
    prism.assert_passed(7);
}

/// Prism does reject what GitHub's description forbids: a check run whose
/// `started_at` is not a date-time, through the same client; and, from
/// octocrab directly, a misspelt field (bodies are closed) and a pull
/// request number that is not one.
#[tokio::test]
async fn prism_rejects_requests_that_do_not_conform() {
    let Some(program) = prism_program() else {
        return;
    };
    let prism = Prism::start(&program, None);
    let gh = client(&prism);

    let mut bad = check(true);
    bad.started_at = Some("yesterday at noon".into());
    let err = gh.post_check(&bad).await.expect_err(
        "Prism accepted a check run whose started_at is not a date-time: it does not validate",
    );
    assert_eq!(err.status, Some(422), "{err}");
    let violation = "started_at must match format";
    let output = prism.output_when(|o| o.contains(violation));
    assert!(output.contains(violation), "Prism's output:\n{output}");

    let raw = octocrab::Octocrab::builder()
        .base_uri(prism.url.as_str())
        .expect("base uri")
        .build()
        .expect("octocrab");
    for (method, path, body, violation) in [
        (
            "POST",
            "/repos/octo/hello/pulls",
            json!({"title": "t", "head": "agent/hello", "base": "main", "darft": true}),
            "found 'darft'",
        ),
        (
            "PATCH",
            "/repos/octo/hello/pulls/first",
            json!({"title": "t"}),
            "pull_number must be integer",
        ),
    ] {
        let url = format!("{}{path}", prism.url);
        let response = match method {
            "POST" => raw._post(url, Some(&body)).await,
            _ => raw._patch(url, Some(&body)).await,
        }
        .expect("response");
        let status = response.status().as_u16();
        let text = raw.body_to_string(response).await.expect("body");
        assert_eq!(status, 422, "{method} {path}: {text}");
        assert!(text.contains(violation), "{method} {path}: {text}");
    }
    prism.assert_passed(0);
}

/// The Prism document holds exactly the operations of the subset
/// `tests/github.rs` validates against, at the same methods and paths:
/// both come from the same OPERATIONS list and must be regenerated
/// together.
#[test]
fn prism_document_matches_the_subset() {
    let read = |name: &str| -> Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/github")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("json")
    };
    let subset = read("openapi-subset.json");
    let prism = read("openapi-prism.json");
    let mut want: Vec<(String, String, String)> = subset["operations"]
        .as_object()
        .expect("operations")
        .iter()
        .map(|(id, op)| {
            let m = op["method"].as_str().expect("method").to_lowercase();
            (
                id.clone(),
                m,
                op["path"].as_str().expect("path").to_string(),
            )
        })
        .collect();
    let mut have: Vec<(String, String, String)> = prism["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .iter()
                .map(move |(m, op)| {
                    let id = op["operationId"].as_str().expect("operationId").to_string();
                    (id, m.clone(), path.clone())
                })
        })
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "run generate_prism.py after generate.py");
}
