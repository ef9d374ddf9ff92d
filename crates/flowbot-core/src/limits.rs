//! Platform limits: what each adapter declares (label lengths, token bytes, buttons, text,
//! modals), and the check of a flow against the limits of the platforms it will run on.
//!
//! The core names no platform: each adapter crate declares its `LIMITS`, and the binary passes
//! the enabled ones to [`Flow::check_limits`] (or to [`load_flow_for`](crate::load_flow_for)).

use crate::flow::{Flow, NodeKind};
use crate::form::Form;
use crate::problem::{OverLimit, Problem, ProblemKind, Problems};
use crate::split::Unit;
use crate::token::max_token_len;

/// What one platform allows. `usize::MAX` (as in [`Limits::NONE`]) means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The platform's name, as problems show it ("… allows 80").
    pub platform: &'static str,
    /// The longest button label, in `label_unit`.
    pub label: usize,
    pub label_unit: Unit,
    /// The longest button token (`REV:NODE:ACTION`), in bytes.
    pub token_bytes: usize,
    /// The most buttons on one message (choices, the input button and navigation together).
    pub buttons: usize,
    /// The longest message text, in `text_unit` (the splitter keeps messages under it).
    pub text: usize,
    pub text_unit: Unit,
    /// The longest title of the box a form field's answer is typed into, in `label_unit`.
    pub modal_title: usize,
    /// The longest label of that box's text input, in `label_unit`.
    pub modal_label: usize,
    /// The longest answer that box takes (a field's `max_chars` may not exceed it), in
    /// characters.
    pub input: usize,
}

impl Limits {
    /// No limit on anything: the base for a platform that limits only a few things
    /// (`Limits { platform: "web", ..Limits::NONE }`).
    pub const NONE: Limits = Limits {
        platform: "",
        label: usize::MAX,
        label_unit: Unit::Chars,
        token_bytes: usize::MAX,
        buttons: usize::MAX,
        text: usize::MAX,
        text_unit: Unit::Chars,
        modal_title: usize::MAX,
        modal_label: usize::MAX,
        input: usize::MAX,
    };
}

/// One measured thing a platform may limit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Measured<'a> {
    /// A button's label.
    Label(&'a str),
    /// The title of a form's answer box.
    ModalTitle(&'a str),
    /// The label of a form field's answer box.
    ModalLabel(&'a str),
    /// A field's `max_chars`.
    Input(usize),
    /// The longest token of a node's buttons, in bytes.
    Token(usize),
    /// The most buttons one prompt of a node shows.
    Buttons(usize),
}

/// The limits `measured` breaks, as problems' kinds; `what` names the thing ("choice 4's
/// label `…`").
pub(crate) fn over(limits: &[&Limits], what: &str, measured: Measured<'_>) -> Vec<ProblemKind> {
    limits
        .iter()
        .filter_map(|l| {
            let (len, max, unit) = match measured {
                Measured::Label(s) => (l.label_unit.len(s), l.label, l.label_unit.name()),
                Measured::ModalTitle(s) => {
                    (l.label_unit.len(s), l.modal_title, l.label_unit.name())
                }
                Measured::ModalLabel(s) => {
                    (l.label_unit.len(s), l.modal_label, l.label_unit.name())
                }
                Measured::Input(n) => (n, l.input, "characters"),
                Measured::Token(n) => (n, l.token_bytes, "bytes"),
                Measured::Buttons(n) => (n, l.buttons, "buttons"),
            };
            (len > max).then(|| {
                ProblemKind::OverLimit(Box::new(OverLimit {
                    what: what.to_owned(),
                    len,
                    unit,
                    platform: l.platform,
                    max,
                }))
            })
        })
        .collect()
}

/// The most buttons a prompt at a question with `choices` shows: the choices, back, restart.
pub(crate) fn question_buttons(choices: usize) -> usize {
    choices + 2
}

/// The most buttons a prompt of `form` shows, over its stages: a field's input and `unknown`
/// buttons, the confirmation's two, the fields to pick from; then back and restart.
pub(crate) fn form_buttons(form: &Form) -> usize {
    let field = 1 + usize::from(form.fields.iter().any(|f| f.unknown.is_some()));
    field.max(2).max(form.fields.len()) + 2
}

/// Every label-like text of a form that a platform limits, with what to call it.
pub(crate) fn form_measures(form: &Form) -> Vec<(String, Measured<'_>)> {
    let t = &form.texts;
    let mut out = vec![
        ("`title`".to_owned(), Measured::ModalTitle(&form.title)),
        (format!("`input` `{}`", t.input), Measured::Label(&t.input)),
        (format!("`submit` `{}`", t.submit), Measured::Label(&t.submit)),
        (format!("`fix` `{}`", t.fix), Measured::Label(&t.fix)),
    ];
    for (i, f) in form.fields.iter().enumerate() {
        let n = i + 1;
        out.push((format!("field {n}'s label `{}`", f.label), Measured::Label(&f.label)));
        out.push((format!("field {n}'s label `{}`", f.label), Measured::ModalLabel(&f.label)));
        if let Some(u) = &f.unknown {
            out.push((format!("field {n}'s `unknown` `{u}`"), Measured::Label(u)));
        }
        out.push((format!("field {n}'s `max_chars`"), Measured::Input(f.max_chars)));
    }
    out.push(("the form's buttons".to_owned(), Measured::Buttons(form_buttons(form))));
    out
}

impl Flow {
    /// Checks the flow against the limits of the platforms it will run on: every problem, with
    /// file, line, node and the platform whose limit is broken.
    pub fn check_limits(&self, limits: &[&Limits]) -> Result<(), Problems> {
        let mut problems = Vec::new();
        let mut add = |line: Option<u32>, node: Option<&str>, kinds: Vec<ProblemKind>| {
            problems.extend(kinds.into_iter().map(|kind| Problem {
                file: self.origin.clone(),
                line,
                node: node.map(str::to_owned),
                kind,
            }));
        };
        let t = &self.texts;
        for (name, label) in [("back", &t.back), ("restart", &t.restart), ("resume", &t.resume)] {
            add(
                self.text_lines.get(name).copied(),
                None,
                over(limits, &format!("`texts.{name}` `{label}`"), Measured::Label(label)),
            );
        }
        for node in &self.nodes {
            let id = Some(node.id.as_str());
            let buttons = match &node.kind {
                NodeKind::Question(q) => {
                    for (i, c) in q.choices.iter().enumerate() {
                        let what = format!("choice {}'s label `{}`", i + 1, c.label);
                        add(
                            c.line.or(node.line),
                            id,
                            over(limits, &what, Measured::Label(&c.label)),
                        );
                    }
                    question_buttons(q.choices.len())
                }
                NodeKind::Form { form, .. } => form_buttons(&self.forms[*form]),
                NodeKind::Ending { .. } => 2,
                NodeKind::Message { .. } => continue,
            };
            let token = Measured::Token(max_token_len(&node.id));
            add(node.line, id, over(limits, "the longest button token of this node", token));
            add(node.line, id, over(limits, "a prompt of this node", Measured::Buttons(buttons)));
        }
        for form in &self.forms {
            for (what, measured) in form_measures(form) {
                let kinds = over(limits, &what, measured)
                    .into_iter()
                    .map(|kind| ProblemKind::Form {
                        form: form.id.clone(),
                        message: kind.to_string(),
                    })
                    .collect();
                add(form.line, None, kinds);
            }
        }
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        if problems.is_empty() { Ok(()) } else { Err(Problems(problems)) }
    }
}
