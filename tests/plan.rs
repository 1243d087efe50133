//! `git agent plan`: what `run` would do, on a real repository, running
//! nothing.

mod support;

use serde_json::Value;
use support::{Brief, TestRepo};

fn project() -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("success.sh");
    repo.brief(
        "api",
        &Brief::new(&["src/api/**"])
            .title("Retry the API")
            .deny(&["src/api/tls.rs"])
            .read(&["src/**"])
            .check("tests", "cargo test api")
            .attempts(3),
    );
    repo.brief(
        "all-src",
        &Brief::new(&["src/**"])
            .title("Tidy src")
            .on_scope_violation("revert"),
    );
    repo.brief("docs", &Brief::new(&["docs/**"]).title("Write docs"));
    repo.commit_all("briefs");
    repo
}

#[test]
fn the_plan_shows_each_run_and_which_run_side_by_side() {
    let repo = project();
    let head = repo.rev("HEAD");
    let out = repo.run(&["plan", "api", "all-src", "docs", "-j", "4"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).replace(&head[..10], "[BASE]");
    let text = text.replace(
        &support::fixture("success.sh").display().to_string(),
        "[FIXTURE]",
    );
    insta::assert_snapshot!(text, @r#"
    api  Retry the API
      agent     fx (command: sh "[FIXTURE]")
      base      HEAD → [BASE]
      worktree  sparse: src/**, src/api/**
      writes    src/api/** (never: src/api/tls.rs); outside → escalate
      check     tests: `cargo test api` (10m00s)
      escalate  3 attempts, 1m00s in all
      deliver   branch on agent/api
      beside    all-src (write scopes may overlap: side by side, results checked for conflicts)

    all-src  Tidy src
      agent     fx (command: sh "[FIXTURE]")
      base      HEAD → [BASE]
      worktree  full checkout
      writes    src/**; outside → revert
      check     ok: `true` (10m00s)
      escalate  1 attempt, 1m00s in all
      deliver   branch on agent/all-src
      beside    api (write scopes may overlap: side by side, results checked for conflicts)

    docs  Write docs
      agent     fx (command: sh "[FIXTURE]")
      base      HEAD → [BASE]
      worktree  full checkout
      writes    docs/**; outside → escalate
      check     ok: `true` (10m00s)
      escalate  1 attempt, 1m00s in all
      deliver   branch on agent/docs

    3 runs, at most 4 at once
    "#);
    // Nothing ran: no run records, no branches, no worktrees.
    assert!(!repo.root.join(".git/agent/runs").exists());
    assert_eq!(repo.heads().len(), 1, "only main: {:?}", repo.heads());
    assert_eq!(repo.worktrees().len(), 1);
}

#[test]
fn json_and_a_base_that_does_not_resolve() {
    let repo = project();
    let out = repo.run(&["plan", "--all", "--allow-overlap", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = plan["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs
        .iter()
        .all(|r| r["waits_for"].as_array().unwrap().is_empty()));
    let api = runs.iter().find(|r| r["task"] == "api").unwrap();
    assert_eq!(api["deny"], serde_json::json!(["src/api/tls.rs"]));
    assert_eq!(api["checks"][0]["timeout_secs"], 600);
    assert_eq!(api["base_commit"], repo.rev("HEAD"));

    let text = repo
        .read(".agents/tasks/docs.md")
        .replace("scope:", "base: release-9\nscope:");
    repo.write(".agents/tasks/docs.md", &text);
    let out = repo.run(&["plan", "docs"]);
    assert_eq!(out.status.code(), Some(2), "a run would fail: bad input");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("base      release-9 → does not resolve: the run would fail"));
    let out = repo.run(&["plan", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no brief `nope`"));
}
