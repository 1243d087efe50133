//! What the benches share: a hermetic `git` and the synthetic
//! 20,000-file repository with a one-line agent and two briefs (`full`, and
//! `sparse`: a `scope.read` of `d000`..`d009`, 5% of the files).

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const DIRS: usize = 200;
pub const FILES_PER_DIR: usize = 100;

/// The binary under measurement.
pub const BIN: &str = env!("CARGO_BIN_EXE_git-agent");

/// `git <args>` in `dir`, ignoring the user's and the system's config, as
/// a fixed author; its output is not shown.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// The median of `v`.
pub fn median(mut v: Vec<std::time::Duration>) -> std::time::Duration {
    v.sort();
    v[v.len() / 2]
}

/// `git agent <args>` in `repo`, which must succeed.
pub fn agent(repo: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(BIN)
        .current_dir(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git-agent runs");
    assert!(
        out.status.success(),
        "git agent {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds the repository at `base/repo` with the plain git CLI; git-agent's
/// worktrees go to `worktrees`.
pub fn big_repo(base: &Path, worktrees: &Path) -> PathBuf {
    let repo = base.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&repo, &["init", "-q"]);
    for d in 0..DIRS {
        let dir = repo.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).expect("dir");
        for f in 0..FILES_PER_DIR {
            std::fs::write(
                dir.join(format!("f{f:03}.txt")),
                format!("file {d} {f}\n").repeat(20),
            )
            .expect("file");
        }
    }
    std::fs::create_dir_all(repo.join(".agents/tasks")).expect("tasks");
    std::fs::write(
        repo.join(".agents/config.yaml"),
        format!(
            "default_agent: touch\nagents:\n  touch:\n    adapter: command\n    command: echo changed >> d000/f000.txt\nworktree_dir: {}\n",
            worktrees.display()
        ),
    )
    .expect("config");
    let brief = |read: &str| {
        format!("---\ntitle: Touch one file\nscope:\n  write: [\"d000/**\"]\n{read}checks:\n  - name: ok\n    run: \"true\"\nescalate:\n  attempts: 1\n---\n# Goal\nTouch.\n")
    };
    std::fs::write(repo.join(".agents/tasks/full.md"), brief("")).expect("brief");
    // d000..d009: 10 of 200 directories = 5% of the files.
    std::fs::write(
        repo.join(".agents/tasks/sparse.md"),
        brief("  read: [\"d00?/**\"]\n"),
    )
    .expect("brief");
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "commit",
            "-qm",
            "synthetic",
        ],
    );
    repo
}
