//! How close a run comes to the git floor — the bare cycle a careful script
//! would do (`worktree add --detach`, write a file, `add -A`, `commit`,
//! `worktree remove`) — measured side by side in the same process, round
//! by round so both see the same machine:
//!
//! 1. a small repository (50 files): `git agent run` vs the bare cycle;
//! 2. 5,000 files, a full worktree, vs the bare cycle; and a `scope.read`
//!    of 5% of them;
//! 3. verification of a change set of N new files (the agent writes them)
//!    vs `git add -A` + `git write-tree` of the same files (N = 100,000, or
//!    `GIT_AGENT_BENCH_NEW_FILES`);
//! 4. a run in a repository with 5,000 earlier decision logs (notes) vs
//!    one with none: the history must not cost.
//!
//! `GIT_AGENT_BENCH_REPO=<clone>` adds rows 1–2 on a copy of a real
//! repository (a local clone of it, with a config and the two briefs
//! committed on top; `scope.read` takes the top-level entries in order
//! until they hold 5% of the files). Medians of `GIT_AGENT_BENCH_ROUNDS`
//! rounds (default 15 for the small repository, 5 for the others).
//! Run: `cargo bench --bench floor` (prints numbers; asserts nothing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{agent, git, median};

/// Rounds for a row, `GIT_AGENT_BENCH_ROUNDS` or `default`.
fn rounds(default: usize) -> usize {
    std::env::var("GIT_AGENT_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
/// A repository of `files` files in `dirs` directories, with a config
/// (agent: `agent`, worktrees in `base/wt`) and the briefs `full` and
/// `sparse` (a `scope.read` of the first twentieth of the directories).
fn repo_of(base: &Path, files: usize, dirs: usize, agent_cmd: &str, write: &str) -> PathBuf {
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).expect("repo");
    git(&repo, &["init", "-q"]);
    for i in 0..files {
        let dir = repo.join(format!("d{:03}", i % dirs));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join(format!("f{i:05}.txt")),
            format!("file {i}\n").repeat(10),
        )
        .expect("file");
    }
    let read: Vec<String> = (0..(dirs / 20).max(1))
        .map(|d| format!("d{d:03}"))
        .collect();
    write_briefs(&repo, base, agent_cmd, write, &read);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "synthetic"]);
    repo
}

/// A local clone of `real` with the config and the briefs `full` and
/// `sparse` committed on top; returns it and the file the agent appends to
/// (the first file of the first top-level directory `sparse` reads).
fn real_repo(real: &Path, base: &Path) -> (PathBuf, String) {
    std::fs::create_dir_all(base).expect("base");
    let repo = base.join("repo");
    let status = Command::new("git")
        .args(["clone", "-q", "--no-hardlinks"])
        .arg(real)
        .arg(&repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .expect("git clone");
    assert!(status.success(), "cloning {}", real.display());
    let listed = Command::new("git")
        .current_dir(&repo)
        .args(["ls-files", "-z"])
        .output()
        .expect("ls-files");
    let files: Vec<String> = listed
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    // Top-level directories in order, each taken whole when the files
    // read stay within 5%, until they hold 4%.
    let mut per_dir: std::collections::BTreeMap<&str, usize> = Default::default();
    for file in &files {
        if let Some((top, _)) = file.split_once('/') {
            *per_dir.entry(top).or_default() += 1;
        }
    }
    let mut read: Vec<String> = Vec::new();
    let mut held = 0;
    for (dir, count) in per_dir {
        if (held + count) * 20 <= files.len() {
            read.push(dir.to_string());
            held += count;
        }
        if held * 25 >= files.len() {
            break;
        }
    }
    println!(
        "{}: {} files; scope.read {:?} holds {held} ({:.1}%)",
        real.display(),
        files.len(),
        read,
        held as f64 * 100.0 / files.len() as f64
    );
    let first = read
        .first()
        .expect("the repository has a directory")
        .clone();
    let file = files
        .iter()
        .find(|f| f.starts_with(&format!("{first}/")))
        .expect("a file in it")
        .clone();
    let agent = format!("sh -c 'echo changed >> {file}'");
    write_briefs(&repo, base, &agent, &format!("{first}/**"), &read);
    git(&repo, &["add", ".agents"]);
    git(&repo, &["commit", "-qm", "bench briefs"]);
    (repo, file)
}

/// The config (agent `agent_cmd`, worktrees in `base/wt`) and the briefs
/// `full` and `sparse` (which reads the directories `read`), both writing
/// `write`.
fn write_briefs(repo: &Path, base: &Path, agent_cmd: &str, write: &str, read: &[String]) {
    std::fs::create_dir_all(repo.join(".agents/tasks")).expect("tasks");
    std::fs::write(
        repo.join(".agents/config.yaml"),
        format!(
            "default_agent: a\nagents:\n  a:\n    adapter: command\n    command: {agent_cmd:?}\nworktree_dir: {}\n",
            base.join("wt").display()
        ),
    )
    .expect("config");
    let globs: Vec<String> = read.iter().map(|d| format!("\"{d}/**\"")).collect();
    for (name, read) in [
        ("full", String::new()),
        ("sparse", format!("  read: [{}]\n", globs.join(", "))),
    ] {
        std::fs::write(
            repo.join(format!(".agents/tasks/{name}.md")),
            format!("---\ntitle: Touch\nscope:\n  write: [{write:?}]\n{read}checks:\n  - name: ok\n    run: \"true\"\nescalate:\n  attempts: 1\n  timeout: 10m\n---\n# Goal\nTouch.\n"),
        )
        .expect("brief");
    }
}

/// The bare cycle, timed.
fn bare_cycle(repo: &Path, wt: &Path, file: &str) -> Duration {
    let w = wt.to_str().expect("utf-8");
    let t = Instant::now();
    git(repo, &["worktree", "add", "-q", "--detach", w, "HEAD"]);
    let path = wt.join(file);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str("changed\n");
    std::fs::write(&path, text).expect("write");
    git(wt, &["add", "-A"]);
    git(wt, &["commit", "-qm", "x"]);
    git(repo, &["worktree", "remove", "--force", w]);
    t.elapsed()
}

/// `git agent run <task>`, timed; its branch is deleted afterwards so that
/// every round does the same work.
fn run(repo: &Path, task: &str) -> Duration {
    let t = Instant::now();
    agent(repo, &["run", task]);
    let took = t.elapsed();
    git(repo, &["branch", "-D", "-q", &format!("agent/{task}")]);
    took
}

fn rows(label: &str, repo: &Path, wt: &Path, file: &str, rounds: usize) {
    let (mut bare, mut full, mut sparse) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare.push(bare_cycle(repo, wt, file));
        full.push(run(repo, "full"));
        sparse.push(run(repo, "sparse"));
    }
    let (bare, full, sparse) = (median(bare), median(full), median(sparse));
    println!(
        "{label}: bare cycle {:.1} ms; git agent run {:.1} ms = {:.2}x; with scope.read of 5% {:.1} ms = {:.3}x",
        ms(bare),
        ms(full),
        ms(full) / ms(bare),
        ms(sparse),
        ms(sparse) / ms(bare)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The milliseconds between the first `from` event and the first `to` event.
fn between(repo: &Path, task: &str, from: &str, to: &str) -> f64 {
    let log = agent(repo, &["log", task, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&log.stdout).expect("json");
    let at = |ty: &str| -> f64 {
        let ts = v["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["type"] == ty)
            .and_then(|e| e["ts"].as_str())
            .unwrap_or_else(|| panic!("no {ty} event"))
            .to_string();
        let t = time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339)
            .expect("ts");
        (t.unix_timestamp_nanos() / 1_000) as f64 / 1000.0
    };
    at(to) - at(from)
}

fn new_files(tmp: &Path, count: usize) {
    let make = format!(
        "python3 -c 'import os\nos.makedirs(\"gen\", exist_ok=True)\nfor i in range({count}):\n    d = \"gen/%03d\" % (i % 1000)\n    os.makedirs(d, exist_ok=True)\n    open(\"%s/%06d.txt\" % (d, i), \"w\").write(str(i))'"
    );
    let base = tmp.join("new");
    let repo = repo_of(&base, 50, 5, &make, "gen/**");
    // The baseline: the same files in a plain worktree, staged and written.
    let plain = base.join("plain");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            plain.to_str().expect("utf-8"),
            "HEAD",
        ],
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&make)
        .current_dir(&plain)
        .status()
        .expect("sh");
    assert!(status.success());
    let t = Instant::now();
    git(&plain, &["add", "-A"]);
    git(&plain, &["write-tree"]);
    let baseline = ms(t.elapsed());
    agent(&repo, &["run", "full"]);
    let verify = between(&repo, "full", "agent_finished", "scope_report");
    println!(
        "{count} new files: verification {:.0} ms vs git add -A + write-tree {baseline:.0} ms = {:.2}x",
        verify,
        verify / baseline
    );
}

/// A run in a repository whose notes ref holds `notes` earlier decision
/// logs (one flat tree, as earlier versions wrote them; the first run lays
/// it out anew, and is not counted) vs the same run in one with none.
fn history(tmp: &Path, notes: usize, rounds: usize) {
    let agent_cmd = "sh -c 'echo changed >> d000/f00000.txt'";
    let fresh = repo_of(&tmp.join("fresh"), 50, 5, agent_cmd, "d000/**");
    let old = repo_of(&tmp.join("old"), 50, 5, agent_cmd, "d000/**");
    let blob = stdout_of(
        &old,
        &["hash-object", "-w", "--stdin"],
        b"an earlier run's log\n",
    );
    let listing: String = (0..notes)
        .map(|i| {
            format!(
                "100644 blob {blob}\t{:040x}\n",
                (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15
            )
        })
        .collect();
    let tree = stdout_of(&old, &["mktree"], listing.as_bytes());
    let commit = stdout_of(&old, &["commit-tree", "-m", "earlier logs", &tree], b"");
    git(&old, &["update-ref", "refs/notes/agent", &commit]);
    run(&old, "full");
    let (mut none, mut many) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        none.push(run(&fresh, "full"));
        many.push(run(&old, "full"));
    }
    let (none, many) = (ms(median(none)), ms(median(many)));
    println!(
        "{notes} earlier decision logs: git agent run {many:.1} ms vs {none:.1} ms with none = {:.2}x",
        many / none
    );
}

/// What `git <args>` prints (trimmed), given `input`.
fn stdout_of(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input");
    let out = child.wait_with_output().expect("git ends");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    if wanted("small") {
        let base = tmp.path().join("small");
        let repo = repo_of(
            &base,
            50,
            5,
            "sh -c 'echo changed >> d000/f00000.txt'",
            "d000/**",
        );
        rows(
            "50 files",
            &repo,
            &base.join("bare-wt"),
            "d000/f00000.txt",
            rounds(15),
        );
    }
    if wanted("5k") {
        let base = tmp.path().join("5k");
        let repo = repo_of(
            &base,
            5000,
            100,
            "sh -c 'echo changed >> d000/f00000.txt'",
            "d000/**",
        );
        rows(
            "5,000 files",
            &repo,
            &base.join("bare-wt"),
            "d000/f00000.txt",
            rounds(5),
        );
    }
    if let Some(real) = std::env::var_os("GIT_AGENT_BENCH_REPO") {
        let base = tmp.path().join("real");
        let (repo, file) = real_repo(Path::new(&real), &base);
        let label = format!("{} ({file})", PathBuf::from(&real).display());
        rows(&label, &repo, &base.join("bare-wt"), &file, rounds(5));
    }
    if wanted("history") {
        history(&tmp.path().join("history"), 5_000, rounds(15));
    }
    if wanted("new") {
        let count = std::env::var("GIT_AGENT_BENCH_NEW_FILES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        new_files(tmp.path(), count);
    }
}
