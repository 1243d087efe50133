//! Many runs at once and what happens when things break: a 40-brief stress
//! batch, Ctrl-C once and twice, and SIGKILL of the orchestrator at several
//! points followed by `status` and `clean`. Real repositories, real
//! processes, real signals.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::{alive, Brief, TestRepo};

/// Every process on the machine whose environment carries a run id of this repo.
fn processes_of(repo: &TestRepo) -> Vec<i32> {
    let runs: Vec<String> = std::fs::read_dir(repo.root.join(".git/agent/runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let hit = environ.split(|b| *b == 0).any(|var| {
            runs.iter()
                .any(|r| var == format!("GIT_AGENT_RUN_ID={r}").as_bytes())
        });
        if hit && alive(pid) {
            found.push(pid);
        }
    }
    found
}

fn spawn_run(repo: &TestRepo, args: &[&str]) -> Child {
    repo.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start git-agent")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("git-agent did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_json(repo: &TestRepo) -> Vec<Value> {
    let out = repo.run(&["status", "--all", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("status JSON")
        .as_array()
        .expect("array")
        .clone()
}

/// The parts of the user's checkout a run must never change.
fn checkout_fingerprint(repo: &TestRepo) -> (String, String, Vec<u8>, String) {
    (
        repo.git(&["rev-parse", "HEAD"]),
        repo.git(&["status", "--porcelain", "--untracked-files=all"]),
        std::fs::read(repo.root.join(".git/index")).expect("index"),
        repo.read("dirty.txt"),
    )
}

fn fsck_clean(repo: &TestRepo) {
    let out = repo.git_output(&["fsck", "--no-dangling"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "git fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn forty_briefs_at_j8_each_end_in_the_right_state() {
    let repo = TestRepo::with_files(&[("README.md", "stress\n")]);
    repo.config("batch.sh");
    let mut expected = Vec::new();
    for i in 0..40 {
        let (id, brief, outcome) = match i % 8 {
            0..=4 => {
                let id = format!("ok-{i:02}");
                let b = Brief::new(&[&format!("{id}.txt")]);
                (id, b, "succeeded")
            }
            5 => {
                let id = format!("fail-{i:02}");
                let b = Brief::new(&[&format!("{id}.txt")]).check("never", "false");
                (id, b, "failed")
            }
            6 => {
                let id = format!("slow-{i:02}");
                let b = Brief::new(&[&format!("{id}.txt")]).timeout("2s");
                (id, b, "escalated")
            }
            _ => {
                let id = format!("stray-{i:02}");
                let b = Brief::new(&[&format!("{id}.txt")]);
                (id, b, "escalated")
            }
        };
        repo.brief(&id, &brief);
        expected.push((id, outcome));
    }
    repo.commit_all("briefs");
    let out = repo.run(&["run", "--all", "-j", "8", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed run makes exit 1; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("run JSON");
    assert_eq!(runs.len(), 40);
    let mut kept = Vec::new();
    for (id, outcome) in &expected {
        let run = runs
            .iter()
            .find(|r| r["task"] == id.as_str())
            .unwrap_or_else(|| panic!("no run for {id}"));
        assert_eq!(run["outcome"], *outcome, "{id}: {run}");
        let branch = format!("agent/{id}");
        match *outcome {
            "succeeded" => {
                assert_eq!(
                    repo.show(&branch, &format!("{id}.txt")).as_deref(),
                    Some(format!("{id}\n").as_str())
                );
                assert!(run["worktree"].is_null(), "{id} keeps no worktree");
            }
            "failed" => {
                assert!(
                    repo.rev_opt(&branch).is_none(),
                    "a failed run writes no branch"
                );
                kept.push(
                    run["worktree"]
                        .as_str()
                        .expect("failed run keeps its worktree")
                        .to_string(),
                );
            }
            _ => {
                kept.push(
                    run["worktree"]
                        .as_str()
                        .expect("escalated run keeps its worktree")
                        .to_string(),
                );
                if id.starts_with("stray") {
                    assert!(
                        repo.show(&branch, &format!("outside-{id}.txt")).is_none(),
                        "{id}: out-of-scope file committed"
                    );
                    assert!(
                        repo.show(&branch, &format!("{id}.txt")).is_some(),
                        "{id}: in-scope work kept"
                    );
                }
            }
        }
    }
    fsck_clean(&repo);
    let mut listed = repo.worktrees();
    listed.retain(|w| *w != repo.root.display().to_string());
    listed.sort();
    kept.sort();
    assert_eq!(
        listed, kept,
        "git worktree list holds exactly the kept worktrees"
    );
    assert!(
        processes_of(&repo).is_empty(),
        "no process of any run survives"
    );
}

#[test]
fn overlapping_scopes_run_side_by_side() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config("batch.sh");
    repo.brief("ok-a", &Brief::new(&["ok-a.txt", "shared/**"]));
    repo.brief("ok-b", &Brief::new(&["ok-b.txt", "shared/*.md"]));
    repo.brief("ok-c", &Brief::new(&["ok-c.txt"]));
    repo.commit_all("briefs");
    let out = repo.run(&["run", "ok-a", "ok-b", "ok-c", "-j", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ok-a and ok-b may write the same files: they run side by side"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("ok-c may") && !stderr.contains("ok-c and"),
        "{stderr}"
    );
    // Their own files: the results merge, nothing is said.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("conflicts"));
}

#[test]
fn two_orchestrators_in_one_repo_do_not_corrupt_each_other() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config("batch.sh");
    for i in 0..8 {
        repo.brief(&format!("ok-{i}"), &Brief::new(&[&format!("ok-{i}.txt")]));
    }
    repo.commit_all("briefs");
    let mut a = spawn_run(&repo, &["run", "ok-0", "ok-1", "ok-2", "ok-3", "-j", "4"]);
    let mut b = spawn_run(&repo, &["run", "ok-4", "ok-5", "ok-6", "ok-7", "-j", "4"]);
    assert!(wait_child(&mut a, Duration::from_secs(60)).success());
    assert!(wait_child(&mut b, Duration::from_secs(60)).success());
    for i in 0..8 {
        assert!(
            repo.rev_opt(&format!("agent/ok-{i}")).is_some(),
            "branch of ok-{i}"
        );
        let note = repo.git(&["notes", "--ref", "agent", "show", &format!("agent/ok-{i}")]);
        assert!(note.contains("Succeeded"), "note of ok-{i}: {note}");
    }
    fsck_clean(&repo);
}

fn sleepy_repo(tasks: &[&str]) -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "x\n"), ("dirty.txt", "committed\n")]);
    repo.config_with("sleepy.sh", "");
    for t in tasks {
        repo.brief(t, &Brief::new(&[&format!("{t}.txt")]).timeout("5m"));
    }
    repo.commit_all("briefs");
    // The user has uncommitted work; no run may touch it.
    repo.write("dirty.txt", "uncommitted edit\n");
    repo
}

fn pids_written(repo: &TestRepo, at_least: usize) -> Vec<i32> {
    let path = repo.out.join("pids");
    wait_for("the agents to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&path)
            .map(|t| t.lines().count() >= at_least)
            .unwrap_or(false)
    });
    std::fs::read_to_string(&path)
        .expect("pids")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn first_ctrl_c_stops_cleanly_with_130_and_keeps_worktrees() {
    let repo = sleepy_repo(&["a", "b"]);
    let before = checkout_fingerprint(&repo);
    let mut child = spawn_run(&repo, &["run", "a", "b", "-j", "2"]);
    let pids = pids_written(&repo, 4);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    // The agents ignore SIGTERM: they die at the end of the 1 s grace.
    let status = wait_child(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130));
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the orchestrator");
    }
    assert!(processes_of(&repo).is_empty());
    let runs = status_json(&repo);
    assert_eq!(runs.len(), 2);
    for r in &runs {
        assert_eq!(r["outcome"], "interrupted", "{r}");
        let wt = r["worktree"].as_str().expect("worktree kept");
        assert!(std::path::Path::new(wt).exists());
    }
    assert_eq!(checkout_fingerprint(&repo), before);
}

#[test]
fn second_ctrl_c_kills_at_once() {
    let repo = sleepy_repo(&["a"]);
    // A grace far longer than the test allows: only the second signal can end it.
    let cfg = repo
        .read(".agents/config.yaml")
        .replace("kill_grace: 1s", "kill_grace: 60s");
    repo.write(".agents/config.yaml", &cfg);
    let mut child = spawn_run(&repo, &["run", "a"]);
    let pids = pids_written(&repo, 2);
    let pid = Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).expect("first SIGINT");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    kill(pid, Signal::SIGINT).expect("second SIGINT");
    let status = wait_child(&mut child, Duration::from_secs(15));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "the second Ctrl-C must not wait for the grace"
    );
    assert_eq!(status.code(), Some(130));
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived");
    }
}

#[test]
fn the_kernel_ends_the_runs_processes_when_git_agent_is_killed() {
    // Control: a background child whose parent shell is SIGKILLed lives on
    // (the agent's own `sleep 300 &` is such a child).
    let control = std::process::Command::new("sh")
        .args(["-c", "sleep 300 & echo $!; exec sleep 300"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut control = control;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(control.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("pid");
    let orphan: i32 = line.trim().parse().expect("pid");
    let _ = control.kill();
    let _ = control.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        support::kill_if_alive(orphan),
        "control: the orphan outlives its killed parent"
    );

    let repo = sleepy_repo(&["a", "b"]);
    let mut child = spawn_run(&repo, &["run", "a", "b", "-j", "2"]);
    let pids = pids_written(&repo, 4);
    let _ = child.kill(); // SIGKILL: no handler, no sweep, no `clean`.
    let _ = child.wait();
    wait_for(
        "the kernel to end the runs' processes",
        Duration::from_secs(5),
        || pids.iter().all(|&pid| !alive(pid)),
    );
    assert!(processes_of(&repo).is_empty());
}

#[test]
fn resume_refuses_while_a_process_of_the_run_is_alive() {
    let repo = sleepy_repo(&["a"]);
    // Without a PID namespace, the agent's background child outlives a
    // SIGKILLed git-agent (the control: it is alive below).
    let mut child = repo
        .command(&["run", "a"])
        .env("GIT_AGENT_SIMULATE_NO_PID_NAMESPACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git-agent");
    let pids = pids_written(&repo, 2);
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(!left.is_empty(), "control: a process of the run is alive");
    let id = status_json(&repo)[0]["run_id"]
        .as_str()
        .expect("run id")
        .to_string();

    let out = repo.run(&["run", "--resume", &id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for pid in &left {
        support::kill_if_alive(*pid);
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("still has processes alive"), "{stderr}");
    assert!(stderr.contains(&left[0].to_string()), "{stderr}");
    // Once they are gone (every process with the run's marker), it resumes.
    for pid in processes_of(&repo) {
        support::kill_if_alive(pid);
    }
    wait_for("the run's processes to end", Duration::from_secs(5), || {
        processes_of(&repo).is_empty()
    });
    std::fs::write(repo.out.join("seconds"), "0").expect("seconds");
    let out = repo.run(&["run", "--resume", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn log_follow_streams_a_run_until_it_ends_with_its_exit_code() {
    let repo = sleepy_repo(&["a"]);
    std::fs::write(repo.out.join("seconds"), "1").expect("seconds");
    let mut child = spawn_run(&repo, &["run", "a"]);
    pids_written(&repo, 2);
    let started = Instant::now();
    let out = repo.run(&["log", "a", "--follow"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It followed the run while it ran (the agent sleeps a second).
    assert!(started.elapsed() >= Duration::from_millis(500), "{said}");
    for line in [
        "started a with agent",
        "attempt 1",
        "the agent exited 0",
        "committed",
        "finished: succeeded",
    ] {
        assert!(said.contains(line), "{line:?} missing:\n{said}");
    }
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(20)).code(),
        Some(0)
    );
    // A finished run: its lines and its exit code at once.
    let again = repo.run(&["log", "a", "-f"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&again.stdout), said);
}

/// SIGKILL the orchestrator at a point of the run, then check that
/// `status` tells the truth and `clean` leaves a clean repository.
fn crash_at(delay: Duration, agent_seconds: &str, check: &str) {
    let repo = sleepy_repo(&["a", "b"]);
    std::fs::write(repo.out.join("seconds"), agent_seconds).expect("seconds");
    for t in ["a", "b"] {
        repo.brief(
            t,
            &Brief::new(&[&format!("{t}.txt")])
                .check("slow", check)
                .timeout("5m"),
        );
    }
    repo.git(&["add", ".agents"]);
    repo.git(&["commit", "-q", "-m", "slow checks"]);
    let before = checkout_fingerprint(&repo);
    let mut child = spawn_run(&repo, &["run", "a", "b", "-j", "2"]);
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();

    for r in status_json(&repo) {
        let outcome = r["outcome"].as_str().expect("outcome");
        assert!(
            ["interrupted", "succeeded"].contains(&outcome),
            "after a crash at {delay:?}, status says {outcome}: {r}"
        );
    }
    let out = repo.run(&["clean"]);
    assert!(
        out.status.success(),
        "clean: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("leftover processes to die", Duration::from_secs(5), || {
        processes_of(&repo).is_empty()
    });
    fsck_clean(&repo);
    assert_eq!(
        repo.worktrees(),
        vec![repo.root.display().to_string()],
        "only the user's worktree is left"
    );
    assert_eq!(
        checkout_fingerprint(&repo),
        before,
        "the user's checkout is unchanged"
    );
    for r in status_json(&repo) {
        assert!(
            r["worktree"].is_null()
                || !std::path::Path::new(r["worktree"].as_str().unwrap_or("")).exists()
        );
    }
}

#[test]
fn crash_during_worktree_creation() {
    crash_at(Duration::from_millis(40), "300", "true");
}

#[test]
fn crash_during_the_agent() {
    crash_at(Duration::from_millis(1500), "300", "true");
}

#[test]
fn crash_during_checks() {
    crash_at(Duration::from_millis(2500), "0.2", "sleep 300");
}

#[test]
fn crash_around_commit() {
    // Agents and checks are quick: the kill lands among commits and notes
    // (or after them); either way the repository must stay sound.
    for delay in [300, 450, 600] {
        crash_at(Duration::from_millis(delay), "0", "true");
    }
}

#[test]
fn an_interrupted_run_resumes_in_its_worktree() {
    let repo = sleepy_repo(&["a"]);
    let mut child = spawn_run(&repo, &["run", "a"]);
    pids_written(&repo, 2);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(20)).code(),
        Some(130)
    );
    let before = status_json(&repo);
    assert_eq!(before[0]["outcome"], "interrupted");
    let worktree = before[0]["worktree"].as_str().expect("kept").to_string();
    let id = before[0]["run_id"].as_str().expect("run id").to_string();
    // The summary (stdout) says how to go on.
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut said)
        .expect("stdout");
    assert!(
        said.contains(&format!("continue it with `git agent run --resume {id}`")),
        "{said}"
    );
    // A flag `--resume` would ignore is refused.
    let out = repo.run(&["run", "--resume", &id, "--agent", "other"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not apply to `--resume`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Finished runs cannot be resumed; interrupted ones continue in place.
    std::fs::write(repo.out.join("seconds"), "0").expect("seconds");
    let out = repo.run(&["run", "--resume", "a", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        runs[0]["run_id"], before[0]["run_id"],
        "the same run goes on"
    );
    assert_eq!(runs[0]["outcome"], "succeeded");
    assert_eq!(repo.show("agent/a", "a.txt").as_deref(), Some("a\n"));
    assert!(
        !std::path::Path::new(&worktree).exists(),
        "a succeeded run's worktree is removed"
    );
    let events = repo.events("a");
    assert!(
        events.iter().any(|e| e["type"] == "resumed"),
        "a resumed event"
    );

    let again = repo.run(&["run", "--resume", "a"]);
    assert_eq!(again.status.code(), Some(2), "only interrupted runs resume");
    assert!(String::from_utf8_lossy(&again.stderr).contains("not interrupted"));
}

#[test]
fn clean_older_than_keeps_recent_worktrees() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config("batch.sh");
    repo.brief(
        "fail-1",
        &Brief::new(&["fail-1.txt"]).check("never", "false"),
    );
    repo.commit_all("brief");
    let (code, run, _) = repo.run_one("fail-1");
    assert_eq!(code, 1);
    let wt = run["worktree"].as_str().expect("kept").to_string();
    let out = repo.run(&["clean", "--older-than", "7d"]);
    assert!(out.status.success());
    assert!(
        std::path::Path::new(&wt).exists(),
        "a run of today is not older than 7 days"
    );
    let status = repo.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("1 worktree kept"),
        "status reports kept worktrees and their size"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let out = repo.run(&["clean", "--older-than", "1s"]);
    assert!(out.status.success());
    assert!(!std::path::Path::new(&wt).exists());
    assert_eq!(repo.worktrees(), vec![repo.root.display().to_string()]);
}

/// A closed terminal (SIGHUP) stops the runs like Ctrl-C: supervised to
/// the end, nothing left alive, the runs interrupted and resumable.
#[test]
fn a_hangup_stops_cleanly_like_ctrl_c() {
    let repo = sleepy_repo(&["a"]);
    let mut child = spawn_run(&repo, &["run", "a"]);
    let pids = pids_written(&repo, 2);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).expect("SIGHUP");
    let status = wait_child(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "a hangup is an interruption");
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the hangup");
    }
    let runs = status_json(&repo);
    assert_eq!(runs[0]["outcome"], "interrupted", "{}", runs[0]);
}
