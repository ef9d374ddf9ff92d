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

use crate::bounds::{MAX_FILLED_BYTES, MAX_NODES};
use crate::flow::{Flow, FlowVersion, Node, NodeKind, Texts, to_ix};
use crate::limits::{Limits, Measured, over};
use crate::problem::{Problem, ProblemKind, Problems};
use crate::raw::{Deployment, ParamOrigins, RawFlow, RawTexts, SourceMap};
use crate::text::normalize;
use crate::token::max_token_len;

pub(crate) use graph::is_payload;

/// The most choices one question may have (one keyboard, single-digit choice tokens).
pub const MAX_CHOICES: usize = 10;

/// The problems found so far, the platform limits to check, and what filling in parameters
/// may still produce ([`MAX_FILLED_BYTES`] for the whole flow).
struct Report<'a> {
    origin: &'a str,
    limits: &'a [&'a Limits],
    /// Where the deployment set its parameter values.
    origins: &'a ParamOrigins,
    problems: Vec<Problem>,
    filled_left: usize,
}

impl Report<'_> {
    fn add(&mut self, line: Option<u32>, node: Option<&str>, kind: ProblemKind) {
        self.add_at(self.origin.to_owned(), line, node, kind);
    }

    /// A problem in another file than the flow's (the deployment's settings).
    fn add_at(&mut self, file: String, line: Option<u32>, node: Option<&str>, kind: ProblemKind) {
        self.problems.push(Problem { file, line, node: node.map(str::to_owned), kind });
    }

    /// Counts `bytes` of filled text against the flow's budget; `false` (and one problem, at
    /// the first text over it) once the budget is spent.
    fn spend(&mut self, bytes: usize, line: Option<u32>, node: Option<&str>) -> bool {
        if bytes <= self.filled_left {
            self.filled_left -= bytes;
            return true;
        }
        if self.filled_left != usize::MAX {
            let what = "the flow's texts together, once parameters are filled in,".to_owned();
            self.add(line, node, ProblemKind::TooLarge { what, max: MAX_FILLED_BYTES });
        }
        // Spent: nothing more is filled, and the problem is reported once.
        self.filled_left = 0;
        false
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
        match fill::fill(text, &|name| values.get(name).copied()) {
            Ok(text) if self.spend(text.len(), line, node) => text,
            Ok(_) => String::new(),
            Err(kind) => {
                self.add(line, node, kind);
                String::new()
            }
        }
    }
}

pub(crate) fn compile(
    raw: RawFlow,
    map: &SourceMap,
    source: &str,
    origin: &str,
    deployment: &Deployment<'_>,
) -> Result<Flow, Problems> {
    let mut r = Report {
        origin,
        limits: deployment.limits,
        origins: deployment.origins,
        problems: Vec::new(),
        filled_left: MAX_FILLED_BYTES,
    };

    if !is_payload(&raw.flow) {
        r.add(map.flow, None, ProblemKind::InvalidFlowId(raw.flow.clone()));
    }
    if raw.nodes.len() > MAX_NODES {
        let message = format!("{} nodes; at most {MAX_NODES} are allowed", raw.nodes.len());
        r.add(map.nodes_key, None, ProblemKind::Shape(message));
        return Err(Problems(r.problems));
    }

    let values = fill::values(&raw.params, deployment.params, map, &mut r);
    let values = fill::as_values(&values);
    let ids = graph::ids(&raw.nodes, map, &mut r);
    let resolve = |target: &str| ids.get(target).copied();
    let (start, mut entries) = graph::entries(&raw, map, &resolve, &mut r);
    let texts = compile_texts(&raw.texts, &values, map, &mut r);

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
        text_lines: map.texts.clone(),
    };
    flow.first_stop = flow.settle(start);
    Ok(flow)
}

/// The flow's own texts (`texts:`), filled; the navigation labels checked against the limits.
fn compile_texts(
    t: &RawTexts,
    values: &fill::Values<'_>,
    map: &SourceMap,
    r: &mut Report<'_>,
) -> Texts {
    let line = |name: &str| map.texts.get(name).copied().or(map.texts_key);
    let mut fill_text = |name: &str, text: &str| r.fill(text, values, line(name), None);
    let mut texts = Texts {
        back: fill_text("back", &t.back),
        restart: fill_text("restart", &t.restart),
        stale: fill_text("stale", &t.stale),
        no_match: fill_text("no_match", &t.no_match),
        contact: fill_text("contact", &t.contact),
        help: fill_text("help", &t.help),
        cannot_go_back: fill_text("cannot_go_back", &t.cannot_go_back),
        ended: fill_text("ended", &t.ended),
        unknown_entry: fill_text("unknown_entry", &t.unknown_entry),
        unknown_command: fill_text("unknown_command", &t.unknown_command),
        resume_question: fill_text("resume_question", &t.resume_question),
        resume: fill_text("resume", &t.resume),
        not_yours: fill_text("not_yours", &t.not_yours),
        command_start: fill_text("command_start", &t.command_start),
        command_back: fill_text("command_back", &t.command_back),
        command_restart: fill_text("command_restart", &t.command_restart),
        command_help: fill_text("command_help", &t.command_help),
        start_phrase: fill_text("start_phrase", &t.start_phrase),
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
        r.limits(line(name), None, &format!("`texts.{name}` `{label}`"), Measured::Label(label));
    }
    texts
}

fn version_of(source: &str) -> FlowVersion {
    let digest = Sha256::digest(source.as_bytes());
    let mut v = [0; 8];
    v.copy_from_slice(&digest[..8]);
    FlowVersion(v)
}
