//! What the page draws, as JSON: an outcome's replies, the prompt a conversation waits at, the
//! answers given on the way there, and texts as segments. All of it from the core's `View`
//! and the flow; see `API.md` for the shapes.

use flowbot_core::{
    Action, Button, Conversation, Flow, NodeKind, Outcome, Paragraph, Part, Prompt, Segment, View,
    segments,
};
use serde_json::{Value, json};

/// An outcome as the page draws it.
pub(crate) fn outcome(_: &Flow, outcome: &Outcome<'_>) -> Value {
    let view = View::new(outcome);
    json!({"replies": replies(&view), "changed": view.changed})
}

/// An outcome's replies alone (what a start would show, for a preview).
pub(crate) fn replies_of(outcome: &Outcome<'_>) -> Vec<Value> {
    replies(&View::new(outcome))
}

/// The prompt a conversation waits at.
pub(crate) fn prompt(prompt: &Prompt<'_>) -> Value {
    replies(&View::of_prompt(prompt)).pop().unwrap_or_default()
}

/// A conversation as a reload shows it: the questions answered on the way to where it is (each
/// with the label chosen), then its prompt.
pub(crate) fn conversation(flow: &Flow, conversation: &Conversation) -> (Vec<Value>, Value) {
    let history = conversation
        .path()
        .iter()
        .filter_map(|step| {
            let node = flow.node(step.node);
            let NodeKind::Question(question) = node.kind() else { return None };
            let choice = question.choices().get(usize::from(step.choice))?;
            Some(json!({
                "node": node.id(),
                "text": text(question.text()),
                "note": question.note().map(text),
                "answer": choice.label(),
            }))
        })
        .collect();
    (history, prompt(&conversation.prompt(flow)))
}

/// A desk's notice as the page draws it (`notices` of `GET /chat/api`).
pub(crate) fn notice(body: &str) -> Value {
    json!({"text": text(body)})
}

/// The replies of a view: one entry per paragraph, the prompt's text, note and buttons in one.
fn replies(view: &View<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut paragraphs = view.paragraphs.iter().peekable();
    while let Some(p) = paragraphs.next() {
        out.push(match p.part {
            Part::Notice(kind) => {
                json!({"kind": "notice", "notice": kind.name(), "text": paragraph(p)})
            }
            Part::Say(_) => json!({"kind": "say", "text": paragraph(p)}),
            Part::Handoff(_) => json!({"kind": "handoff", "text": paragraph(p)}),
            Part::Note => continue,
            Part::Prompt(node) => {
                let note = paragraphs.next_if(|n| matches!(n.part, Part::Note)).map(paragraph);
                let Some(prompt) = &view.prompt else { continue };
                let button = |b: &Button<'_>, nav: bool| {
                    json!({"label": b.label, "token": b.token.to_string(), "nav": nav})
                };
                let buttons: Vec<Value> = prompt
                    .choices
                    .iter()
                    .map(|b| button(b, false))
                    .chain(prompt.nav.iter().map(|b| {
                        button(b, matches!(b.token.action, Action::Back | Action::Restart))
                    }))
                    .collect();
                // At a form field the page's text box is the answer box.
                let input = prompt.input.map(|(_, field)| json!({"label": field.label()}));
                json!({
                    "kind": "prompt",
                    "node": node.id(),
                    "text": paragraph(p),
                    "note": note,
                    "buttons": buttons,
                    "input": input,
                    "ending": prompt.ending,
                })
            }
        });
    }
    out
}

fn paragraph(paragraph: &Paragraph<'_>) -> Value {
    segments_json(paragraph.segments())
}

/// A text as segments the page turns into text nodes and links.
fn text(text: &str) -> Value {
    segments_json(segments(text))
}

fn segments_json(segments: Vec<Segment<'_>>) -> Value {
    let parts: Vec<Value> = segments
        .into_iter()
        .map(|segment| match segment {
            Segment::Plain(s) => json!({"t": "text", "v": s}),
            Segment::Url(s) => json!({"t": "url", "v": s}),
            Segment::Email(s) => json!({"t": "email", "v": s}),
        })
        .collect();
    Value::Array(parts)
}
