//! One node compiled: its kind and shape, its choices' labels (unique, not numbers, not
//! navigation, within the platforms' limits) and targets.

use std::collections::HashMap;

use super::Report;
use super::fill::Values;
use crate::compile::MAX_CHOICES;
use crate::flow::{Choice, Means, NodeKind, Question, Texts, to_ix};
use crate::limits::Measured;
use crate::problem::ProblemKind;
use crate::raw::{RawMeans, RawNode};
use crate::text::{Typed, classify, normalize};

/// Where a node is: its line, and how its targets resolve to node indices.
pub(super) struct At<'a> {
    pub line: Option<u32>,
    pub resolve: &'a dyn Fn(&str) -> Option<usize>,
}

/// What compiling a question needs besides the node: its choices' lines, the flow's texts (for
/// the navigation labels) and the parameter values.
pub(super) struct Context<'a> {
    pub choice_lines: &'a [u32],
    pub texts: &'a Texts,
    pub values: &'a Values<'a>,
}

/// Compiles one node, reporting its problems; `None` when it cannot be built.
pub(super) fn compile_node(
    node: &RawNode,
    at: &At<'_>,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
    edges: &mut Vec<usize>,
) -> Option<NodeKind> {
    let (line, resolve) = (at.line, at.resolve);
    let (choice_lines, texts, values) = (ctx.choice_lines, ctx.texts, ctx.values);
    let id = node.id.as_str();
    let shape =
        |r: &mut Report<'_>, msg: &str| r.add(line, Some(id), ProblemKind::Shape(msg.to_owned()));
    let target =
        |r: &mut Report<'_>, line: Option<u32>, field: &str, name: &str, edges: &mut Vec<usize>| {
            let found = resolve(name);
            match found {
                Some(ix) => edges.push(ix),
                None => r.add(
                    line,
                    Some(id),
                    ProblemKind::UnknownTarget { field: field.to_owned(), target: name.to_owned() },
                ),
            }
            found
        };

    let kinds: Vec<&str> = [("ask", &node.ask), ("say", &node.say), ("end", &node.end)]
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
    if kinds.len() != 1 {
        let found = if kinds.is_empty() { "none".to_owned() } else { kinds.join(" and ") };
        r.add(line, Some(id), ProblemKind::NodeKind(found));
        return None;
    }

    if let Some(ask) = &node.ask {
        if node.next.is_some() {
            shape(r, "a question has `choices`, not `next`");
        }
        let raw_choices = node.choices.as_deref().unwrap_or(&[]);
        if raw_choices.is_empty() {
            shape(r, "a question needs at least one choice");
        }
        if raw_choices.len() > MAX_CHOICES {
            shape(
                r,
                &format!("{} choices; a question has at most {MAX_CHOICES}", raw_choices.len()),
            );
        }
        let mut choices = Vec::with_capacity(raw_choices.len());
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut means_seen = (false, false);
        let mut ok = true;
        for (c, choice) in raw_choices.iter().enumerate() {
            let n = c + 1;
            let cline = choice_lines.get(c).copied().or(line);
            let label = r.fill(&choice.label, values, cline, Some(id));
            let key = normalize(&label);
            if key.is_empty() {
                r.add(cline, Some(id), ProblemKind::EmptyLabel { choice: n });
            } else if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                r.add(
                    cline,
                    Some(id),
                    ProblemKind::EqualLabels { first: *first, second: n, label: label.clone() },
                );
            } else if let Typed::Number(_) = classify(&key) {
                r.add(
                    cline,
                    Some(id),
                    ProblemKind::LabelIsNumber { choice: n, label: label.clone() },
                );
            } else if key == texts.back_key || key == texts.restart_key {
                let button = if key == texts.back_key { "back" } else { "restart" };
                r.add(
                    cline,
                    Some(id),
                    ProblemKind::LabelIsNavigation { choice: n, label: label.clone(), button },
                );
            }
            seen.push((key.clone(), n));
            let what = format!("choice {n}'s label `{label}`");
            r.limits(cline, Some(id), &what, Measured::Label(&label));
            let means = choice.means.map(|m| match m {
                RawMeans::Yes => Means::Yes,
                RawMeans::No => Means::No,
            });
            match means {
                Some(Means::Yes) if means_seen.0 => {
                    r.add(cline, Some(id), ProblemKind::DuplicateMeans("yes"))
                }
                Some(Means::No) if means_seen.1 => {
                    r.add(cline, Some(id), ProblemKind::DuplicateMeans("no"))
                }
                Some(Means::Yes) => means_seen.0 = true,
                Some(Means::No) => means_seen.1 = true,
                None => {}
            }
            let field = format!("choice {n}'s `next`");
            match target(r, cline, &field, &choice.next, edges) {
                Some(next) => {
                    choices.push(Choice { label, key, next: to_ix(next), means, line: cline })
                }
                None => ok = false,
            }
        }
        let text = r.fill(ask, values, line, Some(id));
        let note = node.note.as_deref().map(|n| r.fill(n, values, line, Some(id)));
        return ok.then_some(NodeKind::Question(Question { text, note, choices }));
    }
    if node.choices.is_some() {
        shape(r, "only a question (`ask`) has `choices`");
    }
    if node.note.is_some() {
        shape(r, "only a question (`ask`) has a `note`");
    }
    if let Some(say) = &node.say {
        let text = r.fill(say, values, line, Some(id));
        let Some(next) = &node.next else {
            shape(r, "a message (`say`) needs `next`");
            return None;
        };
        let next = target(r, line, "`next`", next, edges)?;
        return Some(NodeKind::Message { text, next: to_ix(next) });
    }
    let end = node.end.as_deref().unwrap_or_default();
    if node.next.is_some() {
        shape(r, "an ending (`end`) has no `next`");
    }
    Some(NodeKind::Ending { text: r.fill(end, values, line, Some(id)) })
}

pub(super) fn node_text(kind: &NodeKind) -> &str {
    match kind {
        NodeKind::Question(q) => &q.text,
        NodeKind::Message { text, .. } | NodeKind::Ending { text } => text,
        NodeKind::Form { .. } => "",
    }
}

/// A node that asks a form: `form:` and `next:`, nothing else.
pub(super) fn compile_form_node(
    node: &RawNode,
    name: &str,
    declared: bool,
    at: &At<'_>,
    form_ix: &HashMap<&str, usize>,
    r: &mut Report<'_>,
    edges: &mut Vec<usize>,
) -> Option<NodeKind> {
    let (line, resolve) = (at.line, at.resolve);
    let id = Some(node.id.as_str());
    let others: Vec<&str> = [
        ("ask", node.ask.is_some()),
        ("say", node.say.is_some()),
        ("end", node.end.is_some()),
        ("note", node.note.is_some()),
        ("choices", node.choices.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    if !others.is_empty() {
        r.add(
            line,
            id,
            ProblemKind::Shape(format!(
                "a form node has `form` and `next` only, not {}",
                others.join(", ")
            )),
        );
    }
    let form = match form_ix.get(name) {
        Some(&ix) => Some(ix),
        // A form that failed to compile was reported already.
        None if declared => None,
        None => {
            r.add(
                line,
                id,
                ProblemKind::Shape(format!("`form: {name}` names no form under `forms:`")),
            );
            None
        }
    };
    let Some(next) = &node.next else {
        r.add(line, id, ProblemKind::Shape("a form node needs `next`".to_owned()));
        return None;
    };
    let next = match resolve(next) {
        Some(ix) => {
            edges.push(ix);
            ix
        }
        None => {
            r.add(
                line,
                id,
                ProblemKind::UnknownTarget { field: "`next`".into(), target: next.clone() },
            );
            return None;
        }
    };
    Some(NodeKind::Form { form: form?, next: to_ix(next) })
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}
