//! Stage two of loading: checks a [`RawFlow`] as a graph and builds the [`Flow`] the engine runs.
//!
//! Every check runs and every problem is collected, so one `flowbot check` lists all of them.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::flow::{
    Choice, Flow, FlowVersion, Means, Node, NodeIx, NodeKind, Question, Texts, to_ix,
};
use crate::form::{
    ANSWER_LINE_SLOTS, Check, DEFAULT_MAX_CHARS, Field, Form, FormTexts, HANDOFF_SLOTS, MAX_FIELDS,
    PATH_LINE_SLOTS,
};
use crate::loader::Params;
use crate::problem::{Problem, ProblemKind, Problems};
use crate::raw::{RawFlow, RawForm, RawMeans, RawNode};
use crate::text::{Typed, classify, normalize};
use crate::token::max_token_len;

/// Telegram's limit on `callback_data`, in bytes.
pub const TELEGRAM_CALLBACK_DATA_MAX: usize = 64;
/// Discord's limit on a button label, in characters.
pub const DISCORD_LABEL_MAX: usize = 80;
/// The most choices one question may have (one keyboard, single-digit choice tokens).
pub const MAX_CHOICES: usize = 10;
/// Discord's limit on a text input's label and a modal's title, in characters.
pub const DISCORD_MODAL_LABEL_MAX: usize = 45;
/// Discord's limit on a text input's length, in characters.
pub const DISCORD_INPUT_MAX: usize = 4000;

/// Where things are in the source, as far as the loader could tell. Lines are 1-based.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    pub nodes: Vec<Option<u32>>,
    /// Per node, the line of each choice; empty where unknown.
    pub choices: Vec<Vec<u32>>,
    pub entries: BTreeMap<String, u32>,
    pub forms: BTreeMap<String, u32>,
    pub start: Option<u32>,
    pub flow: Option<u32>,
}

struct Report<'a> {
    origin: &'a str,
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

    /// Fills a text's placeholders, reporting a bad one (and yielding an empty text).
    fn fill(
        &mut self,
        text: &str,
        values: &Values<'_>,
        line: Option<u32>,
        node: Option<&str>,
    ) -> String {
        fill(text, values).unwrap_or_else(|kind| {
            self.add(line, node, kind);
            String::new()
        })
    }
}

type Values<'a> = HashMap<&'a str, &'a str>;

pub(crate) fn compile(
    raw: RawFlow,
    map: &SourceMap,
    source: &str,
    origin: &str,
    params: &Params,
) -> Result<Flow, Problems> {
    let mut r = Report { origin, problems: Vec::new() };

    if !is_payload(&raw.flow) {
        r.add(map.flow, None, ProblemKind::InvalidFlowId(raw.flow.clone()));
    }
    if raw.nodes.len() > usize::from(u16::MAX) {
        r.add(
            None,
            None,
            ProblemKind::Shape(format!(
                "{} nodes; at most {} are allowed",
                raw.nodes.len(),
                u16::MAX
            )),
        );
        return Err(Problems(r.problems));
    }

    // Parameters: the deployment's values over the declared defaults. Values for parameters this
    // flow does not declare are the caller's to judge (one configuration may serve several flows).
    // A value may itself use other parameters (one level: `desk_contact` built from
    // `desk_name` and `desk_phone`), so a deployment sets the parts and the flow lays them out.
    let given: Values<'_> = raw
        .params
        .iter()
        .map(|(name, p)| (name.as_str(), params.get(name).unwrap_or(&p.default).as_str()))
        .collect();
    let derived: Vec<(&str, String)> = given
        .iter()
        .filter(|(_, v)| v.contains("{{"))
        .map(|(&name, v)| {
            let nested = placeholders(v).find(|n| given.get(n).is_some_and(|v| v.contains("{{")));
            let value = match nested {
                Some(n) => Err(ProblemKind::Param {
                    name: name.to_owned(),
                    message: format!("uses `{{{{{n}}}}}`, which uses parameters itself"),
                }),
                None => fill_template(v, &given).map_err(|kind| ProblemKind::Param {
                    name: name.to_owned(),
                    message: kind.to_string(),
                }),
            };
            (
                name,
                value.unwrap_or_else(|kind| {
                    r.add(None, None, kind);
                    String::new()
                }),
            )
        })
        .collect();
    let mut values = given.clone();
    for (name, value) in &derived {
        values.insert(name, value);
    }

    // Ids: valid, unique.
    let node_line = |i: usize| map.nodes.get(i).copied().flatten();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, node) in raw.nodes.iter().enumerate() {
        if !is_node_id(&node.id) {
            r.add(node_line(i), Some(&node.id), ProblemKind::InvalidNodeId(node.id.clone()));
        }
        match ids.get(node.id.as_str()) {
            Some(&first) => r.add(
                node_line(i),
                Some(&node.id),
                ProblemKind::DuplicateId { first_line: node_line(first).unwrap_or(0) },
            ),
            None => {
                ids.insert(&node.id, i);
            }
        }
    }
    let resolve = |target: &str| ids.get(target).copied();

    // Start and entries.
    let start = resolve(&raw.start);
    if start.is_none() {
        r.add(
            map.start,
            None,
            ProblemKind::UnknownTarget { field: "`start`".into(), target: raw.start.clone() },
        );
    }
    let mut entries = Vec::new();
    for (name, target) in &raw.entries {
        let line = map.entries.get(name).copied();
        if !is_payload(name) {
            r.add(line, None, ProblemKind::InvalidEntryName(name.clone()));
        }
        match resolve(target) {
            Some(ix) => entries.push((name.clone(), ix)),
            None => r.add(
                line,
                None,
                ProblemKind::UnknownTarget {
                    field: format!("entry `{name}`"),
                    target: target.clone(),
                },
            ),
        }
    }

    // Texts.
    let mut fill_text = |text: &str| r.fill(text, &values, None, None);
    let t = &raw.texts;
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

    // Forms.
    let mut forms = Vec::with_capacity(raw.forms.len());
    let mut form_ix: HashMap<&str, usize> = HashMap::new();
    for (name, form) in &raw.forms {
        let line = map.forms.get(name).copied();
        if let Some(form) = compile_form(name, form, line, &texts, &values, &mut r) {
            form_ix.insert(name, forms.len());
            forms.push(form);
        }
    }
    let mut forms_used = vec![false; forms.len()];

    // Nodes, one by one.
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); raw.nodes.len()];
    for (i, node) in raw.nodes.iter().enumerate() {
        let line = node_line(i);
        let id = Some(node.id.as_str());
        let choice_lines = map.choices.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let kind = if let Some(name) = &node.form {
            let declared = raw.forms.contains_key(name);
            compile_form_node(node, name, declared, line, &form_ix, &resolve, &mut r, &mut edges[i])
        } else {
            compile_node(node, line, choice_lines, &texts, &values, &resolve, &mut r, &mut edges[i])
        };
        let Some(kind) = kind else { continue };
        if let NodeKind::Form { form, .. } = kind {
            forms_used[form] = true;
        }
        if let NodeKind::Question(_) | NodeKind::Ending { .. } | NodeKind::Form { .. } = kind {
            let bytes = max_token_len(&node.id);
            if bytes > TELEGRAM_CALLBACK_DATA_MAX {
                r.add(line, id, ProblemKind::TokenTooLong { bytes });
            }
        }
        let title = match (&node.title, &kind) {
            (Some(title), _) => title.clone(),
            (None, NodeKind::Form { form, .. }) => forms[*form].title.clone(),
            (None, kind) => first_line(node_text(kind)).to_owned(),
        };
        nodes.push(Node { id: node.id.clone(), title, line, kind });
    }

    for (form, used) in forms.iter().zip(&forms_used) {
        if !used {
            r.add(
                map.forms.get(&form.id).copied(),
                None,
                ProblemKind::Form {
                    form: form.id.clone(),
                    message: "no node asks this form (`form:`)".to_owned(),
                },
            );
        }
    }

    // Graph: every node reachable from an entry point, and able to reach an ending.
    let roots: Vec<usize> = start.into_iter().chain(entries.iter().map(|(_, ix)| *ix)).collect();
    let reached = reach(&roots, &edges);
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); raw.nodes.len()];
    for (from, tos) in edges.iter().enumerate() {
        for &to in tos {
            reverse[to].push(from);
        }
    }
    let endings: Vec<usize> =
        raw.nodes.iter().enumerate().filter(|(_, n)| n.end.is_some()).map(|(i, _)| i).collect();
    let finishes = reach(&endings, &reverse);
    for (i, node) in raw.nodes.iter().enumerate() {
        if ids.get(node.id.as_str()) != Some(&i) {
            continue; // a duplicate: already reported
        }
        if !roots.is_empty() && !reached[i] {
            r.add(node_line(i), Some(&node.id), ProblemKind::Unreachable);
        }
        if !finishes[i] {
            r.add(node_line(i), Some(&node.id), ProblemKind::NoEndingReachable);
        }
    }

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

/// Compiles one node, reporting its problems; `None` when it cannot be built.
#[allow(clippy::too_many_arguments, reason = "one call site; a struct would only rename them")]
fn compile_node(
    node: &RawNode,
    line: Option<u32>,
    choice_lines: &[u32],
    texts: &Texts,
    values: &Values<'_>,
    resolve: &dyn Fn(&str) -> Option<usize>,
    r: &mut Report<'_>,
    edges: &mut Vec<usize>,
) -> Option<NodeKind> {
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
            let chars = label.chars().count();
            if chars > DISCORD_LABEL_MAX {
                r.add(
                    cline,
                    Some(id),
                    ProblemKind::LabelTooLong { choice: n, chars, label: label.clone() },
                );
            }
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
                Some(next) => choices.push(Choice { label, key, next: to_ix(next), means }),
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

fn node_text(kind: &NodeKind) -> &str {
    match kind {
        NodeKind::Question(q) => &q.text,
        NodeKind::Message { text, .. } | NodeKind::Ending { text } => text,
        NodeKind::Form { .. } => "",
    }
}

/// A node that asks a form: `form:` and `next:`, nothing else.
#[allow(clippy::too_many_arguments, reason = "one call site, like compile_node")]
fn compile_form_node(
    node: &RawNode,
    name: &str,
    declared: bool,
    line: Option<u32>,
    form_ix: &HashMap<&str, usize>,
    resolve: &dyn Fn(&str) -> Option<usize>,
    r: &mut Report<'_>,
    edges: &mut Vec<usize>,
) -> Option<NodeKind> {
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

/// Compiles one form, reporting every problem it has.
fn compile_form(
    name: &str,
    raw: &RawForm,
    line: Option<u32>,
    texts: &Texts,
    values: &Values<'_>,
    r: &mut Report<'_>,
) -> Option<Form> {
    let before = r.problems.len();
    let problem = |r: &mut Report<'_>, message: String| {
        r.add(line, None, ProblemKind::Form { form: name.to_owned(), message });
    };
    if !is_payload(name) {
        problem(r, "invalid form name: use 1 to 64 of A-Z a-z 0-9 _ -".to_owned());
    }
    // Deployment parameters are filled in now; the runtime slots stay for the engine.
    let text = |r: &mut Report<'_>, what: &str, source: &str, slots: &[&str]| {
        let mut with_slots = values.clone();
        let kept: Vec<String> = slots.iter().map(|s| format!("{{{{{s}}}}}")).collect();
        for (slot, keep) in slots.iter().zip(&kept) {
            with_slots.insert(slot, keep);
        }
        match fill(source, &with_slots) {
            Ok(t) if t.trim().is_empty() => {
                problem(r, format!("`{what}` is empty"));
                t
            }
            Ok(t) => t,
            Err(kind) => {
                problem(r, format!("`{what}`: {kind}"));
                String::new()
            }
        }
    };
    let title = text(r, "title", &raw.title, &[]);
    let mut t = FormTexts {
        input: text(r, "input", &raw.input, &[]),
        confirm: text(r, "confirm", &raw.confirm, &[]),
        submit: text(r, "submit", &raw.submit, &[]),
        fix: text(r, "fix", &raw.fix, &[]),
        fix_question: text(r, "fix_question", &raw.fix_question, &[]),
        required: text(r, "required", &raw.required, &[]),
        too_long: text(r, "too_long", &raw.too_long, &[]),
        email: text(r, "email", &raw.email, &[]),
        invalid: text(r, "invalid", &raw.invalid, &[]),
        answer_line: text(r, "answer_line", &raw.answer_line, ANSWER_LINE_SLOTS),
        path_line: text(r, "path_line", &raw.path_line, PATH_LINE_SLOTS),
        handoff: text(r, "handoff", &raw.handoff, HANDOFF_SLOTS),
        handoff_sent: text(r, "handoff_sent", &raw.handoff_sent, &[]),
        handoff_copy: text(r, "handoff_copy", &raw.handoff_copy, &[]),
        submit_key: String::new(),
        fix_key: String::new(),
    };
    t.submit_key = normalize(&t.submit);
    t.fix_key = normalize(&t.fix);
    if !t.handoff.contains("{{answers}}") || !t.handoff.contains("{{reference}}") {
        problem(r, "`handoff` must show `{{answers}}` and `{{reference}}`".to_owned());
    }
    if title.chars().count() > DISCORD_MODAL_LABEL_MAX {
        problem(
            r,
            format!(
                "`title` is over Discord's {DISCORD_MODAL_LABEL_MAX}-character limit for a modal title"
            ),
        );
    }

    // Buttons: the confirmation's two, the input button; and the fields' labels, which are the
    // buttons for picking the answer to fix.
    let mut buttons: Vec<(String, String)> = Vec::new();
    let mut button = |r: &mut Report<'_>, what: String, label: &str| {
        let key = normalize(label);
        let chars = label.chars().count();
        if chars > DISCORD_LABEL_MAX {
            problem(
                r,
                format!(
                    "{what} `{label}` is {chars} characters, over Discord's {DISCORD_LABEL_MAX}-character button limit"
                ),
            );
        }
        if let Typed::Number(_) = classify(&key) {
            problem(r, format!("{what} `{label}` reads as a number when typed"));
        }
        if key == texts.back_key || key == texts.restart_key {
            problem(r, format!("{what} `{label}` is a navigation button's label"));
        }
        if let Some((first, _)) = buttons.iter().find(|(_, k)| !key.is_empty() && *k == key) {
            problem(r, format!("{what} `{label}` equals {first} (compared after NFKC)"));
        }
        buttons.push((what, key));
    };
    button(r, "`submit`".into(), &t.submit);
    button(r, "`fix`".into(), &t.fix);

    if raw.fields.is_empty() || raw.fields.len() > MAX_FIELDS {
        problem(r, format!("{} fields; a form has 1 to {MAX_FIELDS}", raw.fields.len()));
    }
    let mut fields = Vec::with_capacity(raw.fields.len());
    let mut ids: Vec<&str> = Vec::new();
    for (i, f) in raw.fields.iter().enumerate() {
        let n = i + 1;
        if !is_payload(&f.id) {
            problem(r, format!("field {n}: invalid id `{}`: use A-Z a-z 0-9 _ -", f.id));
        } else if ids.contains(&f.id.as_str()) {
            problem(r, format!("field {n}: duplicate id `{}`", f.id));
        }
        ids.push(&f.id);
        let label = text(r, &format!("field {n} `label`"), &f.label, &[]);
        if label.chars().count() > DISCORD_MODAL_LABEL_MAX {
            problem(
                r,
                format!(
                    "field {n}: label over Discord's {DISCORD_MODAL_LABEL_MAX}-character limit for a text box"
                ),
            );
        }
        button(r, format!("field {n}'s label"), &label);
        let ask = text(r, &format!("field {n} `ask`"), &f.ask, &[]);
        let unknown = f.unknown.as_ref().map(|u| text(r, &format!("field {n} `unknown`"), u, &[]));
        if let Some(u) = &unknown {
            let key = normalize(u);
            let chars = u.chars().count();
            if chars > DISCORD_LABEL_MAX {
                problem(
                    r,
                    format!(
                        "field {n}: `unknown` is over Discord's {DISCORD_LABEL_MAX}-character button limit"
                    ),
                );
            }
            if key == texts.back_key || key == texts.restart_key {
                problem(r, format!("field {n}: `unknown` `{u}` is a navigation button's label"));
            }
        }
        let check = match (&f.pattern, f.email) {
            (Some(_), true) => {
                problem(r, format!("field {n}: `email` and `pattern` exclude each other"));
                Check::Text
            }
            (Some(p), false) => match regex::Regex::new(p) {
                Ok(re) => Check::Pattern(re),
                Err(e) => {
                    let e = e.to_string();
                    let e = e.lines().last().unwrap_or_default().trim().to_owned();
                    problem(r, format!("field {n}: `pattern` is not a regular expression: {e}"));
                    Check::Text
                }
            },
            (None, true) => Check::Email,
            (None, false) => Check::Text,
        };
        if f.invalid.is_some() && f.pattern.is_none() {
            problem(r, format!("field {n}: `invalid` explains a `pattern`, and there is none"));
        }
        let invalid = f.invalid.as_ref().map(|v| text(r, &format!("field {n} `invalid`"), v, &[]));
        let max_chars = f.max_chars.unwrap_or(DEFAULT_MAX_CHARS);
        if !(1..=DISCORD_INPUT_MAX).contains(&max_chars) {
            problem(r, format!("field {n}: `max_chars` must be 1 to {DISCORD_INPUT_MAX}"));
        }
        fields.push(Field {
            id: f.id.clone(),
            label,
            ask,
            unknown_key: unknown.as_deref().map(normalize).unwrap_or_default(),
            unknown,
            check,
            max_chars,
            invalid,
        });
    }
    (r.problems.len() == before).then(|| Form { id: name.to_owned(), title, fields, texts: t })
}

/// The names of the `{{placeholders}}` in a text.
fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{").skip(1).filter_map(|s| s.split_once("}}").map(|(n, _)| n.trim()))
}

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// Breadth-first reach over `edges` from `roots`.
fn reach(roots: &[usize], edges: &[Vec<usize>]) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut queue: Vec<usize> = roots.to_vec();
    while let Some(i) = queue.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        queue.extend(edges[i].iter().copied().filter(|&j| !seen[j]));
    }
    seen
}

/// Substitutes `{{name}}` placeholders. A line that held a placeholder and is left blank is
/// dropped, so an unset parameter leaves no empty line. Trailing line breaks are trimmed.
fn fill(text: &str, values: &HashMap<&str, &str>) -> Result<String, ProblemKind> {
    fill_lines(text, values, false)
}

/// [`fill`] for a parameter built from other parameters: there, a line whose placeholders were
/// all empty is dropped, captions and all (`電話：{{desk_phone}}` without a phone number).
fn fill_template(text: &str, values: &HashMap<&str, &str>) -> Result<String, ProblemKind> {
    fill_lines(text, values, true)
}

fn fill_lines(
    text: &str,
    values: &HashMap<&str, &str>,
    drop_captions: bool,
) -> Result<String, ProblemKind> {
    let text = text.trim_end();
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let mut filled = String::with_capacity(line.len());
        let mut rest = line;
        let had_placeholder = line.contains("{{");
        let mut all_empty = true;
        while let Some(open) = rest.find("{{") {
            filled.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(ProblemKind::UnterminatedPlaceholder)?;
            let name = after[..close].trim();
            let value =
                values.get(name).ok_or_else(|| ProblemKind::UndeclaredParam(name.to_owned()))?;
            filled.push_str(value);
            all_empty &= value.trim().is_empty();
            rest = &after[close + 2..];
        }
        filled.push_str(rest);
        let dropped = if drop_captions { all_empty } else { filled.trim().is_empty() };
        if had_placeholder && dropped {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&filled);
    }
    Ok(out.trim_end().to_owned())
}

/// 1 to 64 of `A-Z a-z 0-9 _ -`: a Telegram deep-link payload, and our flow ids.
pub(crate) fn is_payload(s: &str) -> bool {
    (1..=64).contains(&s.len()) && is_node_id(s)
}

fn is_node_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn version_of(source: &str) -> FlowVersion {
    let digest = Sha256::digest(source.as_bytes());
    let mut v = [0; 8];
    v.copy_from_slice(&digest[..8]);
    FlowVersion(v)
}

impl Flow {
    /// Follows message nodes from `ix` to the first question or ending.
    ///
    /// `compile` guarantees every node reaches an ending, so a chain of messages cannot loop;
    /// the walk is still bounded by the node count.
    pub(crate) fn settle(&self, mut ix: NodeIx) -> NodeIx {
        for _ in 0..self.nodes.len() {
            match self.node(ix).kind {
                NodeKind::Message { next, .. } => ix = next,
                _ => break,
            }
        }
        ix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn fill_substitutes_and_drops_emptied_lines() {
        let v = values(&[("a", "A"), ("empty", "")]);
        assert_eq!(fill("x {{a}} y\n{{ empty }}\nz\n", &v).unwrap(), "x A y\nz");
        assert_eq!(fill("keep\n\nblank", &v).unwrap(), "keep\n\nblank");
        assert_eq!(fill("x{{empty}}", &v).unwrap(), "x");
        assert_eq!(fill("a\n電話：{{empty}}", &v).unwrap(), "a\n電話：");
        assert_eq!(fill_template("a\n電話：{{empty}}\nb {{a}}{{empty}}", &v).unwrap(), "a\nb A");
        assert_eq!(fill("{{nope}}", &v), Err(ProblemKind::UndeclaredParam("nope".into())));
        assert_eq!(fill("{{a", &v), Err(ProblemKind::UnterminatedPlaceholder));
    }

    #[test]
    fn payloads() {
        assert!(is_payload("taiou3-view"));
        assert!(is_payload(&"a".repeat(64)));
        assert!(!is_payload(&"a".repeat(65)));
        assert!(!is_payload(""));
        assert!(!is_payload("対応方法3"));
        assert!(!is_payload("a b"));
    }
}
