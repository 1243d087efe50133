//! Helpers for the `git agent run` integration tests: a throwaway repository
//! built with the git CLI (no user or system config, fixed identity and
//! dates), briefs and config written from Rust, and the real binary run with
//! a cleared environment.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_git-agent");

/// The scripted agents under `tests/fixtures/agents/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/agents")
        .join(name)
}

/// The longest a single `git-agent` invocation may take before the test
/// kills it (a hang must fail the test, not the whole suite).
const RUN_LIMIT: Duration = Duration::from_secs(300);

pub struct TestRepo {
    _tmp: tempfile::TempDir,
    /// The temporary directory everything lives in.
    pub tmp: PathBuf,
    /// The repository's working tree (the user's checkout).
    pub root: PathBuf,
    pub home: PathBuf,
    pub cache: PathBuf,
    /// `worktree_dir` of the config.
    pub wt: PathBuf,
    /// A directory outside the repository that agents may write to
    /// (passed to them as `$FIXTURE_OUT` through `pass_env`).
    pub out: PathBuf,
}

impl TestRepo {
    /// An empty repository on branch `main` with one commit holding `files`.
    pub fn new(files: &[(&str, &str)]) -> TestRepo {
        let tmp = tempfile::Builder::new()
            .prefix("git-agent-run-")
            .tempdir()
            .expect("temp dir");
        let base = tmp.path().canonicalize().expect("canonical temp dir");
        let repo = TestRepo {
            root: base.join("repo"),
            home: base.join("home"),
            cache: base.join("cache"),
            wt: base.join("wt"),
            out: base.join("out"),
            tmp: base,
            _tmp: tmp,
        };
        for d in [&repo.root, &repo.home, &repo.cache, &repo.out] {
            std::fs::create_dir_all(d).expect("create dir");
        }
        // Agents run `git` with HOME but without GIT_CONFIG_GLOBAL.
        std::fs::write(
            repo.home.join(".gitconfig"),
            "[user]\n\tname = Scripted Agent\n\temail = agent@example.invalid\n",
        )
        .expect("write home gitconfig");
        repo.git(&["init", "-q", "-b", "main"]);
        for (path, text) in files {
            repo.write(path, text);
        }
        if !files.is_empty() {
            repo.commit_all("base");
        }
        repo
    }

    /// The environment every git and git-agent call starts from.
    fn base_env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let bin_dir = Path::new(BIN).parent().expect("binary dir");
        vec![
            ("PATH".into(), format!("{}:{path}", bin_dir.display())),
            ("HOME".into(), self.home.display().to_string()),
            ("XDG_CACHE_HOME".into(), self.cache.display().to_string()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("NO_COLOR".into(), "1".into()),
            ("LC_ALL".into(), "C".into()),
        ]
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&p, text).expect("write file");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read file")
    }

    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// `git <args>` in the repository; panics unless it succeeds.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `git <args>`, whatever its exit status.
    pub fn git_output(&self, args: &[&str]) -> Output {
        Command::new("git")
            .args(args)
            .current_dir(&self.root)
            .env_clear()
            .envs(self.base_env())
            .envs([
                ("GIT_AUTHOR_NAME", "Test User"),
                ("GIT_AUTHOR_EMAIL", "user@example.invalid"),
                ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
                ("GIT_COMMITTER_NAME", "Test User"),
                ("GIT_COMMITTER_EMAIL", "user@example.invalid"),
                ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
                // Reads must never refresh (rewrite) the index.
                ("GIT_OPTIONAL_LOCKS", "0"),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run git")
    }

    /// `git-agent <args>` in the repository.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// `git-agent <args>` with extra environment variables.
    pub fn run_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let stdout = self.tmp.join(format!("stdout-{}", unique()));
        let stderr = self.tmp.join(format!("stderr-{}", unique()));
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(&self.root)
            .env_clear()
            .envs(self.base_env())
            .env("FIXTURE_OUT", &self.out)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start git-agent");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for git-agent") {
                break status;
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "git-agent {args:?} ran longer than {RUN_LIMIT:?}; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = Output {
            status,
            stdout: std::fs::read(&stdout).unwrap_or_default(),
            stderr: std::fs::read(&stderr).unwrap_or_default(),
        };
        let _ = std::fs::remove_file(stdout);
        let _ = std::fs::remove_file(stderr);
        out
    }

    /// Writes `.agents/config.yaml` with one agent `fx` running the fixture
    /// script `script` (an absolute path, so sparse worktrees find it too).
    pub fn config(&self, script: &str) {
        self.config_with(script, "")
    }

    /// As [`config`](Self::config), with extra top-level YAML appended.
    pub fn config_with(&self, script: &str, extra: &str) {
        let text = format!(
            "default_agent: fx\n\
             agents:\n  fx:\n    adapter: command\n    command: sh {}\n    pass_env: [FIXTURE_OUT]\n\
             worktree_dir: {}\n\
             kill_grace: 1s\n{extra}{sandbox}",
            yaml_str(&fixture(script).display().to_string()),
            yaml_str(&self.wt.display().to_string()),
            // Agents are confined; fixtures report through $FIXTURE_OUT.
            sandbox = if extra.contains("sandbox:") {
                String::new()
            } else {
                format!(
                    "sandbox:\n  write_paths: [{}]\n",
                    yaml_str(&self.out.display().to_string())
                )
            },
        );
        self.write(".agents/config.yaml", &text);
    }

    /// Writes `.agents/tasks/<id>.md`.
    pub fn brief(&self, id: &str, brief: &Brief) {
        self.write(&format!(".agents/tasks/{id}.md"), &brief.render());
    }

    /// `run <ids> --json`: the exit code and the parsed run objects.
    pub fn run_json(&self, ids: &[&str]) -> (i32, Vec<Value>, String) {
        self.run_json_env(ids, &[])
    }

    pub fn run_json_env(&self, ids: &[&str], extra: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
        let mut args = vec!["run"];
        args.extend_from_slice(ids);
        args.push("--json");
        let out = self.run_env(&args, extra);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run --json printed no JSON ({e}); stdout:\n{}\nstderr:\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let runs = json.as_array().expect("a JSON array").clone();
        (out.status.code().unwrap_or(-1), runs, stderr)
    }

    /// Runs one task and returns its exit code and run object.
    pub fn run_one(&self, id: &str) -> (i32, Value, String) {
        let (code, runs, stderr) = self.run_json(&[id]);
        assert_eq!(runs.len(), 1, "one run expected; stderr:\n{stderr}");
        (code, runs.into_iter().next().expect("one run"), stderr)
    }

    /// `log <run> --format json`: the events.
    pub fn events(&self, run: &str) -> Vec<Value> {
        let out = self.run(&["log", run, "--format", "json"]);
        assert!(
            out.status.success(),
            "log failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("log JSON");
        v["events"].as_array().expect("events array").clone()
    }

    /// `log <run> --format md`.
    pub fn log_md(&self, run: &str) -> String {
        let out = self.run(&["log", run, "--format", "md"]);
        assert!(
            out.status.success(),
            "log failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 markdown")
    }

    /// The content of `path` on `rev`, or `None` when it is not there.
    pub fn show(&self, rev: &str, path: &str) -> Option<String> {
        let out = self.git_output(&["show", &format!("{rev}:{path}")]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn rev(&self, rev: &str) -> String {
        self.git(&["rev-parse", "--verify", "--quiet", rev])
            .trim()
            .to_string()
    }

    pub fn rev_opt(&self, rev: &str) -> Option<String> {
        let out = self.git_output(&["rev-parse", "--verify", "--quiet", rev]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The paths of `git worktree list --porcelain`.
    pub fn worktrees(&self) -> Vec<String> {
        self.git(&["worktree", "list", "--porcelain"])
            .lines()
            .filter_map(|l| l.strip_prefix("worktree ").map(str::to_string))
            .collect()
    }

    /// `refs/heads/*` with their targets.
    pub fn heads(&self) -> Vec<String> {
        self.git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// The run directory of a run id.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(".git/agent/runs").join(run_id)
    }

    /// Every path that occurs in any commit reachable from any ref.
    pub fn paths_in_history(&self) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for c in self.git(&["rev-list", "--all"]).lines() {
            for p in self.git(&["ls-tree", "-r", "--name-only", c]).lines() {
                if !paths.iter().any(|q| q == p) {
                    paths.push(p.to_string());
                }
            }
        }
        paths
    }
}

/// A brief, rendered as frontmatter + body.
#[derive(Clone)]
pub struct Brief {
    pub title: String,
    pub write: Vec<String>,
    pub deny: Vec<String>,
    pub read: Option<Vec<String>>,
    /// (name, command)
    pub checks: Vec<(String, String)>,
    pub attempts: u32,
    pub timeout: String,
    pub on_scope_violation: Option<String>,
    pub goal: String,
}

impl Brief {
    /// A brief that may write `write` and whose one check always passes.
    pub fn new(write: &[&str]) -> Brief {
        Brief {
            title: "Scripted change".into(),
            write: write.iter().map(|s| s.to_string()).collect(),
            deny: Vec::new(),
            read: None,
            checks: vec![("ok".into(), "true".into())],
            attempts: 1,
            timeout: "60s".into(),
            on_scope_violation: None,
            goal: "Make the scripted change.".into(),
        }
    }

    pub fn title(mut self, t: &str) -> Self {
        self.title = t.into();
        self
    }
    pub fn deny(mut self, d: &[&str]) -> Self {
        self.deny = d.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn read(mut self, r: &[&str]) -> Self {
        self.read = Some(r.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn check(mut self, name: &str, run: &str) -> Self {
        self.checks = vec![(name.into(), run.into())];
        self
    }
    pub fn and_check(mut self, name: &str, run: &str) -> Self {
        self.checks.push((name.into(), run.into()));
        self
    }
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }
    pub fn timeout(mut self, t: &str) -> Self {
        self.timeout = t.into();
        self
    }
    pub fn on_scope_violation(mut self, v: &str) -> Self {
        self.on_scope_violation = Some(v.into());
        self
    }

    pub fn render(&self) -> String {
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter().map(|s| yaml_str(s)).collect::<Vec<_>>().join(", ")
            )
        };
        let mut y = String::from("---\n");
        y.push_str(&format!("title: {}\n", yaml_str(&self.title)));
        y.push_str("scope:\n");
        y.push_str(&format!("  write: {}\n", list(&self.write)));
        if !self.deny.is_empty() {
            y.push_str(&format!("  deny: {}\n", list(&self.deny)));
        }
        if let Some(read) = &self.read {
            y.push_str(&format!("  read: {}\n", list(read)));
        }
        y.push_str("checks:\n");
        for (name, run) in &self.checks {
            y.push_str(&format!(
                "  - name: {}\n    run: {}\n",
                yaml_str(name),
                yaml_str(run)
            ));
        }
        y.push_str("escalate:\n");
        y.push_str(&format!("  attempts: {}\n", self.attempts));
        y.push_str(&format!("  timeout: {}\n", self.timeout));
        if let Some(v) = &self.on_scope_violation {
            y.push_str(&format!("  on_scope_violation: {v}\n"));
        }
        y.push_str("---\n# Goal\n");
        y.push_str(&self.goal);
        y.push('\n');
        y
    }
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string encodes")
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `type`s of events, in order.
pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Events of one type.
pub fn of_type<'a>(events: &'a [Value], ty: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == ty).collect()
}

/// The value of trailer `key` in a commit message.
pub fn trailer(message: &str, key: &str) -> Option<String> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
}

/// Whether a process is still there (a zombie counts as gone: it has exited).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
