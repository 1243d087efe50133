//! Chained and side-by-side runs: `after:` in a brief (the run starts from
//! the earlier task's result and waits for it in a batch; a failed one
//! means it never starts), the DAG in `plan` (cycles and unknown ids
//! refused at file:line:col, `--matrix`), and runs whose write scopes
//! overlap, side by side from the same base, their conflicts said.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a panic there is the test failing"
)]

mod support;

use serde_json::Value;
use support::{stderr, stdout, Brief, TestRepo};

fn project() -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("chain.sh");
    repo.brief("a", &Brief::new(&["a.txt", "shared.txt"]).title("Write a"));
    repo.brief(
        "b",
        &Brief::new(&["b.txt", "shared.txt"])
            .title("Write b on a")
            .after(&["a"]),
    );
    repo.commit_all("briefs");
    repo
}

fn run_of<'a>(runs: &'a [Value], task: &str) -> &'a Value {
    runs.iter()
        .find(|r| r["task"] == task)
        .unwrap_or_else(|| panic!("no run of {task} in {runs:#?}"))
}

fn record(repo: &TestRepo, run: &Value) -> Value {
    let path = repo
        .run_dir(run["run_id"].as_str().unwrap())
        .join("run.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_chained_run_starts_from_the_result_it_is_after_and_stacks_on_its_branch() {
    let repo = project();
    // Named in the other order: b still waits for a.
    let (code, runs, err) = repo.run_json(&["b", "a", "-j", "2"]);
    assert_eq!(code, 0, "{err}\n{runs:#?}");
    assert!(err.contains("b runs after a"), "{err}");
    let (a, b) = (run_of(&runs, "a"), run_of(&runs, "b"));
    let a_commit = a["commit"].as_str().unwrap();
    // b's commit sits on a's: its tree has a's file and both lines.
    assert_eq!(repo.rev("agent/b~1"), a_commit);
    assert_eq!(repo.show("agent/b", "a.txt").as_deref(), Some("a\n"));
    assert_eq!(
        repo.show("agent/b", "shared.txt").as_deref(),
        Some("a\nb\n")
    );
    let saw = std::fs::read_to_string(repo.out.join("b.saw")).unwrap();
    assert!(saw.lines().any(|l| l == "a.txt"), "b's worktree: {saw}");
    // Judged against a's result: b changed b.txt and shared.txt only.
    let rec = record(&repo, b);
    assert_eq!(rec["base_commit"], a_commit);
    assert_eq!(
        rec["base_branch"], "agent/a",
        "its pull request targets a's branch"
    );
    assert_eq!(rec["chain"]["stacked_on"], "agent/a");
    assert_eq!(rec["chain"]["onto"], "main");
    assert_eq!(rec["chain"]["after"][0]["commit"], a_commit);
    let log = repo.log_md(b["run_id"].as_str().unwrap());
    assert!(log.contains("ran after `a`'s result"), "{log}");
    assert!(log.contains("stacks on `agent/a`"), "{log}");
    assert!(!log.contains("a.txt"), "a's file is not b's change:\n{log}");
}

#[test]
fn when_the_earlier_run_fails_the_later_one_never_starts() {
    let repo = project();
    repo.brief(
        "a",
        &Brief::new(&["a.txt", "shared.txt"]).check("ok", "false"),
    );
    repo.commit_all("a fails");
    let (code, runs, err) = repo.run_json(&["a", "b"]);
    assert_eq!(code, 1, "{err}");
    let b = run_of(&runs, "b");
    assert_eq!(b["outcome"], "failed");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .starts_with("not started: `a`, which it runs after, failed"),
        "{b:#}"
    );
    assert_eq!(b["attempts"], 0);
    assert!(repo.rev_opt("agent/b").is_none());
    assert!(!repo.out.join("b.saw").exists(), "b's agent never ran");
    let out = repo.run(&["status"]);
    assert!(stdout(&out).contains("b"), "{}", stdout(&out));
}

#[test]
fn alone_it_starts_from_the_branch_and_once_that_landed_from_the_base() {
    let repo = project();
    let out = repo.run(&["run", "b"]);
    assert_eq!(out.status.code(), Some(1), "no result of a yet");
    assert!(
        stdout(&out).contains("runs after `a`, which has no result to start from"),
        "{}",
        stdout(&out)
    );
    assert_eq!(repo.run(&["run", "a"]).status.code(), Some(0));
    let (code, b, err) = repo.run_one("b");
    assert_eq!(code, 0, "{err}");
    assert_eq!(repo.rev("agent/b~1"), repo.rev("agent/a"));
    assert_eq!(record(&repo, &b)["base_branch"], "agent/a");
    // a lands on main: b starts from main now, and targets it.
    let out = repo.run(&["land", "a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (code, b, err) = repo.run_one("b");
    assert_eq!(code, 0, "{err}");
    let rec = record(&repo, &b);
    assert_eq!(rec["base_commit"], repo.rev("main"));
    assert_eq!(rec["base_branch"], "main");
    assert!(rec["chain"]["stacked_on"].is_null(), "{rec:#}");
    assert!(rec["chain"]["after"][0]["commit"].is_null());
}

#[test]
fn runs_beside_each_other_are_checked_for_conflicts() {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("chain.sh");
    for t in ["x", "y", "z"] {
        let write = if t == "z" { "z.txt" } else { "shared.txt" };
        repo.brief(
            t,
            &Brief::new(&[&format!("{t}.txt"), write]).on_scope_violation("revert"),
        );
    }
    repo.commit_all("briefs");
    let plan = repo.run(&["plan", "x", "y", "z"]);
    assert!(
        stdout(&plan).contains("  beside    y (write scopes may overlap"),
        "{}",
        stdout(&plan)
    );
    let out = repo.run(&["run", "x", "y", "z", "-j", "3"]);
    assert_eq!(out.status.code(), Some(0), "both succeed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("x: conflicts with agent/y in shared.txt"),
        "{text}"
    );
    assert!(
        text.contains("y: conflicts with agent/x in shared.txt"),
        "{text}"
    );
    assert!(!text.contains("z: conflicts"), "{text}");
    // Side by side: both started from the same base.
    assert_eq!(repo.rev("agent/x~1"), repo.rev("agent/y~1"));
    let status: Value = serde_json::from_slice(&repo.run(&["status", "--json"]).stdout).unwrap();
    let x = run_of(status.as_array().unwrap(), "x").clone();
    assert_eq!(x["conflicts"][0]["branch"], "agent/y");
    let log = repo.log_md(x["run_id"].as_str().unwrap());
    assert!(log.contains("conflicts with `agent/y`"), "{log}");
    // `--allow-overlap` is still accepted (it is how they run anyway).
    assert_eq!(
        repo.run(&["plan", "x", "y", "--allow-overlap"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn the_plan_shows_the_chains_and_the_matrix_one_entry_per_chain() {
    let repo = project();
    repo.brief("c", &Brief::new(&["c.txt"]).after(&["b"]));
    repo.brief("solo", &Brief::new(&["solo.txt"]));
    repo.commit_all("more");
    let out = repo.run(&["plan", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "chains (each in the order it runs; chains are independent)\n  a → b → c\n  solo\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  after     a (this batch: starts from their results once they succeed)"),
        "{text}"
    );
    let out = repo.run(&["plan", "--all", "--matrix"]);
    assert_eq!(out.status.code(), Some(0));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        m,
        serde_json::json!({"include": [
            {"chain": "a", "tasks": "a b c"},
            {"chain": "solo", "tasks": "solo"},
        ]})
    );
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "one line, for $GITHUB_OUTPUT"
    );
    // Planned alone, c says where it would start from.
    let out = repo.run(&["plan", "c"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "b has no result: the run would fail"
    );
    assert!(stdout(&out).contains("  after     b: has no result on agent/b: the run would fail"));
}

#[test]
fn cycles_and_unknown_tasks_are_refused_where_they_are_written() {
    let repo = project();
    repo.write(
        ".agents/tasks/a.md",
        repo.read(".agents/tasks/a.md")
            .replace("title: \"Write a\"\n", "title: \"Write a\"\nafter: [c]\n"),
    );
    repo.brief("c", &Brief::new(&["c.txt"]).after(&["b"]));
    repo.brief("d", &Brief::new(&["d.txt"]).after(&["d"]));
    repo.brief("e", &Brief::new(&["e.txt"]).after(&["bb"]));
    repo.commit_all("a cycle");
    let out = repo.run(&["plan", "a"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("`after` makes a cycle: a → c → b → a"),
        "{err}"
    );
    assert!(err.contains(".agents/tasks/a.md:3:9"), "{err}");
    let out = repo.run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for said in [
        "brief::after-cycle",
        "`after` makes a cycle: b → a → c → b",
        "no brief `bb` in .agents/tasks",
        "did you mean `b`?",
        "`d` runs after itself",
        ".agents/tasks/d.md:3:9",
        ".agents/tasks/e.md:3:9",
    ] {
        assert!(err.contains(said), "`{said}` missing:\n{err}");
    }
    let out = repo.run(&["run", "e"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no brief `bb`"), "{}", stderr(&out));
}

#[test]
fn after_several_tasks_a_run_starts_from_their_merge() {
    let repo = project();
    repo.brief(
        "x",
        &Brief::new(&["x.txt"])
            .title("Write x")
            .on_scope_violation("revert"),
    );
    repo.brief(
        "both",
        &Brief::new(&["both.txt"])
            .after(&["a", "x"])
            .on_scope_violation("revert"),
    );
    repo.commit_all("both");
    let (code, runs, err) = repo.run_json(&["both", "x", "a", "-j", "3"]);
    assert_eq!(code, 0, "{err}\n{runs:#?}");
    let rec = record(&repo, run_of(&runs, "both"));
    // Its start: a merge of a's and x's results, made by git-agent.
    let start = rec["base_commit"].as_str().unwrap();
    let parents = repo.git(&["rev-list", "--parents", "-n", "1", start]);
    let parents: Vec<&str> = parents.split_whitespace().skip(1).collect();
    assert_eq!(parents, [repo.rev("agent/a"), repo.rev("agent/x")]);
    assert_eq!(repo.rev("agent/both~1"), start);
    assert_eq!(repo.show("agent/both", "x.txt").as_deref(), Some("x\n"));
    assert_eq!(repo.show("agent/both", "a.txt").as_deref(), Some("a\n"));
    // Two results: no single branch to stack on; the PR targets the base.
    assert_eq!(rec["base_branch"], "main");
    assert!(rec["chain"]["stacked_on"].is_null());
}

#[test]
fn a_detached_chained_run_waits_for_the_one_queued_before_it() {
    let repo = project();
    let out = repo.run(&["run", "--detach", "a", "b"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let outcome = |id: &str| -> String {
        let out = repo.run(&["status", "--all", "--json"]);
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        runs.iter()
            .find(|r| r["run_id"] == id)
            .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    while ["queued", "running", ""].contains(&outcome(&ids[1]).as_str()) {
        assert!(std::time::Instant::now() < deadline, "b never ended");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(outcome(&ids[0]), "succeeded");
    assert_eq!(outcome(&ids[1]), "succeeded");
    assert_eq!(
        repo.rev("agent/b~1"),
        repo.rev("agent/a"),
        "b built on a's result"
    );
}
