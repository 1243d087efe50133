//! `git agent --help` (git's: `man git-agent`) after `git agent man
//! --install`, with the real git and the real man, and the completion
//! scripts in the real shells.
//!
//! The man test runs the binary from a prefix of its own (`<tmp>/bin`, as
//! `cargo install` leaves it in `~/.cargo/bin`) with `PATH` set to that
//! prefix and the system's directories, and no `MANPATH`: man-db finds
//! `<tmp>/share/man` from `PATH` alone. Under `CI=true` a missing `man`,
//! shell or completion package fails the test (`.ci/run` installs them);
//! elsewhere the test says it skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{assert_status, describe, stderr, stdout};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The program's path on this test's `PATH`, or `None` with a notice (a
/// failure under CI).
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(!ci(), "{name} is not installed: .ci/run must install it");
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

/// A file a package installs, or `None` with a notice (a failure under CI).
fn installed(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !ci(),
        "{} is missing: .ci/run must install it",
        path.display()
    );
    eprintln!("SKIPPED: {} is missing", path.display());
    None
}

/// A prefix like `~/.cargo`: `bin/git-agent` a copy of the binary under
/// test, nothing else.
struct Prefix {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Prefix {
    fn new() -> Prefix {
        let tmp = tempfile::Builder::new()
            .prefix("git-agent-man-")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical tempdir");
        let home = root.join("home");
        std::fs::create_dir_all(root.join("bin")).expect("bin dir");
        std::fs::create_dir_all(&home).expect("home dir");
        // A hard link, not a copy: a copy is a file open for writing, and
        // a test thread that forks meanwhile keeps it so in its child until
        // that child execs, making our exec fail with ETXTBSY.
        let installed = root.join("bin/git-agent");
        if std::fs::hard_link(support::bin(), &installed).is_err() {
            std::fs::copy(support::bin(), &installed).expect("copy the binary");
        }
        Prefix {
            _tmp: tmp,
            root,
            home,
        }
    }

    /// `PATH`: the prefix's `bin`, then where git and man are, then the
    /// system's; never the build directory.
    fn path(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.root.join("bin")];
        for name in ["git", "man"] {
            if let Some(dir) = tool(name).as_deref().and_then(Path::parent) {
                dirs.push(dir.to_path_buf());
            }
        }
        dirs.extend([PathBuf::from("/usr/bin"), PathBuf::from("/bin")]);
        std::env::join_paths(dirs).expect("PATH joins")
    }

    /// `program args` as a user with this prefix on `PATH` would run it.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", self.path())
            .env("HOME", &self.home)
            .env("LC_ALL", "C")
            .env("TERM", "dumb")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(&self.home)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("start {program}: {e}"))
    }
}

#[test]
fn git_agent_help_shows_the_manual_once_it_is_installed() {
    if tool("man").is_none() || tool("git").is_none() {
        return;
    }
    let prefix = Prefix::new();
    // Control: without the pages, git's --help finds no manual.
    let before = prefix.run("git", &["agent", "--help"]);
    assert!(
        stderr(&before).contains("No manual entry for git-agent"),
        "{}",
        describe(&before)
    );

    let install = prefix.run("git-agent", &["man", "--install"]);
    assert_status(&install, 0);
    let man1 = prefix.root.join("share/man/man1");
    assert!(
        stdout(&install).contains(&man1.display().to_string()),
        "{}",
        describe(&install)
    );
    assert!(
        !stderr(&install).contains("warning"),
        "man searches the prefix: {}",
        describe(&install)
    );
    for page in ["git-agent.1", "git-agent-run.1", "git-agent-status.1"] {
        assert!(man1.join(page).is_file(), "{page} installed");
    }

    let help = prefix.run("git", &["agent", "--help"]);
    assert_status(&help, 0);
    // man justifies and hyphenates: compare words.
    let text = stdout(&help)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for expected in [
        "Run coding agents in the background",
        "SUBCOMMANDS",
        "git-agent-run(1)",
        "git-agent-status(1)",
        "EXIT STATUS 0 Every run succeeded.",
        "GIT_AGENT_LOG",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` in:\n{}",
            describe(&help)
        );
    }
    // A subcommand's page too (`man git-agent-run`).
    let run = prefix.run("man", &["git-agent-run"]);
    assert_status(&run, 0);
    assert!(
        stdout(&run).contains("--allow-overlap"),
        "{}",
        describe(&run)
    );
}

/// A `bin/git-agent` that is a symlink (a package manager's link farm):
/// the pages go beside the `bin/` on `PATH`, where man looks, not beside
/// the file it points to.
#[test]
fn a_symlinked_binary_installs_beside_the_link_on_path() {
    let prefix = Prefix::new();
    let linked = prefix.root.join("linked");
    std::fs::create_dir_all(linked.join("bin")).expect("bin dir");
    std::os::unix::fs::symlink(
        prefix.root.join("bin/git-agent"),
        linked.join("bin/git-agent"),
    )
    .expect("symlink");
    let out = Command::new(linked.join("bin/git-agent"))
        .args(["man", "--install"])
        .env_clear()
        .env("PATH", linked.join("bin"))
        .env("HOME", &prefix.home)
        .output()
        .expect("run git-agent");
    assert_status(&out, 0);
    assert!(
        linked.join("share/man/man1/git-agent.1").is_file(),
        "{}",
        describe(&out)
    );
    assert!(
        !prefix.root.join("share/man").exists(),
        "{}",
        describe(&out)
    );
}

#[test]
fn man_prints_a_page_or_installs_into_a_named_directory() {
    let prefix = Prefix::new();
    let top = prefix.run("git-agent", &["man"]);
    assert_status(&top, 0);
    assert!(stdout(&top).starts_with(".ie"), "{}", describe(&top));
    assert!(
        stdout(&top).contains(".TH git-agent 1"),
        "{}",
        describe(&top)
    );

    let run = prefix.run("git-agent", &["man", "run"]);
    assert_status(&run, 0);
    assert!(
        stdout(&run).contains(".TH git-agent-run 1"),
        "{}",
        describe(&run)
    );

    let unknown = prefix.run("git-agent", &["man", "nosuch"]);
    assert_status(&unknown, 2);
    assert!(
        stderr(&unknown).contains("no manual page for `nosuch`"),
        "{}",
        describe(&unknown)
    );
    assert!(
        stderr(&unknown).contains("run"),
        "the pages are named: {}",
        describe(&unknown)
    );

    // A directory man does not search: installed, with a word on MANPATH.
    let dir = prefix.root.join("elsewhere");
    let out = prefix.run(
        "git-agent",
        &["man", "--install", dir.to_str().expect("utf-8")],
    );
    assert_status(&out, 0);
    assert!(
        dir.join("man1/git-agent-log.1").is_file(),
        "{}",
        describe(&out)
    );
    assert!(stderr(&out).contains("MANPATH"), "{}", describe(&out));
    // Installing again replaces the pages.
    assert_status(
        &prefix.run(
            "git-agent",
            &["man", "--install", dir.to_str().expect("utf-8")],
        ),
        0,
    );
}

#[test]
fn the_bash_script_is_valid_and_completes_git_agent_through_git() {
    let prefix = Prefix::new();
    let out = prefix.run("git-agent", &["completions", "bash"]);
    assert_status(&out, 0);
    let script = prefix.root.join("git-agent.bash");
    std::fs::write(&script, &out.stdout).expect("write the script");
    let syntax = prefix.run("bash", &["-n", script.to_str().expect("utf-8")]);
    assert_status(&syntax, 0);

    // git's own completion hands `git agent …` to `_git_agent`.
    let Some(git_completion) = installed("/usr/share/bash-completion/completions/git") else {
        return;
    };
    let complete = |line: &[&str]| -> String {
        let words = line
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let program = format!(
            "source {git}; source {ours}\n\
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
             __git_wrap__git_main git \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            git = git_completion.display(),
            ours = script.display(),
        );
        let out = prefix.run("bash", &["--norc", "-c", &program]);
        assert_status(&out, 0);
        stdout(&out)
    };
    assert_eq!(complete(&["git", "agent", "statu"]).trim(), "status");
    let sta = complete(&["git", "agent", "sta"]);
    assert!(sta.contains("stats") && sta.contains("status"), "{sta}");
    let run = complete(&["git", "agent", "run", "--al"]);
    assert!(
        run.contains("--all") && run.contains("--allow-overlap"),
        "{run}"
    );
    let shells = complete(&["git", "-C", "/tmp", "agent", "completions", ""]);
    assert!(
        shells.contains("zsh") && shells.contains("fish"),
        "{shells}"
    );
}

/// The README's bash install: a file named `git-agent` in the user's
/// bash-completion directory, loaded on demand for `git agent <TAB>`.
#[test]
fn bash_completion_loads_the_script_on_demand() {
    let Some(loader) = installed("/usr/share/bash-completion/bash_completion") else {
        return;
    };
    let prefix = Prefix::new();
    let dir = prefix.home.join(".local/share/bash-completion/completions");
    std::fs::create_dir_all(&dir).expect("completions dir");
    let out = prefix.run("git-agent", &["completions", "bash"]);
    std::fs::write(dir.join("git-agent"), &out.stdout).expect("write the script");
    let program = format!(
        "source {loader}\n\
         _completion_loader git\n\
         COMP_WORDS=(git agent log --); COMP_CWORD=3; COMP_LINE='git agent log --'; COMP_POINT=${{#COMP_LINE}}\n\
         __git_wrap__git_main git -- log\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        loader = loader.display()
    );
    let out = prefix.run("bash", &["--norc", "-c", &program]);
    assert_status(&out, 0);
    assert!(stdout(&out).contains("--follow"), "{}", describe(&out));
}

#[test]
fn the_zsh_and_fish_scripts_are_valid() {
    let prefix = Prefix::new();
    for (shell, marker, flag, file) in [
        ("zsh", "#compdef git-agent", "--allow-overlap", "_git-agent"),
        (
            "fish",
            "complete -c git-agent",
            "-l allow-overlap",
            "git-agent.fish",
        ),
    ] {
        let out = prefix.run("git-agent", &["completions", shell]);
        assert_status(&out, 0);
        assert!(stdout(&out).contains(marker), "{shell}: {}", describe(&out));
        assert!(
            stdout(&out).contains("status") && stdout(&out).contains(flag),
            "{shell}: subcommands and their flags"
        );
        let script = prefix.root.join(file);
        std::fs::write(&script, &out.stdout).expect("write the script");
        if tool(shell).is_some() {
            let syntax = prefix.run(shell, &["-n", script.to_str().expect("utf-8")]);
            assert_status(&syntax, 0);
        }
    }
}
