//! Forms: free-text questions with validation, a confirmation, and the hand-off they produce.
//!
//! A form node asks its fields one by one. Each answer is normalised (NFKC, trimmed, inner
//! whitespace folded) and then checked (required, or "unknown" allowed; a length limit; an
//! e-mail address or a pattern); a bad answer is re-asked with the reason. After the last field
//! a confirmation lists the answers with two buttons, submit and fix; fix picks one field to
//! answer again and comes back to the confirmation. Submit produces a [`Submission`]: the
//! answers, the path that led to the form and the ending it leads to, which the service stores
//! and delivers and which the user gets as a text to copy ([`Submission::message`]).
//!
//! Every word shown comes from the flow's `forms:` section; this module only lays it out.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// A compiled form.
#[derive(Debug, Clone)]
pub struct Form {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) fields: Vec<Field>,
    pub(crate) texts: FormTexts,
    /// The line of the flow file the form starts on, where known.
    pub(crate) line: Option<u32>,
}

impl Form {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn texts(&self) -> &FormTexts {
        &self.texts
    }

    /// The completion notice for the request `reference`, with the login id filled in; the
    /// lines that show `{{login_id}}` are left out when there is none. `None`: the form has no
    /// `completed` text.
    pub fn completion(&self, reference: &str, login_id: Option<&str>) -> Option<String> {
        let template = self.texts.completed.as_deref()?;
        let kept: String = match login_id {
            Some(_) => template.to_owned(),
            None => template
                .split_inclusive('\n')
                .filter(|line| !line.replace(' ', "").contains("{{login_id}}"))
                .collect(),
        };
        let values = [
            ("title", self.title.as_str()),
            ("reference", reference),
            ("login_id", login_id.unwrap_or("")),
        ];
        Some(slots(&kept, &values).trim_end().to_owned())
    }
}

/// The most fields a form may have (single-digit field numbers in button tokens).
pub const MAX_FIELDS: usize = 10;
/// The most a field's `max_chars` may be: 4,096 characters of at most four bytes each fit the
/// engine's bound on one answer (16 KiB).
pub const MAX_ANSWER_CHARS: usize = 4096;
/// The longest answer kept when a field sets no `max_chars`.
pub const DEFAULT_MAX_CHARS: usize = 200;

/// One free-text question of a form.
#[derive(Debug, Clone)]
pub struct Field {
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) ask: String,
    /// The label of the "unknown" button (分からない); `None`: the field is required.
    pub(crate) unknown: Option<String>,
    pub(crate) unknown_key: String,
    pub(crate) check: Check,
    pub(crate) max_chars: usize,
    /// Why an answer that does not match `pattern` is refused.
    pub(crate) invalid: Option<String>,
}

impl Field {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn ask(&self) -> &str {
        &self.ask
    }

    pub fn unknown(&self) -> Option<&str> {
        self.unknown.as_deref()
    }

    /// The longest answer taken, in characters.
    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// Checks a typed answer: `Ok` with the normalised value, or why it is refused.
    pub fn validate(&self, typed: &str) -> Result<String, Invalid> {
        let value = normalize_answer(typed);
        if value.is_empty() {
            return Err(Invalid::Required);
        }
        if value.chars().count() > self.max_chars {
            return Err(Invalid::TooLong);
        }
        match &self.check {
            Check::Text => Ok(value),
            Check::Email if is_email(&value) => Ok(value),
            Check::Email => Err(Invalid::Email),
            Check::Pattern(re) if re.is_match(&value) => Ok(value),
            Check::Pattern(_) => Err(Invalid::Pattern),
        }
    }
}

/// What a field's answer must be, beyond not empty and not too long.
#[derive(Debug, Clone)]
pub enum Check {
    Text,
    Email,
    /// A regular expression the whole normalised answer must match.
    Pattern(regex::Regex),
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Required,
    TooLong,
    Email,
    Pattern,
}

impl Invalid {
    /// The flow's wording of the reason.
    pub fn text<'f>(self, form: &'f Form, field: &'f Field) -> &'f str {
        match self {
            Invalid::Required => &form.texts.required,
            Invalid::TooLong => &form.texts.too_long,
            Invalid::Email => &form.texts.email,
            Invalid::Pattern => field.invalid.as_deref().unwrap_or(&form.texts.invalid),
        }
    }
}

/// A form's wording, all from the flow file.
#[derive(Debug, Clone)]
pub struct FormTexts {
    /// The label of the button that opens a text box (platforms without free text).
    pub input: String,
    /// Above the answers in the confirmation.
    pub confirm: String,
    /// The confirmation's buttons: exactly 確定する and 修正する in the G-MIS flow.
    pub submit: String,
    pub fix: String,
    /// Asked after fix: which answer to change.
    pub fix_question: String,
    /// Reasons for refusing an answer.
    pub required: String,
    pub too_long: String,
    pub email: String,
    /// For a pattern mismatch when the field has no `invalid:` of its own.
    pub invalid: String,
    /// One answer in the confirmation and the hand-off: `{{label}}`, `{{value}}`.
    pub answer_line: String,
    /// One step of the path in the hand-off: `{{question}}`, `{{answer}}`.
    pub path_line: String,
    /// The hand-off: `{{title}}`, `{{reference}}`, `{{answers}}`, `{{ending}}`, `{{path}}`.
    pub handoff: String,
    /// Above the hand-off when it was sent to the help desk.
    pub handoff_sent: String,
    /// Above the hand-off when the user has to send it themselves.
    pub handoff_copy: String,
    /// The subject of the mail a mail destination receives: `{{title}}`, `{{reference}}`,
    /// `{{ending}}`; one line.
    pub mail_subject: String,
    /// The notice the desk sends the user once the request is done (`flowbot requests
    /// complete`): `{{title}}`, `{{reference}}`, `{{login_id}}` (a line with it is dropped when
    /// no login id is given). `None`: the flow has none.
    pub completed: Option<String>,
    pub(crate) submit_key: String,
    pub(crate) fix_key: String,
}

/// The placeholders each runtime template may use.
pub(crate) const ANSWER_LINE_SLOTS: &[&str] = &["label", "value"];
pub(crate) const PATH_LINE_SLOTS: &[&str] = &["question", "answer"];
pub(crate) const HANDOFF_SLOTS: &[&str] = &["title", "reference", "answers", "ending", "path"];
pub(crate) const MAIL_SUBJECT_SLOTS: &[&str] = &["title", "reference", "ending"];
pub(crate) const COMPLETED_SLOTS: &[&str] = &["title", "reference", "login_id"];

/// NFKC (full-width letters, digits and ＠ become ASCII), whitespace folded, trimmed.
pub fn normalize_answer(typed: &str) -> String {
    let mut out = String::with_capacity(typed.len());
    let mut space = false;
    for c in typed.nfkc() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// A pragmatic e-mail address check (RFC 5321's dot-atom form, which every address a help desk
/// can use has): `local@domain`, the local part of atext and single dots, the domain of at least
/// two labels of letters, digits and inner hyphens, the last alphabetic.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    if s.len() > 254 || local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let local_ok = local.split('.').all(|part| !part.is_empty() && part.bytes().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let tld_ok =
        labels.last().is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()));
    local_ok && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok
}

/// Where a form is: asking a field (the first time through, or to fix it), confirming, or
/// asking which answer to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Field { index: u8, fixing: bool },
    Confirm,
    Pick,
}

/// An answer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Given(String),
    /// The field's "unknown" button (分からない).
    Unknown,
}

/// A form being filled in: its stage and the answers so far (`None`: not answered yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub(crate) stage: Stage,
    pub(crate) answers: Vec<Option<Answer>>,
}

impl Draft {
    pub(crate) fn new(form: &Form) -> Self {
        Draft {
            stage: Stage::Field { index: 0, fixing: false },
            answers: vec![None; form.fields.len()],
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn answers(&self) -> &[Option<Answer>] {
        &self.answers
    }

    /// The stored form: the stage on the first line (`f3`, `F3` when fixing, `c`, `p`), then one
    /// line per field: `-` unanswered, `?` unknown, `=value` with `\` and line breaks escaped.
    pub fn encode(&self) -> String {
        let mut s = match self.stage {
            Stage::Field { index, fixing: false } => format!("f{index}"),
            Stage::Field { index, fixing: true } => format!("F{index}"),
            Stage::Confirm => "c".to_owned(),
            Stage::Pick => "p".to_owned(),
        };
        for answer in &self.answers {
            s.push('\n');
            match answer {
                None => s.push('-'),
                Some(Answer::Unknown) => s.push('?'),
                Some(Answer::Given(v)) => {
                    s.push('=');
                    for c in v.chars() {
                        match c {
                            '\\' => s.push_str("\\\\"),
                            '\n' => s.push_str("\\n"),
                            '\r' => s.push_str("\\r"),
                            c => s.push(c),
                        }
                    }
                }
            }
        }
        s
    }

    /// Parses [`Draft::encode`]'s form for `form`; `None` if it does not fit.
    pub fn decode(form: &Form, s: &str) -> Option<Self> {
        let mut lines = s.split('\n');
        let stage = lines.next()?;
        let index = |digits: &str| {
            digits.parse::<u8>().ok().filter(|&i| usize::from(i) < form.fields.len())
        };
        let stage = match stage.as_bytes().first()? {
            b'f' => Stage::Field { index: index(&stage[1..])?, fixing: false },
            b'F' => Stage::Field { index: index(&stage[1..])?, fixing: true },
            b'c' if stage.len() == 1 => Stage::Confirm,
            b'p' if stage.len() == 1 => Stage::Pick,
            _ => return None,
        };
        let answers = lines
            .map(|line| match line.split_at_checked(1)? {
                ("-", "") => Some(None),
                ("?", "") => Some(Some(Answer::Unknown)),
                ("=", v) => unescape(v).map(|v| Some(Answer::Given(v))),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        if answers.len() != form.fields.len() {
            return None;
        }
        let complete = answers.iter().all(Option::is_some);
        if matches!(stage, Stage::Confirm | Stage::Pick | Stage::Field { fixing: true, .. })
            && !complete
        {
            return None;
        }
        Some(Draft { stage, answers })
    }

    /// The confirmation's text: the heading and one line per answer.
    pub fn confirmation(&self, form: &Form) -> String {
        let mut text = form.texts.confirm.clone();
        text.push_str("\n\n");
        text.push_str(&answer_lines(form, &self.answers));
        text
    }
}

fn unescape(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            _ => return None,
        }
    }
    Some(out)
}

/// One `answer_line` per field.
fn answer_lines(form: &Form, answers: &[Option<Answer>]) -> String {
    form.fields
        .iter()
        .zip(answers)
        .map(|(field, answer)| {
            let value = match answer {
                Some(Answer::Given(v)) => v.as_str(),
                Some(Answer::Unknown) => field.unknown.as_deref().unwrap_or_default(),
                None => "",
            };
            slots(&form.texts.answer_line, &[("label", &field.label), ("value", value)])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fills runtime `{{slot}}`s. The templates were checked at load to use only known slots.
pub(crate) fn slots(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let name = after[..close].trim();
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The answers of a submitted form, with where the user came from and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub form: String,
    pub title: String,
    /// `(field id, field label, value)`; `None`: "unknown".
    pub answers: Vec<SubmittedAnswer>,
    /// The questions answered on the way, `(title, answer label)`, oldest first.
    pub path: Vec<(String, String)>,
    /// The ending the form leads to: its id and title.
    pub ending: String,
    pub ending_title: String,
    /// The reference number the user is shown. The engine makes one from the submission;
    /// the service replaces it with one that is unique in its store.
    pub reference: String,
    /// Whether the request is delivered to the help desk (the deployment has a destination).
    pub delivered: bool,
    answer_lines: String,
    path_lines: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedAnswer {
    pub field: String,
    pub label: String,
    /// `None`: the user chose "unknown".
    pub value: Option<String>,
    /// What the confirmation showed: the value or the unknown label.
    pub shown: String,
}

impl Submission {
    pub(crate) fn new(
        form: &Form,
        answers: &[Option<Answer>],
        path: Vec<(String, String)>,
        ending: (&str, &str),
        delivered: bool,
        seed: &[u8],
    ) -> Self {
        let path_line = &form.texts.path_line;
        let answer_lines = answer_lines(form, answers);
        let answers = form
            .fields
            .iter()
            .zip(answers)
            .map(|(field, answer)| {
                let value = match answer {
                    Some(Answer::Given(v)) => Some(v.clone()),
                    _ => None,
                };
                let shown =
                    value.clone().unwrap_or_else(|| field.unknown.clone().unwrap_or_default());
                SubmittedAnswer {
                    field: field.id.clone(),
                    label: field.label.clone(),
                    value,
                    shown,
                }
            })
            .collect();
        let path_lines = path
            .iter()
            .map(|(q, a)| slots(path_line, &[("question", q), ("answer", a)]))
            .collect::<Vec<_>>()
            .join("\n");
        let mut s = Submission {
            form: form.id.clone(),
            title: form.title.clone(),
            answers,
            path,
            ending: ending.0.to_owned(),
            ending_title: ending.1.to_owned(),
            reference: String::new(),
            delivered,
            answer_lines,
            path_lines,
        };
        s.reference = reference(&[seed, s.answer_lines.as_bytes()]);
        s
    }

    /// The request as the help desk reads it (the `handoff` template filled in). Without a
    /// reference (a request kept nowhere: the terminal's in-memory chat), the template's line
    /// that shows it is left out, so no 受付番号 is given that no desk could look up.
    pub fn text(&self, form: &Form) -> String {
        let template = if self.reference.is_empty() {
            let kept: Vec<&str> =
                form.texts.handoff.split('\n').filter(|l| !l.contains("{{reference}}")).collect();
            Cow::Owned(kept.join("\n"))
        } else {
            Cow::Borrowed(form.texts.handoff.as_str())
        };
        slots(
            &template,
            &[
                ("title", &self.title),
                ("reference", &self.reference),
                ("answers", &self.answer_lines),
                ("ending", &self.ending_title),
                ("path", &self.path_lines),
            ],
        )
    }

    /// The subject of the mail that carries the request (the `mail_subject` template filled in).
    pub fn subject(&self, form: &Form) -> String {
        slots(
            &form.texts.mail_subject,
            &[
                ("title", &self.title),
                ("reference", &self.reference),
                ("ending", &self.ending_title),
            ],
        )
    }

    /// What the user is shown: sent, or to be sent by them, and the request to copy.
    pub fn message(&self, form: &Form) -> String {
        let intro =
            if self.delivered { &form.texts.handoff_sent } else { &form.texts.handoff_copy };
        format!("{intro}\n\n{}", self.text(form))
    }
}

/// A reference number from some bytes: ten characters of Crockford base-32 (no I, L, O, U) in
/// two groups, `XXXXX-XXXXX`: 50 bits, easy to read out on the phone.
pub fn reference(parts: &[&[u8]]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bits = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
    let mut out = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[(bits >> 59) as usize]));
        bits <<= 5;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.jp", "taro.yamada+gmis@hospital.example.co.jp", "x_y@a-b.com"] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.jp",
            "a@b",
            "a@@b.jp",
            "a..b@c.jp",
            ".a@c.jp",
            "a.@c.jp",
            "a@-b.jp",
            "a@b-.jp",
            "a@b..jp",
            "a@b.j",
            "a@b.123",
            "a b@c.jp",
            "a@b.jp,",
            "山田@b.jp",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn answers_are_normalised() {
        assert_eq!(normalize_answer("　ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ　"), "taro@example.jp");
        assert_eq!(normalize_answer(" 〇〇  病院\n本院 "), "〇〇 病院 本院");
        assert_eq!(normalize_answer("１２３"), "123");
        assert_eq!(normalize_answer(" \t\n"), "");
    }

    #[test]
    fn references_are_short_and_stable() {
        let a = reference(&[b"x", b"y"]);
        assert_eq!(a.len(), 11);
        assert_eq!(a, reference(&[b"x", b"y"]));
        assert_ne!(a, reference(&[b"xy"]));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert!(!a.contains(['I', 'L', 'O', 'U']));
    }

    #[test]
    fn slots_fill_known_names_only() {
        assert_eq!(slots("{{label}}：{{ value }}", &[("label", "A"), ("value", "B")]), "A：B");
        assert_eq!(slots("{{other}}", &[("label", "A")]), "{{other}}");
    }
}
