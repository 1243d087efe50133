//! `git agent new <id>`: a brief from a template that validates as written.

use super::{exit, CliError, CliResult, Ctx};
use crate::spec::brief::{suggest_id, TaskId, TASKS_DIR};
use crate::spec::repo_files;
use crate::spec::scope;
use crate::spec::templates;

/// Create .agents/tasks/<id>.md from a template
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task id: lowercase letters, digits, `-` and `_` (the file name)
    pub id: String,
    /// The brief's title
    #[arg(long, short)]
    pub title: Option<String>,
    /// A glob the run may change (repeatable)
    #[arg(
        long = "write",
        short = 'w',
        value_name = "GLOB",
        default_value = "src/**"
    )]
    pub write: Vec<String>,
    /// A command that decides success (repeatable: every one must pass)
    #[arg(long, value_name = "COMMAND", default_value = "make test")]
    pub check: Vec<String>,
}

pub fn exec(args: Args, ctx: &Ctx) -> CliResult {
    let root = ctx.root()?;
    let id = TaskId::parse(&args.id).map_err(|m| {
        CliError::usage(m.to_string()).hint(format!(
            "for example: git agent new {}",
            suggest_id(&args.id)
        ))
    })?;
    for glob in &args.write {
        scope::compile(glob).map_err(|m| CliError::usage(format!("invalid glob `{glob}`: {m}")))?;
    }
    let path = repo_files::brief_path(&root, id.as_str());
    if path.exists() {
        return Err(CliError::usage(format!(
            "{} already exists",
            repo_files::display(&root, &path)
        ))
        .hint("pick another id, or edit the existing brief"));
    }
    let title = args
        .title
        .unwrap_or_else(|| id.as_str().replace(['-', '_'], " "));
    let text = templates::brief_with_checks(id.as_str(), &title, &args.write, &args.check);
    std::fs::create_dir_all(root.join(TASKS_DIR)).map_err(|e| {
        CliError::from_error(exit::USAGE, format!("could not create {TASKS_DIR}"), &e)
    })?;
    super::helper::write_new(&path, &text).map_err(|e| {
        CliError::from_error(
            exit::USAGE,
            format!("could not write {}", path.display()),
            &e,
        )
    })?;
    super::outln!("{}", repo_files::display(&root, &path));
    eprintln!("edit the goal and checks, then: git agent validate && git agent run {id}");
    Ok(exit::OK)
}
