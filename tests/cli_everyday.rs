//! The everyday path, tried as a new user would (issue 17): honest output,
//! early errors, no silent surprises. Each test drives the real binary in a
//! real repository and pins the message a user reads.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::{assert_status, describe, of_type, stderr, stdout, trailer, Brief, TestRepo};

const USAGE: i32 = 2;

/// A committed project with `README.md`, `src/lib.rs`, the agent `fx`
/// running `script`, and `briefs` (id, brief).
fn project(script: &str, briefs: &[(&str, Brief)]) -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# project\n"), ("src/lib.rs", "\n")]);
    repo.config(script);
    for (id, brief) in briefs {
        repo.brief(id, brief);
    }
    repo.commit_all("briefs");
    repo
}

/// `validate --json`'s problems, one `file:line:col severity code: message` each.
fn problems(repo: &TestRepo, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["validate", "--json"];
    args.extend_from_slice(extra);
    let out = repo.run(&args);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", describe(&out)));
    let mut lines: Vec<String> = json["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{} {} {}: {}",
                p["file"].as_str().unwrap_or(""),
                p["line"],
                p["column"],
                p["severity"].as_str().unwrap_or(""),
                p["code"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    lines.sort();
    (out.status.code().unwrap_or(-1), lines.join("\n"))
}

// ---------------------------------------------------------------------------
// 1. validate warns about what is not committed

#[test]
fn validate_warns_about_an_uncommitted_brief_and_scripts_the_base_lacks() {
    let repo = TestRepo::with_files(&[("README.md", "# project\n")]);
    repo.write(
        ".agents/config.yaml",
        "default_agent: fx\nagents:\n  fx:\n    adapter: command\n    command: sh tools/agent.sh\n",
    );
    repo.brief(
        "hello",
        &Brief::new(&["README.md"]).check("lint", "sh tools/check.sh"),
    );
    repo.commit_all("config and brief");
    // Made after the commit: on disk, not in the tree a run checks out.
    repo.write("tools/agent.sh", "echo agent\n");
    repo.write("tools/check.sh", "echo check\n");
    repo.write(
        ".agents/tasks/hello.md",
        format!("{}\nMore detail.\n", repo.read(".agents/tasks/hello.md")),
    );
    let (code, found) = problems(&repo, &[]);
    assert_eq!(code, 0, "warnings only: {found}");
    insta::assert_snapshot!(found, @r"
    .agents/config.yaml:5:14 warning config::not-in-base: `tools/agent.sh` is not in the committed tree
    .agents/tasks/hello.md:1:1 warning brief::uncommitted: the brief has changes that are not committed
    .agents/tasks/hello.md:7:10 warning brief::not-in-base: `tools/check.sh` is not in the committed tree
    ");
    let out = repo.run(&["validate"]);
    assert!(
        stderr(&out)
            .contains("help: the run's worktree will not have it (commit it, or stop ignoring it)"),
        "{}",
        describe(&out)
    );
    assert_status(&repo.run(&["validate", "--strict"]), USAGE);
}

// ---------------------------------------------------------------------------
// 2. validate checks that `base:` resolves

#[test]
fn validate_points_at_a_base_that_does_not_resolve() {
    let repo = project("success.sh", &[]);
    let text =
        Brief::new(&["src/**"])
            .render()
            .replacen("scope:\n", "base: release-9\nscope:\n", 1);
    repo.write(".agents/tasks/hello.md", text);
    repo.commit_all("brief");
    let out = repo.run(&["validate"]);
    insta::assert_snapshot!(describe(&out), @r#"
    status: 2
    ----- stdout -----
    1 brief checked: 0 valid, 1 invalid (1 error, 0 warnings)
    ----- stderr -----
    brief::unresolved-base

      × `base: release-9` does not resolve to a commit in this repository
       ╭─[.agents/tasks/hello.md:3:1]
     2 │ title: "Scripted change"
     3 │ base: release-9
       · ──┬─
       ·   ╰── no such branch, tag or commit
     4 │ scope:
       ╰────
      help: name a branch, tag or commit that exists here (`git rev-parse <base>` tells)
    "#);
    // `run` says the same, from the same code.
    let out = repo.run(&["run", "hello"]);
    assert_status(&out, USAGE);
    assert!(
        stderr(&out).contains(".agents/tasks/hello.md:3:1: `base: release-9` does not resolve"),
        "{}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------
// 4. resume: an interrupted check is no failure, decisions are not doubled

/// The state in the only run's `run.json`, as it is on disk now.
fn only_run_state(repo: &TestRepo) -> Option<String> {
    // The run's directory, not the store's `.seq` counter beside it.
    let dir = std::fs::read_dir(repo.root.join(".git/agent/runs"))
        .ok()?
        .flatten()
        .find(|e| e.path().is_dir())?;
    let text = std::fs::read_to_string(dir.path().join("run.json")).ok()?;
    let record: Value = serde_json::from_str(&text).ok()?;
    record["state"].as_str().map(str::to_string)
}

#[test]
fn a_run_stopped_in_its_checks_resumes_at_them() {
    let seconds = "seconds";
    let repo = TestRepo::with_files(&[("README.md", "# project\n")]);
    repo.config("decide.sh");
    let wait = format!("sleep \"$(cat '{}')\"", repo.out.join(seconds).display());
    // The fixture records three decisions for the task `decisions`.
    repo.brief(
        "decisions",
        &Brief::new(&["src/**"]).timeout("5m").check("slow", &wait),
    );
    repo.commit_all("brief");
    std::fs::write(repo.out.join(seconds), "60").expect("seconds");

    let mut child = repo
        .command(&["run", "decisions"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(repo.tmp.join("run.stderr")).expect("stderr file"))
        .spawn()
        .expect("start git-agent");
    let start = Instant::now();
    while only_run_state(&repo).as_deref() != Some("checking") {
        let ended = matches!(
            only_run_state(&repo).as_deref(),
            Some("succeeded" | "failed" | "escalated" | "interrupted")
        );
        assert!(
            start.elapsed() < Duration::from_secs(120) && !ended,
            "the check never started (state {:?}); stderr:\n{}",
            only_run_state(&repo),
            std::fs::read_to_string(repo.tmp.join("run.stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut said)
        .expect("stdout");
    assert!(
        said.contains("decisions: interrupted by a signal while the check `slow` ran"),
        "{said}"
    );

    std::fs::write(repo.out.join(seconds), "0").expect("seconds");
    let out = repo.run(&["run", "--resume", "decisions", "--json"]);
    assert_status(&out, 0);
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("one JSON array");
    assert_eq!(runs[0]["outcome"], "succeeded");
    let id = runs[0]["run_id"].as_str().expect("run id");

    let events = repo.events(id);
    let checks = of_type(&events, "check_finished");
    assert!(
        checks.iter().all(|c| c["passed"] == true),
        "the interrupted check is recorded as failed: {checks:#?}"
    );
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(
        of_type(&events, "agent_finished").len(),
        1,
        "the agent, done before the interruption, ran again"
    );
    let decisions: Vec<&str> = of_type(&events, "decision")
        .iter()
        .filter_map(|d| d["summary"].as_str())
        .collect();
    assert_eq!(decisions, ["the input is UTF-8", "x", "via git"]);
    let log = repo.log_md(id);
    assert_eq!(log.matches("the input is UTF-8").count(), 1, "{log}");
    // `log --json` is the same as `--format json`.
    let out = repo.run(&["log", id, "--json"]);
    assert_status(&out, 0);
    let json: Value = serde_json::from_slice(&out.stdout).expect("log JSON");
    assert_eq!(json["events"].as_array().map(Vec::len), Some(events.len()));
}

// ---------------------------------------------------------------------------
// 5. finding runs

#[test]
fn an_ambiguous_run_lists_its_candidates_and_a_deleted_brief_is_said() {
    let repo = project(
        "success.sh",
        &[
            ("alpha", Brief::new(&["src/**"])),
            ("beta", Brief::new(&["src/**"])),
        ],
    );
    let mut ids = Vec::new();
    for task in ["alpha", "beta"] {
        let (code, run, said) = repo.run_one(task);
        assert_eq!(code, 0, "{said}");
        ids.push(run["run_id"].as_str().expect("run id").to_string());
    }

    let out = repo.run(&["status", "2"]);
    assert_status(&out, USAGE);
    let said = stderr(&out)
        .replace(&ids[0], "[ALPHA]")
        .replace(&ids[1], "[BETA]");
    insta::assert_snapshot!(said, @r"
    error: `2` matches 2 runs: [ALPHA] (alpha succeeded), [BETA] (beta succeeded); give more of a run id
      hint: list runs with `git agent status`
    ");

    std::fs::remove_file(repo.path(".agents/tasks/beta.md")).expect("rm");
    repo.commit_all("beta is done");
    let out = repo.run(&["status"]);
    assert_status(&out, 0);
    let table = stdout(&out);
    let row = |task: &str| {
        table
            .lines()
            .find(|l| l.contains(task))
            .unwrap_or_else(|| panic!("no row for {task}:\n{table}"))
            .to_string()
    };
    assert!(row("beta").contains("beta (brief deleted)"), "{table}");
    assert!(!row("alpha").contains("deleted"), "{table}");
}

// ---------------------------------------------------------------------------
// 6. ids and folders

#[test]
fn ids_are_explained_and_nested_briefs_are_never_silently_invisible() {
    let repo = project("success.sh", &[("hello", Brief::new(&["src/**"]))]);
    let out = repo.run(&["run", "FixTypo"]);
    insta::assert_snapshot!(describe(&out), @r"
    status: 2
    ----- stdout -----
    ----- stderr -----
    error: `FixTypo` is not a task id: ids are lower-case letters, digits, `-` and `_` (a brief's file name without `.md`)
      hint: as an id it would be `fixtypo` (`git agent new fixtypo` makes its brief)
    ");
    let out = repo.run(&["run", "Hello"]);
    assert!(
        stderr(&out).contains("hint: did you mean `hello`?"),
        "{}",
        describe(&out)
    );

    repo.write(
        ".agents/tasks/docs/guide.md",
        Brief::new(&["docs/**"]).render(),
    );
    let out = repo.run(&["run", ".agents/tasks/docs/guide.md"]);
    insta::assert_snapshot!(stderr(&out), @r"
    error: .agents/tasks/docs/guide.md: briefs in subdirectories of .agents/tasks are not read (a task's id is its file name)
      hint: move it to .agents/tasks/guide.md
    ");
    let out = repo.run(&["list"]);
    assert!(
        stderr(&out).contains("warning: .agents/tasks/docs/guide.md is not listed"),
        "{}",
        describe(&out)
    );
    let out = repo.run(&["validate"]);
    assert_status(&out, USAGE);
    assert!(stderr(&out).contains("brief::nested"), "{}", describe(&out));

    // A brief's own path is a way to name it.
    let out = repo.run(&["run", ".agents/tasks/hello.md", "--json"]);
    assert_status(&out, 0);
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(runs[0]["task"], "hello");
}

// ---------------------------------------------------------------------------
// 7. lints

#[test]
fn validate_lints_what_validates_but_will_not_work() {
    let repo = TestRepo::with_files(&[("README.md", "# project\n"), ("src/lib.rs", "\n")]);
    repo.write(
        ".agents/config.yaml",
        "default_agent: bot\nagents:\n  bot:\n    adapter: claude\n    command: no-such-agent-cli\n",
    );
    let long = Brief {
        goal: format!(
            "Read all of this.\n\n{}",
            "lorem ipsum dolor\n".repeat(6000)
        ),
        ..Brief::new(&["src/**", "scr/**", "docs/new/guide.md", "NEW.md"])
            .timeout("5m")
            .check("slow", "true")
    };
    repo.write(
        ".agents/tasks/long.md",
        long.render()
            .replace("run: \"true\"\n", "run: \"true\"\n    timeout: 1h\n"),
    );
    assert_status(
        &repo.run(&["new", "fresh", "-w", "src/**", "--check", "true"]),
        0,
    );
    repo.commit_all("briefs");
    let (code, found) = problems(&repo, &[]);
    assert_eq!(code, 0, "warnings only: {found}");
    insta::assert_snapshot!(found, @r"
    .agents/config.yaml:5:14 warning config::program-not-found: `no-such-agent-cli`, the program of agent `bot`, is not on PATH: runs with it would fail at once
    .agents/tasks/fresh.md:26:1 warning brief::template-goal: the goal is still the template's: the agent would be told nothing
    .agents/tasks/long.md:13:1 warning brief::long-body: the body is 105 KB, more than 100 KB: no model reads a prompt that long whole
    .agents/tasks/long.md:4:21 warning brief::glob-matches-nothing: `scr/**` matches no file at the base (`HEAD`), and its directory `scr/` is not there
    .agents/tasks/long.md:4:31 warning brief::glob-matches-nothing: `docs/new/guide.md` matches no file at the base (`HEAD`), and its directory `docs/new/` is not there
    .agents/tasks/long.md:8:5 warning brief::check-outlives-run: the check `slow` may run for 1h, longer than the whole run may (`escalate.timeout: 5m`)
    ");
    let (code, _) = problems(&repo, &["--strict"]);
    assert_eq!(code, USAGE, "--strict makes warnings errors");
}

// ---------------------------------------------------------------------------
// 8. sandbox denials explain themselves

#[test]
fn a_check_refused_a_write_outside_the_sandbox_names_the_path_and_the_key() {
    let repo = project(
        "success.sh",
        &[(
            "cache",
            Brief::new(&["src/**"])
                .attempts(1)
                .check("cache", "touch \"$HOME/cache-file\""),
        )],
    );
    let out = repo.run(&["run", "cache"]);
    let (_, runs, _) = repo.run_json(&["cache"]);
    let id = runs[0]["run_id"].as_str().expect("run id");
    let events = repo.events(id);
    let sandbox = of_type(&events, "sandbox");
    let confined = sandbox
        .first()
        .is_some_and(|s| s["enforcement"] == "landlock" || s["read_only_root"] == true);
    if !confined {
        println!(
            "the kernel cannot confine writes here (no Landlock, no mount namespace); skipping"
        );
        return;
    }
    assert_status(&out, 1);
    let summary = repo.redact(&stdout(&out));
    let line = summary
        .lines()
        .find(|l| l.starts_with("cache: "))
        .unwrap_or_else(|| panic!("no reason line:\n{summary}"));
    let line = line.split(" (worktree kept").next().unwrap_or(line);
    insta::assert_snapshot!(line, @r#"cache: check `cache` failed on the last attempt (1 of 1); `[HOME]/cache-file` is outside the run's writable places; allow the directory it is made in with `sandbox.write_paths: ["[HOME]"]` in .agents/config.yaml (or make `[HOME]/cache-file` and allow that)"#);
    // The check's output in the log says it too, for the agent and the reviewer.
    let check = of_type(&events, "check_finished");
    let tail = check[0]["output_tail"].as_str().unwrap_or("");
    assert!(
        tail.contains("[git-agent: `") && tail.contains("sandbox.write_paths"),
        "{tail}"
    );
}

// ---------------------------------------------------------------------------
// 9. docs and behaviour agree

#[test]
fn run_json_is_one_array_and_review_says_its_base_and_the_escalation() {
    let repo = TestRepo::with_files(&[("README.md", "# project\n")]);
    let help = stdout(&repo.run(&["run", "--help"]));
    assert!(help.contains("one JSON array"), "{help}");

    repo.config("success.sh");
    let brief = Brief::new(&["src/**"]).render().replacen(
        "escalate:\n",
        "escalate:\n  paths: [\"src/hello.txt\"]\n",
        1,
    );
    repo.write(".agents/tasks/esc.md", brief);
    repo.commit_all("brief");
    // A remote's default branch, as a clone has it.
    repo.git(&["update-ref", "refs/remotes/origin/main", "main"]);
    repo.git(&[
        "symbolic-ref",
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/main",
    ]);
    let (code, runs, stderr_text) = repo.run_json(&["esc"]);
    assert_eq!(code, 3, "{stderr_text}");
    assert_eq!(runs.len(), 1, "one array, an object per run");

    let out = repo.run(&["review", "agent/esc"]);
    let said = stderr(&out);
    assert!(
        said.contains("no --base: judging against origin/main, the remote's default branch"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "is the result of run {}, which escalated: changed `src/hello.txt` (listed in escalate.paths)",
            runs[0]["run_id"].as_str().expect("run id")
        )),
        "{said}"
    );
}

// ---------------------------------------------------------------------------
// 10. small things

#[test]
fn new_takes_several_checks() {
    let repo = TestRepo::with_commit();
    let out = repo.run(&["new", "two", "--check", "make lint", "--check", "make test"]);
    assert_status(&out, 0);
    let text = repo.read(".agents/tasks/two.md");
    assert!(
        text.contains("  - name: check\n    run: \"make lint\"\n")
            && text.contains("  - name: check-2\n    run: \"make test\"\n"),
        "{text}"
    );
    assert_status(&repo.run(&["validate", ".agents/tasks/two.md"]), 0);
}

#[test]
fn clean_removes_the_emptied_worktree_dir_and_a_tasks_records() {
    let repo = project(
        "success.sh",
        &[
            (
                "fails",
                Brief::new(&["src/**"]).attempts(1).check("no", "false"),
            ),
            ("keep", Brief::new(&["src/**"])),
        ],
    );
    for _ in 0..2 {
        let (code, _, stderr_text) = repo.run_json(&["fails"]);
        assert_eq!(code, 1, "{stderr_text}");
    }
    let (code, _, stderr_text) = repo.run_json(&["keep"]);
    assert_eq!(code, 0, "{stderr_text}");
    let per_repo: Vec<_> = std::fs::read_dir(&repo.wt)
        .expect("worktree dir")
        .flatten()
        .collect();
    assert_eq!(per_repo.len(), 1, "one directory for this repository");

    let out = repo.run(&["clean", "--records", "fails"]);
    assert_status(&out, 0);
    assert!(
        stdout(&out).starts_with("removed 2 worktrees"),
        "{}",
        describe(&out)
    );
    let status = repo.run(&["status", "--all", "--json"]);
    let left: Vec<Value> = serde_json::from_slice(&status.stdout).expect("status JSON");
    let tasks: Vec<&str> = left.iter().filter_map(|r| r["task"].as_str()).collect();
    assert_eq!(tasks, ["keep"], "the records of `fails` are gone");
    assert!(
        std::fs::read_dir(&repo.wt)
            .expect("worktree dir")
            .next()
            .is_none(),
        "the repository's worktree directory is left empty: {:?}",
        std::fs::read_dir(&repo.wt).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
}

#[test]
fn commits_carry_the_configured_author_and_name_the_agent() {
    let repo = TestRepo::with_files(&[("README.md", "# project\n")]);
    repo.config_with(
        "success.sh",
        "commit:\n  author: \"Ada Lovelace <ada@example.com>\"\n",
    );
    repo.brief("hello", &Brief::new(&["src/**"]));
    repo.commit_all("brief");
    let (code, run, stderr_text) = repo.run_one("hello");
    assert_eq!(code, 0, "{stderr_text}");
    let who = repo.git(&["log", "-1", "--format=%an <%ae> / %cn <%ce>", "agent/hello"]);
    assert_eq!(
        who.trim(),
        "Ada Lovelace <ada@example.com> / git-agent <git-agent@localhost>"
    );
    let message = repo.git(&["log", "-1", "--format=%B", "agent/hello"]);
    assert_eq!(
        trailer(&message, "Co-authored-by").as_deref(),
        Some("fx (via git-agent) <git-agent@localhost>"),
        "{message}"
    );
    let notes = repo.git(&["log", "-1", "--format=%s", "refs/notes/agent"]);
    assert_eq!(
        notes.trim(),
        format!(
            "git-agent: decision log of run {}",
            run["run_id"].as_str().expect("id")
        )
    );
    let note = repo.git(&["notes", "--ref", "agent", "show", "agent/hello"]);
    assert!(note.contains("Succeeded"), "{note}");
}

#[test]
fn init_in_a_set_up_repository_says_so() {
    let repo = TestRepo::with_commit();
    assert_status(&repo.run(&["init"]), 0);
    let out = repo.run(&["init"]);
    assert_status(&out, 0);
    assert!(
        stderr(&out).starts_with("already set up: .agents/config.yaml exists"),
        "{}",
        describe(&out)
    );
}

#[test]
fn the_demos_hints_name_this_program_when_git_agent_is_not_on_path() {
    let repo = TestRepo::new();
    let dir = repo.tmp.join("demo");
    let out = repo.run_env(
        &["demo", "--dir", dir.to_str().expect("utf-8")],
        &[("PATH", "/usr/local/bin:/usr/bin:/bin")],
    );
    assert_status(&out, 0);
    let bin = support::bin();
    let hints = stdout(&out);
    assert!(
        hints.contains(&format!(
            "  {0} status && {0} log tidy-readme\n",
            bin.display()
        )),
        "{hints}"
    );
    assert!(hints.contains("git-agent is not on PATH"), "{hints}");
}
