//! Warm workspaces and background runs, measured beside baselines taken in
//! the same process:
//!
//! 1. a run from the pool (`workspace.pool: 1`) on the synthetic 20,000-file
//!    repository, beside plain `git worktree add` + `git worktree remove`;
//! 2. a check that is a real build (`cargo check` of a small crate with
//!    dependencies, offline) in a run whose setup step's cache (`target/`)
//!    is warm, beside the same check in a run with no workspace;
//! 3. `run --detach`: how long it takes to return, and the supervisor's
//!    memory with 10 runs queued.
//!
//! Run: `cargo bench --bench warm` (prints numbers; asserts nothing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{agent, big_repo, git, median, DIRS, FILES_PER_DIR};

const ROUNDS: usize = 3;
/// The events of the latest run of `task`.
fn events(repo: &Path, task: &str) -> Vec<serde_json::Value> {
    let log = agent(repo, &["log", task, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&log.stdout).expect("log json");
    v["events"].as_array().expect("events").clone()
}

fn event_ms(events: &[serde_json::Value], ty: &str, field: &str) -> u64 {
    events
        .iter()
        .filter(|e| e["type"] == ty)
        .map(|e| e[field].as_u64().unwrap_or(0))
        .sum()
}

fn commit_all(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(
        repo,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            message,
        ],
    );
}

fn pool(tmp: &Path) {
    let repo = big_repo(tmp, &tmp.join("wt"));
    println!("== pool: {} files", DIRS * FILES_PER_DIR + 3);
    let wt = tmp.join("plain-wt");
    let wt = wt.to_str().expect("utf-8");
    let mut plain = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        git(&repo, &["worktree", "add", "-q", "--detach", wt, "HEAD"]);
        git(&repo, &["worktree", "remove", "--force", wt]);
        plain.push(t.elapsed());
    }
    let plain = median(plain);
    println!(
        "git worktree add + remove (baseline): {:.3}s",
        plain.as_secs_f64()
    );
    let config = repo.join(".agents/config.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("workspace:\n  pool: 1\n");
    std::fs::write(&config, text).expect("config");
    commit_all(&repo, "pool");
    for (label, reused) in [
        ("fresh (first into the pool)", false),
        ("from the pool", true),
    ] {
        let rounds = if reused { ROUNDS } else { 1 };
        let mut prepare = Vec::new();
        let mut overhead = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            agent(&repo, &["run", "full", "--json"]);
            let total = t.elapsed();
            let ev = events(&repo, "full");
            let inner = event_ms(&ev, "agent_finished", "duration_ms")
                + event_ms(&ev, "check_finished", "duration_ms");
            let ready = ev
                .iter()
                .find(|e| e["type"] == "worktree_ready")
                .expect("ready");
            assert_eq!(
                ready["reused"].as_bool().unwrap_or(false),
                reused,
                "{ready}"
            );
            prepare.push(Duration::from_millis(event_ms(&ev, "worktree_ready", "ms")));
            overhead.push(total.saturating_sub(Duration::from_millis(inner)));
            git(&repo, &["branch", "-D", "-q", "agent/full"]);
        }
        let (prepare, overhead) = (median(prepare), median(overhead));
        println!(
            "git agent run, worktree {label}: worktree {:.3}s = {:.3}x the baseline; whole run's overhead {:.3}s = {:.2}x",
            prepare.as_secs_f64(),
            prepare.as_secs_f64() / plain.as_secs_f64(),
            overhead.as_secs_f64(),
            overhead.as_secs_f64() / plain.as_secs_f64(),
        );
    }
}

fn cache(tmp: &Path) {
    println!("== setup cache: `cargo check` of a crate with serde (derive) and serde_json");
    let repo = tmp.join("small-crate");
    let made = Command::new("cargo")
        .args(["new", "-q", "--lib", "--vcs", "git"])
        .arg(&repo)
        .status()
        .expect("cargo new");
    assert!(made.success());
    let manifest = repo.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).expect("manifest");
    text.push_str("serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\"\n");
    std::fs::write(&manifest, text).expect("manifest");
    // The lock file, made offline from the local registry.
    let locked = Command::new("cargo")
        .current_dir(&repo)
        .args(["generate-lockfile", "--offline"])
        .status()
        .expect("cargo generate-lockfile");
    if !locked.success() {
        println!("skipped: serde is not in the local cargo registry (no network here)");
        return;
    }
    std::fs::create_dir_all(repo.join(".agents/tasks")).expect("tasks");
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let base = format!(
        "default_agent: touch\nagents:\n  touch:\n    adapter: command\n    command: echo '// touched' >> src/lib.rs\n    pass_env: [CARGO_HOME]\nworktree_dir: {}\nsandbox:\n  write_paths: [{cargo_home:?}]\n",
        tmp.join("wt-crate").display()
    );
    std::fs::write(repo.join(".agents/config.yaml"), &base).expect("config");
    std::fs::write(
        repo.join(".agents/tasks/build.md"),
        "---\ntitle: Touch the crate\nscope:\n  write: [\"src/**\"]\nchecks:\n  - name: check\n    run: cargo check --offline -q\nescalate:\n  attempts: 1\n  timeout: 10m\n---\n# Goal\nTouch.\n",
    )
    .expect("brief");
    commit_all(&repo, "crate");
    agent(&repo, &["run", "build"]);
    let cold = event_ms(&events(&repo, "build"), "check_finished", "duration_ms");
    println!(
        "check with no workspace (cold target/): {:.2}s",
        cold as f64 / 1000.0
    );
    let warm_config = format!(
        "{base}workspace:\n  setup:\n    - name: build\n      run: cargo check --offline -q\n      key: [Cargo.lock]\n      cache: [target]\n"
    );
    std::fs::write(repo.join(".agents/config.yaml"), warm_config).expect("config");
    commit_all(&repo, "setup cache");
    for round in [
        "first run (setup fills the cache)",
        "second run (the cache is warm)",
    ] {
        let t = Instant::now();
        agent(&repo, &["run", "build"]);
        let total = t.elapsed();
        let ev = events(&repo, "build");
        let check = event_ms(&ev, "check_finished", "duration_ms");
        let setup = event_ms(&ev, "setup_finished", "ms");
        println!(
            "{round}: setup {:.2}s, check {:.2}s = {:.3}x the cold check; whole run {:.2}s",
            setup as f64 / 1000.0,
            check as f64 / 1000.0,
            check as f64 / cold.max(1) as f64,
            total.as_secs_f64()
        );
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn supervisor_pid(root: &Path) -> Option<u32> {
    let root = root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (args.iter().any(|a| a == "supervise")
            && args.iter().any(|a| a.trim_end_matches('/') == root))
        .then_some(pid)
    })
}

fn detach(tmp: &Path) {
    println!("== run --detach: 10 runs queued at -j 1 (each agent sleeps 1 s)");
    let repo = tmp.join("small");
    std::fs::create_dir_all(repo.join(".agents/tasks")).expect("tasks");
    git(&repo, &["init", "-q"]);
    std::fs::write(
        repo.join(".agents/config.yaml"),
        format!(
            "default_agent: s\nagents:\n  s:\n    adapter: command\n    command: sh -c 'sleep 1 && echo x > \"$GIT_AGENT_TASK.txt\"'\nworktree_dir: {}\n",
            tmp.join("wt-small").display()
        ),
    )
    .expect("config");
    for i in 0..10 {
        std::fs::write(
            repo.join(format!(".agents/tasks/t{i}.md")),
            format!("---\ntitle: t{i}\nscope:\n  write: [\"t{i}.txt\"]\nchecks:\n  - name: ok\n    run: test -f t{i}.txt\n---\n# Goal\nWrite.\n"),
        )
        .expect("brief");
    }
    commit_all(&repo, "briefs");
    let mut took = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        agent(&repo, &["run", "--detach", "-j", "1", &format!("t{i}")]);
        took.push(t.elapsed());
    }
    let worst = took.iter().max().copied().unwrap_or_default();
    println!(
        "run --detach returned in {:.1} ms (median), {:.1} ms (slowest of 10)",
        median(took.clone()).as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0
    );
    match supervisor_pid(&repo).and_then(vm_rss_kib) {
        Some(kib) => println!(
            "supervisor with 10 runs queued or running: {:.1} MiB resident",
            kib as f64 / 1024.0
        ),
        None => println!("supervisor: not found"),
    }
    let t = Instant::now();
    agent(&repo, &["status"]);
    println!(
        "status while they run: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let start = Instant::now();
    while supervisor_pid(&repo).is_some() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs: serde_json::Value =
        serde_json::from_slice(&agent(&repo, &["status", "--json"]).stdout).expect("json");
    let ok = runs.as_array().map_or(0, |a| {
        a.iter().filter(|r| r["outcome"] == "succeeded").count()
    });
    println!(
        "{ok} of 10 succeeded; the queue emptied {:.1}s after the last was queued",
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // `cargo bench --bench warm -- detach` runs one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if wanted("pool") {
        pool(tmp.path());
    }
    if wanted("cache") {
        cache(tmp.path());
    }
    if wanted("detach") {
        detach(tmp.path());
    }
}
