//! Slash commands in pull request and issue comments (`git agent comment`,
//! the Action's comment mode), from GitHub's own `issue_comment` payload
//! example (`tests/fixtures/webhooks`), against the fake GitHub: who may
//! command (write access; never a bot or an app), what each command runs,
//! and the answer — a reaction, and a comment saying how it went.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a panic there is the test failing"
)]

mod fake_github;
mod support;

use std::path::Path;

use fake_github::{bare_remote, fake_github, Fake, GitServer, TOKEN};
use serde_json::{json, Value};
use support::{stderr, stdout, Brief, TestRepo};

/// GitHub's example, as vendored.
fn example() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks/issue_comment.created.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The example with another body and association, on issue or pull
/// request `number` (a pull request's issue carries `pull_request`).
fn payload(body: &str, association: &str, number: u64, pr: bool) -> Value {
    let mut e = example();
    e["comment"]["body"] = json!(body);
    e["comment"]["author_association"] = json!(association);
    e["issue"]["number"] = json!(number);
    if pr {
        e["issue"]["pull_request"] = json!({
            "url": format!("https://api.github.com/repos/octo/hello/pulls/{number}"),
            "html_url": format!("https://github.com/octo/hello/pull/{number}"),
            "diff_url": format!("https://github.com/octo/hello/pull/{number}.diff"),
            "patch_url": format!("https://github.com/octo/hello/pull/{number}.patch"),
            "merged_at": null
        });
    }
    e
}

struct Slash {
    repo: TestRepo,
    remote: std::path::PathBuf,
    _git: GitServer,
}

fn project(api: &str) -> Slash {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let tmp = repo.tmp.join("srv");
    std::fs::create_dir_all(&tmp).unwrap();
    let (remote, git) = bare_remote(&tmp);
    repo.config_with(
        "batch.sh",
        &format!("github:\n  api_url: {}\n", support::yaml_str(api)),
    );
    repo.brief("ok-a", &Brief::new(&["ok-a.txt"]).title("Write a"));
    repo.commit_all("briefs");
    repo.git(&[
        "remote",
        "add",
        "origin",
        &format!("http://127.0.0.1:{}/octo/hello.git", git.port),
    ]);
    repo.git(&["push", "-q", remote.to_str().unwrap(), "main"]);
    repo.git(&["update-ref", "refs/remotes/origin/main", "main"]);
    Slash {
        repo,
        remote,
        _git: git,
    }
}

/// `git agent comment <payload>` (plus `extra`): its output.
fn comment(s: &Slash, event: &Value, extra: &[&str]) -> std::process::Output {
    let path = s.repo.tmp.join(format!("event-{}.json", rand_name()));
    std::fs::write(&path, event.to_string()).unwrap();
    let mut args = vec!["comment", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    s.repo.run_env(&args, &[("GITHUB_TOKEN", TOKEN)])
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn reactions(fake: &Fake) -> Vec<String> {
    fake.state().reactions.iter().map(|r| r.1.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_runs_a_task_by_comment_and_is_answered() {
    let (server, fake) = fake_github().await;
    let s = project(&server.uri());
    let event = payload("Let's try it.\n/agent run ok-a", "OWNER", 1, false);
    let id = event["comment"]["id"].as_u64().unwrap();
    let out = tokio::task::block_in_place(|| comment(&s, &event, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    assert_eq!(
        stdout(&out),
        "run\nok-a\n",
        "the command line, an argument per line"
    );
    assert_eq!(fake.state().reactions, [(id, "eyes".to_string())]);
    // The Action runs it, then replies with how it went.
    let run = tokio::task::block_in_place(|| s.repo.run(&["run", "ok-a", "--json"]));
    assert_eq!(run.status.code(), Some(0), "{}", support::describe(&run));
    let result = s.repo.tmp.join("result.json");
    std::fs::write(&result, &run.stdout).unwrap();
    let out = tokio::task::block_in_place(|| {
        comment(
            &s,
            &event,
            &["--reply", result.to_str().unwrap(), "--status", "0"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    let comments = fake.state().comments.clone();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let (on, body) = &comments[0];
    assert_eq!(*on, 1);
    assert!(
        body.contains("- `ok-a`: **succeeded** — branch `agent/ok-a`"),
        "{body}"
    );
    assert!(body.starts_with("> `/agent run ok-a`"), "{body}");
    assert!(
        body.ends_with(&format!("<!-- git-agent reply comment={id} -->")),
        "{body}"
    );
    assert_eq!(reactions(&fake), ["eyes", "+1"]);
    fake_github::assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_people_with_write_access_command_and_bots_are_never_answered() {
    let (server, fake) = fake_github().await;
    let s = project(&server.uri());
    // A contributor is told why, once.
    let event = payload("/agent run ok-a", "CONTRIBUTOR", 1, false);
    let out = tokio::task::block_in_place(|| comment(&s, &event, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    assert_eq!(stdout(&out), "", "nothing to run");
    assert_eq!(reactions(&fake), ["-1"]);
    let said = fake.state().comments[0].1.clone();
    assert!(
        said.contains("only from people with write access"),
        "{said}"
    );
    assert!(said.contains("Codertocat is contributor"), "{said}");
    assert!(s.repo.rev_opt("agent/ok-a").is_none());
    // Bots and apps, edits and plain comments: no answer at all.
    let mut bot = payload("/agent run ok-a", "OWNER", 1, false);
    bot["comment"]["user"]["type"] = json!("Bot");
    bot["comment"]["user"]["login"] = json!("github-actions[bot]");
    let mut app = payload("/agent run ok-a", "MEMBER", 1, false);
    app["comment"]["performed_via_github_app"] = json!({"id": 1, "slug": "git-agent"});
    let mut sent_by_bot = payload("/agent run ok-a", "COLLABORATOR", 1, false);
    sent_by_bot["sender"]["type"] = json!("Bot");
    let mut edited = payload("/agent run ok-a", "OWNER", 1, false);
    edited["action"] = json!("edited");
    let plain = example();
    let before = fake.state().seen.len();
    for quiet in [bot, app, sent_by_bot, edited, plain] {
        let out = tokio::task::block_in_place(|| comment(&s, &quiet, &[]));
        assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
        assert_eq!(stdout(&out), "");
        assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));
    }
    assert_eq!(
        fake.state().seen.len(),
        before,
        "no call to GitHub for them"
    );
    // An owner's command that is not one, or not for an issue.
    for (body, said) in [
        ("/agent deploy", "is not a command git-agent knows"),
        ("/agent retry", "apply to pull requests"),
        ("/agent run ../x", "is not a task id"),
    ] {
        let out =
            tokio::task::block_in_place(|| comment(&s, &payload(body, "OWNER", 1, false), &[]));
        assert_eq!(stdout(&out), "", "{body}");
        let last = fake.state().comments.last().unwrap().1.clone();
        assert!(last.contains(said), "{body}: {last}");
    }
    fake_github::assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_review_on_a_pull_request() {
    let (server, fake) = fake_github().await;
    let s = project(&server.uri());
    // Pull request #7: agent/ok-a onto main; its head on the remote only
    // (pushed from another clone).
    let other = TestRepo::new();
    other.git(&["pull", "-q", s.remote.to_str().unwrap(), "main"]);
    other.write("ok-a.txt", "by hand\n");
    other.commit_all("write a\n\nAgent-Task: ok-a");
    let head = other.rev("HEAD");
    other.git(&[
        "push",
        "-q",
        s.remote.to_str().unwrap(),
        "HEAD:refs/pull/7/head",
    ]);
    fake.state()
        .prs
        .push(("agent/ok-a".into(), 7, false, "main".into()));
    fake.state()
        .pull_heads
        .push((7, head.clone(), "octo/hello".into()));

    let out = tokio::task::block_in_place(|| {
        comment(&s, &payload("/agent retry", "MEMBER", 7, true), &[])
    });
    assert_eq!(stdout(&out), "run\nok-a\n", "{}", support::describe(&out));

    let gone = s.repo.git_output(&["cat-file", "-e", &head]);
    assert!(!gone.status.success(), "the head is not here yet");
    let out = tokio::task::block_in_place(|| {
        comment(&s, &payload("/agent review", "COLLABORATOR", 7, true), &[])
    });
    assert_eq!(
        stdout(&out),
        format!("review\n{head}\n--base\norigin/main\n--post-required\n"),
        "{}",
        support::describe(&out)
    );
    assert!(
        s.repo
            .git_output(&["cat-file", "-e", &head])
            .status
            .success(),
        "fetched to be reviewed"
    );
    assert_eq!(reactions(&fake), ["eyes", "eyes"]);

    // A fork's pull request is not retried with this repository's token.
    fake.state().pull_heads[0].2 = "mallory/hello".into();
    let out = tokio::task::block_in_place(|| {
        comment(&s, &payload("/agent retry", "OWNER", 7, true), &[])
    });
    assert_eq!(stdout(&out), "");
    let last = fake.state().comments.last().unwrap().1.clone();
    assert!(last.contains("comes from mallory/hello"), "{last}");
    fake_github::assert_clean(&fake);
}
