//! The `git-agent` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    git_agent::cli::main()
}
