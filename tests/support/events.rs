//! A run's record: its events and its Markdown decision log.

use std::path::PathBuf;

use serde_json::Value;

use super::TestRepo;

impl TestRepo {
    /// The run directory of a run id.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(".git/agent/runs").join(run_id)
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
