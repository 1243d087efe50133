//! `notify:` in the config: what happens when a run ends, so that a person
//! who started it and went away learns it is done.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::diagnostic::Problem;
use crate::spec::yaml::Node;

/// `notify: "<command>"`, or the long form.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawNotify {
    Command(String),
    Full(RawNotifyFull),
}

/// `notify: {command, desktop, bell}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotifyFull {
    /// A shell command run when each run ends, with `GIT_AGENT_RUN_ID`,
    /// `GIT_AGENT_TASK`, `GIT_AGENT_OUTCOME` and `GIT_AGENT_LOG` (the
    /// decision log, Markdown) in its environment, e.g.
    /// `notify-send "$GIT_AGENT_TASK: $GIT_AGENT_OUTCOME"`.
    #[serde(default)]
    pub command: Option<String>,
    /// A desktop notification through `notify-send` when it is installed.
    #[serde(default)]
    pub desktop: bool,
    /// A terminal bell when a foreground run ends.
    #[serde(default)]
    pub bell: bool,
}

/// The validated `notify:` section; the default does nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    pub command: Option<String>,
    pub desktop: bool,
    pub bell: bool,
}

impl Notify {
    pub fn from_raw(raw: Option<&RawNotify>) -> Notify {
        match raw {
            None => Notify::default(),
            Some(RawNotify::Command(command)) => Notify {
                command: Some(command.clone()),
                ..Notify::default()
            },
            Some(RawNotify::Full(full)) => Notify {
                command: full.command.clone(),
                desktop: full.desktop,
                bell: full.bell,
            },
        }
    }

    /// Whether anything runs when a run ends (the bell is the CLI's).
    pub fn runs_something(&self) -> bool {
        self.command.is_some() || self.desktop
    }
}

/// The validated section: a command, when given, is not empty.
pub fn validate(raw: Option<&RawNotify>, node: &Node, problems: &mut Vec<Problem>) -> Notify {
    let notify = Notify::from_raw(raw);
    if notify
        .command
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        problems.push(
            Problem::error(
                "config::invalid-value",
                node.span_of(&["notify"]),
                "`notify` names an empty command",
            )
            .help("give a shell command, e.g. `notify: 'notify-send \"$GIT_AGENT_TASK: $GIT_AGENT_OUTCOME\"'`, or remove the key"),
        );
    }
    notify
}
