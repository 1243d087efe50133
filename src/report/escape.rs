//! Untrusted text (what an agent wrote: decisions, messages, file names,
//! check output, reasons that quote them) as Markdown that renders as the
//! text itself — never as a heading, link, image, table, HTML, a broken-out
//! code span, a mention, or a `<!-- git-agent … -->` marker the forge
//! would take for git-agent's own.

/// Inline text on one line: the punctuation Markdown reads as syntax is
/// backslash-escaped, `<`, `>`, `&` are entities (so the raw body never
/// holds a tag or a comment an agent wrote), and `@` cannot mention anyone.
pub fn text(s: &str) -> String {
    escaped(&one_line(s))
}

fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        match c {
            // Inside a word (`max_turns`) an underscore is no emphasis.
            '_' if word(i.checked_sub(1)) && word(Some(i + 1)) => out.push(c),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // A zero-width space after `@` keeps GitHub from notifying.
            '@' => out.push_str("@\u{200b}"),
            // `[` and `]` are enough to stop links and images.
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A message of git-agent's that quotes untrusted names in backticks
/// ("`src/x` is outside the scope"): the quoted parts become code spans,
/// the rest [`text`]. A name with a backtick of its own only shifts which
/// parts are which; every part stays escaped.
pub fn message(s: &str) -> String {
    let line = one_line(s);
    line.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 && !part.is_empty() {
                span(part)
            } else {
                escaped(part)
            }
        })
        .collect()
}

/// A code span holding `s` on one line: its fence is longer than any run
/// of backticks inside, so `s` cannot close it.
pub fn code(s: &str) -> String {
    span(&one_line(s))
}

/// [`code`] for a table cell: GFM splits cells at `|` before it reads code
/// spans, so pipes are escaped too.
pub fn cell(s: &str) -> String {
    span(&one_line(s).replace('|', "\\|"))
}

/// A fenced block holding `s` verbatim: the fence is longer than any run
/// of backticks inside.
pub fn block(s: &str, info: &str) -> String {
    let fence = "`".repeat(longest_run(s, '`').max(2) + 1);
    format!("{fence}{info}\n{}\n{fence}", s.trim_end())
}

fn span(s: &str) -> String {
    let fence = "`".repeat(longest_run(s, '`') + 1);
    if s.starts_with('`') || s.ends_with('`') {
        // Spaces on both sides are stripped by the renderer; they let a
        // span start or end with a backtick.
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// `s` on one line, runs of white space (newlines, control characters
/// included) as one space.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut longest, mut run) = (0, 0);
    for x in s.chars() {
        run = if x == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_renders_as_itself() {
        let evil = "<!-- git-agent task=x --> **b** [l](http://x) ![i](http://x) @octocat\n# h | t";
        let t = text(evil);
        assert!(!t.contains("<!--") && !t.contains('\n'), "{t}");
        assert!(t.contains("\\[l\\](http://x)"), "{t}");
        assert!(t.contains("!\\[i\\]"), "{t}");
        assert!(t.contains("@\u{200b}octocat"), "{t}");
        assert!(t.contains("\\*\\*b\\*\\*"), "{t}");
        assert_eq!(text("max_turns _em_"), "max_turns \\_em\\_");
    }

    #[test]
    fn code_spans_and_blocks_cannot_be_closed_from_inside() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("```"), "```` ``` ````");
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(cell("a|b"), "`a\\|b`");
        assert_eq!(message("check `x` failed"), "check `x` failed");
        assert_eq!(
            message("`<b>` is out"),
            "`<b>` is out",
            "inside a code span, `<` is literal"
        );
        assert_eq!(message("a <b> c"), "a &lt;b&gt; c");
        let b = block("x\n````\n</details>", "text");
        assert!(
            b.starts_with("`````text\n") && b.ends_with("\n`````"),
            "{b}"
        );
    }
}
