//! How large a loaded file may be, and how far its parameters may make it grow: any input loads,
//! or is refused with the file, the line and the bound, in bounded time and memory.

use crate::problem::{Problem, ProblemKind};

/// The largest flow or script file, in bytes (the G-MIS flow is under 30 KB).
pub const MAX_SOURCE_BYTES: usize = 4 << 20;
/// The largest parameter value, given by the deployment or built from others, in bytes.
pub const MAX_PARAM_BYTES: usize = 16 << 10;
/// The largest single text of a flow once its parameters are filled in (a question, a label,
/// an ending), in bytes.
pub const MAX_TEXT_BYTES: usize = 64 << 10;
/// All the texts of one flow together, once filled in, in bytes.
pub const MAX_FILLED_BYTES: usize = 16 << 20;
/// The most nodes in one flow (node indexes are 16-bit).
pub const MAX_NODES: usize = u16::MAX as usize;
/// The deepest nesting of YAML flow collections (`[…]`, `{…}`). The YAML parser takes time
/// quadratic in that depth, so deeper files are refused before it runs.
pub const MAX_NESTING: usize = 64;

/// The 1-based line on which `source`'s flow collections (`[`, `{`) nest deeper than
/// [`MAX_NESTING`], if they do. Quoted scalars, comments and block scalars (`|`, `>`) are
/// skipped, and in block context a bracket counts only where a value starts, so prose and
/// `{{placeholders}}` in texts never count.
pub fn too_deep(source: &str) -> Option<u32> {
    let mut depth = 0usize;
    // Inside a quoted scalar: its quote.
    let mut quote: Option<char> = None;
    // Inside a block scalar: the indent of the line that opened it.
    let mut block: Option<usize> = None;
    for (n, line) in source.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(opened) = block {
            if line.trim().is_empty() || indent > opened {
                continue;
            }
            block = None;
        }
        let mut chars = line.char_indices().peekable();
        // In block context, whether the next non-space character starts a value.
        let mut value_start = true;
        let mut previous = ' ';
        while let Some((i, c)) = chars.next() {
            match quote {
                Some('\'') if c == '\'' => {
                    // `''` is an escaped quote.
                    if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some('"') if c == '"' => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if previous.is_whitespace() => break,
                    '\'' | '"' if depth > 0 || value_start => quote = Some(c),
                    '[' | '{' if depth > 0 || value_start => {
                        depth += 1;
                        if depth > MAX_NESTING {
                            return Some(u32::try_from(n + 1).unwrap_or(u32::MAX));
                        }
                    }
                    ']' | '}' if depth > 0 => depth -= 1,
                    '|' | '>' if depth == 0 && value_start => {
                        let rest = &line[i + 1..];
                        let indicator = rest.split('#').next().unwrap_or_default().trim();
                        if indicator.chars().all(|c| matches!(c, '+' | '-' | '0'..='9')) {
                            block = Some(indent);
                            break;
                        }
                    }
                    _ => {}
                },
            }
            if quote.is_none() && depth == 0 {
                value_start = match c {
                    ' ' | '\t' => value_start || matches!(previous, ':' | '-' | '?'),
                    _ => false,
                };
                if c == ' ' && matches!(previous, ':' | '-' | '?') {
                    value_start = true;
                }
            }
            previous = c;
        }
    }
    None
}

/// A file's bytes as text: refused when larger than [`MAX_SOURCE_BYTES`] or not UTF-8 (with the
/// line and byte of the first bad sequence).
///
/// ```
/// let err = flowbot_core::source_text(b"flow: f\nt\xffitle: x\n", "f.yaml").unwrap_err();
/// assert_eq!(err.to_string(), "f.yaml:2: the file is not UTF-8: byte 10 (column 2) is not part of a character");
/// ```
pub fn source_text<'a>(bytes: &'a [u8], origin: &str) -> Result<&'a str, Problem> {
    let problem = |line, kind| Problem { file: origin.to_owned(), line, node: None, kind };
    if bytes.len() > MAX_SOURCE_BYTES {
        // The caller may have read only this much of a larger file: no size is claimed.
        let what = "the file".to_owned();
        return Err(problem(Some(1), ProblemKind::TooLarge { what, max: MAX_SOURCE_BYTES }));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let before = &bytes[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let kind = ProblemKind::NotUtf8 { byte: at + 1, column: at - line_start + 1 };
        problem(Some(u32::try_from(line).unwrap_or(u32::MAX)), kind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_collections_are_found_and_texts_are_not_counted() {
        let deep = format!("flow: {}\n", "{".repeat(MAX_NESTING + 1));
        assert_eq!(too_deep(&deep), Some(1));
        let seq = format!("a: b\nnodes:\n  - {}1{}\n", "[".repeat(65), "]".repeat(65));
        assert_eq!(too_deep(&seq), Some(3));
        let ok = format!("x: {}1{}\n", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(too_deep(&ok), None);
        // Texts: block scalars, quotes, comments and prose hold any brackets.
        let texts = format!(
            "ask: |\n  {}\n  {{{{desk}}}}\nsay: \"{}\"\nnote: a {} b\n# {}\nq: '{}'\n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        assert_eq!(too_deep(&texts), None, "{texts}");
        // The G-MIS flow as shipped.
        let gmis = include_str!("../../../flows/gmis-mail-trouble.yaml");
        assert_eq!(too_deep(gmis), None);
    }

    #[test]
    fn large_or_broken_files_are_refused_with_a_line() {
        assert_eq!(source_text("ok".as_bytes(), "f").unwrap(), "ok");
        let big = vec![b'a'; MAX_SOURCE_BYTES + 1];
        let err = source_text(&big, "f").unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.to_string().contains("4194304"), "{err}");
        let err = source_text(b"a\nb\n\xe3\x81", "f").unwrap_err();
        assert_eq!((err.line, &err.kind), (Some(3), &ProblemKind::NotUtf8 { byte: 5, column: 1 }));
    }
}
