//! What the benches share: a hermetic `git` and the synthetic
//! 20,000-file repository with a one-line agent and two briefs (`full`, and
//! `sparse`: a `scope.read` of `d000`..`d009`, 5% of the files).

use std::path::{Path, PathBuf};
use std::process::Command;

pub const DIRS: usize = 200;
pub const FILES_PER_DIR: usize = 100;

/// `git <args>` in `dir`, ignoring the user's and the system's config.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
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
