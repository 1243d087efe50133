//! `git agent init`: write `.agents/config.yaml` and an example brief.

use super::helper::write_new;
use super::{exit, CliError, CliResult, Ctx};
use crate::spec::config;
use crate::spec::repo_files;
use crate::spec::templates;

/// Write .agents/config.yaml and an example brief (never overwrites)
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let config_path = root.join(config::CONFIG_PATH);
    let example = repo_files::brief_path(&root, "example");
    if config_path.exists() {
        eprintln!(
            "already set up: {} exists (init never overwrites it); write a brief with `git agent new <id>`, check them with `git agent validate`",
            config::CONFIG_PATH
        );
        return Ok(exit::OK);
    }
    if example.exists() {
        return Err(CliError::usage(format!(
            "{} already exists; init never overwrites",
            repo_files::display(&root, &example)
        ))
        .hint("edit it, or remove it first to start over"));
    }
    let brief = templates::brief(
        "example",
        "Describe the change in one line",
        &["src/**".to_string()],
        "echo replace me with the command that proves the change works",
    );
    for (path, text) in [
        (&config_path, templates::CONFIG),
        (&example, brief.as_str()),
    ] {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                CliError::from_error(
                    exit::USAGE,
                    format!("could not create {}", dir.display()),
                    &e,
                )
            })?;
        }
        write_new(path, text).map_err(|e| {
            CliError::from_error(
                exit::USAGE,
                format!("could not write {}", path.display()),
                &e,
            )
        })?;
        super::outln!("created {}", repo_files::display(&root, path));
    }
    eprintln!("next: edit the agents in {}, write a brief with `git agent new <id>`, then `git agent run <id>`", config::CONFIG_PATH);
    Ok(exit::OK)
}
