//! `workspace.pool`: worktrees reused across runs, reset to each run's base
//! with nothing of the earlier run left, one run per slot across processes,
//! and a killed run's slot kept until `clean`.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Brief, TestRepo};

fn pool_repo(pool: u32) -> TestRepo {
    let repo = TestRepo::with_files(&[
        ("README.md", "x\n"),
        ("src/lib.rs", "fn a() {}\n"),
        ("docs/guide.md", "guide\n"),
        (".gitignore", "build/\n"),
    ]);
    repo.config_with("pooled.sh", &format!("workspace:\n  pool: {pool}\n"));
    for t in ["a", "b", "c"] {
        repo.brief(t, &Brief::new(&[&format!("{t}.txt")]).timeout("5m"));
    }
    repo.brief(
        "sparse",
        &Brief::new(&["src/**", "sparse.txt"]).read(&["src/**"]),
    );
    repo.commit_all("briefs");
    repo
}

fn run_ok(repo: &TestRepo, task: &str) -> Value {
    let (code, run, stderr) = repo.run_one(task);
    assert_eq!(code, 0, "{stderr}\n{run:#}");
    run
}

fn worktree_ready(repo: &TestRepo, run: &Value) -> Value {
    let events = repo.events(run["run_id"].as_str().expect("id"));
    support::of_type(&events, "worktree_ready")[0].clone()
}

fn seen(repo: &TestRepo, task: &str) -> Vec<String> {
    std::fs::read_to_string(repo.out.join(format!("seen-{task}")))
        .expect("seen")
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

#[test]
fn a_pooled_worktree_gives_what_a_fresh_one_gives_on_a_moved_base() {
    let repo = pool_repo(1);
    let first = run_ok(&repo, "a");
    let ready = worktree_ready(&repo, &first);
    assert_eq!(ready["reused"], Value::Null, "the first is made");
    // The control: what run a left is there, in the pooled worktree, for
    // the next run to find unless it is undone.
    let slot = std::path::PathBuf::from(ready["path"].as_str().expect("path"));
    assert!(slot.join("build/evil").exists(), "run a left its build dir");
    // The base moves: a file changes, one goes, one comes.
    repo.write("README.md", "y\n");
    repo.git(&["rm", "-q", "docs/guide.md"]);
    repo.write("docs/new.md", "new\n");
    repo.commit_all("moved base");

    let pooled = run_ok(&repo, "b");
    let ready = worktree_ready(&repo, &pooled);
    assert_eq!(ready["reused"], true, "{ready}");
    // Nothing of run a is left: not its ignored build dir, not its file.
    let files = seen(&repo, "b");
    assert!(!files.iter().any(|f| f.starts_with("build/")), "{files:?}");
    assert!(
        !files.iter().any(|f| f == "a.txt" || f == "docs/guide.md"),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f == "docs/new.md"), "{files:?}");
    assert!(
        !repo.out.join("fsmonitor-ran").exists(),
        "a planted fsmonitor ran"
    );
    let pooled_tree = repo.rev("agent/b^{tree}");

    // The same brief on the same base, from a fresh worktree (pool: 0).
    repo.config_with("pooled.sh", "workspace:\n  pool: 0\n");
    repo.commit_all("no pool");
    let fresh = run_ok(&repo, "b");
    assert_eq!(worktree_ready(&repo, &fresh)["reused"], Value::Null);
    let fresh_files = seen(&repo, "b");
    assert_eq!(files, fresh_files, "the agent saw the same files");
    // The config commit is the only difference between the two bases.
    let diff = repo.git(&["diff", "--name-only", &pooled_tree, "agent/b^{tree}"]);
    assert_eq!(diff.trim(), ".agents/config.yaml", "{diff}");
}

#[test]
fn a_reused_worktree_takes_the_new_runs_sparse_patterns() {
    let repo = pool_repo(1);
    run_ok(&repo, "a");
    let run = run_ok(&repo, "sparse");
    assert_eq!(worktree_ready(&repo, &run)["reused"], true);
    let files = seen(&repo, "sparse");
    assert!(files.iter().any(|f| f == "src/lib.rs"), "{files:?}");
    assert!(
        !files
            .iter()
            .any(|f| f == "docs/guide.md" || f == "README.md"),
        "outside the read scope: {files:?}"
    );
    // And back to a full checkout.
    let run = run_ok(&repo, "c");
    assert_eq!(worktree_ready(&repo, &run)["reused"], true);
    assert!(seen(&repo, "c").iter().any(|f| f == "docs/guide.md"));
}

#[test]
fn a_slot_is_never_shared_and_a_killed_runs_slot_waits_for_clean() {
    let repo = pool_repo(1);
    run_ok(&repo, "a");
    std::fs::write(repo.out.join("seconds-b"), "30").expect("seconds");
    let mut holder = repo
        .command(&["run", "b"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let start = Instant::now();
    while !repo.out.join("seen-b").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "b never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // b holds the only slot: c, in another process, gets a worktree of its own.
    let c = run_ok(&repo, "c");
    let path = worktree_ready(&repo, &c)["path"]
        .as_str()
        .expect("path")
        .to_string();
    assert!(!path.ends_with("pool-0"), "{path}");
    // b's process dies (SIGKILL): its slot keeps the worktree for inspection.
    let _ = holder.kill();
    let _ = holder.wait();
    let after = run_ok(&repo, "a");
    let path = worktree_ready(&repo, &after)["path"]
        .as_str()
        .expect("path")
        .to_string();
    assert!(
        !path.ends_with("pool-0"),
        "the killed run's worktree is not reused: {path}"
    );
    let status = support::stdout(&repo.run(&["status"]));
    assert!(status.contains("interrupted"), "{status}");
    // clean recovers it; the next run makes the slot afresh.
    let out = repo.run(&["clean"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let again = run_ok(&repo, "a");
    let ready = worktree_ready(&repo, &again);
    assert!(
        ready["path"].as_str().expect("path").ends_with("pool-0"),
        "{ready}"
    );
    assert_eq!(ready["reused"], Value::Null, "made afresh after clean");
    let out = repo.run(&["clean"]);
    assert!(
        support::stdout(&out).contains("removed 1 worktree"),
        "{}",
        support::describe(&out)
    );
}
