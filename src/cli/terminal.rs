//! Text bound for a terminal, made inert: what an agent wrote (reasons,
//! check output, file names) reaches `log`, `status`, progress and errors,
//! and must not move the cursor, clear the screen, retitle the window, hide
//! text or reorder it. Control characters other than newline and tab, and
//! the bidirectional overrides, are shown as `�` (an escape as `␛`).

use std::borrow::Cow;

/// `s` without terminal control: borrowed when there is none.
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\u{1b}' => '␛',
                c if is_unsafe(c) => '�',
                c => c,
            })
            .collect(),
    )
}

fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        // Bidirectional embeddings, overrides and isolates.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn control_sequences_are_shown_not_obeyed() {
        assert_eq!(clean("ok\n\tfine"), "ok\n\tfine");
        assert_eq!(clean("\u{1b}[2Jgone\r\u{7}"), "␛[2Jgone��");
        assert_eq!(clean("a\u{202e}b"), "a�b");
        assert_eq!(clean("\u{9b}31m"), "�31m");
    }
}
