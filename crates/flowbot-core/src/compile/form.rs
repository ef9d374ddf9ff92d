//! One form compiled: its texts (deployment parameters filled, runtime slots kept), its
//! buttons' labels, its fields and their checks.

use super::Report;
use super::fill::{Values, fill};
use crate::compile::is_payload;
use crate::flow::Texts;
use crate::form::{
    ANSWER_LINE_SLOTS, COMPLETED_SLOTS, Check, DEFAULT_MAX_CHARS, Field, Form, FormTexts,
    HANDOFF_SLOTS, MAIL_SUBJECT_SLOTS, MAX_ANSWER_CHARS, MAX_FIELDS, PATH_LINE_SLOTS,
};
use crate::limits::{form_measures, over};
use crate::problem::ProblemKind;
use crate::raw::RawForm;
use crate::text::{Typed, classify, normalize};

/// Compiles one form, reporting every problem it has.
pub(super) fn compile_form(
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
        let kept: Vec<String> = slots.iter().map(|s| format!("{{{{{s}}}}}")).collect();
        let lookup = |name: &str| match slots.iter().position(|s| *s == name) {
            Some(i) => Some(kept[i].as_str()),
            None => values.get(name).copied(),
        };
        match fill(source, &lookup) {
            Ok(t) if !r.spend(t.len(), line, None) => String::new(),
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
        mail_subject: text(r, "mail_subject", &raw.mail_subject, MAIL_SUBJECT_SLOTS),
        completed: raw.completed.as_ref().map(|c| text(r, "completed", c, COMPLETED_SLOTS)),
        submit_key: String::new(),
        fix_key: String::new(),
    };
    t.submit_key = normalize(&t.submit);
    t.fix_key = normalize(&t.fix);
    if !t.handoff.contains("{{answers}}") || !t.handoff.contains("{{reference}}") {
        problem(r, "`handoff` must show `{{answers}}` and `{{reference}}`".to_owned());
    }
    if !t.mail_subject.contains("{{reference}}") || t.mail_subject.trim().contains('\n') {
        problem(r, "`mail_subject` must be one line showing `{{reference}}`".to_owned());
    }
    // Buttons: the confirmation's two, the input button; and the fields' labels, which are the
    // buttons for picking the answer to fix.
    let mut buttons: Vec<(String, String)> = Vec::new();
    let mut button = |r: &mut Report<'_>, what: String, label: &str| {
        let key = normalize(label);
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
        button(r, format!("field {n}'s label"), &label);
        let ask = text(r, &format!("field {n} `ask`"), &f.ask, &[]);
        let unknown = f.unknown.as_ref().map(|u| text(r, &format!("field {n} `unknown`"), u, &[]));
        if let Some(u) = &unknown {
            let key = normalize(u);
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
        if !(1..=MAX_ANSWER_CHARS).contains(&max_chars) {
            problem(r, format!("field {n}: `max_chars` must be 1 to {MAX_ANSWER_CHARS}"));
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
    let form = Form { id: name.to_owned(), title, fields, texts: t, line };
    for (what, measured) in form_measures(&form) {
        for kind in over(r.limits, &what, measured) {
            problem(r, kind.to_string());
        }
    }
    (r.problems.len() == before).then_some(form)
}
