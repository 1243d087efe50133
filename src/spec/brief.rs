//! Task briefs: `.agents/tasks/<id>.md`, YAML frontmatter + Markdown body.
//!
//! Parsing goes raw → validated: the frontmatter is checked structurally
//! against the JSON schema generated from [`RawBrief`] (every unknown key and
//! wrong type, each with its span), decoded into the raw serde types, then
//! validated into a [`Brief`] whose globs are compiled and durations parsed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::diagnostic::{did_you_mean, duration_message, FileReport, Problem};
use crate::spec::duration;
use crate::spec::schema;
use crate::spec::scope::{self, GlobList, WriteScope};
use crate::spec::yaml::{self, Node, Span, Value};

/// Where briefs live, relative to the repository root.
pub const TASKS_DIR: &str = ".agents/tasks";

/// Defaults that a brief may leave out.
pub const DEFAULT_ATTEMPTS: u32 = 2;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const MAX_ATTEMPTS: u32 = 20;

// ---------------------------------------------------------------------------
// Raw serde types: exactly what may be written in the frontmatter.

/// The frontmatter of a task brief (`.agents/tasks/<id>.md`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "git-agent task brief frontmatter")]
pub struct RawBrief {
    /// One line that says what the run does; the commit and PR title.
    pub title: String,
    /// An agent name from `.agents/config.yaml` (default: its `default_agent`).
    #[serde(default)]
    pub agent: Option<String>,
    /// The ref the run starts from (default: `HEAD`). Resolved once, recorded.
    #[serde(default)]
    pub base: Option<String>,
    /// What the run may change.
    pub scope: RawScope,
    /// The success criteria: every check must pass.
    pub checks: Vec<RawCheck>,
    /// When to stop and hand back to a human.
    #[serde(default)]
    pub escalate: Option<RawEscalate>,
    /// How to deliver the result.
    #[serde(default)]
    pub output: Option<RawOutput>,
    /// Setup steps of this brief, run after the config's `workspace.setup`.
    #[serde(default)]
    pub setup: Vec<crate::spec::workspace::RawSetupStep>,
    /// Tasks this one runs after: the run starts from their results (not
    /// `base`) and its pull request stacks on theirs until they land.
    #[serde(default)]
    pub after: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    /// Globs of the paths the run may change (required, non-empty). `*` never crosses `/`.
    pub write: Vec<String>,
    /// Globs the run must never change, even where `write` matches.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Globs to materialize in the worktree (sparse checkout); the write scope is always included.
    #[serde(default)]
    pub read: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// Short name shown in logs and as the PR check name.
    pub name: String,
    /// Shell command run in the worktree; the check passes when it exits 0.
    pub run: String,
    /// Wall-clock limit for this check, e.g. `90s`, `10m` (default 10m).
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEscalate {
    /// Agent attempts while checks fail (default 2).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub attempts: Option<u32>,
    /// Wall clock for the whole run, e.g. `20m` (default 30m).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Escalate when the change adds + removes more lines than this.
    #[serde(default)]
    pub max_changed_lines: Option<u64>,
    /// In scope, but a human must look when any of these globs changes.
    #[serde(default)]
    pub paths: Vec<String>,
    /// What to do with changes outside the scope (default `escalate`).
    #[serde(default)]
    pub on_scope_violation: Option<OnScopeViolation>,
    /// Stop the agent after this many model turns (agents that report turns).
    #[serde(default)]
    pub max_turns: Option<u32>,
    /// Stop the agent when its reported cost exceeds this many US dollars.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
    /// How an escalated run is handed to a human when the brief delivers a
    /// pull request: `draft-pr` (default) or `issue` (no pull request; an
    /// issue carrying the decision log).
    #[serde(default)]
    pub fallback: Option<EscalateFallback>,
}

/// What to do when the agent changed paths outside its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnScopeViolation {
    /// Stop and hand back to a human; out-of-scope changes are never committed.
    #[default]
    Escalate,
    /// Restore the out-of-scope paths, log it, and go on.
    Revert,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// `branch` (default), `push`, `pr` or `draft-pr`.
    #[serde(default)]
    pub deliver: Option<Deliver>,
    /// Branch to write (default `agent/<id>`).
    #[serde(default)]
    pub branch: Option<String>,
    /// Labels for the pull request.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Reviewers to request on the pull request.
    #[serde(default)]
    pub reviewers: Vec<String>,
}

pub use crate::model::delivery::{Deliver, EscalateFallback};

/// The JSON schema of the brief frontmatter, generated once.
pub fn schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(RawBrief)).expect("a generated schema is JSON")
    })
}

// ---------------------------------------------------------------------------
// Validated domain types.

/// Why a task id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskIdError {
    #[error("the task id is empty")]
    Empty,
    #[error("the task id `{0}` is longer than 64 characters")]
    TooLong(String),
    #[error("the task id `{0}` must start with a lowercase letter or digit")]
    BadStart(String),
    #[error("the task id `{id}` contains `{ch}`; ids use lowercase letters, digits, `-` and `_`")]
    BadChar { id: String, ch: String },
}

/// A validated task id: the file stem, safe in branch names and paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TaskId(String);

impl TaskId {
    pub fn parse(s: &str) -> Result<TaskId, TaskIdError> {
        if s.is_empty() {
            return Err(TaskIdError::Empty);
        }
        if s.len() > 64 {
            return Err(TaskIdError::TooLong(s.to_string()));
        }
        if !s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(TaskIdError::BadStart(s.to_string()));
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(TaskIdError::BadChar {
                id: s.to_string(),
                ch: bad.escape_default().to_string(),
            });
        }
        Ok(TaskId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub run: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Escalate {
    pub attempts: u32,
    pub timeout: Duration,
    pub max_changed_lines: Option<u64>,
    pub paths: GlobList,
    pub on_scope_violation: OnScopeViolation,
    pub max_turns: Option<u32>,
    pub max_cost_usd: Option<f64>,
    pub fallback: EscalateFallback,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub deliver: Deliver,
    pub branch: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
}

/// A validated brief.
#[derive(Debug, Clone)]
pub struct Brief {
    pub id: TaskId,
    pub path: PathBuf,
    pub title: String,
    pub agent: Option<String>,
    pub base: String,
    pub scope: WriteScope,
    /// `scope.read` (sparse checkout), when given.
    pub read: Option<Vec<String>>,
    pub checks: Vec<Check>,
    /// `setup:`: steps run after the config's, before the agent.
    pub setup: Vec<crate::spec::workspace::SetupStep>,
    /// `after:`: the tasks whose results the run starts from.
    pub after: Vec<crate::spec::after::After>,
    pub escalate: Escalate,
    pub output: Output,
    /// The Markdown body: the prompt.
    pub body: String,
    /// The git blob id of the whole file, for the `Agent-Brief` trailer.
    pub blob_id: String,
    pub raw: RawBrief,
}

impl Brief {
    /// The paths to materialize for a sparse checkout: read + write globs.
    pub fn sparse_patterns(&self) -> Option<Vec<String>> {
        self.read.as_ref().map(|read| {
            let mut all = read.clone();
            all.extend(self.scope.write.patterns().iter().cloned());
            all.extend(self.escalate.paths.patterns().iter().cloned());
            all.sort();
            all.dedup();
            all
        })
    }
}

/// What validation may know beyond the file itself.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Agent names from the config, to check `agent:`; `None` skips the check.
    pub known_agents: Option<Vec<String>>,
}

/// Parses and validates one brief. Always returns the report (warnings
/// included); the brief only when there are no errors.
pub fn parse(
    path: &Path,
    display: String,
    text: &str,
    ctx: &Context,
) -> (Option<Brief>, FileReport) {
    let source: Arc<str> = Arc::from(text);
    let mut report = FileReport::new(path, display, source);
    let mut problems = Vec::new();
    let brief = parse_into(path, text, ctx, &mut problems);
    report.extend(problems);
    let brief = if report.has_errors() { None } else { brief };
    (brief, report)
}

/// Reads and validates a brief file.
pub fn load(
    path: &Path,
    display: String,
    ctx: &Context,
) -> std::io::Result<(Option<Brief>, FileReport)> {
    let bytes = std::fs::read(path)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let mut report = FileReport::new(path, display, Arc::from(lossy.as_str()));
            let offset = String::from_utf8_lossy(&e.as_bytes()[..valid]).len();
            report.push(
                Problem::error(
                    "brief::not-utf8",
                    // The invalid bytes show as one U+FFFD in the lossy text.
                    Span::new(offset, char::REPLACEMENT_CHARACTER.len_utf8()),
                    "the file is not valid UTF-8",
                )
                .label("invalid byte here")
                .help("save the brief as UTF-8 text"),
            );
            return Ok((None, report));
        }
    };
    Ok(parse(path, display, &text, ctx))
}

/// The frontmatter's text and where it and the body start.
pub struct Parts<'a> {
    pub frontmatter: &'a str,
    pub frontmatter_offset: usize,
    /// The opening `---`: where problems about the whole frontmatter point.
    pub fence: Span,
    pub body: &'a str,
}

/// Splits `---\n<yaml>\n---\n<body>`. Accepts a BOM and CRLF line ends;
/// the closing fence may be `---` or `...`.
pub fn split(text: &str) -> Result<Parts<'_>, Problem> {
    let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let rest = &text[start..];
    let first_line_end = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
    let first_line = rest[..first_line_end].trim_end_matches(['\n', '\r']);
    if first_line.trim_end() != "---" {
        // The first line, or (when it is empty) the character that ends it.
        let len = match first_line.len() {
            0 => rest.chars().next().map_or(0, char::len_utf8),
            n => n,
        };
        return Err(Problem::error(
            "brief::no-frontmatter",
            Span::new(start, len),
            "the brief does not start with YAML frontmatter",
        )
        .label("expected `---` on the first line")
        .help("start the file with a line `---`, then the keys (title, scope, checks, ...), then another `---`; run `git agent new <id>` for a template"));
    }
    let fm_start = start + first_line_end;
    let mut offset = fm_start;
    for line in text[fm_start..].split_inclusive('\n') {
        let trimmed = line.trim_end_matches(['\n', '\r']).trim_end();
        if trimmed == "---" || trimmed == "..." {
            return Ok(Parts {
                frontmatter: &text[fm_start..offset],
                frontmatter_offset: fm_start,
                fence: Span::new(start, 3),
                body: &text[offset + line.len()..],
            });
        }
        offset += line.len();
    }
    Err(Problem::error(
        "brief::unterminated-frontmatter",
        Span::new(start, 3),
        "the frontmatter is never closed",
    )
    .label("frontmatter opened here")
    .help("add a line `---` after the last key, before the Markdown body"))
}

fn parse_into(
    path: &Path,
    text: &str,
    ctx: &Context,
    problems: &mut Vec<Problem>,
) -> Option<Brief> {
    let id = check_file_name(path, problems);
    let parts = match split(text) {
        Ok(p) => p,
        Err(problem) => {
            problems.push(problem);
            return None;
        }
    };
    if !has_goal(parts.body) {
        let body_offset = text.len() - parts.body.len();
        problems.push(
            Problem::warning(
                "brief::no-goal",
                Span::new(body_offset, 0),
                "the brief has no goal",
            )
            .label("the body starts here")
            .help("add a `# Goal` section: what should be true when the run is done, and why"),
        );
    }
    let root = frontmatter_tree(text, &parts, problems)?;
    let raw = decode_frontmatter(&root, &parts, problems)?;
    let mut c = Checker {
        root: &root,
        problems,
    };
    validate(path, id, raw, &parts, text, ctx, &mut c)
}

/// The task id the file name gives (a problem when it is not one), and a
/// warning when the file does not end in `.md`.
fn check_file_name(path: &Path, problems: &mut Vec<Problem>) -> Option<TaskId> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let id = match TaskId::parse(stem) {
        Ok(id) => Some(id),
        Err(message) => {
            problems.push(
                Problem::error("brief::bad-id", Span::new(0, 0), message.to_string())
                    .label("the task id is the file name")
                    .help(format!(
                        "rename the file, e.g. to `{}.md`",
                        suggest_id(stem)
                    )),
            );
            None
        }
    };
    if path.extension().and_then(|e| e.to_str()) != Some("md") {
        problems.push(
            Problem::warning("brief::extension", Span::new(0, 0), "briefs are Markdown files ending in `.md`")
                .label("this file")
                .help("rename it to end in `.md`; `git agent validate` without paths only looks at `.md` files"),
        );
    }
    id
}

/// The frontmatter's YAML tree, when it parses and is a mapping.
fn frontmatter_tree(text: &str, parts: &Parts<'_>, problems: &mut Vec<Problem>) -> Option<Node> {
    let root = match yaml::parse(parts.frontmatter, parts.frontmatter_offset) {
        Ok(root) => root,
        Err(e) => {
            problems.push(crate::spec::diagnostic::yaml_problem(
                text,
                e,
                "brief::yaml-syntax",
                "brief::duplicate-key",
                "fix the YAML; quote values that contain `: ` or start with `*`, `[`, `{`, `&` or `!`",
            ));
            return None;
        }
    };
    if !matches!(root.value, Value::Map(_)) {
        problems.push(
            Problem::error(
                "brief::wrong-type",
                root.span,
                format!(
                    "the frontmatter must be a mapping of keys, found {}",
                    root.value.kind()
                ),
            )
            .label("not a mapping")
            .help("write `key: value` lines: title, scope, checks, ..."),
        );
        return None;
    }
    Some(root)
}

/// The frontmatter as raw serde types, when it passes the schema check.
fn decode_frontmatter(
    root: &Node,
    parts: &Parts<'_>,
    problems: &mut Vec<Problem>,
) -> Option<RawBrief> {
    let before = problems.len();
    schema::check(schema(), root, schema::Prefix::Brief, parts.fence, problems);
    if problems[before..].iter().any(Problem::is_error) {
        return None;
    }
    match yaml::decode(parts.frontmatter) {
        Ok(raw) => Some(raw),
        Err(message) => {
            problems.push(
                Problem::error("brief::invalid-value", parts.fence, message.to_string())
                    .label("in this frontmatter")
                    .help("`git agent schema brief` prints what each key accepts"),
            );
            None
        }
    }
}

/// What the brief's frontmatter is checked with: its YAML tree (for spans)
/// and the problems found so far.
struct Checker<'a> {
    root: &'a Node,
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn span(&self, path: &[&str]) -> crate::spec::yaml::Span {
        self.root.span_of(path)
    }

    fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }
}

fn validate(
    path: &Path,
    id: Option<TaskId>,
    raw: RawBrief,
    parts: &Parts<'_>,
    text: &str,
    ctx: &Context,
    c: &mut Checker<'_>,
) -> Option<Brief> {
    let before = c.errors();
    if raw.title.trim().is_empty() {
        let span = c.span(&["title"]);
        c.problems.push(
            Problem::error("brief::empty", span, "`title` is empty")
                .help("write one line that says what the run does"),
        );
    }
    check_agent(&raw, ctx, c);
    let (write, deny) = validate_scope(&raw, c);
    let checks = validate_checks(&raw, c);
    let (esc, attempts, timeout, paths) = validate_escalate(&raw, c);
    let (out, branch) = validate_output(&raw, id.as_ref(), c);
    let setup = crate::spec::workspace::validate_steps(&raw.setup, &["setup"], c.root, c.problems);
    let after = crate::spec::after::validate(&raw.after, id.as_ref(), c.root, c.problems);
    let new_errors = c.errors() > before;
    let (id, write, deny, paths) = match (id, write, deny, paths) {
        (Some(id), Some(w), Some(d), Some(p)) if !new_errors => (id, w, d, p),
        _ => return None,
    };
    Some(Brief {
        id,
        path: path.to_path_buf(),
        title: raw.title.trim().to_string(),
        agent: raw.agent.clone(),
        base: raw.base.clone().unwrap_or_else(|| "HEAD".into()),
        scope: WriteScope { write, deny },
        read: raw.scope.read.clone(),
        checks,
        setup,
        after,
        escalate: Escalate {
            attempts,
            timeout,
            max_changed_lines: esc.max_changed_lines,
            paths,
            on_scope_violation: esc.on_scope_violation.unwrap_or_default(),
            max_turns: esc.max_turns,
            max_cost_usd: esc.max_cost_usd,
            fallback: esc.fallback.unwrap_or_default(),
        },
        output: Output {
            deliver: out.deliver.unwrap_or_default(),
            branch,
            labels: out.labels,
            reviewers: out.reviewers,
        },
        body: parts.body.to_string(),
        blob_id: git2::Oid::hash_object(git2::ObjectType::Blob, text.as_bytes())
            .map(|o| o.to_string())
            .unwrap_or_default(),
        raw,
    })
}

/// `scope:` writes something, and its globs compile: the write and deny
/// globs, when they do.
fn validate_scope(raw: &RawBrief, c: &mut Checker<'_>) -> (Option<GlobList>, Option<GlobList>) {
    if raw.scope.write.is_empty() {
        let span = c.span(&["scope", "write"]);
        c.problems.push(
            Problem::error("brief::empty-scope", span, "`scope.write` is empty: the run could change nothing")
                .label("no globs here")
                .help("list the paths this run may change, e.g. `write: [\"src/http/**\", \"tests/http_*.rs\"]`"),
        );
    }
    let write = glob_list(&raw.scope.write, &["scope", "write"], c.root, c.problems);
    let deny = glob_list(&raw.scope.deny, &["scope", "deny"], c.root, c.problems);
    if let Some(read) = &raw.scope.read {
        glob_list(read, &["scope", "read"], c.root, c.problems);
    }
    (write, deny)
}

/// `agent:` names an agent of the config.
fn check_agent(raw: &RawBrief, ctx: &Context, c: &mut Checker<'_>) {
    let span = |path: &[&str]| c.root.span_of(path);
    if let (Some(agent), Some(known)) = (&raw.agent, &ctx.known_agents) {
        if !known.contains(agent) {
            let mut p = Problem::error(
                "brief::unknown-agent",
                span(&["agent"]),
                format!("no agent named `{agent}` in .agents/config.yaml"),
            )
            .label("unknown agent");
            p = match did_you_mean(agent, known.iter().map(String::as_str)) {
                Some(best) => p.help(format!(
                    "did you mean `{best}`? Agents in the config: {}",
                    known.join(", ")
                )),
                None => p.help(format!(
                    "add it under `agents:` in .agents/config.yaml, or use one of: {}",
                    known.join(", ")
                )),
            };
            c.problems.push(p);
        }
    }
}

/// Each check has a plain, unique name, a command and a valid timeout.
fn validate_checks(raw: &RawBrief, c: &mut Checker<'_>) -> Vec<Check> {
    let root = c.root;
    let span = |path: &[&str]| root.span_of(path);
    let problems = &mut *c.problems;
    if raw.checks.is_empty() {
        problems.push(
            Problem::error(
                "brief::no-checks",
                span(&["checks"]),
                "the brief has no checks: nothing would decide success",
            )
            .label("empty list")
            .help(
                "add at least one check, e.g.\n  checks:\n    - name: tests\n      run: cargo test",
            ),
        );
    }
    let mut checks = Vec::new();
    for (i, check) in raw.checks.iter().enumerate() {
        let idx = i.to_string();
        validate_check_name(raw, i, root, problems);
        if check.run.trim().is_empty() {
            problems.push(
                Problem::error(
                    "brief::empty",
                    span(&["checks", &idx, "run"]),
                    "the check's `run` is empty",
                )
                .help("give the shell command that must exit 0, e.g. `run: cargo test`"),
            );
        }
        let timeout = check
            .timeout
            .as_deref()
            .and_then(|t| parse_duration(t, &["checks", &idx, "timeout"], root, problems))
            .unwrap_or(DEFAULT_CHECK_TIMEOUT);
        checks.push(Check {
            name: check.name.clone(),
            run: check.run.clone(),
            timeout,
        });
    }

    checks
}

/// The name of check `i` is not empty, is plain, and is not an earlier
/// check's.
fn validate_check_name(raw: &RawBrief, i: usize, root: &Node, problems: &mut Vec<Problem>) {
    let check = &raw.checks[i];
    let idx = i.to_string();
    let span = |path: &[&str]| root.span_of(path);
    if check.name.trim().is_empty() {
        problems.push(
            Problem::error(
                "brief::empty",
                span(&["checks", &idx, "name"]),
                "the check's `name` is empty",
            )
            .help("name the check, e.g. `name: tests`"),
        );
    } else if !check
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_ .".contains(c))
    {
        problems.push(
            Problem::error("brief::invalid-value", span(&["checks", &idx, "name"]), format!("the check name `{}` has characters other than letters, digits, `-`, `_`, `.` and spaces", check.name))
                .help("use a short plain name; it is used in file names and PR check names"),
        );
    }
    if raw.checks[..i].iter().any(|c| c.name == check.name) {
        problems.push(
            Problem::error(
                "brief::duplicate-check",
                span(&["checks", &idx, "name"]),
                format!("two checks are named `{}`", check.name),
            )
            .label("second check with this name")
            .help("give each check its own name"),
        );
    }
}

/// `escalate:` with its defaults: attempts in range, durations and globs
/// that parse, a positive cost limit.
fn validate_escalate(
    raw: &RawBrief,
    c: &mut Checker<'_>,
) -> (RawEscalate, u32, Duration, Option<GlobList>) {
    let root = c.root;
    let span = |path: &[&str]| root.span_of(path);
    let problems = &mut *c.problems;
    let esc = raw.escalate.clone().unwrap_or(RawEscalate {
        attempts: None,
        timeout: None,
        max_changed_lines: None,
        paths: Vec::new(),
        on_scope_violation: None,
        max_turns: None,
        max_cost_usd: None,
        fallback: None,
    });
    let attempts = esc.attempts.unwrap_or(DEFAULT_ATTEMPTS);
    if attempts == 0 || attempts > MAX_ATTEMPTS {
        problems.push(
            Problem::error(
                "brief::invalid-value",
                span(&["escalate", "attempts"]),
                format!("`escalate.attempts` must be between 1 and {MAX_ATTEMPTS}"),
            )
            .help("attempts counts agent runs while checks fail; 2 or 3 is usual"),
        );
    }
    let timeout = esc
        .timeout
        .as_deref()
        .and_then(|t| parse_duration(t, &["escalate", "timeout"], root, problems))
        .unwrap_or(DEFAULT_TIMEOUT);
    let paths = glob_list(&esc.paths, &["escalate", "paths"], root, problems);
    if let Some(cost) = esc.max_cost_usd {
        if !(cost.is_finite() && cost > 0.0) {
            problems.push(
                Problem::error(
                    "brief::invalid-value",
                    span(&["escalate", "max_cost_usd"]),
                    "`escalate.max_cost_usd` must be a positive number",
                )
                .help("e.g. `max_cost_usd: 2.5`"),
            );
        }
    }

    (esc, attempts, timeout, paths)
}

/// `output:` with its defaults; the branch must be a valid name.
fn validate_output(
    raw: &RawBrief,
    id: Option<&TaskId>,
    c: &mut Checker<'_>,
) -> (RawOutput, String) {
    let span = c.span(&["output", "branch"]);
    let out = raw.output.clone().unwrap_or(RawOutput {
        deliver: None,
        branch: None,
        labels: Vec::new(),
        reviewers: Vec::new(),
    });
    let branch = out
        .branch
        .clone()
        .unwrap_or_else(|| format!("agent/{}", id.map(TaskId::as_str).unwrap_or("task")));
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) || branch.starts_with('-') {
        c.problems.push(
            Problem::error(
                "brief::bad-branch",
                span,
                format!("`{branch}` is not a valid branch name"),
            )
            .help("use letters, digits, `/`, `-`, `_` and `.`, e.g. `agent/retry-http`"),
        );
    }

    (out, branch)
}

fn glob_list(
    patterns: &[String],
    at: &[&str],
    root: &Node,
    problems: &mut Vec<Problem>,
) -> Option<GlobList> {
    let mut ok = true;
    for (i, pattern) in patterns.iter().enumerate() {
        if let Err(message) = scope::compile(pattern) {
            ok = false;
            let idx = i.to_string();
            let mut p: Vec<&str> = at.to_vec();
            p.push(&idx);
            problems.push(
                Problem::error("brief::bad-glob", root.span_of(&p), format!("invalid glob `{pattern}`: {message}"))
                    .label("this glob")
                    .help("globs are relative to the repository root: `src/**` (everything under src), `src/*.rs` (`*` stops at `/`), `tests/http_?.rs`"),
            );
        }
    }
    if !ok {
        return None;
    }
    GlobList::new(patterns).ok()
}

fn parse_duration(
    text: &str,
    at: &[&str],
    root: &Node,
    problems: &mut Vec<Problem>,
) -> Option<Duration> {
    match duration::parse(text) {
        Ok(d) => Some(d),
        Err(message) => {
            problems.push(
                Problem::error(
                    "brief::bad-duration",
                    root.span_of(at),
                    duration_message(text, &message),
                )
                .label("not a duration")
                .help("write a number with a unit: `90s`, `20m`, `1h`, `1h30m`"),
            );
            None
        }
    }
}

fn has_goal(body: &str) -> bool {
    body.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with('#')
            && t.trim_start_matches('#')
                .trim()
                .to_ascii_lowercase()
                .starts_with("goal")
    })
}

/// A valid id close to an invalid one, for the hint.
pub fn suggest_id(stem: &str) -> String {
    let mut out = String::new();
    for c in stem.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').chars().take(64).collect::<String>();
    if out.is_empty() {
        "my-task".into()
    } else {
        out
    }
}

/// The `# Goal` section of a brief body (or its first paragraph).
pub fn goal_of(body: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with('#') {
            if inside {
                break;
            }
            inside = t
                .trim_start_matches('#')
                .trim()
                .to_ascii_lowercase()
                .starts_with("goal");
            continue;
        }
        if inside {
            out.push(line);
        }
    }
    let text = out.join("\n").trim().to_string();
    if text.is_empty() {
        body.trim()
            .split("\n\n")
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod goal_tests {
    use super::goal_of;

    #[test]
    fn goal_section_or_first_paragraph() {
        assert_eq!(
            goal_of("# Goal\nRetry.\nTwice.\n# Why\nBecause."),
            "Retry.\nTwice."
        );
        assert_eq!(goal_of("Just do it.\n\nMore."), "Just do it.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "---\ntitle: Retry HTTP\nscope:\n  write: [\"src/http/**\"]\nchecks:\n  - name: tests\n    run: cargo test\n---\n# Goal\nRetry.\n";

    fn check(name: &str, text: &str) -> (Option<Brief>, FileReport) {
        parse(Path::new(name), name.to_string(), text, &Context::default())
    }

    #[test]
    fn valid_brief_has_defaults() {
        let (brief, report) = check("retry-http.md", VALID);
        let brief = brief.unwrap_or_else(|| panic!("{}", report.render(false, 100)));
        assert_eq!(brief.id.as_str(), "retry-http");
        assert_eq!(brief.base, "HEAD");
        assert_eq!(brief.output.branch, "agent/retry-http");
        assert_eq!(brief.escalate.attempts, DEFAULT_ATTEMPTS);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn collects_every_unknown_key() {
        let text = VALID
            .replace("  write:", "  wirte:")
            .replace("title:", "titel: x\ntitle:");
        let (brief, report) = check("t.md", &text);
        assert!(brief.is_none());
        let unknown: Vec<_> = report
            .problems
            .iter()
            .filter(|p| p.code == "brief::unknown-key")
            .collect();
        assert_eq!(unknown.len(), 2, "{:?}", report.problems);
        assert!(report.problems.iter().any(|p| p
            .help
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `write`")));
    }

    #[test]
    fn ids_cannot_smuggle_paths_or_refs() {
        for bad in ["../x", "Upper", "a b", "x.lock", "", "-x", "a~1"] {
            assert!(TaskId::parse(bad).is_err(), "{bad}");
        }
        assert!(TaskId::parse("fix-http_2").is_ok());
    }

    #[test]
    fn missing_goal_is_only_a_warning() {
        let (brief, report) = check("t.md", &VALID.replace("# Goal\n", ""));
        assert!(brief.is_some());
        assert_eq!(report.warnings(), 1);
    }
}
