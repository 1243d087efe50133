//! `git agent review`: a change judged by the brief at its merge base —
//! scope, unsafe links, escalate.paths, and the brief's checks run in a
//! throwaway worktree — on real repositories with the real binary.

mod support;

use serde_json::Value;
use support::{Brief, TestRepo};

/// `main` with a config, the brief `hello` (may write `src/**`, one check
/// that `src/hello.txt` says hello) and a feature branch `change` off it.
fn project() -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("success.sh");
    repo.brief(
        "hello",
        &Brief::new(&["src/**"])
            .title("Say hello")
            .check("greets", "grep -q hello src/hello.txt"),
    );
    repo.commit_all("brief");
    repo.git(&["checkout", "-q", "-b", "change"]);
    repo
}

/// Commits `brief` as `hello` on main (the rules a review reads) and
/// rebases the branch `change` onto it.
fn rebrief(repo: &TestRepo, brief: &Brief, message: &str) {
    repo.git(&["checkout", "-q", "main"]);
    repo.brief("hello", brief);
    repo.commit_all(message);
    repo.git(&["checkout", "-q", "change"]);
    repo.git(&["rebase", "-q", "main"]);
}

fn review(repo: &TestRepo, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["review"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = repo.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn an_in_scope_change_whose_checks_pass_passes() {
    let repo = project();
    repo.write("src/hello.txt", "hello\n");
    repo.commit_all("add hello\n\nAgent-Task: hello");
    let before = repo.git(&["status", "--porcelain"]);
    let (code, r, stderr) = review(&repo, &["change", "--base", "main"]);
    assert_eq!(code, 0, "{r:#}\n{stderr}");
    assert_eq!(r["verdict"], "pass");
    assert_eq!(r["task"], "hello", "from the Agent-Task trailer");
    assert_eq!(r["head"], repo.rev("change"));
    assert_eq!(r["base"], repo.rev("main"));
    assert_eq!(r["changes"][0]["path"], "src/hello.txt");
    assert_eq!(r["changes"][0]["verdict"], "allowed");
    assert_eq!(r["checks"][0]["name"], "greets");
    assert_eq!(r["checks"][0]["passed"], true);
    // Nothing of the review is left behind, and the checkout is untouched.
    assert_eq!(repo.worktrees().len(), 1, "{:?}", repo.worktrees());
    assert_eq!(repo.git(&["status", "--porcelain"]), before);
    assert_eq!(repo.git(&["branch", "--show-current"]).trim(), "change");
}

#[test]
fn a_path_outside_the_scope_fails_and_the_checks_still_run() {
    let repo = project();
    repo.write("src/hello.txt", "hello\n");
    repo.write("Makefile", "all:\n");
    repo.commit_all("hello and a Makefile");
    let (code, r, stderr) = review(&repo, &["change", "--base", "main", "--task", "hello"]);
    assert_eq!(code, 1, "{r:#}\n{stderr}");
    assert_eq!(r["verdict"], "fail");
    assert_eq!(
        r["violations"],
        serde_json::json!(["`Makefile` is outside the scope"])
    );
    assert_eq!(r["checks"][0]["passed"], true);
}

#[test]
fn checks_may_use_git_but_never_write_the_repository_s_objects() {
    let repo = project();
    repo.write("src/hello.txt", "hello\n");
    repo.commit_all("hello\n\nAgent-Task: hello");
    let brief = Brief::new(&["src/**"]).title("Say hello").check(
        "stashes",
        "echo 'a scratch object' | git hash-object -w --stdin && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m scratch && grep -q hello src/hello.txt",
    );
    rebrief(&repo, &brief, "a check that uses git");
    let objects = || {
        let out = repo.git(&["count-objects", "-v"]);
        out.lines()
            .find_map(|l| l.strip_prefix("count: "))
            .unwrap()
            .to_string()
    };
    let before = objects();
    let (code, r, stderr) = review(&repo, &["change", "--base", "main", "--task", "hello"]);
    assert_eq!(code, 0, "{r:#}\n{stderr}");
    assert_eq!(r["checks"][0]["passed"], true, "{r:#}");
    assert_eq!(
        objects(),
        before,
        "the check's objects stayed in the review's store"
    );
}

#[test]
fn a_failing_check_fails_with_its_output() {
    let repo = project();
    repo.write("src/hello.txt", "goodbye\n");
    repo.commit_all("wrong greeting");
    let brief = Brief::new(&["src/**"]).title("Say hello").check(
        "greets",
        "echo 'no hello here'; grep -q hello src/hello.txt",
    );
    // The brief on main decides; rewrite it there.
    rebrief(&repo, &brief, "stricter brief");
    let (code, r, _) = review(&repo, &["change", "--base", "main", "--task", "hello"]);
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["checks"][0]["passed"], false);
    assert_eq!(r["checks"][0]["exit"], "exit 1");
    assert!(
        r["checks"][0]["output_tail"]
            .as_str()
            .unwrap()
            .contains("no hello here"),
        "{r:#}"
    );
}

#[test]
fn a_change_cannot_widen_its_own_scope_or_weaken_its_checks() {
    let repo = project();
    repo.write("src/hello.txt", "goodbye\n");
    repo.write("Makefile", "all:\n");
    // The change rewrites its brief: everything allowed, the check `true`.
    repo.brief(
        "hello",
        &Brief::new(&["**"])
            .title("Say hello")
            .check("greets", "true"),
    );
    repo.commit_all("widen\n\nAgent-Task: hello");
    let (code, r, stderr) = review(&repo, &["change", "--base", "main"]);
    assert_eq!(code, 1, "{r:#}\n{stderr}");
    let violations: Vec<&str> = r["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        violations.contains(&"`Makefile` is outside the scope"),
        "{violations:?}"
    );
    assert!(
        violations.contains(&"`.agents/tasks/hello.md` is outside the scope"),
        "{violations:?}"
    );
    assert_eq!(r["checks"][0]["command"], "grep -q hello src/hello.txt");
    assert_eq!(r["checks"][0]["passed"], false, "the base's check ran");
}

#[test]
fn escalate_paths_and_unsafe_links_are_judged() {
    let repo = project();
    let brief = Brief::new(&["src/**"])
        .title("Say hello")
        .check("greets", "true")
        .render()
        .replace("escalate:\n", "escalate:\n  paths: [\"src/secret/**\"]\n");
    repo.git(&["checkout", "-q", "main"]);
    repo.write(".agents/tasks/hello.md", &brief);
    repo.commit_all("escalate.paths");
    repo.git(&["checkout", "-q", "-B", "change"]);
    repo.write("src/secret/key.txt", "k\n");
    repo.commit_all("touch a sensitive path");
    let (code, r, _) = review(&repo, &["change", "--base", "main", "--task", "hello"]);
    assert_eq!(code, 3, "{r:#}");
    assert_eq!(r["verdict"], "needs-human");
    assert_eq!(
        r["needs_human"],
        serde_json::json!(["`src/secret/key.txt` is listed in escalate.paths"])
    );

    std::os::unix::fs::symlink("../../etc/passwd", repo.path("src/link")).unwrap();
    repo.commit_all("a link out");
    let (code, r, _) = review(&repo, &["change", "--base", "main", "--task", "hello"]);
    assert_eq!(code, 1, "{r:#}");
    assert!(
        r["violations"][0]
            .as_str()
            .unwrap()
            .contains("`src/link` is a symlink pointing outside the repository"),
        "{r:#}"
    );
}

#[test]
fn the_human_report_and_bad_input() {
    let repo = project();
    repo.write("src/hello.txt", "hello\n");
    repo.write("Makefile", "all:\n");
    repo.commit_all("change");
    let out = repo.run(&["review", "change", "--base", "main", "--task", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("added         Makefile  OUT OF SCOPE"),
        "{text}"
    );
    assert!(
        text.contains("added         src/hello.txt  in scope (src/**)"),
        "{text}"
    );
    assert!(
        text.contains("violation: `Makefile` is outside the scope"),
        "{text}"
    );
    assert!(
        text.contains("verdict: fail (1 scope problem(s), 0 failing check(s))"),
        "{text}"
    );

    // No trailer and no --task: say how to name the brief.
    let out = repo.run(&["review", "change", "--base", "main"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("names its task") && err.contains("--task"),
        "{err}"
    );
    // No origin/HEAD and no --base.
    let out = repo.run(&["review", "change", "--task", "hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--base"));
    // A brief that is not on the base.
    let out = repo.run(&["review", "change", "--base", "main", "--task", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no .agents/tasks/nope.md at the merge base")
    );
}

#[test]
fn a_run_s_branch_reviews_clean() {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config("success.sh");
    repo.brief("hello", &Brief::new(&["src/**"]).title("Say hello"));
    repo.commit_all("brief");
    let (code, run, stderr) = repo.run_one("hello");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(run["branch"], "agent/hello");
    // What git-agent delivered passes the same judgement in review.
    let (code, r, stderr) = review(&repo, &["agent/hello", "--base", "main"]);
    assert_eq!(code, 0, "{r:#}\n{stderr}");
    assert_eq!(r["task"], "hello");
    assert_eq!(r["changes"][0]["path"], "src/hello.txt");
}

#[test]
fn clean_removes_what_a_killed_review_left() {
    let repo = project();
    repo.write("src/hello.txt", "hello\n");
    repo.commit_all("hello");
    let brief = Brief::new(&["src/**"])
        .title("Say hello")
        .check("slow", "touch \"$TMPDIR/started\"; sleep 37.25");
    rebrief(&repo, &brief, "a slow check");
    let mut child = repo
        .command(&["review", "change", "--base", "main", "--task", "hello"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start review");
    // Wait for the check to start, then kill the reviewer outright.
    let reviews = repo.root.join(".git/agent/reviews");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let started = || {
        std::fs::read_dir(&reviews)
            .map(|d| d.flatten().any(|e| e.path().join("tmp/started").exists()))
            .unwrap_or(false)
    };
    while !started() {
        assert!(
            std::time::Instant::now() < deadline,
            "the check never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert_eq!(repo.worktrees().len(), 2, "the review's worktree is left");

    let out = repo.run(&["clean"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed 1 worktree"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(repo.worktrees().len(), 1, "{:?}", repo.worktrees());
    assert_eq!(std::fs::read_dir(&reviews).unwrap().count(), 0);
    // Nothing of the check survives its reviewer.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("sleep 37.25"));
}
