//! `commit:` in the config: whose name git-agent's commits carry.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::diagnostic::Problem;
use crate::spec::yaml::Node;

/// `commit: {author: "Name <email>"}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommit {
    /// The author of the commits git-agent makes, `Name <email>` (default:
    /// git-agent itself). The committer stays git-agent, and a
    /// `Co-authored-by:` trailer names the agent.
    #[serde(default)]
    pub author: Option<String>,
}

/// A name and an email, as git writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Identity {
    /// `Name <email>`: a name, and an email in angle brackets at the end.
    pub fn parse(text: &str) -> Option<Identity> {
        let text = text.trim();
        let (name, rest) = text.strip_suffix('>')?.rsplit_once('<')?;
        let (name, email) = (name.trim(), rest.trim());
        let clean = |s: &str| !s.is_empty() && !s.contains(['<', '>', '\n', '\0']);
        (clean(name) && clean(email) && email.contains('@')).then(|| Identity {
            name: name.to_string(),
            email: email.to_string(),
        })
    }
}

/// The validated `commit:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitConfig {
    pub author: Option<Identity>,
}

/// The validated section: an author, when given, is `Name <email>`.
pub fn validate(raw: Option<&RawCommit>, node: &Node, problems: &mut Vec<Problem>) -> CommitConfig {
    let Some(text) = raw.and_then(|r| r.author.as_deref()) else {
        return CommitConfig::default();
    };
    let author = Identity::parse(text);
    if author.is_none() {
        problems.push(
            Problem::error(
                "config::invalid-value",
                node.span_of(&["commit", "author"]),
                format!("`commit.author` must be `Name <email>`, not `{text}`"),
            )
            .label("not `Name <email>`")
            .help("e.g. `author: \"Ada Lovelace <ada@example.com>\"`"),
        );
    }
    CommitConfig { author }
}

#[cfg(test)]
mod tests {
    use super::Identity;

    #[test]
    fn an_identity_is_a_name_and_an_email_in_brackets() {
        assert_eq!(
            Identity::parse(" Ada Lovelace <ada@example.com> "),
            Some(Identity {
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into()
            })
        );
        for bad in [
            "ada@example.com",
            "<ada@example.com>",
            "Ada <>",
            "Ada <ada>",
            "A <b@c> x",
        ] {
            assert_eq!(Identity::parse(bad), None, "{bad}");
        }
    }
}
