//! Fitting a decision log into a size limit (a PR or issue body, the
//! commit's note) by folding its longest sections.

use crate::model::event::Event;
use crate::model::store::RunRecord;
use crate::report::markdown::render_markdown;

/// Characters of the decision log kept in the commit's note.
pub const NOTE_LIMIT: usize = 1 << 20;

/// The commit's note: the decision log, folded to [`NOTE_LIMIT`] (the
/// note lives in the user's repository, however much the agent made the
/// log say).
pub fn note(record: &RunRecord, events: &[Event]) -> String {
    fit(
        &render_markdown(record, events),
        NOTE_LIMIT,
        "> **Trimmed to 1 MiB**: the longest sections are folded; `git agent log` shows the whole decision log.\n\n",
    )
}

/// `markdown` cut to `limit` characters, `note` (saying so) first. Sections
/// start at every heading; the longest are folded first (replaced by a
/// line saying so), the ones a reviewer needs — the outcome, the goal, the
/// scope and the checks — only when nothing else is left to fold.
pub fn fit(markdown: &str, limit: usize, note: &str) -> String {
    if markdown.chars().count() <= limit {
        return markdown.to_string();
    }
    let mut sections: Vec<String> = vec![String::new()];
    for line in markdown.split_inclusive('\n') {
        if line.starts_with("## ") || line.starts_with("### ") {
            sections.push(String::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push_str(line);
        }
    }
    let mut folded = vec![false; sections.len()];
    let total =
        |s: &[String]| note.chars().count() + s.iter().map(|x| x.chars().count()).sum::<usize>();
    while total(&sections) > limit {
        let longest = |keep: bool| {
            sections
                .iter()
                .enumerate()
                .filter(|(i, s)| !folded[*i] && kept(s) == keep)
                .max_by_key(|(_, s)| s.chars().count())
                .map(|(i, _)| i)
        };
        let Some(i) = longest(false).or_else(|| longest(true)) else {
            break;
        };
        sections[i] = fold(&sections[i]);
        folded[i] = true;
    }
    let mut out = String::from(note);
    for s in &sections {
        out.push_str(s);
    }
    if out.chars().count() > limit {
        out = out.chars().take(limit.saturating_sub(2)).collect();
        out.push_str("\n…");
    }
    out
}

/// The sections folded last: the outcome (the top heading), the goal, the
/// scope and the checks.
fn kept(section: &str) -> bool {
    let heading = section.lines().next().unwrap_or("");
    (heading.starts_with("## ") && !heading.starts_with("### "))
        || ["### Goal", "### Scope", "### Checks"].contains(&heading.trim_end())
}

/// A section replaced by its heading and a line saying how much it held.
fn fold(section: &str) -> String {
    let heading = section
        .lines()
        .next()
        .filter(|h| h.starts_with('#'))
        .map(|h| format!("{h}\n"))
        .unwrap_or_default();
    format!(
        "{heading}\n_Folded: {} characters; see `git agent log`._\n\n",
        section.chars().count()
    )
}
