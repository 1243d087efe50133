//! `after:` — a brief that runs after other tasks: its run starts from
//! their results and its pull request stacks on theirs.
//!
//! Each entry is checked with its brief ([`validate`]: a task id, not the
//! brief's own, not twice); the graph of the briefs' `after:` — ids with no
//! brief, cycles — with all of them ([`graph_problems`]). [`chains`] cuts a
//! set of tasks into independent chains, each in an order it can run in
//! (`plan --matrix`).

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::brief::TaskId;
use crate::spec::diagnostic::{did_you_mean, Problem};
use crate::spec::yaml::{Node, Span};

/// One task of `after:`, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub task: TaskId,
    pub span: Span,
}

/// The entries of `after:` that are task ids (each else a problem), none
/// the brief's own nor named twice.
pub fn validate(
    raw: &[String],
    own: Option<&TaskId>,
    root: &Node,
    problems: &mut Vec<Problem>,
) -> Vec<After> {
    let mut out: Vec<After> = Vec::new();
    for (i, text) in raw.iter().enumerate() {
        let span = root.span_of(&["after", &i.to_string()]);
        let task = match TaskId::parse(text) {
            Ok(task) => task,
            Err(e) => {
                problems.push(
                    Problem::error("brief::bad-after", span, format!("`after`: {e}"))
                        .label("not a task id")
                        .help("name tasks by their brief's file name without `.md`, e.g. `after: [retry-http]`"),
                );
                continue;
            }
        };
        if Some(&task) == own {
            problems.push(
                Problem::error(
                    "brief::after-itself",
                    span,
                    format!("`{task}` runs after itself"),
                )
                .label("the brief's own id")
                .help("list the tasks whose results this run starts from; remove this one"),
            );
        } else if out.iter().any(|a| a.task == task) {
            problems.push(
                Problem::error(
                    "brief::duplicate-after",
                    span,
                    format!("`{task}` is named twice in `after`"),
                )
                .label("named again here")
                .help("name each task once"),
            );
        } else {
            out.push(After { task, span });
        }
    }
    out
}

/// A brief as the graph sees it.
#[derive(Debug, Clone, Copy)]
pub struct GraphNode<'a> {
    pub task: &'a TaskId,
    pub after: &'a [After],
}

/// The problems of the graph, each with the index of the brief (in
/// `nodes`) it is in: an `after` naming a task `has_brief` does not know,
/// and every entry that closes a cycle.
pub fn graph_problems(
    nodes: &[GraphNode<'_>],
    has_brief: &dyn Fn(&str) -> bool,
    known: &[String],
) -> Vec<(usize, Problem)> {
    let edges: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|n| {
            (
                n.task.as_str(),
                n.after.iter().map(|a| a.task.as_str()).collect(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for after in node.after {
            let target = after.task.as_str();
            if !has_brief(target) {
                out.push((i, unknown(after, known)));
            } else if let Some(path) = path_to(&edges, target, node.task.as_str()) {
                let mut cycle = vec![node.task.as_str()];
                cycle.extend(path);
                out.push((
                    i,
                    Problem::error(
                        "brief::after-cycle",
                        after.span,
                        format!("`after` makes a cycle: {}", cycle.join(" → ")),
                    )
                    .label("closes the cycle")
                    .help("a task cannot wait, through others, for itself: remove one `after` of the cycle"),
                ));
            }
        }
    }
    out
}

fn unknown(after: &After, known: &[String]) -> Problem {
    let task = after.task.as_str();
    let p = Problem::error(
        "brief::unknown-after",
        after.span,
        format!("no brief `{task}` in .agents/tasks"),
    )
    .label("unknown task");
    match did_you_mean(task, known.iter().map(String::as_str)) {
        Some(best) => p.help(format!("did you mean `{best}`?")),
        None => p.help(format!(
            "name a task that has a brief (.agents/tasks/<id>.md), or write .agents/tasks/{task}.md"
        )),
    }
}

/// The tasks from `from` to `to` by `after` edges (both included), if
/// `to` can be reached.
fn path_to<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    from: &'a str,
    to: &str,
) -> Option<Vec<&'a str>> {
    let mut stack: Vec<Vec<&'a str>> = vec![vec![from]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = *path.last().expect("paths are never empty");
        if last == to {
            return Some(path);
        }
        if !seen.insert(last) {
            continue;
        }
        for next in edges.get(last).into_iter().flatten().rev() {
            let mut longer = path.clone();
            longer.push(next);
            stack.push(longer);
        }
    }
    None
}

/// `tasks` (with what each runs after) cut into independent chains: tasks
/// linked by `after` (within `tasks`) are in one chain, in an order where
/// each comes after those it runs after; chains in the order of their
/// first task, tasks otherwise in the order given. The graph has no cycle
/// ([`graph_problems`] is empty).
pub fn chains(tasks: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let index: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.0.as_str(), i))
        .collect();
    // Union-find over the edges inside the set.
    let mut parent: Vec<usize> = (0..tasks.len()).collect();
    fn find(parent: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while parent[r] != r {
            r = parent[r];
        }
        parent[i] = r;
        r
    }
    for (i, (_, after)) in tasks.iter().enumerate() {
        for a in after.iter().filter_map(|a| index.get(a.as_str())) {
            let (x, y) = (find(&mut parent, i), find(&mut parent, *a));
            parent[x.max(y)] = x.min(y);
        }
    }
    let order = topological(tasks, &index);
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for i in order {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(tasks[i].0.clone());
    }
    groups.into_values().collect()
}

/// Indexes of `tasks` in an order where each follows what it runs after,
/// otherwise as given.
fn topological(tasks: &[(String, Vec<String>)], index: &BTreeMap<&str, usize>) -> Vec<usize> {
    let mut done = vec![false; tasks.len()];
    let mut order = Vec::new();
    while order.len() < tasks.len() {
        let ready = (0..tasks.len()).find(|&i| {
            !done[i]
                && tasks[i]
                    .1
                    .iter()
                    .filter_map(|a| index.get(a.as_str()))
                    .all(|&j| done[j])
        });
        // A cycle (refused before) would leave none ready: take the rest as given.
        let i = ready.unwrap_or_else(|| (0..tasks.len()).find(|&i| !done[i]).expect("some left"));
        done[i] = true;
        order.push(i);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, after: &[&str]) -> (String, Vec<String>) {
        (id.into(), after.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn chains_are_components_in_running_order() {
        let got = chains(&[
            t("c", &["b"]),
            t("x", &[]),
            t("b", &["a"]),
            t("a", &[]),
            t("y", &["outside"]),
        ]);
        let want: Vec<Vec<String>> = [&["a", "b", "c"][..], &["x"], &["y"]]
            .iter()
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn cycles_are_found_on_each_entry_that_closes_one() {
        let ids: Vec<TaskId> = ["a", "b", "c"]
            .iter()
            .map(|s| TaskId::parse(s).unwrap())
            .collect();
        let after = |i: usize| {
            vec![After {
                task: ids[i].clone(),
                span: Span::new(0, 1),
            }]
        };
        let (a0, a1, a2) = (after(1), after(0), after(0));
        let nodes = [
            GraphNode {
                task: &ids[0],
                after: &a0,
            },
            GraphNode {
                task: &ids[1],
                after: &a1,
            },
            GraphNode {
                task: &ids[2],
                after: &a2,
            },
        ];
        let problems = graph_problems(&nodes, &|_| true, &[]);
        let at: Vec<usize> = problems.iter().map(|p| p.0).collect();
        assert_eq!(at, [0, 1], "{problems:?}");
        assert!(
            problems[0].1.message.contains("a → b → a"),
            "{}",
            problems[0].1.message
        );
    }
}
