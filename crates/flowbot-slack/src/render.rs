//! Slack's look of the core's [`View`]: `mrkdwn` text (`&`, `<`, `>` escaped, links as
//! `<url|text>`) split under a section's 3,000 characters, and Block Kit buttons whose value is
//! the engine's token; for a press, the notice or the answered message's new text.

use flowbot_core::{Flow, Limits, Outcome, PromptView, Segment, Unit, View, segments};
use serde_json::{Value, json};

/// Where a conversation's messages go: its channel and thread. A conversation is a direct
/// message's channel (`D…`) or a channel's thread (`C…:TS`, the thread's first message).
pub(crate) fn place(conversation: &str) -> (&str, Option<&str>) {
    match conversation.split_once(':') {
        Some((channel, thread)) => (channel, Some(thread)),
        None => (conversation, None),
    }
}

/// Slack's limit on a section block's text, in characters (of the escaped `mrkdwn`).
pub const MAX_TEXT: usize = 3000;
/// Slack's limit on the elements of an actions block.
const MAX_BUTTONS: usize = 25;

/// What Slack allows: button texts of 75 characters, button values of 2,000, 25 buttons in an
/// actions block, 3,000 characters in a section; a modal's title of 24 characters, an input's
/// label of 2,000 and a plain-text input of 3,000.
pub const LIMITS: Limits = Limits {
    platform: "Slack",
    label: 75,
    label_unit: Unit::Chars,
    token_bytes: 2000,
    buttons: MAX_BUTTONS,
    text: MAX_TEXT,
    text_unit: Unit::Chars,
    modal_title: 24,
    modal_label: 2000,
    input: 3000,
};

/// One message to post: its `mrkdwn` text and its blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub text: String,
    pub blocks: Value,
}

/// What to do on Slack after a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The messages to post, in order (the buttons on the last).
    pub messages: Vec<Message>,
    /// For a press that changed nothing: the notice to show (ephemerally).
    pub notice: Option<String>,
    /// For a press that moved on: the pressed message's new `mrkdwn` text, without buttons.
    pub answered: Option<String>,
}

/// Whose conversation a message's buttons belong to: the `block_id` of its actions block.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub user: &'a str,
    pub conversation: &'a str,
}

impl Owner<'_> {
    /// `USER|D…` in a direct message; `USER|C…:` in a channel's thread, whose `ts` a press
    /// brings itself (the message's thread, or the message if it is the thread's first), so
    /// that the first question can carry its buttons before its `ts` is known.
    pub fn block_id(&self) -> String {
        match place(self.conversation) {
            (channel, Some(_)) => format!("{}|{channel}:", self.user),
            (channel, None) => format!("{}|{channel}", self.user),
        }
    }
}

/// How one outcome shows on Slack. `pressed` is the button's token and the pressed message's
/// `mrkdwn` text, if a press caused it.
pub fn plan(
    flow: &Flow,
    outcome: &Outcome<'_>,
    owner: Owner<'_>,
    pressed: Option<(&str, Option<&str>)>,
) -> Plan {
    let view = View::of(flow, outcome, pressed.map(|(token, _)| token));
    if let Some(notice) = view.toast {
        return Plan { messages: Vec::new(), notice: Some(notice.to_owned()), answered: None };
    }
    let answered = view.answered.as_ref().map(|a| {
        let shown = pressed.and_then(|(_, shown)| shown).filter(|_| a.keep_shown);
        answered_text(shown.map_or_else(|| mrkdwn(&a.asked), str::to_owned), a.label)
    });
    let text = view.paragraphs.iter().map(|p| &*p.text).collect::<Vec<_>>().join("\n\n");
    let chunks = chunks(&text);
    let last = chunks.len().saturating_sub(1);
    let messages = chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let buttons = if i == last { view.prompt.as_ref().map(buttons) } else { None };
            message(chunk, buttons.filter(|b| !b.is_empty()), owner)
        })
        .collect();
    Plan { messages, notice: None, answered }
}

/// A message of `mrkdwn` text and, if any, its buttons.
fn message(text: String, buttons: Option<Vec<Value>>, owner: Owner<'_>) -> Message {
    let mut blocks = vec![section(&text)];
    if let Some(elements) = buttons {
        blocks.push(json!({"type": "actions", "block_id": owner.block_id(), "elements": elements}));
    }
    Message { text, blocks: Value::Array(blocks) }
}

/// A section block of `mrkdwn` text (`" "` for none: Slack refuses an empty one).
pub fn section(text: &str) -> Value {
    let text = if text.is_empty() { " " } else { text };
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// One button per answer with its exact label, in the order the core gives them (the input
/// button first, the choices, then resume, back and restart); each value is the engine's
/// token.
fn buttons(prompt: &PromptView<'_>) -> Vec<Value> {
    prompt
        .buttons()
        .take(MAX_BUTTONS)
        .enumerate()
        .map(|(i, b)| {
            let mut button = json!({
                "type": "button",
                "action_id": format!("b{i}"),
                "text": {"type": "plain_text", "text": b.label, "emoji": true},
                "value": b.token.to_string(),
            });
            if i == 0 && prompt.input.is_some() {
                button["style"] = json!("primary");
            }
            button
        })
        .collect()
}

/// An answered message's new text: what it showed and, under it, the answer chosen (cut to
/// fit).
pub fn answered_text(shown: String, label: &str) -> String {
    let mark = format!("\n\n→ *{}*", mrkdwn(label));
    let room = MAX_TEXT.saturating_sub(mark.chars().count());
    let kept: String = shown.chars().take(room).collect();
    kept + &mark
}

/// Plain text as Slack `mrkdwn`: `&`, `<` and `>` escaped, URLs and e-mail addresses as
/// `<url|text>` links.
///
/// ```
/// assert_eq!(
///     flowbot_slack::mrkdwn("<G-MIS> & https://www.g-mis.mhlw.go.jp/"),
///     "&lt;G-MIS&gt; &amp; <https://www.g-mis.mhlw.go.jp/|https://www.g-mis.mhlw.go.jp/>"
/// );
/// ```
pub fn mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for segment in segments(text) {
        match segment {
            Segment::Plain(s) => out.push_str(&escape(s)),
            Segment::Url(url) => {
                out.push_str(&format!("<{}|{}>", escape(url).replace('|', "%7C"), escape(url)));
            }
            Segment::Email(mail) => {
                out.push_str(&format!("<mailto:{}|{}>", escape(mail), escape(mail)));
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Plain text as `mrkdwn` chunks of at most [`MAX_TEXT`] characters once escaped, split by the
/// core's splitter (never inside a link).
pub fn chunks(text: &str) -> Vec<String> {
    let measure = |s: &str| mrkdwn(s).chars().count();
    flowbot_core::split_by(text, MAX_TEXT, Unit::Chars, measure).into_iter().map(mrkdwn).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_read() {
        assert_eq!(place("D123"), ("D123", None));
        assert_eq!(place("C1:1700000000.000100"), ("C1", Some("1700000000.000100")));
    }

    #[test]
    fn escapes_and_links() {
        assert_eq!(
            mrkdwn("a<b> & https://x.example/?a=1&b=2 〈info@g-mis.net〉"),
            "a&lt;b&gt; &amp; <https://x.example/?a=1&amp;b=2|https://x.example/?a=1&amp;b=2> 〈<mailto:info@g-mis.net|info@g-mis.net>〉"
        );
    }

    #[test]
    fn splits_under_the_limit_measured_escaped() {
        let text = format!("{}\n\n{}", "あ".repeat(2000), "い".repeat(2000));
        assert_eq!(chunks(&text), ["あ".repeat(2000), "い".repeat(2000)]);
        let amps = "&".repeat(2000);
        let pieces = chunks(&amps);
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|c| c.chars().count() <= MAX_TEXT));
        assert_eq!(pieces.concat(), mrkdwn(&amps));
    }
}
