//! The command line: argument parsing and dispatch. One file per subcommand.

mod background;
mod chain;
mod clean;
mod comment;
mod committed;
mod completions;
mod decide;
mod deliver;
mod demo;
mod demo_repo;
mod diff;
mod error;
mod helper;
mod init;
mod land;
mod lint;
mod list;
mod log;
mod man;
mod new;
mod plan;
mod progress;
mod report;
mod review;
mod rules;
mod run;
mod schema;
mod stats;
mod status;
mod stop;
mod supervise;
mod terminal;
mod validate;
mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{exit, CliError, CliResult};

/// Run coding agents in the background the way CI runs jobs
#[derive(Debug, Parser)]
#[command(name = "git-agent", bin_name = "git agent", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success, 1 a run or its delivery failed, 2 bad input, 3 escalated, 130 interrupted.\nLogs: set GIT_AGENT_LOG=debug (an env-filter) for tracing on stderr."
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
    Plan(plan::Args),
    Run(run::Args),
    Review(review::Args),
    Status(status::Args),
    Watch(watch::Args),
    Stop(stop::Args),
    Supervise(supervise::Args),
    Stats(stats::Args),
    Report(report::Args),
    Log(log::Args),
    Diff(diff::Args),
    Clean(clean::Args),
    Decide(decide::Args),
    Deliver(deliver::Args),
    Land(land::Args),
    Comment(comment::Args),
    Schema(schema::Args),
    Man(man::Args),
    Completions(completions::Args),
}

/// The whole command line as clap describes it (for the manual and the
/// completion scripts).
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// What every subcommand gets.
pub struct Ctx {
    pub cwd: PathBuf,
    /// Whether stderr is a terminal (colors, progress bars).
    pub stderr_tty: bool,
}

impl Ctx {
    pub fn root(&self) -> CliResult<PathBuf> {
        crate::spec::repo_files::find_root(&self.cwd).map_err(|m| {
            CliError::usage(m.to_string())
                .hint("run git agent inside a git repository, or pass -C <dir>")
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
    if ends_on_a_closed_stdout(&cli.command) {
        restore_sigpipe();
    }
    let cwd = match cli.dir.clone() {
        Some(dir) => dir,
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let ctx = Ctx {
        cwd,
        stderr_tty: std::io::stderr().is_terminal(),
    };
    let code = match dispatch(cli.command, &ctx) {
        Ok(code) => code,
        Err(err) => {
            if !err.reported {
                eprintln!("{}", terminal::clean(&err.to_string()));
            }
            err.exit
        }
    };
    match output_failure() {
        Some(said) => {
            eprintln!("{said}");
            ExitCode::from(code.max(exit::RUN_FAILED))
        }
        None => ExitCode::from(code),
    }
}

fn dispatch(command: Command, ctx: &Ctx) -> CliResult {
    match command {
        Command::Demo(args) => demo::exec(args, ctx),
        Command::Plan(args) => plan::exec(args, ctx),
        Command::Run(args) => run::exec(args, ctx),
        Command::Review(args) => review::exec(args, ctx),
        Command::Status(args) => status::exec(args, ctx),
        Command::Watch(args) => watch::exec(args, ctx),
        Command::Stop(args) => stop::exec(args, ctx),
        Command::Supervise(args) => supervise::exec(args, ctx),
        Command::Stats(args) => stats::exec(args, ctx),
        Command::Report(args) => report::exec(args, ctx),
        Command::Log(args) => log::exec(args, ctx),
        Command::Diff(args) => diff::exec(args, ctx),
        Command::Clean(args) => clean::exec(args, ctx),
        Command::Decide(args) => decide::exec(args, ctx),
        Command::Deliver(args) => deliver::exec(args, ctx),
        Command::Land(args) => land::exec(args, ctx),
        Command::Comment(args) => comment::exec(args, ctx),
        Command::Init(args) => init::exec(args, ctx),
        Command::New(args) => new::exec(args, ctx),
        Command::Validate(args) => validate::exec(args, ctx),
        Command::List(args) => list::exec(args, ctx),
        Command::Schema(args) => schema::exec(args, ctx),
        Command::Man(args) => man::exec(args, ctx),
        Command::Completions(args) => completions::exec(args, ctx),
    }
}

/// Whether a closed stdout may end `command` at once (SIGPIPE), like other
/// Unix tools. Not for the commands that drive agents and git: they write
/// to the stdin of git children, which may exit before reading it (that
/// must be an EPIPE error, not the death of the orchestrator halfway
/// through a run, with its worktree and agents left behind).
fn ends_on_a_closed_stdout(command: &Command) -> bool {
    !matches!(
        command,
        Command::Run(_)
            | Command::Supervise(_)
            | Command::Review(_)
            | Command::Demo(_)
            | Command::Clean(_)
            | Command::Deliver(_)
            | Command::Land(_)
            | Command::Comment(_)
    )
}

/// Rust ignores SIGPIPE at startup, so a write to a closed pipe fails with
/// EPIPE and `println!` panics (`git agent schema | head -1`). Restores the
/// default action: the process ends quietly, like `cat` or `grep` would.
fn restore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: this runs in `main` before any thread of ours is started (and
    // changing a disposition is process-wide and atomic anyway), and it
    // installs the default action, not a handler: no code of ours runs on
    // the signal, so nothing needs to be async-signal-safe. Children
    // spawned later get SIG_DFL either way (std resets it before exec).
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
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
    // JSON is data: its strings are escaped by the encoder, not cleaned.
    write_stdout(format!("{text}\n").as_bytes());
    Ok(())
}

/// Writes results to stdout, without terminal control (see [`terminal`]).
pub(crate) fn print_out(text: &str) {
    write_stdout(terminal::clean(text).as_bytes());
}

/// Terminal control of git-agent's own (a constant, never text of a run)
/// on stdout, as it is.
pub(crate) fn print_control(sequence: &'static str) {
    write_stdout(sequence.as_bytes());
}

/// A line of results on stdout, as [`print_out`] writes it.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// The first error writing results to stdout, other than a closed pipe.
static OUTPUT_ERROR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Every write of results goes here. A closed stdout (`| head`) is not an
/// error (for the commands that keep SIGPIPE ignored: a run must finish its
/// cleanup); any other failure (a full disk, an I/O error) is remembered,
/// and the command then says so and fails ([`output_failure`]) — results
/// are never lost without a word.
fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = OUTPUT_ERROR.set(e.to_string());
        }
    }
}

/// The error that lost results, if any, as the command's last word.
fn output_failure() -> Option<String> {
    OUTPUT_ERROR
        .get()
        .map(|e| format!("error: could not write the results to stdout: {e}"))
}

/// The engine's notices on stderr as warnings, each message once per process.
pub(crate) fn stderr_notice() -> crate::engine::run::Notice {
    static SHOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    std::sync::Arc::new(|message: &str| {
        let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
        if !shown.iter().any(|m| m == message) {
            shown.push(message.to_string());
            eprintln!("warning: {message}");
        }
    })
}

/// What the first Ctrl-C means, said once it is pressed.
pub(crate) fn announce_stopping() {
    eprintln!("stopping: runs get SIGTERM and a grace period; press Ctrl-C again to kill them now");
}
