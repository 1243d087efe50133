//! `git agent deliver`: push a finished run and open or update its pull
//! request, alone (after a delivery failure, or for a run that made a branch).

use super::{CliError, CliResult, Ctx};
use crate::model::delivery::Deliver;

/// Push a finished run's branch and notes; open or update its pull request
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run id (or unique prefix) or a task id (its latest run)
    pub run: String,
    /// How to deliver when the run's brief asked only for a branch
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Print the delivery record as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Push,
    Pr,
    DraftPr,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let store = super::helper::store(ctx)?;
    let record = store
        .resolve(&args.run)
        .map_err(|m| CliError::usage(m).hint("list runs with `git agent status`"))?;
    let mode = args.mode.map(|mode| match mode {
        Mode::Push => Deliver::Push,
        Mode::Pr => Deliver::Pr,
        Mode::DraftPr => Deliver::DraftPr,
    });
    super::helper::deliver(ctx, &store, record, mode, args.json)
}
