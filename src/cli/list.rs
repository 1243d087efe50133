//! `git agent list`: the briefs of this repository.

use std::path::Path;

use serde::Serialize;

use super::{exit, print_json, CliError, CliResult, Ctx};
use crate::spec::brief::{self, Context};
use crate::spec::config::{self, Config};
use crate::spec::repo_files;

/// List the briefs: id, title, agent, write scope
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    id: String,
    title: String,
    agent: Option<String>,
    write: Vec<String>,
    valid: bool,
    path: String,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let (config, _) = config::load(&root).map_err(|e| {
        CliError::from_error(
            exit::USAGE,
            format!("could not read {}", config::CONFIG_PATH),
            &e,
        )
    })?;
    let rows = load_rows(&root, &config)?;
    let invalid = rows.iter().filter(|r| !r.valid).count();
    if args.json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        eprintln!(
            "no briefs in {}; create one with `git agent new <id>`",
            brief::TASKS_DIR
        );
    } else {
        print_table(&rows);
    }
    for nested in repo_files::nested_briefs(&root) {
        eprintln!(
            "warning: {} is not listed: briefs in subdirectories of {} are not read (move it up)",
            repo_files::display(&root, &nested),
            brief::TASKS_DIR
        );
    }
    Ok(if invalid > 0 { exit::USAGE } else { exit::OK })
}

/// A row for every brief in .agents/tasks, valid or not.
fn load_rows(root: &Path, config: &Config) -> CliResult<Vec<Row>> {
    let mut rows = Vec::new();
    for path in repo_files::list_briefs(root)
        .map_err(|e| CliError::from_error(exit::USAGE, "could not list .agents/tasks", &e))?
    {
        let display = repo_files::display(root, &path);
        let (parsed, _) =
            brief::load(&path, display.clone(), &Context::default()).map_err(|e| {
                CliError::from_error(exit::USAGE, format!("could not read {display}"), &e)
            })?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        rows.push(match parsed {
            Some(b) => Row {
                id: b.id.to_string(),
                title: b.title.clone(),
                agent: b.agent.clone().or_else(|| config.default_agent.clone()),
                write: b.scope.write.patterns().to_vec(),
                valid: true,
                path: display,
            },
            None => Row {
                id: stem,
                title: String::new(),
                agent: None,
                write: Vec::new(),
                valid: false,
                path: display,
            },
        });
    }
    Ok(rows)
}

/// The rows as a table with aligned columns.
fn print_table(rows: &[Row]) {
    let titles: Vec<String> = rows
        .iter()
        .map(|r| {
            if r.valid {
                r.title.chars().take(50).collect()
            } else {
                "(invalid: see git agent validate)".into()
            }
        })
        .collect();
    let id_w = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let title_w = titles
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let agent_w = rows
        .iter()
        .map(|r| r.agent.as_deref().unwrap_or("-").len())
        .max()
        .unwrap_or(5)
        .max(5);
    super::outln!(
        "{:id_w$}  {:title_w$}  {:agent_w$}  WRITE",
        "ID",
        "TITLE",
        "AGENT"
    );
    for (r, title) in rows.iter().zip(&titles) {
        let write = if r.write.is_empty() {
            "-".to_string()
        } else {
            r.write.join(", ")
        };
        let line = format!(
            "{:id_w$}  {:title_w$}  {:agent_w$}  {write}",
            r.id,
            title,
            r.agent.as_deref().unwrap_or("-"),
        );
        super::outln!("{}", line.trim_end());
    }
}
