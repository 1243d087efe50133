//! `git agent stats` and `git agent status` over 1,000 past runs: records
//! and events written through the real `Store`, the results' commits real
//! (half merged into `main`, half cherry-picked there: only their trailer
//! is), then the real binary timed.
//!
//! Run: `cargo bench --bench stats` (prints numbers; asserts nothing).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use git_agent::log::Event;
use git_agent::store::{RunRecord, State, Store};

const RUNS: usize = 1000;
const TASKS: usize = 50;
const ROUNDS: usize = 5;
const AGENTS: [&str; 4] = ["claude", "codex", "aider", "script"];

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("repo");
    let repo = git2::Repository::init(&root).expect("init");
    repo.set_head("refs/heads/main").expect("HEAD");
    let made = Instant::now();
    fill(&repo, &Store::new(repo.commondir()));
    println!(
        "{RUNS} runs of {TASKS} tasks written in {:.1}s",
        made.elapsed().as_secs_f64()
    );
    let bin = env!("CARGO_BIN_EXE_git-agent");
    for args in [
        &["status"][..],
        &["status", "--all"],
        &["status", "--all", "--json"],
        &["stats"],
        &["stats", "--json"],
    ] {
        let times: Vec<Duration> = (0..ROUNDS).map(|_| time(bin, &root, args)).collect();
        println!(
            "git agent {:<22} median {:>7.1}ms  (min {:.1}ms, max {:.1}ms)",
            args.join(" "),
            ms(median(times.clone())),
            ms(*times.iter().min().expect("rounds")),
            ms(*times.iter().max().expect("rounds")),
        );
    }
}

/// One timed run of the binary; its output is checked, not kept.
fn time(bin: &str, root: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .current_dir(root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git-agent");
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "git agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// `RUNS` runs: 70% succeeded (each with a commit on main, or a
/// cherry-picked copy there), the rest failed, escalated or interrupted;
/// each with the events a real run of its kind writes.
fn fill(repo: &git2::Repository, store: &Store) {
    let sig = git2::Signature::new(
        "git-agent",
        "git-agent@localhost",
        &git2::Time::new(1_704_067_200, 0),
    )
    .expect("signature");
    let tree = repo
        .find_tree(repo.index().expect("index").write_tree().expect("tree"))
        .expect("tree");
    let base = repo
        .commit(Some("refs/heads/main"), &sig, &sig, "base", &tree, &[])
        .expect("base commit");
    let mut tip = base;
    for i in 0..RUNS {
        let task = format!("task-{:02}", i % TASKS);
        let agent = AGENTS[i % AGENTS.len()];
        let dir = store.create(&task).expect("run dir");
        let state = match i % 20 {
            0..=13 => State::Succeeded,
            14..=16 => State::Failed,
            17..=18 => State::Escalated,
            _ => State::Interrupted,
        };
        let attempts = 1 + (i % 3) as u32;
        let commit = (state == State::Succeeded).then(|| {
            let message = format!("Do {task}\n\nAgent-Task: {task}\nAgent-Run: {}\n", dir.id);
            let parent = repo.find_commit(tip).expect("tip");
            let on_main = repo
                .commit(
                    Some("refs/heads/main"),
                    &sig,
                    &sig,
                    &message,
                    &tree,
                    &[&parent],
                )
                .expect("commit");
            tip = on_main;
            if i % 2 == 0 {
                on_main.to_string()
            } else {
                // Cherry-picked: the run's own commit is elsewhere.
                let base = repo.find_commit(base).expect("base");
                repo.commit(None, &sig, &sig, &message, &tree, &[&base])
                    .expect("commit")
                    .to_string()
            }
        });
        for line in events(&task, agent, attempts, state, commit.as_deref()) {
            let event: Event = serde_json::from_str(&line).expect("an event");
            dir.append_event(&event).expect("append event");
        }
        dir.write_record(&RunRecord {
            title: format!("Do {task}"),
            brief_path: format!(".agents/tasks/{task}.md"),
            brief_blob: "0".repeat(40),
            agent: agent.to_string(),
            state,
            base_ref: "HEAD".into(),
            base_commit: Some(base.to_string()),
            base_branch: Some("main".into()),
            branch: commit.as_ref().map(|_| format!("agent/{task}")),
            commit,
            attempts,
            max_attempts: 3,
            reason: (state != State::Succeeded).then(|| "checks failed".into()),
            started_at: "2024-01-01T00:00:00Z".into(),
            finished_at: Some("2024-01-01T00:01:00Z".into()),
            duration_ms: Some(30_000 + (i as u64 * 37) % 60_000),
            ..RunRecord::blank(&dir.id, &task)
        })
        .expect("write record");
    }
}

/// The JSON lines of a run's events: start, each attempt (agent, its
/// activity, a scope report, a check), the commit, the end.
fn events(
    task: &str,
    agent: &str,
    attempts: u32,
    state: State,
    commit: Option<&str>,
) -> Vec<String> {
    let ts = r#""v":1,"ts":"2024-01-01T00:00:00Z""#;
    let mut lines = vec![format!(
        r#"{{{ts},"type":"run_started","task":"{task}","title":"Do {task}","brief":".agents/tasks/{task}.md","brief_blob":"{z}","agent":"{agent}","base_ref":"HEAD","base_commit":"{z}","goal":"Do the thing."}}"#,
        z = "0".repeat(40)
    )];
    for attempt in 1..=attempts {
        lines.push(format!(
            r#"{{{ts},"type":"attempt_started","attempt":{attempt}}}"#
        ));
        lines.push(format!(
            r#"{{{ts},"type":"agent_finished","attempt":{attempt},"exit_code":0,"signal":null,"timed_out":false,"duration_ms":20000,"stdout_bytes":40000,"stderr_bytes":100,"leaked":0}}"#
        ));
        if agent != "script" {
            lines.push(format!(
                r#"{{{ts},"type":"agent_activity","attempt":{attempt},"tool_calls":[{{"name":"Edit","detail":"src/lib.rs"}},{{"name":"Bash","detail":"cargo test"}}],"files_edited":["src/lib.rs"],"commands":[{{"command":"cargo test","exit_code":0}}],"turns":12,"input_tokens":48000,"output_tokens":3200,"cost_usd":0.21}}"#
            ));
        }
        lines.push(format!(
            r#"{{{ts},"type":"scope_report","attempt":{attempt},"changes":[{{"path":"src/lib.rs","kind":"modified","lines_added":12,"lines_removed":3,"verdict":"allowed","glob":"src/**"}}]}}"#
        ));
        lines.push(format!(
            r#"{{{ts},"type":"check_finished","attempt":{attempt},"name":"test","command":"cargo test","passed":true,"exit_code":0,"timed_out":false,"duration_ms":9000,"output_tail":"test result: ok. 12 passed"}}"#
        ));
    }
    if let Some(commit) = commit {
        lines.push(format!(
            r#"{{{ts},"type":"committed","branch":"agent/{task}","commit":"{commit}"}}"#
        ));
    }
    lines.push(format!(
        r#"{{{ts},"type":"run_finished","outcome":"{}","duration_ms":60000}}"#,
        state.outcome()
    ));
    lines
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
