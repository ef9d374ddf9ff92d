//! Telegram's look of the core's [`View`]: HTML text with links, split to fit, keyboards; for a
//! press, the toast and the answered message's new text.

use flowbot_core::{Action, Flow, Limits, Outcome, PromptView, Segment, Unit, View, segments};

/// Telegram's limit on a message's text, in UTF-16 code units after entity parsing.
pub const MAX_TEXT: usize = 4096;
/// Telegram's limit on a toast (`answerCallbackQuery`'s text), in characters.
const MAX_TOAST: usize = 200;

/// What Telegram allows: `callback_data` of 64 bytes, 4,096 UTF-16 units of text, 100 buttons on
/// an inline keyboard. Labels are not limited in practice (Telegram cuts them on screen); it has
/// no modal, so a form's answers are typed as messages.
pub const LIMITS: Limits = Limits {
    platform: "Telegram",
    token_bytes: 64,
    buttons: 100,
    text: MAX_TEXT,
    text_unit: Unit::Utf16,
    ..Limits::NONE
};

/// A message to send: HTML chunks (the keyboard goes on the last) and the keyboard's rows of
/// `(label, callback_data)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outgoing {
    pub chunks: Vec<String>,
    pub keyboard: Vec<Vec<(String, String)>>,
}

/// What to do on Telegram after a step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The message to send, if any.
    pub message: Option<Outgoing>,
    /// For a press: the toast to show on the button (empty: just stop the spinner).
    pub toast: String,
    /// For a press that moved on: the pressed message's new text (its question and the answer
    /// chosen), sent without a keyboard so that its buttons cannot be pressed again.
    pub answered: Option<String>,
}

/// The button press an outcome answers.
#[derive(Debug, Clone, Copy)]
pub struct Pressed<'a> {
    /// The button's callback data.
    pub data: &'a str,
    /// The pressed message's text as Telegram shows it, if it came with the press.
    pub shown: Option<&'a str>,
}

/// How one outcome shows on Telegram. `pressed` is the button that caused it, if a button did.
pub fn plan(flow: &Flow, outcome: &Outcome<'_>, pressed: Option<Pressed<'_>>) -> Plan {
    let view = View::of(flow, outcome, pressed.map(|p| p.data));
    if let Some(toast) = view.toast {
        return Plan { message: None, toast: truncate(toast, MAX_TOAST), answered: None };
    }
    let answered = view.answered.as_ref().map(|a| {
        let shown = pressed.and_then(|p| p.shown).filter(|_| a.keep_shown);
        answered_text(shown.unwrap_or(&a.asked), a.label)
    });
    let text = view.paragraphs.iter().map(|p| &*p.text).collect::<Vec<_>>().join("\n\n");
    let keyboard = view.prompt.as_ref().map(keyboard).unwrap_or_default();
    let message = Outgoing { chunks: split(&text).iter().map(|c| html(c)).collect(), keyboard };
    Plan { message: Some(message), toast: String::new(), answered }
}

/// One button per row for the choices (labels are long) and the resume button, then back and
/// restart side by side.
fn keyboard(prompt: &PromptView<'_>) -> Vec<Vec<(String, String)>> {
    let cell = |b: &flowbot_core::Button<'_>| (b.label.to_owned(), b.token.to_string());
    let (side, own): (Vec<_>, Vec<_>) =
        prompt.nav.iter().partition(|b| matches!(b.token.action, Action::Back | Action::Restart));
    let mut rows: Vec<Vec<_>> = prompt.choices.iter().chain(own).map(|b| vec![cell(b)]).collect();
    if !side.is_empty() {
        rows.push(side.into_iter().map(cell).collect());
    }
    rows
}

/// The text a pressed message keeps: what it asked (its last chunk) and, under it, the answer.
fn answered_text(asked: &str, label: &str) -> String {
    let answer = format!("\n\n→ {label}");
    let last = split(asked).pop().unwrap_or_default();
    let mut text = html(&last);
    if utf16_len(&last) + utf16_len(&answer) <= MAX_TEXT {
        text.push_str(&format!("\n\n→ <b>{}</b>", escape(label)));
    }
    text
}

/// Plain text as Telegram HTML: `& < >` escaped, URLs and e-mail addresses as links.
///
/// ```
/// assert_eq!(
///     flowbot_telegram::html("<G-MIS> https://www.g-mis.mhlw.go.jp/"),
///     "&lt;G-MIS&gt; <a href=\"https://www.g-mis.mhlw.go.jp/\">https://www.g-mis.mhlw.go.jp/</a>"
/// );
/// ```
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for segment in segments(text) {
        match segment {
            Segment::Plain(s) => out.push_str(&escape(s)),
            Segment::Url(url) => {
                out.push_str(&format!("<a href=\"{}\">{}</a>", escape_attr(url), escape(url)));
            }
            Segment::Email(mail) => {
                out.push_str(&format!(
                    "<a href=\"mailto:{}\">{}</a>",
                    escape_attr(mail),
                    escape(mail)
                ));
            }
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn escape_attr(s: &str) -> String {
    escape(s).replace('"', "&quot;")
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Splits plain text into pieces of at most [`MAX_TEXT`] UTF-16 units (entity text is measured
/// after HTML parsing, so escaping does not count), with the core's splitter: at paragraph
/// breaks where it can, else at line breaks, else between characters, never inside a link.
pub fn split(text: &str) -> Vec<String> {
    flowbot_core::split(text, MAX_TEXT, Unit::Utf16).into_iter().map(str::to_owned).collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_links() {
        assert_eq!(
            html("a<b> & https://x.example/?a=1&b=2 〈info@g-mis.net〉"),
            "a&lt;b&gt; &amp; <a href=\"https://x.example/?a=1&amp;b=2\">https://x.example/?a=1&amp;b=2</a> 〈<a href=\"mailto:info@g-mis.net\">info@g-mis.net</a>〉"
        );
    }

    #[test]
    fn splits_at_paragraphs_then_lines_then_characters() {
        let text = format!("{}\n\n{}\n\n{}", "あ".repeat(3000), "い".repeat(3000), "う".repeat(10));
        let chunks = split(&text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], "あ".repeat(3000));
        assert_eq!(chunks[1], format!("{}\n\n{}", "い".repeat(3000), "う".repeat(10)));
        let long_line = "え".repeat(9000);
        let chunks = split(&long_line);
        assert_eq!(chunks.iter().map(|c| c.chars().count()).collect::<Vec<_>>(), [4096, 4096, 808]);
        assert_eq!(chunks.concat(), long_line);
        // Emoji count twice.
        assert!(split(&"🙂".repeat(3000)).iter().all(|c| utf16_len(c) <= MAX_TEXT));
        assert_eq!(split(""), [""]);
    }
}
