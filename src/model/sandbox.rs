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
    /// A private network namespace whose only way out is git-agent's
    /// proxy, which lets through only the allowed `host:port` pairs.
    Allowlist,
}

impl std::fmt::Display for NetworkPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetworkPolicy::Open => "open",
            NetworkPolicy::None => "none",
            NetworkPolicy::Allowlist => "allowlist",
        })
    }
}

/// One `host:port` the egress proxy lets through. The host is a name or an
/// address, or `*.example.com` for every name below `example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `host:port` (`[v6]:port` for IPv6 addresses); the host is
    /// kept lowercase.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| {
            format!("`{text}` has no port: write `host:port`, e.g. `api.anthropic.com:443`")
        })?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{port}` is not a port (1 to 65535) in `{text}`"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let usable = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !usable {
            return Err(format!(
                "`{host}` is not a host name or address in `{text}`"
            ));
        }
        Ok(Endpoint { host, port })
    }

    /// Whether a request for `host:port` is let through by this entry.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() && host.ends_with(&format!(".{domain}")),
            None => host == self.host,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
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
    /// What the egress proxy lets through (`network: {allow: [...]}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Unix sockets covered for the run (not in `sandbox.sockets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_sockets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_match() {
        let e = Endpoint::parse("API.Anthropic.com:443").expect("parse");
        assert!(e.allows("api.anthropic.com", 443));
        assert!(!e.allows("api.anthropic.com", 80));
        assert!(!e.allows("evil.api.anthropic.com", 443));
        let w = Endpoint::parse("*.example.com:443").expect("parse");
        assert!(w.allows("a.example.com", 443));
        assert!(!w.allows("example.com", 443));
        assert!(!w.allows("aexample.com", 443));
        let v6 = Endpoint::parse("[::1]:8080").expect("parse");
        assert!(v6.allows("[::1]", 8080));
        assert_eq!(v6.to_string(), "[::1]:8080");
        for bad in [
            "example.com",
            "example.com:0",
            "example.com:x",
            ":443",
            "a b:1",
            "x/y:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
