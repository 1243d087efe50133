//! Delivery to GitHub: octocrab against a wiremock server on 127.0.0.1 that
//! validates every request body against the operation's schema from GitHub's
//! official OpenAPI description (`tests/fixtures/github/openapi-subset.json`,
//! made by `generate.py`) and answers with the official examples; pushes go
//! to a bare repository over smart HTTP (`git http-backend` behind a tiny
//! server that demands Basic auth).

#![expect(
    clippy::unwrap_used,
    reason = "fake servers' helpers: a panic there is the test failing"
)]

mod fake_github;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fake_github::*;
use git_agent::brief::EscalateFallback;
use git_agent::delivery::{deliver_issue, deliver_pr, DeliveryRecord};
use git_agent::forge::github::GitHub;
use git_agent::forge::Forge;
use git_agent::store::{RunRecord, State};
use serde_json::{json, Value};
use support::{Brief, TestRepo};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn record(state: State, reason: Option<&str>) -> RunRecord {
    serde_json::from_value(json!({
        "schema": 1, "run_id": "20261125-120000-hello-abcd", "task": "hello",
        "title": "Say hello", "brief_path": ".agents/tasks/hello.md", "brief_blob": "0",
        "agent": "fx", "state": state, "base_ref": "main", "base_commit": null,
        "branch": "agent/hello", "commit": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "attempts": 1, "max_attempts": 3, "worktree": null, "reason": reason,
        "checks": [], "pid": 0, "started_at": "2026-11-25T12:00:00Z",
        "finished_at": "2026-11-25T12:01:00Z", "duration_ms": 60000
    }))
    .expect("record")
}

fn events() -> Vec<git_agent::log::Event> {
    serde_json::from_value(json!([
        {"v": 1, "ts": "2026-11-25T12:00:10Z", "type": "check_finished", "attempt": 1,
         "name": "tests", "command": "cargo test", "passed": true, "exit_code": 0,
         "timed_out": false, "duration_ms": 1500},
        {"v": 1, "ts": "2026-11-25T12:00:20Z", "type": "check_finished", "attempt": 1,
         "name": "lint", "command": "cargo clippy", "passed": false, "exit_code": 1,
         "timed_out": false, "duration_ms": 900, "output_tail": "error: unused variable"}
    ]))
    .expect("events")
}

/// `deliver_pr` of `rec` (branch `agent/hello`, its commit) with the
/// standard events.
async fn deliver_hello(
    gh: &GitHub,
    rec: &RunRecord,
    d: &mut DeliveryRecord,
) -> Result<(), git_agent::forge::ForgeError> {
    let commit = rec.commit.as_deref().expect("a commit");
    deliver_pr(gh, rec, &events(), "agent/hello", commit, d).await
}

fn delivery(mode: &str) -> DeliveryRecord {
    DeliveryRecord {
        mode: mode.into(),
        base: "main".into(),
        labels: vec!["agent".into()],
        reviewers: vec!["octocat".into(), "octo/reviewers".into()],
        state: "pending".into(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// The forge, call by call.

#[tokio::test]
async fn opens_then_updates_the_same_pull_request() {
    let (server, fake) = fake_github().await;
    let gh = client(&server);
    let rec = record(State::Succeeded, None);
    let mut d = delivery("pr");
    deliver_hello(&gh, &rec, &mut d)
        .await
        .expect("first delivery");
    assert_eq!(d.pr_number, Some(1347));
    let mut d2 = delivery("pr");
    deliver_hello(&gh, &rec, &mut d2)
        .await
        .expect("second delivery");
    assert_eq!(d2.pr_number, Some(1347), "the re-run found the same PR");
    assert_eq!(fake.count("pulls/create"), 1, "never a second PR");
    assert_eq!(fake.count("pulls/update"), 1);
    assert_eq!(fake.count("pulls/list"), 2);
    // Reviewers only when the PR is opened; labels each time (idempotent on GitHub).
    assert_eq!(fake.count("pulls/request-reviewers"), 1);
    assert_eq!(
        fake.bodies("pulls/request-reviewers")[0],
        json!({"reviewers": ["octocat"], "team_reviewers": ["reviewers"]})
    );
    let create = &fake.bodies("pulls/create")[0];
    assert_eq!(create["head"], "agent/hello");
    assert_eq!(create["base"], "main");
    assert_eq!(create["draft"], false);
    assert!(create["body"].as_str().unwrap().contains("Say hello"));
    let checks = fake.bodies("checks/create");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["git-agent / tests", "git-agent / lint", "git-agent / scope"].repeat(2)
    );
    assert_eq!(checks[1]["conclusion"], "failure");
    // Timing: the check ran 0.9 s and ended at the event's time.
    assert_eq!(checks[1]["started_at"], "2026-11-25T12:00:19.1Z");
    assert_eq!(checks[1]["completed_at"], "2026-11-25T12:00:20Z");
    assert!(checks[1]["output"]["text"]
        .as_str()
        .unwrap()
        .contains("unused variable"));
    let st = fake.state();
    for s in st.seen.iter().filter(|s| s.op == "pulls/list") {
        assert!(
            s.query.contains("head=octo%3Aagent%2Fhello"),
            "query: {}",
            s.query
        );
        assert!(s.query.contains("state=open"));
    }
    drop(st);
    assert_clean(&fake);
}

#[tokio::test]
async fn escalated_run_is_a_draft_with_needs_human_and_a_comment() {
    let (server, fake) = fake_github().await;
    let gh = client(&server);
    let rec = record(
        State::Escalated,
        Some("changed Cargo.lock (escalate.paths)"),
    );
    let mut d = delivery("pr");
    deliver_hello(&gh, &rec, &mut d).await.expect("delivery");
    assert_eq!(fake.bodies("pulls/create")[0]["draft"], true);
    let labels = fake.bodies("issues/add-labels");
    assert_eq!(labels[0], json!({"labels": ["agent", "needs-human"]}));
    let comments = fake.bodies("issues/create-comment");
    assert_eq!(comments.len(), 1);
    assert!(comments[0]["body"]
        .as_str()
        .unwrap()
        .contains("changed Cargo.lock (escalate.paths)"));
    assert_clean(&fake);
}

#[tokio::test]
async fn fallback_issue_opens_one_issue_and_no_pull_request() {
    let (server, fake) = fake_github().await;
    // An unrelated escalated draft PR carries `needs-human` too: the issues
    // list returns it, and it must not be taken for the task's issue.
    fake.state()
        .prs
        .push(("agent/other".into(), 7, true, "main".into()));
    let gh = client(&server);
    let rec = record(
        State::Escalated,
        Some("changed Cargo.lock (escalate.paths)"),
    );
    let mut d = delivery("pr");
    d.fallback = EscalateFallback::Issue;
    assert!(d.as_issue(&rec));
    assert!(
        !d.as_issue(&record(State::Succeeded, None)),
        "success is a PR"
    );
    deliver_issue(&gh, &rec, &events(), &mut d)
        .await
        .expect("first delivery");
    assert_eq!(d.issue_number, Some(2000));
    assert_eq!(
        d.issue_url.as_deref(),
        Some("https://github.com/octo/hello/issues/2000")
    );
    let created = &fake.bodies("issues/create")[0];
    assert_eq!(created["title"], "git-agent needs a human: Say hello");
    assert_eq!(created["labels"], json!(["agent", "needs-human"]));
    let body = created["body"].as_str().unwrap();
    assert!(
        body.contains("Trigger: changed Cargo.lock (escalate.paths)"),
        "{body}"
    );
    assert!(
        body.contains("branch `agent/hello` (commit 6dcb09b5b578)"),
        "{body}"
    );
    assert!(
        body.contains("git-agent / lint") || body.contains("lint"),
        "{body}"
    );
    assert!(body.ends_with("<!-- git-agent task=hello -->"), "{body}");

    // A re-run finds the issue by its marker and updates it.
    let mut d2 = delivery("pr");
    d2.fallback = EscalateFallback::Issue;
    deliver_issue(&gh, &rec, &events(), &mut d2)
        .await
        .expect("second delivery");
    assert_eq!(d2.issue_number, Some(2000), "the same issue");
    assert_eq!(fake.count("issues/create"), 1, "never a second issue");
    assert_eq!(fake.count("issues/update"), 1);
    assert_eq!(fake.count("issues/add-labels"), 1, "labels again on update");
    assert_eq!(fake.count("pulls/create") + fake.count("pulls/update"), 0);
    let st = fake.state();
    for s in st.seen.iter().filter(|s| s.op == "issues/list-for-repo") {
        assert!(s.query.contains("labels=needs-human"), "{}", s.query);
        assert!(s.query.contains("state=open"), "{}", s.query);
    }
    drop(st);
    assert_clean(&fake);
}

/// The task's issue is found wherever it is in the listing: GitHub pages
/// it (100 at most), and a busy repository has more open `needs-human`
/// issues than a page holds.
#[tokio::test]
async fn the_tasks_issue_is_found_past_the_first_page() {
    let (server, fake) = fake_github().await;
    {
        let mut st = fake.state();
        for n in 0..150u64 {
            st.issues.push((
                100 + n,
                format!("another task\n\n<!-- git-agent task=other-{n} -->"),
                vec!["needs-human".into()],
            ));
        }
        st.issues.push((
            7,
            "stuck before\n\n<!-- git-agent task=hello -->".into(),
            vec!["needs-human".into()],
        ));
    }
    let d = deliver_stuck_as_issue(&server).await;
    let pages: Vec<String> = fake
        .state()
        .seen
        .iter()
        .filter(|s| s.op == "issues/list-for-repo")
        .map(|s| s.query.clone())
        .collect();
    assert!(pages.iter().any(|q| q.contains("page=2")), "{pages:?}");
    assert_eq!(d.issue_number, Some(7), "the task's issue, on page 2");
    assert_eq!(fake.count("issues/create"), 0, "no duplicate issue");
    assert_eq!(fake.count("issues/update"), 1);
    assert_clean(&fake);
}

/// An escalated run ("stuck") delivered as an issue to the fake GitHub.
async fn deliver_stuck_as_issue(server: &MockServer) -> DeliveryRecord {
    let gh = client(server);
    let rec = record(State::Escalated, Some("stuck"));
    let mut d = delivery("pr");
    d.fallback = EscalateFallback::Issue;
    deliver_issue(&gh, &rec, &events(), &mut d)
        .await
        .expect("delivery");
    d
}

/// A page link to another host is not followed: it would carry the token
/// there. (Control: the same link to the API itself is followed, above.)
#[tokio::test]
async fn a_page_link_to_another_host_is_not_followed() {
    let (server, fake) = fake_github().await;
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&elsewhere)
        .await;
    fake.state().inject.push_back((
        "issues/list-for-repo".into(),
        ResponseTemplate::new(200)
            .set_body_json(json!([]))
            .insert_header(
                "link",
                format!(
                    "<{}/repos/octo/hello/issues?page=2>; rel=\"next\"",
                    elsewhere.uri()
                )
                .as_str(),
            ),
    ));
    let d = deliver_stuck_as_issue(&server).await;
    assert!(d.issue_number.is_some(), "the issue was opened anyway");
    let hits = elsewhere.received_requests().await.unwrap_or_default();
    assert!(hits.is_empty(), "the other host was asked: {hits:?}");
}

/// An open pull request from the same head to another base is not the
/// task's: the lookup filters by base, and a new one is opened for `main`.
#[tokio::test]
async fn a_pull_request_to_another_base_is_left_alone() {
    let (server, fake) = fake_github().await;
    fake.state()
        .prs
        .push(("agent/hello".into(), 7, false, "release".into()));
    let gh = client(&server);
    let rec = record(State::Succeeded, None);
    let mut d = delivery("pr");
    deliver_hello(&gh, &rec, &mut d).await.expect("delivery");
    assert_ne!(d.pr_number, Some(7), "the release PR was taken");
    assert_eq!(
        fake.count("pulls/update"),
        0,
        "the release PR is left alone"
    );
    assert_eq!(fake.count("pulls/create"), 1);
    assert_eq!(fake.bodies("pulls/create")[0]["base"], "main");
}

/// A delivery retried after it failed completes what it left undone: the
/// reviewers it never requested (a 422 on reviewers), and the escalation
/// comment is not posted twice.
#[tokio::test]
async fn a_retried_delivery_completes_what_the_failed_one_left() {
    let (server, fake) = fake_github().await;
    fake.state().inject.push_back((
        "pulls/request-reviewers".into(),
        ResponseTemplate::new(422).set_body_json(json!({
            "message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the octo/hello repository."
        })),
    ));
    let gh = client(&server);
    let rec = record(State::Escalated, Some("stuck"));
    let mut d = delivery("pr");
    let first = deliver_hello(&gh, &rec, &mut d).await;
    assert!(first.is_err(), "the 422 fails the delivery");
    assert_eq!(
        d.pr_number,
        Some(1347),
        "the PR was opened before it failed"
    );
    assert!(!d.reviewers_requested);

    // The retry (`git agent deliver`) starts from the stored record.
    deliver_hello(&gh, &rec, &mut d).await.expect("the retry");
    assert_eq!(fake.count("pulls/create"), 1);
    assert_eq!(fake.count("pulls/request-reviewers"), 2, "asked again");
    assert!(d.reviewers_requested);
    deliver_hello(&gh, &rec, &mut d).await.expect("once more");
    assert_eq!(fake.count("pulls/request-reviewers"), 2, "not a third time");
    let comments: Vec<String> = fake
        .state()
        .comments
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(comments.len(), 1, "one escalation comment: {comments:?}");
    assert!(comments[0].contains("Trigger: stuck"), "{comments:?}");
}

/// An open `needs-human` issue that only quotes the task's marker (an
/// agent's text in another run's log, say) is not the task's issue: the
/// marker counts only as the body's last line, where git-agent writes it.
#[tokio::test]
async fn a_quoted_marker_does_not_capture_the_tasks_issue() {
    let (server, fake) = fake_github().await;
    fake.state().issues.push((
        41,
        "the agent wrote: <!-- git-agent task=hello --> and more\n\n<!-- git-agent task=other -->"
            .into(),
        vec!["needs-human".into()],
    ));
    let d = deliver_stuck_as_issue(&server).await;
    assert_eq!(fake.count("issues/create"), 1, "a new issue for the task");
    assert_eq!(fake.count("issues/update"), 0, "issue 41 is left alone");
    assert_ne!(d.issue_number, Some(41));
}

/// GitHub opened the pull request but its reply was lost (a 502 after the
/// write): the retry finds it instead of failing on "already exists", and
/// there is one pull request.
#[tokio::test]
async fn a_create_whose_reply_was_lost_is_not_repeated() {
    let (server, fake) = fake_github().await;
    fake.state().lose_reply.push("pulls/create".into());
    let gh = client(&server);
    let rec = record(State::Succeeded, None);
    let mut d = delivery("pr");
    deliver_hello(&gh, &rec, &mut d).await.expect("delivery");
    assert_eq!(fake.state().prs.len(), 1, "one pull request");
    assert_eq!(d.pr_number, Some(1347));
    assert_eq!(fake.count("pulls/create"), 1, "the create is not repeated");

    // The same for an issue, which GitHub would happily open twice.
    fake.state().lose_reply.push("issues/create".into());
    let rec = record(State::Escalated, Some("stuck"));
    let mut d = delivery("pr");
    d.fallback = EscalateFallback::Issue;
    deliver_issue(&gh, &rec, &events(), &mut d)
        .await
        .expect("issue delivery");
    assert_eq!(fake.state().issues.len(), 1, "one issue");
    assert_eq!(fake.count("issues/create"), 1);
    assert_eq!(d.issue_number, Some(2000));
}

#[tokio::test]
async fn check_runs_refused_fall_back_to_statuses_said_once() {
    let (server, fake) = fake_github().await;
    fake.state().refuse.push(("checks/create".into(), 403));
    let gh = client(&server);
    let rec = record(State::Succeeded, None);
    let mut d = delivery("pr");
    deliver_hello(&gh, &rec, &mut d).await.expect("delivery");
    assert_eq!(fake.count("checks/create"), 1, "asked once, then statuses");
    let statuses = fake.bodies("repos/create-commit-status");
    assert_eq!(statuses.len(), 3);
    assert_eq!(statuses[1]["context"], "git-agent / lint");
    assert_eq!(statuses[1]["state"], "failure");
    let notices = gh.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("commit statuses"));
    let st = fake.state();
    assert!(st
        .seen
        .iter()
        .filter(|s| s.op == "repos/create-commit-status")
        .all(|s| s
            .path
            .ends_with("/statuses/6dcb09b5b57875f334f61aebed695e2e4193db5e")));
    drop(st);
    assert_clean(&fake);
}

#[tokio::test]
async fn a_502_is_retried() {
    let (server, fake) = fake_github().await;
    fake.state().inject.push_back((
        "pulls/create".into(),
        ResponseTemplate::new(502).set_body_string("Bad Gateway"),
    ));
    let gh = client(&server);
    let (pr, created) = gh
        .open_or_update_pr(&spec("agent/hello", false))
        .await
        .expect("retried");
    assert!(created);
    assert_eq!(pr.number, 1347);
    assert_eq!(fake.count("pulls/create"), 2);
    assert_clean(&fake);
}

#[tokio::test]
async fn a_secondary_rate_limit_waits_for_retry_after() {
    let (server, fake) = fake_github().await;
    fake.state().inject.push_back((
        "pulls/create".into(),
        ResponseTemplate::new(403)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."})),
    ));
    let gh = client(&server);
    let start = Instant::now();
    gh.open_or_update_pr(&spec("agent/hello", false))
        .await
        .expect("retried after the wait");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.count("pulls/create"), 2);
    assert_clean(&fake);
}

fn epoch_in(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    (now + secs).to_string()
}

/// A primary rate limit (`x-ratelimit-remaining: 0`) waits until the reset
/// GitHub gives, says so, and gives up at once on a reset too far away.
#[tokio::test]
async fn a_primary_rate_limit_waits_for_its_reset_within_a_bound() {
    let limited = |reset: String| {
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset.as_str())
            .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."}))
    };
    let (server, fake) = fake_github().await;
    fake.state()
        .inject
        .push_back(("pulls/list".into(), limited(epoch_in(1))));
    let gh = client(&server);
    let start = Instant::now();
    gh.find_pr_by_head("agent/hello")
        .await
        .expect("after the reset");
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.count("pulls/list"), 2);
    let notices = gh.take_notices();
    assert!(
        notices.iter().any(|n| n.contains("rate limit: waited")),
        "{notices:?}"
    );

    // An hour away is past the client's bound (5 s here): no wait.
    fake.state()
        .inject
        .push_back(("pulls/list".into(), limited(epoch_in(3600))));
    let start = Instant::now();
    let err = gh
        .find_pr_by_head("agent/hello")
        .await
        .expect_err("too long");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(err.message.contains("asked to wait"), "{err:?}");
    assert_clean(&fake);
}

#[tokio::test]
async fn a_422_names_the_rejected_field_and_is_not_retried() {
    let (server, fake) = fake_github().await;
    fake.state().inject.push_back((
        "pulls/create".into(),
        ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
        })),
    ));
    let gh = client(&server);
    let err = gh
        .open_or_update_pr(&spec("agent/hello", false))
        .await
        .expect_err("422");
    assert_eq!(err.status, Some(422));
    assert_eq!(err.fields, ["PullRequest.base: invalid"]);
    assert!(
        err.to_string().contains("rejected: PullRequest.base"),
        "{err}"
    );
    assert_eq!(fake.count("pulls/create"), 1);
}

#[tokio::test]
async fn review_comments_are_listed() {
    let (server, fake) = fake_github().await;
    let gh = client(&server);
    let comments = gh.list_review_comments(1347).await.expect("comments");
    assert!(!comments.is_empty());
    assert!(!comments[0].path.is_empty());
    assert_clean(&fake);
}

fn spec(head: &str, draft: bool) -> git_agent::forge::PrSpec {
    git_agent::forge::PrSpec {
        head: head.into(),
        base: "main".into(),
        title: "Say hello".into(),
        body: "body".into(),
        draft,
        retarget_from: Vec::new(),
    }
}

struct E2e {
    repo: TestRepo,
    remote: PathBuf,
    git_server: GitServer,
    argv_log: PathBuf,
    path_env: String,
}

fn e2e(server: &MockServer) -> E2e {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let remote_root = repo.tmp.join("remote");
    std::fs::create_dir_all(remote_root.join("octo")).unwrap();
    let remote = remote_root.join("octo/hello.git");
    let st = Command::new(real_git())
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&remote)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new(real_git())
        .args(["config", "http.receivepack", "true"])
        .current_dir(&remote)
        .status()
        .unwrap();
    assert!(st.success());
    let git_server = git_http_server(remote_root, TOKEN);
    // A `git` on PATH that logs its argv, in front of the real one.
    let bin = repo.tmp.join("wrapbin");
    std::fs::create_dir_all(&bin).unwrap();
    let argv_log = repo.tmp.join("git-argv.log");
    let wrapper = bin.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{0}'\n[ -n \"$GITHUB_TOKEN$GH_TOKEN\" ] && printf 'HAS_TOKEN_ENV %s\\n' \"$1\" >> '{0}'\nexec '{1}' \"$@\"\n",
            argv_log.display(),
            real_git().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = Path::new(support::BIN).parent().unwrap();
    let path_env = format!(
        "{}:{}:{}",
        bin.display(),
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    repo.git(&[
        "remote",
        "add",
        "origin",
        &format!("http://127.0.0.1:{}/octo/hello.git", git_server.port),
    ]);
    repo.config_with(
        "env_dump.sh",
        &format!("github:\n  api_url: {}\n", support::yaml_str(&server.uri())),
    );
    let brief = Brief::new(&["src/**"])
        .title("Say hello")
        .check("tests", "true")
        .render()
        .replace(
            "---\n# Goal",
            "output:\n  deliver: pr\n  labels: [agent]\n---\n# Goal",
        );
    repo.write(".agents/tasks/hello.md", &brief);
    repo.commit_all("agent config");
    E2e {
        repo,
        remote,
        git_server,
        argv_log,
        path_env,
    }
}

fn assert_token_nowhere(e: &E2e) {
    let needle = TOKEN.as_bytes();
    let leaks = files_containing(&e.repo.root.join(".git"), needle);
    assert!(leaks.is_empty(), "token on disk: {leaks:?}");
    let leaks = files_containing(&e.remote, needle);
    assert!(leaks.is_empty(), "token in the remote: {leaks:?}");
    let argv = std::fs::read_to_string(&e.argv_log).unwrap_or_default();
    assert!(argv.contains("push"), "the wrapper saw the push: {argv}");
    assert!(!argv.contains(TOKEN), "token in argv:\n{argv}");
    // No git child, local or talking to the remote, has the token in its
    // environment: the push gets it through a credential helper's pipe.
    assert!(
        !argv.contains("HAS_TOKEN_ENV"),
        "git children with the token in their environment:\n{argv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pushes_over_http_and_opens_the_pr_without_leaking_the_token() {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let path_env = e.path_env.clone();
    let repo = &e.repo;
    let (code, runs, stderr) = tokio::task::block_in_place(|| {
        repo.run_json_env(&["hello"], &[("PATH", &path_env), ("GITHUB_TOKEN", TOKEN)])
    });
    let run = &runs[0];
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["delivery"]["state"], "delivered", "{run:#}");
    assert_eq!(
        run["delivery"]["pr_url"],
        "https://github.com/octo/hello/pull/1347"
    );
    // The branch and the notes reached the remote over HTTP with Basic auth.
    let remote_refs = String::from_utf8(
        Command::new(real_git())
            .args(["for-each-ref", "--format=%(refname)"])
            .current_dir(&e.remote)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        remote_refs.contains("refs/heads/agent/hello"),
        "{remote_refs}"
    );
    assert!(remote_refs.contains("refs/notes/agent"), "{remote_refs}");
    assert!(!e.git_server.auths.lock().unwrap().is_empty());
    // The agent's environment (dumped into src/env.txt) has no token.
    let env_txt = repo.show("agent/hello", "src/env.txt").expect("env dump");
    assert!(!env_txt.contains(TOKEN), "token in the agent's env");
    assert!(!env_txt.contains("GITHUB_TOKEN"));
    assert_token_nowhere(&e);
    assert_eq!(fake.count("pulls/create"), 1);
    let create = &fake.bodies("pulls/create")[0];
    assert_eq!(create["head"], "agent/hello");
    // The brief names no base: the PR targets the branch checked out.
    assert_eq!(create["base"], "main");
    assert!(create["body"].as_str().unwrap().contains("Say hello"));
    let checks: Vec<String> = fake
        .bodies("checks/create")
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(checks, ["git-agent / tests", "git-agent / scope"]);
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_failure_keeps_the_run_and_deliver_retries() {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let path_env = e.path_env.clone();
    let repo = &e.repo;
    // A wrong token: the git server refuses the push.
    let (code, runs, stderr) = tokio::task::block_in_place(|| {
        repo.run_json_env(
            &["hello"],
            &[("PATH", &path_env), ("GITHUB_TOKEN", "wrong-token")],
        )
    });
    let run = &runs[0];
    assert_eq!(
        code, 1,
        "a failed delivery fails the command; stderr:\n{stderr}"
    );
    assert_eq!(run["outcome"], "succeeded", "the run itself succeeded");
    assert_eq!(run["delivery"]["state"], "failed", "{run:#}");
    let reason = run["delivery"]["reason"].as_str().unwrap();
    assert!(reason.contains("Authentication failed"), "{reason}");
    assert!(repo.rev_opt("agent/hello").is_some(), "the branch stays");
    let status = tokio::task::block_in_place(|| repo.run_env(&["status"], &[("PATH", &path_env)]));
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.contains("succeeded (delivery failed)"), "{status}");
    assert_eq!(fake.count("pulls/create"), 0);

    let out = tokio::task::block_in_place(|| {
        repo.run_env(
            &["deliver", "hello", "--json"],
            &[("PATH", &path_env), ("GITHUB_TOKEN", TOKEN)],
        )
    });
    assert!(
        out.status.success(),
        "deliver: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(d["state"], "delivered");
    assert_eq!(fake.count("pulls/create"), 1);
    let status = tokio::task::block_in_place(|| repo.run_env(&["status"], &[("PATH", &path_env)]));
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(!status.contains("delivery failed"), "{status}");
    // Delivering again updates the same pull request.
    let out = tokio::task::block_in_place(|| {
        repo.run_env(
            &["deliver", "hello"],
            &[("PATH", &path_env), ("GITHUB_TOKEN", TOKEN)],
        )
    });
    assert!(out.status.success());
    assert_eq!(fake.count("pulls/create"), 1);
    assert_eq!(fake.count("pulls/update"), 1);
    assert_token_nowhere(&e);
    assert_clean(&fake);
}

/// `git agent deliver` of a branch-only run decides the mode from the
/// brief, and checks what a pull request needs before it pushes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_checks_before_it_pushes() {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let path_env = e.path_env.clone();
    let repo = &e.repo;
    // The brief asks for a local branch only.
    let brief = std::fs::read_to_string(repo.root.join(".agents/tasks/hello.md")).unwrap();
    repo.write(
        ".agents/tasks/hello.md",
        brief.replace("deliver: pr", "deliver: branch"),
    );
    repo.commit_all("branch only");
    let (code, _, stderr) =
        tokio::task::block_in_place(|| repo.run_json_env(&["hello"], &[("PATH", &path_env)]));
    assert_eq!(code, 0, "{stderr}");
    let remote_refs = || {
        String::from_utf8(
            Command::new(real_git())
                .args(["for-each-ref", "--format=%(refname)"])
                .current_dir(&e.remote)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    // No --mode: the brief's mode, a branch, is not delivered.
    let out =
        tokio::task::block_in_place(|| repo.run_env(&["deliver", "hello"], &[("PATH", &path_env)]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("output.deliver: branch") && err.contains("--mode"),
        "{err}"
    );
    // --mode pr without a token: refused before the first push.
    let out = tokio::task::block_in_place(|| {
        repo.run_env(
            &["deliver", "hello", "--mode", "pr"],
            &[("PATH", &path_env)],
        )
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no token") && err.contains("nothing was pushed"),
        "{err}"
    );
    assert!(
        !remote_refs().contains("agent/hello"),
        "pushed anyway: {}",
        remote_refs()
    );
    assert_eq!(fake.count("pulls/create"), 0);
}

/// A project whose `hello` run was delivered once (a PR, its branch pushed).
async fn delivered_once() -> (MockServer, Fake, E2e) {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let env = e.env();
    let (code, _, stderr) = tokio::task::block_in_place(|| e.repo.run_json_env(&["hello"], &env));
    assert_eq!(code, 0, "{stderr}");
    (server, fake, e)
}

impl E2e {
    /// PATH with the argv-logging git first, and the token.
    fn env(&self) -> [(&str, &str); 2] {
        [("PATH", self.path_env.as_str()), ("GITHUB_TOKEN", TOKEN)]
    }
}

/// `git -C <dir> <args>` with the real git and a human identity.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(real_git())
        .args([
            "-c",
            "user.name=Hu Man",
            "-c",
            "user.email=human@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A clone of the bare remote, as another machine or a human would have.
fn elsewhere(e: &E2e) -> PathBuf {
    let dir = e.repo.tmp.join("elsewhere");
    git_in(
        &e.repo.tmp,
        &[
            "clone",
            "-q",
            e.remote.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    git_in(&dir, &["checkout", "-q", "agent/hello"]);
    dir
}

fn remote_branch(e: &E2e) -> String {
    git_in(&e.remote, &["rev-parse", "refs/heads/agent/hello"])
}

fn delivery_events(repo: &TestRepo, run: &str) -> Vec<Value> {
    repo.events(run)
        .into_iter()
        .filter(|e| e["type"] == "delivered" || e["type"] == "delivery_failed")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalated_run_with_fallback_issue_pushes_the_branch_and_opens_an_issue() {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let path_env = e.path_env.clone();
    let repo = &e.repo;
    // The agent writes src/env.txt, a path a human must look at.
    let brief = repo.read(".agents/tasks/hello.md").replace(
        "escalate:\n",
        "escalate:\n  paths: [\"src/env.txt\"]\n  fallback: issue\n",
    );
    repo.write(".agents/tasks/hello.md", &brief);
    repo.commit_all("escalate to an issue");
    let (code, runs, stderr) = tokio::task::block_in_place(|| {
        repo.run_json_env(&["hello"], &[("PATH", &path_env), ("GITHUB_TOKEN", TOKEN)])
    });
    let run = &runs[0];
    assert_eq!(code, 3, "escalated; stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["delivery"]["state"], "delivered", "{run:#}");
    assert_eq!(
        run["delivery"]["issue_url"],
        "https://github.com/octo/hello/issues/2000"
    );
    assert_eq!(fake.count("pulls/create"), 0, "no pull request");
    assert_eq!(fake.count("checks/create"), 0);
    assert_eq!(fake.count("issues/create"), 1);
    let body = fake.bodies("issues/create")[0]["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.contains("src/env.txt"), "the trigger is named: {body}");
    // The work is on the remote for the human to look at.
    assert_eq!(remote_branch(&e), run["commit"].as_str().unwrap());
    let events = delivery_events(repo, run["run_id"].as_str().unwrap());
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["type"], "delivered");
    assert_eq!(
        events[0]["url"],
        "https://github.com/octo/hello/issues/2000"
    );
    assert_eq!(events[0]["commit"], run["commit"]);
    let md = repo.log_md(run["run_id"].as_str().unwrap());
    assert!(
        md.contains("delivered (pr): https://github.com/octo/hello/issues/2000"),
        "{md}"
    );
    assert_token_nowhere(&e);
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_that_committed_nothing_still_reaches_a_human_as_an_issue() {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let path_env = e.path_env.clone();
    let repo = &e.repo;
    // The agent writes src/env.txt; this brief may only write docs/.
    let brief = repo
        .read(".agents/tasks/hello.md")
        .replace("write: [\"src/**\"]", "write: [\"docs/**\"]")
        .replace("escalate:\n", "escalate:\n  fallback: issue\n");
    repo.write(".agents/tasks/hello.md", &brief);
    repo.commit_all("a narrower scope");
    let (code, runs, stderr) = tokio::task::block_in_place(|| {
        repo.run_json_env(&["hello"], &[("PATH", &path_env), ("GITHUB_TOKEN", TOKEN)])
    });
    let run = &runs[0];
    assert_eq!(code, 3, "escalated; stderr:\n{stderr}\nrun: {run:#}");
    assert!(
        run["commit"].is_null(),
        "nothing in scope to commit: {run:#}"
    );
    assert_eq!(run["delivery"]["state"], "delivered", "{run:#}");
    assert!(run["delivery"]["pushed"].is_null(), "nothing pushed");
    let body = fake.bodies("issues/create")[0]["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.contains("The run committed nothing"), "{body}");
    assert!(
        body.contains("src/env.txt"),
        "the stray path is named: {body}"
    );
    assert_eq!(fake.count("pulls/create"), 0);
    let refs = git_in(&e.remote, &["for-each-ref", "--format=%(refname)"]);
    assert!(!refs.contains("agent/hello"), "no branch pushed: {refs}");
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_never_overwrites_a_human_commit_on_the_remote_branch() {
    let (_server, fake, e) = delivered_once().await;
    let repo = &e.repo;
    let env = e.env();
    // A human pushes a commit on top of the agent's branch.
    let other = elsewhere(&e);
    std::fs::write(other.join("NOTES.md"), "reviewed by a human\n").unwrap();
    git_in(&other, &["add", "NOTES.md"]);
    git_in(&other, &["commit", "-q", "-m", "Human review notes"]);
    git_in(&other, &["push", "-q", "origin", "agent/hello"]);
    let human = git_in(&other, &["rev-parse", "HEAD"]);

    let (code, runs, stderr) = tokio::task::block_in_place(|| repo.run_json_env(&["hello"], &env));
    let run = &runs[0];
    assert_eq!(code, 1, "the delivery failed; {stderr}");
    assert_eq!(run["outcome"], "succeeded", "the run itself succeeded");
    assert_eq!(run["delivery"]["state"], "failed", "{run:#}");
    let reason = run["delivery"]["reason"].as_str().unwrap();
    assert!(reason.contains("did not make for task `hello`"), "{reason}");
    assert!(reason.contains("Human review notes"), "{reason}");
    assert_eq!(remote_branch(&e), human, "the human's commit stays");
    // The remote's commit was fetched to judge it, without writing a ref.
    assert!(!repo.root.join(".git/FETCH_HEAD").exists());
    assert!(!repo.git(&["for-each-ref"]).contains(&human));
    let events = delivery_events(repo, run["run_id"].as_str().unwrap());
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["type"], "delivery_failed");
    assert_eq!(fake.count("pulls/create"), 1, "only the first run's PR");
    assert_eq!(fake.count("pulls/update"), 0);
    assert_token_nowhere(&e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_git_agent_pushed_from_elsewhere_is_replaced_under_a_lease() {
    let (_server, fake, e) = delivered_once().await;
    let repo = &e.repo;
    let env = e.env();
    // The same task ran in CI: a git-agent commit this clone never saw.
    let ci = elsewhere(&e);
    let message = git_in(&ci, &["log", "-1", "--format=%B"]);
    assert!(message.contains("Agent-Task: hello"), "{message}");
    std::fs::write(ci.join("src/ci.txt"), "from CI\n").unwrap();
    git_in(&ci, &["add", "src/ci.txt"]);
    let out = Command::new(real_git())
        .args(["-c", "user.name=x", "-c", "user.email=x@example.com"])
        .args(["commit", "-q", "--amend", "-m", &message])
        .current_dir(&ci)
        .env("GIT_COMMITTER_NAME", "git-agent")
        .env("GIT_COMMITTER_EMAIL", "git-agent@localhost")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git_in(&ci, &["push", "-q", "--force", "origin", "agent/hello"]);
    let from_ci = git_in(&ci, &["rev-parse", "HEAD"]);
    assert!(
        repo.rev_opt(&format!("{from_ci}^{{commit}}")).is_none(),
        "unknown here"
    );

    let (code, runs, stderr) = tokio::task::block_in_place(|| repo.run_json_env(&["hello"], &env));
    let run = &runs[0];
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["delivery"]["state"], "delivered", "{run:#}");
    assert_eq!(remote_branch(&e), run["commit"].as_str().unwrap());
    assert_eq!(run["delivery"]["pushed"], run["commit"]);
    // The lease was explicit: the argv named the commit it replaced.
    let argv = std::fs::read_to_string(&e.argv_log).unwrap();
    assert!(
        argv.contains(&format!(
            "--force-with-lease=refs/heads/agent/hello:{from_ci}"
        )),
        "{argv}"
    );
    assert_eq!(fake.count("pulls/create"), 1);
    assert_eq!(fake.count("pulls/update"), 1, "the same PR, updated");
    assert_token_nowhere(&e);
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_posts_the_checks_and_the_scope_for_the_head_commit() {
    let (server, fake) = fake_github().await;
    let e = e2e(&server);
    let repo = &e.repo;
    repo.git(&["checkout", "-q", "-b", "feat"]);
    repo.write("src/x.txt", "x\n");
    repo.write("stray.txt", "y\n");
    repo.commit_all("a change\n\nAgent-Task: hello");
    let head = repo.rev("feat");
    let out = tokio::task::block_in_place(|| {
        repo.run_env(
            &["review", "feat", "--base", "main", "--post"],
            &[("PATH", &e.path_env), ("GITHUB_TOKEN", TOKEN)],
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stray.txt is out of scope: {stderr}"
    );
    assert!(stderr.contains("posted 2 checks"), "{stderr}");
    let checks = fake.bodies("checks/create");
    let got: Vec<(&str, &str, &str)> = checks
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["conclusion"].as_str().unwrap(),
                c["head_sha"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("git-agent / tests", "success", head.as_str()),
            ("git-agent / scope", "failure", head.as_str())
        ]
    );
    assert!(checks[1]["output"]["text"]
        .as_str()
        .unwrap()
        .contains("`stray.txt` is outside the scope"));
    assert_eq!(fake.count("pulls/create"), 0, "a review opens nothing");
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_review_starts_from_the_earlier_result_with_the_comments_as_data() {
    let (server, fake, e) = delivered_once().await;
    let repo = &e.repo;
    let first = repo.rev("agent/hello");
    // Main moves on (a new agent that shows what it was given).
    repo.config_with(
        "prompt_dump.sh",
        &format!("github:\n  api_url: {}\n", support::yaml_str(&server.uri())),
    );
    repo.commit_all("another agent");
    let env = e.env();
    let (code, runs, stderr) = tokio::task::block_in_place(|| {
        repo.run_json_env(&["hello", "--address-review", "1347"], &env)
    });
    let run = &runs[0];
    assert_eq!(code, 0, "{stderr}\n{run:#}");
    assert!(
        stderr.contains(&format!(
            "review comment(s) of #1347, starting from {}",
            &first[..10]
        )),
        "{stderr}"
    );
    // The agent found its earlier work, replayed onto the new main.
    let found = repo
        .show("agent/hello", "src/found.txt")
        .expect("found.txt");
    assert!(found.contains("env.txt"), "{found}");
    assert_eq!(
        repo.rev("agent/hello^"),
        repo.rev("main"),
        "one commit on today's main"
    );
    // The comments reached the prompt, quoted as data.
    let prompt = repo
        .show("agent/hello", "src/prompt.txt")
        .expect("prompt.txt");
    assert!(
        prompt.contains("## Review comments to address (pull request #1347)"),
        "{prompt}"
    );
    let example = &operations()
        .iter()
        .find(|o| o.id == "pulls/list-review-comments")
        .unwrap()
        .example;
    let body = example[0]["body"].as_str().unwrap();
    assert!(
        prompt.contains(&format!(
            "<<<BEGIN REVIEW COMMENT>>>\n{body}\n<<<END REVIEW COMMENT>>>"
        )),
        "{prompt}"
    );
    assert!(prompt.contains(&format!("On `{}`", example[0]["path"].as_str().unwrap())));
    let events = repo.events(run["run_id"].as_str().unwrap());
    let feedback: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "review_feedback")
        .collect();
    assert_eq!(feedback.len(), 1, "{events:#?}");
    assert_eq!(feedback[0]["pull_request"], 1347);
    assert!(feedback[0]["start_at"].is_string());
    let st = fake.state();
    assert!(st
        .seen
        .iter()
        .any(|s| s.op == "pulls/list-review-comments" && s.path.ends_with("/pulls/1347/comments")));
    drop(st);
    // The same pull request is updated with the new result.
    assert_eq!(fake.count("pulls/create"), 1);
    assert_eq!(fake.count("pulls/update"), 1);
    assert_eq!(remote_branch(&e), repo.rev("agent/hello"));
    assert_clean(&fake);
}

#[test]
fn the_schemas_reject_what_github_would() {
    let create = operations()
        .iter()
        .find(|o| o.id == "pulls/create")
        .expect("pulls/create");
    let v = create.validator.as_ref().expect("schema");
    assert!(v.is_valid(&json!({"head": "a", "base": "main", "title": "t", "draft": true})));
    assert!(
        !v.is_valid(&json!({"head": "a", "title": "t"})),
        "base is required"
    );
    assert!(!v.is_valid(&json!({"head": "a", "base": "main", "draft": "yes"})));
    assert!(
        !v.is_valid(&json!({"head": "a", "base": "main", "labels": ["x"]})),
        "no such field"
    );
    let status = operations()
        .iter()
        .find(|o| o.id == "repos/create-commit-status")
        .expect("status");
    let v = status.validator.as_ref().expect("schema");
    // `nullable: true` became a null type.
    assert!(v.is_valid(&json!({"state": "success", "target_url": null})));
    assert!(!v.is_valid(&json!({"state": "passed"})));
}
