//! `git agent land`: a succeeded run's result replayed onto the current tip
//! of its base, the brief's checks run on the landed tree, the base
//! fast-forwarded (with a clean checkout of it) and the result branch and
//! worktree removed — or, when it cannot land, nothing changed. Real
//! repositories, the real binary, the scripted agent `success.sh` (it writes
//! `src/hello.txt`).

mod support;

use serde_json::Value;
use support::{assert_status, describe, of_type, stderr, stdout, Brief, TestRepo};

/// `main` with a config (agent `success.sh`) and the committed brief
/// `hello` (may write `src/**`) whose one check is `check`.
fn project(check: &str) -> TestRepo {
    project_with(check, "")
}

/// As [`project`], with extra config YAML.
fn project_with(check: &str, config: &str) -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config_with("success.sh", config);
    repo.brief(
        "hello",
        &Brief::new(&["src/**"])
            .title("Say hello")
            .check("greets", check),
    );
    repo.commit_all("brief");
    repo
}

/// Runs `hello` to success; its run object.
fn run_hello(repo: &TestRepo) -> Value {
    let (code, run, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "the run succeeds: {run:#}\n{stderr}");
    assert_eq!(run["branch"], "agent/hello");
    run
}

/// `land <args> --json`: the exit code, the JSON printed, stderr.
fn land_json(repo: &TestRepo, run: &str) -> (i32, Value, String) {
    let out = repo.run(&["land", run, "--json"]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("land --json printed no JSON ({e})\n{}", describe(&out));
    });
    (out.status.code().unwrap_or(-1), json, stderr(&out))
}

/// Everything of the user's repository that a refused landing must leave
/// as it was: refs, HEAD, the index file's bytes, what status says, the
/// files of the checkout, the worktrees.
#[derive(Debug, PartialEq)]
struct UserState {
    refs: String,
    head: String,
    index: Vec<u8>,
    status: String,
    files: Vec<(String, String)>,
    worktrees: Vec<String>,
}

fn user_state(repo: &TestRepo) -> UserState {
    let mut files: Vec<(String, String)> = repo
        .git(&["ls-files", "--cached", "--others", "--exclude-standard"])
        .lines()
        .map(|p| (p.to_string(), repo.read(p)))
        .collect();
    files.sort();
    UserState {
        refs: repo.git(&["for-each-ref", "--format=%(refname) %(objectname)"]),
        head: repo.git(&["symbolic-ref", "HEAD"]),
        index: repo.read_bytes(".git/index"),
        status: repo.git(&["status", "--porcelain", "-uall"]),
        files,
        worktrees: repo.worktrees(),
    }
}

/// The run's record as `status --json` shows it.
fn status_of_run(repo: &TestRepo, run: &str) -> Value {
    let out = repo.run(&["status", run, "--json"]);
    assert_status(&out, 0);
    let all: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    all[0].clone()
}

#[test]
fn a_result_lands_on_a_moved_base_with_both_changes() {
    let repo = project("test -f src/hello.txt");
    let run = run_hello(&repo);
    let run_id = run["run_id"].as_str().expect("run id");
    let result = repo.rev("agent/hello");
    // Someone else lands first: main moves on.
    repo.write("README.md", "# Project\n\nMoved on.\n");
    let moved = repo.commit_all("main moved on");

    let (code, landed, said) = land_json(&repo, "hello");
    assert_eq!(code, 0, "{landed:#}\n{said}");
    let main = repo.rev("main");
    assert_eq!(landed["task"], "hello");
    assert_eq!(landed["run_id"], run_id);
    assert_eq!(landed["base_branch"], "main");
    assert_eq!(landed["old_tip"], moved.as_str());
    assert_eq!(landed["new_tip"], main.as_str());
    assert_eq!(landed["replayed"], true);
    assert_eq!(landed["commits"], serde_json::json!([main]));
    assert_eq!(landed["branch_removed"], "agent/hello");
    assert_eq!(landed["checks"][0]["name"], "greets");
    assert_eq!(landed["checks"][0]["passed"], true);

    // A fast-forward of main to a commit holding both changes.
    assert_ne!(main, result, "replayed onto the new tip");
    assert_eq!(repo.rev("main^"), moved);
    assert_eq!(
        repo.show("main", "src/hello.txt"),
        repo.show(&result, "src/hello.txt")
    );
    assert_eq!(
        repo.show("main", "README.md").as_deref(),
        Some("# Project\n\nMoved on.\n")
    );
    let message = repo.git(&["log", "-1", "--format=%B", "main"]);
    assert!(message.contains("Agent-Task: hello"), "{message}");
    // The decision log goes with it.
    let note = repo.git(&["notes", "--ref", "agent", "show", "main"]);
    assert!(note.contains("hello"), "{note}");

    // The result branch and any worktree are gone.
    assert_eq!(repo.rev_opt("refs/heads/agent/hello"), None);
    assert_eq!(repo.worktrees().len(), 1, "{:?}", repo.worktrees());
    // The user's clean checkout of main moved with it.
    assert_eq!(
        repo.read("src/hello.txt"),
        repo.show("main", "src/hello.txt").unwrap()
    );
    assert_eq!(repo.git(&["status", "--porcelain", "-uall"]), "");

    // Recorded: the record, the events, and a second land says so.
    let record = status_of_run(&repo, run_id);
    assert_eq!(record["outcome"], "succeeded");
    assert_eq!(record["landed"]["branch"], "main");
    assert_eq!(record["landed"]["new_tip"], main.as_str());
    assert_eq!(record["landed"]["old_tip"], moved.as_str());
    let events = repo.events(run_id);
    assert_eq!(of_type(&events, "landed").len(), 1, "{events:#?}");
    let again = repo.run(&["land", "hello"]);
    assert_status(&again, 2);
    assert!(
        stderr(&again).contains("already landed"),
        "{}",
        describe(&again)
    );
}

#[test]
fn an_unmoved_base_fast_forwards_to_the_run_s_own_commit_and_the_checkout_follows() {
    let repo = project("test -f src/hello.txt");
    let run = run_hello(&repo);
    let run_id = run["run_id"].as_str().expect("run id").to_string();
    let result = repo.rev("agent/hello");
    let old = repo.rev("main");
    // Untracked files are the user's business: they stay.
    repo.write("notes.txt", "my notes\n");

    // By a prefix of the run id.
    let out = repo.run(&["land", &run_id[..run_id.len() - 2]]);
    assert_status(&out, 0);
    let said = stdout(&out);
    assert!(said.contains("landed hello on main"), "{}", describe(&out));
    assert!(said.contains("removed branch agent/hello"), "{said}");
    assert_eq!(repo.rev("main"), result, "the run's commit itself");
    assert_eq!(repo.rev("main^"), old);
    assert_eq!(
        repo.git(&["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );
    assert_eq!(
        repo.read("src/hello.txt"),
        repo.show(&result, "src/hello.txt").expect("in the result")
    );
    assert_eq!(repo.read("notes.txt"), "my notes\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "?? notes.txt\n");
    assert_eq!(repo.rev_opt("refs/heads/agent/hello"), None);
}

#[test]
fn a_linked_worktree_that_has_the_base_checked_out_is_updated() {
    let repo = project("test -f src/hello.txt");
    run_hello(&repo);
    repo.git(&["checkout", "-q", "-b", "elsewhere"]);
    let side = repo.tmp.join("side");
    repo.git(&[
        "worktree",
        "add",
        "-q",
        side.to_str().expect("utf-8"),
        "main",
    ]);
    assert!(!side.join("src/hello.txt").exists());

    let (code, landed, said) = land_json(&repo, "hello");
    assert_eq!(code, 0, "{landed:#}\n{said}");
    assert_eq!(
        landed["checkouts_updated"],
        serde_json::json!([side.display().to_string()])
    );
    assert!(side.join("src/hello.txt").is_file());
    let status = repo.git(&["-C", side.to_str().expect("utf-8"), "status", "--porcelain"]);
    assert_eq!(status, "", "the worktree matches its new HEAD");
    // The checkout on another branch is not touched.
    assert!(!repo.exists("src/hello.txt"));
    assert_eq!(repo.git(&["branch", "--show-current"]).trim(), "elsewhere");
}

#[test]
fn a_conflict_names_its_paths_and_changes_nothing() {
    let repo = project("test -f src/hello.txt");
    run_hello(&repo);
    repo.write("src/hello.txt", "someone else's hello\n");
    repo.commit_all("a hello of main's own");
    let before = user_state(&repo);

    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("conflicts with main"), "{}", describe(&out));
    assert!(err.contains("src/hello.txt"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(user_state(&repo), before);
    assert!(status_of_run(&repo, "hello").get("landed").is_none());
}

#[test]
fn a_check_that_fails_on_the_landed_tree_refuses_it() {
    let repo = project("test -f src/hello.txt && test ! -e BROKEN");
    run_hello(&repo);
    // What main did since makes the brief's check fail with the result on it.
    repo.write("BROKEN", "main broke it\n");
    repo.commit_all("break the check");
    let before = user_state(&repo);

    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("check `greets` fails on the landed tree (exit code 1)"),
        "{}",
        describe(&out)
    );
    assert!(err.contains("main was not changed"), "{err}");
    assert_eq!(user_state(&repo), before);
    assert_eq!(stdout(&out), "");
    // The checks' worktree is gone too.
    let reviews = repo.root.join(".git/agent/reviews");
    let left: Vec<_> = std::fs::read_dir(&reviews)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_checkout_of_the_base_with_local_changes_refuses_and_keeps_them() {
    let repo = project("test -f src/hello.txt");
    run_hello(&repo);
    repo.write("README.md", "# Project\n\nwork in progress\n");
    repo.write("staged.txt", "staged\n");
    repo.git(&["add", "staged.txt"]);
    let before = user_state(&repo);

    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("main is checked out in") && err.contains("with local changes"),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("README.md") && err.contains("staged.txt"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        user_state(&repo),
        before,
        "refs, index and files as they were"
    );
    assert_eq!(repo.read("README.md"), "# Project\n\nwork in progress\n");
    assert!(repo.rev_opt("refs/heads/agent/hello").is_some());
}

#[test]
fn a_run_that_did_not_succeed_is_refused() {
    let repo = project("false");
    let (code, run, said) = repo.run_one("hello");
    assert_eq!(code, 1, "{run:#}\n{said}");
    let before = user_state(&repo);

    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("failed: only a succeeded run can land"),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("hint: see how it ended with `git agent log"),
        "{err}"
    );
    assert_eq!(user_state(&repo), before);
    let pr = repo.run(&["land", "hello", "--pr"]);
    assert_status(&pr, 2);
    assert!(stderr(&pr).contains("only a succeeded run can land"));

    let unknown = repo.run(&["land", "nope"]);
    assert_status(&unknown, 2);
    assert!(stderr(&unknown).contains("no run or task named `nope`"));
}

#[test]
fn a_base_that_moves_while_the_checks_run_is_not_overwritten() {
    // The check moves main back (a force-push elsewhere) when main has the
    // file MOVE: only on the landed tree. Unconfined, so that it can.
    let repo = project_with(
        "test -f src/hello.txt && if [ -f MOVE ]; then git update-ref refs/heads/main HEAD~2; fi",
        "sandbox:\n  mode: off\n",
    );
    run_hello(&repo);
    let base = repo.rev("main");
    repo.write("MOVE", "\n");
    repo.commit_all("move main when checked");
    repo.git(&["checkout", "-q", "-b", "elsewhere"]);

    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("another update of the branch came first"),
        "{}",
        describe(&out)
    );
    assert_eq!(repo.rev("main"), base, "the concurrent update stands");
    assert!(repo.rev_opt("refs/heads/agent/hello").is_some());
    assert!(status_of_run(&repo, "hello").get("landed").is_none());
}

#[test]
fn a_result_branch_someone_moved_or_merged_by_hand_is_refused() {
    let repo = project("test -f src/hello.txt");
    run_hello(&repo);
    let result = repo.rev("agent/hello");
    // A human's fix-up on the result branch: land it by hand, not this way.
    repo.git(&["checkout", "-q", "agent/hello"]);
    repo.write("src/hello.txt", "fixed up\n");
    repo.commit_all("fix-up");
    repo.git(&["checkout", "-q", "main"]);
    let before = user_state(&repo);
    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 2);
    assert!(
        stderr(&out).contains("the result branch `agent/hello` has moved"),
        "{}",
        describe(&out)
    );
    assert_eq!(user_state(&repo), before);

    // Merged by hand already: nothing to land.
    repo.git(&["branch", "-f", "agent/hello", &result]);
    repo.git(&["merge", "-q", "--ff-only", "agent/hello"]);
    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 2);
    assert!(
        stderr(&out).contains("is already on main"),
        "{}",
        describe(&out)
    );
}

#[test]
fn pr_delivers_a_pull_request_instead_and_lands_nothing() {
    let repo = project("test -f src/hello.txt");
    let run = run_hello(&repo);
    let run_id = run["run_id"].as_str().expect("run id");
    repo.git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/example/project.git",
    ]);
    let before = user_state(&repo);

    // No token: the delivery is tried as a pull request and fails before
    // anything is pushed; nothing lands either way.
    let out = repo.run(&["land", "hello", "--pr"]);
    assert_status(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("delivery failed: no token"),
        "{}",
        describe(&out)
    );
    assert!(!err.contains("landing"), "{err}");
    let record = status_of_run(&repo, run_id);
    assert_eq!(record["delivery"]["mode"], "pr", "{record:#}");
    assert!(record.get("landed").is_none());
    let after = user_state(&repo);
    assert_eq!(after.refs, before.refs);
    assert_eq!(after.files, before.files);
}

#[test]
fn an_untracked_file_in_the_way_keeps_the_checkout_and_the_branch_as_they_were() {
    let repo = project("test -f src/hello.txt");
    run_hello(&repo);
    // The user's own, untracked, where the result adds its file.
    repo.write("src/hello.txt", "mine, not committed\n");
    let before = user_state(&repo);

    let out = repo.run(&["land", "hello"]);
    assert_status(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("cannot move to the landed tree"),
        "{}",
        describe(&out)
    );
    assert!(
        !err.contains("running 1 check"),
        "refused before the checks: {err}"
    );
    assert!(
        err.contains("src/hello.txt") && err.contains("would be overwritten"),
        "{}",
        describe(&out)
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(user_state(&repo), before);
    assert_eq!(repo.read("src/hello.txt"), "mine, not committed\n");
}
