//! JSON schemas for briefs and config, generated from the raw serde types,
//! and a structural check of a YAML [`Node`] tree against them.
//!
//! Checking the tree against the same schema that editors use means the two
//! can never drift, and it lets us report *every* unknown key and wrong type
//! with its own span (serde stops at the first).

use serde_json::{Map, Value as Json};

use crate::spec::diagnostic::{did_you_mean, Problem};
use crate::spec::yaml::{Node, Span, Value};

/// Checks `node` against `schema` (a full schema with `$defs`), pushing one
/// problem per violation. `prefix` names the document (brief, config);
/// `whole` is where a problem about the whole document points (a missing
/// top-level key), e.g. a brief's opening `---`.
pub fn check(schema: &Json, node: &Node, prefix: Prefix, whole: Span, problems: &mut Vec<Problem>) {
    let checker = Checker {
        root: schema,
        prefix,
        whole,
    };
    checker.check(schema, node, &mut Vec::new(), None, problems);
}

/// Which document the codes belong to.
#[derive(Debug, Clone, Copy)]
pub enum Prefix {
    Brief,
    Config,
}

impl Prefix {
    fn code(self, what: &'static str) -> &'static str {
        match (self, what) {
            (Prefix::Brief, "unknown-key") => "brief::unknown-key",
            (Prefix::Brief, "missing-key") => "brief::missing-key",
            (Prefix::Brief, "wrong-type") => "brief::wrong-type",
            (Prefix::Brief, _) => "brief::invalid-value",
            (Prefix::Config, "unknown-key") => "config::unknown-key",
            (Prefix::Config, "missing-key") => "config::missing-key",
            (Prefix::Config, "wrong-type") => "config::wrong-type",
            (Prefix::Config, _) => "config::invalid-value",
        }
    }

    /// Where top-level keys are, after "in"/"at": a brief's keys are in its
    /// frontmatter; a config file is nothing but keys.
    fn top_level(self) -> &'static str {
        match self {
            Prefix::Brief => "in the frontmatter",
            Prefix::Config => "at the top level",
        }
    }

    fn top_level_keys(self) -> &'static str {
        match self {
            Prefix::Brief => "the keys of the frontmatter",
            Prefix::Config => "the top-level keys",
        }
    }

    /// The label of a problem about the whole document.
    fn whole_label(self) -> &'static str {
        match self {
            Prefix::Brief => "in this frontmatter",
            Prefix::Config => "at the top level of this file",
        }
    }
}

struct Checker<'a> {
    root: &'a Json,
    prefix: Prefix,
    whole: Span,
}

impl<'a> Checker<'a> {
    fn resolve(&self, schema: &'a Json) -> &'a Json {
        let mut schema = schema;
        // `$ref: "#/$defs/Name"` — schemars only makes local references.
        for _ in 0..16 {
            match schema.get("$ref").and_then(Json::as_str) {
                Some(r) => match r
                    .strip_prefix("#/")
                    .and_then(|p| self.root.pointer(&format!("/{p}")))
                {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    fn check(
        &self,
        schema: &'a Json,
        node: &Node,
        path: &mut Vec<String>,
        anchor: Option<Span>,
        out: &mut Vec<Problem>,
    ) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            return self.check_alternatives(branches, node, path, anchor, out);
        }
        let kinds = types_of(schema);
        if !kinds.is_empty() && !kinds.iter().any(|k| kind_matches(k, node)) {
            out.push(self.wrong_type(&kinds, node, path));
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Json::as_array) {
            return self.check_enum(allowed, node, path, out);
        }
        if let Some(allowed) = schema.get("const") {
            return self.check_enum(std::slice::from_ref(allowed), node, path, out);
        }
        match &node.value {
            Value::Map(entries) => self.check_map(schema, entries, path, anchor, out),
            Value::Seq(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        path.push(i.to_string());
                        self.check(item_schema, item, path, Some(item.span), out);
                        path.pop();
                    }
                }
            }
            Value::Int(i) => {
                if let Some(min) = schema.get("minimum").and_then(Json::as_i64) {
                    if *i < min {
                        out.push(
                            Problem::error(
                                self.prefix.code("invalid-value"),
                                node.span,
                                format!("`{}` must be at least {min}", dotted(path)),
                            )
                            .label(format!("{i} is too small"))
                            .help(format!("write a whole number of at least {min}")),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn check_alternatives(
        &self,
        branches: &'a [Json],
        node: &Node,
        path: &mut Vec<String>,
        anchor: Option<Span>,
        out: &mut Vec<Problem>,
    ) {
        let fitting: Vec<&Json> = branches
            .iter()
            .map(|b| self.resolve(b))
            .filter(|b| {
                let kinds = types_of(b);
                kinds.is_empty() || kinds.iter().any(|k| kind_matches(k, node))
            })
            .collect();
        match fitting.as_slice() {
            [] => {
                let kinds: Vec<&str> = branches
                    .iter()
                    .flat_map(|b| types_of(self.resolve(b)))
                    .collect();
                out.push(self.wrong_type(&kinds, node, path));
            }
            // Enumerations written as one `const` per variant.
            many if many.iter().all(|b| b.get("const").is_some()) => {
                let allowed: Vec<Json> = many
                    .iter()
                    .filter_map(|b| b.get("const").cloned())
                    .collect();
                self.check_enum(&allowed, node, path, out);
            }
            [first, ..] => self.check(first, node, path, anchor, out),
        }
    }

    fn check_map(
        &self,
        schema: &'a Json,
        entries: &[(Node, Node)],
        path: &mut Vec<String>,
        anchor: Option<Span>,
        out: &mut Vec<Problem>,
    ) {
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let additional = schema.get("additionalProperties");
        for (i, (key, value)) in entries.iter().enumerate() {
            let Value::Str(name) = &key.value else {
                out.push(
                    Problem::error(
                        self.prefix.code("wrong-type"),
                        key.span,
                        format!("keys must be text, found {}", key.value.kind()),
                    )
                    .label("not a text key")
                    .help("write a key name before the `:`, e.g. `title:`"),
                );
                continue;
            };
            if entries[..i].iter().any(|(k, _)| k.value == key.value) {
                out.push(
                    Problem::error(
                        self.prefix.code("invalid-value"),
                        key.span,
                        format!("duplicate key `{name}`"),
                    )
                    .label("written a second time here")
                    .help("remove one of the two; YAML would silently keep only one"),
                );
                continue;
            }
            let value_schema = match properties.get(name) {
                Some(s) => s,
                None => match additional {
                    Some(Json::Bool(false)) => {
                        out.push(self.unknown_key(name, key, properties, path));
                        continue;
                    }
                    Some(s @ Json::Object(_)) => s,
                    _ => continue,
                },
            };
            path.push(name.clone());
            self.check(value_schema, value, path, Some(key.span), out);
            path.pop();
        }
        self.check_required(schema, entries, path, anchor, out);
    }

    /// Each key the schema requires is among the entries.
    fn check_required(
        &self,
        schema: &Json,
        entries: &[(Node, Node)],
        path: &[String],
        anchor: Option<Span>,
        out: &mut Vec<Problem>,
    ) {
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for name in required.iter().filter_map(Json::as_str) {
                if !entries
                    .iter()
                    .any(|(k, _)| matches!(&k.value, Value::Str(s) if s == name))
                {
                    let full = dotted_with(path, name);
                    out.push(
                        Problem::error(
                            self.prefix.code("missing-key"),
                            anchor.unwrap_or(self.whole),
                            format!("missing required key `{full}`"),
                        )
                        .label(if path.is_empty() {
                            self.prefix.whole_label().to_string()
                        } else {
                            format!("in `{}`", dotted(path))
                        })
                        .help(missing_help(&full)),
                    );
                }
            }
        }
    }

    fn check_enum(&self, allowed: &[Json], node: &Node, path: &[String], out: &mut Vec<Problem>) {
        let given = match &node.value {
            Value::Str(s) => Json::String(s.clone()),
            Value::Int(i) => Json::from(*i),
            Value::Bool(b) => Json::Bool(*b),
            _ => Json::Null,
        };
        if allowed.contains(&given) {
            return;
        }
        let names: Vec<&str> = allowed.iter().filter_map(Json::as_str).collect();
        let mut problem = Problem::error(
            self.prefix.code("invalid-value"),
            node.span,
            format!("`{}` must be one of: {}", dotted(path), names.join(", ")),
        )
        .label("not an allowed value");
        let best = given
            .as_str()
            .and_then(|s| did_you_mean(s, names.iter().copied()));
        problem = match best {
            Some(best) => problem.help(format!("did you mean `{best}`?")),
            None => problem.help(format!(
                "write one of: {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        out.push(problem);
    }

    fn unknown_key(
        &self,
        name: &str,
        key: &Node,
        properties: &Map<String, Json>,
        path: &[String],
    ) -> Problem {
        let known: Vec<&str> = properties.keys().map(String::as_str).collect();
        let (place, listing) = if path.is_empty() {
            (
                self.prefix.top_level().to_string(),
                self.prefix.top_level_keys().to_string(),
            )
        } else {
            let at = format!("`{}`", dotted(path));
            (format!("in {at}"), format!("the keys of {at}"))
        };
        let listing = format!("{listing} are: {}", known.join(", "));
        let help = match did_you_mean(name, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? ({listing})"),
            None => listing,
        };
        Problem::error(
            self.prefix.code("unknown-key"),
            key.span,
            format!("unknown key `{name}` {place}"),
        )
        .label("unknown key")
        .help(format!(
            "{help}. Unknown keys are errors so that a typo never switches a policy off"
        ))
    }

    fn wrong_type(&self, kinds: &[&str], node: &Node, path: &[String]) -> Problem {
        let expected = kinds
            .iter()
            .filter(|k| **k != "null")
            .map(|k| article(k))
            .collect::<Vec<_>>()
            .join(" or ");
        let found = article(node.value.kind());
        Problem::error(
            self.prefix.code("wrong-type"),
            node.span,
            format!("`{}` must be {expected}, found {found}", dotted(path)),
        )
        .label(format!("this is {found}"))
        .help(wrong_type_help(kinds, node, path))
    }
}

/// Fields whose text is a duration (`20m`): a bare number there is not
/// fixed by quoting it (`"20"` has no unit either).
const DURATION_FIELDS: &[&str] = &["timeout", "kill_grace"];

/// How to write a value of one of `kinds` where `node` was written.
fn wrong_type_help(kinds: &[&str], node: &Node, path: &[String]) -> String {
    let has = |k: &str| kinds.contains(&k);
    let key = path
        .iter()
        .rev()
        .find(|p| !p.chars().all(|c| c.is_ascii_digit()))
        .map(String::as_str);
    let is_duration = path
        .last()
        .is_some_and(|last| DURATION_FIELDS.contains(&last.as_str()));
    let quoted_number = match &node.value {
        Value::Str(s) => {
            let s = s.trim();
            (s.parse::<f64>().is_ok() && s.chars().any(|c| c.is_ascii_digit())).then_some(s)
        }
        _ => None,
    };
    if has("array") && !matches!(node.value, Value::Seq(_)) {
        "write a list, e.g. `[\"src/**\"]` or one `- item` per line".into()
    } else if has("string") && is_duration {
        "write a duration with a unit, e.g. `20m` or `90s`".into()
    } else if has("string") {
        match node.value {
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => "quote it to make it text".into(),
            Value::Seq(_) => "write one text value, not a list; quote text that starts with `[`, e.g. `\"[draft] fix the retry\"`".into(),
            Value::Map(_) => "write one text value, not a mapping; quote text that contains `: `, e.g. `\"fix: retry\"`".into(),
            _ => match key {
                Some(key) => format!("write the text after `{key}:`"),
                None => "write a text value".into(),
            },
        }
    } else if (has("integer") || has("number")) && quoted_number.is_some() {
        format!(
            "remove the quotes: numbers are written bare, e.g. `{}`",
            quoted_number.unwrap_or_default()
        )
    } else if has("integer") {
        "write a whole number, e.g. `3`".into()
    } else if has("number") {
        "write a number, e.g. `2.5`".into()
    } else if has("boolean") {
        "write `true` or `false`".into()
    } else if has("object") {
        match key {
            Some(key) => format!("write `name: value` lines indented under `{key}:`"),
            None => "write `name: value` lines".into(),
        }
    } else {
        "see `git agent schema` for what each key accepts".into()
    }
}

fn types_of(schema: &Json) -> Vec<&str> {
    match schema.get("type") {
        Some(Json::String(s)) => vec![s.as_str()],
        Some(Json::Array(list)) => list.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

fn kind_matches(kind: &str, node: &Node) -> bool {
    let actual = node.value.kind();
    actual == kind || (kind == "number" && actual == "integer")
}

fn article(kind: &str) -> String {
    match kind {
        "array" => "a list".into(),
        "object" => "a mapping".into(),
        "string" => "text".into(),
        "integer" => "a whole number".into(),
        "number" => "a number".into(),
        "boolean" => "true or false".into(),
        "null" => "empty".into(),
        other => other.into(),
    }
}

fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn dotted_with(path: &[String], last: &str) -> String {
    let mut p = path.to_vec();
    p.push(last.to_string());
    dotted(&p)
}

fn missing_help(key: &str) -> String {
    match key {
        "scope" => "add `scope:` with `write: [\"globs/of/paths/**\"]`: the paths this run may change".into(),
        "checks" => "add `checks:` with at least one `- name: tests` / `run: <command>`: checks decide success".into(),
        "title" => "add `title: <one line that says what the run does>`".into(),
        "scope.write" => "add `write: [\"src/module/**\"]` under `scope`: the paths this run may change".into(),
        k if k.ends_with(".command") => "add `command: <program or shell command line>`, e.g. `command: ./scripts/agent.sh`".into(),
        k if k.ends_with(".adapter") => "add `adapter: command`: the agent is a program that reads $GIT_AGENT_PROMPT_FILE".into(),
        k if k.ends_with(".run") => "add `run: <shell command>`: the check passes when it exits 0".into(),
        k if k.ends_with(".name") => "add `name: <short name>` to identify the check in logs and PRs".into(),
        k => format!("add `{}: ...`", k.rsplit('.').next().unwrap_or(k)),
    }
}
