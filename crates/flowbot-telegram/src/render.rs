//! Telegram's rendering of the engine's replies: HTML text with links, split to fit, keyboards.

use flowbot_core::{Action, Flow, NodeKind, Outcome, Prompt, Reply, Segment, Token, segments};

/// Telegram's limit on a message's text, in UTF-16 code units after entity parsing.
pub const MAX_TEXT: usize = 4096;

/// A message to send: HTML chunks (the keyboard goes on the last) and the keyboard's rows of
/// `(label, callback_data)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub chunks: Vec<String>,
    pub keyboard: Vec<Vec<(String, String)>>,
}

/// What to do on Telegram after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    // A press that changed nothing (an old message, a second press, a forged button): the
    // notice is a toast on the button; the question it points to is already on screen.
    if pressed.is_some() && !outcome.changed {
        let toast = outcome
            .replies
            .iter()
            .find_map(|r| match r {
                Reply::Notice { text, .. } => Some(*text),
                _ => None,
            })
            .unwrap_or_default();
        return Plan { message: None, toast: truncate(toast, 200), answered: None };
    }
    let answered = pressed.and_then(|p| answered_text(flow, p));
    let mut paragraphs: Vec<String> = Vec::new();
    let mut keyboard = Vec::new();
    for reply in &outcome.replies {
        match reply {
            Reply::Notice { text, .. } | Reply::Say { text, .. } => {
                paragraphs.push((*text).to_owned())
            }
            Reply::Handoff => {
                if let Some(handoff) = &outcome.handoff {
                    paragraphs.push(handoff.message());
                }
            }
            Reply::Prompt(prompt) => {
                paragraphs.push(prompt.text().to_owned());
                if let Some(note) = prompt.note() {
                    paragraphs.push(note.to_owned());
                }
                keyboard = keyboard_of(prompt);
            }
        }
    }
    let text = paragraphs.join("\n\n");
    let message = Outgoing { chunks: split(&text).iter().map(|c| html(c)).collect(), keyboard };
    Plan { message: Some(message), toast: String::new(), answered }
}

/// One button per row for the choices (labels are long), then back and restart side by side.
pub fn keyboard_of(prompt: &Prompt<'_>) -> Vec<Vec<(String, String)>> {
    let mut rows = Vec::new();
    let mut nav = Vec::new();
    for button in prompt.buttons() {
        let cell = (button.label.to_owned(), button.token.to_string());
        match button.token.action {
            Action::Back | Action::Restart => nav.push(cell),
            _ => rows.push(vec![cell]),
        }
    }
    if !nav.is_empty() {
        rows.push(nav);
    }
    rows
}

/// The text a pressed message keeps: what it asked (its last chunk) and, under it, the answer.
fn answered_text(flow: &Flow, pressed: Pressed<'_>) -> Option<String> {
    let token = Token::parse(pressed.data)?;
    let node = flow.node(flow.find(token.node)?);
    let label = flow.button_label(&token)?;
    let asked = match (token.action, node.kind()) {
        (Action::Resume, _) => flow.texts().resume_question.clone(),
        (_, NodeKind::Question(q)) => match q.note() {
            Some(note) => format!("{}\n\n{note}", q.text()),
            None => q.text().to_owned(),
        },
        // A form's steps are not in the flow's text (the confirmation lists the answers): keep
        // what the message showed.
        (_, NodeKind::Form { .. }) => pressed.shown.unwrap_or(node.text()).to_owned(),
        _ => node.text().to_owned(),
    };
    let answer = format!("\n\n→ {label}");
    let last = split(&asked).pop().unwrap_or_default();
    let mut text = html(&last);
    if utf16_len(&last) + utf16_len(&answer) <= MAX_TEXT {
        text.push_str(&format!("\n\n→ <b>{}</b>", escape(label)));
    }
    Some(text)
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

/// Splits plain text into pieces of at most [`MAX_TEXT`], at paragraph breaks where it can, else
/// at line breaks, else between characters.
pub fn split(text: &str) -> Vec<String> {
    split_by(text, MAX_TEXT)
}

fn split_by(text: &str, max: usize) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let push_piece = |piece: &str, sep: &str, current: &mut String, chunks: &mut Vec<String>| {
        let needed = utf16_len(current)
            + if current.is_empty() { 0 } else { utf16_len(sep) }
            + utf16_len(piece);
        if needed <= max {
            if !current.is_empty() {
                current.push_str(sep);
            }
            current.push_str(piece);
        } else {
            if !current.is_empty() {
                chunks.push(std::mem::take(current));
            }
            current.push_str(piece);
        }
    };
    for paragraph in text.split("\n\n") {
        if utf16_len(paragraph) <= max {
            push_piece(paragraph, "\n\n", &mut current, &mut chunks);
            continue;
        }
        for line in paragraph.split('\n') {
            if utf16_len(line) <= max {
                push_piece(line, "\n", &mut current, &mut chunks);
                continue;
            }
            let mut piece = String::new();
            for c in line.chars() {
                if utf16_len(&piece) + c.len_utf16() > max {
                    push_piece(&std::mem::take(&mut piece), "\n", &mut current, &mut chunks);
                }
                piece.push(c);
            }
            push_piece(&piece, "\n", &mut current, &mut chunks);
        }
    }
    if !current.is_empty() || chunks.is_empty() {
        chunks.push(current);
    }
    chunks
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
