//! The hostile-agent suite: scripted agents (`tests/fixtures/agents/attack_*.sh`)
//! that each try one attack, run through the real `git agent run`.
//!
//! Every test asserts (a) that nothing outside the allowed places changed —
//! the main repository's `.git/config`, hooks, refs, packed-refs, index and
//! working tree, a sibling run's kept worktree, a local bare remote, and a
//! canary in `$HOME` — and (b) that the run ends escalated or failed with a
//! log line naming the attempt, or that the attack had no effect and the
//! verdict is still right. Each test prints one `ATTACK <name>: ...` line;
//! run with `--nocapture` to see the tally.
//!
//! Kernel-enforced assertions need Landlock. When the kernel lacks it (mode
//! `auto` runs unconfined), the test says so and checks only what the
//! post-run verification guarantees.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::*;

const TOKEN: &str = "ghp_hostileSuiteCanaryToken0123456789";

struct Arena {
    repo: TestRepo,
    bare: PathBuf,
    sibling: PathBuf,
    before: BTreeMap<String, Vec<u8>>,
}

/// A repository with a bare remote, a canary in `$HOME`, and a sibling run
/// whose worktree is kept (it escalated); `script` is agent `fx`.
fn arena(script: &str, sandbox: &str) -> Arena {
    let repo = TestRepo::with_files(&[("README.md", "# Project\n"), ("src/keep.txt", "keep\n")]);
    let bare = repo.tmp.join("remote.git");
    let out = std::process::Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare)
        .output()
        .expect("git init --bare");
    assert!(out.status.success());
    repo.git(&["remote", "add", "origin", &bare.display().to_string()]);
    std::fs::write(repo.home.join("canary.txt"), "canary\n").expect("canary");
    let text = format!(
        "default_agent: fx\n\
         agents:\n  fx:\n    adapter: command\n    command: sh {}\n    pass_env: [NET_TARGETS]\n\
         \x20 sib:\n    adapter: command\n    command: sh {}\n\
         worktree_dir: {}\n\
         kill_grace: 1s\n\
         sandbox:\n  mode: auto\n{sandbox}",
        yaml_str(&fixture(script).display().to_string()),
        yaml_str(&fixture("stray.sh").display().to_string()),
        yaml_str(&repo.wt.display().to_string()),
    );
    repo.write(".agents/config.yaml", &text);
    repo.brief("attack", &Brief::new(&["src/**"]));
    repo.brief("sibling", &Brief::new(&["src/**"]));
    repo.commit_all("agent config");
    repo.git(&["push", "-q", "origin", "main"]);
    let out = repo.run(&["run", "sibling", "--agent", "sib", "--json"]);
    let runs: Value = serde_json::from_slice(&out.stdout).expect("sibling JSON");
    let sibling = PathBuf::from(
        runs[0]["worktree"]
            .as_str()
            .expect("the sibling run keeps its worktree"),
    );
    let mut arena = Arena {
        repo,
        bare,
        sibling,
        before: BTreeMap::new(),
    };
    arena.before = arena.snapshot();
    arena
}

fn files_under(root: &Path, prefix: &str, skip_git: bool, out: &mut BTreeMap<String, Vec<u8>>) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if skip_git && dir == root && e.file_name() == ".git" {
                continue;
            }
            let rel = format!("{prefix}{}", p.strip_prefix(root).unwrap_or(&p).display());
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
}

impl Arena {
    /// Everything the agent must not be able to change.
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let repo = &self.repo;
        let git = repo.root.join(".git");
        let mut s = BTreeMap::new();
        for f in ["config", "packed-refs", "index", "HEAD", "description"] {
            s.insert(
                format!(".git/{f}"),
                std::fs::read(git.join(f)).unwrap_or_else(|_| b"<absent>".to_vec()),
            );
        }
        files_under(&git.join("hooks"), ".git/hooks/", false, &mut s);
        files_under(&git.join("info"), ".git/info/", false, &mut s);
        files_under(&git.join("refs"), ".git/refs/", false, &mut s);
        // Refs git-agent itself writes for the attack run are not the agent's.
        let refs: String = repo
            .git(&["for-each-ref", "--format=%(refname) %(objectname)"])
            .lines()
            .filter(|l| !l.starts_with("refs/heads/agent/attack") && !l.starts_with("refs/notes/"))
            .map(|l| format!("{l}\n"))
            .collect();
        s.insert("for-each-ref".into(), refs.into_bytes());
        s.retain(|k, _| {
            !k.starts_with(".git/refs/heads/agent/attack") && !k.starts_with(".git/refs/notes/")
        });
        files_under(&repo.root, "checkout/", true, &mut s);
        files_under(&self.sibling, "sibling/", false, &mut s);
        files_under(&repo.home, "home/", false, &mut s);
        files_under(&self.bare.join("refs"), "remote/refs/", false, &mut s);
        s.insert(
            "remote/packed-refs".into(),
            std::fs::read(self.bare.join("packed-refs")).unwrap_or_default(),
        );
        s
    }

    /// Keys whose content changed, appeared or disappeared.
    fn changed(&self) -> Vec<String> {
        let after = self.snapshot();
        let mut keys: Vec<String> = self
            .before
            .keys()
            .chain(after.keys())
            .filter(|k| self.before.get(*k) != after.get(*k))
            .cloned()
            .collect();
        keys.dedup();
        keys
    }
}

/// The outcome of one attack run.
struct Outcome {
    code: i32,
    run: Value,
    events: Vec<Value>,
    stderr: String,
    agent_stderr: String,
    confined: bool,
}

impl Outcome {
    fn outcome(&self) -> &str {
        self.run["outcome"].as_str().unwrap_or("")
    }
    fn violations(&self) -> Vec<String> {
        of_type(&self.events, "violation")
            .iter()
            .map(|v| {
                format!(
                    "attempt {}: {} {}",
                    v["attempt"],
                    v["what"].as_str().unwrap_or(""),
                    v["path"].as_str().unwrap_or("")
                )
            })
            .collect()
    }
}

fn attack(arena: &Arena, extra_env: &[(&str, &str)]) -> Outcome {
    let (code, runs, stderr) = arena.repo.run_json_env(&["attack"], extra_env);
    let run = runs.into_iter().next().expect("one run");
    let id = run["run_id"].as_str().expect("run id").to_string();
    let events = arena.repo.events(&id);
    let sandbox = of_type(&events, "sandbox");
    let confined = sandbox
        .first()
        .is_some_and(|s| s["enforcement"] == "landlock");
    let agent_stderr =
        std::fs::read_to_string(arena.repo.run_dir(&id).join("agent-1.stderr")).unwrap_or_default();
    Outcome {
        code,
        run,
        events,
        stderr,
        agent_stderr,
        confined,
    }
}

/// The usual test: `script` attacks a fresh arena (no extra sandbox settings,
/// no extra environment) and the outcome is judged as `name`.
fn attacked(script: &str, name: &str) -> (Arena, Outcome) {
    let a = arena(script, "");
    let o = attack(&a, &[]);
    judge(name, &a, &o);
    (a, o)
}

/// Asserts (a) and reports; `effect_ok` lists snapshot keys the attack may
/// change when the kernel does not confine the agent (nothing when it does).
fn judge(name: &str, arena: &Arena, o: &Outcome) {
    let changed = arena.changed();
    let through = !changed.is_empty();
    println!(
        "ATTACK {name}: {} ({}; outcome {}, exit {}; violations: {:?}; agent: {})",
        if through { "GOT THROUGH" } else { "blocked" },
        if o.confined {
            "landlock"
        } else {
            "NOT CONFINED: Landlock unavailable, mode auto"
        },
        o.outcome(),
        o.code,
        o.violations(),
        o.agent_stderr
            .lines()
            .filter(|l| l.starts_with("ATTACK"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    if o.confined {
        assert!(
            !through,
            "{name}: the agent changed {changed:?}\nrun: {:#}\nstderr: {}\nagent stderr: {}",
            o.run, o.stderr, o.agent_stderr
        );
        assert!(
            !o.agent_stderr.contains("ATTACK SUCCEEDED"),
            "{name}: an attempt succeeded:\n{}",
            o.agent_stderr
        );
    }
}

fn escalated_naming(o: &Outcome, needle: &str) {
    assert_eq!(o.outcome(), "escalated", "run: {:#}\n{}", o.run, o.stderr);
    assert_eq!(o.code, 3);
    assert!(
        o.violations().iter().any(|v| v.contains(needle)),
        "no violation naming `{needle}`: {:?}",
        o.violations()
    );
}

/// The attack had no effect and the agent's legitimate work was delivered.
fn delivered_anyway(arena: &Arena, o: &Outcome) {
    if !o.confined {
        return;
    }
    assert_eq!(o.outcome(), "succeeded", "run: {:#}\n{}", o.run, o.stderr);
    assert_eq!(
        arena.repo.show("agent/attack", "src/work.txt").as_deref(),
        Some("work\n")
    );
}

#[test]
fn write_outside_by_absolute_path() {
    let (a, o) = attacked("attack_abs_write.sh", "abs-write");
    delivered_anyway(&a, &o);
}

#[test]
fn write_outside_by_dotdot() {
    let (a, o) = attacked("attack_dotdot.sh", "dotdot-write");
    delivered_anyway(&a, &o);
}

#[test]
fn write_through_a_symlink_made_in_the_worktree() {
    let (_a, o) = attacked("attack_symlink_write.sh", "symlink-write");
    escalated_naming(&o, "symlink pointing outside");
}

#[test]
fn add_a_git_hook() {
    let (a, o) = attacked("attack_hook.sh", "hook");
    if o.confined {
        delivered_anyway(&a, &o);
    } else {
        escalated_naming(&o, "hooks");
    }
}

#[test]
fn edit_the_shared_git_config() {
    let (a, o) = attacked("attack_git_config.sh", "git-config");
    assert!(!a.repo.home.join("fsmonitor-ran").exists());
    if o.confined {
        delivered_anyway(&a, &o);
    } else {
        escalated_naming(&o, "config");
    }
}

#[test]
fn damage_the_object_store() {
    let a = arena("attack_objects.sh", "");
    let mut before = BTreeMap::new();
    files_under(
        &a.repo.root.join(".git/objects"),
        "objects/",
        false,
        &mut before,
    );
    assert!(!before.is_empty());
    let o = attack(&a, &[]);
    judge("objects", &a, &o);
    if o.confined {
        let mut after = BTreeMap::new();
        files_under(
            &a.repo.root.join(".git/objects"),
            "objects/",
            false,
            &mut after,
        );
        for (path, bytes) in &before {
            assert_eq!(after.get(path), Some(bytes), "{path} was damaged");
        }
        assert!(!after.contains_key("objects/pack/pack-evil.pack"));
        assert!(
            o.violations()
                .iter()
                .any(|v| v.contains("does not match its name")
                    && v.contains("123456789012345678901234567890123456789a")),
            "{:?}",
            o.violations()
        );
        assert_eq!(o.outcome(), "escalated");
        assert!(
            o.agent_stderr.contains("ATTACK BLOCKED: rm -f"),
            "{}",
            o.agent_stderr
        );
        assert!(
            o.agent_stderr
                .contains("ATTACK INERT (allowed, neutralised after the run): git -c user.name=a"),
            "the agent's own commit works: {}",
            o.agent_stderr
        );
    }
    // Whatever the kernel, the corrupt object never entered the store.
    let fsck = a.repo.git_output(&["fsck", "--no-dangling"]);
    assert!(
        fsck.status.success(),
        "fsck: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[test]
fn move_main_with_update_ref() {
    let (a, o) = attacked("attack_update_ref.sh", "update-ref");
    delivered_anyway(&a, &o);
}

#[test]
fn create_a_branch() {
    let (a, o) = attacked("attack_branch.sh", "branch");
    if o.confined {
        escalated_naming(&o, "attached the worktree's HEAD to refs/heads/main");
    }
    assert_eq!(a.repo.rev_opt("refs/heads/agent-scratch"), None);
    assert_eq!(a.repo.rev_opt("refs/heads/agent-own"), None);
}

#[test]
fn commit_and_push_from_inside() {
    let (a, o) = attacked("attack_push.sh", "push");
    delivered_anyway(&a, &o);
}

#[test]
fn replace_the_worktree_git_file() {
    let (_a, o) = attacked("attack_git_file.sh", "git-file");
    escalated_naming(&o, ".git file");
}

/// A worktree made by plain git (for the controls): its path and its
/// admin dir.
fn plain_worktree(control: &TestRepo) -> (PathBuf, PathBuf) {
    let plain = control.tmp.join("plain-wt");
    let plain_arg = plain.display().to_string();
    control.git(&["worktree", "add", "-q", "--detach", &plain_arg]);
    let admin = control.git(&[
        "-C",
        &plain_arg,
        "rev-parse",
        "--path-format=absolute",
        "--git-dir",
    ]);
    (plain, PathBuf::from(admin.trim()))
}

#[test]
fn rewire_the_worktree_admin_dir() {
    // Control: in a worktree made by plain git, the same rewrite of the
    // admin dir's `commondir` sends every later git command there (the
    // agent's, and the user's when they inspect a kept worktree) to a
    // repository of the attacker's choosing.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let (plain, admin) = plain_worktree(&control);
    let decoy = control.tmp.join("decoy.git");
    control.git(&["init", "-q", "--bare", &decoy.display().to_string()]);
    std::fs::write(admin.join("commondir"), format!("{}\n", decoy.display())).expect("rewire");
    let plain_arg = plain.display().to_string();
    let common = control.git(&[
        "-C",
        &plain_arg,
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
    ]);
    let common = common.trim();
    assert_eq!(
        std::fs::canonicalize(common).expect("common dir"),
        std::fs::canonicalize(&decoy).expect("decoy"),
        "control: plain git follows the rewired admin dir"
    );

    let (a, o) = attacked("attack_admin_dir.sh", "admin-dir");
    escalated_naming(&o, "admin dir");
    // The kept worktree is wired back: the user's git there works on the
    // repository, not on the decoy.
    let kept = o.run["worktree"]
        .as_str()
        .expect("an escalated run keeps its worktree");
    let common = a.repo.git(&[
        "-C",
        kept,
        "rev-parse",
        "--path-format=absolute",
        "--git-common-dir",
    ]);
    assert_eq!(
        std::fs::canonicalize(common.trim()).expect("common dir"),
        std::fs::canonicalize(a.repo.root.join(".git")).expect("repository"),
    );
}

#[test]
fn plant_a_filter_in_the_worktree_config() {
    // Control: a clean filter planted in a worktree's `config.worktree`
    // runs in whichever git stages there next — here plain git's.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    control.git(&["config", "extensions.worktreeConfig", "true"]);
    let (plain, admin) = plain_worktree(&control);
    let marker = control.tmp.join("ran");
    let filter = control.tmp.join("clean.sh");
    std::fs::write(
        &filter,
        format!("#!/bin/sh\ntouch {}\nexec cat\n", marker.display()),
    )
    .expect("filter");
    std::fs::set_permissions(&filter, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::write(
        admin.join("config.worktree"),
        format!("[filter \"a=b\"]\n\tclean = {}\n", filter.display()),
    )
    .expect("plant");
    std::fs::write(plain.join(".gitattributes"), "* filter=a=b\n").expect("attributes");
    std::fs::write(plain.join("README.md"), "changed\n").expect("edit");
    let plain_arg = plain.display().to_string();
    control.git(&["-C", &plain_arg, "-c", "filter.a=b.clean=", "add", "-A"]);
    assert!(
        marker.exists(),
        "control: the planted filter runs, even past a -c override"
    );

    // The user's repository has per-worktree config on (a sparse run did it).
    let mut a = arena("attack_filter.sh", "");
    a.repo.git(&["config", "extensions.worktreeConfig", "true"]);
    a.before = a.snapshot();
    let o = attack(&a, &[]);
    judge("worktree-config-filter", &a, &o);
    assert!(
        !a.repo.home.join("filter-ran").exists(),
        "git-agent's git ran the agent's filter"
    );
    delivered_anyway(&a, &o);
}

#[test]
fn a_path_that_hfs_reads_as_dot_git() {
    // Control: git itself flags a tree holding such a name (fsck's
    // `hasDotgit`): on HFS+ it is the repository's own `.git`.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let blob = control.git(&["hash-object", "-w", "README.md"]);
    let name = ".g\u{200c}it";
    let mut mktree = std::process::Command::new("git");
    mktree
        .args(["mktree"])
        .current_dir(&control.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = mktree.spawn().expect("mktree");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        format!("100644 blob {}\t{name}\n", blob.trim()).as_bytes(),
    )
    .expect("entry");
    let tree = child.wait_with_output().expect("mktree output");
    let tree = String::from_utf8_lossy(&tree.stdout).trim().to_string();
    let commit = control.git(&["commit-tree", "-m", "x", &tree]);
    control.git(&["update-ref", "refs/heads/weird", commit.trim()]);
    let fsck = control.git_output(&["fsck", "--strict"]);
    let said =
        String::from_utf8_lossy(&fsck.stderr).to_string() + &String::from_utf8_lossy(&fsck.stdout);
    assert!(
        said.contains("hasDotgit"),
        "control: git fsck flags it:\n{said}"
    );

    let (a, o) = attacked("attack_dotgit_name.sh", "dotgit-name");
    escalated_naming(&o, "`.git`");
    // Never committed: the branch, if any, has the work but not the name.
    let listing = a
        .repo
        .git_output(&["ls-tree", "-r", "--name-only", "agent/attack"]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(!listing.contains(name), "{listing}");
}

#[test]
fn corrupt_the_index_of_a_kept_worktree() {
    // Control: with one linked worktree's index corrupt, the user's
    // `git gc` and `git fsck` fail for the whole repository.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let plain = control.tmp.join("plain-wt");
    control.git(&[
        "worktree",
        "add",
        "-q",
        "--detach",
        &plain.display().to_string(),
    ]);
    std::fs::write(
        control.root.join(".git/worktrees/plain-wt/index"),
        "garbage\n",
    )
    .expect("corrupt");
    assert!(
        !control.git_output(&["gc", "-q"]).status.success(),
        "control: gc fails"
    );
    assert!(
        !control.git_output(&["fsck"]).status.success(),
        "control: fsck fails"
    );

    let (a, o) = attacked("attack_corrupt_index.sh", "corrupt-index");
    assert_eq!(o.outcome(), "escalated", "{:#}", o.run);
    assert!(o.run["worktree"].is_string(), "the worktree is kept");
    let gc = a.repo.git_output(&["gc", "-q"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let fsck = a.repo.git_output(&["fsck"]);
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
}

#[test]
fn point_the_object_store_elsewhere_and_plant_a_fifo() {
    let secret = "git-agent-alternate-secret\n";
    // Control: a store whose `info/alternates` names another repository
    // serves that repository's objects, and a FIFO blocks whoever reads it.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let other = control.tmp.join("other.git");
    control.git(&["init", "-q", "--bare", &other.display().to_string()]);
    let oid = {
        let out = std::process::Command::new("git")
            .args([
                "--git-dir",
                &other.display().to_string(),
                "hash-object",
                "-w",
                "--stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                std::io::Write::write_all(c.stdin.as_mut().expect("stdin"), secret.as_bytes())?;
                c.wait_with_output()
            })
            .expect("hash-object");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let store = control.tmp.join("store");
    std::fs::create_dir_all(store.join("info")).expect("store");
    std::fs::write(
        store.join("info/alternates"),
        format!("{}\n", other.join("objects").display()),
    )
    .expect("alternates");
    let through = std::process::Command::new("git")
        .current_dir(&control.root)
        .env("GIT_OBJECT_DIRECTORY", &store)
        .env(
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            control.root.join(".git/objects"),
        )
        .args(["cat-file", "-e", &oid])
        .status()
        .expect("cat-file");
    assert!(
        through.success(),
        "control: the store serves the other repository's object"
    );
    let fifo = control.tmp.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let blocked = std::process::Command::new("timeout")
        .args(["1", "cat"])
        .arg(&fifo)
        .status()
        .expect("timeout");
    assert_eq!(
        blocked.code(),
        Some(124),
        "control: reading the FIFO blocks"
    );

    let (a, o) = attacked("attack_object_store.sh", "object-store");
    delivered_anyway(&a, &o);
    let imported = a.repo.git_output(&["cat-file", "-e", &oid]);
    assert!(
        !imported.status.success(),
        "the other repository's object was imported into the user's"
    );
}

/// `git agent` started with descriptor 7 open on a secret (a parent's
/// socket, a file): neither the agent nor a check inherits it.
#[test]
fn read_a_descriptor_inherited_from_the_parent() {
    let a = arena("attack_inherited_fd.sh", "");
    let secret = a.repo.tmp.join("secret.txt");
    std::fs::write(&secret, "the parent's secret\n").expect("secret");
    // Each child gets its own open file (a shared one would share the
    // read offset between the control and the run).
    let with_fd7 = |cmd: &mut std::process::Command| {
        use std::os::fd::IntoRawFd;
        use std::os::unix::process::CommandExt;
        let fd = std::fs::File::open(&secret)
            .expect("open secret")
            .into_raw_fd();
        // SAFETY: dup2 and fcntl only, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // When the file already was fd 7, dup2 kept its
                // close-on-exec flag: clear it either way.
                if libc::fcntl(7, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    };
    // Control: a plain child of such a parent reads it.
    let mut control = std::process::Command::new("sh");
    control.args(["-c", "read line <&7 && echo \"$line\""]);
    with_fd7(&mut control);
    let out = control.output().expect("control");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "the parent's secret\n",
        "control"
    );

    let mut cmd = a.repo.command(&["run", "attack", "--json"]);
    with_fd7(&mut cmd);
    let out = cmd.output().expect("git agent run");
    let runs: Value = serde_json::from_slice(&out.stdout).expect("run JSON");
    let id = runs[0]["run_id"].as_str().expect("run id");
    let agent_stderr =
        std::fs::read_to_string(a.repo.run_dir(id).join("agent-1.stderr")).unwrap_or_default();
    println!("ATTACK inherited-fd: {agent_stderr}");
    assert!(agent_stderr.contains("ATTACK BLOCKED"), "{agent_stderr}");
    assert!(!agent_stderr.contains("ATTACK SUCCEEDED"), "{agent_stderr}");
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs:#}");
}

#[test]
fn symlink_in_scope_pointing_out() {
    let (a, o) = attacked("attack_symlink_scope.sh", "symlink-in-scope");
    escalated_naming(&o, "symlink pointing outside");
    for leak in ["src/leak-abs", "src/leak-rel"] {
        assert_eq!(
            a.repo.show("agent/attack", leak),
            None,
            "{leak} was committed"
        );
    }
}

#[test]
fn filenames_with_newlines_and_dots() {
    let (a, o) = attacked("attack_names.sh", "names");
    assert!(!a.repo.tmp.join("outside.txt").exists());
    assert!(
        ["succeeded", "escalated", "failed"].contains(&o.outcome()),
        "{:#}",
        o.run
    );
    if o.outcome() == "succeeded" {
        // Every odd name stays inside src/ and is delivered as itself.
        let listing = a
            .repo
            .git(&["ls-tree", "-r", "-z", "--name-only", "agent/attack"]);
        let paths: Vec<&str> = listing.split('\0').collect();
        for p in ["src/evil\nname.txt", "src/...", "src/..evil", "src/a..b/c"] {
            assert!(paths.contains(&p), "{p:?} missing from {paths:?}");
        }
        assert!(paths.iter().all(|p| !p.contains("outside")));
        assert_eq!(o.code, 0);
    }
}

#[test]
fn a_2gb_sparse_file_escalates_quickly() {
    let a = arena("attack_sparse_file.sh", "");
    let started = std::time::Instant::now();
    let o = attack(&a, &[]);
    let took = started.elapsed();
    judge("sparse-2g", &a, &o);
    escalated_naming(&o, "over the limit");
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
    assert_eq!(a.repo.show("agent/attack", "src/big.bin"), None);
}

/// The pid an attack delivered at `path` of its branch, and whether that
/// process is still alive (it is killed if so, not to outlive the test).
fn delivered_pid_survived(a: &Arena, path: &str) -> (i32, bool) {
    let pid: i32 = a
        .repo
        .show("agent/attack", path)
        .unwrap_or_else(|| panic!("{path} delivered"))
        .trim()
        .parse()
        .expect("pid");
    (pid, kill_if_alive(pid))
}

#[test]
fn a_daemon_that_outlives_the_agent_is_killed() {
    let (a, o) = attacked("attack_daemon.sh", "daemon");
    let (pid, survived) = delivered_pid_survived(&a, "src/daemon.pid");
    assert!(!survived, "daemon {pid} outlived the run");
    assert_eq!(a.repo.show("agent/attack", "src/late.txt"), None);
    let finished = of_type(&o.events, "agent_finished");
    assert!(
        finished.iter().any(|f| f["leaked"].as_u64() >= Some(1)),
        "the sweep did not report the daemon: {finished:?}"
    );
}

/// The payload of `attack_nested_userns.sh`, run outside git-agent: the
/// daemon's host pid once it is running.
fn nested_userns_daemon(dir: &Path) -> i32 {
    let pid_file = dir.join("nested.pid");
    let payload = "unshare --user setsid env -i sh -c \
        'read -r p _ < /proc/self/stat; echo \"$p\"; exec sleep 300 >/dev/null 2>&1' \
        < /dev/null > \"$0\" 2>/dev/null &";
    let status = std::process::Command::new("sh")
        .args(["-c", payload, &pid_file.display().to_string()])
        .status()
        .expect("sh");
    assert!(status.success());
    let start = std::time::Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(
            start.elapsed().as_secs() < 10,
            "the control daemon never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_daemon_in_a_nested_user_namespace_is_killed() {
    // Control: outside git-agent the daemon outlives the shell that started
    // it, its process group, and the user namespace of its parent.
    let control = tempfile::tempdir().expect("tempdir");
    let pid = nested_userns_daemon(control.path());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        kill_if_alive(pid),
        "control: the nested daemon survives its starter"
    );

    let (a, o) = attacked("attack_nested_userns.sh", "nested-userns");
    let (pid, survived) = delivered_pid_survived(&a, "src/nested.pid");
    assert!(!survived, "the nested daemon {pid} outlived the run");
    let finished = of_type(&o.events, "agent_finished");
    assert!(
        finished.iter().any(|f| f["leaked"].as_u64() >= Some(1)),
        "the run did not report the daemon: {finished:?}"
    );
}

/// The control of a network attack: the payload line of `script` (the one
/// after `prefix`), run by a plain shell against `target`.
fn run_payload(script: &str, prefix: &str, target: &(impl AsRef<std::ffi::OsStr> + ?Sized)) {
    let text = std::fs::read_to_string(fixture(script)).expect("script");
    let payload = text
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .expect("payload");
    let ran = std::process::Command::new("sh")
        .args(["-c", payload])
        .env("NET_TARGETS", target)
        .status()
        .expect("sh");
    assert!(ran.success(), "control: the payload runs");
}

/// Mode, modification time and `user.agent` attribute of a file.
fn metadata_of(path: &Path) -> (u32, i64, Option<Vec<u8>>) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).expect("metadata");
    let attr = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys\ntry: sys.stdout.write(os.getxattr(sys.argv[1], 'user.agent').hex())\nexcept OSError: pass",
        ])
        .arg(path)
        .output()
        .expect("python3");
    let attr = String::from_utf8_lossy(&attr.stdout).trim().to_string();
    (
        meta.mode(),
        meta.mtime(),
        (!attr.is_empty()).then(|| attr.into_bytes()),
    )
}

#[test]
fn change_metadata_outside_the_worktree() {
    // Control: the script's own commands change a file the user owns.
    let control = tempfile::tempdir().expect("tempdir");
    let file = control.path().join("canary.txt");
    std::fs::write(&file, "canary\n").expect("write");
    let before = metadata_of(&file);
    let script = std::fs::read_to_string(fixture("attack_metadata.sh")).expect("script");
    let body: String = script
        .lines()
        .filter(|l| l.starts_with("try ") && l.contains("$HOME"))
        .map(|l| l.trim_start_matches("try ").replace("$HOME", "$1") + "\n")
        .collect();
    let ran = std::process::Command::new("sh")
        .args(["-c", &body, "sh", &control.path().display().to_string()])
        .status()
        .expect("sh");
    assert!(ran.success(), "control: the payload runs");
    let after = metadata_of(&file);
    assert_ne!(before.0, after.0, "control: the mode changes");
    assert_ne!(before.1, after.1, "control: the time changes");
    assert!(after.2.is_some(), "control: the attribute is set");

    let a = arena("attack_metadata.sh", "");
    let canary = a.repo.home.join("canary.txt");
    let readme = a.repo.root.join("README.md");
    let (canary_before, readme_before) = (metadata_of(&canary), metadata_of(&readme));
    let o = attack(&a, &[]);
    judge("metadata", &a, &o);
    if o.confined {
        assert_eq!(metadata_of(&canary), canary_before, "the canary's metadata");
        assert_eq!(
            metadata_of(&readme),
            readme_before,
            "the checkout's metadata"
        );
    }
}

/// A daemon listening on a unix socket outside the worktree; the returned
/// receiver gets every line a client sends.
fn socket_daemon(path: &Path) -> std::sync::mpsc::Receiver<String> {
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line);
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn talk_to_a_daemon_by_its_socket() {
    let a = arena("attack_socket.sh", "");
    let socket = a.repo.tmp.join("daemon.sock");
    let heard = socket_daemon(&socket);
    // Control: the payload, run by a plain shell, reaches the daemon.
    run_payload("attack_socket.sh", "try ", &socket);
    let said = heard
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("control: the daemon hears the payload");
    assert_eq!(said, "pwned\n");

    let o = attack(&a, &[("NET_TARGETS", &socket.display().to_string())]);
    judge("socket", &a, &o);
    if o.confined {
        assert!(
            heard
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the agent reached the daemon"
        );
    }
}

#[test]
fn a_socket_the_config_allows_is_reachable() {
    let a = arena("attack_socket.sh", "");
    let socket = a.repo.tmp.join("db.sock");
    let heard = socket_daemon(&socket);
    let config = a.repo.read(".agents/config.yaml");
    a.repo.write(
        ".agents/config.yaml",
        format!(
            "{config}  sockets: [{}]\n",
            yaml_str(&socket.display().to_string())
        ),
    );
    a.repo.commit_all("allow the database socket");
    let o = attack(&a, &[("NET_TARGETS", &socket.display().to_string())]);
    assert_eq!(o.outcome(), "succeeded", "{:#}\n{}", o.run, o.stderr);
    assert_eq!(
        heard
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the allowed socket is reached"),
        "pwned\n"
    );
}

#[test]
fn read_the_forge_token() {
    let a = arena("attack_token.sh", "");
    let o = attack(&a, &[("GITHUB_TOKEN", TOKEN), ("GH_TOKEN", TOKEN)]);
    judge("token", &a, &o);
    let env = a
        .repo
        .show("agent/attack", "src/env.txt")
        .unwrap_or_default();
    assert!(env.contains("GIT_AGENT_RUN_ID="), "env.txt: {env}");
    assert!(
        !env.contains(TOKEN),
        "the token reached the agent's environment"
    );
    let stolen = a
        .repo
        .show("agent/attack", "src/stolen.txt")
        .unwrap_or_default();
    assert!(
        !stolen.contains(TOKEN),
        "the agent read the token from /proc: {stolen}"
    );
}

#[test]
fn rewrite_the_run_records() {
    let (_a, o) = attacked("attack_records.sh", "records");
    if o.confined {
        assert!(o.run["outcome"] == "succeeded", "{:#}", o.run);
        assert!(
            !of_type(&o.events, "decision").is_empty(),
            "the agent could not append its decision"
        );
        assert!(
            !of_type(&o.events, "committed")
                .iter()
                .any(|c| c["branch"] == "main"),
            "a forged event was accepted"
        );
    }
}

#[test]
fn signal_the_orchestrator() {
    let (a, o) = attacked("attack_signal.sh", "signal");
    // The run finished, so git-agent was neither stopped nor killed.
    if o.confined
        && of_type(&o.events, "sandbox")
            .first()
            .is_some_and(|s| s["landlock_abi"].as_i64() >= Some(6))
    {
        delivered_anyway(&a, &o);
    }
}

/// A listener on the host: on loopback, and on a non-loopback address when
/// the machine has one; and their addresses for `$NET_TARGETS`.
fn host_listeners() -> (Vec<(TcpListener, String)>, String) {
    let mut out = Vec::new();
    let lo = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = lo.local_addr().expect("addr").to_string();
    out.push((lo, addr));
    // The address a packet to the outside would leave from (nothing is sent).
    if let Ok(udp) = std::net::UdpSocket::bind("0.0.0.0:0") {
        if udp.connect("192.0.2.1:9").is_ok() {
            if let Ok(local) = udp.local_addr() {
                if !local.ip().is_loopback() && !local.ip().is_unspecified() {
                    if let Ok(l) = TcpListener::bind((local.ip(), 0)) {
                        let addr = l.local_addr().expect("addr").to_string();
                        out.push((l, addr));
                    }
                }
            }
        }
    }
    let targets = out
        .iter()
        .map(|(_, a)| a.clone())
        .collect::<Vec<_>>()
        .join(" ");
    (out, targets)
}

#[test]
fn network_none_leaves_only_loopback() {
    let a = arena("attack_network.sh", "  network: none\n");
    let (listeners, targets) = host_listeners();
    let o = attack(&a, &[("NET_TARGETS", &targets)]);
    judge("network-none", &a, &o);
    let net = a
        .repo
        .show("agent/attack", "src/net.txt")
        .unwrap_or_else(|| panic!("no net.txt; run {:#}\n{}", o.run, o.stderr));
    println!("network none ({targets}):\n{net}");
    for (_, addr) in &listeners {
        assert!(net.contains(&format!("refused {addr}")), "{addr}: {net}");
    }
    if net.contains("loopback") {
        assert!(net.contains("loopback ok"), "{net}");
    }
    let sandbox = of_type(&o.events, "sandbox");
    assert_eq!(sandbox[0]["network"], "none");
}

#[test]
fn network_open_reaches_the_host() {
    let a = arena("attack_network.sh", "");
    let (listeners, targets) = host_listeners();
    let o = attack(&a, &[("NET_TARGETS", &targets)]);
    let net = a
        .repo
        .show("agent/attack", "src/net.txt")
        .unwrap_or_default();
    for (_, addr) in &listeners {
        assert!(net.contains(&format!("connected {addr}")), "{addr}: {net}");
    }
    assert_eq!(of_type(&o.events, "sandbox")[0]["network"], "open");
}

/// An HTTP server on `ip` answering `hello-<ip>`; counts its clients.
fn http_server(ip: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind((ip, 0)).expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let body = format!("hello-{ip}");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (addr, hits)
}

#[test]
fn network_allowlist_lets_through_only_what_it_names() {
    let (allowed, _) = http_server("127.0.0.2");
    let (denied, denied_hits) = http_server("127.0.0.3");
    // Control: outside git-agent both servers answer anyone.
    for addr in [&allowed, &denied] {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr.as_str()).expect("control: reachable");
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).expect("read");
        assert!(
            reply.contains("hello-127.0.0."),
            "control: {addr} answers: {reply}"
        );
    }
    let before = denied_hits.load(std::sync::atomic::Ordering::SeqCst);
    let a = arena(
        "attack_egress.sh",
        &format!("  network:\n    allow: [\"{allowed}\"]\n"),
    );
    let o = attack(&a, &[("NET_TARGETS", &format!("{allowed} {denied}"))]);
    judge("egress-allowlist", &a, &o);
    let said = a
        .repo
        .show("agent/attack", "src/egress.txt")
        .unwrap_or_else(|| panic!("no egress.txt; run {:#}\n{}", o.run, o.stderr));
    for line in [
        format!("proxied ok {allowed} hello-127.0.0.2"),
        format!("tunnel ok {allowed} hello-127.0.0.2"),
        format!("direct refused {allowed}"),
        format!("proxied refused {denied}"),
        format!("tunnel refused {denied}"),
        format!("direct refused {denied}"),
    ] {
        assert!(said.contains(&line), "{line:?} missing from:\n{said}");
    }
    assert_eq!(
        denied_hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "the denied server was reached"
    );
    let sandbox = of_type(&o.events, "sandbox");
    assert_eq!(sandbox[0]["network"], "allowlist");
    let finished = of_type(&o.events, "agent_finished");
    assert!(
        finished
            .iter()
            .any(|f| f["egress_refused"].to_string().contains(&denied)),
        "the refusal is not recorded: {finished:?}"
    );
}

#[test]
fn print_env_shows_the_agents_environment_redacted() {
    let a = arena("attack_abs_write.sh", "");
    let out = a.repo.run_env(
        &["run", "attack", "--print-env"],
        &[
            ("GITHUB_TOKEN", TOKEN),
            ("NET_TARGETS", "x"),
            ("MY_API_KEY", "k"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(TOKEN));
    assert!(!stdout.contains("GITHUB_TOKEN"), "{stdout}");
    assert!(stdout.contains("NET_TARGETS=x"), "{stdout}");
    assert!(stdout.contains("GIT_AGENT_DECISIONS="), "{stdout}");
    assert!(stdout.contains("TMPDIR="), "{stdout}");
    assert!(!stdout.contains("MY_API_KEY"), "not in pass_env: {stdout}");
    // Nothing ran.
    assert!(a.repo.rev_opt("refs/heads/agent/attack").is_none());
}

#[test]
fn required_mode_fails_where_landlock_is_missing() {
    let mut a = arena("attack_abs_write.sh", "");
    let cfg = a
        .repo
        .read(".agents/config.yaml")
        .replace("mode: auto", "mode: required");
    a.repo.write(".agents/config.yaml", &cfg);
    a.before = a.snapshot();
    let (code, runs, stderr) = a
        .repo
        .run_json_env(&["attack"], &[("GIT_AGENT_SIMULATE_NO_LANDLOCK", "1")]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(runs[0]["outcome"], "failed");
    let reason = runs[0]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("does not support Landlock"), "{reason}");
    assert_eq!(runs[0]["attempts"], 0, "the agent never ran");
    assert_eq!(a.changed(), Vec::<String>::new());
}

#[test]
fn auto_mode_warns_once_and_records_an_unconfined_run() {
    let a = arena("attack_names.sh", "");
    a.repo.brief("attack2", &Brief::new(&["src/**"]));
    let (_, runs, stderr) = a.repo.run_json_env(
        &["attack", "attack2", "-j", "2", "--allow-overlap"],
        &[("GIT_AGENT_SIMULATE_NO_LANDLOCK", "1")],
    );
    assert_eq!(
        stderr.matches("warning: sandbox:").count(),
        1,
        "one warning for all runs: {stderr}"
    );
    for run in &runs {
        let id = run["run_id"].as_str().expect("id");
        let events = a.repo.events(id);
        let sandbox = of_type(&events, "sandbox");
        assert_eq!(sandbox[0]["enforcement"], "none", "{sandbox:?}");
        assert!(a.repo.log_md(id).contains("ran unconfined"));
    }
}

#[test]
fn read_a_denied_path() {
    let mut a = arena("attack_read_deny.sh", "  read_deny: [\"~/secrets\"]\n");
    std::fs::create_dir_all(a.repo.home.join("secrets")).expect("secrets dir");
    std::fs::write(a.repo.home.join("secrets/key.txt"), "SECRET-KEY-MATERIAL\n").expect("key");
    a.before = a.snapshot();
    let o = attack(&a, &[]);
    judge("read-deny", &a, &o);
    if !o.confined {
        return;
    }
    let read = a.repo.show("agent/attack", "src/read.txt");
    let kept = o.run["worktree"]
        .as_str()
        .map(|w| std::fs::read_to_string(Path::new(w).join("src/read.txt")).unwrap_or_default());
    for text in [read, kept].into_iter().flatten() {
        assert!(!text.contains("SECRET-KEY-MATERIAL"), "{text}");
        assert!(
            text.contains("canary"),
            "siblings of a denied dir stay readable: {text}"
        );
    }
    // The symlink into the denied dir points out of the worktree: escalated.
    escalated_naming(&o, "symlink pointing outside");
    let sandbox = of_type(&o.events, "sandbox");
    assert!(sandbox[0]["read_deny"][0]
        .as_str()
        .is_some_and(|p| p.ends_with("/home/secrets")));
}

/// As root, the whole suite runs again as `nobody` (uid 65534): Landlock,
/// the namespaces and the post-run checks must hold for a user without
/// privileges as well (the probes take other paths there, and DAC no
/// longer lets the agent through where root's would). That user may not
/// reach the build directory, so it runs from a copy: this test binary,
/// git-agent and the fixtures. Run unprivileged, the suite is itself that
/// run, and this test only says so.
#[test]
fn the_attacks_hold_as_an_unprivileged_user() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::Uid::effective().is_root() {
        println!(
            "ATTACK suite: running unprivileged (uid {})",
            nix::unistd::Uid::effective()
        );
        return;
    }
    const NOBODY: u32 = 65534;
    let copy = tempfile::tempdir().expect("tempdir");
    let root = copy.path();
    let exe = std::env::current_exe().expect("this test binary");
    std::fs::copy(&exe, root.join("hostile")).expect("copy the suite");
    std::fs::copy(support::BIN, root.join("git-agent")).expect("copy git-agent");
    let fixtures = root.join("fixtures");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixture(""))
        .arg(&fixtures)
        .status()
        .expect("cp");
    assert!(copied.success());
    let home = root.join("home");
    std::fs::create_dir(&home).expect("home");
    let chowned = std::process::Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(&home)
        .status()
        .expect("chown");
    assert!(chowned.success());
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new(root.join("hostile"))
        .args([
            "--skip",
            "the_attacks_hold_as_an_unprivileged_user",
            "--nocapture",
        ])
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("HOME", &home)
        .env("TMPDIR", std::env::temp_dir())
        .env("GIT_AGENT_TEST_BIN", root.join("git-agent"))
        .env("GIT_AGENT_TEST_FIXTURES", &fixtures)
        .current_dir(&home)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run the suite as nobody");
    let said = String::from_utf8_lossy(&out.stdout);
    let attacks: Vec<&str> = said.lines().filter(|l| l.starts_with("ATTACK ")).collect();
    println!("as uid {NOBODY}:\n{}", attacks.join("\n"));
    assert!(
        out.status.success(),
        "the suite failed as uid {NOBODY}:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        attacks.iter().filter(|l| l.contains(": blocked")).count() >= 25,
        "fewer attacks than expected ran blocked as uid {NOBODY}:\n{}",
        attacks.join("\n")
    );
    assert!(!said.contains("GOT THROUGH"), "{said}");
}

/// The arena with the attack brief given `checks` (and the snapshot taken
/// again, so that committing the brief is not counted as damage).
fn arena_with_check(script: &str, sandbox: &str, name: &str, check: &str) -> Arena {
    let mut a = arena(script, sandbox);
    a.repo.brief(
        "attack",
        &Brief::new(&["src/**"]).check(name, check).attempts(1),
    );
    a.repo.commit_all("the attack brief has a check");
    a.before = a.snapshot();
    a
}

#[test]
fn hide_a_change_behind_the_index_bits() {
    // Control: in a plain worktree the same commands hide both changes from
    // `git status` and from `git add -A`.
    let control = TestRepo::with_files(&[("README.md", "# Project\n"), ("src/keep.txt", "keep\n")]);
    let (plain, _) = plain_worktree(&control);
    let plain_arg = plain.display().to_string();
    std::fs::write(plain.join("README.md"), "# Project\nstray\n").expect("write");
    std::fs::write(plain.join("src/keep.txt"), "keep\nmore\n").expect("write");
    control.git(&[
        "-C",
        &plain_arg,
        "update-index",
        "--assume-unchanged",
        "README.md",
    ]);
    control.git(&[
        "-C",
        &plain_arg,
        "update-index",
        "--skip-worktree",
        "src/keep.txt",
    ]);
    control.git(&["-C", &plain_arg, "add", "-A"]);
    assert_eq!(
        control.git(&["-C", &plain_arg, "status", "--porcelain"]),
        "",
        "control: plain git sees no change"
    );

    let (a, o) = attacked("attack_index_bits.sh", "index-bits");
    escalated_naming(&o, "README.md");
    // The stray line reached no branch.
    let readme = a.repo.show("agent/attack", "README.md").unwrap_or_default();
    assert!(!readme.contains("stray"), "{readme}");
}

#[test]
fn a_check_script_leaves_a_daemon() {
    let daemon = "sleep 313373";
    let running = || -> Vec<i32> {
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.split(|b| *b == 0).collect::<Vec<_>>() == [&b"sleep"[..], b"313373", b""]
                })
            })
            .filter(|pid| alive(*pid))
            .collect()
    };
    // Control: the script the agent writes, run by a plain shell, leaves
    // the daemon running.
    let control = tempfile::tempdir().expect("tempdir");
    let a = arena_with_check("attack_check_daemon.sh", "", "tests", "sh src/check.sh");
    let ran = std::process::Command::new("sh")
        .arg(fixture("attack_check_daemon.sh"))
        .current_dir(control.path())
        .env("HOME", control.path())
        .status()
        .expect("sh");
    assert!(ran.success());
    let ran = std::process::Command::new("sh")
        .arg("src/check.sh")
        .current_dir(control.path())
        .status()
        .expect("sh");
    assert!(ran.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let left = running();
    assert!(!left.is_empty(), "control: `{daemon}` outlives the check");
    for pid in left {
        kill_if_alive(pid);
    }

    let o = attack(&a, &[]);
    judge("check-daemon", &a, &o);
    assert_eq!(o.outcome(), "succeeded", "{:#}\n{}", o.run, o.stderr);
    let left = running();
    for pid in &left {
        kill_if_alive(*pid);
    }
    assert!(
        left.is_empty(),
        "the check's daemon outlived the run: {left:?}"
    );
}

#[test]
fn hard_link_a_file_from_outside() {
    // Control: a plain shell links the canary and writes through the link.
    let control = tempfile::tempdir().expect("tempdir");
    let canary = control.path().join("canary.txt");
    std::fs::write(&canary, "canary\n").expect("write");
    std::fs::create_dir(control.path().join("src")).expect("mkdir");
    let ran = std::process::Command::new("sh")
        .args([
            "-c",
            "ln \"$HOME/canary.txt\" src/canary-hard && echo pwned >> src/canary-hard",
        ])
        .current_dir(control.path())
        .env("HOME", control.path())
        .status()
        .expect("sh");
    assert!(ran.success());
    assert_eq!(
        std::fs::read_to_string(&canary).expect("read"),
        "canary\npwned\n",
        "control"
    );

    let (a, _) = attacked("attack_hardlink.sh", "hardlink");
    assert_eq!(
        std::fs::read_to_string(a.repo.home.join("canary.txt")).expect("canary"),
        "canary\n"
    );
}

#[test]
fn plant_fifos_where_files_are_read() {
    // Control: opening such a FIFO blocks a reader that is not careful.
    let control = tempfile::tempdir().expect("tempdir");
    let fifo = control.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let blocked = std::process::Command::new("timeout")
        .args(["1", "cat"])
        .arg(&fifo)
        .status()
        .expect("timeout");
    assert_eq!(
        blocked.code(),
        Some(124),
        "control: reading the FIFO blocks"
    );

    let started = std::time::Instant::now();
    let (a, o) = attacked("attack_fifo.sh", "fifo");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_ne!(o.outcome(), "", "{:#}", o.run);
    for path in ["src/pipe", "src/keep.txt"] {
        let mode = a.repo.git_output(&["ls-tree", "agent/attack", path]);
        let listed = String::from_utf8_lossy(&mode.stdout).to_string();
        assert!(
            !listed.starts_with("120000") && !listed.contains("pipe"),
            "{path} committed as {listed}"
        );
    }
}

#[test]
fn talk_to_a_daemon_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("git-agent-hostile-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).expect("bind");
    let (tx, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line);
            let _ = tx.send(line);
        }
    });
    // Control: the payload, run by a plain shell, reaches the daemon.
    run_payload("attack_abstract_socket.sh", "try ", &name);
    assert_eq!(
        heard
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("control: heard"),
        "pwned\n"
    );

    let a = arena("attack_abstract_socket.sh", "");
    let o = attack(&a, &[("NET_TARGETS", &name)]);
    judge("abstract-socket", &a, &o);
    if o.confined {
        assert!(heard
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
    }
}

#[test]
fn send_around_the_egress_proxy_by_udp() {
    let udp = std::net::UdpSocket::bind("127.0.0.3:0").expect("bind");
    udp.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let target = udp.local_addr().expect("addr").to_string();
    // Control: the payload, run by a plain shell, reaches the listener.
    run_payload("attack_udp.sh", "inert ", &target);
    let mut buf = [0u8; 64];
    let (n, _) = udp
        .recv_from(&mut buf)
        .expect("control: the datagram arrives");
    assert_eq!(&buf[..n], b"pwned");

    let a = arena(
        "attack_udp.sh",
        "  network:\n    allow: [\"127.0.0.2:443\"]\n",
    );
    let o = attack(&a, &[("NET_TARGETS", &target)]);
    judge("udp-around-proxy", &a, &o);
    udp.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .expect("timeout");
    assert!(udp.recv_from(&mut buf).is_err(), "a datagram got out");
}

#[test]
fn a_check_does_not_pass_on_a_directory_the_commit_does_not_have() {
    let check = "test -f src/build/out.txt";
    let a = arena_with_check("attack_ignored_dir.sh", "", "artefact", check);
    let o = attack(&a, &[]);
    judge("ignored-dir", &a, &o);
    assert_eq!(o.outcome(), "failed", "{:#}\n{}", o.run, o.stderr);
    let aside = of_type(&o.events, "set_aside");
    assert!(
        aside
            .iter()
            .any(|e| e["paths"].to_string().contains("src/build")),
        "{aside:?}"
    );
    // Control: in the worktree as the agent left it the check passes.
    let wt = PathBuf::from(o.run["worktree"].as_str().expect("kept"));
    let passed = std::process::Command::new("sh")
        .args(["-c", check])
        .current_dir(&wt)
        .status()
        .expect("sh");
    assert!(
        passed.success(),
        "control: the check passes where the directory is"
    );
}

#[test]
fn leave_garbage_in_the_head_of_a_kept_worktree() {
    // Control: a plain worktree whose HEAD is garbage fails the user's fsck.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let (_, admin) = plain_worktree(&control);
    std::fs::write(admin.join("HEAD"), "garbage\n").expect("write");
    assert!(
        !control.git_output(&["fsck"]).status.success(),
        "control: fsck fails"
    );

    let (a, o) = attacked("attack_garbage_head.sh", "garbage-head");
    assert_eq!(o.outcome(), "escalated", "{:#}", o.run);
    assert!(o.run["worktree"].is_string(), "the worktree is kept");
    for args in [&["fsck"][..], &["gc", "-q"], &["worktree", "prune"]] {
        let out = a.repo.git_output(args);
        assert!(
            out.status.success(),
            "git {args:?} fails after the run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_directory_case_insensitive_systems_read_as_dot_git() {
    // Control: git fsck flags such a tree.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let blob = control.git(&["hash-object", "-w", "README.md"]);
    let mktree = |entries: &str| {
        let mut child = std::process::Command::new("git")
            .arg("mktree")
            .current_dir(&control.root)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("mktree");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), entries.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("mktree");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let inner = mktree(&format!("100644 blob {}\t.GIT\n", blob.trim()));
    let tree = mktree(&format!("040000 tree {inner}\tsrc\n"));
    let commit = control.git(&["commit-tree", "-m", "x", &tree]);
    control.git(&["update-ref", "refs/heads/weird", commit.trim()]);
    let fsck = control.git_output(&["fsck", "--strict"]);
    assert!(
        String::from_utf8_lossy(&fsck.stderr).contains("hasDotgit"),
        "control: git fsck flags it"
    );

    let (a, o) = attacked("attack_case_dotgit.sh", "case-dotgit");
    escalated_naming(&o, ".git");
    assert!(!a.repo.home.join("hook-ran").exists());
    let listing = a
        .repo
        .git(&["ls-tree", "-r", "--name-only", "agent/attack"]);
    assert!(!listing.to_lowercase().contains(".git/"), "{listing}");
}

#[test]
fn a_file_name_with_terminal_control_sequences() {
    let (a, o) = attacked("attack_escape_name.sh", "escape-name");
    // Control: the name reaches the tree as it is, escape bytes and all,
    // and plain git prints it raw when asked for raw names.
    if o.outcome() == "succeeded" {
        let raw = a
            .repo
            .git(&["ls-tree", "-r", "-z", "--name-only", "agent/attack"]);
        assert!(
            raw.contains('\u{1b}'),
            "control: the name holds ESC: {raw:?}"
        );
    }
    let id = o.run["run_id"].as_str().expect("run id");
    for args in [&["log", id][..], &["diff", id], &["status"]] {
        let out = a.repo.run(args);
        let shown = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "`git agent {args:?}` printed control bytes: {shown:?}"
        );
    }
}

#[test]
fn a_repository_nested_in_the_scope() {
    // Control: plain `git add -A` records it as a gitlink (mode 160000) to
    // a commit the repository does not have.
    let control = TestRepo::with_files(&[("README.md", "# Project\n")]);
    let (plain, _) = plain_worktree(&control);
    let sub = plain.join("src/sub");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let sub_arg = sub.display().to_string();
    control.git(&["-C", &sub_arg, "init", "-q"]);
    std::fs::write(sub.join("inner.txt"), "inner\n").expect("write");
    control.git(&["-C", &sub_arg, "add", "inner.txt"]);
    control.git(&["-C", &sub_arg, "commit", "-q", "-m", "inner"]);
    let plain_arg = plain.display().to_string();
    let _ = control.git_output(&["-C", &plain_arg, "add", "-A"]);
    let staged = control.git(&["-C", &plain_arg, "ls-files", "-s", "src/sub"]);
    assert!(staged.starts_with("160000"), "control: a gitlink: {staged}");

    let (a, o) = attacked("attack_nested_repo.sh", "nested-repo");
    assert!(!a.repo.home.join("hook-ran").exists());
    let tree = a.repo.git_output(&["ls-tree", "-r", "agent/attack"]).stdout;
    let tree = String::from_utf8_lossy(&tree);
    assert!(!tree.contains("160000"), "a gitlink was committed: {tree}");
    assert!(
        !tree.contains(".git/"),
        "the inner .git was committed: {tree}"
    );
    let fsck = a.repo.git_output(&["fsck"]);
    assert!(fsck.status.success(), "{:#}", o.run);
}
