//! Past one machine, simulated on this one: `plan --matrix` cuts the
//! briefs into chains, each matrix entry runs in a fresh clone of one
//! remote as its own process, all at once, delivering to one bare remote
//! (smart HTTP, `git http-backend`) and the fake GitHub of
//! `tests/fake_github`; `git agent report` makes one summary of every
//! entry's run records. The decision-log notes that every runner pushes
//! end up merged on the remote, none lost; a chained task's pull request
//! stacks on its predecessor's branch and moves to `main` once that lands.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a panic there is the test failing"
)]

mod fake_github;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_github::{bare_remote, fake_github, real_git, TOKEN};
use serde_json::Value;
use support::{stderr, stdout, Brief, TestRepo};

/// git in `dir`, hermetic; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(real_git())
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The repository the briefs are written in: its briefs pushed to `remote`.
fn seed(remote: &Path, api: &str, deliver: &str) -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n")]);
    repo.config_with(
        "chain.sh",
        &format!("github:\n  api_url: {}\n", support::yaml_str(api)),
    );
    let output = format!("output:\n  deliver: {deliver}\n---\n# Goal");
    let pr = |b: Brief| b.render().replace("---\n# Goal", &output);
    repo.write(
        ".agents/tasks/a.md",
        pr(Brief::new(&["a.txt", "shared.txt"]).title("Write a")),
    );
    repo.write(
        ".agents/tasks/b.md",
        pr(Brief::new(&["b.txt", "shared.txt"])
            .title("Write b on a")
            .after(&["a"])),
    );
    for t in ["c", "d", "e", "f"] {
        repo.write(
            format!(".agents/tasks/{t}.md"),
            pr(Brief::new(&[&format!("{t}.txt")])
                .title(&format!("Write {t}"))
                .on_scope_violation("revert")),
        );
    }
    repo.commit_all("briefs");
    repo.git(&["push", "-q", remote.to_str().unwrap(), "main"]);
    repo
}

/// A runner's fresh clone: `main` from the remote, `origin` its HTTP URL.
fn clone(remote: &Path, port: u16) -> TestRepo {
    let repo = TestRepo::new();
    repo.git(&["pull", "-q", remote.to_str().unwrap(), "main"]);
    repo.git(&[
        "remote",
        "add",
        "origin",
        &format!("http://127.0.0.1:{port}/octo/hello.git"),
    ]);
    repo
}

/// Starts `git agent run <tasks>` in `repo`, as a matrix entry's job does.
fn start(repo: &TestRepo, out: &Path, tasks: &str) -> std::process::Child {
    let mut args = vec!["run", "--json"];
    args.extend(tasks.split(' '));
    let mut cmd = repo.command(&args);
    cmd.env("FIXTURE_OUT", out)
        .env("GITHUB_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Copies a runner's run records, as its job uploads them as an artifact.
fn upload(repo: &TestRepo, to: &Path) {
    let from = repo.root.join(".git/agent/runs");
    for run in std::fs::read_dir(&from).unwrap().flatten() {
        if !run.path().join("run.json").is_file() {
            continue;
        }
        let dest = to.join(run.file_name());
        std::fs::create_dir_all(&dest).unwrap();
        for f in ["run.json", "events.jsonl"] {
            std::fs::copy(run.path().join(f), dest.join(f)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_of_chains_runs_in_parallel_clones_and_delivers_to_one_remote() {
    let (server, fake) = fake_github().await;
    // A pull request may target a branch that is on the remote: a's, once
    // its run pushed it.
    fake.state().branches.push("agent/a".into());
    let tmp = tempfile::tempdir().unwrap();
    let (remote, git_server) = bare_remote(tmp.path());
    let seed = seed(&remote, &server.uri(), "pr");

    // The plan job: the matrix.
    let out = seed.run(&["plan", "--all", "--matrix"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let matrix: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries: Vec<String> = matrix["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tasks"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(entries, ["a b", "c", "d", "e", "f"]);

    // For the figures: agents that take a model's time.
    if let Some(secs) = std::env::var_os("GIT_AGENT_FANOUT_SLEEP") {
        std::fs::write(seed.out.join("sleep"), secs.as_encoded_bytes()).unwrap();
    }
    // One job per entry, all at once, each in a fresh clone.
    let clones: Vec<TestRepo> = entries
        .iter()
        .map(|_| clone(&remote, git_server.port))
        .collect();
    let started = Instant::now();
    let children: Vec<_> = clones
        .iter()
        .zip(&entries)
        .map(|(c, tasks)| (Instant::now(), start(c, &seed.out, tasks)))
        .collect();
    let mut busy = Duration::ZERO;
    let mut runs: Vec<Value> = Vec::new();
    for (t0, child) in children {
        let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
        busy += t0.elapsed();
        assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
        runs.extend(serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap());
    }
    let wall = started.elapsed();
    eprintln!(
        "fan-out: {} entries, {} runs in {wall:.1?} wall ({busy:.1?} of jobs end to end, {:.1}x)",
        entries.len(),
        runs.len(),
        busy.as_secs_f64() / wall.as_secs_f64()
    );
    assert_eq!(runs.len(), 6);
    for r in &runs {
        assert_eq!(r["outcome"], "succeeded", "{r:#}");
        assert_eq!(r["delivery"]["state"], "delivered", "{r:#}");
        assert!(
            r["delivery"]["notices"].is_null()
                || r["delivery"]["notices"].as_array().unwrap().is_empty(),
            "{r:#}"
        );
    }

    // Every branch reached the remote; b sits on a.
    let heads = git(
        &remote,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
    );
    for t in ["a", "b", "c", "d", "e", "f"] {
        assert!(heads.lines().any(|l| l == format!("agent/{t}")), "{heads}");
    }
    assert_eq!(
        git(&remote, &["rev-parse", "agent/b~1"]),
        git(&remote, &["rev-parse", "agent/a"])
    );
    // Every runner pushed the notes; none was lost: each result has its log.
    for r in &runs {
        let commit = r["commit"].as_str().unwrap();
        let note = git(&remote, &["notes", "--ref", "agent", "show", commit]);
        assert!(note.contains("Succeeded"), "note of {}: {note}", r["task"]);
    }
    // The pull requests: b's stacks on a's branch.
    let prs = fake.state().prs.clone();
    assert_eq!(prs.len(), 6, "{prs:?}");
    let base_of = |head: &str| {
        prs.iter()
            .find(|p| p.0 == head)
            .map(|p| p.3.clone())
            .unwrap()
    };
    assert_eq!(base_of("agent/b"), "agent/a");
    for t in ["a", "c", "d", "e", "f"] {
        assert_eq!(base_of(&format!("agent/{t}")), "main");
    }

    // The summary job: every entry's records, one table.
    let artifacts = tmp.path().join("artifacts");
    for (i, c) in clones.iter().enumerate() {
        upload(c, &artifacts.join(format!("runs-{i}")));
    }
    let out = seed.run(&["report", artifacts.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.starts_with("## git-agent\n"), "{summary}");
    for t in ["a", "b", "c", "d", "e", "f"] {
        assert!(
            summary.contains(&format!("| `{t}` | ✅ succeeded |")),
            "{summary}"
        );
    }
    assert_eq!(summary.matches("<details>").count(), 6);

    // a lands on main (its pull request merged); b's delivery, retried,
    // moves b's pull request onto main.
    git(&remote, &["update-ref", "refs/heads/main", "agent/a"]);
    let b_clone = &clones[0];
    b_clone.git(&[
        "fetch",
        "-q",
        remote.to_str().unwrap(),
        "main:refs/remotes/origin/main",
    ]);
    let out = b_clone.run_env(&["deliver", "b"], &[("GITHUB_TOKEN", TOKEN)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`a` has landed on main"),
        "{}",
        stderr(&out)
    );
    let prs = fake.state().prs.clone();
    assert_eq!(prs.len(), 6, "moved, not opened again: {prs:?}");
    assert_eq!(base_of_in(&prs, "agent/b"), "main");
    let moved: Vec<Value> = fake
        .bodies("pulls/update")
        .into_iter()
        .filter(|b| b["base"] == "main")
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    // With GIT_AGENT_FANOUT_BASELINE set, the same briefs on one machine
    // (one process, `-j 2`), for the figures.
    if std::env::var_os("GIT_AGENT_FANOUT_BASELINE").is_some() {
        let one = clone(&remote, git_server.port);
        let t0 = Instant::now();
        let out = tokio::task::block_in_place(|| {
            let child = start(&one, &seed.out, "a b c d e f -j 2");
            child.wait_with_output()
        })
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
        eprintln!("one machine: 6 runs at -j 2 in {:.1?}", t0.elapsed());
    }
    fake_github::assert_clean(&fake);
}

fn base_of_in(prs: &[(String, u64, bool, String)], head: &str) -> String {
    prs.iter()
        .find(|p| p.0 == head)
        .map(|p| p.3.clone())
        .unwrap()
}

/// Several processes push the notes to one remote at once: each push
/// merges what the others pushed, none overwrites another's.
#[test]
fn concurrent_notes_pushes_merge_and_lose_nothing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, _fake) = rt.block_on(fake_github());
    let tmp = tempfile::tempdir().unwrap();
    let (remote, git_server) = bare_remote(tmp.path());
    let seed = seed(&remote, &server.uri(), "branch");
    let tasks = ["c", "d", "e", "f"];
    let clones: Vec<TestRepo> = tasks
        .iter()
        .map(|_| clone(&remote, git_server.port))
        .collect();
    // Each clone runs its task with a local branch only…
    for (c, t) in clones.iter().zip(tasks) {
        let out = c.run_env(&["run", t], &[("FIXTURE_OUT", seed.out.to_str().unwrap())]);
        assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    }
    // …then all deliver (push the branch and the notes) at the same instant.
    let children: Vec<_> = clones
        .iter()
        .zip(tasks)
        .map(|(c, t)| {
            let mut cmd = c.command(&["deliver", t, "--mode", "push"]);
            cmd.env("GITHUB_TOKEN", TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("notes were not pushed"), "{err}");
    }
    for (c, t) in clones.iter().zip(tasks) {
        let commit = c.rev(&format!("agent/{t}"));
        let note = git(&remote, &["notes", "--ref", "agent", "show", &commit]);
        assert!(
            note.contains(&format!("Write {t}")),
            "the note of {t}: {note}"
        );
    }
}
