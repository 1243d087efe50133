//! The agents at full strength, and where they are not: the real CLIs
//! against the scripted model (`tests/fake_model`), through what
//! `tests/agent_clis/` shares with `agents_e2e.rs` (which has the confined
//! runs: all tools, a shell command that is no check, a retry continuing
//! the session).
//!
//! - Without the sandbox (`sandbox.mode: off`) each adapter gives its CLI
//!   the narrow list it always had, and says so in the log: the command
//!   line (recorded by a wrapper) holds it, and the same script's
//!   `sh test.sh` is refused (Codex runs it in its own sandbox instead).
//! - Without a session to continue (`GIT_AGENT_SIMULATE_NO_RESUME`), a
//!   retry starts afresh, its prompt the whole brief with the feedback: the
//!   figures printed (`REQUESTS`) are the "before" of session resume, the
//!   ones of `agents_e2e.rs` the "after".
//! - A session the CLI no longer has (a check removed it) is no failure:
//!   the attempt starts again afresh and the log says why.

mod agent_clis;
mod fake_model;
mod support;

use std::path::PathBuf;

use agent_clis::clis::{aider, claude, codex, copilot, opencode, CHECK};
use agent_clis::{check_fails_first, retried, run_case, strs, Case, Setup, MARKER};
use support::Brief;

/// A program that records its arguments and environment in `dir`, then
/// runs `program` with them.
fn wrapper(program: &std::path::Path, dir: &std::path::Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("wrapper dir");
    let path = dir.join("wrap.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/argv'\nenv > '{d}/env'\nexec '{p}' \"$@\"\n",
            d = dir.display(),
            p = program.display()
        ),
    )
    .expect("wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// The success case with `sandbox.mode: off`: the CLI gets its narrow
/// list, and the log says so.
fn case_narrow(s: &Setup) {
    let Some(program) = agent_clis::cli(s.name) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let brief = Brief::new(&["src/**"])
        .title("Fix the greeting")
        .check("greeting", CHECK)
        .timeout("240s");
    let mut case = Case::new("greet", brief, (s.success)());
    case.config = "sandbox:\n  mode: off\n";
    case.program = Some(wrapper(&program, dir.path()));
    let Some(f) = run_case(s, case, "narrow") else {
        return;
    };
    let why = &f.why;
    assert_eq!(f.code, 0, "{why}");
    assert_eq!(f.run["outcome"], "succeeded", "{why}");
    let a = f.activity(1);
    let access = a["access"].as_str().unwrap_or("");
    assert!(!access.starts_with("all tools"), "{access}\n{why}");
    let line = std::fs::read_to_string(dir.path().join("argv")).expect("argv")
        + &std::fs::read_to_string(dir.path().join("env")).expect("env");
    for held in s.narrow {
        assert!(line.contains(held), "{held} not given\n{line}\n{why}");
    }
    for never in s.not_narrow {
        assert!(!line.contains(never), "{never} given\n{line}\n{why}");
    }
    let ran: Vec<String> = a["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["command"].as_str().unwrap_or("").to_string())
        .collect();
    if s.narrow_refuses {
        assert!(access.starts_with("narrow"), "{access}\n{why}");
        let denied = strs(&a["permission_denials"]);
        assert!(
            denied.iter().any(|d| d.contains("sh test.sh")),
            "{a:#}\n{why}"
        );
        assert!(
            !ran.iter().any(|c| c.contains("sh test.sh")),
            "{a:#}\n{why}"
        );
        assert!(
            ran.iter().any(|c| c.contains(CHECK)),
            "the check ran: {a:#}\n{why}"
        );
    }
    let md = f.repo.log_md(f.run["run_id"].as_str().unwrap_or(""));
    assert!(md.contains("- Access: "), "{md}");
}

#[test]
fn claude_without_the_sandbox_gets_the_narrow_list() {
    case_narrow(&claude());
}

#[test]
fn codex_without_the_sandbox_uses_its_own() {
    case_narrow(&codex());
}

#[test]
fn copilot_without_the_sandbox_gets_the_narrow_list() {
    case_narrow(&copilot());
}

#[test]
fn opencode_without_the_sandbox_gets_the_narrow_list() {
    case_narrow(&opencode());
}

/// The retry case with no session to continue: attempt 2's prompt is the
/// whole brief again, and its requests carry nothing of attempt 1.
fn case_fresh(s: &Setup) {
    let mut case = Case::new("retry", agent_clis::retry_brief(), (s.retry)());
    case.env = vec![("GIT_AGENT_SIMULATE_NO_RESUME".into(), "1".into())];
    let Some(f) = retried(s, case, "retry-fresh") else {
        return;
    };
    let why = &f.why;
    assert!(f.activity(2)["continued"].is_null(), "{why}");
    let second = f.requests_from(MARKER);
    assert!(!second[0].body.contains("First try."), "{why}");
    assert!(second[0].body.contains("attempt 2 of 2."), "{why}");
}

#[test]
fn claude_retry_without_a_session_starts_afresh() {
    case_fresh(&claude());
}

#[test]
fn codex_retry_without_a_session_starts_afresh() {
    case_fresh(&codex());
}

#[test]
fn copilot_retry_without_a_session_starts_afresh() {
    case_fresh(&copilot());
}

#[test]
#[ignore = "slow (8 s a run): the figures of aider's fresh retry, for comparison"]
fn aider_retry_without_a_session_starts_afresh() {
    case_fresh(&aider());
}

#[test]
#[ignore = "slow (5 s a run): the figures of opencode's fresh retry, for comparison"]
fn opencode_retry_without_a_session_starts_afresh() {
    case_fresh(&opencode());
}

/// A check that removes Claude Code's sessions before it fails: attempt 2
/// cannot continue attempt 1's session, starts afresh, and says why.
#[test]
fn a_session_the_cli_lost_is_started_afresh() {
    let s = claude();
    // The check runs in the worktree, `<tmp>/wt/<repo>/<run>`; Claude
    // Code's config dir is `<tmp>/claude-config`.
    let check = format!(
        "rm -rf \"$(dirname \"$PWD\")\"/../../claude-config/projects; {}",
        check_fails_first()
    );
    let brief = agent_clis::retry_brief().check("greeting", &check);
    let case = Case::new("retry", brief, (s.retry)());
    let Some(f) = run_case(&s, case, "retry-lost") else {
        return;
    };
    let why = &f.why;
    assert_eq!(f.run["outcome"], "succeeded", "{why}");
    let a2 = f.activity(2);
    assert!(a2["continued"].is_null(), "{a2:#}\n{why}");
    assert!(
        strs(&a2["notes"])
            .iter()
            .any(|n| n.contains("could not be continued")),
        "{a2:#}\n{why}"
    );
    let second = f.requests_from(MARKER);
    assert!(second[0].body.contains("attempt 2 of 2."), "{why}");
}
