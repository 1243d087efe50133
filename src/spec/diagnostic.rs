//! Diagnostics that point into a file: `file:line:col`, the line, a caret,
//! and a hint. Brief and config validation collect every problem of a file
//! into one [`FileReport`] instead of stopping at the first.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

use crate::spec::duration::DurationError;
use crate::spec::yaml::Span;

/// One problem in a file.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Stable machine-readable code, e.g. `brief::unknown-key`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    /// Short text under the caret.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Problem {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Problem {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: String::from("here"),
            help: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, span, message)
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// All problems found in one file, with the file's text for rendering.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    /// The path as shown to the user (relative to the repo when possible).
    pub display_path: String,
    pub source: Arc<str>,
    pub problems: Vec<Problem>,
}

impl FileReport {
    pub fn new(path: &Path, display_path: String, source: Arc<str>) -> Self {
        FileReport {
            path: path.to_path_buf(),
            display_path,
            source,
            problems: Vec::new(),
        }
    }

    /// Adds a problem, its span fitted to the file (see [`fit_span`]).
    pub fn push(&mut self, mut problem: Problem) {
        problem.span = fit_span(&self.source, problem.span);
        self.problems.push(problem);
    }

    /// Adds every problem of `problems` through [`FileReport::push`].
    pub fn extend(&mut self, problems: impl IntoIterator<Item = Problem>) {
        for problem in problems {
            self.push(problem);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors()
    }

    /// Each problem as a miette diagnostic, in file order.
    pub fn diagnostics(&self) -> Vec<SourceDiagnostic> {
        let mut problems = self.problems.clone();
        // `problems` is public: fit spans that did not come through `push`.
        for problem in &mut problems {
            problem.span = fit_span(&self.source, problem.span);
        }
        problems.sort_by_key(|p| (p.span.offset, p.severity != Severity::Error));
        problems
            .into_iter()
            .map(|problem| SourceDiagnostic {
                source: NamedSource::new(self.display_path.clone(), self.source.clone()),
                problem,
            })
            .collect()
    }

    /// 1-based line and column of a byte offset, for JSON output.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.source[..offset.min(self.source.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (line, before[line_start..].chars().count() + 1)
    }

    /// Renders every problem with miette's graphical handler.
    pub fn render(&self, color: bool, width: usize) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(width);
        let mut out = String::new();
        for diagnostic in self.diagnostics() {
            // Writing into a String cannot fail.
            let _ = handler.render_report(&mut out, &diagnostic);
        }
        out
    }
}

/// A [`Problem`] bound to its file, as a miette diagnostic.
#[derive(Debug)]
pub struct SourceDiagnostic {
    source: NamedSource<Arc<str>>,
    problem: Problem,
}

impl fmt::Display for SourceDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for SourceDiagnostic {}

impl Diagnostic for SourceDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.problem.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.problem.label.clone()),
            self.problem.span,
        ))))
    }
}

/// A span made safe to show in `source`: inside the text, on character
/// boundaries. The start is moved back to the start of its character; the
/// end is clamped to the text and moved forward to the end of its
/// character, so a span that touches a multi-byte character covers all of
/// it. A zero-length span stays zero-length.
///
/// A span at (or past) the very end of the text is moved onto its last
/// character, because a label there would not be drawn: it covers that
/// character, or is zero-length at a final line break (the end of the last
/// line) or when it was zero-length. Only an empty text keeps `0..0`.
/// The 1-based line of byte `offset` in `source`.
pub fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

/// The problem for a YAML syntax error; a key written twice gets its own
/// code (`<prefix>::duplicate-key`) and points at the second occurrence.
pub fn yaml_problem(
    source: &str,
    error: crate::spec::yaml::SyntaxError,
    syntax_code: &'static str,
    duplicate_code: &'static str,
    syntax_help: &str,
) -> Problem {
    match error.first {
        Some(first) => Problem::error(
            duplicate_code,
            error.span,
            format!("{} (first on line {})", error.message, line_of(source, first.offset)),
        )
        .label("written again here")
        .help("keep one: YAML would silently use only one of the values, and a policy must never depend on which"),
        None => Problem::error(
            syntax_code,
            error.span,
            format!("YAML syntax error: {}", error.message),
        )
        .label("here")
        .help(syntax_help.to_string()),
    }
}

pub fn fit_span(source: &str, span: Span) -> Span {
    let len = source.len();
    if span.offset >= len {
        return match source.chars().next_back() {
            None => Span::new(0, 0),
            Some(last) => {
                let start = len - last.len_utf8();
                if span.len == 0 || last == '\n' {
                    Span::new(start, 0)
                } else {
                    Span::new(start, last.len_utf8())
                }
            }
        };
    }
    let mut start = span.offset;
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    if span.len == 0 {
        return Span::new(start, 0);
    }
    let mut end = span.offset.saturating_add(span.len).clamp(start, len);
    while !source.is_char_boundary(end) {
        end += 1;
    }
    Span::new(start, end - start)
}

/// The message of a problem about a duration that `duration::parse` refused
/// with `error`. Its own errors (no unit, zero) say what is wrong;
/// humantime's (`expected number at 0`) talk about its parser, so they are
/// replaced by what the user wrote.
pub fn duration_message(text: &str, error: &DurationError) -> String {
    let text = text.trim();
    match error {
        DurationError::Empty => "the duration is empty".into(),
        DurationError::NoUnit(_) => format!("invalid duration: {error}"),
        DurationError::Zero => format!("invalid duration `{text}`: {error}"),
        DurationError::Unreadable(humantime::DurationError::UnknownUnit { unit, .. })
            if !unit.is_empty() =>
        {
            format!("`{text}` is not a duration: `{unit}` is not a unit")
        }
        DurationError::Unreadable(humantime::DurationError::NumberOverflow) => {
            format!("`{text}` is not a duration: the number is too large")
        }
        DurationError::Unreadable(_) => format!("`{text}` is not a duration"),
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["write", "deny", "read"];
        assert_eq!(did_you_mean("wirte", keys), Some("write"));
        assert_eq!(did_you_mean("writes", keys), Some("write"));
        assert_eq!(did_you_mean("banana", keys), None);
    }

    #[test]
    fn spans_are_fitted_to_the_text_and_its_characters() {
        let text = "a: é€\n";
        let e = text.find('é').expect("é");
        // Inside the text already: unchanged.
        assert_eq!(fit_span(text, Span::new(0, 1)), Span::new(0, 1));
        // One byte of a two-byte character: the whole character.
        assert_eq!(fit_span(text, Span::new(e, 1)), Span::new(e, 2));
        // Starting inside a character: from its start.
        assert_eq!(fit_span(text, Span::new(e + 1, 1)), Span::new(e, 2));
        // Ending inside the three-byte `€`: to its end.
        assert_eq!(fit_span(text, Span::new(e, 3)), Span::new(e, 5));
        // At or past the end: onto the last character, zero-length at a
        // final line break.
        let last_line_end = text.len() - 1;
        assert_eq!(
            fit_span(text, Span::new(text.len(), 1)),
            Span::new(last_line_end, 0)
        );
        assert_eq!(
            fit_span(text, Span::new(99, 3)),
            Span::new(last_line_end, 0)
        );
        let euro = "a: €".len() - 3;
        assert_eq!(fit_span("a: €", Span::new(6, 1)), Span::new(euro, 3));
        assert_eq!(fit_span("a: €", Span::new(6, 0)), Span::new(euro, 0));
        assert_eq!(fit_span("{", Span::new(1, 1)), Span::new(0, 1));
        assert_eq!(
            fit_span(text, Span::new(2, usize::MAX)),
            Span::new(2, text.len() - 2)
        );
        assert_eq!(fit_span("", Span::new(0, 1)), Span::new(0, 0));
        // A point inside a character moves to its start.
        assert_eq!(fit_span(text, Span::new(e + 1, 0)), Span::new(e, 0));
    }

    #[test]
    fn duration_messages_name_what_was_written() {
        let message = |text: &str| {
            let error = crate::spec::duration::parse(text).expect_err("refused");
            duration_message(text, &error)
        };
        assert_eq!(message("soon"), "`soon` is not a duration");
        assert_eq!(message("5x"), "`5x` is not a duration: `x` is not a unit");
        assert_eq!(message("20"), "invalid duration: `20` has no unit");
        assert_eq!(message(" "), "the duration is empty");
        assert_eq!(
            message("0s"),
            "invalid duration `0s`: a duration of zero would stop at once"
        );
    }

    #[test]
    fn pushed_problems_are_fitted() {
        let mut report = FileReport::new(Path::new("x"), "x".into(), Arc::from("é"));
        report.push(Problem::error("x::y", Span::new(1, 1), "m"));
        assert_eq!(report.problems[0].span, Span::new(0, 2));
    }

    #[test]
    fn line_col_counts_characters() {
        let report = FileReport::new(Path::new("x"), "x".into(), Arc::from("ab\nçd: e\n"));
        let offset = "ab\nçd".len();
        assert_eq!(report.line_col(offset), (2, 3));
    }
}
