//! The confinement a run had, as recorded in its events and review reports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether the kernel confined a run's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// The Landlock ruleset was applied.
    Landlock,
    /// The kernel could not confine (`sandbox.mode: auto` ran unconfined).
    None,
    /// `sandbox.mode: off` in the config.
    Off,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Landlock => "landlock",
            Enforcement::None => "none",
            Enforcement::Off => "off",
        }
    }
}

impl std::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The network agents and checks see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPolicy {
    /// The host's network (hosted agents need their API).
    #[default]
    Open,
    /// A private network namespace with only loopback.
    None,
}

impl std::fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetworkPolicy::Open => "open",
            NetworkPolicy::None => "none",
        })
    }
}

/// The effective policy, as recorded in the run's events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Effective {
    pub enforcement: Enforcement,
    /// The kernel's Landlock ABI version (0: unsupported).
    pub landlock_abi: i32,
    pub network: NetworkPolicy,
    /// Every path the agent may write.
    pub writable: Vec<String>,
    pub read_deny: Vec<String>,
    /// Processes of the run live in their own user namespace (the sweep
    /// finds them by it).
    pub user_namespace: bool,
    /// Each agent and check ran as the only tree of its own PID namespace:
    /// nothing of it outlived it, nor git-agent.
    #[serde(default)]
    pub pid_namespace: bool,
    /// Each step saw the filesystem read-only outside its writable places
    /// (a mount namespace): no metadata changes, links or sockets there.
    #[serde(default)]
    pub read_only_root: bool,
    /// Unix sockets covered for the run (not in `sandbox.sockets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_sockets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
