//! The one splitter (`flowbot_core::split_by`) through every platform's real rendering, over many
//! generated texts and several limits (the platforms' own among them): every chunk as sent is
//! within the platform's limit in its unit, no chunk ends inside an escape sequence or a link, no
//! link that fits is cut, and the chunks, unescaped and joined with the line breaks the splitter
//! consumed, give back the text.

use flowbot_core::{Segment, Unit, segments, split, split_by};

/// A small deterministic generator (xorshift), so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// `pieces` pieces of Japanese, emoji (with ZWJ sequences), URLs (one longer than the small
/// limits), e-mail addresses, Markdown and HTML specials; a line break about every `every`
/// pieces (never if 0: one long line).
fn text(rng: &mut Rng, pieces: u64, every: u64) -> String {
    const PIECES: &[&str] = &[
        "G-MISにログインできません。",
        "🙂",
        "👨‍👩‍👧",
        "🏳️‍🌈",
        "*",
        "_",
        "~",
        "|",
        ">",
        "`",
        "\\",
        "\\\\",
        "-",
        "#",
        "[x](y)",
        "@",
        "\"",
        "<b>",
        "</a>",
        "&amp;",
        "&",
        "&quot;",
        " ",
        "https://www.g-mis.mhlw.go.jp/login?a=1&b=2",
        "(https://example.com/a_b*c~d).",
        "http://x.example/",
        "https://example.com/very/long/path/that/goes/on/and/on/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/end",
        "info@g-mis.example.jp",
        "a_b-c@x.example.com",
        "あいうえおかきくけこさしすせそ",
        "abc",
    ];
    const BREAKS: &[&str] = &["\n", "\n\n", "\n\n\n"];
    let mut text = String::new();
    for _ in 0..pieces {
        let line_break = every > 0 && rng.below(every) == 0;
        text.push_str(rng.pick(if line_break { BREAKS } else { PIECES }));
    }
    text
}

/// One platform as the test drives it: its real splitting and escaping, and the inverse of that
/// escaping.
struct Platform {
    name: &'static str,
    /// The platform's own limit on a message's text.
    limit: usize,
    /// The splitter's measure of a plain piece: whether a link fits.
    measure: fn(&str) -> usize,
    /// The plain chunks at a limit (the platform's own split at its own limit).
    split: fn(&str, usize) -> Vec<String>,
    /// The chunks as sent at the platform's own limit, by its own pipeline.
    send: fn(&str) -> Vec<String>,
    /// A plain chunk as sent.
    escape: fn(&str) -> String,
    /// The length the platform limits, of a chunk as sent, in its unit.
    sent_len: fn(&str) -> usize,
    /// The inverse of `escape`; panics on an escape sequence or a link the chunk cuts short.
    unescape: fn(&str) -> String,
}

fn utf16(s: &str) -> usize {
    Unit::Utf16.len(s)
}

fn discord_len(s: &str) -> usize {
    flowbot_discord::content(s).chars().count()
}

const PLATFORMS: &[Platform] = &[
    // Telegram: UTF-16 units of the text after HTML parsing (tags and entities do not count).
    Platform {
        name: "Telegram",
        limit: flowbot_telegram::MAX_TEXT,
        measure: utf16,
        split: |text, max| {
            if max == flowbot_telegram::MAX_TEXT {
                flowbot_telegram::split(text)
            } else {
                owned(split(text, max, Unit::Utf16))
            }
        },
        send: |text| {
            flowbot_telegram::split(text).iter().map(|c| flowbot_telegram::html(c)).collect()
        },
        escape: flowbot_telegram::html,
        sent_len: |html| utf16(&telegram_unescape(html)),
        unescape: telegram_unescape,
    },
    // Discord: characters of the escaped Markdown.
    Platform {
        name: "Discord",
        limit: flowbot_discord::MAX_CONTENT,
        measure: discord_len,
        split: |text, max| {
            if max == flowbot_discord::MAX_CONTENT {
                owned(flowbot_discord::plain_chunks(text))
            } else {
                owned(split_by(text, max, Unit::Chars, discord_len))
            }
        },
        send: flowbot_discord::chunks,
        escape: flowbot_discord::content,
        sent_len: |content| content.chars().count(),
        unescape: discord_unescape,
    },
    // The web chat: plain text as text nodes (no escaping) and no limit, so one chunk.
    Platform {
        name: "the web chat",
        limit: flowbot_web::LIMITS.text,
        measure: |s| flowbot_web::LIMITS.text_unit.len(s),
        split: |text, max| owned(split(text, max, flowbot_web::LIMITS.text_unit)),
        send: |text| owned(split(text, flowbot_web::LIMITS.text, flowbot_web::LIMITS.text_unit)),
        escape: str::to_owned,
        sent_len: |s| flowbot_web::LIMITS.text_unit.len(s),
        unescape: str::to_owned,
    },
    // Platforms to come that count grapheme clusters or bytes, without escaping.
    Platform {
        name: "graphemes",
        limit: 1000,
        measure: |s| Unit::Graphemes.len(s),
        split: |text, max| owned(split(text, max, Unit::Graphemes)),
        send: |text| owned(split(text, 1000, Unit::Graphemes)),
        escape: str::to_owned,
        sent_len: |s| Unit::Graphemes.len(s),
        unescape: str::to_owned,
    },
    Platform {
        name: "bytes",
        limit: 5000,
        measure: str::len,
        split: |text, max| owned(split(text, max, Unit::Bytes)),
        send: |text| owned(split(text, 5000, Unit::Bytes)),
        escape: str::to_owned,
        sent_len: str::len,
        unescape: str::to_owned,
    },
];

fn owned(chunks: Vec<&str>) -> Vec<String> {
    chunks.into_iter().map(str::to_owned).collect()
}

/// Telegram HTML back to plain text. Every `&` must start a whole `&amp;`, `&lt;`, `&gt;` or
/// `&quot;`; every `<` must open an `<a href="…">` closed by `</a>` in the same chunk, whose
/// target is its text (or `mailto:` and its text).
fn telegram_unescape(html: &str) -> String {
    fn entities(s: &str, html: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(at) = rest.find(['&', '<', '>']) {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            let (entity, c) = [("&amp;", '&'), ("&lt;", '<'), ("&gt;", '>'), ("&quot;", '"')]
                .into_iter()
                .find(|(e, _)| rest.starts_with(e))
                .unwrap_or_else(|| panic!("{:?} cut or unescaped in {html:?}", &rest[..1]));
            out.push(c);
            rest = &rest[entity.len()..];
        }
        out + rest
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        out.push_str(&entities(&rest[..at], html));
        let tag = rest[at..]
            .strip_prefix("<a href=\"")
            .unwrap_or_else(|| panic!("a bare `<` in {html:?}"));
        let (href, tail) =
            tag.split_once("\">").unwrap_or_else(|| panic!("an `<a` tag cut in {html:?}"));
        let (inner, tail) =
            tail.split_once("</a>").unwrap_or_else(|| panic!("an `<a>` not closed in {html:?}"));
        assert!(!href.contains('"'), "a `\"` in a link's target in {html:?}");
        let (href, inner) = (entities(href, html), entities(inner, html));
        assert!(
            href == inner || href.strip_prefix("mailto:") == Some(&inner),
            "the link {inner:?} goes to {href:?} in {html:?}"
        );
        out.push_str(&inner);
        rest = tail;
    }
    out + &entities(rest, html)
}

/// The characters Discord's renderer escapes with a `\`.
const MARKDOWN: &str = "\\*_~`|>#[]()-<@";

/// Discord content back to plain text. Every `\` must escape one of [`MARKDOWN`] in the same
/// chunk; every other `<` must open a link closed by `>` in the same chunk.
fn discord_unescape(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut chars = content.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars
                    .next()
                    .unwrap_or_else(|| panic!("a chunk ends inside an escape: {content:?}"));
                assert!(MARKDOWN.contains(escaped), "`\\{escaped}` in {content:?}");
                out.push(escaped);
            }
            '<' => {
                let rest = chars.as_str();
                let (link, tail) = rest
                    .split_once('>')
                    .unwrap_or_else(|| panic!("a link's `<` without its `>` in {content:?}"));
                assert!(
                    matches!(segments(link)[..], [Segment::Url(u)] if u == link),
                    "`<{link}>` is no link, in {content:?}"
                );
                out.push_str(link);
                chars = tail.chars();
            }
            c => out.push(c),
        }
    }
    out
}

/// Checks one platform's chunks of `text` at `max`.
fn check(platform: &Platform, text: &str, max: usize) {
    let name = platform.name;
    let plain = (platform.split)(text, max);
    let sent: Vec<String> = plain.iter().map(|c| (platform.escape)(c)).collect();
    if max == platform.limit {
        assert_eq!((platform.send)(text), sent, "{name}: its own pipeline differs");
    }
    if max == usize::MAX {
        assert_eq!(plain, [text], "{name}: no limit, yet the text was cut");
    }
    // Each chunk as sent: within the limit, no escape or link cut, and back to its plain text.
    let mut unescaped = Vec::with_capacity(sent.len());
    for (chunk, sent) in plain.iter().zip(&sent) {
        let len = (platform.sent_len)(sent);
        assert!(len <= max, "{name}: a chunk of {len} over {max}: {sent:?}");
        let backslashes = sent.len() - sent.trim_end_matches('\\').len();
        if platform.name == "Discord" {
            assert!(backslashes % 2 == 0, "{name}: a chunk ends inside an escape: {sent:?}");
        }
        let back = (platform.unescape)(sent);
        assert_eq!(&back, chunk, "{name}: {sent:?} unescapes to another text");
        assert_eq!(&(platform.escape)(&back), sent, "{name}: {sent:?} is not as escaped");
        unescaped.push(back);
    }
    // The unescaped chunks joined with the line breaks between them give back the text: each
    // chunk follows the previous one after line breaks only; where the breaks went is found
    // (fewest first), and the spans are kept to check the links.
    let mut joined = String::with_capacity(text.len());
    let mut spans = Vec::with_capacity(unescaped.len());
    let mut at = 0;
    for (i, chunk) in unescaped.iter().enumerate() {
        let start = (at..=text.len())
            .take_while(|&s| s == at || text.as_bytes()[s - 1] == b'\n')
            .find(|&s| text[s..].starts_with(chunk.as_str()))
            .unwrap_or_else(|| panic!("{name}: chunk {i} {chunk:?} does not follow in {text:?}"));
        joined.push_str(&text[at..start]);
        joined.push_str(chunk);
        spans.push((start, start + chunk.len()));
        at = start + chunk.len();
    }
    assert!(text[at..].bytes().all(|b| b == b'\n'), "{name}: lost the end of {text:?}");
    joined.push_str(&text[at..]);
    assert_eq!(joined, text, "{name}: the chunks joined differ from the text");
    // A link (or e-mail address) that fits is never cut.
    let base = text.as_ptr() as usize;
    for segment in segments(text) {
        let (Segment::Url(link) | Segment::Email(link)) = segment else { continue };
        let from = link.as_ptr() as usize - base;
        let to = from + link.len();
        if (platform.measure)(link) <= max {
            assert!(
                spans.iter().any(|&(s, e)| s <= from && to <= e),
                "{name}: the link {link:?} cut across {sent:?}"
            );
        }
    }
}

#[test]
fn every_platform_splits_then_escapes_within_its_limit_and_loses_nothing() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..48 {
        let every = [0, 40, 6][rng.below(3) as usize];
        let pieces = 1 + rng.below(200);
        let text = text(&mut rng, pieces, every);
        for platform in &PLATFORMS[..3] {
            for max in [60, 500, platform.limit] {
                check(platform, &text, max);
            }
        }
        // The units no platform uses yet: fewer rounds (grapheme clusters are slow to count).
        if round % 4 == 0 {
            for platform in &PLATFORMS[3..] {
                for max in [60, 500] {
                    check(platform, &text, max);
                }
            }
        }
    }
    // Long texts (15 to 25 kB: several chunks each) at the platforms' own limits (4,096 UTF-16
    // units, 2,000 characters): one long line, long paragraphs, short ones, short lines.
    for every in [0, 40, 6, 2] {
        let pieces = 1200 + rng.below(800);
        let text = text(&mut rng, pieces, every);
        for platform in &PLATFORMS[..3] {
            check(platform, &text, platform.limit);
        }
    }
}

#[test]
fn the_inverses_reject_a_cut_escape_or_link() {
    let cut = |unescape: fn(&str) -> String, chunk: &'static str| {
        assert!(std::panic::catch_unwind(|| unescape(chunk)).is_err(), "{chunk:?} accepted");
    };
    for chunk in ["a &am", "&", "a <", "<a href=\"https://x.jp\">https://x.jp", "<a href=\"https:/"]
    {
        cut(telegram_unescape, chunk);
    }
    for chunk in ["a\\", "\\\\\\", "<https://x.jp", "\\a", "<b>"] {
        cut(discord_unescape, chunk);
    }
    assert_eq!(telegram_unescape("&lt;b&gt; &amp;amp;"), "<b> &amp;");
    assert_eq!(discord_unescape("\\\\\\* <https://x.jp/>"), "\\* https://x.jp/");
}

#[test]
fn discord_never_separates_a_backslash_from_what_it_escapes() {
    // Escaped, a run of `*` doubles: the limit holds for the content, and each `*` keeps its `\`.
    for text in ["*".repeat(3000), format!("a{}", "\\".repeat(2500)), "<".repeat(4001)] {
        let chunks = flowbot_discord::chunks(&text);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(chunk.chars().count() <= flowbot_discord::MAX_CONTENT);
            discord_unescape(chunk);
        }
        let back: String = chunks.iter().map(|c| discord_unescape(c)).collect();
        assert_eq!(back, text);
    }
}

#[test]
fn telegram_never_cuts_an_entity_or_a_link() {
    // `&` is 1 UTF-16 unit plain and 5 escaped: the cut is made on the plain text.
    let link = "https://www.g-mis.mhlw.go.jp/login?a=1&b=2";
    let text = format!("{}{link}{}", "&".repeat(4080), "<".repeat(5000));
    let chunks = flowbot_telegram::split(&text);
    assert!(chunks.iter().all(|c| utf16(c) <= flowbot_telegram::MAX_TEXT));
    assert!(chunks[1].starts_with(link), "the link moves whole to the next chunk");
    let back: String =
        chunks.iter().map(|c| telegram_unescape(&flowbot_telegram::html(c))).collect();
    assert_eq!(back, text);
}
