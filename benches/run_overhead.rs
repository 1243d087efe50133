//! Per-run overhead of `git agent run` (everything but the agent and the
//! checks) on a synthetic 20,000-file repository, beside the plain
//! `git worktree add` + `git worktree remove` of the same repository measured
//! in the same process, and the same with a `scope.read` of 5% of the tree;
//! then `git agent review` of a run's branch (worktree, change set, scope,
//! one trivial check, removal) beside the same baseline.
//!
//! Run: `cargo bench --bench run_overhead` (prints numbers; asserts nothing).

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{big_repo, git, DIRS, FILES_PER_DIR};

const ROUNDS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = big_repo(tmp.path(), &tmp.path().join("wt"));
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
