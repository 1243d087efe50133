//! Wall time of a batch of runs of a 1-second scripted agent at `-j 1` and
//! `-j 8`, their ratio, and the per-run overhead beyond the agent for a
//! batch of 10 and of 40 (it must not grow with the batch).
//!
//! Run: `cargo bench --bench parallel` (prints numbers; asserts nothing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const AGENT_SECONDS: f64 = 1.0;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

/// A fresh repository with `n` briefs whose agent sleeps one second and
/// writes one file.
fn repo(base: &Path, n: usize) -> std::path::PathBuf {
    let repo = base.join(format!("repo-{n}"));
    std::fs::create_dir_all(repo.join(".agents/tasks")).expect("dirs");
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README.md"), "bench\n").expect("readme");
    std::fs::write(
        repo.join(".agents/config.yaml"),
        format!(
            "default_agent: sleepy\nagents:\n  sleepy:\n    adapter: command\n    command: sleep {AGENT_SECONDS}; echo done > \"$GIT_AGENT_TASK.txt\"\nworktree_dir: {}\n",
            base.join(format!("wt-{n}")).display()
        ),
    )
    .expect("config");
    for i in 0..n {
        std::fs::write(
            repo.join(format!(".agents/tasks/t{i:02}.md")),
            format!("---\ntitle: Task {i}\nscope:\n  write: [\"t{i:02}.txt\"]\nchecks:\n  - name: exists\n    run: test -f t{i:02}.txt\nescalate:\n  attempts: 1\n---\n# Goal\nWrite t{i:02}.txt.\n"),
        )
        .expect("brief");
    }
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
            "briefs",
        ],
    );
    repo
}

fn batch(repo: &Path, jobs: usize) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_git-agent"))
        .current_dir(repo)
        .args(["run", "--all", "-j", &jobs.to_string(), "--json"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git-agent runs");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Delete the branches so a repeated batch does the same work.
    let refs = Command::new("git")
        .current_dir(repo)
        .args(["for-each-ref", "--format=%(refname)", "refs/heads/agent/"])
        .output()
        .expect("refs");
    for r in String::from_utf8_lossy(&refs.stdout).lines() {
        git(repo, &["update-ref", "-d", r]);
    }
    took
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let forty = repo(tmp.path(), 40);
    let ten = repo(tmp.path(), 10);

    let j1 = batch(&forty, 1);
    let j8 = batch(&forty, 8);
    println!(
        "40 runs of a {AGENT_SECONDS}s agent: -j 1 {:.2}s, -j 8 {:.2}s, speed-up {:.2}x",
        j1.as_secs_f64(),
        j8.as_secs_f64(),
        j1.as_secs_f64() / j8.as_secs_f64()
    );
    let per_run_j1 = (j1.as_secs_f64() - 40.0 * AGENT_SECONDS) / 40.0;
    println!(
        "overhead per run beyond the agent at -j 1: 40 runs {:.3}s",
        per_run_j1
    );
    let ten_j1 = batch(&ten, 1);
    let per_run_ten = (ten_j1.as_secs_f64() - 10.0 * AGENT_SECONDS) / 10.0;
    println!(
        "overhead per run beyond the agent at -j 1: 10 runs {:.3}s (40/10 ratio {:.2})",
        per_run_ten,
        per_run_j1 / per_run_ten
    );
    let ten_j8 = batch(&ten, 8);
    println!(
        "10 runs at -j 8: {:.2}s; 40 runs at -j 8: {:.2}s ({:.2}x for 4x the runs)",
        ten_j8.as_secs_f64(),
        j8.as_secs_f64(),
        j8.as_secs_f64() / ten_j8.as_secs_f64()
    );
}
