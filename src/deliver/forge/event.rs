//! Slash commands in pull request and issue comments (GitHub's
//! `issue_comment` webhook payload, as a workflow receives it in
//! `$GITHUB_EVENT_PATH`): `/agent run <task>`, `/agent retry`, `/agent
//! review`.
//!
//! Who may command is decided from the payload alone: the comment must be
//! new (`action: created`), written by a person with write access
//! (`author_association` OWNER, MEMBER or COLLABORATOR), and never by a
//! bot or an app (the user's type, a `[bot]` login, a comment made through
//! a GitHub App — the pull request's own app included): a reply of ours
//! can never command us.

use serde_json::Value;

/// What a comment asks of git-agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlashCommand {
    /// `/agent run <task>`: run the task (delivered as its brief says).
    Run { task: String },
    /// `/agent retry`: run the task of this pull request again.
    Retry,
    /// `/agent review`: judge this pull request by its brief, post checks.
    Review,
}

/// A comment as the decision needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub action: String,
    pub id: u64,
    pub body: String,
    pub author: String,
    pub association: String,
    /// A bot or an app wrote it (or made the event).
    pub automated: bool,
    /// The issue or pull request it is on.
    pub number: u64,
    pub on_pull_request: bool,
}

/// What to do about a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not for git-agent, or from a bot: no answer at all.
    Ignore(String),
    /// From a person, but not to be done (no write access, a command that
    /// does not parse or does not apply here): said, not done.
    Refuse(String),
    Do(SlashCommand),
}

/// Write access, as `author_association` says it.
const TRUSTED: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

/// The comment of an `issue_comment` payload.
pub fn parse(event: &Value) -> Result<Comment, String> {
    let comment = event
        .get("comment")
        .ok_or("the event has no `comment`: not an issue_comment event")?;
    let issue = event.get("issue").ok_or("the event has no `issue`")?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let is_bot = |user: &Value| {
        user["type"].as_str() == Some("Bot")
            || user["login"].as_str().is_some_and(|l| l.ends_with("[bot]"))
    };
    let via_app = comment
        .get("performed_via_github_app")
        .is_some_and(|a| !a.is_null());
    Ok(Comment {
        action: text(&event["action"]),
        id: comment["id"].as_u64().ok_or("the comment has no id")?,
        body: text(&comment["body"]),
        author: text(&comment["user"]["login"]),
        association: text(&comment["author_association"]),
        automated: via_app || is_bot(&comment["user"]) || is_bot(&event["sender"]),
        number: issue["number"].as_u64().ok_or("the issue has no number")?,
        on_pull_request: issue.get("pull_request").is_some_and(|p| !p.is_null()),
    })
}

/// The `/agent` line of a comment: `None` when there is none, else the
/// command or why it does not parse.
pub fn command(body: &str) -> Option<Result<SlashCommand, String>> {
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| *l == "/agent" || l.starts_with("/agent "))?;
    let words: Vec<&str> = line.split_whitespace().skip(1).collect();
    Some(match words.as_slice() {
        ["run", task] => Ok(SlashCommand::Run { task: task.to_string() }),
        ["retry"] => Ok(SlashCommand::Retry),
        ["review"] => Ok(SlashCommand::Review),
        _ => Err(format!(
            "`{line}` is not a command git-agent knows: `/agent run <task>`, `/agent retry` or `/agent review`"
        )),
    })
}

/// Whether and what to do about `comment`.
pub fn decide(comment: &Comment) -> Decision {
    if comment.action != "created" {
        return Decision::Ignore(format!("the comment was {}, not created", comment.action));
    }
    let Some(asked) = command(&comment.body) else {
        return Decision::Ignore("the comment has no `/agent` command".into());
    };
    if comment.automated {
        return Decision::Ignore(format!(
            "`{}` is a bot or an app: its commands are not taken",
            comment.author
        ));
    }
    if !TRUSTED.contains(&comment.association.as_str()) {
        return Decision::Refuse(format!(
            "git-agent takes commands only from people with write access to the repository (owners, members, collaborators); @{} is {}",
            comment.author,
            comment.association.to_lowercase().replace('_', " ")
        ));
    }
    match asked {
        Err(usage) => Decision::Refuse(usage),
        Ok(SlashCommand::Run { task }) if crate::spec::brief::TaskId::parse(&task).is_err() => {
            Decision::Refuse(format!("`{task}` is not a task id (a brief's file name without `.md`)"))
        }
        Ok(SlashCommand::Retry | SlashCommand::Review) if !comment.on_pull_request => Decision::Refuse(
            "`/agent retry` and `/agent review` apply to pull requests; on an issue, say `/agent run <task>`".into(),
        ),
        Ok(cmd) => Decision::Do(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_from_their_own_line() {
        assert_eq!(command("thanks!"), None);
        assert_eq!(
            command("ok\n  /agent run retry-http  \nbye"),
            Some(Ok(SlashCommand::Run {
                task: "retry-http".into()
            }))
        );
        assert_eq!(command("/agent retry"), Some(Ok(SlashCommand::Retry)));
        assert!(matches!(command("/agent"), Some(Err(_))));
        assert!(matches!(command("/agent run a b"), Some(Err(_))));
        assert_eq!(command("see /agent run x"), None, "only a line of its own");
        assert_eq!(command("/agentx run y"), None);
    }
}
