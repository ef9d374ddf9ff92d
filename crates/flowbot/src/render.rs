//! `flowbot render`: a flow as a Mermaid or Graphviz diagram carrying its exact texts.

use std::fmt::Write;

use flowbot_core::{Flow, Node, NodeKind};

/// What a diagram shows beyond nodes and edges.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The whole text of messages and endings, not only their titles.
    pub full: bool,
    /// The named entry points.
    pub entries: bool,
}

/// The text a node's box shows: the whole question (and note); a message's or ending's title,
/// or its whole text with `full`.
fn box_text(node: &Node, full: bool) -> String {
    match node.kind() {
        NodeKind::Question(q) => match q.note() {
            Some(note) => format!("{}\n{note}", q.text()),
            None => q.text().to_owned(),
        },
        NodeKind::Message { text, .. } | NodeKind::Ending { text } if full => text.clone(),
        _ => node.title().to_owned(),
    }
}

/// Edges as `(from id, label, to id)`; a message's edge has no label.
fn edges(flow: &Flow) -> impl Iterator<Item = (&str, Option<&str>, &str)> {
    flow.edges().map(move |e| {
        let from = flow.node(e.from);
        let label = match (from.kind(), e.choice) {
            (NodeKind::Question(q), Some(c)) => Some(q.choices()[usize::from(c)].label()),
            _ => None,
        };
        (from.id(), label, flow.node(e.to).id())
    })
}

pub fn mermaid(flow: &Flow, options: Options) -> String {
    let mut s = String::from("flowchart TD\n");
    let start = flow.node(flow.start()).id();
    let _ = writeln!(s, "  start((\"/start\")) --> {start}");
    for node in flow.nodes() {
        let text = mermaid_text(&box_text(node, options.full));
        let (open, close) = match node.kind() {
            NodeKind::Question(_) => ("{{\"", "\"}}"),
            NodeKind::Message { .. } => ("[/\"", "\"/]"),
            NodeKind::Ending { .. } => ("([\"", "\"])"),
            NodeKind::Form { .. } => ("[[\"", "\"]]"),
        };
        let _ = writeln!(s, "  {}{open}{text}{close}", node.id());
    }
    for (from, label, to) in edges(flow) {
        match label {
            Some(label) => writeln!(s, "  {from} -->|\"{}\"| {to}", mermaid_text(label)),
            None => writeln!(s, "  {from} --> {to}"),
        }
        .unwrap_or(());
    }
    if options.entries {
        for (name, ix) in flow.entries() {
            let entry = name.replace('-', "_");
            let _ = writeln!(s, "  entry_{entry}>\"?start={name}\"] -.-> {}", flow.node(ix).id());
        }
    }
    s
}

/// Escapes text for a quoted Mermaid label: quotes as entities, line breaks as `<br/>`.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' => out.push_str("<br/>"),
            c => out.push(c),
        }
    }
    out
}

pub fn dot(flow: &Flow, options: Options) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph \"{}\" {{", dot_text(flow.id()));
    s.push_str("  node [fontname=\"Noto Sans CJK JP\"];\n");
    for node in flow.nodes() {
        let shape = match node.kind() {
            NodeKind::Question(_) => "diamond",
            NodeKind::Message { .. } => "note",
            NodeKind::Ending { .. } => "box, style=rounded",
            NodeKind::Form { .. } => "box3d",
        };
        let _ = writeln!(
            s,
            "  \"{}\" [shape={shape}, label=\"{}\"];",
            node.id(),
            dot_text(&box_text(node, options.full))
        );
    }
    for (from, label, to) in edges(flow) {
        match label {
            Some(label) => writeln!(s, "  \"{from}\" -> \"{to}\" [label=\"{}\"];", dot_text(label)),
            None => writeln!(s, "  \"{from}\" -> \"{to}\";"),
        }
        .unwrap_or(());
    }
    if options.entries {
        for (name, ix) in flow.entries() {
            let _ = writeln!(s, "  \"?start={name}\" [shape=plaintext];");
            let _ =
                writeln!(s, "  \"?start={name}\" -> \"{}\" [style=dotted];", flow.node(ix).id());
        }
    }
    s.push_str("}\n");
    s
}

fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
