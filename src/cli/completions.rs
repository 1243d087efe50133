//! `git agent completions <shell>`: the shell's completion script on stdout.
//!
//! The scripts complete `git-agent …` and, through git's own completion,
//! `git agent …`: bash's git completion calls `_git_agent` (loading the
//! file named `git-agent` from bash-completion's directory for it), zsh's
//! `_git` calls `_git-agent`, and fish's git completion completes
//! `git agent …` as `git-agent …`.

use super::{exit, CliResult, Ctx};

/// Print a shell completion script: bash, zsh or fish
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The command name the scripts complete; `git agent` reaches it through
/// git's completion.
const NAME: &str = "git-agent";

/// For bash: git's completion (`git agent <TAB>`) calls `_git_agent` with
/// the words of the whole line; the generated function expects them to
/// start at `git-agent`.
const BASH_BRIDGE: &str = r#"
# `git agent <TAB>`: git's completion calls _git_agent; complete the words
# after `git` as `git-agent ...`.
_git_agent() {
    local i start=-1
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == agent ]]; then
            start=$i
            break
        fi
    done
    ((start >= 0)) || return 0
    local -a COMP_WORDS=("git-agent" "${COMP_WORDS[@]:start+1}")
    local COMP_CWORD=$((COMP_CWORD - start))
    _git__agent git-agent "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
}
"#;

pub fn exec(args: Args, _ctx: &Ctx) -> CliResult {
    super::print_out(&script(args.shell));
    Ok(exit::OK)
}

/// The completion script for `shell`.
fn script(shell: Shell) -> String {
    use clap_complete::shells;
    // Named before it is built, so that every subcommand's name derives
    // from it (the help's `git agent` has a space no script can name).
    let mut cmd = super::command().bin_name(NAME);
    let mut out = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(shells::Bash, &mut cmd, NAME, &mut out),
        Shell::Zsh => clap_complete::generate(shells::Zsh, &mut cmd, NAME, &mut out),
        Shell::Fish => clap_complete::generate(shells::Fish, &mut cmd, NAME, &mut out),
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if matches!(shell, Shell::Bash) {
        // clap_complete's bash script names a subcommand's state one way in
        // its loop (`git__agent__subcmd__run`) and another in the arms that
        // complete it (`git__subcmd__agent__subcmd__run`) when the program's
        // name has a hyphen (clap-rs/clap#6421): nothing after a subcommand
        // would complete. The arms are renamed to match the loop.
        text = text.replace("git__subcmd__agent", "git__agent");
        text.push_str(BASH_BRIDGE);
    }
    text
}
