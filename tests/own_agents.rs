//! This project's own `.agents/`: the config and the briefs for the upkeep
//! of git-agent are valid (as `.ci/run` checks with `git agent validate`),
//! and the fan-out workflow would run them as chains.

mod support;

use std::path::Path;
use std::process::Command;

fn git_agent(args: &[&str]) -> std::process::Output {
    Command::new(support::bin())
        .arg("-C")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git-agent")
}

#[test]
fn this_projects_briefs_validate_and_plan_as_chains() {
    let out = git_agent(&["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    let out = git_agent(&["plan", "--all", "--matrix"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::describe(&out));
    let matrix: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let entries = matrix["include"].as_array().expect("include");
    assert!(entries.len() >= 3, "{matrix}");
    assert!(
        entries
            .iter()
            .any(|e| e["tasks"] == "deps-update changelog-deps"),
        "the changelog runs after the update it records: {matrix}"
    );
}
