//! `git agent schema`: print the JSON schema of briefs or the config.

use super::{print_json, CliResult, Ctx};

/// Print the JSON schema of brief frontmatter or of the config, for editors
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which schema to print
    #[arg(value_enum, default_value = "brief")]
    pub which: Which,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Which {
    Brief,
    Config,
}

pub fn exec(args: Args, _ctx: &Ctx) -> CliResult {
    match args.which {
        Which::Brief => print_json(crate::spec::brief::schema())?,
        Which::Config => print_json(crate::spec::config::schema())?,
    }
    Ok(super::exit::OK)
}
