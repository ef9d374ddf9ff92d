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

/// A piece of a text as messengers render it: plain, or a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Plain(&'a str),
    /// An `http://` or `https://` URL.
    Url(&'a str),
    /// An e-mail address (rendered as a `mailto:` link).
    Email(&'a str),
}

/// Splits a text into plain runs, URLs and e-mail addresses, so that every adapter makes the
/// same things clickable. A URL runs to the first white space or non-ASCII character (the flows'
/// Japanese brackets end it), less trailing punctuation.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut plain_from = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        let rest = &text[i..];
        let link = if rest.starts_with("https://") || rest.starts_with("http://") {
            let len = rest
                .find(|c: char| {
                    c.is_whitespace() || !c.is_ascii() || c == '<' || c == '>' || c == '"'
                })
                .unwrap_or(rest.len());
            let len = rest[..len].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '\'']).len();
            Some((len, true))
        } else if bytes[i] == b'@' {
            // An address whose local part reaches back into a link just found is no address
            // (and `i` must not move back, or the scan would never end).
            match email_around(text, i) {
                Some((start, end)) if start >= plain_from => {
                    i = start;
                    Some((end - start, false))
                }
                _ => None,
            }
        } else {
            None
        };
        match link {
            Some((len, is_url)) if len > 0 && i >= plain_from => {
                if i > plain_from {
                    out.push(Segment::Plain(&text[plain_from..i]));
                }
                let link = &text[i..i + len];
                out.push(if is_url { Segment::Url(link) } else { Segment::Email(link) });
                i += len;
                plain_from = i;
            }
            _ => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    if plain_from < text.len() {
        out.push(Segment::Plain(&text[plain_from..]));
    }
    out
}

/// The e-mail address around the `@` at byte `at`, as `(start, end)`.
fn email_around(text: &str, at: usize) -> Option<(usize, usize)> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let domain = |b: u8| b.is_ascii_alphanumeric() || b".-".contains(&b);
    let bytes = text.as_bytes();
    let start = (0..at).rev().take_while(|&j| local(bytes[j])).last()?;
    let end = (at + 1..bytes.len()).take_while(|&j| domain(bytes[j])).last()? + 1;
    let host = text[at + 1..end].trim_end_matches(['.', '-']);
    let end = at + 1 + host.len();
    let tld = host.rsplit_once('.')?.1;
    (tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())).then_some((start, end))
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
    fn finds_links_and_addresses() {
        use Segment::*;
        assert_eq!(
            segments("ログイン画面（ https://www.med-login.mhlw.go.jp/ ）へ。"),
            [Plain("ログイン画面（ "), Url("https://www.med-login.mhlw.go.jp/"), Plain(" ）へ。")]
        );
        assert_eq!(
            segments("G-MIS事務局〈info@g-mis.net〉"),
            [Plain("G-MIS事務局〈"), Email("info@g-mis.net"), Plain("〉")]
        );
        assert_eq!(
            segments("see https://x.example/a."),
            [Plain("see "), Url("https://x.example/a"), Plain(".")]
        );
        assert_eq!(
            segments("https://www.g-mis.mhlw.go.jp/user-Registration-Form"),
            [Url("https://www.g-mis.mhlw.go.jp/user-Registration-Form")]
        );
        assert_eq!(segments("a @ b, x@y, 1@2.3"), [Plain("a @ b, x@y, 1@2.3")]);
        assert_eq!(segments(""), []);
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
