//! `git agent stats` over real runs of a scripted agent in a real
//! repository: the counts in `--json`, what reached the base (a merge, a
//! cherry-pick), usage from the events, and the text table.

mod support;

use serde_json::Value;
use support::{assert_status, describe, fixture, stdout, yaml_str, Brief, TestRepo};

/// Two agents, `fx` and `fy`, that run the same script.
fn two_agents(repo: &TestRepo, script: &str) {
    let command = format!("sh {}", fixture(script).display());
    repo.write(
        ".agents/config.yaml",
        format!(
            "default_agent: fx\n\
             agents:\n  fx:\n    adapter: command\n    command: {cmd}\n  fy:\n    adapter: command\n    command: {cmd}\n\
             worktree_dir: {wt}\n\
             kill_grace: 1s\n",
            cmd = yaml_str(&command),
            wt = yaml_str(&repo.wt.display().to_string()),
        ),
    );
}

fn stats_json(repo: &TestRepo) -> Value {
    let out = repo.run(&["stats", "--json"]);
    assert_status(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", describe(&out)))
}

fn run(repo: &TestRepo, args: &[&str], code: i32) {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    assert_status(&repo.run(&all), code);
}

/// `greet` succeeds three times (twice with fx, once with fy), `broken`
/// fails its check on both attempts, `strict` strays out of its scope and
/// escalates.
fn repo_with_runs() -> TestRepo {
    let repo = TestRepo::with_files(&[("README.md", "# stats\n")]);
    two_agents(&repo, "success.sh");
    repo.brief("greet", &Brief::new(&["src/**"]));
    repo.brief(
        "broken",
        &Brief::new(&["src/**"]).check("never", "false").attempts(2),
    );
    repo.brief(
        "strict",
        &Brief::new(&["docs/**"]).on_scope_violation("escalate"),
    );
    repo.commit_all("briefs");
    run(&repo, &["greet"], 0);
    run(&repo, &["greet"], 0);
    run(&repo, &["greet", "--agent", "fy"], 0);
    run(&repo, &["broken"], 1);
    run(&repo, &["strict"], 3);
    repo
}

fn task<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {stats:#}"))
}

#[test]
fn stats_count_runs_outcomes_and_results_in_their_base() {
    let repo = repo_with_runs();
    let runs: Vec<Value> =
        serde_json::from_slice(&repo.run(&["status", "--all", "--json"]).stdout).expect("status");
    let commit_of = |i: usize| runs[i]["commit"].as_str().map(str::to_string);

    let before = stats_json(&repo);
    let total = &before["total"];
    assert_eq!(total["runs"], 5, "{before:#}");
    assert_eq!(total["outcomes"]["succeeded"], 3);
    assert_eq!(total["outcomes"]["failed"], 1);
    assert_eq!(total["outcomes"]["escalated"], 1);
    assert_eq!(total["outcomes"]["running"], 0);
    assert_eq!(total["attempts"]["total"], 6);
    let results = runs.iter().filter(|r| r["commit"].is_string()).count();
    assert_eq!(total["results"], results);
    assert_eq!(
        (total["merged"].as_u64(), total["landed"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(
        total["duration_ms"]["median"].as_u64().is_some(),
        "{total:#}"
    );
    assert_eq!(total["usage"]["runs_reporting"], 0);
    assert!(total["usage"]["input_tokens"].is_null());
    assert_eq!(task(&before, "broken")["attempts"]["mean"], 2.0);
    assert_eq!(task(&before, "greet")["runs"], 3);
    let agents: Vec<&str> = before["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["agent"].as_str().expect("name"))
        .collect();
    assert_eq!(agents, ["fx", "fy"]);
    assert_eq!(before["agents"][1]["runs"], 1);

    // The last greet result merged (a fast forward), the first one
    // cherry-picked: its commit is not there, its trailer is.
    let last = commit_of(2).expect("greet result");
    repo.git(&["merge", "-q", "--ff-only", &last]);
    let first = commit_of(0).expect("greet result");
    repo.git(&["cherry-pick", "--strategy-option=theirs", &first]);
    let after = stats_json(&repo);
    let greet = task(&after, "greet");
    assert_eq!(
        (greet["merged"].as_u64(), greet["landed"].as_u64()),
        (Some(1), Some(1)),
        "{greet:#}"
    );
    assert_eq!(greet["results"], 3);
    assert_eq!(after["agents"][0]["landed"], 1, "fx's first run landed");
    assert_eq!(after["agents"][1]["merged"], 1, "fy's run merged");

    let text = repo.run(&["stats"]);
    assert_status(&text, 0);
    insta::with_settings!({filters => vec![
        (r" +[0-9][0-9.]*(ms|s|m[0-9]{2}s)/[0-9][0-9.]*(ms|s|m[0-9]{2}s)", "  [  duration]"),
    ]}, {
        insta::assert_snapshot!(stdout(&text), @r"
        TASK    RUNS  SUCCEEDED  FAILED  ESCALATED  INTERRUPTED  ATTEMPTS  MEDIAN/TOTAL  IN BASE
        broken     1          0       1          0            0       2.0  [  duration]        -
        greet      3          3       0          0            0       1.0  [  duration]      2/3
        strict     1          0       0          1            0       1.0  [  duration]        -

        AGENT  RUNS  SUCCEEDED  FAILED  ESCALATED  INTERRUPTED  ATTEMPTS  MEDIAN/TOTAL  IN BASE
        fx        4          2       1          1            0       1.2  [  duration]      1/2
        fy        1          1       0          0            0       1.0  [  duration]      1/1

        5 runs: 3 succeeded, 1 failed, 1 escalated; 3 results, 2 in their base (1 merged, 1 landed), 0 delivered
        tokens and cost: not reported (no run's agent reported usage)
        ");
    });
}

/// Usage comes from the adapters' `agent_activity` events; the command
/// adapter reports none, so one is added to a real run's events here.
#[test]
fn usage_reported_in_events_is_summed() {
    let repo = TestRepo::with_files(&[("README.md", "# stats\n")]);
    two_agents(&repo, "success.sh");
    repo.brief("greet", &Brief::new(&["src/**"]));
    repo.commit_all("brief");
    run(&repo, &["greet"], 0);
    run(&repo, &["greet", "--agent", "fy"], 0);
    let runs: Vec<Value> =
        serde_json::from_slice(&repo.run(&["status", "--all", "--json"]).stdout).expect("status");
    let events = repo
        .run_dir(runs[0]["run_id"].as_str().expect("id"))
        .join("events.jsonl");
    let mut text = std::fs::read_to_string(&events).expect("events");
    for (input, output, cost) in [(1200, 300, 0.05), (800, 40, 0.02)] {
        text.push_str(&format!(
            "{{\"v\":1,\"ts\":\"2024-01-01T00:00:00Z\",\"type\":\"agent_activity\",\"attempt\":1,\"input_tokens\":{input},\"output_tokens\":{output},\"cost_usd\":{cost}}}\n"
        ));
    }
    std::fs::write(&events, text).expect("write events");

    let stats = stats_json(&repo);
    let usage = &stats["total"]["usage"];
    assert_eq!(usage["runs_reporting"], 1, "{stats:#}");
    assert_eq!(usage["input_tokens"], 2000);
    assert_eq!(usage["output_tokens"], 340);
    assert!((usage["cost_usd"].as_f64().expect("cost") - 0.07).abs() < 1e-9);
    assert!(
        stats["agents"][1]["usage"]["input_tokens"].is_null(),
        "fy reported none"
    );

    let text = repo.run(&["stats"]);
    assert_status(&text, 0);
    insta::with_settings!({filters => vec![
        (r" +[0-9][0-9.]*(ms|s|m[0-9]{2}s)/[0-9][0-9.]*(ms|s|m[0-9]{2}s)", "  [  duration]"),
    ]}, {
        insta::assert_snapshot!(stdout(&text), @r"
        TASK   RUNS  SUCCEEDED  FAILED  ESCALATED  INTERRUPTED  ATTEMPTS  MEDIAN/TOTAL           TOKENS IN/OUT   COST  IN BASE
        greet     2          2       0          0            0       1.0  [  duration]  2.0k/340 (1 of 2 runs)  $0.07      0/2

        AGENT  RUNS  SUCCEEDED  FAILED  ESCALATED  INTERRUPTED  ATTEMPTS  MEDIAN/TOTAL  TOKENS IN/OUT   COST  IN BASE
        fx        1          1       0          0            0       1.0  [  duration]       2.0k/340  $0.07      0/1
        fy        1          1       0          0            0       1.0  [  duration]   not reported      -      0/1

        2 runs: 2 succeeded; 2 results, 0 in their base (0 merged, 0 landed), 0 delivered
        ");
    });
}

#[test]
fn no_runs_yet() {
    let repo = TestRepo::with_commit();
    let out = repo.run(&["stats"]);
    assert_status(&out, 0);
    assert_eq!(stdout(&out), "");
    assert!(
        support::stderr(&out).contains("no runs yet"),
        "{}",
        describe(&out)
    );
    let json = stats_json(&repo);
    assert_eq!(json["total"]["runs"], 0);
    assert_eq!(json["tasks"], serde_json::json!([]));
}
