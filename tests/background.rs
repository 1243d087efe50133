//! Runs in the background: `run --detach` and the supervisor, the queue and
//! its limits, one run per task across processes, `stop`, `notify`, and a
//! killed supervisor. Real processes throughout: the built binary, real
//! repositories, scripted agents that record what they saw.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::{Brief, TestRepo};

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A repository whose agent counts how many agents are alive at once
/// (`overlapping.sh`), with a brief per task writing only its own file.
fn queue_repo(tasks: &[String]) -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config_with(
        "overlapping.sh",
        &format!(
            "notify: {}\n",
            support::yaml_str(
                "printf '%s %s %s %s\\n' \"$GIT_AGENT_RUN_ID\" \"$GIT_AGENT_TASK\" \"$GIT_AGENT_OUTCOME\" \"$GIT_AGENT_LOG\" >> \"$FIXTURE_OUT/notified\""
            )
        ),
    );
    for t in tasks {
        repo.brief(
            t,
            &Brief::new(&[&format!("{t}.txt")])
                .check("wrote", &format!("test -f {t}.txt"))
                .timeout("5m"),
        );
    }
    repo.commit_all("briefs");
    repo
}

fn status_all(repo: &TestRepo) -> Vec<Value> {
    let out = repo.run(&["status", "--all", "--json"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("status JSON")
        .as_array()
        .expect("array")
        .clone()
}

fn outcome_of(repo: &TestRepo, id: &str) -> String {
    status_all(repo)
        .iter()
        .find(|r| r["run_id"] == id)
        .map(|r| r["outcome"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn wait_outcome(repo: &TestRepo, id: &str, limit: Duration) -> String {
    let mut last = String::new();
    wait_for(&format!("run {id} to end"), limit, || {
        last = outcome_of(repo, id);
        !matches!(last.as_str(), "" | "queued" | "running")
    });
    last
}

/// `run --detach` in a shell of its own process group, which is then
/// killed (SIGHUP, then SIGKILL to the whole group): what closing a
/// terminal does. Returns the printed run ids and how long the command took.
fn detach_and_close_the_terminal(repo: &TestRepo, args: &[&str]) -> (Vec<String>, Duration) {
    let mut cmd = repo.command(&[&["run", "--detach"][..], args].concat());
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let child = cmd.spawn().expect("start git-agent");
    let pgid = Pid::from_raw(child.id() as i32);
    let out = child.wait_with_output().expect("wait");
    let took = started.elapsed();
    assert!(out.status.success(), "{}", support::describe(&out));
    let _ = kill(Pid::from_raw(-pgid.as_raw()), Signal::SIGHUP);
    let _ = kill(Pid::from_raw(-pgid.as_raw()), Signal::SIGKILL);
    let ids = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (ids, took)
}

#[test]
fn a_detached_run_finishes_after_its_terminal_is_gone() {
    let repo = queue_repo(&["a".into()]);
    std::fs::write(repo.out.join("seconds"), "1").expect("seconds");
    let (ids, took) = detach_and_close_the_terminal(&repo, &["a"]);
    assert_eq!(ids.len(), 1, "{ids:?}");
    // It returned before the agent could have done its second of work.
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let outcome = wait_outcome(&repo, &ids[0], Duration::from_secs(60));
    assert_eq!(outcome, "succeeded");
    assert!(repo.rev_opt("agent/a").is_some(), "the result is committed");
    // The notify command saw the run's id, task, outcome and log.
    let notified = std::fs::read_to_string(repo.out.join("notified")).expect("notified");
    let fields: Vec<&str> = notified.split_whitespace().collect();
    assert_eq!(
        &fields[..3],
        &[ids[0].as_str(), "a", "succeeded"],
        "{notified}"
    );
    let log = std::fs::read_to_string(fields[3]).expect("the log it names");
    assert!(log.contains("a"), "{log}");
    // The supervisor's output went to its log, not to the closed terminal.
    let supervisor_log =
        std::fs::read_to_string(repo.root.join(".git/agent/supervisor.log")).expect("log");
    assert!(supervisor_log.contains("[a] succeeded"), "{supervisor_log}");
}

#[test]
fn a_queue_of_ten_at_j3_never_has_more_than_three_agents_alive() {
    let tasks: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let repo = queue_repo(&tasks);
    std::fs::write(repo.out.join("seconds"), "1").expect("seconds");
    // Two commands: the second joins the queue of the first's supervisor.
    let names: Vec<&str> = tasks.iter().map(String::as_str).collect();
    let (mut ids, _) = detach_and_close_the_terminal(&repo, &[&names[..5], &["-j", "3"]].concat());
    let (more, _) = detach_and_close_the_terminal(&repo, &[&names[5..], &["-j", "3"]].concat());
    ids.extend(more);
    assert_eq!(ids.len(), 10);
    for id in &ids {
        assert_eq!(
            wait_outcome(&repo, id, Duration::from_secs(120)),
            "succeeded",
            "{id}"
        );
    }
    let seen: Vec<usize> = std::fs::read_to_string(repo.out.join("seen"))
        .expect("seen")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(seen.len(), 10, "every agent ran once: {seen:?}");
    let most = seen.iter().copied().max().unwrap_or(0);
    assert!(
        most <= 3,
        "at most 3 agents alive at once, saw {most}: {seen:?}"
    );
    // And they did run side by side (the limit is not a queue of one).
    assert!(most >= 2, "runs overlapped: {seen:?}");
}

#[test]
fn one_run_per_task_across_processes() {
    let repo = queue_repo(&["a".into()]);
    std::fs::write(repo.out.join("seconds"), "3").expect("seconds");
    let mut first = repo
        .command(&["run", "a"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    wait_for("the first run's agent", Duration::from_secs(30), || {
        repo.out.join("started").exists()
    });
    let running = status_all(&repo)[0]["run_id"]
        .as_str()
        .expect("id")
        .to_string();
    // A second foreground request fails at once, naming the running run.
    let second = repo.run(&["run", "a"]);
    assert_eq!(
        support::status_of(&second),
        2,
        "{}",
        support::describe(&second)
    );
    let said = support::stderr(&second);
    assert!(said.contains(&running), "{said}");
    assert!(said.contains("one run per task"), "{said}");
    assert_eq!(status_all(&repo).len(), 1, "nothing was recorded for it");
    // A detached one waits in the queue until the first has ended.
    let queued = support::stdout(&repo.run(&["run", "--detach", "a"]))
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(outcome_of(&repo, &queued), "queued");
    assert_eq!(first.wait().expect("wait").code(), Some(0));
    assert_eq!(
        wait_outcome(&repo, &queued, Duration::from_secs(60)),
        "succeeded"
    );
    let started = std::fs::read_to_string(repo.out.join("started")).expect("started");
    assert_eq!(started.lines().count(), 2, "one agent after the other");
    let seen = std::fs::read_to_string(repo.out.join("seen")).expect("seen");
    assert!(
        seen.lines().all(|l| l.trim() == "1"),
        "never two at once: {seen}"
    );
}

#[test]
fn stop_interrupts_a_detached_run_and_resume_finishes_it() {
    let repo = queue_repo(&["a".into(), "b".into()]);
    std::fs::write(repo.out.join("seconds"), "30").expect("seconds");
    let (ids, _) = detach_and_close_the_terminal(&repo, &["a", "b", "-j", "1"]);
    wait_for("the agent", Duration::from_secs(30), || {
        repo.out.join("started").exists()
    });
    // b waits behind a (-j 1): stopping it takes it off the queue.
    let out = repo.run(&["stop", &ids[1]]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(
        support::stdout(&out).contains("taken off the queue"),
        "{}",
        support::describe(&out)
    );
    let started = Instant::now();
    let out = repo.run(&["stop", "a"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 30 s agent was stopped"
    );
    assert!(
        support::stdout(&out).contains("interrupted"),
        "{}",
        support::describe(&out)
    );
    let runs = status_all(&repo);
    let a = runs.iter().find(|r| r["run_id"] == ids[0]).expect("a");
    assert_eq!(a["outcome"], "interrupted");
    assert_eq!(a["reason"], "stopped by `git agent stop`");
    let b = runs.iter().find(|r| r["run_id"] == ids[1]).expect("b");
    assert_eq!(b["outcome"], "interrupted");
    assert_eq!(b["attempts"], 0, "b never started");
    // Stopping what has ended is refused with the reason.
    let again = repo.run(&["stop", &ids[0]]);
    assert_eq!(
        support::status_of(&again),
        2,
        "{}",
        support::describe(&again)
    );
    // Resumed, it finishes.
    std::fs::write(repo.out.join("seconds"), "0").expect("seconds");
    let out = repo.run(&["run", "--resume", &ids[0]]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert_eq!(outcome_of(&repo, &ids[0]), "succeeded");
}

#[test]
fn a_killed_supervisor_is_a_crash_like_any_other() {
    let repo = queue_repo(&["a".into(), "b".into()]);
    std::fs::write(repo.out.join("seconds"), "30").expect("seconds");
    let (ids, _) = detach_and_close_the_terminal(&repo, &["a", "b", "-j", "1"]);
    wait_for("the agent", Duration::from_secs(30), || {
        repo.out.join("started").exists()
    });
    let supervisor = status_all(&repo)
        .iter()
        .find(|r| r["run_id"] == ids[0])
        .and_then(|_| {
            let record: Value = serde_json::from_slice(
                &std::fs::read(
                    repo.root
                        .join(format!(".git/agent/runs/{}/run.json", ids[0])),
                )
                .expect("record"),
            )
            .expect("json");
            record["pid"].as_i64()
        })
        .expect("the supervisor's pid");
    kill(Pid::from_raw(supervisor as i32), Signal::SIGKILL).expect("SIGKILL the supervisor");
    wait_for("the supervisor to be gone", Duration::from_secs(10), || {
        !support::alive(supervisor as i32)
    });
    // Status tells the truth: a was interrupted; b still waits, and says for what.
    assert_eq!(outcome_of(&repo, &ids[0]), "interrupted");
    assert_eq!(outcome_of(&repo, &ids[1]), "queued");
    let text = support::stdout(&repo.run(&["status"]));
    assert!(text.contains("wait for a supervisor"), "{text}");
    // The agents of the killed supervisor die with it (no PID namespace
    // may keep one): resume and the queue go on.
    wait_for("a's processes to end", Duration::from_secs(10), || {
        support::processes_with_marker("GIT_AGENT_RUN_ID", &ids[0]).is_empty()
    });
    std::fs::write(repo.out.join("seconds"), "0").expect("seconds");
    let out = repo.run(&["run", "--resume", &ids[0]]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let out = repo.run(&["supervise"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert_eq!(outcome_of(&repo, &ids[1]), "succeeded");
    let out = repo.run(&["clean"]);
    assert!(out.status.success(), "{}", support::describe(&out));
}

#[test]
fn follow_a_detached_run_to_its_exit_code_and_read_its_agent_output() {
    let repo = queue_repo(&["a".into()]);
    std::fs::write(repo.out.join("seconds"), "1").expect("seconds");
    let (ids, _) = detach_and_close_the_terminal(&repo, &["a"]);
    let out = repo.run(&["log", &ids[0], "--follow"]);
    let said = support::stdout(&out);
    assert_eq!(support::status_of(&out), 0, "{}", support::describe(&out));
    assert!(said.contains("check `wrote` passed"), "{said}");
    assert!(said.contains("finished: succeeded"), "{said}");
    // The agent's own output of the attempt, as it wrote it.
    let out = repo.run(&["log", &ids[0], "--agent-output"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(
        support::stderr(&out).contains("attempt 1/1: agent stdout"),
        "{}",
        support::describe(&out)
    );
    let none = repo.run(&["log", &ids[0], "--agent-output", "2"]);
    assert_eq!(support::status_of(&none), 2);
    assert!(support::stderr(&none).contains("there is no attempt 2"));
}

#[test]
fn status_shows_ids_states_and_watch_ends_with_the_runs() {
    let repo = queue_repo(&["a".into(), "b".into()]);
    std::fs::write(repo.out.join("seconds"), "1").expect("seconds");
    let (ids, _) = detach_and_close_the_terminal(&repo, &["a", "b", "-j", "1"]);
    let text = support::stdout(&repo.run(&["status"]));
    for id in &ids {
        assert!(text.contains(id.as_str()), "{text}");
    }
    assert!(
        text.contains("queued") || text.contains("agent 1/"),
        "{text}"
    );
    // Off a terminal, --watch prints a table per change and returns when
    // every run has ended.
    let out = repo.run(&["status", "--watch"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let said = support::stdout(&out);
    assert!(said.matches("RUN ").count() >= 2, "{said}");
    let last = said.rsplit("RUN ").next().unwrap_or("");
    assert_eq!(last.matches("succeeded").count(), 2, "{said}");
}

#[test]
fn desktop_notification_goes_through_notify_send_when_asked() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    // A notify-send of our own on PATH: it records what it was given.
    let bin = repo.tmp.join("fakebin");
    std::fs::create_dir_all(&bin).expect("bin");
    let fake = bin.join("notify-send");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s|%s\\n' \"$1\" \"$2\" >> {}\n",
            repo.out.join("desktop").display()
        ),
    )
    .expect("fake");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    repo.config_with("overlapping.sh", "notify:\n  desktop: true\n");
    repo.brief("a", &Brief::new(&["a.txt"]).check("wrote", "test -f a.txt"));
    repo.commit_all("briefs");
    std::fs::write(repo.out.join("seconds"), "0").expect("seconds");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = repo.run_env(&["run", "a"], &[("PATH", &path)]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let said = std::fs::read_to_string(repo.out.join("desktop")).expect("notify-send ran");
    assert!(said.starts_with("git agent: a succeeded|"), "{said}");
    // Without `desktop: true` it is not called.
    std::fs::remove_file(repo.out.join("desktop")).expect("rm");
    repo.config_with("overlapping.sh", "");
    repo.commit_all("no notify");
    let out = repo.run_env(&["run", "a"], &[("PATH", &path)]);
    assert!(out.status.success(), "{}", support::describe(&out));
    assert!(!repo.out.join("desktop").exists());
}
