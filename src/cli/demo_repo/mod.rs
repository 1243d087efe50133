//! The built-in demo: a temporary repository with three briefs and a
//! scripted agent (no API key): one run succeeds, one fails a check and
//! fixes it on the second attempt, one strays out of scope and escalates.

use std::path::{Path, PathBuf};

/// The scripted agent the demo config runs.
pub const AGENT: &str = include_str!("agent.sh");

const CONFIG: &str = "default_agent: scripted
agents:
  scripted:
    adapter: command
    command: sh .agents/demo-agent.sh
worktree_dir: ../worktrees
kill_grace: 2s
";

const FIX_GREETING: &str = r#"---
title: Fix the greeting's typo
scope:
  write: ["greet.sh"]
checks:
  - name: greeting
    run: test "$(sh greet.sh)" = "Hello, world"
escalate:
  attempts: 2
  timeout: 2m
---
# Goal
`sh greet.sh` prints `Hello, world`.

# Why
The greeting is misspelled.
"#;

const ADD_FAREWELL: &str = r#"---
title: Add a farewell script
scope:
  write: ["farewell.sh"]
checks:
  - name: farewell
    run: test "$(sh farewell.sh)" = "Goodbye, world"
escalate:
  attempts: 2
  timeout: 2m
---
# Goal
A `farewell.sh` that says goodbye to the world.

# Out of scope
Changing `greet.sh`.
"#;

const TIDY_README: &str = r###"---
title: Document usage in the README
scope:
  write: ["README.md"]
checks:
  - name: usage-section
    run: grep -q "## Usage" README.md
escalate:
  attempts: 1
  timeout: 2m
  on_scope_violation: escalate
---
# Goal
The README has a Usage section.

# Out of scope
Any script.
"###;

/// Writes the demo repository under `dir` (which must be empty or absent)
/// and returns the repository's path. Commits with a fixed identity so the
/// user's git config does not matter.
pub fn create(dir: &Path) -> Result<PathBuf, git2::Error> {
    let repo_dir = dir.join("repo");
    let files: [(&str, &str); 8] = [
        (
            "README.md",
            "# Demo\n\nA tiny project for the git-agent demo.\n",
        ),
        ("greet.sh", "#!/bin/sh\necho \"Helo, world\"\n"),
        (".agents/config.yaml", CONFIG),
        (".agents/demo-agent.sh", AGENT),
        (".agents/tasks/fix-greeting.md", FIX_GREETING),
        (".agents/tasks/add-farewell.md", ADD_FAREWELL),
        (".agents/tasks/tidy-readme.md", TIDY_README),
        (".gitignore", "/target\n"),
    ];
    let repo = git2::Repository::init(&repo_dir)?;
    for (path, text) in files {
        let full = repo_dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        }
        std::fs::write(&full, text).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::new(
        "git-agent demo",
        "demo@git-agent.invalid",
        &git2::Time::new(1_767_225_600, 0),
    )?;
    repo.commit(Some("HEAD"), &sig, &sig, "Demo project", &tree, &[])?;
    Ok(repo_dir)
}

/// The tasks and the outcome each must have.
pub const EXPECTED: [(&str, &str); 3] = [
    ("fix-greeting", "succeeded"),
    ("add-farewell", "succeeded"),
    ("tidy-readme", "escalated"),
];
