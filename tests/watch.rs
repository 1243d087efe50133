//! `git agent watch` driven for real: in a tmux pane (a real terminal),
//! keys sent with `send-keys`, the screen read with `capture-pane`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Brief, TestRepo};

/// A tmux server of its own (its socket in the test's temp dir), killed on drop.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket);
        cmd
    }

    /// Starts `git-agent <args>` in a 140×30 pane, with the test repo's
    /// clean environment (and a UTF-8 locale, for the marks).
    fn start(repo: &TestRepo, args: &[&str]) -> Tmux {
        let tmux = Tmux {
            socket: repo.tmp.join("tmux.sock"),
        };
        let cmd = repo.command(args);
        let mut line = String::from("exec env -i");
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                line.push_str(&format!(
                    " {}={}",
                    k.to_string_lossy(),
                    quote(&v.to_string_lossy())
                ));
            }
        }
        line.push_str(" LC_ALL=C.UTF-8");
        line.push_str(&format!(" {}", quote(&cmd.get_program().to_string_lossy())));
        for a in cmd.get_args() {
            line.push_str(&format!(" {}", quote(&a.to_string_lossy())));
        }
        let status = tmux
            .cmd()
            .args(["new-session", "-d", "-x", "140", "-y", "30", "-c"])
            .arg(&repo.root)
            .arg(line)
            .env("LANG", "C.UTF-8")
            .status()
            .expect("tmux");
        assert!(status.success(), "tmux new-session");
        tmux
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p"])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let status = self
            .cmd()
            .args(["send-keys", keys])
            .status()
            .expect("send-keys");
        assert!(status.success());
    }

    /// Waits until the screen shows `what` (or fails, showing the screen).
    fn until(&self, what: impl Fn(&str) -> bool, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if what(&screen) {
                return screen;
            }
            assert!(start.elapsed() < limit, "screen never matched:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        self.cmd()
            .arg("has-session")
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn watch_shows_runs_live_and_stops_the_selected_one() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config("overlapping.sh");
    for t in ["quick", "slow"] {
        repo.brief(
            t,
            &Brief::new(&[&format!("{t}.txt")]).check("wrote", &format!("test -f {t}.txt")),
        );
    }
    repo.commit_all("briefs");
    std::fs::write(repo.out.join("seconds"), "0").expect("seconds");
    let out = repo.run(&["run", "quick"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    std::fs::write(repo.out.join("seconds"), "60").expect("seconds");
    let out = repo.run(&["run", "--detach", "slow"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let slow = support::stdout(&out).trim().to_string();

    let tmux = Tmux::start(&repo, &["watch"]);
    // One line per run with its state; the latest run selected, its log beside.
    let screen = tmux.until(
        |s| s.contains("agent 1/") && s.contains("succeeded"),
        Duration::from_secs(30),
    );
    assert!(screen.contains("quick"), "{screen}");
    assert!(screen.contains(&format!("log: {slow}")), "{screen}");
    assert!(screen.contains("started slow with agent"), "{screen}");
    // Up selects the finished run, `d` shows its diff with the allowing glob.
    tmux.keys("Up");
    tmux.keys("d");
    let screen = tmux.until(|s| s.contains("diff: "), Duration::from_secs(10));
    assert!(
        screen.contains("quick.txt: allowed by `quick.txt`"),
        "{screen}"
    );
    // Back to the log, down to the working run, `s` stops it.
    tmux.keys("d");
    tmux.keys("Down");
    tmux.keys("s");
    let screen = tmux.until(|s| s.contains("interrupted"), Duration::from_secs(30));
    assert!(screen.contains("stopped by `git agent stop`"), "{screen}");
    let status = repo.run(&["status", slow.as_str(), "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(runs[0]["outcome"], "interrupted");
    // `q` quits, and the terminal is given back.
    tmux.keys("q");
    let start = Instant::now();
    while tmux.alive() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!tmux.alive(), "watch did not quit on q");
}

#[test]
fn watch_off_a_terminal_prints_lines_until_the_runs_end() {
    let repo = TestRepo::with_files(&[("README.md", "x\n")]);
    repo.config("overlapping.sh");
    repo.brief("a", &Brief::new(&["a.txt"]).check("wrote", "test -f a.txt"));
    repo.commit_all("briefs");
    std::fs::write(repo.out.join("seconds"), "1").expect("seconds");
    let out = repo.run(&["run", "--detach", "a"]);
    let id = support::stdout(&out).trim().to_string();
    let out = repo.run(&["watch"]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let said = support::stdout(&out);
    assert!(said.contains(&format!("[a] {id} ")), "{said}");
    assert!(said.trim_end().ends_with("succeeded"), "{said}");
    assert!(
        !said.contains('\u{1b}'),
        "no terminal control off a terminal: {said:?}"
    );
}
