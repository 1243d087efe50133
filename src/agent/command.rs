//! The `command` adapter: any program, run as `sh -c '<command> "$@"'`.
//! It has no event stream, so git-agent reports nothing of what it did
//! beyond its exit and the change it left.

use std::path::{Path, PathBuf};

use super::{AgentCli, AgentError, Context, StreamParser, Var};
use crate::spec::config::Agent;

/// Any program.
pub struct Command;

impl AgentCli for Command {
    fn name(&self) -> &'static str {
        "the command"
    }

    fn install_hint(&self) -> &'static str {
        ""
    }

    fn args(&self, _agent: &Agent, _cx: &Context<'_>) -> Result<Vec<String>, AgentError> {
        Ok(Vec::new())
    }

    fn fixed_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    fn provider_env(&self) -> &'static [&'static str] {
        &[]
    }

    fn state_paths(
        &self,
        _var: Var<'_>,
        _in_home: &dyn Fn(&str) -> Option<PathBuf>,
    ) -> (Vec<Option<PathBuf>>, Vec<Option<PathBuf>>) {
        (Vec::new(), Vec::new())
    }

    fn parser(&self, _worktree: &Path) -> Option<Box<dyn StreamParser>> {
        None
    }
}
