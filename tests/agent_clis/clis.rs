//! Each CLI's [`Setup`]: the provider's variables that point it at the
//! scripted model, and its scripts of the shared cases, in its own tools.

use serde_json::json;

use super::Setup;
use crate::fake_model::{FakeModel, Turn};
use crate::support::TestRepo;

/// The check of the success case.
pub const CHECK: &str = "grep -q 'hello fixed' src/greet.txt";

/// `ls` and `sh test.sh` (a test command that is not a check), before editing.
fn explore(shell: fn(&str) -> Turn) -> Vec<Turn> {
    vec![shell("ls"), shell("sh test.sh")]
}

// ---------------------------------------------------------------------------
// Claude Code

fn claude_shell(cmd: &str) -> Turn {
    Turn::tool("Bash", json!({"command": cmd, "description": "run it"}))
}

fn claude_read(path: &str) -> Turn {
    Turn::tool("Read", json!({"file_path": format!("{{cwd}}/{path}")}))
}

fn claude_edit(path: &str, old: &str, new: &str) -> Turn {
    Turn::tool(
        "Edit",
        json!({"file_path": format!("{{cwd}}/{path}"), "old_string": old, "new_string": new}),
    )
}

pub fn claude() -> Setup {
    Setup {
        name: "claude",
        adapter: "claude",
        model: "claude-sonnet-4-5",
        args: vec![],
        env: |repo, server| {
            vec![
                ("ANTHROPIC_BASE_URL".into(), server.url()),
                ("ANTHROPIC_API_KEY".into(), "sk-ant-dummy".into()),
                (
                    "CLAUDE_CONFIG_DIR".into(),
                    repo.tmp.join("claude-config").display().to_string(),
                ),
            ]
        },
        tools_only: false,
        shell: Some(claude_shell),
        success: || {
            let mut t = explore(claude_shell);
            t.extend([
                claude_read("src/greet.txt"),
                claude_edit("src/greet.txt", "hello", "hello fixed"),
                claude_shell(CHECK),
                Turn::text("Changed the greeting."),
            ]);
            t
        },
        outside: || {
            vec![
                claude_read("README.md"),
                claude_edit("README.md", "# Project", "# Project (edited)"),
                Turn::text("Edited the README."),
            ]
        },
        retry: || {
            vec![
                claude_read("src/greet.txt"),
                claude_edit("src/greet.txt", "hello", "hello world"),
                Turn::text("First try."),
                claude_read("src/greet.txt"),
                claude_edit("src/greet.txt", "hello world", "hello fixed"),
                Turn::text("Changed the greeting after the feedback."),
            ]
        },
        narrow: &["--allowedTools", "acceptEdits"],
        not_narrow: &["bypassPermissions", "IS_SANDBOX=1"],
        narrow_refuses: true,
    }
}

// ---------------------------------------------------------------------------
// Codex

pub fn patch(path: &str, old: &str, new: &str) -> String {
    format!("*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n*** End Patch\n")
}

pub fn codex_env(repo: &TestRepo, server: &FakeModel) -> Vec<(String, String)> {
    let home = repo.tmp.join("codex-home");
    std::fs::create_dir_all(&home).expect("codex home");
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model_provider = \"fake\"\ncheck_for_update_on_startup = false\n\n\
             [analytics]\nenabled = false\n\n\
             [model_providers.fake]\nname = \"fake\"\nbase_url = \"{}\"\nwire_api = \"responses\"\n\
             env_key = \"OPENAI_API_KEY\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
            server.v1()
        ),
    )
    .expect("codex config");
    vec![
        ("CODEX_HOME".into(), home.display().to_string()),
        ("OPENAI_API_KEY".into(), "sk-dummy".into()),
    ]
}

pub fn codex_shell(cmd: &str) -> Turn {
    Turn::tool("exec_command", json!({"cmd": cmd, "workdir": "{cwd}"}))
}

pub fn codex() -> Setup {
    Setup {
        name: "codex",
        adapter: "codex",
        model: "gpt-5.5",
        // An option of `exec` that `exec resume` does not take: the user's
        // `args` must come before the subcommand.
        args: vec!["--add-dir", "/tmp"],
        env: codex_env,
        tools_only: false,
        shell: Some(codex_shell),
        success: || {
            let mut t = explore(codex_shell);
            t.extend([
                codex_shell("cat src/greet.txt"),
                Turn::custom(
                    "apply_patch",
                    &patch("src/greet.txt", "hello", "hello fixed"),
                ),
                codex_shell(CHECK),
                Turn::text("Changed the greeting."),
            ]);
            t
        },
        outside: || {
            vec![
                Turn::custom(
                    "apply_patch",
                    &patch("README.md", "# Project", "# Project (edited)"),
                ),
                Turn::text("Edited the README."),
            ]
        },
        retry: || {
            vec![
                Turn::custom(
                    "apply_patch",
                    &patch("src/greet.txt", "hello", "hello world"),
                ),
                Turn::text("First try."),
                Turn::custom(
                    "apply_patch",
                    &patch("src/greet.txt", "hello world", "hello fixed"),
                ),
                Turn::text("Changed the greeting after the feedback."),
            ]
        },
        narrow: &["workspace-write"],
        not_narrow: &["danger-full-access"],
        narrow_refuses: false,
    }
}

// ---------------------------------------------------------------------------
// aider

pub fn search_replace(path: &str, old: &str, new: &str, prose: &str) -> Turn {
    Turn::text(&format!(
        "{prose}\n\n{path}\n```\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n```\n"
    ))
}

pub fn aider_env(repo: &TestRepo, server: &FakeModel) -> Vec<(String, String)> {
    // A price list with the fake model: no download, and a cost to report.
    let caches = repo.home.join(".aider/caches");
    std::fs::create_dir_all(&caches).expect("aider caches");
    std::fs::write(
        caches.join("model_prices_and_context_window.json"),
        json!({"openai/fake": {"max_tokens": 4096, "max_input_tokens": 100000, "max_output_tokens": 4096,
            "input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002,
            "litellm_provider": "openai", "mode": "chat"}})
        .to_string(),
    )
    .expect("price list");
    vec![
        ("OPENAI_API_BASE".into(), server.v1()),
        ("OPENAI_API_KEY".into(), "sk-dummy".into()),
    ]
}

pub fn aider() -> Setup {
    Setup {
        name: "aider",
        adapter: "aider",
        model: "openai/fake",
        args: vec!["--edit-format", "diff"],
        env: aider_env,
        tools_only: false,
        shell: None,
        success: || {
            vec![search_replace(
                "src/greet.txt",
                "hello",
                "hello fixed",
                "Changed the greeting.",
            )]
        },
        outside: || {
            // aider first asks to add README.md to the chat (`--yes-always`
            // accepts) and sends the request again: the edit comes twice.
            let edit = || {
                search_replace(
                    "README.md",
                    "# Project",
                    "# Project (edited)",
                    "Edited the README.",
                )
            };
            vec![edit(), edit()]
        },
        retry: || {
            vec![
                search_replace("src/greet.txt", "hello", "hello world", "First try."),
                search_replace(
                    "src/greet.txt",
                    "hello world",
                    "hello fixed",
                    "Changed the greeting after the feedback.",
                ),
            ]
        },
        narrow: &["--no-suggest-shell-commands"],
        not_narrow: &[],
        narrow_refuses: false,
    }
}

// ---------------------------------------------------------------------------
// GitHub Copilot CLI (BYOK: an OpenAI-compatible endpoint, offline)

fn copilot_env(_repo: &TestRepo, server: &FakeModel) -> Vec<(String, String)> {
    [
        ("COPILOT_OFFLINE", "true".to_string()),
        ("COPILOT_PROVIDER_BASE_URL", server.v1()),
        ("COPILOT_PROVIDER_TYPE", "openai".to_string()),
        ("COPILOT_PROVIDER_API_KEY", "sk-dummy".to_string()),
        ("COPILOT_MODEL", "fake".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec()
}

fn copilot_shell(cmd: &str) -> Turn {
    Turn::tool("bash", json!({"command": cmd, "description": "run it"}))
}

fn copilot_edit(path: &str, old: &str, new: &str) -> Vec<Turn> {
    vec![
        Turn::tool("view", json!({"path": format!("{{cwd}}/{path}")})),
        Turn::tool(
            "edit",
            json!({"path": format!("{{cwd}}/{path}"), "old_str": old, "new_str": new}),
        ),
    ]
}

pub fn copilot() -> Setup {
    Setup {
        name: "copilot",
        adapter: "copilot",
        model: "fake",
        args: vec![],
        env: copilot_env,
        tools_only: true,
        shell: Some(copilot_shell),
        success: || {
            let mut t = explore(copilot_shell);
            t.extend(copilot_edit("src/greet.txt", "hello", "hello fixed"));
            t.extend([copilot_shell(CHECK), Turn::text("Changed the greeting.")]);
            t
        },
        outside: || {
            let mut t = copilot_edit("README.md", "# Project", "# Project (edited)");
            t.push(Turn::text("Edited the README."));
            t
        },
        retry: || {
            let mut t = copilot_edit("src/greet.txt", "hello", "hello world");
            t.push(Turn::text("First try."));
            t.extend(copilot_edit("src/greet.txt", "hello world", "hello fixed"));
            t.push(Turn::text("Changed the greeting after the feedback."));
            t
        },
        narrow: &[
            "--allow-tool=write",
            "--allow-tool=shell(grep -q 'hello fixed'",
        ],
        not_narrow: &["--allow-all"],
        narrow_refuses: true,
    }
}

// ---------------------------------------------------------------------------
// opencode (a provider through @ai-sdk/openai-compatible; `--pure`: no
// plugins from the npm registry)

fn opencode_env(repo: &TestRepo, server: &FakeModel) -> Vec<(String, String)> {
    let config = repo.tmp.join("opencode.json");
    let provider = json!({"provider": {"fake": {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Fake",
        "options": {"baseURL": server.v1(), "apiKey": "sk-dummy"},
        // $1 and $2 per million tokens: a cost to report.
        "models": {"fake": {"name": "fake", "cost": {"input": 1, "output": 2}}}
    }}});
    std::fs::write(&config, provider.to_string()).expect("opencode config");
    // opencode installs `@opencode-ai/plugin` into its config dir on every
    // start; offline, npm fails at once instead of asking the registry.
    std::fs::write(repo.home.join(".npmrc"), "offline=true\n").expect("npmrc");
    vec![
        ("OPENCODE_CONFIG".into(), config.display().to_string()),
        ("OPENCODE_DISABLE_MODELS_FETCH".into(), "1".into()),
    ]
}

fn opencode_shell(cmd: &str) -> Turn {
    Turn::tool("bash", json!({"command": cmd, "description": "run it"}))
}

fn opencode_edit(path: &str, old: &str, new: &str) -> Vec<Turn> {
    vec![
        Turn::tool("read", json!({"filePath": format!("{{cwd}}/{path}")})),
        Turn::tool(
            "edit",
            json!({"filePath": format!("{{cwd}}/{path}"), "oldString": old, "newString": new}),
        ),
    ]
}

pub fn opencode() -> Setup {
    Setup {
        name: "opencode",
        adapter: "opencode",
        model: "fake/fake",
        args: vec!["--pure"],
        env: opencode_env,
        tools_only: true,
        shell: Some(opencode_shell),
        success: || {
            let mut t = explore(opencode_shell);
            t.extend(opencode_edit("src/greet.txt", "hello", "hello fixed"));
            t.extend([opencode_shell(CHECK), Turn::text("Changed the greeting.")]);
            t
        },
        outside: || {
            let mut t = opencode_edit("README.md", "# Project", "# Project (edited)");
            t.push(Turn::text("Edited the README."));
            t
        },
        retry: || {
            let mut t = opencode_edit("src/greet.txt", "hello", "hello world");
            t.push(Turn::text("First try."));
            t.extend(opencode_edit("src/greet.txt", "hello world", "hello fixed"));
            t.push(Turn::text("Changed the greeting after the feedback."));
            t
        },
        narrow: &["OPENCODE_PERMISSION="],
        not_narrow: &[],
        narrow_refuses: true,
    }
}
