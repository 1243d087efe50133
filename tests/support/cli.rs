//! Running the built `git-agent` in the repository, and reading its output.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestRepo;

/// The `git-agent` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_git-agent");

/// The binary the tests run: [`BIN`], or a copy named by
/// `GIT_AGENT_TEST_BIN` (a suite re-run as another user, who may not
/// reach the build directory).
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("GIT_AGENT_TEST_BIN").map_or_else(|| BIN.into(), Into::into)
}

/// The longest a single `git-agent` invocation may take before the test
/// kills it (a hang must fail the test, not the whole suite).
const RUN_LIMIT: Duration = Duration::from_secs(300);

impl TestRepo {
    /// `git-agent <args>` in the repository under the clean environment;
    /// add `.env(..)`, `.current_dir(..)` or stdio before running it. Prefer
    /// [`run`](Self::run), which never hangs.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.clean_command(bin());
        cmd.env("FIXTURE_OUT", &self.out).args(args);
        cmd
    }

    /// `git-agent <args>` in the repository; waits for it.
    pub fn run(&self, args: &[&str]) -> Output {
        self.finish(self.command(args), args)
    }

    /// `git-agent <args>` with extra environment variables (they win).
    pub fn run_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        cmd.envs(extra.iter().copied());
        self.finish(cmd, args)
    }

    /// `git-agent <args>` in `dir` (relative to the root, or absolute).
    pub fn run_in(&self, dir: impl AsRef<Path>, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        cmd.current_dir(self.path(dir));
        self.finish(cmd, args)
    }

    /// Runs `cmd` to its end with stdout and stderr in files, not pipes (a
    /// process it leaves behind cannot hold the test up), and kills it after
    /// [`RUN_LIMIT`].
    fn finish(&self, mut cmd: Command, args: &[&str]) -> Output {
        let stdout = self.tmp.join(format!("stdout-{}", unique()));
        let stderr = self.tmp.join(format!("stderr-{}", unique()));
        let mut child = cmd
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start git-agent");
        let start = Instant::now();
        let mut nap = Duration::from_millis(1);
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
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
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

    /// `run <ids> --json`: the exit code, the parsed run objects, stderr.
    pub fn run_json(&self, ids: &[&str]) -> (i32, Vec<Value>, String) {
        self.run_json_env(ids, &[])
    }

    /// [`run_json`](Self::run_json) with extra environment variables.
    pub fn run_json_env(&self, ids: &[&str], extra: &[(&str, &str)]) -> (i32, Vec<Value>, String) {
        let mut args = vec!["run"];
        args.extend_from_slice(ids);
        args.push("--json");
        let out = self.run_env(&args, extra);
        let stderr = stderr(&out);
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "run --json printed no JSON ({e}); stdout:\n{}\nstderr:\n{stderr}",
                stdout(&out)
            )
        });
        let runs = json.as_array().expect("a JSON array").clone();
        (out.status.code().unwrap_or(-1), runs, stderr)
    }

    /// Runs one task and returns its exit code, run object and stderr.
    pub fn run_one(&self, id: &str) -> (i32, Value, String) {
        let (code, runs, stderr) = self.run_json(&[id]);
        assert_eq!(runs.len(), 1, "one run expected; stderr:\n{stderr}");
        (code, runs.into_iter().next().expect("one run"), stderr)
    }
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

/// The exit code; `-<signal>` when the process was killed by a signal.
pub fn status_of(output: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match output.status.code() {
        Some(code) => code,
        None => -output.status.signal().unwrap_or(0),
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit status, stdout and stderr in one text: for snapshots and for
/// assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n----- stdout -----\n{}----- stderr -----\n{}",
        status_of(output),
        stdout(output),
        stderr(output)
    )
}

/// Asserts the exit status, showing everything when it differs.
#[track_caller]
pub fn assert_status(output: &Output, expected: i32) {
    assert_eq!(
        status_of(output),
        expected,
        "unexpected exit status\n{}",
        describe(output)
    );
}
