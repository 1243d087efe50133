//! Diagnostics that point into a file: `file:line:col`, the line, a caret,
//! and a hint. Brief and config validation collect every problem of a file
//! into one [`FileReport`] instead of stopping at the first.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

use crate::yaml::Span;

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

    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
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
    fn line_col_counts_characters() {
        let report = FileReport::new(Path::new("x"), "x".into(), Arc::from("ab\nçd: e\n"));
        let offset = "ab\nçd".len();
        assert_eq!(report.line_col(offset), (2, 3));
    }
}
