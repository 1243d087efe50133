//! `cargo bench --bench validate`: how long validation takes for 1,000
//! briefs, valid and invalid, through the real binary (the one cargo built
//! for this bench, so optimized) and in-process through `brief::load`.
//!
//! A `harness = false` target: plain timing with `Instant`, median of a few
//! runs, printed as a table. No statistics framework on purpose.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git_agent::brief::{self, Context};
use git_agent::templates;
use support::{status_of, TestRepo};

const BRIEFS: usize = 1_000;
const RUNS: usize = 7;

fn fixtures(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("md"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (stem, std::fs::read(&p).expect("read fixture"))
        })
        .collect()
}

/// A repo with the `init` config and 1,000 briefs cycled from `dir`'s
/// fixtures, named `<fixture stem>-<n>.md` (so `Bad Name.md` stays a bad id).
fn repo_with(dir: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(".agents/config.yaml", templates::CONFIG);
    let fixtures = fixtures(dir);
    for i in 0..BRIEFS {
        let (stem, text) = &fixtures[i % fixtures.len()];
        repo.write(format!(".agents/tasks/{stem}-{i:04}.md"), text);
    }
    repo
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_binary(repo: &TestRepo, args: &[&str], expected_status: i32) -> Duration {
    let times = (0..RUNS)
        .map(|_| {
            // Spawned directly, not through `run`, whose polling would blur the time.
            let start = Instant::now();
            let output = repo.command(args).output().expect("spawn git-agent");
            let elapsed = start.elapsed();
            assert_eq!(
                status_of(&output),
                expected_status,
                "{args:?}\n{}",
                support::describe(&output)
            );
            elapsed
        })
        .collect();
    median(times)
}

fn time_in_process(repo: &TestRepo, expect_valid: bool) -> Duration {
    let files: Vec<PathBuf> = git_agent::repo_files::list_briefs(&repo.root).expect("list");
    assert_eq!(files.len(), BRIEFS);
    let ctx = Context {
        known_agents: Some(vec!["claude".into(), "codex".into()]),
    };
    let times = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let mut valid = 0;
            for path in &files {
                let (brief, report) =
                    brief::load(path, path.display().to_string(), &ctx).expect("read");
                // Render like the CLI does, so invalid briefs pay for their output.
                if report.has_errors() {
                    std::hint::black_box(report.render(false, 100));
                }
                valid += usize::from(brief.is_some());
            }
            assert_eq!(valid == BRIEFS, expect_valid);
            assert!(
                expect_valid || valid == 0,
                "{valid} invalid fixtures validated"
            );
            start.elapsed()
        })
        .collect();
    median(times)
}

fn row(what: &str, total: Duration) {
    println!(
        "{what:<44} {:>9.1} ms {:>9.1} µs/brief",
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / BRIEFS as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it once quickly.
    if !std::env::args().any(|a| a == "--bench") {
        println!("validate bench: skipped (run `cargo bench --bench validate`)");
        return;
    }
    println!(
        "{BRIEFS} briefs, median of {RUNS} runs, binary {}",
        support::BIN
    );
    let valid = repo_with("fixtures/briefs/valid");
    let invalid = repo_with("fixtures/briefs/invalid");

    row(
        "valid:   git-agent validate",
        time_binary(&valid, &["validate"], 0),
    );
    row(
        "valid:   git-agent validate --json",
        time_binary(&valid, &["validate", "--json"], 0),
    );
    row(
        "valid:   brief::load in process",
        time_in_process(&valid, true),
    );
    row(
        "invalid: git-agent validate",
        time_binary(&invalid, &["validate"], 2),
    );
    row(
        "invalid: git-agent validate --json",
        time_binary(&invalid, &["validate", "--json"], 2),
    );
    row(
        "invalid: brief::load + render in process",
        time_in_process(&invalid, false),
    );
}
