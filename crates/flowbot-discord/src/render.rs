//! Discord's rendering of the engine's replies: message content (Markdown-safe, links without
//! previews, split under 2,000 characters) and rows of buttons.

use flowbot_core::{Action, Outcome, Prompt, Reply, Segment, segments};
use serenity::all::{ButtonStyle, CreateActionRow, CreateButton};

/// Discord's limit on a message's content, in characters.
pub const MAX_CONTENT: usize = 2000;
/// Discord's limits on buttons: per row, and rows per message.
const PER_ROW: usize = 5;

/// The content chunks of an outcome and the buttons of its prompt (on the last chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub chunks: Vec<String>,
    /// Rows of `(label, custom_id, is_choice)`.
    pub rows: Vec<Vec<(String, String, bool)>>,
}

pub fn render(outcome: &Outcome<'_>) -> Rendered {
    let mut paragraphs = Vec::new();
    let mut rows = Vec::new();
    for reply in &outcome.replies {
        match reply {
            Reply::Notice { text, .. } | Reply::Say { text, .. } => paragraphs.push(content(text)),
            Reply::Handoff => {
                if let Some(handoff) = &outcome.handoff {
                    paragraphs.push(content(&handoff.message()));
                }
            }
            Reply::Prompt(prompt) => {
                paragraphs.push(content(prompt.text()));
                if let Some(note) = prompt.note() {
                    paragraphs.push(content(note));
                }
                rows = rows_of(prompt);
            }
        }
    }
    Rendered { chunks: split(&paragraphs.join("\n\n")), rows }
}

/// Choices one per row while they fit (labels are long), five per row when there are many;
/// back and restart together on the last row.
pub fn rows_of(prompt: &Prompt<'_>) -> Vec<Vec<(String, String, bool)>> {
    let mut choices = Vec::new();
    let mut nav = Vec::new();
    // A form field: the button that opens a text box for the answer comes first.
    let input = prompt.input().map(|(b, _)| b);
    for b in input.into_iter().chain(prompt.buttons()) {
        let cell = (b.label.to_owned(), b.token.to_string(), true);
        match b.token.action {
            Action::Back | Action::Restart => nav.push((cell.0, cell.1, false)),
            _ => choices.push(cell),
        }
    }
    let room = PER_ROW - usize::from(!nav.is_empty());
    let mut rows: Vec<Vec<_>> = if choices.len() <= room {
        choices.into_iter().map(|c| vec![c]).collect()
    } else {
        choices.chunks(PER_ROW).map(<[_]>::to_vec).collect()
    };
    if !nav.is_empty() {
        rows.push(nav);
    }
    rows
}

/// Serenity's rows; `disabled` for a message that was answered.
pub fn action_rows(rows: &[Vec<(String, String, bool)>], disabled: bool) -> Vec<CreateActionRow> {
    rows.iter()
        .map(|row| {
            CreateActionRow::Buttons(
                row.iter()
                    .map(|(label, id, choice)| {
                        let style =
                            if *choice { ButtonStyle::Primary } else { ButtonStyle::Secondary };
                        CreateButton::new(id.clone())
                            .label(label.clone())
                            .style(style)
                            .disabled(disabled)
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Plain text as Discord content: Markdown characters escaped, links in `<…>` (clickable,
/// without a preview card).
///
/// ```
/// assert_eq!(flowbot_discord::content("*G-MIS* https://www.g-mis.mhlw.go.jp/"), "\\*G\\-MIS\\* <https://www.g-mis.mhlw.go.jp/>");
/// ```
pub fn content(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for segment in segments(text) {
        match segment {
            Segment::Plain(s) => {
                for c in s.chars() {
                    if matches!(
                        c,
                        '\\' | '*'
                            | '_'
                            | '~'
                            | '`'
                            | '|'
                            | '>'
                            | '#'
                            | '['
                            | ']'
                            | '('
                            | ')'
                            | '-'
                            | '<'
                            | '@'
                    ) {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Segment::Url(url) => {
                out.push('<');
                out.push_str(url);
                out.push('>');
            }
            Segment::Email(mail) => out.push_str(mail),
        }
    }
    out
}

/// Splits content into chunks of at most [`MAX_CONTENT`] characters, at paragraph breaks where
/// it can, else at line breaks, else between characters.
pub fn split(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let len = |s: &str| s.chars().count();
    let mut push = |piece: &str, sep: &str, current: &mut String| {
        if current.is_empty() {
            current.push_str(piece);
        } else if len(current) + len(sep) + len(piece) <= MAX_CONTENT {
            current.push_str(sep);
            current.push_str(piece);
        } else {
            chunks.push(std::mem::replace(current, piece.to_owned()));
        }
    };
    for paragraph in text.split("\n\n") {
        if len(paragraph) <= MAX_CONTENT {
            push(paragraph, "\n\n", &mut current);
            continue;
        }
        for line in paragraph.split('\n') {
            let chars: Vec<char> = line.chars().collect();
            for piece in chars.chunks(MAX_CONTENT) {
                push(&piece.iter().collect::<String>(), "\n", &mut current);
            }
        }
    }
    chunks.push(current);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markdown_and_wraps_links() {
        assert_eq!(
            content("①*注意* https://www.g-mis.mhlw.go.jp/ と info@g-mis.net"),
            "①\\*注意\\* <https://www.g-mis.mhlw.go.jp/> と info@g-mis.net"
        );
    }

    #[test]
    fn splits_under_the_limit() {
        let text = format!("{}\n\n{}", "あ".repeat(1500), "い".repeat(1500));
        assert_eq!(split(&text), ["あ".repeat(1500), "い".repeat(1500)]);
        let long = "う".repeat(4500);
        let chunks = split(&long);
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_CONTENT));
        assert_eq!(chunks.concat(), long);
    }
}
