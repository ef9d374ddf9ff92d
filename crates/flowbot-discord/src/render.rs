//! Discord's look of the core's [`View`]: message content (Markdown-safe, links without
//! previews, split under 2,000 characters of escaped content) and rows of buttons.

use flowbot_core::{Action, Flow, Limits, Outcome, PromptView, Segment, Unit, View, segments};
use serenity::all::{ButtonStyle, CreateActionRow, CreateButton};

/// Discord's limit on a message's content, in characters (of the escaped Markdown).
pub const MAX_CONTENT: usize = 2000;
/// Discord's limits on buttons: per row, and rows per message.
const PER_ROW: usize = 5;
const ROWS: usize = 5;

/// What Discord allows: button labels of 80 characters, `custom_id`s of 100, 25 buttons (five
/// rows of five), 2,000 characters of content; a modal's title and its text input's label of 45
/// characters, and an answer of 4,000.
pub const LIMITS: Limits = Limits {
    platform: "Discord",
    label: 80,
    label_unit: Unit::Chars,
    token_bytes: 100,
    buttons: PER_ROW * ROWS,
    text: MAX_CONTENT,
    text_unit: Unit::Chars,
    modal_title: 45,
    modal_label: 45,
    input: 4000,
};

/// The content chunks of an outcome and the buttons of its prompt (on the last chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub chunks: Vec<String>,
    /// Rows of `(label, custom_id, is_choice)`.
    pub rows: Vec<Vec<(String, String, bool)>>,
    /// For a press that changed nothing: the notice to show (ephemerally), empty if none.
    pub toast: Option<String>,
    /// For a press that moved on: the label of the button chosen, to mark the answered message
    /// with (see [`answered`]).
    pub chosen: Option<String>,
}

/// How an outcome shows on Discord, without a press.
pub fn render(outcome: &Outcome<'_>) -> Rendered {
    rendered(&View::new(outcome))
}

/// How an outcome shows on Discord; `pressed` is the `custom_id` of the button that caused it.
pub fn render_press(flow: &Flow, outcome: &Outcome<'_>, pressed: &str) -> Rendered {
    rendered(&View::of(flow, outcome, Some(pressed)))
}

fn rendered(view: &View<'_>) -> Rendered {
    let text = view.paragraphs.iter().map(|p| &*p.text).collect::<Vec<_>>().join("\n\n");
    Rendered {
        chunks: chunks(&text),
        rows: view.prompt.as_ref().map(rows).unwrap_or_default(),
        toast: view.toast.map(str::to_owned),
        chosen: view.answered.as_ref().map(|a| a.label.to_owned()),
    }
}

/// An answered message's new content: what it showed and, under it, the answer chosen (cut to
/// fit).
pub fn answered(shown: &str, label: &str) -> String {
    let mark = format!("\n\n→ **{}**", content(label));
    let room = MAX_CONTENT.saturating_sub(mark.chars().count());
    let kept: String = shown.chars().take(room).collect();
    kept + &mark
}

/// Choices one per row while they fit (labels are long), five per row when there are many;
/// back and restart together on the last row.
fn rows(prompt: &PromptView<'_>) -> Vec<Vec<(String, String, bool)>> {
    let cell = |b: &flowbot_core::Button<'_>, choice: bool| {
        (b.label.to_owned(), b.token.to_string(), choice)
    };
    // A form field: the button that opens a text box for the answer comes first; the resume
    // button is an answer to the resume question.
    let (side, own): (Vec<_>, Vec<_>) =
        prompt.nav.iter().partition(|b| matches!(b.token.action, Action::Back | Action::Restart));
    let input = prompt.input.as_ref().map(|(b, _)| b);
    let choices: Vec<_> =
        input.into_iter().chain(&prompt.choices).chain(own).map(|b| cell(b, true)).collect();
    let nav: Vec<_> = side.into_iter().map(|b| cell(b, false)).collect();
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

/// Plain text as Discord content in chunks of at most [`MAX_CONTENT`] characters: split by the
/// core's splitter, measuring each chunk escaped, then escaped. A cut never separates a `\\` from
/// the character it escapes, nor splits a `<…>` link.
pub fn chunks(text: &str) -> Vec<String> {
    plain_chunks(text).into_iter().map(content).collect()
}

/// The plain text of each of [`chunks`], before escaping: slices of `text`, each at most
/// [`MAX_CONTENT`] characters once escaped, joined by the line breaks the split consumed.
pub fn plain_chunks(text: &str) -> Vec<&str> {
    let measure = |s: &str| content(s).chars().count();
    flowbot_core::split_by(text, MAX_CONTENT, Unit::Chars, measure)
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
        assert_eq!(chunks(&text), ["あ".repeat(1500), "い".repeat(1500)]);
        let long = "う".repeat(4500);
        let pieces = chunks(&long);
        assert!(pieces.iter().all(|c| c.chars().count() <= MAX_CONTENT));
        assert_eq!(pieces.concat(), long);
        // Escaped, a run of `*` doubles: the limit holds for the content, and no cut falls
        // between a `\\` and its character.
        let stars = "*".repeat(2500);
        let escaped = chunks(&stars);
        assert!(escaped.iter().all(|c| c.chars().count() <= MAX_CONTENT));
        assert!(escaped.iter().all(|c| c.len() % 2 == 0 && c.starts_with('\\')));
        assert_eq!(escaped.concat(), content(&stars));
    }
}
