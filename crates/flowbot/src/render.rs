//! `flowbot render`: a flow as a Mermaid or Graphviz diagram carrying its exact texts; with
//! a `Traffic`, the Mermaid diagram of `flowbot stats --format mermaid`.

use std::fmt::Write;

use flowbot_core::Flow;

use crate::diagram::{Shape, box_text, lines};
use crate::traffic::Traffic;

/// What a diagram shows beyond nodes and edges.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The whole text of messages and endings, not only their titles.
    pub full: bool,
    /// The named entry points.
    pub entries: bool,
}

pub fn mermaid(flow: &Flow, options: Options) -> String {
    mermaid_with(flow, options, None)
}

/// The Mermaid diagram, with each version's counts when `traffic` is given: `▶ n` on a node
/// for the conversations that reached it, `■ n` (and a red border) for those that stopped there
/// short of an ending, `(n)` on an edge for those that took it.
pub fn mermaid_with(flow: &Flow, options: Options, traffic: Option<&Traffic>) -> String {
    let mut s = String::from("flowchart TD\n");
    let start = flow.node(flow.start()).id();
    match traffic {
        Some(t) => writeln!(s, "  start((\"/start\")) -->|\"({})\"| {start}", t.started),
        None => writeln!(s, "  start((\"/start\")) --> {start}"),
    }
    .unwrap_or(());
    for (i, node) in flow.nodes().iter().enumerate() {
        let mut text = box_text(node, options.full);
        if let Some(t) = traffic {
            let _ = write!(text, "\n▶ {}", t.reached[i]);
            let dropped = t.dropped(flow, i);
            if dropped > 0 {
                let _ = write!(text, "  ■ {dropped}");
            }
        }
        let text = mermaid_text(&text);
        let (open, close) = match Shape::of(node) {
            Shape::Question => ("{{\"", "\"}}"),
            Shape::Message => ("[/\"", "\"/]"),
            Shape::Ending => ("([\"", "\"])"),
            Shape::Form => ("[[\"", "\"]]"),
        };
        let _ = writeln!(s, "  {}{open}{text}{close}", node.id());
    }
    for (i, line) in lines(flow).enumerate() {
        let (from, to) = (flow.node(line.from).id(), flow.node(line.to).id());
        let count = traffic.map(|t| t.edges[i]);
        match (line.label, count) {
            (Some(label), Some(n)) => {
                writeln!(s, "  {from} -->|\"{} ({n})\"| {to}", mermaid_text(label))
            }
            (Some(label), None) => writeln!(s, "  {from} -->|\"{}\"| {to}", mermaid_text(label)),
            (None, Some(n)) => writeln!(s, "  {from} -->|\"({n})\"| {to}"),
            (None, None) => writeln!(s, "  {from} --> {to}"),
        }
        .unwrap_or(());
    }
    if options.entries {
        for (name, ix) in flow.entries() {
            let entry = name.replace('-', "_");
            let _ = writeln!(s, "  entry_{entry}>\"?start={name}\"] -.-> {}", flow.node(ix).id());
        }
    }
    if let Some(t) = traffic {
        let dropped: Vec<&str> = (0..flow.nodes().len())
            .filter(|&i| t.dropped(flow, i) > 0)
            .map(|i| flow.nodes()[i].id())
            .collect();
        s.push_str("  classDef dropped stroke:#d00000,stroke-width:4px,color:#900000\n");
        if !dropped.is_empty() {
            let _ = writeln!(s, "  class {} dropped", dropped.join(","));
        }
        s.push_str(
            "  legend[\"▶ n: conversations that reached the node<br/>■ n: conversations that \
             stopped there, short of an ending<br/>(n): conversations that took the edge\"]\n",
        );
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
        let shape = match Shape::of(node) {
            Shape::Question => "diamond",
            Shape::Message => "note",
            Shape::Ending => "box, style=rounded",
            Shape::Form => "box3d",
        };
        let _ = writeln!(
            s,
            "  \"{}\" [shape={shape}, label=\"{}\"];",
            node.id(),
            dot_text(&box_text(node, options.full))
        );
    }
    for line in lines(flow) {
        let (from, to) = (flow.node(line.from).id(), flow.node(line.to).id());
        match line.label {
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
