//! End to end through the real binary in real temp repositories: `init`,
//! `new`, `validate`, `list`, `schema`, help and usage errors.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;
use support::{assert_status, describe, status_of, stderr, stdout, TestRepo};

const USAGE: i32 = 2;

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn json_of(output: &std::process::Output) -> Json {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", describe(output)))
}

/// A repo after `git agent init`, as a user who finished setting up
/// leaves it: `src/` there for the example's `src/**`, its goal written,
/// `claude` a program that exists on every machine, all committed (so
/// `validate` has nothing to warn about).
fn initialized() -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# test repo\n"), ("src/lib.rs", "\n")]);
    assert_status(&repo.run(&["init"]), 0);
    let claude = repo.write(repo.tmp.join("bin/claude"), "#!/bin/sh\n");
    std::fs::set_permissions(&claude, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    repo.write(
        ".agents/config.yaml",
        repo.read(".agents/config.yaml").replacen(
            "    adapter: claude ",
            &format!("    command: {}\n    adapter: claude ", claude.display()),
            1,
        ),
    );
    repo.write(
        ".agents/tasks/example.md",
        repo.read(".agents/tasks/example.md").replace(
            "What should be true when this run is done.",
            "The example's change is made.",
        ),
    );
    repo.commit_all("git agent init");
    repo
}

// ---------------------------------------------------------------------------
// init

#[test]
fn init_creates_config_and_example_that_validate() {
    let repo = TestRepo::with_commit();
    let output = repo.run(&["init"]);
    insta::assert_snapshot!(describe(&output), @r"
    status: 0
    ----- stdout -----
    created .agents/config.yaml
    created .agents/tasks/example.md
    ----- stderr -----
    next: edit the agents in .agents/config.yaml, write a brief with `git agent new <id>`, then `git agent run <id>`
    ");
    assert!(repo.exists(".agents/config.yaml"));
    assert!(repo.exists(".agents/tasks/example.md"));

    // Valid as written; what is still to do is said (no `claude` on this
    // PATH, whatever the machine has).
    let nobin = repo.tmp.join("nobin");
    std::fs::create_dir_all(&nobin).expect("mkdir");
    let path = [("PATH", nobin.to_str().expect("utf-8"))];
    let output = repo.run_env(&["validate"], &path);
    assert_status(&output, 0);
    assert_eq!(
        stdout(&output),
        "1 brief checked: 1 valid, 0 invalid (0 errors, 4 warnings)\n"
    );
    let output = repo.run_env(&["validate", "--json"], &path);
    let problems: Vec<String> = json_of(&output)["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{} {}: {}",
                p["file"].as_str().unwrap_or(""),
                p["line"],
                p["column"],
                p["code"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    insta::assert_snapshot!(problems.join("\n"), @r"
    .agents/config.yaml:7:3 config::program-not-found: `claude`, the program of agent `claude`, is not on PATH: runs with it would fail at once
    .agents/tasks/example.md:26:1 brief::template-goal: the goal is still the template's: the agent would be told nothing
    .agents/tasks/example.md:1:1 brief::uncommitted: the brief is not committed
    .agents/tasks/example.md:6:11 brief::glob-matches-nothing: `src/**` matches no file at the base (`HEAD`), and its directory `src/` is not there
    ");
}

#[test]
fn init_twice_says_it_is_set_up_and_leaves_files_untouched() {
    let repo = TestRepo::with_commit();
    assert_status(&repo.run(&["init"]), 0);
    let edited = format!("{}# my edit\n", repo.read(".agents/config.yaml"));
    repo.write(".agents/config.yaml", &edited);
    let example = repo.read_bytes(".agents/tasks/example.md");

    let output = repo.run(&["init"]);
    insta::assert_snapshot!(describe(&output), @r"
    status: 0
    ----- stdout -----
    ----- stderr -----
    already set up: .agents/config.yaml exists (init never overwrites it); write a brief with `git agent new <id>`, check them with `git agent validate`
    ");
    assert_eq!(repo.read(".agents/config.yaml"), edited);
    assert_eq!(repo.read_bytes(".agents/tasks/example.md"), example);
}

#[test]
fn init_refuses_when_only_the_example_exists_and_writes_nothing() {
    let repo = TestRepo::with_commit();
    repo.write(".agents/tasks/example.md", "mine\n");
    let output = repo.run(&["init"]);
    assert_status(&output, USAGE);
    assert!(stderr(&output).contains(".agents/tasks/example.md already exists"));
    assert!(
        !repo.exists(".agents/config.yaml"),
        "init wrote half its files"
    );
    assert_eq!(repo.read(".agents/tasks/example.md"), "mine\n");
}

#[test]
fn init_outside_a_repository_is_a_usage_error() {
    let repo = TestRepo::new();
    let output = repo.run_in(&repo.home, &["init"]);
    assert_status(&output, USAGE);
    insta::assert_snapshot!(repo.redact(&stderr(&output)), @r"
    error: `[HOME]` is not inside a git repository
      hint: run git agent inside a git repository, or pass -C <dir>
    ");
    assert!(!repo.home.join(".agents").exists());
}

#[test]
fn dash_c_runs_in_another_directory() {
    let repo = TestRepo::with_commit();
    let root = repo.root.to_str().expect("utf-8 path");
    let output = repo.run_in(&repo.home, &["-C", root, "init"]);
    assert_status(&output, 0);
    assert!(repo.exists(".agents/config.yaml"));
}

// ---------------------------------------------------------------------------
// new

#[test]
fn new_makes_a_brief_that_validates() {
    let repo = initialized();
    let output = repo.run(&["new", "fix-http"]);
    insta::assert_snapshot!(describe(&output), @r"
    status: 0
    ----- stdout -----
    .agents/tasks/fix-http.md
    ----- stderr -----
    edit the goal and checks, then: git agent validate && git agent run fix-http
    ");
    let text = repo.read(".agents/tasks/fix-http.md");
    assert!(text.starts_with("---\ntitle: \"fix http\"\n"), "{text}");
    let output = repo.run(&["validate"]);
    assert_status(&output, 0);
    // The new brief is not committed and its goal is the template's.
    assert!(
        stdout(&output).starts_with("2 briefs checked: 2 valid, 0 invalid (0 errors, 2 warnings)"),
        "{}",
        describe(&output)
    );
}

#[test]
fn new_quotes_title_globs_and_check_so_the_brief_stays_valid() {
    // No config: the brief's agent is not checked against one.
    let repo = TestRepo::with_commit();
    let output = repo.run(&[
        "new",
        "retry_2",
        "--title",
        "Retry: \"HTTP\" # not a comment",
        "-w",
        "src/http/**",
        "--write",
        "tests/http_*.rs",
        "--check",
        "cargo test -- --test-threads=1 'a: b'",
    ]);
    assert_status(&output, 0);
    assert_status(&repo.run(&["validate"]), 0);
    let list = repo.run(&["list", "--json"]);
    assert_status(&list, 0);
    let rows = json_of(&list);
    assert_eq!(rows[0]["id"], "retry_2");
    assert_eq!(rows[0]["title"], "Retry: \"HTTP\" # not a comment");
    assert_eq!(
        rows[0]["write"],
        serde_json::json!(["src/http/**", "tests/http_*.rs"])
    );
}

#[test]
fn new_refuses_a_bad_id_with_a_hint() {
    let repo = initialized();
    let output = repo.run(&["new", "Bad Id"]);
    insta::assert_snapshot!(describe(&output), @r"
    status: 2
    ----- stdout -----
    ----- stderr -----
    error: the task id `Bad Id` must start with a lowercase letter or digit
      hint: for example: git agent new bad-id
    ");
    assert!(!repo.exists(".agents/tasks/Bad Id.md"));
    for bad in ["../escape", "a/b", "x y", "-flag-like", "caf\u{e9}"] {
        let output = repo.run(&["new", "--", bad]);
        assert_status(&output, USAGE);
        assert!(
            stderr(&output).contains("hint: for example: git agent new "),
            "{bad}"
        );
    }
    assert!(!repo.path("../escape.md").exists());
}

#[test]
fn new_refuses_an_existing_id_and_a_bad_glob() {
    let repo = initialized();
    let before = repo.read_bytes(".agents/tasks/example.md");
    let output = repo.run(&["new", "example"]);
    assert_status(&output, USAGE);
    assert!(stderr(&output).contains(".agents/tasks/example.md already exists"));
    assert_eq!(repo.read_bytes(".agents/tasks/example.md"), before);

    let output = repo.run(&["new", "abs", "-w", "/etc/**"]);
    assert_status(&output, USAGE);
    assert!(
        stderr(&output).contains("invalid glob `/etc/**`"),
        "{}",
        describe(&output)
    );
    assert!(!repo.exists(".agents/tasks/abs.md"));
}

// ---------------------------------------------------------------------------
// validate

#[test]
fn validate_reports_file_line_col_and_exits_2() {
    let repo = initialized();
    repo.write(
        ".agents/tasks/glob-unclosed-class.md",
        fixture("briefs/invalid/glob-unclosed-class.md"),
    );
    let output = repo.run(&["validate"]);
    insta::assert_snapshot!(describe(&output), @r#"
    status: 2
    ----- stdout -----
    2 briefs checked: 1 valid, 1 invalid (1 error, 0 warnings)
    ----- stderr -----
    brief::bad-glob

      × invalid glob `src/[`: unclosed character class; missing ']'
       ╭─[.agents/tasks/glob-unclosed-class.md:4:21]
     3 │ scope:
     4 │   write: ["src/**", "src/["]
       ·                     ───┬───
       ·                        ╰── this glob
     5 │ checks:
       ╰────
      help: globs are relative to the repository root: `src/**` (everything under src), `src/*.rs`
            (`*` stops at `/`), `tests/http_?.rs`
    "#);
}

#[test]
fn validate_json_has_line_column_and_code() {
    let repo = initialized();
    repo.write(
        ".agents/tasks/glob-unclosed-class.md",
        fixture("briefs/invalid/glob-unclosed-class.md"),
    );
    repo.write(
        ".agents/tasks/crlf-unknown-key.md",
        fixture("briefs/invalid/crlf-unknown-key.md"),
    );
    let output = repo.run(&["validate", "--json"]);
    assert_status(&output, USAGE);
    assert_eq!(stderr(&output), "", "--json keeps stderr quiet");
    let json = json_of(&output);
    assert_eq!(json["briefs"], 3);
    assert_eq!(json["errors"], 2);
    assert_eq!(json["warnings"], 0);
    let problems = json["problems"].as_array().expect("problems array");
    assert_eq!(problems.len(), 2, "{json:#}");
    for p in problems {
        let keys: BTreeSet<&str> = p
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["file", "line", "column", "severity", "code", "message", "help"])
        );
        assert!(p["line"].as_u64().expect("line") >= 1);
        assert!(p["column"].as_u64().expect("column") >= 1);
        assert_eq!(p["severity"], "error");
    }
    let find = |file: &str| {
        problems
            .iter()
            .find(|p| p["file"] == file)
            .unwrap_or_else(|| panic!("no problem for {file}: {json:#}"))
    };
    let crlf = find(".agents/tasks/crlf-unknown-key.md");
    assert_eq!(
        (&crlf["line"], &crlf["column"]),
        (&Json::from(8), &Json::from(5))
    );
    assert_eq!(crlf["code"], "brief::unknown-key");
    let glob = find(".agents/tasks/glob-unclosed-class.md");
    assert_eq!(
        (&glob["line"], &glob["column"]),
        (&Json::from(4), &Json::from(21))
    );
    assert_eq!(glob["code"], "brief::bad-glob");
}

#[test]
fn validate_checks_the_config() {
    let repo = initialized();
    repo.write(
        ".agents/config.yaml",
        fixture("config/invalid/github-token-in-pass-env.yaml"),
    );
    let output = repo.run(&["validate"]);
    assert_status(&output, USAGE);
    assert!(
        stderr(&output).contains("[.agents/config.yaml:7:9]"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout(&output).contains("(1 error, "),
        "{}",
        describe(&output)
    );
}

/// The summary once counted an invalid config as an invalid brief:
/// "1 brief checked: 1 valid, 1 invalid (1 error, 0 warnings)".
#[test]
fn validate_summary_does_not_count_the_config_as_a_brief() {
    let repo = initialized();
    repo.write(
        ".agents/config.yaml",
        fixture("config/invalid/github-token-in-pass-env.yaml"),
    );
    let output = repo.run(&["validate"]);
    assert_eq!(
        stdout(&output),
        "1 brief checked: 1 valid, 0 invalid; config: invalid (1 error, 0 warnings)\n"
    );
}

/// An invalid config still names its agents: a brief's `agent:` is
/// checked against them, not silently skipped.
#[test]
fn validate_checks_agents_against_an_invalid_config() {
    let repo = initialized();
    repo.write(
        ".agents/config.yaml",
        templates_config().replace(
            "default_agent: claude",
            "default_agent: claude\nmax_parallel: 0",
        ),
    );
    repo.write(
        ".agents/tasks/example.md",
        repo.read(".agents/tasks/example.md")
            .replace("# agent: claude ", "agent: claud "),
    );
    let output = repo.run(&["validate", "--json"]);
    assert_status(&output, USAGE);
    let json = json_of(&output);
    let codes: Vec<&Json> = json["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| &p["code"])
        .collect();
    assert_eq!(
        codes,
        [
            &Json::from("config::invalid-value"),
            &Json::from("brief::unknown-agent")
        ],
        "{json:#}"
    );
    assert!(
        !stderr(&output).contains("not checked"),
        "{}",
        describe(&output)
    );
}

/// When not even the agent names can be read, validate says once that
/// `agent:` was not checked.
#[test]
fn validate_says_when_agents_could_not_be_checked() {
    let repo = initialized();
    repo.write(".agents/config.yaml", "agents: [claude\n");
    assert_status(&repo.run(&["new", "second"]), 0);
    let output = repo.run(&["validate"]);
    assert_status(&output, USAGE);
    let err = stderr(&output);
    assert_eq!(
        err.matches("note: the `agent:` of briefs was not checked: .agents/config.yaml is invalid")
            .count(),
        1,
        "{}",
        describe(&output)
    );
    assert_eq!(
        stdout(&output),
        "2 briefs checked: 2 valid, 0 invalid; config: invalid (1 error, 0 warnings)\n"
    );
}

fn templates_config() -> String {
    git_agent::templates::CONFIG.to_string()
}

#[test]
fn validate_checks_brief_agents_against_the_config() {
    let repo = initialized();
    repo.write(
        ".agents/tasks/example.md",
        repo.read(".agents/tasks/example.md")
            .replace("# agent: claude ", "agent: claud "),
    );
    let output = repo.run(&["validate", "--json"]);
    assert_status(&output, USAGE);
    let json = json_of(&output);
    let problem = &json["problems"][0];
    assert_eq!(problem["code"], "brief::unknown-agent", "{json:#}");
    assert_eq!(
        (&problem["line"], &problem["column"]),
        (&Json::from(3), &Json::from(8))
    );
    assert_eq!(
        problem["help"],
        "did you mean `claude`? Agents in the config: aider, claude, codex, copilot, opencode, script"
    );
}

#[test]
fn validate_paths_files_and_directories() {
    let repo = initialized();
    repo.write("briefs/a-ok.md", fixture("briefs/valid/minimal.md"));
    repo.write("briefs/b-bad.md", fixture("briefs/invalid/empty-checks.md"));
    repo.write("briefs/notes.txt", "not a brief");
    repo.commit_all("briefs");

    let output = repo.run(&["validate", "briefs/a-ok.md"]);
    assert_status(&output, 0);
    assert_eq!(
        stdout(&output),
        "1 brief checked: 1 valid, 0 invalid (0 errors, 0 warnings)\n"
    );

    let output = repo.run(&["validate", "--json", "briefs"]);
    assert_status(&output, USAGE);
    let json = json_of(&output);
    assert_eq!(json["briefs"], 2, "directories expand to their *.md files");
    assert_eq!(json["problems"][0]["file"], "briefs/b-bad.md");

    // From a subdirectory, paths are relative to it and shown relative to the root.
    let output = repo.run_in("briefs", &["validate", "--json", "b-bad.md"]);
    assert_status(&output, USAGE);
    assert_eq!(json_of(&output)["problems"][0]["file"], "briefs/b-bad.md");

    let output = repo.run(&["validate", "no/such.md"]);
    assert_status(&output, USAGE);
    assert!(
        stderr(&output).contains("no such file: "),
        "{}",
        describe(&output)
    );
}

#[test]
fn validate_strict_fails_on_warnings() {
    let repo = TestRepo::with_commit();
    repo.write(
        ".agents/tasks/no-body.md",
        fixture("briefs/valid/no-body.md"),
    );
    let output = repo.run(&["validate"]);
    assert_status(&output, 0);
    assert!(
        stderr(&output).contains("the brief has no goal"),
        "{}",
        describe(&output)
    );
    assert_status(&repo.run(&["validate", "--strict"]), USAGE);
}

#[test]
fn validate_with_no_briefs_says_how_to_make_one() {
    let repo = TestRepo::with_commit();
    let output = repo.run(&["validate"]);
    insta::assert_snapshot!(describe(&output), @r"
    status: 0
    ----- stdout -----
    0 briefs checked: 0 valid, 0 invalid (0 errors, 0 warnings)
    ----- stderr -----
    no briefs in .agents/tasks; create one with `git agent new <id>`
    ");
}

#[test]
fn every_valid_fixture_validates_through_the_binary() {
    let repo = TestRepo::with_commit();
    // The bases the fixtures name resolve here.
    repo.git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/briefs/valid");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        repo.write(
            format!(".agents/tasks/{name}"),
            std::fs::read(&path).expect("read"),
        );
        count += 1;
    }
    let output = repo.run(&["validate", "--json"]);
    assert_status(&output, 0);
    let json = json_of(&output);
    assert_eq!(json["briefs"], count);
    assert_eq!(json["errors"], 0, "{json:#}");
}

// ---------------------------------------------------------------------------
// list and schema

#[test]
fn list_json_shape() {
    let repo = initialized();
    repo.write(
        ".agents/tasks/broken.md",
        fixture("briefs/invalid/missing-scope.md"),
    );
    let output = repo.run(&["list", "--json"]);
    // An invalid brief makes `list` exit 2, but it is still listed.
    assert_status(&output, USAGE);
    insta::assert_json_snapshot!(json_of(&output), @r#"
    [
      {
        "agent": null,
        "id": "broken",
        "path": ".agents/tasks/broken.md",
        "title": "",
        "valid": false,
        "write": []
      },
      {
        "agent": "claude",
        "id": "example",
        "path": ".agents/tasks/example.md",
        "title": "Describe the change in one line",
        "valid": true,
        "write": [
          "src/**"
        ]
      }
    ]
    "#);
}

#[test]
fn list_human_output() {
    let repo = initialized();
    assert_status(
        &repo.run(&[
            "new",
            "fix-http",
            "-w",
            "src/http/**",
            "-w",
            "tests/http_*.rs",
        ]),
        0,
    );
    repo.write(
        ".agents/tasks/broken.md",
        fixture("briefs/invalid/missing-scope.md"),
    );
    let output = repo.run(&["list"]);
    insta::assert_snapshot!(describe(&output), @r"
    status: 2
    ----- stdout -----
    ID        TITLE                              AGENT   WRITE
    broken    (invalid: see git agent validate)  -       -
    example   Describe the change in one line    claude  src/**
    fix-http  fix http                           claude  src/http/**, tests/http_*.rs
    ----- stderr -----
    ");
}

#[test]
fn list_with_no_briefs() {
    let repo = TestRepo::with_commit();
    let output = repo.run(&["list", "--json"]);
    assert_status(&output, 0);
    assert_eq!(json_of(&output), serde_json::json!([]));
}

#[test]
fn schema_prints_the_library_schemas_as_json() {
    let repo = TestRepo::new();
    for (which, expected) in [
        ("brief", git_agent::brief::schema()),
        ("config", git_agent::config::schema()),
    ] {
        let output = repo.run(&["schema", which]);
        assert_status(&output, 0);
        assert_eq!(&json_of(&output), expected, "schema {which}");
    }
    // `brief` is the default.
    assert_eq!(&json_of(&repo.run(&["schema"])), git_agent::brief::schema());
    assert_status(&repo.run(&["schema", "briefs"]), USAGE);
}

/// `println!` panicked (exit 101, a backtrace on stderr) when stdout was
/// closed early, e.g. `git agent schema brief | head -1`. Now the process
/// ends on SIGPIPE, quietly, like other Unix tools.
#[test]
fn schema_into_a_closed_pipe_does_not_panic() {
    let repo = TestRepo::new();
    // A pipe whose read end is closed before the child starts: its first
    // write fails with EPIPE, deterministically.
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    let output = repo
        .command(&["schema", "brief"])
        .stdout(std::process::Stdio::from(write))
        .output()
        .expect("spawn");
    assert!(
        !stderr(&output).contains("panicked"),
        "{}",
        describe(&output)
    );
    assert_ne!(status_of(&output), 101);
    assert_eq!(status_of(&output), -libc_sigpipe(), "{}", describe(&output));
    assert_eq!(stderr(&output), "");
}

fn libc_sigpipe() -> i32 {
    nix::sys::signal::Signal::SIGPIPE as i32
}

/// Every printing command ends quietly on a closed stdout, human output
/// (`println!`) and JSON alike.
#[test]
fn printing_commands_end_quietly_on_a_closed_pipe() {
    let repo = initialized();
    for args in [
        &["validate"][..],
        &["validate", "--json"],
        &["list"],
        &["list", "--json"],
        &["schema", "config"],
    ] {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        drop(read);
        let output = repo
            .command(args)
            .stdout(std::process::Stdio::from(write))
            .output()
            .expect("spawn");
        assert_eq!(
            status_of(&output),
            -libc_sigpipe(),
            "{args:?}: {}",
            describe(&output)
        );
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

// ---------------------------------------------------------------------------
// help and usage errors

#[test]
fn help_of_every_subcommand_exits_0() {
    let repo = TestRepo::new();
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["init", "--help"],
        &["new", "--help"],
        &["validate", "--help"],
        &["list", "--help"],
        &["schema", "--help"],
        &["help", "validate"],
        &["--version"],
    ] {
        let output = repo.run(args);
        assert_status(&output, 0);
        assert!(!stdout(&output).is_empty(), "{args:?}: no output");
        assert_eq!(stderr(&output), "", "{args:?}: help goes to stdout");
    }
}

#[test]
fn top_level_help() {
    let repo = TestRepo::new();
    let output = repo.run(&["--help"]);
    insta::assert_snapshot!(stdout(&output), @r"
    Run coding agents in the background the way CI runs jobs: briefs, isolated worktrees, enforced
    scope, checks as success criteria.

    Usage: git agent [OPTIONS] <COMMAND>

    Commands:
      demo         Run a built-in demo: a temporary repo, three briefs and a scripted agent (no API key)
      init         Write .agents/config.yaml and an example brief (never overwrites)
      new          Create .agents/tasks/<id>.md from a template
      validate     Check briefs and the config; print every problem with file:line:col and a hint
      list         List the briefs: id, title, agent, write scope
      plan         Show what `run` would do with these briefs, and in which order; run nothing
      run          Run briefs: each in its own worktree, scope enforced, checks decide success
      review       Verify a change against the brief it was made under: scope and checks
      status       Show runs: id, task, state, start, duration, checks, branch; kept worktrees
      watch        Watch all runs live: states, the selected run's log, keys to stop or diff
      stop         Stop a run gracefully (recorded interrupted, resumable) or take it off the queue
      supervise    Run the queue of detached runs until it is empty (`run --detach` starts it)
      stats        Count runs per task and per agent: outcomes, attempts, time, tokens, merged results
      report       Show run records from other machines (downloaded artifacts) as one job summary
      log          Show a run's decision log: Markdown (the PR body) or JSON events
      diff         Show a run's result as a diff against its base, each file with the glob allowing it
      clean        Remove the worktrees of finished runs and abandoned reviews (branches are kept)
      decide       Record a decision in the running task's log (use from inside a run)
      deliver      Push a finished run's branch and notes; open or update its pull request
      land         Land a succeeded run: replayed onto its base's tip, checked there, fast-forwarded
      comment      Act on a slash command in a pull request or issue comment (the Action's comment mode)
      schema       Print the JSON schema of brief frontmatter or of the config, for editors
      man          Print or install the manual pages (installed, `git agent --help` shows them)
      completions  Print a shell completion script: bash, zsh or fish
      help         Print this message or the help of the given subcommand(s)

    Options:
      -C <DIR>       Run as if started in this directory
      -h, --help     Print help
      -V, --version  Print version

    Exit codes: 0 success, 1 a run or its delivery failed, 2 bad input, 3 escalated, 130 interrupted.
    Logs: set GIT_AGENT_LOG=debug (an env-filter) for tracing on stderr.
    ");
}

#[test]
fn usage_errors_exit_2() {
    let repo = TestRepo::new();
    for args in [
        &["frobnicate"][..],
        &[],
        &["validate", "--no-such-flag"],
        &["new"],
        &["schema", "brief", "extra"],
    ] {
        let output = repo.run(args);
        assert_status(&output, USAGE);
        assert_eq!(stdout(&output), "", "{args:?}");
        assert!(!stderr(&output).is_empty(), "{args:?}: no message");
    }
    let output = repo.run(&["validat"]);
    assert!(
        stderr(&output).contains("validate"),
        "a close subcommand is suggested: {}",
        describe(&output)
    );
}

/// A brief in a subdirectory of `.agents/tasks/` is never read: `validate`
/// says so, with where to move it, instead of passing it by.
#[test]
fn a_brief_in_a_subdirectory_is_refused_by_validate() {
    let repo = initialized();
    repo.write(
        ".agents/tasks/docs/nested.md",
        support::Brief::new(&["docs/**"]).render(),
    );
    let out = repo.run(&["validate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("brief::nested"), "{stderr}");
    assert!(
        stderr.contains("move it to .agents/tasks/nested.md"),
        "{stderr}"
    );
}

/// `run` and `plan` (one list of tasks) take a brief's path as well as its id.
#[test]
fn run_and_plan_take_a_briefs_path() {
    let repo = initialized();
    let out = repo.run(&["plan", ".agents/tasks/example.md", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let plan: Json = serde_json::from_slice(&out.stdout).expect("plan JSON");
    assert_eq!(plan["runs"][0]["task"], "example");
}
