//! Tidy tests (in the spirit of rust-analyzer's): the architecture that
//! `docs/ARCHITECTURE.md` describes, checked on the source so that it
//! cannot silently rot.
//!
//! - Layers import only layers below them (so: no cycles, and nothing
//!   outside `cli/` imports `cli`); `model` imports no other layer; every
//!   top-level module has a place in the table.
//! - No file over 800 lines of code and no function over 120 (outside
//!   tests; blank and comment lines do not count).
//! - Library code does not print: only `cli/` and `main.rs` write to the
//!   terminal; everything else returns data or emits events.
//! - No `#[allow(...)]`: a lint is silenced with `#[expect(..., reason)]`.
//!
//! Each rule is also run on a small tree that breaks it, so a checker that
//! stopped finding anything would fail here too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import only modules of a lower
/// rank; modules of one rank do not import each other.
const LAYERS: &[(&str, u32)] = &[
    ("model", 0),
    ("spec", 1),
    ("report", 2),
    ("git", 2),
    ("exec", 2),
    ("agent", 3),
    ("engine", 4),
    ("deliver", 5),
    ("cli", 6),
];

/// Files at the root of `src/` that are not layers.
const ROOTS: &[&str] = &["lib", "main"];

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 120;

#[test]
fn the_source_keeps_its_architecture() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = check(&src);
    assert!(
        problems.is_empty(),
        "the architecture in docs/ARCHITECTURE.md is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn each_rule_finds_what_breaks_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    };
    write("lib.rs", "pub mod model;\npub mod engine;\npub mod cli;\n");
    write(
        "model/mod.rs",
        "use crate::engine::run::Run;\npub fn f() { println!(\"hi\"); }\n",
    );
    write(
        "engine/mod.rs",
        "use crate::cli::helper;\n#[allow(dead_code)]\nfn g() {}\n",
    );
    write(
        "cli/mod.rs",
        "use crate::engine::x;\npub fn main() { println!(\"ok\"); }\n",
    );
    write("stray.rs", "pub fn s() {}\n");
    let long_fn = format!("fn long() {{\n{}}}\n", "    let _x = 1;\n".repeat(130));
    write("engine/long.rs", &long_fn);
    let big = "pub fn x() {}\n".repeat(MAX_FILE_LINES + 1);
    write("engine/big.rs", &big);
    // Tests may print and be long: they are not counted.
    write(
        "engine/tested.rs",
        "pub fn ok() {}\n#[cfg(test)]\nmod tests {\n    fn t() { println!(\"fine\"); }\n}\n",
    );
    let problems = check(src).join("\n");
    for expected in [
        "model imports engine",
        "engine imports cli",
        "engine/mod.rs: #[allow",
        "model/mod.rs: prints",
        "stray: not in the layer table",
        "engine/long.rs: fn long is 132 lines",
        "engine/big.rs: 801 lines",
    ] {
        assert!(
            problems.contains(expected),
            "expected `{expected}` among:\n{problems}"
        );
    }
    assert!(!problems.contains("cli/mod.rs: prints"), "{problems}");
    assert!(!problems.contains("tested.rs"), "{problems}");
    assert!(!problems.contains("cli imports"), "{problems}");
}

/// Every problem of the tree at `src`, one line each.
fn check(src: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let rank: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let files = rust_files(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, code) in &files {
        let module = top_module(rel);
        if !rank.contains_key(module.as_str()) && !ROOTS.contains(&module.as_str()) {
            problems.push(format!(
                "{module}: not in the layer table of tests/architecture.rs"
            ));
        }
        for used in crate_paths(code) {
            if used != module {
                edges.entry(module.clone()).or_default().insert(used);
            }
        }
        let lines = code_lines(code);
        if lines > MAX_FILE_LINES {
            problems.push(format!(
                "{rel}: {lines} lines of code, over {MAX_FILE_LINES}"
            ));
        }
        for (name, n) in functions(code) {
            if n > MAX_FN_LINES {
                problems.push(format!(
                    "{rel}: fn {name} is {n} lines, over {MAX_FN_LINES}"
                ));
            }
        }
        let prints = ["println!", "eprintln!", "print!(", "eprint!("]
            .iter()
            .any(|p| code.contains(p));
        if prints && module != "cli" && module != "main" {
            problems.push(format!(
                "{rel}: prints; library code returns data or emits events"
            ));
        }
        if code.contains("#[allow(") || code.contains("#![allow(") {
            problems.push(format!(
                "{rel}: #[allow(...)]; use #[expect(..., reason = \"...\")]"
            ));
        }
    }
    for (from, tos) in &edges {
        let Some(&r) = rank.get(from.as_str()) else {
            continue;
        };
        for to in tos {
            match rank.get(to.as_str()) {
                Some(&t) if t < r => {}
                Some(_) => problems.push(format!(
                    "{from} imports {to}: a layer imports only layers below it"
                )),
                None => {}
            }
        }
    }
    problems
}

/// `src`-relative path → source with comments, strings and `#[cfg(test)]`
/// modules blanked out.
fn rust_files(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read src").flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(src)
                    .expect("under src")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = fs::read_to_string(&path).expect("read");
                out.insert(rel, without_tests(&strip(&text)));
            }
        }
    }
    out
}

fn top_module(rel: &str) -> String {
    let first = rel.split('/').next().unwrap_or(rel);
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules named by `crate::x` paths (also inside
/// `use crate::{x, y}` groups).
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn code_lines(code: &str) -> usize {
    code.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Each `fn` with a body, and its length in lines of code.
fn functions(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("fn ") {
        let at = from + i;
        from = at + 3;
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let name = ident(&code[at + 3..]);
        if name.is_empty() {
            continue;
        }
        // The body starts at the first `{` outside the signature's
        // brackets; a `;` first means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        for (j, c) in code[at..].char_indices() {
            match c {
                '(' | '<' | '[' => depth += 1,
                ')' | '>' | ']' => depth -= 1,
                '{' => {
                    open = Some(at + j);
                    break;
                }
                ';' if depth <= 0 => break,
                _ => {}
            }
        }
        let Some(open) = open else {
            continue;
        };
        let close = block_end(code, open);
        out.push((name, code_lines(&code[at..=close])));
    }
    out
}

fn block_end(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (j, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + j;
                }
            }
            _ => {}
        }
    }
    code.len() - 1
}

/// Blanks out `#[cfg(test)] mod name { ... }` blocks, keeping line breaks.
fn without_tests(code: &str) -> String {
    let mut out = code.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = &out[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ")
            || trimmed.starts_with("pub mod ")
            || trimmed.starts_with("pub(crate) mod ");
        let end = match trimmed.find(['{', ';']) {
            Some(k) if is_mod && trimmed.as_bytes()[k] == b'{' => {
                let open = out.len() - trimmed.len() + k;
                block_end(&out, open) + 1
            }
            // `#[cfg(test)]` on a single item: blank the attribute only.
            _ => at + "#[cfg(test)]".len(),
        };
        let blank: String = out[at..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..end, &blank);
    }
    out
}

/// Blanks out comments, string and char literals, keeping line breaks.
fn strip(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, s: &[char]| {
        for &c in s {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < chars.len() && depth > 0 {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &chars[i..j]);
            i = j;
        } else if let Some(end) = raw_string_end(&chars, i) {
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(chars.len());
            blank(&mut out, &chars[i..end]);
            i = end;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}'), not a lifetime.
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| i + 2 + p + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, &chars[i..end]);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where a raw string (`r"..."`, `r#"..."#`, `br"..."`) that starts at `i`
/// ends, if one does.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}
