//! What `git agent validate` says beyond the files themselves, from the
//! repository and this machine: a `base:` that does not resolve (an
//! error), and warnings — a brief not committed, a script the config or a
//! check names that the base lacks, a write glob whose directory the base
//! does not have, an agent program not on PATH — with the lints of the
//! brief alone (`spec::lint`).

use std::path::Path;

use crate::git::Repo;
use crate::spec::brief::Brief;
use crate::spec::config::Config;
use crate::spec::diagnostic::Problem;
use crate::spec::yaml::{Node, Span};

use super::committed::{self, BriefState};

/// A valid brief to lint: as parsed, shown as, and its file's text.
pub(crate) struct Linted<'a> {
    pub brief: &'a Brief,
    pub display: &'a str,
    pub text: &'a str,
}

/// The problems found: the config's, and each brief's by its index.
#[derive(Default)]
pub(crate) struct Lints {
    pub config: Vec<Problem>,
    pub briefs: Vec<(usize, Problem)>,
}

/// Every lint of `briefs` and of the (valid) `config`, whose text is
/// `config_text` when it is checked too.
pub(crate) fn lints(
    root: &Path,
    config: &Config,
    config_text: Option<&str>,
    briefs: &[Linted<'_>],
) -> Lints {
    let mut out = Lints::default();
    for (i, b) in briefs.iter().enumerate() {
        out.briefs.extend(
            crate::spec::lint::brief(b.brief, b.text)
                .into_iter()
                .map(|p| (i, p)),
        );
    }
    let Ok(repo) = Repo::discover(root) else {
        return out;
    };
    let states = committed::brief_states(
        &repo,
        &briefs
            .iter()
            .map(|b| (Path::new(b.display), b.brief.blob_id.as_str()))
            .collect::<Vec<_>>(),
    );
    for (i, (b, state)) in briefs.iter().zip(states).enumerate() {
        let problems = in_repository(root, &repo, b, state);
        out.briefs.extend(problems.into_iter().map(|p| (i, p)));
    }
    if let (true, Some(text)) = (config.present, config_text) {
        out.config = config_lints(root, &repo, config, text, briefs);
    }
    out
}

/// What the repository says about one brief: its base, whether it is
/// committed, the scripts its checks name, its write globs.
fn in_repository(root: &Path, repo: &Repo, b: &Linted<'_>, state: BriefState) -> Vec<Problem> {
    let mut found = Vec::new();
    let tree_root = crate::spec::lint::frontmatter(b.text);
    let span = |path: &[&str]| {
        tree_root
            .as_ref()
            .map_or(Span::new(0, 0), |r| r.span_of(path))
    };
    let git = repo.open().ok();
    let base_problem = git
        .as_ref()
        .filter(|_| b.brief.raw.base.is_some())
        .and_then(|g| super::helper::base_problem(g, b.brief, b.text));
    let base_resolves = base_problem.is_none();
    found.extend(base_problem);
    if let Some(what) = committed::brief_advice(state) {
        found.push(
            Problem::warning(
                "brief::uncommitted",
                Span::new(0, 0),
                format!("the brief {what}"),
            )
            .label("this file")
            .help(committed::BRIEF_WHY),
        );
    }
    if !base_resolves {
        return found;
    }
    for (i, check) in b.brief.checks.iter().enumerate() {
        for path in committed::missing_from(root, repo, &b.brief.base, &check.run) {
            found.push(not_in_base(
                "brief::not-in-base",
                &path,
                span(&["checks", &i.to_string(), "run"]),
            ));
        }
    }
    let tree = git.as_ref().and_then(|g| {
        g.revparse_single(&b.brief.base)
            .and_then(|o| o.peel_to_tree())
            .ok()
    });
    if let Some(tree) = tree {
        for (i, glob) in b.brief.scope.write.patterns().iter().enumerate() {
            if let Some(dir) = missing_dir(&tree, glob) {
                found.push(
                    Problem::warning(
                        "brief::glob-matches-nothing",
                        span(&["scope", "write", &i.to_string()]),
                        format!(
                            "`{glob}` matches no file at the base (`{}`), and its directory `{dir}/` is not there",
                            b.brief.base
                        ),
                    )
                    .label("matches nothing")
                    .help("globs are relative to the repository root: check this one for a typo; if the run is to create the directory, this is fine"),
                );
            }
        }
    }
    found
}

/// The directory a write glob needs that `tree` lacks: the glob's literal
/// directory (a literal path's parent, unless the path is there itself).
fn missing_dir(tree: &git2::Tree<'_>, glob: &str) -> Option<String> {
    let prefix = crate::spec::scope::literal_prefix(glob);
    let dir = if prefix == glob {
        if tree.get_path(Path::new(glob)).is_ok() {
            return None;
        }
        glob.rsplit_once('/')?.0
    } else {
        prefix.trim_end_matches('/')
    };
    if dir.is_empty() {
        return None;
    }
    match tree.get_path(Path::new(dir)) {
        Ok(entry) if entry.kind() == Some(git2::ObjectType::Tree) => None,
        _ => Some(dir.to_string()),
    }
}

/// A file a command names that the base lacks.
fn not_in_base(code: &'static str, path: &Path, at: Span) -> Problem {
    Problem::warning(
        code,
        at,
        format!("`{}` is not in the committed tree", path.display()),
    )
    .label("named here")
    .help(committed::SCRIPT_WHY)
}

/// The config's agents: scripts they name that `HEAD` lacks, and the
/// programs of the agents the briefs use that are not on PATH.
fn config_lints(
    root: &Path,
    repo: &Repo,
    config: &Config,
    text: &str,
    briefs: &[Linted<'_>],
) -> Vec<Problem> {
    let Ok(node) = crate::spec::yaml::parse(text, 0) else {
        return Vec::new();
    };
    let at = |name: &str| command_span(&node, name);
    let mut found = Vec::new();
    for agent in config.agents.values() {
        for path in committed::missing_from(root, repo, "HEAD", &agent.command) {
            found.push(not_in_base("config::not-in-base", &path, at(&agent.name)));
        }
    }
    let mut used: Vec<&str> = briefs
        .iter()
        .filter_map(|b| config.pick_agent(b.brief.agent.as_deref()).ok())
        .map(|a| a.name.as_str())
        .collect();
    used.sort_unstable();
    used.dedup();
    let path = std::env::var("PATH").ok();
    for name in used {
        let agent = &config.agents[name];
        let Some(crate::agent::AgentError::NotInstalled {
            cli, program, hint, ..
        }) = crate::agent::missing_program(agent, root, path.as_deref())
        else {
            continue;
        };
        let install = if hint.is_empty() {
            String::new()
        } else {
            format!("install {cli} (`{hint}`), or ")
        };
        found.push(
            Problem::warning(
                "config::program-not-found",
                at(name),
                format!("`{program}`, the program of agent `{name}`, is not on PATH: runs with it would fail at once"),
            )
            .label("not found")
            .help(format!("{install}set `agents.{name}.command` to its path")),
        );
    }
    found
}

/// Where agent `name`'s command is written (its key when it is implied).
fn command_span(node: &Node, name: &str) -> Span {
    node.key_span(&["agents", name, "command"])
        .map(|_| node.span_of(&["agents", name, "command"]))
        .or_else(|| node.key_span(&["agents", name]))
        .unwrap_or(node.span)
}
