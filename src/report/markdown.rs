//! The Markdown decision log a reviewer reads (the commit's note, the PR body).

use std::fmt::Write as _;

use crate::model::event::{AgentActivity, Decision, DecisionKind, Event, EventKind, VerdictRecord};
use crate::model::store::{RunRecord, State};
use crate::report::escape;

fn icon(state: State) -> &'static str {
    match state {
        State::Succeeded => "✅",
        State::Failed => "❌",
        State::Escalated => "✋",
        State::Interrupted => "⏹️",
        _ => "⏳",
    }
}

/// Renders the decision log as GitHub-flavoured Markdown.
pub fn render_markdown(record: &RunRecord, events: &[Event]) -> String {
    let mut md = String::new();
    render_header(&mut md, record);
    let usage = crate::model::usage::Usage::of_events(events);
    let _ = writeln!(md, "**Cost:** {}\n", usage.line());

    if let Some(goal) = events.iter().find_map(|e| match &e.kind {
        EventKind::RunStarted { goal, .. } => Some(goal.clone()),
        _ => None,
    }) {
        if !goal.is_empty() {
            let _ = writeln!(md, "### Goal\n\n{goal}\n");
        }
    }

    render_workspace(&mut md, events);
    render_decisions(&mut md, events);
    render_agent(&mut md, events);
    render_scope(&mut md, events);
    render_checks(&mut md, events);
    render_problems(&mut md, events);
    render_footer(&mut md, record, events);
    md
}

/// What `workspace:` gave the run: copied files (names only), setup steps
/// (cached or run, how long), ports.
fn render_workspace(md: &mut String, events: &[Event]) {
    let mut lines = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::WorkspaceReady {
                copied,
                port,
                ports,
            } => {
                if !copied.is_empty() {
                    let names: Vec<String> = copied.iter().map(|p| escape::code(p)).collect();
                    lines.push(format!(
                        "- copied from the checkout (never committed): {}",
                        names.join(", ")
                    ));
                }
                if let Some(first) = port {
                    lines.push(format!(
                        "- ports {first}–{} (`GIT_AGENT_PORT`)",
                        u32::from(*first) + u32::from(*ports).max(1) - 1
                    ));
                }
            }
            EventKind::SetupFinished {
                name, cached, ms, ..
            } => lines.push(if *cached {
                format!("- setup {}: cached", escape::code(name))
            } else {
                format!(
                    "- setup {}: ran in {}",
                    escape::code(name),
                    crate::spec::duration::short(std::time::Duration::from_millis(*ms))
                )
            }),
            _ => {}
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(md, "### Workspace\n\n{}\n", lines.join("\n"));
    }
}

/// The outcome and title, a line of facts about the run, and why it ended
/// so (when it says).
fn render_header(md: &mut String, record: &RunRecord) {
    let state = record.effective_state();
    let _ = writeln!(
        md,
        "## {} {} — {}\n",
        icon(state),
        capitalize(state.outcome()),
        record.title
    );
    let mut facts = vec![format!("task `{}`", record.task)];
    if let Some(b) = &record.branch {
        facts.push(format!("branch `{b}`"));
    }
    facts.push(format!(
        "{} of {} attempt{}",
        record.attempts,
        record.max_attempts,
        if record.max_attempts == 1 { "" } else { "s" }
    ));
    if let Some(ms) = record.duration_ms {
        facts.push(crate::spec::duration::short(
            std::time::Duration::from_millis(ms),
        ));
    }
    facts.push(format!("agent `{}`", record.agent));
    let _ = writeln!(md, "{}\n", facts.join(" · "));
    if let Some(reason) = &record.reason {
        let _ = writeln!(
            md,
            "> **{}:** {}\n",
            if state == State::Escalated {
                "Needs a human"
            } else {
                "Why"
            },
            escape::message(reason)
        );
    }
}

/// The small print: what the run started from, its brief, its id and its
/// confinement.
fn render_footer(md: &mut String, record: &RunRecord, events: &[Event]) {
    let _ = writeln!(md, "---");
    let base = record
        .base_commit
        .as_deref()
        .map(|c| &c[..c.len().min(10)])
        .unwrap_or("?");
    let blob = &record.brief_blob[..record.brief_blob.len().min(10)];
    let sandbox = confinement(events);
    let _ = writeln!(
        md,
        "<sub>base `{}` @ `{base}` · brief `{}` (blob `{blob}`) · run `{}`{sandbox}</sub>",
        record.base_ref, record.brief_path, record.run_id
    );
}

/// The last Landlock confinement of the run, as a footer fragment (empty
/// when the agent ran unconfined).
fn confinement(events: &[Event]) -> String {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Sandbox { policy }
                if policy.enforcement == crate::model::sandbox::Enforcement::Landlock =>
            {
                Some(format!(
                    " · confined: Landlock ABI {}, network {}, {} writable path{}",
                    policy.landlock_abi,
                    policy.network,
                    policy.writable.len(),
                    if policy.writable.len() == 1 { "" } else { "s" }
                ))
            }
            _ => None,
        })
        .unwrap_or_default()
}

fn render_decisions(md: &mut String, events: &[Event]) {
    let decisions: Vec<(u32, &Decision)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Decision { attempt, decision } => Some((*attempt, decision)),
            _ => None,
        })
        .collect();
    if decisions.is_empty() {
        let _ = writeln!(md, "### Decisions\n\n_The agent recorded no decisions._\n");
        return;
    }
    let _ = writeln!(md, "### Decisions\n");
    for (attempt, d) in decisions {
        let label = match d.kind {
            DecisionKind::Decision => "Decision",
            DecisionKind::Assumption => "Assumption",
            DecisionKind::Unexpected => "Surprise",
            DecisionKind::Escalate => "Asked for a human",
        };
        let mut line = format!(
            "- **{label}** (attempt {attempt}): {}",
            escape::text(&d.summary)
        );
        if let Some(chosen) = &d.chosen {
            let others: Vec<&String> = d.options.iter().filter(|o| *o != chosen).collect();
            if others.is_empty() {
                let _ = write!(line, " — chose {}", escape::code(chosen));
            } else {
                let _ = write!(
                    line,
                    " — chose {} over {}",
                    escape::code(chosen),
                    others
                        .iter()
                        .map(|o| escape::code(o))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        if let Some(why) = &d.why {
            let _ = write!(line, ", because {}", escape::text(why));
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md);
}

/// The agent CLI's own account of each attempt: turns, spend, tool calls,
/// commands, denials and its final message.
fn render_agent(md: &mut String, events: &[Event]) {
    let attempts: Vec<(u32, &AgentActivity)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AgentActivity { attempt, activity } => Some((*attempt, activity)),
            _ => None,
        })
        .collect();
    if attempts.is_empty() {
        return;
    }
    let _ = writeln!(md, "### What the agent did\n");
    for (attempt, a) in attempts {
        let _ = writeln!(md, "**Attempt {attempt}** — {}\n", activity_facts(a));
        render_activity(md, a);
        let _ = writeln!(md);
    }
}

/// An attempt's session, turns, tokens, cost and tool calls, on one line.
fn activity_facts(a: &AgentActivity) -> String {
    let mut facts = Vec::new();
    if a.continued {
        facts.push("continued its session".to_string());
    }
    if let Some(t) = a.turns {
        facts.push(format!("{t} turn{}", if t == 1 { "" } else { "s" }));
    }
    if let (Some(i), Some(o)) = (a.input_tokens, a.output_tokens) {
        facts.push(format!("{i} tokens in, {o} out"));
    }
    if let Some(c) = a.cost_usd {
        facts.push(format!("${c:.4}"));
    }
    facts.push(format!(
        "{} tool call{}",
        a.tool_calls.len(),
        if a.tool_calls.len() == 1 { "" } else { "s" }
    ));
    facts.join(" · ")
}

/// An attempt's files, commands, denials, stops, errors, notes and tool
/// calls as a list, then its final message quoted.
fn render_activity(md: &mut String, a: &AgentActivity) {
    if let Some(access) = &a.access {
        let _ = writeln!(md, "- Access: {}", escape::message(access));
    }
    if !a.files_edited.is_empty() {
        let _ = writeln!(
            md,
            "- Edited: {}",
            a.files_edited
                .iter()
                .map(|f| escape::code(f))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for c in &a.commands {
        let exit = match c.exit_code {
            Some(code) => format!("exit {code}"),
            None => "no exit code".to_string(),
        };
        let _ = writeln!(md, "- Ran {} → {exit}", escape::code(&c.command));
    }
    for d in &a.permission_denials {
        let _ = writeln!(md, "- ⛔ Denied: {}", escape::code(d));
    }
    if let Some(s) = &a.stopped {
        let _ = writeln!(md, "- ✋ {}", escape::message(s));
    }
    if let Some(e) = &a.error {
        let _ = writeln!(md, "- ❌ {}", escape::message(e));
    }
    for n in &a.notes {
        let _ = writeln!(md, "- {}", escape::message(n));
    }
    if !a.tool_calls.is_empty() {
        let _ = writeln!(
            md,
            "- Tool calls: {}",
            a.tool_calls
                .iter()
                .map(|t| if t.detail.is_empty() {
                    escape::code(&t.name)
                } else {
                    format!("{} {}", escape::code(&t.name), escape::text(&t.detail))
                })
                .collect::<Vec<_>>()
                .join(" · ")
        );
    }
    if let Some(m) = &a.final_message {
        let quoted: Vec<String> = m
            .trim()
            .lines()
            .map(|l| format!("> {}", escape::text(l)))
            .collect();
        let _ = writeln!(md, "\nFinal message:\n\n{}", quoted.join("\n"));
    }
}

fn render_scope(md: &mut String, events: &[Event]) {
    let Some(changes) = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::ScopeReport { changes, .. } => Some(changes),
        _ => None,
    }) else {
        return;
    };
    let _ = writeln!(md, "### Scope\n");
    if changes.is_empty() {
        let _ = writeln!(md, "_No files changed._\n");
        return;
    }
    let added: usize = changes.iter().map(|c| c.lines_added).sum();
    let removed: usize = changes.iter().map(|c| c.lines_removed).sum();
    let outside = changes
        .iter()
        .filter(|c| !matches!(c.verdict, VerdictRecord::Allowed { .. }))
        .count();
    let _ = writeln!(
        md,
        "{} file{} changed, +{added} −{removed}{}\n",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        if outside > 0 {
            format!(", **{outside} outside the scope**")
        } else {
            String::new()
        }
    );
    let _ = writeln!(md, "| Path | Change | Lines | Verdict |\n|---|---|---|---|");
    for c in changes {
        let path = match &c.old_path {
            Some(old) => format!("{} → {}", escape::cell(old), escape::cell(&c.path)),
            None => escape::cell(&c.path),
        };
        let verdict = match &c.verdict {
            VerdictRecord::Allowed { glob } => format!("✅ {}", escape::cell(glob)),
            VerdictRecord::Denied { glob } => format!("⛔ denied by {}", escape::cell(glob)),
            VerdictRecord::OutOfScope => "⛔ out of scope".to_string(),
        };
        let kind = match &c.symlink_target {
            Some(t) => format!("{} (symlink → {})", c.kind, escape::cell(t)),
            None => c.kind.to_string(),
        };
        let _ = writeln!(
            md,
            "| {path} | {kind} | +{} −{} | {verdict} |",
            c.lines_added, c.lines_removed
        );
    }
    let _ = writeln!(md);
}

/// A finished check: attempt, name, passed, duration (ms), timed out, and
/// the tail of its output.
type CheckRun<'a> = (u32, &'a str, bool, u64, bool, &'a str);

fn render_checks(md: &mut String, events: &[Event]) {
    let checks = finished_checks(events);
    if checks.is_empty() {
        return;
    }
    let mut names: Vec<&str> = Vec::new();
    for c in &checks {
        if !names.contains(&c.1) {
            names.push(c.1);
        }
    }
    let mut attempts: Vec<u32> = checks.iter().map(|c| c.0).collect();
    attempts.dedup();
    let _ = writeln!(md, "### Checks\n");
    render_check_table(md, &names, &attempts, &checks);
    if attempts.len() > 1 {
        render_timeline(md, events, &attempts, &checks);
    }
    for c in checks.iter().filter(|c| !c.2) {
        let _ = writeln!(
            md,
            "<details><summary>❌ <code>{}</code> failed on attempt {}</summary>\n\n{}\n\n</details>\n",
            html_escape(c.1),
            c.0,
            escape::block(c.5, "text")
        );
    }
}

/// Every check that finished, in order.
fn finished_checks(events: &[Event]) -> Vec<CheckRun<'_>> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CheckFinished {
                attempt,
                name,
                passed,
                duration_ms,
                timed_out,
                output_tail,
                ..
            } => Some((
                *attempt,
                name.as_str(),
                *passed,
                *duration_ms,
                *timed_out,
                output_tail.as_str(),
            )),
            _ => None,
        })
        .collect()
}

/// A table of the checks' verdicts: a row per attempt, a column per check.
fn render_check_table(md: &mut String, names: &[&str], attempts: &[u32], checks: &[CheckRun<'_>]) {
    let _ = writeln!(
        md,
        "| Attempt | {} |",
        names
            .iter()
            .map(|n| escape_cell(n))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
    for a in attempts {
        let cells: Vec<String> = names
            .iter()
            .map(|n| match checks.iter().find(|c| c.0 == *a && c.1 == *n) {
                Some(c) => format!(
                    "{} {}{}",
                    if c.2 { "✅" } else { "❌" },
                    crate::spec::duration::short(std::time::Duration::from_millis(c.3)),
                    if c.4 { " (timed out)" } else { "" }
                ),
                None => "—".to_string(),
            })
            .collect();
        let _ = writeln!(md, "| {a} | {} |", cells.join(" | "));
    }
    let _ = writeln!(md);
}

/// A mermaid timeline of the attempts (GitHub renders it in the PR body):
/// the agent's time, then each check's verdict, one period per attempt.
fn render_timeline(md: &mut String, events: &[Event], attempts: &[u32], checks: &[CheckRun<'_>]) {
    // `:` separates events and `#`/`;` end a line in mermaid: keep names plain.
    let plain = |s: &str| s.replace([':', '#', ';', '\n'], " ");
    let _ = writeln!(md, "```mermaid\ntimeline\n    title Attempts and checks");
    for a in attempts {
        let agent = events.iter().find_map(|e| match &e.kind {
            EventKind::AgentFinished {
                attempt,
                duration_ms,
                ..
            } if attempt == a => Some(*duration_ms),
            _ => None,
        });
        let mut line = format!("    Attempt {a}");
        if let Some(ms) = agent {
            let _ = write!(
                line,
                " : agent {}",
                crate::spec::duration::short(std::time::Duration::from_millis(ms))
            );
        }
        for c in checks.iter().filter(|c| c.0 == *a) {
            let _ = write!(line, " : {} {}", if c.2 { "✅" } else { "❌" }, plain(c.1));
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md, "```\n");
}

fn render_problems(md: &mut String, events: &[Event]) {
    let lines: Vec<String> = events
        .iter()
        .filter_map(|e| attempt_problem(&e.kind).or_else(|| run_problem(&e.kind)))
        .collect();
    if !lines.is_empty() {
        let _ = writeln!(md, "### What happened\n\n{}\n", lines.join("\n"));
    }
}

/// The line for what went wrong in an attempt, if the event is one.
fn attempt_problem(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Violation {
            attempt,
            what,
            path,
        } => match path {
            Some(p) => format!(
                "- ⛔ attempt {attempt}: {}: {}",
                escape::message(what),
                escape::code(p)
            ),
            None => format!("- ⛔ attempt {attempt}: {}", escape::message(what)),
        },
        EventKind::Reverted { attempt, paths } => format!(
            "- ↩️ attempt {attempt}: reverted {} out-of-scope path{}: {}",
            paths.len(),
            if paths.len() == 1 { "" } else { "s" },
            paths
                .iter()
                .map(|p| escape::code(p))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        EventKind::AttemptFailed { attempt, reason } => {
            format!("- attempt {attempt} failed: {}", escape::message(reason))
        }
        EventKind::AgentFinished {
            attempt,
            timed_out: true,
            ..
        } => format!("- ⏱️ attempt {attempt}: the agent hit the time limit and was stopped"),
        EventKind::AgentFinished {
            attempt,
            leaked,
            egress_refused,
            ..
        } if *leaked > 0 || !egress_refused.is_empty() => {
            let mut said = Vec::new();
            if *leaked > 0 {
                said.push(format!(
                    "{leaked} process(es) left behind by the agent were killed"
                ));
            }
            if !egress_refused.is_empty() {
                let refused: Vec<String> = egress_refused.iter().map(|e| escape::code(e)).collect();
                said.push(format!(
                    "the network allowlist refused {}",
                    refused.join(", ")
                ));
            }
            format!("- attempt {attempt}: {}", said.join("; "))
        }
        EventKind::DecisionRejected { attempt, error, .. } => format!(
            "- attempt {attempt}: a decision line was not valid JSON ({})",
            escape::message(error)
        ),
        _ => return None,
    })
}

/// The line for what happened to the run as a whole (escalation, review,
/// delivery, confinement), if the event is one.
fn run_problem(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Escalated { reason } => format!("- ✋ escalated: {}", escape::message(reason)),
        EventKind::ReviewFeedback {
            pull_request,
            comments,
            ..
        } => format!(
            "- 💬 addressed {comments} review comment{} on #{pull_request}",
            if *comments == 1 { "" } else { "s" }
        ),
        EventKind::Chained { chain, .. } => chained(chain),
        EventKind::Conflicts { conflict } => conflicted(conflict),
        EventKind::Delivered { mode, url, .. } => match url {
            Some(url) => format!("- 📦 delivered ({mode}): {url}"),
            None => format!("- 📦 delivered ({mode})"),
        },
        EventKind::DeliveryFailed { mode, reason } => format!(
            "- ⚠️ delivery ({mode}) failed: {}; the branch stays local",
            escape::message(reason)
        ),
        EventKind::Landed { landing } => format!(
            "- 🛬 landed on {} at {} ({} commit{})",
            escape::code(&landing.branch),
            escape::code(landing.new_tip.get(..12).unwrap_or(&landing.new_tip)),
            landing.commits.len(),
            if landing.commits.len() == 1 { "" } else { "s" }
        ),
        EventKind::Sandbox { policy }
            if policy.enforcement != crate::model::sandbox::Enforcement::Landlock =>
        {
            format!(
                "- ⚠️ the agent ran unconfined ({})",
                escape::message(policy.note.as_deref().unwrap_or("sandbox off"))
            )
        }
        EventKind::Sandbox { policy }
            if policy.network == crate::model::sandbox::NetworkPolicy::None =>
        {
            "- 🔒 the agent ran without network (loopback only)".to_string()
        }
        EventKind::Sandbox { policy }
            if policy.network == crate::model::sandbox::NetworkPolicy::Allowlist =>
        {
            let allowed: Vec<String> = policy.allow.iter().map(|e| escape::code(e)).collect();
            format!(
                "- 🔒 the agent's network led only to {} (git-agent's proxy)",
                allowed.join(", ")
            )
        }
        _ => return None,
    })
}

/// A result beside this one that does not merge with it.
fn conflicted(conflict: &crate::model::chain::Conflict) -> String {
    let paths: Vec<String> = conflict.paths.iter().map(|p| escape::code(p)).collect();
    format!(
        "- ⚠️ conflicts with {} (task {}) in {}: the two results do not merge cleanly",
        escape::code(&conflict.branch),
        escape::code(&conflict.task),
        paths.join(", ")
    )
}

/// Where a chained run started: each task it ran after, and the branch
/// its pull request stacks on.
fn chained(chain: &crate::model::chain::Chain) -> String {
    let links: Vec<String> = chain
        .after
        .iter()
        .map(|l| match &l.commit {
            Some(c) => format!(
                "{}'s result ({} at {})",
                escape::code(&l.task),
                escape::code(&l.branch),
                escape::code(c.get(..12).unwrap_or(c))
            ),
            None => format!("{} (its result already in the base)", escape::code(&l.task)),
        })
        .collect();
    let mut line = format!("- 🔗 ran after {}", links.join(", "));
    if let Some(branch) = &chain.stacked_on {
        line.push_str(&format!(
            "; its pull request stacks on {} until that lands",
            escape::code(branch)
        ));
    }
    line
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn escape_cell(s: &str) -> String {
    escape::one_line(s).replace('|', "\\|").replace('`', "'")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
