//! Lints of a valid brief: what validates but will not work as meant —
//! a check that may outlive the run, the `new` template left as written, a
//! body no model reads whole. Warnings (`validate --strict` makes them
//! errors), each pointing at its line.

use std::time::Duration;

use crate::spec::brief::{self, Brief};
use crate::spec::diagnostic::Problem;
use crate::spec::yaml::{self, Node, Span};

/// A brief body longer than this is said to be too long: agents read the
/// prompt through a context window, and long inputs are skimmed, cut or
/// refused (100 KB is about 25,000 tokens of English).
pub const MAX_BODY_BYTES: usize = 100 * 1024;

/// The frontmatter of a brief's text as a YAML tree, for spans (`None`
/// when it does not split or parse: the brief's own problems say so).
pub fn frontmatter(text: &str) -> Option<Node> {
    let parts = brief::split(text).ok()?;
    yaml::parse(parts.frontmatter, parts.frontmatter_offset).ok()
}

/// Every lint of `brief`, whose file reads `text`.
pub fn brief(brief: &Brief, text: &str) -> Vec<Problem> {
    let root = frontmatter(text);
    let span = |path: &[&str]| {
        root.as_ref().map_or(Span::new(0, 0), |r| {
            r.key_span(path).unwrap_or(r.span_of(path))
        })
    };
    let mut found = Vec::new();
    found.extend(check_timeouts(brief, &span));
    let body_at = text.len() - brief.body.len();
    found.extend(untouched_template(brief, text, body_at));
    found.extend(long_body(brief, body_at));
    found
}

/// A check whose timeout, as written, is longer than the whole run's: the
/// run's limit stops it first. (The default check timeout is capped by the
/// run's without a word: nothing the user wrote is wrong.)
fn check_timeouts(brief: &Brief, span: &dyn Fn(&[&str]) -> Span) -> Vec<Problem> {
    let run = brief.escalate.timeout;
    brief
        .checks
        .iter()
        .enumerate()
        .filter(|(i, c)| c.timeout > run && brief.raw.checks[*i].timeout.is_some())
        .map(|(i, c)| {
            Problem::warning(
                "brief::check-outlives-run",
                span(&["checks", &i.to_string(), "timeout"]),
                format!(
                    "the check `{}` may run for {}, longer than the whole run may (`escalate.timeout: {}`)",
                    c.name,
                    short(c.timeout),
                    short(run)
                ),
            )
            .help("the run's time limit would stop the check first: lower the check's `timeout`, or raise `escalate.timeout`")
        })
        .collect()
}

/// The goal is still the one `git agent new` writes.
fn untouched_template(brief: &Brief, text: &str, body_at: usize) -> Option<Problem> {
    let template = template_goal();
    if brief::goal_of(&brief.body).trim() != template.trim() {
        return None;
    }
    let at = text[body_at..]
        .find(template.trim())
        .map_or(Span::new(body_at, 0), |i| {
            Span::new(body_at + i, template.trim().len())
        });
    Some(
        Problem::warning(
            "brief::template-goal",
            at,
            "the goal is still the template's: the agent would be told nothing",
        )
        .label("written by `git agent new`")
        .help("say what should be true when the run is done, and why; the body is the agent's whole prompt"),
    )
}

/// A body longer than [`MAX_BODY_BYTES`].
fn long_body(brief: &Brief, body_at: usize) -> Option<Problem> {
    let len = brief.body.len();
    (len > MAX_BODY_BYTES).then(|| {
        Problem::warning(
            "brief::long-body",
            Span::new(body_at, 0),
            format!(
                "the body is {} KB, more than {} KB: no model reads a prompt that long whole",
                len / 1024,
                MAX_BODY_BYTES / 1024
            ),
        )
        .label("the body starts here")
        .help("name the files the agent should read instead of pasting them: it works in a checkout of the repository")
    })
}

/// The `# Goal` text of the template `git agent new` writes.
pub fn template_goal() -> String {
    let text = crate::spec::templates::brief("x", "x", &[], "x");
    let body = brief::split(&text)
        .map(|p| p.body.to_string())
        .unwrap_or_default();
    brief::goal_of(&body)
}

fn short(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
