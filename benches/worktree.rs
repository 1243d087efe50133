//! Worktree creation on a synthetic 20,000-file repository: git-agent's,
//! for a full checkout and for a `scope.read` of 5% of the tree (sparse),
//! beside a plain `git worktree add` of the same repository measured in the
//! same run, interleaved round by round so that both see the same machine.
//!
//! The worktree API (`Repo::create_worktree`) is crate-private, so this
//! drives the `git-agent` binary instead: every `git agent run` logs a
//! `worktree_ready` event carrying the milliseconds its worktree creation
//! took, read back with `git agent log --format json`. The rest of the run
//! (agent, checks, commit, removal) is not counted.
//!
//! Run: `cargo bench --bench worktree` (prints numbers; asserts nothing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{big_repo, git, DIRS, FILES_PER_DIR};

const ROUNDS: usize = 3;

/// `git worktree add --detach` of HEAD, timed; the removal is not.
fn plain_add(repo: &Path, path: &Path, workers: &str) -> Duration {
    let path = path.to_str().expect("utf-8 path");
    let t = Instant::now();
    git(
        repo,
        &[
            "-c", workers, "worktree", "add", "-q", "--detach", path, "HEAD",
        ],
    );
    let took = t.elapsed();
    git(repo, &["worktree", "remove", "--force", path]);
    took
}

/// One `git agent run <task>`; returns the worktree creation time it logged.
fn agent_add(bin: &str, repo: &Path, task: &str) -> Duration {
    let out = Command::new(bin)
        .current_dir(repo)
        .args(["run", task, "--json"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git-agent runs");
    assert!(
        out.status.success(),
        "git agent run {task}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = Command::new(bin)
        .current_dir(repo)
        .args(["log", task, "--format", "json"])
        .output()
        .expect("git agent log runs");
    let v: serde_json::Value = serde_json::from_slice(&log.stdout).expect("log json");
    let ms = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .rev()
        .find(|e| e["type"] == "worktree_ready")
        .and_then(|e| e["ms"].as_u64())
        .expect("a worktree_ready event with ms");
    // Move the branch back so the next round is the same work.
    git(repo, &["branch", "-D", "-q", &format!("agent/{task}")]);
    Duration::from_millis(ms)
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = big_repo(tmp.path(), &tmp.path().join("agent-wts"));
    git(&repo, &["repack", "-adq"]);
    println!("repo: {} files", DIRS * FILES_PER_DIR + 3);
    let bin = env!("CARGO_BIN_EXE_git-agent");

    let configs = [
        "plain git worktree add",
        "plain git, checkout.workers=0",
        "git-agent, full",
        "git-agent, sparse 5%",
    ];
    let mut best = [Duration::MAX; 4];
    for round in 0..ROUNDS {
        let plain = |n: usize, workers| {
            plain_add(
                &repo,
                &tmp.path().join(format!("plain-{round}-{n}")),
                workers,
            )
        };
        let times = [
            plain(0, "checkout.workers=1"),
            plain(1, "checkout.workers=0"),
            agent_add(bin, &repo, "full"),
            agent_add(bin, &repo, "sparse"),
        ];
        for (b, t) in best.iter_mut().zip(times) {
            *b = (*b).min(t);
        }
    }
    let baseline = best[0].as_secs_f64();
    println!(
        "{:<32} {:>10} {:>12}",
        "worktree creation, min of 3", "wall s", "x plain git"
    );
    for (label, t) in configs.iter().zip(best) {
        println!(
            "{label:<32} {:>10.3} {:>12.2}",
            t.as_secs_f64(),
            t.as_secs_f64() / baseline
        );
    }
}
