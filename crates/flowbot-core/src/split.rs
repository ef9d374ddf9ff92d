//! The one splitter every platform uses: plain text cut into chunks under a length limit, at
//! paragraph, then line, then character boundaries, never inside a link.
//!
//! Splitting happens on plain text, before any escaping; each renderer escapes each chunk
//! afterwards. Where the limit applies to the escaped text (escaped Markdown), the renderer
//! passes a measure that counts the escaped length ([`split_by`]).

use unicode_segmentation::UnicodeSegmentation;

use crate::text::{Segment, segments};

/// The unit a platform measures a length in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// UTF-16 code units (an emoji outside the BMP counts twice).
    Utf16,
    /// Unicode scalar values (`char`s).
    Chars,
    /// Extended grapheme clusters (what a reader sees as one character).
    Graphemes,
    /// UTF-8 bytes.
    Bytes,
}

impl Unit {
    /// The length of `s` in this unit.
    pub fn len(self, s: &str) -> usize {
        match self {
            Unit::Utf16 => s.encode_utf16().count(),
            Unit::Chars => s.chars().count(),
            Unit::Graphemes => s.graphemes(true).count(),
            Unit::Bytes => s.len(),
        }
    }

    /// The unit's name in a problem's message ("82 characters").
    pub fn name(self) -> &'static str {
        match self {
            Unit::Utf16 => "UTF-16 code units",
            Unit::Chars => "characters",
            Unit::Graphemes => "grapheme clusters",
            Unit::Bytes => "bytes",
        }
    }
}

/// Splits `text` into chunks of at most `max` in `unit`. See [`split_by`].
///
/// ```
/// use flowbot_core::{Unit, split};
///
/// let text = format!("{}\n\n{}", "あ".repeat(3), "い".repeat(3));
/// assert_eq!(split(&text, 4, Unit::Chars), ["あああ", "いいい"]);
/// assert_eq!(split("ええええええ", 4, Unit::Chars), ["ええええ", "ええ"]);
/// ```
pub fn split(text: &str, max: usize, unit: Unit) -> Vec<&str> {
    split_by(text, max, unit, |s| unit.len(s))
}

/// Splits `text` into chunks whose `measure` is at most `max`.
///
/// Whole paragraphs (separated by `"\n\n"`) are packed into a chunk while they fit; a paragraph
/// too long on its own is cut at line breaks (`"\n"`), and a line too long on its own between
/// characters (grapheme clusters for [`Unit::Graphemes`], else `char`s; `unit` only decides these
/// boundaries, `measure` decides the length). A link or e-mail address
/// ([`segments`](crate::segments)) is never cut unless it alone measures more than `max`; a
/// single character that does is a chunk of its own.
///
/// `measure` is what the platform limits: the text's length in its unit, or the length of the
/// escaped text (the renderer escapes each chunk afterwards). Every chunk is measured whole, as
/// it will be sent, so the measure need not add up over pieces (a piece of a long link escapes
/// differently from the link); it must only not shrink when a chunk grows.
///
/// The chunks are slices of `text`, in order, never empty (except the one chunk of an empty
/// text). What lies between two chunks is only line breaks: the break they were cut at
/// (`"\n\n"`, `"\n"`, or nothing for a cut inside a line), with any empty lines at the cut. So
/// `text` is the chunks joined with the line breaks between them; breaks before the first chunk
/// or after the last are dropped.
pub fn split_by(text: &str, max: usize, unit: Unit, measure: impl Fn(&str) -> usize) -> Vec<&str> {
    let mut packer = Packer { text, max, measure: &measure, chunks: Vec::new(), current: None };
    for (p_start, paragraph) in pieces(text, 0, "\n\n") {
        if measure(paragraph) <= max {
            packer.push(p_start, p_start + paragraph.len());
            continue;
        }
        for (l_start, line) in pieces(paragraph, p_start, "\n") {
            if measure(line) <= max {
                packer.push(l_start, l_start + line.len());
                continue;
            }
            // A line too long on its own: pieces of it as long as fit, each started afresh.
            let atoms = atoms(line, l_start, unit, max, &measure);
            let mut first = 0;
            while first < atoms.len() {
                // As many atoms as their lengths' sum allows, then fewer while the piece as a
                // whole measures more (a piece of a long link escapes differently).
                let mut sum = 0;
                let mut last = first;
                while last < atoms.len() {
                    let (a, b) = atoms[last];
                    sum += measure(&text[a..b]);
                    if sum > max && last > first {
                        break;
                    }
                    last += 1;
                }
                while last > first + 1 && measure(&text[atoms[first].0..atoms[last - 1].1]) > max {
                    last -= 1;
                }
                packer.push(atoms[first].0, atoms[last - 1].1);
                first = last;
            }
        }
    }
    packer.finish()
}

/// Greedy packing of consecutive pieces of `text` into chunks.
struct Packer<'a, 'm> {
    text: &'a str,
    max: usize,
    measure: &'m dyn Fn(&str) -> usize,
    chunks: Vec<&'a str>,
    /// The chunk being filled: its start and end.
    current: Option<(usize, usize)>,
}

impl<'a> Packer<'a, '_> {
    /// Adds `text[start..end]`, which follows the current chunk (after a break).
    fn push(&mut self, start: usize, end: usize) {
        self.current = match self.current {
            None => Some((start, end)),
            Some((from, _)) if (self.measure)(&self.text[from..end]) <= self.max => {
                Some((from, end))
            }
            Some((from, to)) => {
                self.emit(from, to);
                Some((start, end))
            }
        };
    }

    fn emit(&mut self, from: usize, to: usize) {
        if from < to {
            self.chunks.push(&self.text[from..to]);
        }
    }

    fn finish(mut self) -> Vec<&'a str> {
        if let Some((from, to)) = self.current {
            self.emit(from, to);
        }
        if self.chunks.is_empty() {
            self.chunks.push(&self.text[..0]);
        }
        self.chunks
    }
}

/// The pieces of `s` between `sep`s, each with its offset in the whole text (`s` starts at
/// `base`).
fn pieces<'a>(s: &'a str, base: usize, sep: &'a str) -> impl Iterator<Item = (usize, &'a str)> {
    let mut offset = base;
    s.split(sep).map(move |piece| {
        let at = offset;
        offset += piece.len() + sep.len();
        (at, piece)
    })
}

/// The uncuttable pieces of a line (it starts at `base` in the whole text), as byte ranges:
/// links whole (unless one alone is over `max`), otherwise characters or grapheme clusters.
fn atoms(
    line: &str,
    base: usize,
    unit: Unit,
    max: usize,
    measure: &dyn Fn(&str) -> usize,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = base;
    for segment in segments(line) {
        let s = match segment {
            Segment::Plain(s) => s,
            Segment::Url(s) | Segment::Email(s) => {
                if measure(s) <= max {
                    out.push((at, at + s.len()));
                    at += s.len();
                    continue;
                }
                s
            }
        };
        let mut push = |len: usize| {
            out.push((at, at + len));
            at += len;
        };
        match unit {
            Unit::Graphemes => s.graphemes(true).for_each(|g| push(g.len())),
            _ => s.chars().for_each(|c| push(c.len_utf8())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let s = "a🙂👨‍👩‍👧";
        assert_eq!(Unit::Bytes.len(s), 1 + 4 + 18);
        assert_eq!(Unit::Chars.len(s), 1 + 1 + 5);
        assert_eq!(Unit::Utf16.len(s), 1 + 2 + 8);
        assert_eq!(Unit::Graphemes.len(s), 3);
    }

    #[test]
    fn paragraphs_then_lines_then_characters() {
        let text = format!("{}\n\n{}\n\nう", "あ".repeat(30), "い".repeat(30));
        assert_eq!(
            split(&text, 40, Unit::Chars),
            ["あ".repeat(30), format!("{}\n\nう", "い".repeat(30))]
        );
        let text = format!("{}\n{}", "あ".repeat(30), "い".repeat(30));
        assert_eq!(split(&text, 40, Unit::Chars), ["あ".repeat(30), "い".repeat(30)]);
        let long = "え".repeat(90);
        let chunks = split(&long, 40, Unit::Chars);
        assert_eq!(chunks.iter().map(|c| c.chars().count()).collect::<Vec<_>>(), [40, 40, 10]);
        assert_eq!(chunks.concat(), long);
        assert_eq!(split("", 10, Unit::Chars), [""]);
    }

    #[test]
    fn links_stay_whole_and_graphemes_too() {
        let text = format!("{} https://example.com/a/b/c", "x".repeat(10));
        assert_eq!(
            split(&text, 30, Unit::Chars),
            ["x".repeat(10) + " ", "https://example.com/a/b/c".into()]
        );
        let family = "👨‍👩‍👧".repeat(3);
        let chunks = split(&family, 10, Unit::Graphemes);
        assert_eq!(chunks.len(), 1);
        let chunks = split(&family, 2, Unit::Graphemes);
        assert_eq!(chunks, ["👨‍👩‍👧👨‍👩‍👧", "👨‍👩‍👧"]);
        // A link longer than the limit is cut like text.
        let url = format!("https://example.com/{}", "a".repeat(40));
        assert!(split(&url, 20, Unit::Chars).iter().all(|c| c.len() <= 20));
    }
}
