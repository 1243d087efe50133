//! The one place that parses YAML.
//!
//! serde_yaml is deprecated upstream, so everything YAML-specific lives here:
//! the rest of the crate sees a [`Node`] tree that remembers where every key
//! and value stood in the file (for diagnostics), and typed values decoded
//! from it. Swapping the parser later touches this file only.
//!
//! Two parsers are used on purpose: yaml-rust2's event parser gives a span
//! for every node (serde_yaml gives locations only for its first error), and
//! serde_yaml decodes the validated tree into the raw serde structs.

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A byte range in the whole file (not in the frontmatter alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Span { offset, len }
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(span: Span) -> Self {
        miette::SourceSpan::new(span.offset.into(), span.len)
    }
}

/// A YAML value with the span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their order and their own spans.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// The JSON-schema name of this value's type, for messages and for the
    /// structural check against the schema.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "array",
            Value::Map(_) => "object",
        }
    }
}

impl Node {
    /// The node at a path of map keys and sequence indexes, e.g.
    /// `["scope", "write", "2"]`.
    pub fn find(&self, path: &[&str]) -> Option<&Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == first))
                .and_then(|(_, v)| v.find(rest)),
            Value::Seq(items) => first
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .and_then(|v| v.find(rest)),
            _ => None,
        }
    }

    /// The span of the node at `path`, or of the nearest ancestor that exists.
    pub fn span_of(&self, path: &[&str]) -> Span {
        (0..=path.len())
            .rev()
            .find_map(|n| self.find(&path[..n]))
            .map(|n| n.span)
            .unwrap_or(self.span)
    }

    /// The span of the *key* that introduces `path` (its last element), for
    /// messages about a key rather than its value.
    pub fn key_span(&self, path: &[&str]) -> Option<Span> {
        let (last, parent) = path.split_last()?;
        match &self.find(parent)?.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == last))
                .map(|(k, _)| k.span),
            _ => None,
        }
    }
}

/// A YAML syntax error, located in the whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub span: Span,
    /// For a key written twice in one mapping: the first one (`span` is
    /// the second).
    pub first: Option<Span>,
}

/// Parses one YAML document that starts at byte `base` of the file.
/// An empty document is an empty map (a frontmatter with no keys).
pub fn parse(text: &str, base: usize) -> Result<Node, SyntaxError> {
    // serde_yaml (libyaml) first: its messages are the familiar ones. A
    // duplicate key is located below, at its second occurrence.
    if let Err(err) = serde_yaml::from_str::<serde_yaml::Value>(text) {
        let message = clean_serde_yaml_message(&err.to_string());
        if !message.contains("duplicate entry with key") {
            let offset = err
                .location()
                .map(|loc| line_col_to_byte(text, loc.line(), loc.column()))
                .unwrap_or(0);
            return Err(SyntaxError {
                message,
                span: char_span(text, base, offset),
                first: None,
            });
        }
    }
    let index = CharIndex::new(text);
    let mut builder = Builder {
        text,
        base,
        index: &index,
        stack: Vec::new(),
        root: None,
        docs: 0,
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        message: e.info().to_string(),
        span: char_span(text, base, index.byte(e.marker().index())),
        first: None,
    })?;
    if builder.docs > 1 {
        return Err(SyntaxError {
            message: "more than one YAML document".into(),
            span: char_span(text, base, 0),
            first: None,
        });
    }
    let root = builder.root.unwrap_or(Node {
        span: Span::new(base, 0),
        value: Value::Map(Vec::new()),
    });
    if let Some((key, first, again)) = duplicate_key(&root) {
        return Err(SyntaxError {
            message: format!("the key `{key}` is written twice"),
            span: again,
            first: Some(first),
        });
    }
    Ok(root)
}

/// The first key (in document order of its second occurrence) written
/// twice in one mapping: its text, first span, second span.
fn duplicate_key(node: &Node) -> Option<(String, Span, Span)> {
    let mut found: Option<(String, Span, Span)> = None;
    let mut consider = |d: (String, Span, Span)| {
        if found.as_ref().map_or(true, |f| d.2.offset < f.2.offset) {
            found = Some(d);
        }
    };
    match &node.value {
        Value::Map(pairs) => {
            for (i, (key, value)) in pairs.iter().enumerate() {
                if let Some((first, _)) = pairs[..i].iter().find(|(k, _)| k.value == key.value) {
                    let text = match &key.value {
                        Value::Str(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    consider((text, first.span, key.span));
                }
                if let Some(d) = duplicate_key(value) {
                    consider(d);
                }
            }
        }
        Value::Seq(items) => {
            for item in items {
                if let Some(d) = duplicate_key(item) {
                    consider(d);
                }
            }
        }
        _ => {}
    }
    found
}

/// The span of the character at byte `offset` of `text` (a document that
/// starts at byte `base` of the file): zero-length at the end of the text.
fn char_span(text: &str, base: usize, offset: usize) -> Span {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let len = text[offset..].chars().next().map_or(0, char::len_utf8);
    Span::new(base + offset, len)
}

/// A validated tree that serde could still not decode: the structural
/// check missed something. Its message (without serde_yaml's position,
/// which the diagnostic shows) is still shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// Decodes a validated tree into a raw serde type.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    serde_yaml::from_str(text).map_err(|e| DecodeError(clean_serde_yaml_message(&e.to_string())))
}

fn clean_serde_yaml_message(message: &str) -> String {
    // serde_yaml appends " at line L column C"; the diagnostic shows that.
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// 1-based line and column (in characters) to a byte offset in `text`.
fn line_col_to_byte(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map(|(i, _)| i)
            .unwrap_or(rest.len())
}

/// Maps yaml-rust2's character indexes to byte offsets.
struct CharIndex {
    /// Byte offset of each char; empty when the text is ASCII (identity).
    offsets: Vec<usize>,
    len: usize,
}

impl CharIndex {
    fn new(text: &str) -> Self {
        let offsets = if text.is_ascii() {
            Vec::new()
        } else {
            text.char_indices().map(|(i, _)| i).collect()
        };
        CharIndex {
            offsets,
            len: text.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.offsets.is_empty() {
            char_index.min(self.len)
        } else {
            self.offsets.get(char_index).copied().unwrap_or(self.len)
        }
    }
}

enum Partial {
    Seq(Span, Vec<Node>),
    Map(Span, Vec<(Node, Node)>, Option<Node>),
}

struct Builder<'a> {
    text: &'a str,
    base: usize,
    index: &'a CharIndex,
    stack: Vec<Partial>,
    root: Option<Node>,
    docs: usize,
}

impl Builder<'_> {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Partial::Seq(_, items)) => items.push(node),
            Some(Partial::Map(_, entries, key)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => self.root = Some(node),
        }
    }

    fn scalar_span(&self, mark: &Marker, value: &str, style: TScalarStyle) -> Span {
        let start = self.index.byte(mark.index());
        let rest = &self.text[start..];
        let len = match style {
            TScalarStyle::Plain => plain_len(rest, value),
            TScalarStyle::SingleQuoted => quoted_len(rest, '\''),
            TScalarStyle::DoubleQuoted => quoted_len(rest, '"'),
            // Block scalars: point at the indicator.
            TScalarStyle::Literal | TScalarStyle::Folded => None,
        };
        let len = match len {
            Some(len) if len > 0 => len,
            // An empty value, or a token not found as expected: the
            // character at the start (none at the end of the text).
            _ => rest.chars().next().map_or(0, char::len_utf8),
        };
        Span::new(self.base + start, len)
    }

    /// A flow mapping is shown at its `{`. A block mapping's start mark is
    /// where the parser saw its first `:` (or `?`), not where the mapping
    /// begins: it is shown at its first key instead.
    fn map_span(&self, start: Span, entries: &[(Node, Node)]) -> Span {
        let at_brace = self
            .text
            .get(start.offset - self.base..)
            .is_some_and(|rest| rest.starts_with('{'));
        match entries.first() {
            Some((key, _)) if !at_brace => key.span,
            _ => start,
        }
    }
}

/// The written length of a plain scalar whose decoded value is `value`, at
/// the start of `rest`. A plain scalar has no escapes, but one written over
/// several lines is folded: line breaks and indentation become one space
/// (or a line break), so the words are matched one by one.
fn plain_len(rest: &str, value: &str) -> Option<usize> {
    if rest.starts_with(value) {
        return Some(value.len());
    }
    let mut end = 0;
    for word in value.split_whitespace() {
        let skipped = rest[end..].len() - rest[end..].trim_start().len();
        end += skipped;
        if !rest[end..].starts_with(word) {
            return None;
        }
        end += word.len();
    }
    Some(end)
}

/// The written length of a quoted scalar at the start of `rest` (from the
/// opening quote through the closing one), scanning the source: escapes
/// (`\x` in double quotes, `''` in single quotes) make the decoded value
/// shorter or longer than what is written.
fn quoted_len(rest: &str, quote: char) -> Option<usize> {
    let mut chars = rest.char_indices();
    // A tag or an anchor may come before the opening quote.
    chars.by_ref().find(|&(_, c)| c == quote)?;
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && rest[i + 1..].starts_with('\'') {
                chars.next();
            } else {
                return Some(i + 1);
            }
        }
    }
    None
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let here = char_span(self.text, self.base, self.index.byte(mark.index()));
        match event {
            Event::DocumentStart => self.docs += 1,
            Event::Scalar(value, style, _, _) => {
                let span = self.scalar_span(&mark, &value, style);
                let value = if style == TScalarStyle::Plain {
                    resolve_plain(value)
                } else {
                    Value::Str(value)
                };
                self.push(Node { span, value });
            }
            Event::SequenceStart(..) => self.stack.push(Partial::Seq(here, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Partial::Map(here, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Partial::Seq(span, items)) => Node {
                        span,
                        value: Value::Seq(items),
                    },
                    Some(Partial::Map(span, entries, _)) => Node {
                        span: self.map_span(span, &entries),
                        value: Value::Map(entries),
                    },
                    None => return,
                };
                self.push(node);
            }
            // Aliases are resolved by serde_yaml when decoding; for spans a
            // null placeholder is enough (briefs have no reason to use them).
            Event::Alias(_) => self.push(Node {
                span: here,
                value: Value::Null,
            }),
            _ => {}
        }
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(s: String) -> Value {
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => {
            if let Ok(i) = s.parse::<i64>() {
                Value::Int(i)
            } else if looks_like_float(&s) {
                s.parse::<f64>().map(Value::Float).unwrap_or(Value::Str(s))
            } else {
                Value::Str(s)
            }
        }
    }
}

fn looks_like_float(s: &str) -> bool {
    let t = s.trim_start_matches(['-', '+']);
    matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (t
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
            && t.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, span: Span) -> &str {
        &text[span.offset..span.offset + span.len]
    }

    #[test]
    fn spans_point_at_keys_and_values_in_the_whole_file() {
        let file = "---\ntitle: Héllo wörld\nscope:\n  write: [\"src/**\", tests]\n---\n";
        let base = 4;
        let root = parse(&file[base..file.len() - 4], base).expect("valid yaml");
        let title = root.find(&["title"]).expect("title");
        assert_eq!(at(file, title.span), "Héllo wörld");
        let second = root.find(&["scope", "write", "1"]).expect("write[1]");
        assert_eq!(at(file, second.span), "tests");
        let first = root.find(&["scope", "write", "0"]).expect("write[0]");
        assert_eq!(at(file, first.span), "\"src/**\"");
        let key = root.key_span(&["scope", "write"]).expect("key");
        assert_eq!(at(file, key), "write");
    }

    #[test]
    fn spans_cover_what_was_written() {
        let text =
            "a: 'it''s é'\nb: \"\\\\€\\\"\"\nc: two\n  lines\nd:\n  - k: v\n    l: w\ne: {k: v}\n";
        let root = parse(text, 0).expect("valid yaml");
        let span = |path: &[&str]| at(text, root.find(path).expect("node").span);
        assert_eq!(span(&["a"]), "'it''s é'");
        assert_eq!(span(&["b"]), "\"\\\\€\\\"\"");
        assert_eq!(span(&["c"]), "two\n  lines");
        // A block mapping is shown at its first key, a flow one at its `{`.
        assert_eq!(span(&["d", "0"]), "k");
        assert_eq!(span(&["e"]), "{");
        assert_eq!(at(text, root.span), "a");
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_1_2() {
        let root = parse("a: 3\nb: '3'\nc: true\nd: yes\ne: ~\nf: 1.5\n", 0).expect("yaml");
        let kind = |k: &str| root.find(&[k]).map(|n| n.value.kind());
        assert_eq!(kind("a"), Some("integer"));
        assert_eq!(kind("b"), Some("string"));
        assert_eq!(kind("c"), Some("boolean"));
        assert_eq!(kind("d"), Some("string"));
        assert_eq!(kind("e"), Some("null"));
        assert_eq!(kind("f"), Some("number"));
    }

    #[test]
    fn syntax_errors_are_located_in_the_whole_file() {
        let file = "---\ntitle: x\nscope: [a, b\nchecks: []\n---\n";
        let err = parse(&file[4..file.len() - 4], 4).expect_err("broken flow sequence");
        assert!(err.span.offset >= 4, "{err:?}");
        assert!(!err.message.contains(" at line "), "{}", err.message);
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        let root = parse("", 10).expect("empty");
        assert_eq!(root.value, Value::Map(Vec::new()));
        assert_eq!(root.span.offset, 10);
    }
}
