//! `workspace:` — files copied from the checkout, setup steps cached by a
//! key, a block of ports per live run — on real repositories with a
//! scripted agent that reports what it was given and then poisons it.

mod support;

use std::process::Stdio;

use serde_json::Value;
use support::{Brief, TestRepo};

/// A repo whose setup step writes `deps/lib.txt` from `lock.txt` (and
/// counts its runs), copying `.env`, with `ports` per run.
fn workspace_repo(tasks: &[&str], ignore_env: bool) -> TestRepo {
    let repo = TestRepo::with_files(&[
        ("README.md", "x\n"),
        ("lock.txt", "v1\n"),
        (
            ".gitignore",
            if ignore_env {
                ".env\ndeps/\n"
            } else {
                "deps/\n"
            },
        ),
    ]);
    let setup = format!(
        "mkdir -p deps && cp lock.txt deps/lib.txt && echo ran >> {}",
        repo.out.join("setup-ran").display()
    );
    repo.config_with(
        "workspace.sh",
        &format!(
            "workspace:\n  copy: [\".env\"]\n  ports: 5\n  setup:\n    - name: deps\n      run: {}\n      key: [lock.txt]\n      cache: [deps]\n",
            support::yaml_str(&setup)
        ),
    );
    for t in tasks {
        // The check passes only on the cache and the copied file as they
        // were made, not as the agent left them.
        repo.brief(
            t,
            &Brief::new(&["**"])
                .check(
                    "pristine",
                    "grep -qx v1 deps/lib.txt && grep -qx secret=user .env",
                )
                .timeout("5m"),
        );
    }
    repo.commit_all("briefs");
    std::fs::write(repo.root.join(".env"), "secret=user\n").expect(".env");
    repo
}

fn lines(repo: &TestRepo, name: &str) -> Vec<String> {
    std::fs::read_to_string(repo.out.join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn setup_runs_once_per_key_and_its_cache_survives_a_poisoning_agent() {
    let repo = workspace_repo(&["a"], true);
    let (code, run, stderr) = repo.run_one("a");
    assert_eq!(code, 0, "{stderr}\n{run:#}");
    // The control: the agent's poison was there, in place, for it to read.
    assert_eq!(lines(&repo, "deps-after-poison"), ["poisoned"]);
    // …and yet its own checks saw the cache as setup made it (they passed).
    assert_eq!(lines(&repo, "setup-ran").len(), 1);
    assert_eq!(lines(&repo, "deps-seen"), ["v1"]);

    // Same key: setup is skipped, and the next run gets the clean cache.
    let (code, run2, stderr) = repo.run_one("a");
    assert_eq!(code, 0, "{stderr}\n{run2:#}");
    assert_eq!(lines(&repo, "setup-ran").len(), 1, "cached: not run again");
    assert_eq!(
        lines(&repo, "deps-seen"),
        ["v1", "v1"],
        "the poison did not reach run 2"
    );
    let log = repo.log_md(run2["run_id"].as_str().expect("id"));
    assert!(log.contains("setup `deps`: cached"), "{log}");

    // The key file changes: setup runs again and the cache follows it.
    repo.write("lock.txt", "v1\n\n");
    repo.commit_all("new lock");
    let (code, _, stderr) = repo.run_one("a");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines(&repo, "setup-ran").len(), 2, "a new key runs setup");
    let events = repo.events(run["run_id"].as_str().expect("id"));
    let setup = support::of_type(&events, "setup_finished");
    assert_eq!(setup[0]["cached"], false, "{setup:?}");
}

#[test]
fn copied_files_reach_the_agent_and_never_the_branch() {
    // `.env` is not even ignored here: the scope (`**`) would allow it.
    let repo = workspace_repo(&["a"], false);
    let (code, run, stderr) = repo.run_one("a");
    assert_eq!(code, 0, "{stderr}\n{run:#}");
    assert_eq!(lines(&repo, "env-seen"), ["secret=user"]);
    let tree = repo.git(&["ls-tree", "-r", "--name-only", "agent/a"]);
    assert!(tree.lines().any(|l| l == "a.txt"), "{tree}");
    assert!(
        !tree.lines().any(|l| l == ".env"),
        "the copied file is never committed: {tree}"
    );
    assert!(
        !tree.lines().any(|l| l.starts_with("deps/")),
        "nor the cache: {tree}"
    );
    // The user's own file is untouched; the log names it, not its content.
    assert_eq!(repo.read(".env"), "secret=user\n");
    let log = repo.log_md(run["run_id"].as_str().expect("id"));
    assert!(
        log.contains("copied from the checkout (never committed): `.env`"),
        "{log}"
    );
    assert!(!log.contains("secret=user"), "{log}");
}

#[test]
fn live_runs_get_disjoint_port_blocks_across_processes() {
    let repo = workspace_repo(&["a", "b", "c", "d"], true);
    std::fs::write(repo.out.join("seconds"), "2").expect("seconds");
    let mut other = repo
        .command(&["run", "d"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("second process");
    let out = repo.run(&["run", "a", "b", "c", "-j", "3", "--allow-overlap"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(other.wait().expect("wait").success());
    let ports: Vec<(String, u32, u32)> = lines(&repo, "ports")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].parse().expect("port"),
                f[2].parse().expect("count"),
            )
        })
        .collect();
    assert_eq!(ports.len(), 4, "{ports:?}");
    for (i, (task, first, count)) in ports.iter().enumerate() {
        assert_eq!(*count, 5, "{task}");
        for (other_task, other_first, _) in &ports[i + 1..] {
            let apart = first.abs_diff(*other_first);
            assert!(
                apart >= 5,
                "{task} at {first} and {other_task} at {other_first} share ports"
            );
        }
    }
    // Checks see the agent's port (the events record the block).
    let runs: Vec<Value> =
        serde_json::from_slice(&repo.run(&["status", "--all", "--json"]).stdout).expect("json");
    let a = runs.iter().find(|r| r["task"] == "a").expect("a");
    let events = repo.events(a["run_id"].as_str().expect("id"));
    let ready = support::of_type(&events, "workspace_ready");
    let agent_port = ports.iter().find(|p| p.0 == "a").expect("a's port").1;
    assert_eq!(ready[0]["port"], agent_port, "{ready:?}");
}

#[test]
fn workspace_paths_outside_the_worktree_are_refused() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config_with(
        "workspace.sh",
        "workspace:\n  copy: [\"../secrets\"]\n  setup:\n    - name: x\n      run: \"true\"\n      cache: [\"/etc\"]\n",
    );
    let out = repo.run(&["validate"]);
    assert_eq!(support::status_of(&out), 2, "{}", support::describe(&out));
    let said = support::stderr(&out);
    assert!(
        said.contains("`../secrets` is not a path inside the worktree"),
        "{said}"
    );
    assert!(
        said.contains("setup path `/etc` is not a path inside the worktree"),
        "{said}"
    );
}

#[test]
fn a_briefs_own_setup_runs_after_the_configs_and_is_cached_too() {
    let repo = workspace_repo(&[], true);
    // Written by hand: the brief's `setup:` uses what the config's made.
    repo.write(
        ".agents/tasks/own.md",
        "---\ntitle: Own setup\nscope:\n  write: [\"**\"]\nsetup:\n  - name: tools\n    run: mkdir -p tools && cp deps/lib.txt tools/gen.txt\n    cache: [tools]\nchecks:\n  - name: tools\n    run: grep -qx v1 tools/gen.txt && grep -qx v1 deps/lib.txt\n---\n# Goal\nUse the tools.\n",
    );
    repo.write(".gitignore", ".env\ndeps/\ntools/\n");
    repo.commit_all("own setup");
    let (code, run, stderr) = repo.run_one("own");
    assert_eq!(code, 0, "{stderr}\n{run:#}");
    let events = repo.events(run["run_id"].as_str().expect("id"));
    let names: Vec<&str> = support::of_type(&events, "setup_finished")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["deps", "tools"],
        "the config's first, then the brief's"
    );
    let (code, run, stderr) = repo.run_one("own");
    assert_eq!(code, 0, "{stderr}");
    let events = repo.events(run["run_id"].as_str().expect("id"));
    assert!(support::of_type(&events, "setup_finished")
        .iter()
        .all(|e| e["cached"] == true));
    // A bad path in a brief's step points at the brief.
    repo.write(
        ".agents/tasks/bad.md",
        "---\ntitle: Bad\nscope:\n  write: [\"x\"]\nsetup:\n  - name: x\n    run: \"true\"\n    cache: [\"../out\"]\nchecks:\n  - name: ok\n    run: \"true\"\n---\n# Goal\nNo.\n",
    );
    let out = repo.run(&["validate"]);
    assert_eq!(support::status_of(&out), 2, "{}", support::describe(&out));
    let said = support::stderr(&out);
    assert!(said.contains("bad.md:8"), "{said}");
}
