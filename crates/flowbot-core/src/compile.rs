//! Stage two of loading: checks a [`RawFlow`] and builds the [`Flow`] the engine runs.
//!
//! Every check runs and every problem is collected, so one `flowbot check` lists all of them.
//! The parts: parameters and placeholders (`fill`), node ids and the graph (`graph`), one node
//! (`node`), one form (`form`); platform limits come from the caller ([`Limits`]).

mod fill;
mod form;
mod graph;
mod node;

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::flow::{Flow, FlowVersion, Node, NodeKind, Texts, to_ix};
use crate::limits::{Limits, Measured, over};
use crate::problem::{Problem, ProblemKind, Problems};
use crate::raw::{Params, RawFlow, RawTexts, SourceMap};
use crate::text::normalize;
use crate::token::max_token_len;

pub(crate) use graph::is_payload;

/// The most choices one question may have (one keyboard, single-digit choice tokens).
pub const MAX_CHOICES: usize = 10;

/// The problems found so far, and the platform limits to check.
struct Report<'a> {
    origin: &'a str,
    limits: &'a [&'a Limits],
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn add(&mut self, line: Option<u32>, node: Option<&str>, kind: ProblemKind) {
        self.problems.push(Problem {
            file: self.origin.to_owned(),
            line,
            node: node.map(str::to_owned),
            kind,
        });
    }

    /// Reports every platform limit `measured` breaks.
    fn limits(&mut self, line: Option<u32>, node: Option<&str>, what: &str, m: Measured<'_>) {
        for kind in over(self.limits, what, m) {
            self.add(line, node, kind);
        }
    }

    /// Fills a text's placeholders, reporting a bad one (and yielding an empty text).
    fn fill(
        &mut self,
        text: &str,
        values: &fill::Values<'_>,
        line: Option<u32>,
        node: Option<&str>,
    ) -> String {
        fill::fill(text, values).unwrap_or_else(|kind| {
            self.add(line, node, kind);
            String::new()
        })
    }
}

pub(crate) fn compile(
    raw: RawFlow,
    map: &SourceMap,
    source: &str,
    origin: &str,
    params: &Params,
    limits: &[&Limits],
) -> Result<Flow, Problems> {
    let mut r = Report { origin, limits, problems: Vec::new() };

    if !is_payload(&raw.flow) {
        r.add(map.flow, None, ProblemKind::InvalidFlowId(raw.flow.clone()));
    }
    if raw.nodes.len() > usize::from(u16::MAX) {
        let message = format!("{} nodes; at most {} are allowed", raw.nodes.len(), u16::MAX);
        r.add(None, None, ProblemKind::Shape(message));
        return Err(Problems(r.problems));
    }

    let values = fill::values(&raw.params, params, &mut r);
    let values = fill::as_values(&values);
    let ids = graph::ids(&raw.nodes, map, &mut r);
    let resolve = |target: &str| ids.get(target).copied();
    let (start, mut entries) = graph::entries(&raw, map, &resolve, &mut r);
    let texts = compile_texts(&raw.texts, &values, &mut r);

    // Forms.
    let mut forms = Vec::with_capacity(raw.forms.len());
    let mut form_ix: HashMap<&str, usize> = HashMap::new();
    for (name, form) in &raw.forms {
        let line = map.forms.get(name).copied();
        if let Some(form) = form::compile_form(name, form, line, &texts, &values, &mut r) {
            form_ix.insert(name, forms.len());
            forms.push(form);
        }
    }
    let mut forms_used = vec![false; forms.len()];

    // Nodes, one by one.
    let node_line = |i: usize| map.nodes.get(i).copied().flatten();
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); raw.nodes.len()];
    for (i, raw_node) in raw.nodes.iter().enumerate() {
        let line = node_line(i);
        let id = Some(raw_node.id.as_str());
        let choice_lines = map.choices.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let kind = match &raw_node.form {
            Some(name) => {
                let declared = raw.forms.contains_key(name);
                let at = node::At { line, resolve: &resolve };
                node::compile_form_node(
                    raw_node,
                    name,
                    declared,
                    &at,
                    &form_ix,
                    &mut r,
                    &mut edges[i],
                )
            }
            None => {
                let at = node::At { line, resolve: &resolve };
                let ctx = node::Context { choice_lines, texts: &texts, values: &values };
                node::compile_node(raw_node, &at, &ctx, &mut r, &mut edges[i])
            }
        };
        let Some(kind) = kind else { continue };
        let buttons = match &kind {
            NodeKind::Form { form, .. } => {
                forms_used[*form] = true;
                Some(crate::limits::form_buttons(&forms[*form]))
            }
            NodeKind::Question(q) => Some(crate::limits::question_buttons(q.choices.len())),
            NodeKind::Ending { .. } => Some(2),
            NodeKind::Message { .. } => None,
        };
        if let Some(buttons) = buttons {
            let token = Measured::Token(max_token_len(&raw_node.id));
            r.limits(line, id, "the longest button token of this node", token);
            r.limits(line, id, "a prompt of this node", Measured::Buttons(buttons));
        }
        let title = match (&raw_node.title, &kind) {
            (Some(title), _) => title.clone(),
            (None, NodeKind::Form { form, .. }) => forms[*form].title.clone(),
            (None, kind) => node::first_line(node::node_text(kind)).to_owned(),
        };
        nodes.push(Node { id: raw_node.id.clone(), title, line, kind });
    }

    for (form, used) in forms.iter().zip(&forms_used) {
        if !used {
            let message = "no node asks this form (`form:`)".to_owned();
            r.add(form.line, None, ProblemKind::Form { form: form.id.clone(), message });
        }
    }

    graph::check_reach(&raw.nodes, &ids, start, &entries, &edges, map, &mut r);

    if !r.problems.is_empty() || nodes.len() != raw.nodes.len() {
        r.problems.sort_by_key(|p| p.line.unwrap_or(0));
        return Err(Problems(r.problems));
    }
    let start = to_ix(start.unwrap_or(0));
    entries.sort();
    let entries = entries.into_iter().map(|(name, ix)| (name, to_ix(ix))).collect();
    let mut flow = Flow {
        id: raw.flow,
        title: raw.title,
        origin: origin.to_owned(),
        version: version_of(source),
        start,
        first_stop: start,
        entries,
        texts,
        nodes,
        params: raw.params.keys().cloned().collect(),
        resume_after: Some(crate::flow::DEFAULT_RESUME_AFTER_MS),
        forms,
        delivers: false,
    };
    flow.first_stop = flow.settle(start);
    Ok(flow)
}

/// The flow's own texts (`texts:`), filled; the navigation labels checked against the limits.
fn compile_texts(t: &RawTexts, values: &fill::Values<'_>, r: &mut Report<'_>) -> Texts {
    let mut fill_text = |text: &str| r.fill(text, values, None, None);
    let mut texts = Texts {
        back: fill_text(&t.back),
        restart: fill_text(&t.restart),
        stale: fill_text(&t.stale),
        no_match: fill_text(&t.no_match),
        contact: fill_text(&t.contact),
        help: fill_text(&t.help),
        cannot_go_back: fill_text(&t.cannot_go_back),
        ended: fill_text(&t.ended),
        unknown_entry: fill_text(&t.unknown_entry),
        unknown_command: fill_text(&t.unknown_command),
        resume_question: fill_text(&t.resume_question),
        resume: fill_text(&t.resume),
        not_yours: fill_text(&t.not_yours),
        command_start: fill_text(&t.command_start),
        command_back: fill_text(&t.command_back),
        command_restart: fill_text(&t.command_restart),
        command_help: fill_text(&t.command_help),
        back_key: String::new(),
        restart_key: String::new(),
        resume_key: String::new(),
    };
    texts.back_key = normalize(&texts.back);
    texts.restart_key = normalize(&texts.restart);
    texts.resume_key = normalize(&texts.resume);
    for (name, label) in
        [("back", &texts.back), ("restart", &texts.restart), ("resume", &texts.resume)]
    {
        r.limits(None, None, &format!("`texts.{name}` `{label}`"), Measured::Label(label));
    }
    texts
}

fn version_of(source: &str) -> FlowVersion {
    let digest = Sha256::digest(source.as_bytes());
    let mut v = [0; 8];
    v.copy_from_slice(&digest[..8]);
    FlowVersion(v)
}
