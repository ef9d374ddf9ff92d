//! Text normalisation shared by validation and typed-answer matching.
//!
//! Both sides use the same function, so a label that `flowbot check` accepts as distinct is one a
//! user can also pick by typing it, whatever width or spacing their keyboard produces.

use unicode_normalization::UnicodeNormalization;

/// Typed text longer than this (in bytes) is not normalised at all: it matches nothing.
///
/// Normalising is linear, but a 4 MB paste should not cost a conversation step anything.
pub const MAX_TYPED_BYTES: usize = 1024;

/// NFKC, then whitespace runs folded to one space, trimmed, and lower-cased.
///
/// NFKC turns full-width digits and Latin letters into ASCII (`２` → `2`, `ｙｅｓ` → `yes`) and
/// half-width katakana into full-width, which is how users' keyboards differ in practice.
pub fn normalize(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut pending_space = false;
    for c in input.nfkc() {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Answer words that pick the choice a flow marks `means: yes`.
const YES_WORDS: &[&str] = &["はい", "yes", "y"];
/// Answer words that pick the choice a flow marks `means: no`.
const NO_WORDS: &[&str] = &["いいえ", "no", "n"];

/// What a normalised typed answer says, before it is matched against a question's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Typed {
    /// A number, 1-based, as typed (`2`, `２`, `2.`).
    Number(u32),
    Yes,
    No,
    /// Anything else: compared with the labels.
    Words,
}

pub(crate) fn classify(normalized: &str) -> Typed {
    let digits = normalized.strip_suffix('.').unwrap_or(normalized);
    if !digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
        // At most three ASCII digits, so the parse cannot fail.
        return Typed::Number(digits.parse().unwrap_or(0));
    }
    if YES_WORDS.contains(&normalized) {
        return Typed::Yes;
    }
    if NO_WORDS.contains(&normalized) {
        return Typed::No;
    }
    Typed::Words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_space_and_case() {
        assert_eq!(normalize("  ２ "), "2");
        assert_eq!(normalize("ＹＥＳ"), "yes");
        assert_eq!(
            normalize("迷惑メール\u{3000}フォルダに　あった"),
            "迷惑メール フォルダに あった"
        );
        assert_eq!(normalize("ｱｸｾｽ"), "アクセス");
        assert_eq!(normalize("\n\t"), "");
        // Already NFKC (the quick path) and not (the full path) agree.
        assert_eq!(normalize("アクセスできた"), normalize("ｱｸｾｽできた"));
        assert_eq!(normalize("Ａ１"), normalize("a1"));
    }

    #[test]
    fn classifies_numbers_and_yes_no() {
        assert_eq!(classify(&normalize("３")), Typed::Number(3));
        assert_eq!(classify("2."), Typed::Number(2));
        assert_eq!(classify("9999"), Typed::Words);
        assert_eq!(classify(&normalize("Yes")), Typed::Yes);
        assert_eq!(classify("いいえ"), Typed::No);
        assert_eq!(classify("届いている"), Typed::Words);
    }
}
