//! The one splitter (`flowbot_core::split_by`) over many generated texts, for each platform's
//! unit and measure: every chunk within the limit, no link cut, no escape cut, and the chunks
//! joined with the breaks between them give back the text.

use flowbot_core::{Segment, Unit, segments, split_by};

/// A small deterministic generator (xorshift), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Japanese, emoji, long lines, URLs, e-mail addresses, Markdown and HTML specials.
fn text(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "G-MISにログインできません。",
        "🙂",
        "👨‍👩‍👧",
        "*",
        "_",
        "~",
        "|",
        ">",
        "`",
        "\\",
        "<b>",
        "&amp;",
        " ",
        "\n",
        "\n\n",
        "https://www.g-mis.mhlw.go.jp/login?a=1&b=2",
        "info@g-mis.example.jp",
        "あいうえおかきくけこさしすせそ",
        "abc",
    ];
    let n = 1 + rng.next() % 300;
    (0..n).map(|_| rng.pick(PIECES)).collect()
}

/// Markdown escaping as Discord's renderer does it: what the measure must count.
fn markdown(s: &str) -> String {
    let mut out = String::new();
    for segment in segments(s) {
        match segment {
            Segment::Plain(p) => {
                for c in p.chars() {
                    if "\\*_~`|>#[]()-<@".contains(c) {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Segment::Url(u) => out.push_str(&format!("<{u}>")),
            Segment::Email(m) => out.push_str(m),
        }
    }
    out
}

/// Checks one split of `text`: the limit, links whole, and the text given back.
fn check(text: &str, max: usize, unit: Unit, measure: &dyn Fn(&str) -> usize) {
    let chunks = split_by(text, max, unit, measure);
    let base = text.as_ptr() as usize;
    let mut at = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let start = chunk.as_ptr() as usize - base;
        let gap = &text[at..start];
        assert!(gap.chars().all(|c| c == '\n'), "gap {gap:?} before chunk {i} of {text:?}");
        at = start + chunk.len();
        let single = unit.len(chunk) == 1;
        assert!(measure(chunk) <= max || single, "chunk {chunk:?} over {max}");
        // A chunk ends between characters (graphemes), never inside a link that fits.
        assert!(text.is_char_boundary(at));
    }
    assert!(text[at..].chars().all(|c| c == '\n'), "lost the end of {text:?}");
    for segment in segments(text) {
        let (Segment::Url(link) | Segment::Email(link)) = segment else { continue };
        let from = link.as_ptr() as usize - base;
        let to = from + link.len();
        if measure(link) > max {
            continue;
        }
        let whole = chunks.iter().any(|c| {
            let s = c.as_ptr() as usize - base;
            s <= from && to <= s + c.len()
        });
        assert!(whole, "link {link:?} cut in {chunks:?}");
    }
}

#[test]
fn every_platform_splits_within_its_limit_and_loses_nothing() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let text = text(&mut rng);
        for max in [60, 120, 500] {
            // Telegram: UTF-16 units of the plain text (entities do not count).
            check(&text, max, Unit::Utf16, &|s| Unit::Utf16.len(s));
            // Discord: characters of the escaped Markdown.
            check(&text, max, Unit::Chars, &|s| markdown(s).chars().count());
            // The web chat and LINE-like platforms: graphemes; bytes for byte-limited ones.
            check(&text, max, Unit::Graphemes, &|s| Unit::Graphemes.len(s));
            check(&text, max, Unit::Bytes, &|s| s.len());
        }
    }
}

#[test]
fn escaping_after_splitting_never_cuts_an_escape() {
    let text = "*".repeat(3000);
    let chunks = split_by(&text, 2000, Unit::Chars, |s| markdown(s).chars().count());
    for chunk in &chunks {
        let escaped = markdown(chunk);
        assert!(escaped.chars().count() <= 2000);
        // Each `*` keeps its `\`.
        assert_eq!(escaped, "\\*".repeat(chunk.len()));
    }
    assert_eq!(chunks.concat(), text);
}
