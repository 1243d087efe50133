//! The command line: argument parsing and dispatch. One file per subcommand.

mod clean;
mod decide;
mod demo;
mod error;
mod init;
mod list;
mod log;
mod new;
mod progress;
mod run;
mod schema;
mod status;
mod validate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{exit, CliError, CliResult};

/// Run coding agents in the background the way CI runs jobs
#[derive(Debug, Parser)]
#[command(name = "git-agent", bin_name = "git agent", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 a run failed, 2 bad input or usage, 3 a run escalated, 130 interrupted.\nLogs: set GIT_AGENT_LOG=debug (an env-filter) for tracing on stderr."
)]
pub struct Cli {
    /// Run as if started in this directory
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Demo(demo::Args),
    Init(init::Args),
    New(new::Args),
    Validate(validate::Args),
    List(list::Args),
    Run(run::Args),
    Status(status::Args),
    Log(log::Args),
    Clean(clean::Args),
    Decide(decide::Args),
    Schema(schema::Args),
}

/// What every subcommand gets.
pub struct Ctx {
    pub cwd: PathBuf,
    /// Whether stderr is a terminal (colors, progress bars).
    pub stderr_tty: bool,
}

impl Ctx {
    pub fn root(&self) -> CliResult<PathBuf> {
        crate::repo_files::find_root(&self.cwd).map_err(|m| {
            CliError::usage(m).hint("run git agent inside a git repository, or pass -C <dir>")
        })
    }
}

pub fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            // Printing help or the usage error; nothing useful to do if it fails.
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    let cwd = match cli.dir.clone() {
        Some(dir) => dir,
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let ctx = Ctx {
        cwd,
        stderr_tty: std::io::stderr().is_terminal(),
    };
    match dispatch(cli.command, &ctx) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if !err.reported {
                eprintln!("{err}");
            }
            ExitCode::from(err.exit)
        }
    }
}

fn dispatch(command: Command, ctx: &Ctx) -> CliResult {
    match command {
        Command::Demo(args) => demo::exec(args, ctx),
        Command::Run(args) => run::exec(args, ctx),
        Command::Status(args) => status::exec(args, ctx),
        Command::Log(args) => log::exec(args, ctx),
        Command::Clean(args) => clean::exec(args, ctx),
        Command::Decide(args) => decide::exec(args, ctx),
        Command::Init(args) => init::exec(args, ctx),
        Command::New(args) => new::exec(args, ctx),
        Command::Validate(args) => validate::exec(args, ctx),
        Command::List(args) => list::exec(args, ctx),
        Command::Schema(args) => schema::exec(args, ctx),
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GIT_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints a JSON value on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("could not encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
