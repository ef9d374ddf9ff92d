//! What every drawing of a flow shares (`render`, `stats --format mermaid|svg`): each node's
//! shape and box text, and the edges with their answer labels.

use flowbot_core::{Flow, Node, NodeIx, NodeKind};

/// How a node is drawn: one shape per kind of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Question,
    Message,
    Ending,
    Form,
}

impl Shape {
    pub fn of(node: &Node) -> Shape {
        match node.kind() {
            NodeKind::Question(_) => Shape::Question,
            NodeKind::Message { .. } => Shape::Message,
            NodeKind::Ending { .. } => Shape::Ending,
            NodeKind::Form { .. } => Shape::Form,
        }
    }

    /// The kind's name in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Question => "question",
            Shape::Message => "message",
            Shape::Ending => "ending",
            Shape::Form => "form",
        }
    }
}

/// The text a node's box shows: the whole question (and note); a message's or ending's title,
/// or its whole text with `full`.
pub fn box_text(node: &Node, full: bool) -> String {
    match node.kind() {
        NodeKind::Question(q) => match q.note() {
            Some(note) => format!("{}\n{note}", q.text()),
            None => q.text().to_owned(),
        },
        NodeKind::Message { text, .. } | NodeKind::Ending { text } if full => text.clone(),
        _ => node.title().to_owned(),
    }
}

/// One edge as drawn: a question's answer carries its label; a message's or form's `next` none.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub from: NodeIx,
    pub choice: Option<u8>,
    pub label: Option<&'a str>,
    pub to: NodeIx,
}

/// Every edge of the flow, in the order of `Flow::edges`.
pub fn lines(flow: &Flow) -> impl Iterator<Item = Line<'_>> {
    flow.edges().map(move |e| {
        let label = match (flow.node(e.from).kind(), e.choice) {
            (NodeKind::Question(q), Some(c)) => Some(q.choices()[usize::from(c)].label()),
            _ => None,
        };
        Line { from: e.from, choice: e.choice, label, to: e.to }
    })
}
