//! End-to-end tests of `git agent run`: the real binary, a throwaway
//! repository, and scripted agents from `tests/fixtures/agents/`.
//!
//! Every test builds its own repository (see `support`), so the tests
//! run in parallel and leave nothing behind.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{alive, kill_if_alive, of_type, trailer, types, Brief, TestRepo};

/// The usual project: `README.md` committed, then agent `fx` running the
/// fixture `script` and the brief `id` committed; returns the repository and
/// that commit.
fn project(script: &str, id: &str, brief: Brief) -> (TestRepo, String) {
    project_with(&[], script, &[(id, brief)])
}

/// As [`project`], with more files in the first commit and any briefs.
fn project_with(
    files: &[(&str, &str)],
    script: &str,
    briefs: &[(&str, Brief)],
) -> (TestRepo, String) {
    let mut all = vec![("README.md", "# Project\n")];
    all.extend_from_slice(files);
    let repo = TestRepo::with_files(&all);
    repo.config(script);
    for (id, brief) in briefs {
        repo.brief(id, brief);
    }
    let base = repo.commit_all("agent config");
    (repo, base)
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// Asserts that `want` occurs in `have` in this order (not necessarily adjacent).
fn assert_subsequence(have: &[String], want: &[&str]) {
    let mut it = have.iter();
    for w in want {
        assert!(
            it.any(|h| h == w),
            "event `{w}` missing or out of order in {have:?}"
        );
    }
}

fn scope_changes(events: &[Value]) -> Vec<Value> {
    of_type(events, "scope_report")
        .last()
        .map(|e| e["changes"].as_array().expect("changes").clone())
        .unwrap_or_default()
}

fn change<'a>(changes: &'a [Value], path: &str) -> &'a Value {
    changes
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change for {path} in {changes:#?}"))
}

// ---------------------------------------------------------------------------
// 1. Success

#[test]
fn success_commits_once_on_the_agent_branch_with_trailers_and_note() {
    let (repo, base) = project(
        "success.sh",
        "hello",
        Brief::new(&["src/**"])
            .title("Say hello")
            .check("has-hello", "grep -q 'hello from hello' src/hello.txt"),
    );

    let (code, run, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["task"], "hello");
    assert_eq!(run["branch"], "agent/hello");
    assert_eq!(run["attempts"], 1);
    assert!(run["worktree"].is_null(), "{run:#}");
    assert!(run["reason"].is_null(), "{run:#}");
    assert_eq!(
        run["checks"],
        serde_json::json!([{"name": "has-hello", "passed": true}])
    );
    let commit = s(&run["commit"]);
    let run_id = s(&run["run_id"]);

    // The branch: one commit on the base, holding exactly the agent's change.
    assert_eq!(repo.rev("agent/hello"), commit);
    assert_eq!(repo.rev("agent/hello^"), base);
    assert_eq!(
        repo.show("agent/hello", "src/hello.txt"),
        Some(format!("hello from hello, attempt 1, run {run_id}\n"))
    );
    assert_eq!(
        repo.git(&["diff", "--name-status", &base, "agent/hello"])
            .trim(),
        "A\tsrc/hello.txt"
    );

    // The commit message: title, goal, trailers.
    let msg = repo.git(&["log", "-1", "--format=%B", "agent/hello"]);
    assert!(
        msg.starts_with("Say hello\n\nMake the scripted change.\n"),
        "{msg}"
    );
    assert_eq!(trailer(&msg, "Agent-Task").as_deref(), Some("hello"));
    assert_eq!(trailer(&msg, "Agent-Run").as_deref(), Some(run_id));
    let blob = repo.git(&["hash-object", ".agents/tasks/hello.md"]);
    assert_eq!(trailer(&msg, "Agent-Brief").as_deref(), Some(blob.trim()));
    assert_eq!(trailer(&msg, "Agent-Outcome").as_deref(), Some("succeeded"));
    // Git itself parses them as trailers.
    let parsed = repo.git(&[
        "log",
        "-1",
        "--format=%(trailers:key=Agent-Task,valueonly)",
        "agent/hello",
    ]);
    assert_eq!(parsed.trim(), "hello");

    // The decision log note.
    let note = repo.git(&["notes", "--ref", "agent", "show", "agent/hello"]);
    assert!(note.starts_with("## ✅ Succeeded — Say hello"), "{note}");
    assert!(note.contains("branch `agent/hello`"), "{note}");
    assert!(note.contains(run_id), "{note}");
    assert!(note.contains("`src/hello.txt`"), "{note}");
    // One cost line for every run: a `command` agent reports none.
    assert!(note.contains("**Cost:** not reported"), "{note}");
    assert_eq!(
        run["usage"],
        serde_json::json!({"input_tokens": null, "output_tokens": null, "cost_usd": null})
    );

    // The worktree is gone, and git knows it.
    assert_eq!(repo.worktrees(), [repo.root.display().to_string()]);
    let events = repo.events("hello");
    let wt_path = s(&of_type(&events, "worktree_ready")[0]["path"]).to_string();
    assert!(
        wt_path.starts_with(&repo.wt.display().to_string()),
        "{wt_path}"
    );
    assert!(!std::path::Path::new(&wt_path).exists(), "{wt_path} kept");

    assert_subsequence(
        &types(&events),
        &[
            "run_started",
            "worktree_ready",
            "attempt_started",
            "agent_finished",
            "scope_report",
            "check_finished",
            "committed",
            "run_finished",
        ],
    );
    let started = of_type(&events, "run_started")[0];
    assert_eq!(started["base_commit"], base.as_str());
    assert_eq!(started["brief_blob"], blob.trim());
    let finished = of_type(&events, "run_finished")[0];
    assert_eq!(finished["outcome"], "succeeded");
    assert_eq!(of_type(&events, "committed")[0]["commit"], commit);

    // The user's checkout did not move.
    assert_eq!(repo.rev("HEAD"), base);
    assert_eq!(
        repo.git(&["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
}

// ---------------------------------------------------------------------------
// 2. Out-of-scope writes

#[test]
fn out_of_scope_write_escalates_and_is_never_committed() {
    let (repo, base) = project(
        "stray.sh",
        "stray",
        Brief::new(&["src/**"]).on_scope_violation("escalate"),
    );

    let (code, run, stderr) = repo.run_one("stray");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "escalated");
    let reason = s(&run["reason"]);
    assert!(
        reason.contains("2 paths outside the scope")
            && reason.contains("`README.md`")
            && reason.contains("`secret.txt`"),
        "{reason}"
    );

    // The in-scope change is kept as a WIP commit, nothing else.
    assert_eq!(run["branch"], "agent/stray");
    assert_eq!(repo.rev("agent/stray^"), base);
    assert_eq!(
        repo.git(&["diff", "--name-status", &base, "agent/stray"])
            .trim(),
        "A\tsrc/in.txt"
    );
    assert_eq!(
        repo.show("agent/stray", "README.md").as_deref(),
        Some("# Project\n")
    );
    assert_eq!(repo.show("agent/stray", "secret.txt"), None);
    let msg = repo.git(&["log", "-1", "--format=%B", "agent/stray"]);
    assert!(
        msg.starts_with("WIP (escalated): Scripted change\n"),
        "{msg}"
    );
    assert_eq!(trailer(&msg, "Agent-Outcome").as_deref(), Some("escalated"));

    // No commit anywhere (notes included) holds the out-of-scope paths.
    assert!(!repo.paths_in_history().contains(&"secret.txt".to_string()));
    let readme_commits = repo.git(&["log", "--all", "--format=%H", "--", "README.md"]);
    let on_main = repo.git(&["log", "main", "--format=%H", "--", "README.md"]);
    assert_eq!(readme_commits, on_main, "README.md changed in a commit");

    // The worktree is kept for a human, with the agent's changes as it left them.
    let wt = std::path::PathBuf::from(s(&run["worktree"]));
    assert!(wt.join("secret.txt").is_file(), "{}", wt.display());
    assert!(std::fs::read_to_string(wt.join("README.md"))
        .expect("README in worktree")
        .contains("changed by the agent"));
    assert_eq!(repo.worktrees().len(), 2);

    let events = repo.events("stray");
    let violations: Vec<&str> = of_type(&events, "violation")
        .iter()
        .map(|v| s(&v["path"]))
        .collect();
    assert_eq!(violations, ["README.md", "secret.txt"]);
    let changes = scope_changes(&events);
    assert_eq!(change(&changes, "README.md")["verdict"], "out_of_scope");
    assert_eq!(change(&changes, "secret.txt")["verdict"], "out_of_scope");
    assert_eq!(change(&changes, "src/in.txt")["verdict"], "allowed");
    assert!(of_type(&events, "check_finished").is_empty(), "checks ran");
    assert_eq!(of_type(&events, "escalated").len(), 1);
    // The note is there for the WIP commit too.
    let note = repo.git(&["notes", "--ref", "agent", "show", "agent/stray"]);
    assert!(note.contains("Needs a human"), "{note}");
}

#[test]
fn out_of_scope_write_is_reverted_with_revert_policy() {
    let (repo, base) = project(
        "stray.sh",
        "stray",
        Brief::new(&["src/**"]).on_scope_violation("revert").check(
            "readme-untouched",
            "test \"$(cat README.md)\" = '# Project' && test ! -e secret.txt",
        ),
    );

    let (code, run, stderr) = repo.run_one("stray");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(
        repo.git(&["diff", "--name-status", &base, "agent/stray"])
            .trim(),
        "A\tsrc/in.txt"
    );
    assert_eq!(
        repo.show("agent/stray", "README.md").as_deref(),
        Some("# Project\n")
    );
    assert!(!repo.paths_in_history().contains(&"secret.txt".to_string()));

    let events = repo.events("stray");
    let reverted = of_type(&events, "reverted");
    assert_eq!(reverted.len(), 1, "{events:#?}");
    assert_eq!(
        reverted[0]["paths"],
        serde_json::json!(["README.md", "secret.txt"])
    );
    assert!(of_type(&events, "violation").is_empty());
    // A second scope report after the revert holds only the in-scope change.
    let reports = of_type(&events, "scope_report");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[1]["changes"].as_array().map(Vec::len), Some(1));
    assert!(repo
        .log_md("stray")
        .contains("reverted 2 out-of-scope paths"));
}

// ---------------------------------------------------------------------------
// 3. deny beats write

#[test]
fn deny_beats_write() {
    let (repo, _) = project(
        "deny.sh",
        "deny",
        Brief::new(&["src/**"]).deny(&["src/secret/**"]),
    );

    let (code, run, stderr) = repo.run_one("deny");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "escalated");
    assert!(s(&run["reason"]).contains("src/secret/key.txt"), "{run:#}");
    let changes = scope_changes(&repo.events("deny"));
    let denied = change(&changes, "src/secret/key.txt");
    assert_eq!(denied["verdict"], "denied");
    assert_eq!(denied["glob"], "src/secret/**");
    let ok = change(&changes, "src/ok.txt");
    assert_eq!(ok["verdict"], "allowed");
    assert_eq!(ok["glob"], "src/**");
    assert_eq!(
        repo.show("agent/deny", "src/ok.txt").as_deref(),
        Some("fine\n")
    );
    assert_eq!(repo.show("agent/deny", "src/secret/key.txt"), None);
    assert!(!repo
        .paths_in_history()
        .contains(&"src/secret/key.txt".to_string()));
    assert!(repo.log_md("deny").contains("⛔ denied by `src/secret/**`"));
}

// ---------------------------------------------------------------------------
// 4. An agent that commits itself

#[test]
fn agent_commits_are_squashed_into_one_commit_with_our_trailers() {
    let (repo, base) = project("self_commit.sh", "commits", Brief::new(&["src/**"]));

    let (code, run, stderr) = repo.run_one("commits");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let count = repo.git(&["rev-list", "--count", &format!("{base}..agent/commits")]);
    assert_eq!(count.trim(), "1");
    assert_eq!(repo.rev("agent/commits^"), base);
    for (path, text) in [
        ("src/a.txt", "first\n"),
        ("src/b.txt", "second\n"),
        ("src/c.txt", "uncommitted\n"),
    ] {
        assert_eq!(
            repo.show("agent/commits", path).as_deref(),
            Some(text),
            "{path}"
        );
    }
    let msg = repo.git(&["log", "-1", "--format=%B", "agent/commits"]);
    assert_eq!(trailer(&msg, "Agent-Task").as_deref(), Some("commits"));
    assert_eq!(
        trailer(&msg, "Agent-Run").as_deref(),
        Some(s(&run["run_id"]))
    );
    // The agent's own commits are on no ref.
    let subjects = repo.git(&["log", "--all", "--format=%s"]);
    assert!(!subjects.contains("agent: first"), "{subjects}");
}

#[test]
fn agent_commits_are_still_scope_checked() {
    let (repo, base) = project("self_commit.sh", "commits-stray", Brief::new(&["src/**"]));

    let (code, run, stderr) = repo.run_one("commits-stray");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert!(s(&run["reason"]).contains("`README.md`"), "{run:#}");
    assert_eq!(
        repo.show("agent/commits-stray", "README.md").as_deref(),
        Some("# Project\n")
    );
    // (The agent's own commits stay reachable from its kept worktree's HEAD,
    // so only the branch is checked here.)
    let readme_commits = repo.git(&[
        "log",
        "--format=%H",
        "agent/commits-stray",
        "--",
        "README.md",
    ]);
    let on_main = repo.git(&["log", "main", "--format=%H", "--", "README.md"]);
    assert_eq!(readme_commits, on_main);
    let count = repo.git(&[
        "rev-list",
        "--count",
        &format!("{base}..agent/commits-stray"),
    ]);
    assert_eq!(count.trim(), "1");
}

// ---------------------------------------------------------------------------
// 5. Deletions, renames, symlinks, modes

#[test]
fn deletion_is_committed() {
    let (repo, base) = project_with(
        &[("src/old.txt", "old\n")],
        "file_kinds.sh",
        &[(
            "delete",
            Brief::new(&["src/**"]).check("gone", "test ! -e src/old.txt"),
        )],
    );

    let (code, run, stderr) = repo.run_one("delete");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(repo.show("agent/delete", "src/old.txt"), None);
    assert_eq!(
        repo.git(&["diff", "--name-status", &base, "agent/delete"])
            .trim(),
        "D\tsrc/old.txt"
    );
    let changes = scope_changes(&repo.events("delete"));
    assert_eq!(change(&changes, "src/old.txt")["kind"], "deleted");
}

#[test]
fn rename_from_outside_the_scope_escalates() {
    let guide = "# Guide\n\nThis guide has enough lines\nthat git sees a rename\nwhen it moves.\n";
    let (repo, _) = project_with(
        &[("docs/guide.md", guide)],
        "file_kinds.sh",
        &[("rename-out", Brief::new(&["src/**"]))],
    );

    let (code, run, stderr) = repo.run_one("rename-out");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    let changes = scope_changes(&repo.events("rename-out"));
    let renamed = change(&changes, "src/guide.md");
    assert_eq!(renamed["kind"], "renamed");
    assert_eq!(renamed["old_path"], "docs/guide.md");
    assert_eq!(renamed["verdict"], "out_of_scope");
    // Neither end of the rename lands; the other in-scope change does.
    assert_eq!(
        repo.show("agent/rename-out", "docs/guide.md").as_deref(),
        Some(guide)
    );
    assert_eq!(repo.show("agent/rename-out", "src/guide.md"), None);
    assert_eq!(
        repo.show("agent/rename-out", "src/in.txt").as_deref(),
        Some("also in scope\n")
    );
}

#[test]
fn symlink_leaving_the_worktree_escalates_and_is_never_committed() {
    let (repo, _) = project_with(
        &[("src/keep.txt", "k\n")],
        "file_kinds.sh",
        &[("symlink", Brief::new(&["src/**"]))],
    );

    let (code, run, stderr) = repo.run_one("symlink");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "escalated");
    let reason = s(&run["reason"]);
    assert!(
        reason.contains("`src/abs-link` is a symlink pointing outside the worktree")
            && reason.contains("`src/rel-link`"),
        "{reason}"
    );
    let history = repo.paths_in_history();
    assert!(
        !history.contains(&"src/abs-link".to_string()),
        "{history:?}"
    );
    assert!(
        !history.contains(&"src/rel-link".to_string()),
        "{history:?}"
    );
    // A symlink that stays inside is fine, and kept as a symlink.
    let tree = repo.git(&["ls-tree", "agent/symlink", "src/ok-link"]);
    assert!(tree.starts_with("120000 "), "{tree}");
    assert_eq!(
        repo.show("agent/symlink", "src/in.txt").as_deref(),
        Some("also in scope\n")
    );

    let events = repo.events("symlink");
    let violations: Vec<&str> = of_type(&events, "violation")
        .iter()
        .map(|v| s(&v["path"]))
        .collect();
    assert_eq!(violations, ["src/abs-link", "src/rel-link"]);
    let changes = scope_changes(&events);
    assert_eq!(
        change(&changes, "src/abs-link")["symlink_target"],
        "/etc/passwd"
    );
}

#[test]
fn mode_change_is_a_change() {
    let (repo, _) = project_with(
        &[("src/run.sh", "echo hi\n")],
        "file_kinds.sh",
        &[(
            "mode",
            Brief::new(&["src/**"]).check("executable", "test -x src/run.sh"),
        )],
    );
    assert!(repo
        .git(&["ls-tree", "HEAD", "src/run.sh"])
        .starts_with("100644 "));

    let (code, run, stderr) = repo.run_one("mode");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let tree = repo.git(&["ls-tree", "agent/mode", "src/run.sh"]);
    assert!(tree.starts_with("100755 "), "{tree}");
    let changes = scope_changes(&repo.events("mode"));
    assert_eq!(change(&changes, "src/run.sh")["kind"], "mode changed");
}

// ---------------------------------------------------------------------------
// 6. Retries

fn fixed_check() -> &'static str {
    "grep -qx fixed src/value.txt || { echo \"expected fixed, got $(cat src/value.txt)\"; exit 1; }"
}

#[test]
fn failing_check_is_retried_with_feedback() {
    let (repo, _) = project(
        "retry.sh",
        "retry",
        Brief::new(&["src/**"])
            .check("value-is-fixed", fixed_check())
            .attempts(2),
    );

    let (code, run, stderr) = repo.run_one("retry");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["attempts"], 2);
    assert_eq!(
        repo.show("agent/retry", "src/value.txt").as_deref(),
        Some("fixed\n")
    );
    let feedback = repo
        .show("agent/retry", "src/feedback.txt")
        .expect("the agent kept its feedback");
    assert!(
        feedback.contains("Check `value-is-fixed` failed"),
        "{feedback}"
    );
    assert!(
        feedback.contains("expected fixed, got broken"),
        "{feedback}"
    );
    assert!(feedback.contains(fixed_check()), "{feedback}");

    let events = repo.events("retry");
    let checks: Vec<(u64, bool)> = of_type(&events, "check_finished")
        .iter()
        .map(|c| (c["attempt"].as_u64().unwrap_or(0), c["passed"] == true))
        .collect();
    assert_eq!(checks, [(1, false), (2, true)]);
    let failed = of_type(&events, "attempt_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "check `value-is-fixed` failed");
    // The prompt of the last attempt carries the feedback too.
    let prompt = std::fs::read_to_string(repo.run_dir(s(&run["run_id"])).join("prompt.md"))
        .expect("prompt.md");
    assert!(prompt.contains("## Feedback from attempt 1"), "{prompt}");
}

#[test]
fn all_attempts_failing_fails_and_keeps_the_worktree() {
    let (repo, _) = project(
        "retry.sh",
        "never",
        Brief::new(&["src/**"])
            .check("never", "echo 'this never passes'; exit 1")
            .attempts(2),
    );

    let (code, run, stderr) = repo.run_one("never");
    assert_eq!(code, 1, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["attempts"], 2);
    assert_eq!(
        run["reason"],
        "check `never` failed on the last attempt (2 of 2)"
    );
    assert!(
        run["branch"].is_null() && run["commit"].is_null(),
        "{run:#}"
    );
    assert_eq!(repo.rev_opt("refs/heads/agent/never"), None);
    let wt = std::path::PathBuf::from(s(&run["worktree"]));
    assert_eq!(
        std::fs::read_to_string(wt.join("src/value.txt")).expect("kept work"),
        "fixed\n"
    );
    assert_eq!(repo.worktrees().len(), 2);
    assert_eq!(
        run["checks"],
        serde_json::json!([{"name": "never", "passed": false}])
    );
}

// ---------------------------------------------------------------------------
// 7. Timeout

#[test]
fn timeout_escalates_and_kills_the_agent_and_its_grandchild() {
    let (repo, _) = project("timeout.sh", "slow", Brief::new(&["src/**"]).timeout("2s"));

    let start = Instant::now();
    let (code, run, stderr) = repo.run_one("slow");
    let elapsed = start.elapsed();
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(run["outcome"], "escalated");
    assert!(s(&run["reason"]).contains("time limit of 2s"), "{run:#}");

    let pid = |name: &str| -> i32 {
        std::fs::read_to_string(repo.out.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .parse()
            .expect("a pid")
    };
    let (agent, grandchild) = (pid("agent.pid"), pid("grandchild.pid"));
    assert!(!alive(agent), "agent {agent} survived the run");
    assert!(
        !alive(grandchild),
        "grandchild {grandchild} survived the run"
    );

    let events = repo.events("slow");
    let finished = of_type(&events, "agent_finished");
    assert_eq!(finished[0]["timed_out"], true);
    assert!(finished[0]["signal"].is_i64(), "{:#}", finished[0]);
    // The work done before the limit is kept as WIP.
    assert_eq!(
        repo.show("agent/slow", "src/partial.txt").as_deref(),
        Some("partial work\n")
    );
}

/// nextest's rule: when the leader dies of the SIGTERM, the children that
/// handle it get the rest of the grace period before SIGKILL.
#[test]
fn children_that_handle_sigterm_get_the_grace_period() {
    let (repo, _) = project(
        "term_child.sh",
        "slow",
        Brief::new(&["src/**"]).timeout("1s"),
    );
    // In a PID namespace (the init passes SIGTERM on and waits) and without
    // one (the supervisor waits for the group).
    for env in [&[][..], &[("GIT_AGENT_SIMULATE_NO_PID_NAMESPACE", "1")]] {
        let _ = std::fs::remove_file(repo.out.join("child.txt"));
        let (code, runs, stderr) = repo.run_json_env(&["slow"], env);
        let run = &runs[0];
        assert_eq!(code, 3, "{env:?}: stderr:\n{stderr}\nrun: {run:#}");
        assert_eq!(
            std::fs::read_to_string(repo.out.join("child.txt"))
                .ok()
                .as_deref(),
            Some("graceful\n"),
            "{env:?}: the child was killed before it could finish: {run:#}"
        );
    }
}

/// What git-agent does after the agent counts against the run's limit: with
/// no allowance left after it, what a timed-out agent left is not taken in
/// (the run escalates at once, saying so), where the test above, with the
/// default allowance, keeps it as WIP — the control.
#[test]
fn staging_past_the_time_limit_is_bounded() {
    let (repo, _) = project("timeout.sh", "slow", Brief::new(&["src/**"]).timeout("1s"));
    let (code, runs, stderr) = repo.run_json_env(
        &["slow"],
        &[("GIT_AGENT_SIMULATE_STAGING_ALLOWANCE_MS", "0")],
    );
    let run = &runs[0];
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "escalated");
    assert!(
        s(&run["reason"]).contains("before git-agent could take in what the agent left"),
        "{run:#}"
    );
    assert_eq!(repo.show("agent/slow", "src/partial.txt"), None);
}

// ---------------------------------------------------------------------------
// 8. Loud agents

#[test]
fn huge_agent_output_is_capped_on_disk() {
    let (repo, _) = project("loud.sh", "loud", Brief::new(&["src/**"]));

    let (code, run, stderr) = repo.run_one("loud");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let path = repo.run_dir(s(&run["run_id"])).join("agent-1.stdout");
    let size = std::fs::metadata(&path).expect("agent stdout").len();
    let note = "[git-agent: output truncated after 8388608 bytes; 11611392 bytes discarded]\n";
    // The cut falls mid-line, so the note starts on a line of its own.
    assert_eq!(size, 8 * 1024 * 1024 + 1 + note.len() as u64);
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.ends_with(format!("\n{note}").as_bytes()));
    assert!(bytes.starts_with(b"line of agent output\nline of agent output\n"));
    let events = repo.events("loud");
    assert_eq!(
        of_type(&events, "agent_finished")[0]["stdout_bytes"],
        20_000_000
    );
    assert_eq!(
        repo.show("agent/loud", "src/out.txt").as_deref(),
        Some("done\n")
    );
}

// ---------------------------------------------------------------------------
// 9. The user's checkout

#[test]
fn the_users_checkout_is_untouched() {
    let (repo, _) = project_with(
        &[("src/lib.txt", "lib\n")],
        "stray.sh",
        &[
            ("inside", Brief::new(&["src/**", "README.md", "secret.txt"])),
            ("outside", Brief::new(&["src/**"])),
        ],
    );
    // A stash entry, a staged change, an unstaged change, an untracked file.
    repo.write("README.md", "# Project\nstashed\n");
    repo.git(&["stash", "push", "-q", "-m", "saved work"]);
    repo.write("src/lib.txt", "lib, staged\n");
    repo.git(&["add", "src/lib.txt"]);
    repo.write("README.md", "# Project\ndirty, not staged\n");
    repo.write("notes.txt", "untracked\n");
    // Let git settle the index's stat data before taking the snapshot.
    repo.git(&["update-index", "-q", "--refresh"]);

    let snapshot = |repo: &TestRepo| {
        let index = std::fs::read(repo.root.join(".git/index")).expect("index");
        let heads: Vec<String> = repo
            .heads()
            .into_iter()
            .filter(|h| !h.starts_with("refs/heads/agent/"))
            .collect();
        (
            repo.rev("HEAD"),
            repo.git(&["symbolic-ref", "HEAD"]),
            repo.git(&["status", "--porcelain=v1", "--untracked-files=all"]),
            repo.git(&["stash", "list"]),
            heads,
            index,
            repo.read("README.md"),
            repo.read("src/lib.txt"),
            repo.read("notes.txt"),
        )
    };
    let before = snapshot(&repo);

    let (code, runs, stderr) = repo.run_json(&["inside", "outside"]);
    assert_eq!(code, 3, "stderr:\n{stderr}");
    assert_eq!(runs[0]["outcome"], "succeeded");
    assert_eq!(runs[1]["outcome"], "escalated");
    // The agents worked from the commit, not from the dirty files.
    assert_eq!(
        repo.show("agent/inside", "README.md").as_deref(),
        Some("# Project\nchanged by the agent\n")
    );
    assert_eq!(
        repo.show("agent/inside", "src/lib.txt").as_deref(),
        Some("lib\n")
    );

    let after = snapshot(&repo);
    assert_eq!(before.0, after.0, "HEAD moved");
    assert_eq!(before.1, after.1, "the current branch changed");
    assert_eq!(before.2, after.2, "git status changed");
    assert_eq!(before.3, after.3, "the stash changed");
    assert_eq!(before.4, after.4, "branches other than agent/* changed");
    assert!(before.5 == after.5, "the index file changed");
    assert_eq!(
        (&before.6, &before.7, &before.8),
        (&after.6, &after.7, &after.8),
        "working files changed"
    );
}

// ---------------------------------------------------------------------------
// 10. Tokens

#[test]
fn forge_tokens_and_other_secrets_never_reach_the_agent() {
    let (repo, _) = project(
        "env_dump.sh",
        "tokens",
        Brief::new(&["src/**"]).check("no-tokens-in-checks", "! env | grep -E 'TOKEN|AWS_SECRET'"),
    );

    let (code, runs, stderr) = repo.run_json_env(
        &["tokens"],
        &[
            ("GITHUB_TOKEN", "secret"),
            ("GH_TOKEN", "secret2"),
            ("AWS_SECRET", "x"),
        ],
    );
    let run = &runs[0];
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let env = repo.show("agent/tokens", "src/env.txt").expect("env dump");
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for secret in ["GITHUB_TOKEN", "GH_TOKEN", "AWS_SECRET"] {
        assert!(
            !names.contains(&secret),
            "{secret} reached the agent:\n{env}"
        );
    }
    let run_id = s(&run["run_id"]);
    let run_dir = repo.run_dir(run_id).display().to_string();
    for line in [
        format!("GIT_AGENT_RUN_ID={run_id}"),
        "GIT_AGENT_TASK=tokens".to_string(),
        format!("GIT_AGENT_PROMPT_FILE={run_dir}/prompt.md"),
        format!("GIT_AGENT_DECISIONS={run_dir}/decisions.jsonl"),
        "GIT_AGENT_ATTEMPT=1".to_string(),
        format!("GIT_AGENT_FEEDBACK_FILE={run_dir}/feedback.md"),
        format!("TMPDIR={run_dir}/tmp"),
        format!("FIXTURE_OUT={}", repo.out.display()),
        format!("HOME={}", repo.home.display()),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "missing `{line}` in:\n{env}"
        );
    }
    assert!(
        !names.contains(&"XDG_CACHE_HOME"),
        "not in the allowlist:\n{env}"
    );
}

// ---------------------------------------------------------------------------
// 11. Branches that are not ours

#[test]
fn a_foreign_branch_is_never_overwritten() {
    let (repo, base) = project("success.sh", "hello", Brief::new(&["src/**"]));
    // Someone else already works on agent/hello.
    repo.git(&["switch", "-q", "-c", "agent/hello"]);
    repo.write("theirs.txt", "someone else's work\n");
    let foreign = repo.commit_all("someone else");
    repo.git(&["switch", "-q", "main"]);

    let (code, first, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert_eq!(first["branch"], "agent/hello-2");
    assert_eq!(repo.rev("agent/hello"), foreign);
    assert_eq!(repo.rev("agent/hello-2"), s(&first["commit"]));

    // A second run of the same task moves its own branch (not stacked).
    let (code, second, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert_eq!(second["branch"], "agent/hello-2");
    assert_ne!(second["commit"], first["commit"]);
    assert_eq!(repo.rev("agent/hello-2"), s(&second["commit"]));
    assert_eq!(repo.rev("agent/hello-2^"), base);
    assert_eq!(repo.rev("agent/hello"), foreign);

    // Once a human commits on top of the run's branch, it is theirs.
    repo.git(&["switch", "-q", "agent/hello-2"]);
    repo.write("review.txt", "a reviewer's fix\n");
    let human = repo.commit_all("review fix");
    repo.git(&["switch", "-q", "main"]);
    let (code, third, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert_eq!(third["branch"], "agent/hello-3");
    assert_eq!(repo.rev("agent/hello-2"), human);
    assert_eq!(repo.rev("agent/hello"), foreign);
}

#[test]
fn a_branch_checked_out_by_the_user_is_not_moved() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let (code, first, _) = repo.run_one("hello");
    assert_eq!(code, 0);
    // The user checks the run's branch out to look at it.
    repo.git(&["switch", "-q", "agent/hello"]);
    let (code, second, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert_eq!(second["branch"], "agent/hello-2");
    assert_eq!(repo.rev("agent/hello"), s(&first["commit"]));
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

// ---------------------------------------------------------------------------
// 12. Decisions

/// The decisions file is the agent's: a huge line or a huge file costs
/// git-agent a bounded amount of memory and log, and says so.
#[test]
fn a_flood_of_decisions_is_read_up_to_a_bound() {
    let (repo, _) = project("decisions_flood.sh", "flood", Brief::new(&["src/**"]));
    let (code, run, stderr) = repo.run_one("flood");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let id = s(&run["run_id"]);
    // Control: the agent really wrote that much.
    let written = std::fs::metadata(repo.run_dir(id).join("decisions.jsonl"))
        .expect("decisions file")
        .len();
    assert!(written > 3_000_000, "{written}");
    let events = repo.events(id);
    let rejected = of_type(&events, "decision_rejected");
    assert!(
        rejected.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("longer than 16 KiB"))),
        "{rejected:?}"
    );
    assert!(
        rejected.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("the rest is not read"))),
        "{rejected:?}"
    );
    // Decisions up to the bound are read, the rest are not.
    let read = of_type(&events, "decision").len();
    assert!(read > 1000 && read < 5000, "{read} decisions read");
    let log = std::fs::metadata(repo.run_dir(id).join("events.jsonl"))
        .expect("events")
        .len();
    assert!(log < 1_000_000, "events.jsonl is {log} bytes");
}

/// What the agent wrote is shown, never obeyed: in the Markdown log (the
/// note, the PR body) no HTML, image, link, mention or forged marker of
/// its survives as markup, and on the terminal no escape sequence.
#[test]
fn untrusted_text_is_neither_markup_nor_terminal_control() {
    let check = "printf 'out ````\\n</details>\\n\\033[31mred\\n'; false";
    let (repo, _) = project(
        "markup.sh",
        "markup",
        Brief::new(&["src/**"]).check("shows", check),
    );
    let (_, run, stderr) = repo.run_one("markup");
    let id = s(&run["run_id"]);
    // Control: the payload reached git-agent as written.
    let decisions =
        std::fs::read_to_string(repo.run_dir(id).join("decisions.jsonl")).expect("decisions");
    assert!(
        decisions.contains("<!-- git-agent task=other -->"),
        "{decisions}"
    );
    let events = repo.events(id);
    let decision = &of_type(&events, "decision")[0];
    assert!(s(&decision["summary"]).contains("<img src=x"), "{decision}");
    assert!(s(&decision["summary"]).contains('\u{1b}'), "{decision}");

    let md = repo.log_md("markup");
    for raw in ["<!--", "<img", "![t]", "[click](", "@octocat", "\u{1b}"] {
        assert!(!md.contains(raw), "`{raw}` survives in:\n{md}");
    }
    // A chosen option with backticks stays one code span (where `<b>` is
    // text): its fence is longer than the backticks inside.
    assert!(md.contains("chose ``x` <b>bold</b> `y``"), "{md}");
    // Closing tags in the agent's text are text.
    assert!(md.contains("&lt;/details&gt;"), "{md}");
    // The check's output stays inside its block: the fence is longer than
    // the backticks the output holds.
    let block = md
        .split("<summary>")
        .nth(1)
        .expect("a failed check's block");
    assert!(block.contains("`````text"), "{block}");

    let out = repo.run(&["log", "markup"]);
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(
        !terminal.contains('\u{1b}'),
        "an escape reached the terminal"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape reached the progress lines"
    );
}

#[test]
fn decisions_from_json_lines_and_decide_land_in_the_log() {
    let (repo, _) = project("decide.sh", "decisions", Brief::new(&["src/**"]));

    let (code, run, stderr) = repo.run_one("decisions");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let md = repo.log_md("decisions");
    for line in [
        "- **Assumption** (attempt 1): the input is UTF-8, because every fixture is",
        "- **Decision** (attempt 1): x — chose `a` over `b`, because c",
        "- **Surprise** (attempt 1): via git",
    ] {
        assert!(md.lines().any(|l| l == line), "missing `{line}` in:\n{md}");
    }
    let events = repo.events("decisions");
    let decisions = of_type(&events, "decision");
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions[1]["options"], serde_json::json!(["a", "b"]));
    assert_eq!(decisions[1]["chosen"], "a");
    assert_eq!(decisions[1]["why"], "c");
    // The note on the commit is the same log.
    let note = repo.git(&["notes", "--ref", "agent", "show", "agent/decisions"]);
    assert!(note.contains("chose `a` over `b`, because c"), "{note}");
}

#[test]
fn an_invalid_decision_line_is_rejected_and_an_escalate_decision_escalates() {
    let (repo, _) = project_with(
        &[],
        "decide.sh",
        &[
            ("bad-line", Brief::new(&["src/**"])),
            ("ask-human", Brief::new(&["src/**"])),
        ],
    );

    let (code, runs, stderr) = repo.run_json(&["bad-line", "ask-human"]);
    assert_eq!(code, 3, "stderr:\n{stderr}");
    assert_eq!(runs[0]["outcome"], "succeeded");
    let events = repo.events("bad-line");
    let rejected = of_type(&events, "decision_rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["line"], "this is not json");
    assert_eq!(
        of_type(&events, "decision").len(),
        1,
        "the valid line still counts"
    );
    assert!(repo
        .log_md("bad-line")
        .contains("a decision line was not valid JSON"));

    assert_eq!(runs[1]["outcome"], "escalated");
    assert_eq!(
        runs[1]["reason"],
        "the agent asked for a human: the brief contradicts the tests"
    );
    let md = repo.log_md("ask-human");
    assert!(
        md.contains("- **Asked for a human** (attempt 1): the brief contradicts the tests"),
        "{md}"
    );
    // Its in-scope work is kept as WIP for the human.
    assert_eq!(
        repo.show("agent/ask-human", "src/work.txt").as_deref(),
        Some("work\n")
    );
    assert!(of_type(&repo.events("ask-human"), "check_finished").is_empty());
}

// ---------------------------------------------------------------------------
// 13. The Markdown log

#[test]
fn markdown_log_snapshot() {
    let (repo, _) = project(
        "story.sh",
        "story",
        Brief::new(&["src/**"])
            .title("Fix the value")
            .check("value-is-fixed", fixed_check())
            .and_check("readme", "test -f README.md")
            .attempts(2)
            .on_scope_violation("revert"),
    );
    let (code, run, stderr) = repo.run_one("story");
    assert_eq!(code, 0, "{stderr}");
    let md = repo.log_md("story");
    // The note on the commit is the same document.
    let note = repo.git(&["notes", "--ref", "agent", "show", s(&run["commit"])]);
    assert_eq!(note.trim_end(), md.trim_end());
    let tmp = repo.tmp.display().to_string();
    insta::with_settings!({filters => vec![
        (tmp.as_str(), "[TMP]"),
        // The sandbox summary depends on the kernel and the machine
        // (present only where Landlock is), so the snapshot leaves it out.
        (r" · confined: [^<]*", ""),
        (r"\b\d{8}-\d{6}-[a-z0-9_-]+-[0-9a-f]{4}\b", "[RUN_ID]"),
        (r"\b[0-9a-f]{7,40}\b", "[HASH]"),
        (r"\b\d+(\.\d+)?(ms|s)\b", "[DURATION]"),
        (r"\b\d+m\d\ds\b", "[DURATION]"),
    ]}, {
        insta::assert_snapshot!(md, @r###"
        ## ✅ Succeeded — Fix the value

        task `story` · branch `agent/story` · 2 of 2 attempts · [DURATION] · agent `fx`

        **Cost:** not reported

        ### Goal

        Make the scripted change.

        ### Decisions

        - **Decision** (attempt 1): store the value as plain text — chose `plain text` over `json`, because the check greps it
        - **Assumption** (attempt 2): the check wants exactly one line

        ### Scope

        1 file changed, +1 −0

        | Path | Change | Lines | Verdict |
        |---|---|---|---|
        | `src/value.txt` | added | +1 −0 | ✅ `src/**` |

        ### Checks

        | Attempt | value-is-fixed | readme |
        |---|---|---|
        | 1 | ❌ [DURATION] | ✅ [DURATION] |
        | 2 | ✅ [DURATION] | ✅ [DURATION] |

        ```mermaid
        timeline
            title Attempts and checks
            Attempt 1 : agent [DURATION] : ❌ value-is-fixed : ✅ readme
            Attempt 2 : agent [DURATION] : ✅ value-is-fixed : ✅ readme
        ```

        <details><summary>❌ <code>value-is-fixed</code> failed on attempt 1</summary>

        ```text
        expected fixed, got broken
        ```

        </details>

        ### What happened

        - ↩️ attempt 1: reverted 1 out-of-scope path: `README.md`
        - attempt 1 failed: check `value-is-fixed` failed

        ---
        <sub>base `HEAD` @ `[HASH]` · brief `.agents/tasks/story.md` (blob `[HASH]`) · run `[RUN_ID]`</sub>
        "###);
    });
}

// ---------------------------------------------------------------------------
// 14. status and clean

#[test]
fn status_lists_runs_and_clean_removes_kept_worktrees_only() {
    let (repo, _) = project_with(
        &[],
        "stray.sh",
        &[
            ("all-in", Brief::new(&["src/**", "README.md", "secret.txt"])),
            ("stays-out", Brief::new(&["src/**"])),
            (
                "fails",
                Brief::new(&["src/**"])
                    .on_scope_violation("revert")
                    .check("never", "false"),
            ),
        ],
    );

    let (code, runs, stderr) = repo.run_json(&["all-in", "stays-out", "fails"]);
    assert_eq!(
        code, 1,
        "a failed run wins over an escalated one; stderr:\n{stderr}"
    );
    let outcomes: Vec<&str> = runs.iter().map(|r| s(&r["outcome"])).collect();
    assert_eq!(outcomes, ["succeeded", "escalated", "failed"]);
    let (code, again, _) = repo.run_one("all-in");
    assert_eq!(code, 0);

    let status = repo.run(&["status", "--json"]);
    assert!(status.status.success());
    let latest: Vec<Value> = serde_json::from_slice(&status.stdout).expect("status JSON");
    let tasks: Vec<&str> = latest.iter().map(|r| s(&r["task"])).collect();
    assert_eq!(tasks, ["stays-out", "fails", "all-in"]);
    assert_eq!(latest[2]["run_id"], again["run_id"]);
    let kept: Vec<String> = latest
        .iter()
        .filter_map(|r| r["worktree"].as_str().map(str::to_string))
        .collect();
    assert_eq!(kept.len(), 2, "{latest:#?}");
    assert!(kept.iter().all(|w| std::path::Path::new(w).is_dir()));
    let all = repo.run(&["status", "--all", "--json"]);
    let all: Vec<Value> = serde_json::from_slice(&all.stdout).expect("status JSON");
    assert_eq!(all.len(), 4);
    // The human-readable status mentions the kept worktrees.
    let text = String::from_utf8_lossy(&repo.run(&["status"]).stdout).into_owned();
    assert!(text.contains("2 worktrees kept for inspection"), "{text}");

    let heads = repo.heads();
    assert_eq!(repo.worktrees().len(), 3);
    let clean = repo.run(&["clean"]);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(
        String::from_utf8_lossy(&clean.stdout).starts_with("removed 2 worktrees"),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
    assert_eq!(repo.worktrees(), [repo.root.display().to_string()]);
    assert!(kept.iter().all(|w| !std::path::Path::new(w).exists()));
    assert_eq!(repo.heads(), heads, "clean touched branches");
    let after: Vec<Value> =
        serde_json::from_slice(&repo.run(&["status", "--json"]).stdout).expect("status JSON");
    assert!(after.iter().all(|r| r["worktree"].is_null()), "{after:#?}");
    // Outcomes survive the clean.
    let outcomes: Vec<&str> = after.iter().map(|r| s(&r["outcome"])).collect();
    assert_eq!(outcomes, ["escalated", "failed", "succeeded"]);
}

// ---------------------------------------------------------------------------
// 15. Usage errors

#[test]
fn unknown_task_is_a_usage_error_with_a_hint() {
    let (repo, _) = project("success.sh", "fix-greeting", Brief::new(&["src/**"]));

    let out = repo.run(&["run", "fix-gretting", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no brief `fix-gretting` in .agents/tasks"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `fix-greeting`?"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        !repo.root.join(".git/agent/runs").exists(),
        "a run was recorded"
    );
}

#[test]
fn invalid_brief_is_a_usage_error_with_the_diagnostic() {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("success.sh");
    repo.brief("good", &Brief::new(&["src/**"]));
    repo.write(
        ".agents/tasks/broken.md",
        "---\ntitle: Broken\nscope:\n  wirte: [\"src/**\"]\nchecks:\n  - name: ok\n    run: \"true\"\n---\n# Goal\nx\n",
    );
    repo.commit_all("agent config");

    let out = repo.run(&["run", "good", "broken", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.md"), "{stderr}");
    assert!(stderr.contains("wirte"), "{stderr}");
    assert!(stderr.contains("write"), "{stderr}");
    // Nothing ran, not even the valid brief.
    assert!(out.stdout.is_empty());
    assert!(
        !repo.root.join(".git/agent/runs").exists(),
        "a run was recorded"
    );
}

// ---------------------------------------------------------------------------
// 16. Sparse worktrees

#[test]
fn sparse_worktree_holds_read_and_write_scopes_only() {
    let (repo, base) = project_with(
        &[
            ("src/a/x.txt", "x\n"),
            ("src/b/y.txt", "y\n"),
            ("docs/d.md", "d\n"),
        ],
        "list_files.sh",
        &[("sparse", Brief::new(&["src/a/**"]).read(&["docs/**"]))],
    );

    let (code, run, stderr) = repo.run_one("sparse");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let listing = repo
        .show("agent/sparse", "src/a/listing.txt")
        .expect("listing");
    let files: Vec<&str> = listing.lines().collect();
    assert!(files.contains(&"docs/d.md"), "{listing}");
    assert!(files.contains(&"src/a/x.txt"), "{listing}");
    assert!(!files.iter().any(|f| f.starts_with("src/b")), "{listing}");
    assert!(!files.contains(&"README.md"), "{listing}");
    // What was not materialized is not deleted.
    assert_eq!(
        repo.git(&["diff", "--name-status", &base, "agent/sparse"])
            .trim(),
        "A\tsrc/a/listing.txt"
    );
    assert_eq!(
        repo.show("agent/sparse", "src/b/y.txt").as_deref(),
        Some("y\n")
    );
    let events = repo.events("sparse");
    assert_eq!(of_type(&events, "worktree_ready")[0]["sparse"], true);
    assert_eq!(scope_changes(&events).len(), 1);
}

// ---------------------------------------------------------------------------
// 17. Parallel runs

#[test]
fn parallel_runs_side_by_side_and_a_chained_one_after_its_predecessor() {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("parallel.sh");
    for (id, write) in [
        ("one-a", "src/one/**"),
        ("one-b", "src/one/**"),
        ("docs-a", "docs/**"),
        ("docs-x", "docs/x.md"),
        ("alpha", "alpha/**"),
        ("beta", "beta/**"),
    ] {
        let brief = Brief::new(&[write]);
        // Ordered by `after:`; overlapping scopes alone order nothing.
        let brief = if id == "one-b" {
            brief.after(&["one-a"])
        } else {
            brief
        };
        repo.brief(id, &brief);
    }
    repo.commit_all("agent config");

    let ids = ["one-a", "one-b", "docs-a", "docs-x", "alpha", "beta"];
    let mut args = vec!["run", "-j", "4", "--json"];
    args.extend(ids);
    let out = repo.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let tasks: Vec<&str> = runs.iter().map(|r| s(&r["task"])).collect();
    assert_eq!(tasks, ids);
    assert!(
        runs.iter().all(|r| r["outcome"] == "succeeded"),
        "{runs:#?}"
    );
    for r in &runs {
        let branch = s(&r["branch"]);
        assert_eq!(branch, format!("agent/{}", s(&r["task"])));
    }
    assert!(stderr.contains("one-b runs after one-a"), "{stderr}");
    assert!(
        stderr.contains("docs-a and docs-x may write the same files: they run side by side"),
        "{stderr}"
    );
    assert!(!stderr.contains("one-a and one-b may"), "chained: {stderr}");

    let time = |name: &str| -> u128 {
        std::fs::read_to_string(repo.out.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .parse()
            .expect("ns")
    };
    assert!(
        time("one-b.start") >= time("one-a.end"),
        "one-b started before one-a ended"
    );
    assert!(
        time("docs-x.start") < time("docs-a.end") && time("docs-a.start") < time("docs-x.end"),
        "docs-a and docs-x did not run side by side"
    );
    // Their results merge: no conflict said.
    assert!(
        runs.iter().all(|r| r.get("conflicts").is_none()),
        "{runs:#?}"
    );
}

// ---------------------------------------------------------------------------
// Probes beyond the list

/// An agent shares the ref store with the user's repository: it can create
/// branches and move the user's checked-out branch from inside its worktree.
#[test]
fn agent_cannot_move_the_users_branch() {
    let (repo, base) = project("refs.sh", "refs", Brief::new(&["src/**"]));

    let (code, run, stderr) = repo.run_one("refs");
    let run_id = run["run_id"].as_str().expect("run id");
    let events = repo.events(run_id);
    let confined = of_type(&events, "sandbox")
        .first()
        .is_some_and(|s| s["enforcement"] == "landlock");
    if !confined {
        // Without Landlock (mode auto) the shared ref store is writable.
        println!("Landlock unavailable: the agent was not confined; skipping");
        return;
    }
    // The sandbox makes `refs/` read-only: `git branch` fails, so does the
    // script (set -e), before it reaches `main`.
    assert_eq!(
        repo.rev("refs/heads/main"),
        base,
        "the agent moved main; run: {run:#}\n{stderr}"
    );
    assert_eq!(
        repo.rev_opt("refs/heads/agent-scratch"),
        None,
        "the agent made a branch"
    );
    let agent_stderr =
        std::fs::read_to_string(repo.run_dir(run_id).join("agent-1.stderr")).unwrap_or_default();
    assert!(
        agent_stderr.contains("agent-scratch"),
        "the refused attempt is in the agent's log: {agent_stderr}; exit {code}"
    );
}

/// `symlink_escapes` judges a symlink's target lexically, but the kernel
/// resolves symlinks on the way: through `src/here -> .`, `here/..` is the
/// worktree root, not `src`.
#[test]
fn symlink_escaping_through_another_symlink_is_caught() {
    let (repo, _) = project_with(
        &[("src/keep.txt", "k\n")],
        "file_kinds.sh",
        &[("symlink-chain", Brief::new(&["src/**"]))],
    );

    let (code, run, stderr) = repo.run_one("symlink-chain");
    // The symlink really leaves: rebuild it from the branch (or the kept
    // worktree) and let the kernel resolve it.
    if let Some(target) = repo.show("agent/symlink-chain", "src/leak") {
        let dir = repo.tmp.join("resolve/a/b/c/d/e/f/src");
        std::fs::create_dir_all(&dir).expect("dir");
        std::os::unix::fs::symlink(".", dir.join("here")).expect("here");
        std::os::unix::fs::symlink(&target, dir.join("leak")).expect("leak");
        assert_eq!(
            std::fs::canonicalize(dir.join("leak")).expect("resolves"),
            std::path::Path::new("/etc/passwd")
        );
    }
    // Was: exit 0 and `src/leak` (→ /etc/passwd once resolved) committed.
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    assert!(!repo.paths_in_history().contains(&"src/leak".to_string()));
}

/// A reviewer amends the run's commit (`git commit --amend` keeps the
/// trailers); re-running the task must not throw their amend away.
#[test]
fn an_amended_agent_commit_is_not_overwritten() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let (code, _, _) = repo.run_one("hello");
    assert_eq!(code, 0);
    repo.git(&["switch", "-q", "agent/hello"]);
    repo.write("src/review.txt", "the reviewer's fix\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "--amend", "--no-edit"]);
    let amended = repo.rev("HEAD");
    repo.git(&["switch", "-q", "main"]);

    let (code, second, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "{stderr}");
    // Was: the tip still carries `Agent-Task: hello`, so it counted as ours
    // and the amend was left only in the reflog.
    assert_eq!(repo.rev("agent/hello"), amended, "run: {second:#}");
    assert_eq!(second["branch"], "agent/hello-2");
}

/// A check's own leftovers (build output, caches) end up in the worktree;
/// on the next attempt they are counted as the agent's changes.
#[test]
fn check_artifacts_are_not_scope_violations_on_retry() {
    let (repo, _) = project(
        "retry.sh",
        "artifact",
        Brief::new(&["src/**"])
            .check(
                "value-is-fixed",
                &format!("echo built > build-output.txt; {}", fixed_check()),
            )
            .attempts(2),
    );

    let (code, run, stderr) = repo.run_one("artifact");
    // Was: exit 3, "1 path outside the scope: `build-output.txt`" on
    // attempt 2, although only the check wrote it.
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["attempts"], 2);
}

/// The checks judge the tree that is committed: a file the agent left
/// where git ignores it (build output, a stale artefact, a planted helper)
/// is out of their sight.
#[test]
fn a_check_does_not_pass_on_a_file_the_commit_does_not_have() {
    let check = "test -f src/work.txt && test -f src/helper.txt";
    let (repo, _) = project(
        "ignored_helper.sh",
        "ignored",
        Brief::new(&["src/**"]).check("helper", check).attempts(1),
    );
    let (code, run, stderr) = repo.run_one("ignored");
    assert_eq!(run["outcome"], "failed", "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(code, 1);
    let id = s(&run["run_id"]);
    let events = repo.events(id);
    let aside = of_type(&events, "set_aside");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0]["paths"], serde_json::json!(["src/helper.txt"]));
    // Control: in the worktree as the agent left it the check passes; the
    // file is back there for a later attempt, and it is not in the tree.
    let wt = std::path::PathBuf::from(s(&run["worktree"]));
    let status = std::process::Command::new("sh")
        .args(["-c", check])
        .current_dir(&wt)
        .status()
        .expect("sh");
    assert!(
        status.success(),
        "control: the check passes where the file is"
    );
    let tracked = repo.git(&[
        "-C",
        &wt.display().to_string(),
        "check-ignore",
        "src/helper.txt",
    ]);
    assert_eq!(tracked.trim(), "src/helper.txt");
}

/// A daemon that leaves the process group and drops the run marker from
/// its environment is out of reach of the sweep.
#[test]
fn a_daemon_without_the_marker_does_not_outlive_the_run() {
    let (repo, _) = project("escape.sh", "escape", Brief::new(&["src/**"]));

    let (code, run, stderr) = repo.run_one("escape");
    let pid: i32 = std::fs::read_to_string(repo.out.join("daemon.pid"))
        .expect("daemon.pid")
        .trim()
        .parse()
        .expect("pid");
    // Do not leave it behind for the rest of the suite.
    let survived = kill_if_alive(pid);
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    let events = repo.events(run["run_id"].as_str().expect("run id"));
    let tracked = of_type(&events, "sandbox")
        .first()
        .is_some_and(|s| s["user_namespace"] == true);
    if !tracked {
        // Without a user namespace per run, only the marker finds processes.
        println!("user namespaces unavailable: the daemon cannot be tracked; skipping");
        return;
    }
    // The run's processes share a user namespace no process can leave; the
    // sweep kills every process in it.
    assert!(!survived, "daemon {pid} outlived the run");
}

/// A base that does not resolve is bad input, not a failed run: exit 2, the
/// brief's `base:` line named, nothing recorded.
#[test]
fn a_base_that_does_not_resolve_is_an_input_error() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let text = repo
        .read(".agents/tasks/hello.md")
        .replacen("scope:", "base: release-9\nscope:", 1);
    repo.write(".agents/tasks/hello.md", &text);
    repo.commit_all("a base that does not exist");
    let out = repo.run(&["run", "hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = text
        .lines()
        .position(|l| l.starts_with("base:"))
        .expect("base line")
        + 1;
    assert!(
        stderr.contains(&format!(
            ".agents/tasks/hello.md:{line}:1: `base: release-9` does not resolve"
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("does not resolve").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        !repo.root.join(".git/agent/runs").exists()
            || std::fs::read_dir(repo.root.join(".git/agent/runs"))
                .expect("runs")
                .next()
                .is_none(),
        "a run was recorded"
    );
}

/// In a repository without a commit there is nothing to start from: said
/// once, as bad input, with what to do.
#[test]
fn a_repository_without_commits_is_an_input_error() {
    let repo = TestRepo::new();
    repo.config("success.sh");
    repo.brief("hello", &Brief::new(&["src/**"]));
    let out = repo.run(&["run", "hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no commits yet"), "{stderr}");
    assert!(stderr.contains("commit something first"), "{stderr}");
}

/// The progress says why a run tries again: which check failed, and how.
#[test]
fn a_retry_says_which_check_failed_and_how() {
    let (repo, _) = project(
        "retry.sh",
        "again",
        Brief::new(&["src/**"])
            .check("value-is-fixed", fixed_check())
            .attempts(2),
    );
    let (code, _, stderr) = repo.run_one("again");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("[again] agent (attempt 2/2), after `value-is-fixed` (exit code 1) failed"),
        "{stderr}"
    );
}

/// `log` takes `--json` like every other command, and says when a task
/// with a brief simply has not run yet.
#[test]
fn log_takes_json_and_knows_a_task_that_never_ran() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let out = repo.run(&["log", "hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("task `hello` has not run yet"), "{stderr}");
    assert!(stderr.contains("git agent run hello"), "{stderr}");
    let (code, _, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "{stderr}");
    let out = repo.run(&["log", "hello", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["run"]["task"], "hello");
}

/// The note lives in the user's repository: however long the log, it is
/// folded to 1 MiB (and says so); `git agent log` still shows all of it.
#[test]
fn the_note_is_bounded() {
    let (repo, _) = project("many_files.sh", "many", Brief::new(&["src/**"]));
    let (code, run, stderr) = repo.run_one("many");
    assert_eq!(code, 0, "{stderr}");
    let full = repo.run(&["log", "many"]);
    assert!(
        full.stdout.len() > 1 << 20,
        "control: the whole log is over 1 MiB"
    );
    let note = repo.git(&["notes", "--ref", "agent", "show", s(&run["commit"])]);
    assert!(
        note.chars().count() <= 1 << 20,
        "note of {} chars",
        note.chars().count()
    );
    assert!(
        note.contains("Trimmed to 1 MiB"),
        "{}",
        &note[..300.min(note.len())]
    );
    assert!(note.contains("### Checks"), "the checks stay");
}

/// `diff` shows a run's result against its base, each file under the glob
/// that allowed it; a run that committed nothing has none.
#[test]
fn diff_shows_the_result_with_its_globs() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let (code, _, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "{stderr}");
    let out = repo.run(&["diff", "hello"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "# src/hello.txt: allowed by `src/**`\ndiff --git a/src/hello.txt b/src/hello.txt\n"
        ),
        "{text}"
    );
    assert!(text.contains("+hello from hello, attempt 1"), "{text}");

    // Its check fails: the run fails and commits nothing.
    let (repo, _) = project(
        "success.sh",
        "nothing",
        Brief::new(&["src/**"]).check("no", "false"),
    );
    let (code, _, _) = repo.run_one("nothing");
    assert_eq!(code, 1);
    let out = repo.run(&["diff", "nothing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("committed nothing"));
}

/// The decision log is the product: when the notes ref cannot be written,
/// the run fails and says why (its branch stays), and `git agent deliver`
/// writes the missing note from the run's records once it can.
#[test]
fn a_run_whose_log_cannot_be_written_fails_loudly_and_recovers() {
    let (repo, base) = project("success.sh", "hello", Brief::new(&["src/**"]));
    // A ref below refs/notes/agent makes that name a directory: git cannot
    // write the notes ref there (control: plain git refuses too).
    repo.git(&["update-ref", "refs/notes/agent/blocker", &base]);
    let control = repo.git_output(&["notes", "--ref", "agent", "add", "-m", "x", &base]);
    assert!(
        !control.status.success(),
        "control: git cannot write the notes ref"
    );
    let (code, run, stderr) = repo.run_one("hello");
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(run["outcome"], "failed", "{run:#}");
    let reason = s(&run["reason"]);
    assert!(
        reason.contains("its decision log could not be written to refs/notes/agent"),
        "{reason}"
    );
    let commit = s(&run["commit"]).to_string();
    assert_eq!(repo.rev("agent/hello"), commit, "the branch stays");

    // Once the ref can be written, deliver writes the note first.
    repo.git(&["update-ref", "-d", "refs/notes/agent/blocker"]);
    let out = repo.run(&["deliver", "hello", "--mode", "push"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrote the decision log note"), "{err}");
    let note = repo.git(&["notes", "--ref", "agent", "show", &commit]);
    assert!(note.contains("Scripted change"), "{note}");
}

/// A `git gc --prune=now` by the user while a run's checks run must not
/// take the change set the run is about to commit (its objects are kept
/// reachable from `refs/agent/runs/<run>` until the commit holds them).
#[test]
fn a_gc_during_the_checks_loses_nothing() {
    let (repo, _) = project(
        "success.sh",
        "gc",
        Brief::new(&["src/**"]).check(
            "waits",
            "while [ ! -f \"$TMPDIR/go\" ]; do sleep 0.05; done",
        ),
    );
    let stdout = repo.tmp.join("gc-run.out");
    let mut child = repo
        .command(&["run", "gc", "--json"])
        .stdout(std::fs::File::create(&stdout).expect("stdout"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the run");
    // Wait until the check runs: the run's record says so.
    let runs = repo.root.join(".git/agent/runs");
    let start = Instant::now();
    let run_dir = loop {
        let checking = std::fs::read_dir(&runs).ok().and_then(|mut d| {
            d.find_map(|e| {
                let dir = e.ok()?.path();
                let record = std::fs::read_to_string(dir.join("run.json")).ok()?;
                record.contains("\"state\": \"checking\"").then_some(dir)
            })
        });
        if let Some(dir) = checking {
            break dir;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the check never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let gc = repo.git_output(&["gc", "--prune=now", "-q"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    std::fs::write(run_dir.join("tmp/go"), "").expect("let the check finish");
    let status = child.wait().expect("run ends");
    let out = std::fs::read_to_string(&stdout).expect("stdout");
    assert!(status.success(), "{out}");
    let content = repo
        .show("agent/gc", "src/hello.txt")
        .expect("the change is committed");
    assert!(content.starts_with("hello from gc"), "{content}");
    assert!(
        repo.git(&["for-each-ref", "refs/agent/"]).trim().is_empty(),
        "the protecting ref is gone"
    );
}

/// The summary names a kept worktree only when there is one: a run that
/// failed before its worktree was made says no "(worktree kept: …)".
#[test]
fn the_summary_names_only_a_worktree_that_exists() {
    // The agent's script is missing: the run fails, its worktree is kept;
    // then the worktree is removed by hand.
    let (repo, _) = project("no-such-script.sh", "gone", Brief::new(&["src/**"]));
    let (code, run, stderr) = repo.run_one("gone");
    assert_eq!(code, 1, "{stderr}");
    let wt = s(&run["worktree"]).to_string();
    let out = repo.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("(worktree kept: {wt})")), "{text}");
    std::fs::remove_dir_all(&wt).expect("remove the worktree");
    let out = repo.run(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("worktree kept"), "{text}");
}

/// Results that cannot be written are never lost without a word: a full
/// disk behind stdout fails the command (after the run did its work and
/// recorded it), while a reader that went away (`| head`) is no error.
#[test]
fn results_that_cannot_be_written_fail_the_command() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let full = || {
        std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    // Control: writing to /dev/full fails.
    assert!(
        std::io::Write::write_all(&mut full(), b"x").is_err(),
        "control"
    );

    let out = repo
        .command(&["run", "hello", "--json"])
        .stdout(full())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("could not write the results to stdout: No space left on device"),
        "{stderr}"
    );
    // The run itself was done and recorded.
    let status = repo.run(&["status", "--json"]);
    let runs: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs:#}");

    for args in [&["status"][..], &["list"], &["log", "hello"]] {
        let out = repo
            .command(args)
            .stdout(full())
            .output()
            .expect("git-agent");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A reader that stops early is not an error.
    let out = repo
        .command(&["list"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            drop(child.stdout.take());
            child.wait_with_output()
        })
        .expect("list");
    assert!(
        out.status.success()
            || std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(libc::SIGPIPE),
        "{:?}",
        out.status
    );
}

/// A damaged `run.json` does not hide its run: `status` shows it from its
/// events (as failed, saying why), `clean` removes its worktree and the
/// leftovers of failed atomic writes, and the damaged bytes are kept.
#[test]
fn a_damaged_record_is_shown_and_cleaned() {
    let (repo, _) = project("stray.sh", "stray", Brief::new(&["src/**"]));
    let (code, run, stderr) = repo.run_one("stray");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    let id = s(&run["run_id"]).to_string();
    let worktree = std::path::PathBuf::from(s(&run["worktree"]));
    assert!(worktree.exists());
    let dir = repo.run_dir(&id);
    std::fs::write(dir.join("run.json"), "{\"schema\": 1, \"run_id\": \"cut he").expect("damage");
    std::fs::write(dir.join(".run.json.tmp999999"), "half a record").expect("leftover");
    // Control: the record does not parse.
    assert!(
        serde_json::from_slice::<Value>(&std::fs::read(dir.join("run.json")).expect("read"))
            .is_err()
    );

    let out = repo.run(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let shown = runs
        .as_array()
        .and_then(|a| a.iter().find(|r| r["run_id"] == id.as_str()))
        .unwrap_or_else(|| panic!("the damaged run is not listed: {runs:#}"));
    assert_eq!(shown["task"], "stray", "{shown:#}");
    assert_eq!(shown["outcome"], "failed", "{shown:#}");
    assert!(s(&shown["reason"]).contains("damaged"), "{shown:#}");
    let log = repo.run(&["log", &id]);
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );

    let out = repo.run(&["clean"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !worktree.exists(),
        "clean removed the damaged run's worktree"
    );
    assert!(
        !dir.join(".run.json.tmp999999").exists(),
        "the leftover is gone"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("run.json.damaged")).expect("kept"),
        "{\"schema\": 1, \"run_id\": \"cut he"
    );
    let fsck = repo.git_output(&["fsck"]);
    assert!(fsck.status.success());
}

/// A clock stepped back (NTP) leaves runs that finished "in the future":
/// `clean --older-than` keeps them; it never takes a fresh run for an old
/// one.
#[test]
fn clean_older_than_keeps_runs_from_the_future() {
    let (repo, _) = project("stray.sh", "stray", Brief::new(&["src/**"]));
    let (code, run, stderr) = repo.run_one("stray");
    assert_eq!(code, 3, "stderr:\n{stderr}\nrun: {run:#}");
    let worktree = std::path::PathBuf::from(s(&run["worktree"]));
    let path = repo.run_dir(s(&run["run_id"])).join("run.json");
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("record")).expect("JSON");
    record["finished_at"] = Value::from("2099-01-01T00:00:00Z");
    record["started_at"] = Value::from("2099-01-01T00:00:00Z");
    std::fs::write(&path, serde_json::to_vec(&record).expect("encode")).expect("write");

    let out = repo.run(&["clean", "--older-than", "1s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        worktree.exists(),
        "a run from the future was taken for an old one"
    );
    // Control: without the age limit, clean removes it.
    let out = repo.run(&["clean"]);
    assert!(out.status.success());
    assert!(!worktree.exists());
}

/// The variable the config names as the forge token (`github.token_env`)
/// never reaches a git child git-agent starts (nor the agent: `pass_env`
/// refuses it). A `git` on PATH in front of the real one logs which of
/// its children saw it; another variable set the same way is the control.
#[test]
fn a_custom_token_variable_reaches_no_git_child() {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config_with("success.sh", "github:\n  token_env: MY_FORGE_TOKEN\n");
    repo.brief("hello", &Brief::new(&["src/**"]));
    repo.commit_all("agent config");
    let real = String::from_utf8_lossy(
        &std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .expect("which git")
            .stdout,
    )
    .trim()
    .to_string();
    let bin = repo.tmp.join("wrapbin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = repo.tmp.join("git-env.log");
    let wrapper = bin.join("git");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ -n \"$MY_FORGE_TOKEN\" ] && echo \"token $1\" >> '{0}'\n[ -n \"$OTHER_VALUE\" ] && echo \"other $1\" >> '{0}'\nexec '{real}' \"$@\"\n",
            log.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        std::path::Path::new(support::BIN)
            .parent()
            .expect("dir")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = repo
        .command(&["run", "hello"])
        .env("PATH", path)
        .env("MY_FORGE_TOKEN", "ghp_customCanary0123456789")
        .env("OTHER_VALUE", "x")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        seen.contains("other "),
        "control: git children see the environment:\n{seen}"
    );
    assert!(
        !seen.contains("token "),
        "git children saw the token:\n{seen}"
    );
}

/// A run whose checks passed but whose commit failed (here: its branch ref
/// cannot be created) keeps its verified result, says how to finish it, and
/// `--resume` commits it without running the agent or the checks again.
#[test]
fn a_run_whose_commit_failed_resumes_at_the_commit() {
    let (repo, _) = project(
        "counting.sh",
        "hello",
        Brief::new(&["src/**"]).check("has-file", "test -f src/hello.txt"),
    );
    // `refs/heads/agent/hello` cannot exist beside a ref below it.
    repo.git(&["update-ref", "refs/heads/agent/hello/blocker", "HEAD"]);
    let (code, run, stderr) = repo.run_one("hello");
    assert_eq!(code, 1, "stderr:\n{stderr}\nrun: {run:#}");
    assert_eq!(run["outcome"], "failed");
    let id = s(&run["run_id"]).to_string();
    assert!(
        s(&run["reason"]).contains(&format!("git agent run --resume {id}")),
        "{run:#}"
    );
    // Control: the commit really was impossible.
    assert!(repo.rev_opt("agent/hello").is_none());

    repo.git(&["update-ref", "-d", "refs/heads/agent/hello/blocker"]);
    let out = repo.run(&["run", "--resume", &id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs:#}");
    assert_eq!(
        repo.show("agent/hello", "src/hello.txt").as_deref(),
        Some("hello\n")
    );
    let invocations = std::fs::read_to_string(repo.out.join("invocations")).expect("count");
    assert_eq!(invocations.lines().count(), 1, "the agent ran again");
    let events = repo.events(&id);
    assert_eq!(
        of_type(&events, "check_finished").len(),
        1,
        "the checks ran again"
    );
    let note = repo.git(&["notes", "--ref", "refs/notes/agent", "show", "agent/hello"]);
    assert!(note.contains("hello"), "{note}");
    let fsck = repo.git_output(&["fsck"]);
    assert!(fsck.status.success());
}

/// "The latest run" of a task is the one made last, whatever the clock
/// said: a run started after the clock was stepped back is still the latest.
#[test]
fn the_latest_run_is_the_last_one_made_whatever_the_clock() {
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let (_, first, _) = repo.run_one("hello");
    let (_, second, _) = repo.run_one("hello");
    // The clock was stepped back between the two runs.
    let path = repo.run_dir(s(&second["run_id"])).join("run.json");
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("record")).expect("JSON");
    record["started_at"] = Value::from("2001-01-01T00:00:00Z");
    std::fs::write(&path, serde_json::to_vec(&record).expect("encode")).expect("write");
    let out = repo.run(&["status", "hello", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(
        shown[0]["run_id"], second["run_id"],
        "first was {}",
        first["run_id"]
    );
}

/// What will run is what is committed — or the user is told: a brief with
/// uncommitted edits, and a script the config names that `.gitignore`
/// keeps out of the tree, are each a warning before the run.
#[test]
fn uncommitted_briefs_and_ignored_scripts_are_warned_about() {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n"), (".gitignore", "tools/\n")]);
    repo.write("tools/agent.sh", "mkdir -p src && echo hi > src/hi.txt\n");
    repo.write(
        ".agents/config.yaml",
        "default_agent: fx\nagents:\n  fx:\n    adapter: command\n    command: sh tools/agent.sh\nsandbox:\n  mode: off\n",
    );
    repo.brief("hello", &Brief::new(&["src/**"]));
    repo.commit_all("agent config");
    // Control: git does not have the script.
    assert!(repo.git(&["ls-files", "tools"]).trim().is_empty());
    let text = repo
        .read(".agents/tasks/hello.md")
        .replace("# Goal", "# Goal\n\nEdited after the commit.");
    repo.write(".agents/tasks/hello.md", &text);

    for args in [&["plan", "hello"][..], &["run", "hello"]] {
        let out = repo.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("warning: .agents/tasks/hello.md has changes that are not committed"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(
                "`tools/agent.sh` (named by agents.fx.command) is not in the committed tree"
            ),
            "{args:?}: {stderr}"
        );
    }
    // Committed and tracked: no warning.
    repo.write(".gitignore", "");
    repo.commit_all("commit the brief and the script");
    let out = repo.run(&["plan", "hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning:"), "{stderr}");
}

/// Unmounts a directory when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk where git-agent keeps its records (`.git/agent`, here a
/// tiny tmpfs, filled): the run fails saying so, nothing is half-done in
/// the user's repository, and it is usable again once there is space.
#[test]
fn a_full_disk_under_the_records_fails_the_run_loudly() {
    if !nix::unistd::Uid::effective().is_root() {
        println!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let (repo, _) = project("success.sh", "hello", Brief::new(&["src/**"]));
    let agent_dir = repo.root.join(".git/agent");
    std::fs::create_dir_all(&agent_dir).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&agent_dir)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount a tmpfs");
    let guard = Mounted(agent_dir.clone());
    // Fill it (control: nothing more fits).
    let _ = std::fs::write(agent_dir.join("filler"), vec![0u8; 1 << 20]);
    assert!(
        std::fs::write(agent_dir.join("probe"), vec![0u8; 8192]).is_err(),
        "control: the disk is full"
    );
    let before = repo.git(&["status", "--porcelain"]);

    let out = repo.run(&["run", "hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "a panic: {stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        before,
        "the user's checkout changed"
    );
    assert!(
        repo.rev_opt("agent/hello").is_none(),
        "a branch of a half-recorded run"
    );
    assert!(repo.git_output(&["fsck"]).status.success());

    // With space again, the next run works.
    std::fs::remove_file(agent_dir.join("filler")).expect("free");
    let (code, run, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "stderr:\n{stderr}\nrun: {run:#}");
    drop(guard);
}
