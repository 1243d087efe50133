//! Writing briefs and the agent config.

use std::path::{Path, PathBuf};

use super::TestRepo;

/// A scripted agent under `tests/fixtures/agents/` (or a copy of that
/// directory named by `GIT_AGENT_TEST_FIXTURES`, see [`super::bin`]).
pub fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("GIT_AGENT_TEST_FIXTURES") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/agents")
            .join(name),
    }
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
pub fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string encodes")
}

impl TestRepo {
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
        self.write(".agents/config.yaml", text);
    }

    /// Writes `.agents/tasks/<id>.md`.
    pub fn brief(&self, id: &str, brief: &Brief) {
        self.write(format!(".agents/tasks/{id}.md"), brief.render());
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
    pub max_turns: Option<u32>,
    pub max_cost_usd: Option<f64>,
    pub goal: String,
    /// `after:`: the tasks this one runs after.
    pub after: Vec<String>,
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
            max_turns: None,
            max_cost_usd: None,
            goal: "Make the scripted change.".into(),
            after: Vec::new(),
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
    /// Replaces the checks with this one.
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
    /// `after:`: runs after these tasks, from their results.
    pub fn after(mut self, tasks: &[&str]) -> Self {
        self.after = tasks.iter().map(|s| s.to_string()).collect();
        self
    }
    /// `escalate.max_turns`.
    pub fn max_turns(mut self, n: u32) -> Self {
        self.max_turns = Some(n);
        self
    }
    /// `escalate.max_cost_usd`.
    pub fn max_cost_usd(mut self, usd: f64) -> Self {
        self.max_cost_usd = Some(usd);
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
        if !self.after.is_empty() {
            y.push_str(&format!("after: {}\n", list(&self.after)));
        }
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
        if let Some(n) = self.max_turns {
            y.push_str(&format!("  max_turns: {n}\n"));
        }
        if let Some(usd) = self.max_cost_usd {
            y.push_str(&format!("  max_cost_usd: {usd}\n"));
        }
        y.push_str("---\n# Goal\n");
        y.push_str(&self.goal);
        y.push('\n');
        y
    }
}
