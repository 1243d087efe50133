//! `after:` across briefs, for the commands that run or plan several:
//! each request's predecessors (the branches their results are on), the
//! briefs of tasks outside the batch read for it, and the graph's problems
//! (unknown ids, cycles) said as diagnostics pointing into the briefs.

use std::collections::BTreeMap;

use super::helper::{load_brief, terminal_width};
use super::{exit, CliError, CliResult, Ctx};
use crate::engine::chain::Predecessor;
use crate::engine::run::RunRequest;
use crate::spec::after::{graph_problems, GraphNode};
use crate::spec::brief::Brief;
use crate::spec::config::Config;
use crate::spec::diagnostic::{FileReport, Problem};
use crate::spec::repo_files;

/// Every brief id of the repository.
pub(crate) fn known_ids(root: &std::path::Path) -> Vec<String> {
    repo_files::list_briefs(root)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect()
}

/// Fills each request's `after` from its brief, reading the briefs of the
/// tasks it runs after that are not in the batch (and theirs, for the
/// cycles). Bad input when a task named has no brief, a brief read has
/// errors, or `after` makes a cycle.
pub(crate) fn link(
    root: &std::path::Path,
    config: &Config,
    reqs: &mut [RunRequest],
    ctx: &Ctx,
) -> CliResult<()> {
    let known = known_ids(root);
    let mut briefs: BTreeMap<String, (Brief, String)> = reqs
        .iter()
        .map(|r| {
            (
                r.brief.id.to_string(),
                (r.brief.clone(), r.brief_display.clone()),
            )
        })
        .collect();
    let mut todo: Vec<String> = briefs
        .values()
        .flat_map(|(b, _)| b.after.iter().map(|a| a.task.to_string()))
        .collect();
    let mut bad = false;
    while let Some(id) = todo.pop() {
        if briefs.contains_key(&id) || !known.contains(&id) {
            continue;
        }
        match load_brief(root, config, &id, ctx)? {
            Some((brief, display)) => {
                todo.extend(brief.after.iter().map(|a| a.task.to_string()));
                briefs.insert(id, (brief, display));
            }
            None => bad = true,
        }
    }
    if bad {
        eprintln!("error: a brief that others run after has errors (above)");
        return Err(CliError::reported(exit::USAGE));
    }
    let all: Vec<&(Brief, String)> = briefs.values().collect();
    report_graph(&all, &known, ctx)?;
    for req in reqs.iter_mut() {
        req.after = req
            .brief
            .after
            .iter()
            .map(|a| Predecessor {
                task: a.task.to_string(),
                branch: briefs.get(a.task.as_str()).map_or_else(
                    || format!("agent/{}", a.task),
                    |(b, _)| b.output.branch.clone(),
                ),
                result: None,
            })
            .collect();
    }
    Ok(())
}

/// The graph's problems of `briefs`, each in its brief's report.
pub(crate) fn graph_reports(briefs: &[&Brief], known: &[String]) -> Vec<(usize, Problem)> {
    let nodes: Vec<GraphNode<'_>> = briefs
        .iter()
        .map(|b| GraphNode {
            task: &b.id,
            after: &b.after,
        })
        .collect();
    graph_problems(&nodes, &|t| known.iter().any(|k| k == t), known)
}

/// Prints the graph's problems as diagnostics; bad input when there are any.
fn report_graph(briefs: &[&(Brief, String)], known: &[String], ctx: &Ctx) -> CliResult<()> {
    let only: Vec<&Brief> = briefs.iter().map(|(b, _)| b).collect();
    let problems = graph_reports(&only, known);
    if problems.is_empty() {
        return Ok(());
    }
    let mut reports: BTreeMap<usize, FileReport> = BTreeMap::new();
    for (i, problem) in problems {
        let (brief, display) = briefs[i];
        reports
            .entry(i)
            .or_insert_with(|| {
                let text = std::fs::read_to_string(&brief.path).unwrap_or_default();
                FileReport::new(
                    &brief.path,
                    display.clone(),
                    std::sync::Arc::from(text.as_str()),
                )
            })
            .push(problem);
    }
    for report in reports.values() {
        eprint!("{}", report.render(ctx.stderr_tty, terminal_width()));
    }
    Err(CliError::reported(exit::USAGE))
}
