//! Compiled scope globs and the classification of changed paths.
//!
//! Globs use `literal_separator(true)`: `*` never crosses `/`, `**` does.
//! `deny` beats `write`. A path is matched as a repo-relative path with `/`.

use crate::model::event::VerdictRecord;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

/// Why a glob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty glob")]
    Empty,
    #[error("globs are relative to the repository root and must not start with `/`")]
    Absolute,
    #[error("globs must not contain `..`")]
    ParentDir,
    #[error("{0}")]
    Syntax(globset::ErrorKind),
    #[error("`{pattern}`: {source}")]
    In {
        pattern: String,
        #[source]
        source: Box<GlobError>,
    },
}

/// Compiles one scope glob the way every scope glob is compiled.
pub fn compile(pattern: &str) -> Result<Glob, GlobError> {
    if pattern.is_empty() {
        return Err(GlobError::Empty);
    }
    if pattern.starts_with('/') {
        return Err(GlobError::Absolute);
    }
    if pattern.split('/').any(|part| part == "..") {
        return Err(GlobError::ParentDir);
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| GlobError::Syntax(e.kind().clone()))
}

/// A named list of globs, compiled once.
#[derive(Debug, Clone)]
pub struct GlobList {
    patterns: Vec<String>,
    set: GlobSet,
}

impl GlobList {
    /// Compiles already-validated patterns.
    pub fn new(patterns: &[String]) -> Result<Self, GlobError> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            builder.add(compile(p).map_err(|e| GlobError::In {
                pattern: p.clone(),
                source: Box::new(e),
            })?);
        }
        Ok(GlobList {
            patterns: patterns.to_vec(),
            set: builder
                .build()
                .map_err(|e| GlobError::Syntax(e.kind().clone()))?,
        })
    }

    pub fn empty() -> Self {
        GlobList {
            patterns: Vec::new(),
            set: GlobSet::empty(),
        }
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern (in the order written) that matches `path`.
    pub fn first_match(&self, path: &str) -> Option<&str> {
        self.set
            .matches(path)
            .into_iter()
            .min()
            .map(|i| self.patterns[i].as_str())
    }
}

/// What a brief's scope says about one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Matched `scope.write` (the glob) and no `deny`.
    Allowed { glob: String },
    /// Matched `scope.deny`, whatever `write` says.
    Denied { glob: String },
    /// Matched no `write` glob.
    OutOfScope,
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

/// The compiled write scope of a brief.
#[derive(Debug, Clone)]
pub struct WriteScope {
    pub write: GlobList,
    pub deny: GlobList,
}

impl WriteScope {
    pub fn classify(&self, path: &str) -> Verdict {
        if let Some(glob) = self.deny.first_match(path) {
            return Verdict::Denied { glob: glob.into() };
        }
        match self.write.first_match(path) {
            Some(glob) => Verdict::Allowed { glob: glob.into() },
            None => Verdict::OutOfScope,
        }
    }
}

/// The directory part of a glob before its first wildcard: `src/http/**` →
/// `src/http/`. Two write scopes can only overlap when one such prefix is a
/// prefix of the other.
pub fn literal_prefix(pattern: &str) -> &str {
    let first_wild = pattern
        .find(['*', '?', '[', '{', '\\'])
        .unwrap_or(pattern.len());
    if first_wild == pattern.len() {
        return pattern;
    }
    match pattern[..first_wild].rfind('/') {
        Some(i) => &pattern[..=i],
        None => "",
    }
}

/// Whether two lists of write globs may match a common path. Conservative:
/// it may say "overlap" for globs that cannot both match, never the reverse.
pub fn may_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| {
        b.iter().any(|y| {
            let (px, py) = (literal_prefix(x), literal_prefix(y));
            px.starts_with(py) || py.starts_with(px)
        })
    })
}

impl From<Verdict> for VerdictRecord {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Allowed { glob } => VerdictRecord::Allowed { glob },
            Verdict::Denied { glob } => VerdictRecord::Denied { glob },
            Verdict::OutOfScope => VerdictRecord::OutOfScope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(write: &[&str], deny: &[&str]) -> WriteScope {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        WriteScope {
            write: GlobList::new(&v(write)).expect("write globs"),
            deny: GlobList::new(&v(deny)).expect("deny globs"),
        }
    }

    #[test]
    fn star_does_not_cross_slash_and_deny_beats_write() {
        let s = scope(&["src/http/**", "tests/http_*.rs"], &["src/http/tls.rs"]);
        assert_eq!(
            s.classify("src/http/retry.rs"),
            Verdict::Allowed {
                glob: "src/http/**".into()
            }
        );
        assert_eq!(
            s.classify("src/http/tls.rs"),
            Verdict::Denied {
                glob: "src/http/tls.rs".into()
            }
        );
        assert!(s.classify("tests/http_retry.rs").is_allowed());
        assert_eq!(s.classify("tests/sub/http_retry.rs"), Verdict::OutOfScope);
        assert_eq!(s.classify("src/payments.rs"), Verdict::OutOfScope);
    }

    #[test]
    fn refuses_escaping_globs() {
        assert!(compile("/etc/**").is_err());
        assert!(compile("../x").is_err());
        assert!(compile("src/[").is_err());
        assert!(compile("src/**").is_ok());
    }

    #[test]
    fn overlap_by_literal_prefix() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(may_overlap(&v(&["src/**"]), &v(&["src/http/*.rs"])));
        assert!(!may_overlap(&v(&["src/http/**"]), &v(&["docs/**"])));
        assert!(may_overlap(&v(&["*.md"]), &v(&["docs/**"])));
        assert!(!may_overlap(&v(&["README.md"]), &v(&["CHANGELOG.md"])));
    }
}
