//! The engine's forms: answering fields, the confirmation, fixing an answer, submitting.

use super::{Conversation, Event, Handoff, NoticeKind, Outcome, Reply, Timestamp};
use crate::flow::{Flow, NodeKind};
use crate::form::{Answer, Field, Form, Invalid, Stage, Submission};
use crate::text::{MAX_TYPED_BYTES, Typed, classify, normalize};

/// The longest text a form field takes in one message (its own `max_chars` is checked after).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Forms: answering fields, the confirmation, fixing, submitting.
impl Conversation {
    /// An answer typed for field `index` (as a message, or into its box).
    pub(super) fn field_answer<'f>(
        &mut self,
        flow: &'f Flow,
        index: u8,
        text: &str,
        words: bool,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let Some(form) = flow.form_of(self.node) else { return self.stale(flow, out) };
        let field = &form.fields[usize::from(index)];
        if text.len() > MAX_ANSWER_BYTES {
            return self.refuse(flow, form, field, Invalid::TooLong, now, out);
        }
        let key = normalize(text);
        if words && key == flow.texts.back_key {
            return self.back(flow, now, out);
        }
        if words && key == flow.texts.restart_key {
            return self.restart(flow, now, out);
        }
        if field.unknown.is_some() && key == field.unknown_key {
            return self.field_unknown(flow, index, now, out);
        }
        match field.validate(text) {
            Ok(value) => self.field_done(flow, index, Answer::Given(value), now, out),
            Err(why) => self.refuse(flow, form, field, why, now, out),
        }
    }

    pub(super) fn field_unknown<'f>(
        &mut self,
        flow: &'f Flow,
        index: u8,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        self.field_done(flow, index, Answer::Unknown, now, out);
    }

    /// Records an answer and moves on: to the next field, or to the confirmation after the
    /// last field or after fixing one.
    pub(super) fn field_done<'f>(
        &mut self,
        flow: &'f Flow,
        index: u8,
        answer: Answer,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let Some(draft) = self.form.as_mut() else { return self.stale(flow, out) };
        let Stage::Field { fixing, .. } = draft.stage else { return self.stale(flow, out) };
        draft.answers[usize::from(index)] = Some(answer);
        let next = usize::from(index) + 1;
        let stage = if fixing || next >= draft.answers.len() {
            Stage::Confirm
        } else {
            Stage::Field { index: next as u8, fixing: false }
        };
        self.form_stage(flow, stage, now, out);
    }

    /// An answer refused: the reason, then the same field again (its buttons still work).
    pub(super) fn refuse<'f>(
        &mut self,
        flow: &'f Flow,
        form: &'f Form,
        field: &'f Field,
        why: Invalid,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        self.misses = self.misses.saturating_add(1);
        self.touch(now, out);
        out.replies.push(Reply::Notice { kind: NoticeKind::Invalid, text: why.text(form, field) });
        if self.misses >= 3 {
            out.notice(flow, NoticeKind::Contact);
        }
        out.prompt(flow, self);
    }

    /// Text typed at the confirmation or at the choice of the answer to fix.
    pub(super) fn form_typed<'f>(
        &mut self,
        flow: &'f Flow,
        text: &str,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let (Some(form), Some(draft)) = (flow.form_of(self.node), &self.form) else {
            return self.stale(flow, out);
        };
        if text.len() > MAX_TYPED_BYTES {
            return self.miss(flow, now, out);
        }
        let key = normalize(text);
        if key == flow.texts.back_key {
            return self.back(flow, now, out);
        }
        if key == flow.texts.restart_key {
            return self.restart(flow, now, out);
        }
        let number = match classify(&key) {
            Typed::Number(n) => usize::try_from(n).ok(),
            _ => None,
        };
        match draft.stage {
            Stage::Confirm if key == form.texts.submit_key || number == Some(1) => {
                self.submit(flow, now, out)
            }
            Stage::Confirm if key == form.texts.fix_key || number == Some(2) => {
                self.form_stage(flow, Stage::Pick, now, out)
            }
            Stage::Pick => {
                let picked = number
                    .filter(|n| (1..=form.fields.len()).contains(n))
                    .map(|n| n - 1)
                    .or_else(|| form.fields.iter().position(|f| normalize(&f.label) == key));
                match picked {
                    Some(i) => self.fix_field(flow, i as u8, now, out),
                    None => self.miss(flow, now, out),
                }
            }
            _ => self.miss(flow, now, out),
        }
    }

    pub(super) fn fix_field<'f>(
        &mut self,
        flow: &'f Flow,
        index: u8,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        self.form_stage(flow, Stage::Field { index, fixing: true }, now, out);
    }

    /// Moves within the form; the buttons shown before go stale.
    pub(super) fn form_stage<'f>(
        &mut self,
        flow: &'f Flow,
        stage: Stage,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let Some(draft) = self.form.as_mut() else { return self.stale(flow, out) };
        draft.stage = stage;
        self.misses = 0;
        self.touch(now, out);
        self.entered = self.revision;
        out.prompt(flow, self);
    }

    /// The confirmation's submit: the hand-off, then on to the form's `next`.
    pub(super) fn submit<'f>(&mut self, flow: &'f Flow, now: Timestamp, out: &mut Outcome<'f>) {
        let from = self.node;
        let (Some(form), Some(draft), NodeKind::Form { next, .. }) =
            (flow.form_of(from), self.form.take(), &flow.node(from).kind)
        else {
            return self.stale(flow, out);
        };
        let path = self
            .path
            .iter()
            .filter_map(|s| {
                let node = flow.node(s.node);
                let NodeKind::Question(q) = &node.kind else { return None };
                Some((node.title.clone(), q.choices.get(usize::from(s.choice))?.label.clone()))
            })
            .collect();
        let ending = flow.node(flow.settle(*next));
        let mut seed = Vec::with_capacity(24);
        seed.extend_from_slice(&self.started_at.0.to_le_bytes());
        seed.extend_from_slice(&now.0.to_le_bytes());
        seed.extend_from_slice(&self.revision.to_le_bytes());
        let submission = Submission::new(
            form,
            &draft.answers,
            path,
            (&ending.id, &ending.title),
            flow.delivers,
            &seed,
        );
        out.replies.push(Reply::Handoff);
        out.handoff = Some(Box::new(Handoff { form, submission }));
        self.go_to(flow, *next, now, out);
        out.event = Some(Event::Submitted { from, to: self.node });
    }
}
