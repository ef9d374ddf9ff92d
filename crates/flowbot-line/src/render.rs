//! LINE's look of the core's [`View`]: what comes before the question as text messages (split
//! under 5,000 UTF-16 units), the question as a Flex bubble with one tappable box per answer
//! (the full label wrapped, never cut), then 戻る and 最初から; `LIMITS`.
//!
//! A box's postback carries the engine's token as `data` (in a group, with the owner's user id
//! after `|`, so a tap by another member is told apart) and the label as `displayText`, which
//! LINE shows as the user's own message: the chat keeps a readable transcript. A question whose
//! text holds a link, or that is long, goes as a text message before the bubble (LINE makes
//! links in text messages tappable, not in Flex text).

use flowbot_core::{Action, Button, Limits, Outcome, Part, PromptView, Segment, Unit, View};
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

/// LINE's limit on a text message, in UTF-16 code units.
pub const MAX_TEXT: usize = 5000;
/// The most messages in one reply or push.
pub const MAX_MESSAGES: usize = 5;
/// The most characters of a Flex message's `altText` (what notifications show).
const MAX_ALT: usize = 400;
/// A postback action's `label` (not shown on a box, but checked), in grapheme clusters.
const MAX_ACTION_LABEL: usize = 40;
/// A question text longer than this (UTF-16 units) goes as a text message, keeping the bubble
/// far under LINE's 30 KB.
const MAX_BUBBLE_TEXT: usize = 2000;
/// The owner's user id after the token in a group's postback data: `|U` and 32 hex digits.
const OWNER_SUFFIX: usize = 34;

/// What LINE allows: postback `data` of 300 characters (the token, and in groups the owner's
/// id), labels as a `displayText` of at most 300 but kept to 100 grapheme clusters and buttons
/// to 12 a question, so that a bubble stays under LINE's 30 KB; 5,000 UTF-16 units a text.
/// LINE has no dialog box, so a form's answers are typed.
pub const LIMITS: Limits = Limits {
    platform: "LINE",
    label: 100,
    label_unit: Unit::Graphemes,
    token_bytes: 300 - OWNER_SUFFIX,
    buttons: 12,
    text: MAX_TEXT,
    text_unit: Unit::Utf16,
    ..Limits::NONE
};

/// A button's postback data: the token, and in a group the conversation's owner.
pub fn data(token: &str, owner: Option<&str>) -> String {
    match owner {
        Some(owner) => format!("{token}|{owner}"),
        None => token.to_owned(),
    }
}

/// A postback's data as its token and owner (if any).
pub fn parse_data(data: &str) -> (&str, Option<&str>) {
    match data.split_once('|') {
        Some((token, owner)) => (token, Some(owner)),
        None => (data, None),
    }
}

/// The messages one outcome sends, in order. `owner` is the user whose conversation it is, in
/// a group (it goes into the buttons' data).
pub fn messages(outcome: &Outcome<'_>, owner: Option<&str>) -> Vec<Value> {
    let view = View::new(outcome);
    let mut before: Vec<&str> = Vec::new();
    let mut asked: Vec<&str> = Vec::new();
    for paragraph in &view.paragraphs {
        match paragraph.part {
            Part::Prompt(_) | Part::Note if view.prompt.is_some() => asked.push(&paragraph.text),
            _ => before.push(&paragraph.text),
        }
    }
    let asked = asked.join("\n\n");
    let in_bubble = !asked.is_empty()
        && Unit::Utf16.len(&asked) <= MAX_BUBBLE_TEXT
        && flowbot_core::segments(&asked).iter().all(|s| matches!(s, Segment::Plain(_)));
    if !in_bubble && !asked.is_empty() {
        before.push(&asked);
    }
    let mut out = texts(&before.join("\n\n"));
    if let Some(prompt) = &view.prompt {
        let text = in_bubble.then_some(asked.as_str());
        out.push(bubble(prompt, text, &alt_text(&asked, prompt), owner));
    }
    out
}

/// Plain text as text messages of at most [`MAX_TEXT`] UTF-16 units (none for an empty text).
pub fn texts(text: &str) -> Vec<Value> {
    flowbot_core::split(text, MAX_TEXT, Unit::Utf16)
        .into_iter()
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| json!({ "type": "text", "text": chunk }))
        .collect()
}

/// What a notification shows for the bubble: the question (or the first answer's label).
fn alt_text(asked: &str, prompt: &PromptView<'_>) -> String {
    let alt = if asked.trim().is_empty() {
        prompt.buttons().next().map(|b| b.label).unwrap_or("?")
    } else {
        asked
    };
    alt.chars().take(MAX_ALT).collect()
}

/// The question's bubble: its text (if it fits), a box per answer, then the navigation.
fn bubble(prompt: &PromptView<'_>, text: Option<&str>, alt: &str, owner: Option<&str>) -> Value {
    let mut contents = Vec::new();
    if let Some(text) = text {
        contents.push(json!({ "type": "text", "text": text, "wrap": true, "weight": "bold" }));
    }
    let (side, own): (Vec<_>, Vec<_>) =
        prompt.nav.iter().partition(|b| matches!(b.token.action, Action::Back | Action::Restart));
    for button in prompt.choices.iter().chain(own) {
        contents.push(tappable(button, owner, None));
    }
    if !side.is_empty() {
        let row: Vec<Value> = side.into_iter().map(|b| tappable(b, owner, Some(1))).collect();
        contents.push(
            json!({ "type": "box", "layout": "horizontal", "spacing": "md", "contents": row }),
        );
    }
    json!({
        "type": "flex",
        "altText": alt,
        "contents": {
            "type": "bubble",
            "body": { "type": "box", "layout": "vertical", "spacing": "md", "contents": contents },
        },
    })
}

/// One tappable box: the label wrapped inside, a postback with the token and the label.
fn tappable(button: &Button<'_>, owner: Option<&str>, flex: Option<u8>) -> Value {
    let label = button.label;
    let mut b = json!({
        "type": "box",
        "layout": "vertical",
        "paddingAll": "md",
        "borderWidth": "1px",
        "borderColor": "#888888",
        "cornerRadius": "md",
        "action": {
            "type": "postback",
            "label": graphemes(label, MAX_ACTION_LABEL),
            "data": data(&button.token.to_string(), owner),
            "displayText": label,
        },
        "contents": [{ "type": "text", "text": label, "wrap": true, "align": "center" }],
    });
    if let Some(flex) = flex {
        b["flex"] = json!(flex);
    }
    b
}

/// The first `max` grapheme clusters of `s`.
fn graphemes(s: &str, max: usize) -> String {
    s.graphemes(true).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_carries_the_owner_in_groups() {
        assert_eq!(data("3:q1:0", None), "3:q1:0");
        let owner = format!("U{}", "a".repeat(32));
        let d = data("3:q1:0", Some(&owner));
        assert_eq!(d.len(), "3:q1:0".len() + OWNER_SUFFIX);
        assert_eq!(parse_data(&d), ("3:q1:0", Some(owner.as_str())));
        assert_eq!(parse_data("3:q1:0"), ("3:q1:0", None));
    }

    #[test]
    fn texts_are_split_in_utf16_units() {
        let text = "🙂".repeat(3000);
        let messages = texts(&text);
        assert_eq!(messages.len(), 2);
        for m in &messages {
            assert!(m["text"].as_str().unwrap().encode_utf16().count() <= MAX_TEXT);
        }
        assert!(texts("").is_empty());
        assert_eq!(graphemes("👨‍👩‍👧‍👦あ", 1), "👨‍👩‍👧‍👦");
    }
}
