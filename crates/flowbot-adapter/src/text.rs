//! Small conversions every adapter needs at a platform's edge: cutting a text to a length the
//! platform accepts ([`truncate`]), reading a hex-encoded key or id ([`parse_hex`]), and
//! escaping a text for HTML or XML ([`escape_markup`]).

/// The first `max_chars` characters (Unicode scalar values) of `s`: for one-line texts a
/// platform caps in characters (a toast, a command description, a modal's title). Never cuts
/// inside a character.
///
/// ```
/// assert_eq!(flowbot_adapter::truncate("届いていない", 3), "届いて");
/// ```
pub fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

/// Text for HTML or XML element content and quoted attribute values: `& < > " '` as
/// references (`&#39;`, which both HTML and XML read).
///
/// ```
/// assert_eq!(flowbot_adapter::escape_markup("<a&'\">"), "&lt;a&amp;&#39;&quot;&gt;");
/// ```
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `N` bytes from exactly `2 * N` hex digits (either case, surrounding whitespace ignored);
/// `None` for anything else.
///
/// ```
/// assert_eq!(flowbot_adapter::parse_hex::<2>(" 0aFf\n"), Some([0x0a, 0xff]));
/// assert_eq!(flowbot_adapter::parse_hex::<2>("0aff00"), None);
/// ```
pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.trim().as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate("", 5), "");
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(truncate("①②③④", 2), "①②");
        // A multi-byte character is kept whole or left out, never cut.
        assert_eq!(truncate("aé😀b", 3), "aé😀");
    }

    #[test]
    fn parses_hex_of_exactly_the_length() {
        let key = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let parsed = parse_hex::<32>(key).unwrap();
        assert_eq!(parsed[..4], [0x00, 0x11, 0x22, 0x33]);
        assert_eq!(parsed[31], 0xff);
        assert_eq!(
            parse_hex::<8>("0123456789abcdef"),
            Some([1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])
        );
        assert_eq!(parse_hex::<0>(""), Some([]));
        for bad in ["", "0", "012", "0g", "+1", "-1", " 1", "é", "ü1", "1ü"] {
            assert_eq!(parse_hex::<1>(bad), None, "{bad:?}");
        }
        assert_eq!(parse_hex::<32>(&key[2..]), None, "too short");
        assert_eq!(parse_hex::<32>(&format!("{key}00")), None, "too long");
    }
}
