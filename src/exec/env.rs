//! The environment an agent (and a check) sees: an allowlist, never the
//! orchestrator's whole environment. Forge tokens never pass, whatever the
//! config says: git-agent pushes and talks to GitHub itself.

use std::collections::BTreeMap;

/// Variables every agent gets from the orchestrator's environment.
pub const BASE_ALLOWLIST: &[&str] = &[
    "PATH", "HOME", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME", "SHELL", "TZ",
];

pub use crate::spec::config::is_secret_forge_token;

/// Builds the complete environment for a child: the allowlist and the
/// agent's `pass_env` taken from `source`, then `extra` (which wins).
pub fn build(
    source: impl IntoIterator<Item = (String, String)>,
    pass_env: &[String],
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = BTreeMap::new();
    for (key, value) in source {
        let allowed = BASE_ALLOWLIST.contains(&key.as_str()) || pass_env.contains(&key);
        if allowed && !is_secret_forge_token(&key) {
            env.insert(key, value);
        }
    }
    env.entry("PATH".to_string())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".to_string());
    for (key, value) in extra {
        env.insert(key.clone(), value.clone());
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowlist_passes_and_tokens_never() {
        let source = [
            ("PATH", "/bin"),
            ("GITHUB_TOKEN", "ghp_secret"),
            ("GH_TOKEN", "x"),
            ("AWS_SECRET_ACCESS_KEY", "y"),
            ("ANTHROPIC_API_KEY", "z"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let env = build(
            source,
            &["ANTHROPIC_API_KEY".into(), "GITHUB_TOKEN".into()],
            &[("GIT_AGENT_RUN_ID".into(), "r1".into())],
        );
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["ANTHROPIC_API_KEY", "GIT_AGENT_RUN_ID", "PATH"]);
    }
}
