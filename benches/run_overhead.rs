//! Per-run overhead of `git agent run` (everything but the agent and the
//! checks) on a synthetic 20,000-file repository, beside the plain
//! `git worktree add` + `git worktree remove` of the same repository measured
//! in the same process, and the same with a `scope.read` of 5% of the tree;
//! then `git agent review` of a run's branch (worktree, change set, scope,
//! one trivial check, removal) beside the same baseline.
//!
//! Run: `cargo bench --bench run_overhead` (prints numbers; asserts nothing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DIRS: usize = 200;
const FILES_PER_DIR: usize = 100;
const ROUNDS: usize = 3;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&repo, &["init", "-q"]);
    for d in 0..DIRS {
        let dir = repo.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).expect("dir");
        for f in 0..FILES_PER_DIR {
            std::fs::write(
                dir.join(format!("f{f:03}.txt")),
                format!("file {d} {f}\n").repeat(20),
            )
            .expect("file");
        }
    }
    std::fs::create_dir_all(repo.join(".agents/tasks")).expect("tasks");
    std::fs::write(
        repo.join(".agents/config.yaml"),
        format!(
            "default_agent: touch\nagents:\n  touch:\n    adapter: command\n    command: echo changed >> d000/f000.txt\nworktree_dir: {}\n",
            tmp.path().join("wt").display()
        ),
    )
    .expect("config");
    let brief = |read: &str| {
        format!("---\ntitle: Touch one file\nscope:\n  write: [\"d000/**\"]\n{read}checks:\n  - name: ok\n    run: \"true\"\nescalate:\n  attempts: 1\n---\n# Goal\nTouch.\n")
    };
    std::fs::write(repo.join(".agents/tasks/full.md"), brief("")).expect("brief");
    // d000..d009: 10 of 200 directories = 5% of the files.
    std::fs::write(
        repo.join(".agents/tasks/sparse.md"),
        brief("  read: [\"d00?/**\"]\n"),
    )
    .expect("brief");
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "synthetic",
        ],
    );
    println!("repo: {} files", DIRS * FILES_PER_DIR + 3);

    let wt = tmp.path().join("plain-wt");
    let mut plain = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        git(
            &repo,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                wt.to_str().expect("utf-8 path"),
                "HEAD",
            ],
        );
        git(
            &repo,
            &[
                "worktree",
                "remove",
                "--force",
                wt.to_str().expect("utf-8 path"),
            ],
        );
        plain.push(t.elapsed());
    }
    let plain = median(plain);
    println!(
        "git worktree add + remove (CLI baseline): {:.3}s",
        plain.as_secs_f64()
    );

    let bin = env!("CARGO_BIN_EXE_git-agent");
    let mut full_overhead = Duration::ZERO;
    for task in ["full", "sparse"] {
        let mut overheads = Vec::new();
        let mut totals = Vec::new();
        for round in 0..ROUNDS {
            let t = Instant::now();
            let out = Command::new(bin)
                .current_dir(&repo)
                .args(["run", task, "--json"])
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .expect("git-agent runs");
            let total = t.elapsed();
            assert!(
                out.status.success(),
                "{task} round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let log = Command::new(bin)
                .current_dir(&repo)
                .args(["log", task, "--format", "json"])
                .output()
                .expect("log");
            let v: serde_json::Value = serde_json::from_slice(&log.stdout).expect("log json");
            let inner: u64 = v["events"]
                .as_array()
                .expect("events")
                .iter()
                .filter(|e| e["type"] == "agent_finished" || e["type"] == "check_finished")
                .map(|e| e["duration_ms"].as_u64().unwrap_or(0))
                .sum();
            overheads.push(total.saturating_sub(Duration::from_millis(inner)));
            totals.push(total);
            // Move the branch back so the next round is the same work.
            git(&repo, &["branch", "-D", "-q", &format!("agent/{task}")]);
        }
        let overhead = median(overheads);
        if task == "full" {
            full_overhead = overhead;
        }
        println!(
            "git agent run ({task}): total {:.3}s, overhead {:.3}s = {:.2}x the CLI baseline{}",
            median(totals).as_secs_f64(),
            overhead.as_secs_f64(),
            overhead.as_secs_f64() / plain.as_secs_f64(),
            if task == "sparse" {
                format!(
                    ", {:.2}x the full run's overhead",
                    overhead.as_secs_f64() / full_overhead.as_secs_f64()
                )
            } else {
                String::new()
            }
        );
    }

    // A branch to review: one more run of `full`, kept.
    let out = Command::new(bin)
        .current_dir(&repo)
        .args(["run", "full", "--json"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git-agent runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reviews = Vec::new();
    for round in 0..ROUNDS {
        let t = Instant::now();
        let out = Command::new(bin)
            .current_dir(&repo)
            .args(["review", "agent/full", "--base", "HEAD", "--json"])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git-agent review runs");
        reviews.push(t.elapsed());
        assert!(
            out.status.success(),
            "review round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let review = median(reviews);
    println!(
        "git agent review (full checkout): {:.3}s = {:.2}x the CLI baseline",
        review.as_secs_f64(),
        review.as_secs_f64() / plain.as_secs_f64()
    );
}
