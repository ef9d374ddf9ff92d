//! The conversation engine: a pure state machine over a compiled [`Flow`].
//!
//! `(flow, conversation, input, now) → (conversation', replies)`. The conversation is updated in
//! place and the [`Outcome`] says what to show and whether anything changed (nothing changes on a
//! stale press, so an adapter need not write anything back). No I/O, no clock: `now` is an
//! argument, and the same inputs always give the same outputs.

mod forms;

use crate::flow::{Flow, Means, Node, NodeIx, NodeKind, Texts};
use crate::form::{Draft, Form, Stage, Submission};
pub use crate::prompt::{Button, Prompt};
use crate::prompt::{FormView, offered};
use crate::text::{MAX_TYPED_BYTES, Typed, classify, normalize};
use crate::token::Action;

/// Milliseconds since the Unix epoch, as the caller's clock says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

/// One thing a user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// `/start`, a deep link (`/start ENTRY`), or the first contact. An unknown entry starts at
    /// the beginning with a notice.
    Start {
        entry: Option<&'a str>,
    },
    /// A button press carrying its token (`callback_data`, `custom_id`).
    Press(&'a str),
    /// Typed text: an answer by number, label or yes/no word, a form field's answer, or a
    /// `/command`.
    Text(&'a str),
    /// A form field's answer typed into a box opened by the button with `token` (a modal
    /// dialog): applied only if that button is current, like a press.
    Answer {
        token: &'a str,
        text: &'a str,
    },
    Back,
    Restart,
    Help,
}

/// The path taken: at `node`, the user picked `choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub node: NodeIx,
    pub choice: u8,
}

/// A conversation's parts as a store gives them back (see `Conversation::restore`).
#[derive(Debug)]
pub(crate) struct Parts {
    pub node: NodeIx,
    pub revision: u64,
    pub entered: u64,
    pub path: Vec<Step>,
    pub misses: u8,
    pub awaiting_resume: bool,
    pub form: Option<Draft>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The state of one conversation. Small and cheap to clone; adapters persist it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    node: NodeIx,
    /// Bumped on every change (the store's compare-and-swap version).
    revision: u64,
    /// The revision at which `node` was entered; the current buttons' tokens carry it.
    entered: u64,
    /// The answers given on the way to `node`, oldest first; back pops the last.
    path: Vec<Step>,
    /// Typed answers in a row that matched nothing.
    misses: u8,
    /// The user came back after a pause and was asked whether to resume.
    awaiting_resume: bool,
    /// At a form node: where in the form, and the answers so far.
    form: Option<Draft>,
    started_at: Timestamp,
    updated_at: Timestamp,
}

/// Why the engine is saying something other than the flow's next node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    Stale,
    NoMatch,
    Contact,
    Help,
    CannotGoBack,
    Ended,
    UnknownEntry,
    UnknownCommand,
    /// A form's answer was refused; the text says why.
    Invalid,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 9] = [
        NoticeKind::Stale,
        NoticeKind::NoMatch,
        NoticeKind::Contact,
        NoticeKind::Help,
        NoticeKind::CannotGoBack,
        NoticeKind::Ended,
        NoticeKind::UnknownEntry,
        NoticeKind::UnknownCommand,
        NoticeKind::Invalid,
    ];

    /// The name used in conversation scripts and logs.
    pub fn name(self) -> &'static str {
        match self {
            NoticeKind::Stale => "stale",
            NoticeKind::NoMatch => "no_match",
            NoticeKind::Contact => "contact",
            NoticeKind::Help => "help",
            NoticeKind::CannotGoBack => "cannot_go_back",
            NoticeKind::Ended => "ended",
            NoticeKind::UnknownEntry => "unknown_entry",
            NoticeKind::UnknownCommand => "unknown_command",
            NoticeKind::Invalid => "invalid",
        }
    }

    fn text(self, t: &Texts) -> &str {
        match self {
            NoticeKind::Stale => &t.stale,
            NoticeKind::NoMatch => &t.no_match,
            NoticeKind::Contact => &t.contact,
            NoticeKind::Help => &t.help,
            NoticeKind::CannotGoBack => &t.cannot_go_back,
            NoticeKind::Ended => &t.ended,
            NoticeKind::UnknownEntry => &t.unknown_entry,
            NoticeKind::UnknownCommand => &t.unknown_command,
            // Not used: the reason comes from the form, and `refuse` adds that notice itself.
            NoticeKind::Invalid => &t.no_match,
        }
    }
}

/// One thing to show the user, platform-neutral. Adapters render these in order.
#[derive(Debug, Clone)]
pub enum Reply<'f> {
    /// A short remark about the input (an old button, an unmatched answer, …).
    Notice { kind: NoticeKind, text: &'f str },
    /// A message node's text: shown, no buttons.
    Say { node: &'f Node, text: &'f str },
    /// The node the conversation now waits at, with its buttons.
    Prompt(Prompt<'f>),
    /// A submitted form: show [`Outcome::handoff`]'s message here.
    Handoff,
}

/// A change of node, for the event log and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A conversation began (or began again via `/start`) at `at`.
    Started {
        at: NodeIx,
    },
    /// At question `from` the user picked `choice`, which led (through any messages) to `to`.
    Answered {
        from: NodeIx,
        choice: u8,
        to: NodeIx,
    },
    Back {
        from: NodeIx,
        to: NodeIx,
    },
    Restarted {
        from: NodeIx,
        to: NodeIx,
    },
    /// After a pause, the user chose to go on at `at`.
    Resumed {
        at: NodeIx,
    },
    /// The form at `from` was submitted, which led (through any messages) to `to`.
    Submitted {
        from: NodeIx,
        to: NodeIx,
    },
}

/// A submitted form, for the service to store and deliver and the adapter to show.
#[derive(Debug, Clone)]
pub struct Handoff<'f> {
    pub form: &'f Form,
    pub submission: Submission,
}

impl Handoff<'_> {
    /// The request as the help desk reads it.
    pub fn text(&self) -> String {
        self.submission.text(self.form)
    }

    /// The subject of the mail that carries the request.
    pub fn subject(&self) -> String {
        self.submission.subject(self.form)
    }

    /// What the user is shown at [`Reply::Handoff`].
    pub fn message(&self) -> String {
        self.submission.message(self.form)
    }
}

/// What one input did.
#[derive(Debug, Clone)]
pub struct Outcome<'f> {
    pub replies: Vec<Reply<'f>>,
    /// Whether the conversation changed (and so must be saved).
    pub changed: bool,
    pub event: Option<Event>,
    /// A form submitted by this input.
    pub handoff: Option<Box<Handoff<'f>>>,
}

impl Conversation {
    /// Begins a conversation at the flow's start, or at a named entry point.
    pub fn start<'f>(flow: &'f Flow, entry: Option<&str>, now: Timestamp) -> (Self, Outcome<'f>) {
        let mut c = Conversation {
            node: flow.start,
            revision: 0,
            entered: 0,
            path: Vec::new(),
            misses: 0,
            awaiting_resume: false,
            form: None,
            started_at: now,
            updated_at: now,
        };
        let outcome = c.step(flow, Input::Start { entry }, now);
        (c, outcome)
    }

    /// Begins a conversation with its first input: a `/start` (with or without an entry)
    /// starts there; anything else starts at the beginning.
    pub fn open<'f>(flow: &'f Flow, input: Input<'_>, now: Timestamp) -> (Self, Outcome<'f>) {
        let entry = match input {
            Input::Start { entry } => entry,
            Input::Text(text) => start_command(text).flatten(),
            _ => None,
        };
        Conversation::start(flow, entry, now)
    }

    /// Applies one input.
    pub fn step<'f>(&mut self, flow: &'f Flow, input: Input<'_>, now: Timestamp) -> Outcome<'f> {
        let mut out =
            Outcome { replies: Vec::with_capacity(2), changed: false, event: None, handoff: None };
        if self.awaiting_resume {
            self.resuming(flow, input, now, &mut out);
            return out;
        }
        if self.back_after_pause(flow, input, now) {
            self.awaiting_resume = true;
            self.touch(now, &mut out);
            out.prompt(flow, self);
            return out;
        }
        match input {
            Input::Start { entry } => self.begin(flow, entry, now, &mut out),
            Input::Press(token) => self.press(flow, token, now, &mut out),
            Input::Text(text) => self.typed(flow, text, now, &mut out),
            Input::Answer { token, text } => match self.current_token(flow, token) {
                Some(Action::Field(i)) => self.field_answer(flow, i, text, false, now, &mut out),
                _ => self.stale(flow, &mut out),
            },
            Input::Back => self.back(flow, now, &mut out),
            Input::Restart => self.restart(flow, now, &mut out),
            Input::Help => {
                out.notice(flow, NoticeKind::Help);
                out.notice(flow, NoticeKind::Contact);
                out.prompt(flow, self);
            }
        }
        out
    }

    /// The node the conversation waits at: a question or an ending, never a message.
    pub fn node(&self) -> NodeIx {
        self.node
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision at which the current node was entered (what its buttons' tokens carry).
    pub fn entered(&self) -> u64 {
        self.entered
    }

    /// Rebuilds a conversation from stored parts (see `Conversation::restore`).
    pub(crate) fn from_parts(p: Parts) -> Self {
        Conversation {
            node: p.node,
            revision: p.revision,
            entered: p.entered,
            path: p.path,
            misses: p.misses,
            awaiting_resume: p.awaiting_resume,
            form: p.form,
            started_at: p.started_at,
            updated_at: p.updated_at,
        }
    }

    /// The answers given on the way to the current node, oldest first.
    pub fn path(&self) -> &[Step] {
        &self.path
    }

    pub fn misses(&self) -> u8 {
        self.misses
    }

    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// The form being filled in, at a form node.
    pub fn draft(&self) -> Option<&Draft> {
        self.form.as_ref()
    }

    /// Whether the user was asked whether to resume and has not answered yet.
    pub fn is_awaiting_resume(&self) -> bool {
        self.awaiting_resume
    }

    /// Whether the conversation is at an ending.
    pub fn is_finished(&self, flow: &Flow) -> bool {
        flow.node(self.node).is_ending()
    }

    /// The prompt currently shown, as a re-render would show it.
    pub fn prompt<'f>(&self, flow: &'f Flow) -> Prompt<'f> {
        self.prompt_of(flow, self.awaiting_resume)
    }

    fn prompt_of<'f>(&self, flow: &'f Flow, resume: bool) -> Prompt<'f> {
        let form = flow.form_of(self.node).zip(self.form.as_ref());
        let inside_form =
            form.is_some_and(|(_, d)| d.stage != Stage::Field { index: 0, fixing: false });
        Prompt {
            node: flow.node(self.node),
            rev: self.entered,
            back: (!self.path.is_empty() || inside_form) && !resume,
            restart: self.node != flow.first_stop || !self.path.is_empty(),
            resume,
            form: form.map(|(f, d)| {
                Box::new(FormView {
                    form: f,
                    stage: d.stage,
                    confirmation: (d.stage == Stage::Confirm).then(|| d.confirmation(f)),
                })
            }),
            texts: &flow.texts,
        }
    }

    /// Whether `input` comes after a pause long enough to ask the user whether to resume: the
    /// conversation is part-way through a question, and the input is not a press of one of the
    /// current buttons or an explicit entry (those show the user knows where they are).
    fn back_after_pause(&self, flow: &Flow, input: Input<'_>, now: Timestamp) -> bool {
        let Some(pause) = flow.resume_after else { return false };
        if now.0.saturating_sub(self.updated_at.0) < pause {
            return false;
        }
        let in_progress = !self.path.is_empty() || self.node != flow.first_stop;
        if !in_progress || flow.node(self.node).is_ending() {
            return false;
        }
        match input {
            // Commands (`/back`, `/help`, `/start ENTRY`) do what they say; a plain `/start`
            // (tapping the bot's link again) or words ask, except at a form's field, where words
            // are the answer to the field on screen.
            Input::Text(text) => match start_command(text) {
                None if self.at_field().is_some() => false,
                Some(entry) => entry.is_none(),
                None => !text.trim_start().starts_with('/'),
            },
            Input::Start { entry: None } => true,
            Input::Press(token) | Input::Answer { token, .. } => {
                self.current_token(flow, token).is_none()
            }
            Input::Start { entry: Some(_) } | Input::Back | Input::Restart | Input::Help => false,
        }
    }

    /// The action of `token` if it is one of the buttons now shown.
    fn current_token(&self, flow: &Flow, token: &str) -> Option<Action> {
        offered(&self.prompt(flow), token, self.entered)
    }

    /// The form field now asked, if any.
    fn at_field(&self) -> Option<(u8, bool)> {
        match self.form.as_ref()?.stage {
            Stage::Field { index, fixing } => Some((index, fixing)),
            _ => None,
        }
    }

    /// Input while the resume question is open: resume, start again, or answer the question.
    fn resuming<'f>(
        &mut self,
        flow: &'f Flow,
        input: Input<'_>,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let action = match input {
            // The resume buttons, or the question's own buttons on the message above.
            Input::Press(token) => {
                self.current_token(flow, token).or_else(|| self.question_token(flow, token))
            }
            Input::Text(text) if !text.trim_start().starts_with('/') => {
                let key = normalize(text);
                match classify(&key) {
                    Typed::Number(1) => Some(Action::Resume),
                    Typed::Number(2) => Some(Action::Restart),
                    _ if key == flow.texts.resume_key => Some(Action::Resume),
                    _ if key == flow.texts.restart_key => Some(Action::Restart),
                    _ => None,
                }
            }
            Input::Restart => Some(Action::Restart),
            // Commands, entries, back and help do what they always do; the question closes.
            // So does an answer typed into a form's box: it was opened on the form's field.
            Input::Text(_)
            | Input::Start { .. }
            | Input::Back
            | Input::Help
            | Input::Answer { .. } => {
                self.awaiting_resume = false;
                self.touch(now, out);
                let inner = self.step(flow, input, now);
                out.replies.extend(inner.replies);
                out.event = inner.event;
                return;
            }
        };
        match action {
            Some(Action::Resume) => {
                self.awaiting_resume = false;
                self.touch(now, out);
                out.prompt(flow, self);
                out.event = Some(Event::Resumed { at: self.node });
            }
            Some(Action::Restart) => self.restart(flow, now, out),
            Some(Action::Back) => self.back(flow, now, out),
            Some(action) if self.form.is_some() || matches!(action, Action::Choice(_)) => {
                self.awaiting_resume = false;
                self.act(flow, action, now, out)
            }
            Some(_) => self.stale(flow, out),
            None if matches!(input, Input::Press(_)) => self.stale(flow, out),
            None => {
                out.notice(flow, NoticeKind::NoMatch);
                out.prompt(flow, self);
            }
        }
    }

    /// A press of the current question's own buttons (shown before the resume question).
    fn question_token(&self, flow: &Flow, token: &str) -> Option<Action> {
        offered(&self.prompt_of(flow, false), token, self.entered)
            .filter(|a| !matches!(a, Action::Restart | Action::Field(_)))
    }

    fn begin<'f>(
        &mut self,
        flow: &'f Flow,
        entry: Option<&str>,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let target = match entry.map(|name| (name, flow.entry(name))) {
            None => flow.start,
            Some((_, Some(ix))) => ix,
            Some((_, None)) => {
                out.notice(flow, NoticeKind::UnknownEntry);
                flow.start
            }
        };
        self.path.clear();
        self.go_to(flow, target, now, out);
        out.event = Some(Event::Started { at: self.node });
    }

    fn press<'f>(&mut self, flow: &'f Flow, token: &str, now: Timestamp, out: &mut Outcome<'f>) {
        // Only a button now shown acts: a token for a button never offered here is as forged as
        // any other.
        match self.current_token(flow, token) {
            Some(action) => self.act(flow, action, now, out),
            None => self.stale(flow, out),
        }
    }

    /// Does what a current button does.
    fn act<'f>(&mut self, flow: &'f Flow, action: Action, now: Timestamp, out: &mut Outcome<'f>) {
        match action {
            Action::Choice(i) if self.form.is_some() => self.fix_field(flow, i, now, out),
            Action::Choice(i) => self.answer(flow, i, now, out),
            Action::Back => self.back(flow, now, out),
            Action::Restart => self.restart(flow, now, out),
            Action::Submit => self.submit(flow, now, out),
            Action::Fix => self.form_stage(flow, Stage::Pick, now, out),
            Action::Unknown(i) => self.field_unknown(flow, i, now, out),
            // Opening the box changes nothing; the answer comes as `Input::Answer`.
            Action::Field(_) => out.prompt(flow, self),
            Action::Resume => self.stale(flow, out),
        }
    }

    fn typed<'f>(&mut self, flow: &'f Flow, text: &str, now: Timestamp, out: &mut Outcome<'f>) {
        if let Some(command) = text.trim_start().strip_prefix('/') {
            return self.command(flow, command, now, out);
        }
        if let Some((index, _)) = self.at_field() {
            return self.field_answer(flow, index, text, true, now, out);
        }
        if self.form.is_some() {
            return self.form_typed(flow, text, now, out);
        }
        if text.len() > MAX_TYPED_BYTES {
            return self.miss(flow, now, out);
        }
        // A label typed (or sent by a reply keyboard) exactly needs no normalising: it is the
        // source of its own key. Labels are unique after normalising, so this picks the same
        // choice the full match below would.
        if let NodeKind::Question(q) = &flow.node(self.node).kind
            && let Some(i) = q.choices.iter().position(|c| c.label == text.trim())
        {
            return self.answer(flow, i as u8, now, out);
        }
        let key = normalize(text);
        if key == flow.texts.back_key {
            return self.back(flow, now, out);
        }
        if key == flow.texts.restart_key {
            return self.restart(flow, now, out);
        }
        let question = match &flow.node(self.node).kind {
            NodeKind::Question(q) => q,
            _ => {
                out.notice(flow, NoticeKind::Ended);
                out.prompt(flow, self);
                return;
            }
        };
        let picked = match classify(&key) {
            Typed::Number(n) => usize::try_from(n)
                .ok()
                .filter(|&n| (1..=question.choices.len()).contains(&n))
                .map(|n| n - 1),
            Typed::Yes => question.choices.iter().position(|c| c.means == Some(Means::Yes)),
            Typed::No => question.choices.iter().position(|c| c.means == Some(Means::No)),
            Typed::Words => None,
        };
        // A label wins over a yes/no word or number only when nothing else matched.
        let picked = picked.or_else(|| question.choices.iter().position(|c| c.key == key));
        match picked {
            Some(i) => self.answer(flow, i as u8, now, out),
            None => self.miss(flow, now, out),
        }
    }

    fn command<'f>(
        &mut self,
        flow: &'f Flow,
        command: &str,
        now: Timestamp,
        out: &mut Outcome<'f>,
    ) {
        let (word, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
        // Messengers address commands in groups as `/start@botname`.
        let word = word.split_once('@').map_or(word, |(w, _)| w);
        match word {
            "start" => {
                let entry = rest.trim();
                self.begin(flow, (!entry.is_empty()).then_some(entry), now, out);
            }
            "back" => self.back(flow, now, out),
            "restart" => self.restart(flow, now, out),
            "help" => {
                out.notice(flow, NoticeKind::Help);
                out.notice(flow, NoticeKind::Contact);
                out.prompt(flow, self);
            }
            _ => {
                out.notice(flow, NoticeKind::UnknownCommand);
                out.prompt(flow, self);
            }
        }
    }

    fn answer<'f>(&mut self, flow: &'f Flow, choice: u8, now: Timestamp, out: &mut Outcome<'f>) {
        let from = self.node;
        let NodeKind::Question(q) = &flow.node(from).kind else {
            return self.stale(flow, out);
        };
        let next = q.choices[usize::from(choice)].next;
        self.path.push(Step { node: from, choice });
        self.go_to(flow, next, now, out);
        out.event = Some(Event::Answered { from, choice, to: self.node });
    }

    fn back<'f>(&mut self, flow: &'f Flow, now: Timestamp, out: &mut Outcome<'f>) {
        let from = self.node;
        if let (Some(form), Some(draft)) = (flow.form_of(self.node), &self.form) {
            let last = (form.fields.len() - 1) as u8;
            let stage = match draft.stage {
                Stage::Field { fixing: true, .. } | Stage::Pick => Some(Stage::Confirm),
                Stage::Field { index: 0, fixing: false } => None,
                Stage::Field { index, fixing: false } => {
                    Some(Stage::Field { index: index - 1, fixing: false })
                }
                Stage::Confirm => Some(Stage::Field { index: last, fixing: false }),
            };
            if let Some(stage) = stage {
                return self.form_stage(flow, stage, now, out);
            }
        }
        match self.path.pop() {
            Some(step) => {
                self.go_to(flow, step.node, now, out);
                out.event = Some(Event::Back { from, to: self.node });
            }
            None => {
                out.notice(flow, NoticeKind::CannotGoBack);
                out.prompt(flow, self);
            }
        }
    }

    fn restart<'f>(&mut self, flow: &'f Flow, now: Timestamp, out: &mut Outcome<'f>) {
        let from = self.node;
        self.path.clear();
        self.go_to(flow, flow.start, now, out);
        out.event = Some(Event::Restarted { from, to: self.node });
    }

    fn stale<'f>(&self, flow: &'f Flow, out: &mut Outcome<'f>) {
        out.notice(flow, NoticeKind::Stale);
        out.prompt(flow, self);
    }

    fn miss<'f>(&mut self, flow: &'f Flow, now: Timestamp, out: &mut Outcome<'f>) {
        if flow.node(self.node).is_ending() {
            out.notice(flow, NoticeKind::Ended);
            out.prompt(flow, self);
            return;
        }
        self.misses = self.misses.saturating_add(1);
        self.touch(now, out);
        out.notice(flow, NoticeKind::NoMatch);
        if self.misses >= 3 {
            out.notice(flow, NoticeKind::Contact);
        }
        out.prompt(flow, self);
    }

    /// Moves to `target`, showing every message on the way, and waits at the first question or
    /// ending.
    fn go_to<'f>(&mut self, flow: &'f Flow, target: NodeIx, now: Timestamp, out: &mut Outcome<'f>) {
        let mut ix = target;
        for _ in 0..flow.nodes.len() {
            let node = flow.node(ix);
            match &node.kind {
                NodeKind::Message { text, next } => {
                    out.replies.push(Reply::Say { node, text });
                    ix = *next;
                }
                _ => break,
            }
        }
        self.node = ix;
        self.misses = 0;
        self.awaiting_resume = false;
        self.form = flow.form_of(ix).map(Draft::new);
        self.touch(now, out);
        self.entered = self.revision;
        out.prompt(flow, self);
    }

    fn touch(&mut self, now: Timestamp, out: &mut Outcome<'_>) {
        self.revision += 1;
        self.updated_at = now;
        out.changed = true;
    }
}

/// `Some(entry)` if `text` is a `/start` command (`/start`, `/start ENTRY`, `/start@bot ENTRY`).
fn start_command(text: &str) -> Option<Option<&str>> {
    let command = text.trim_start().strip_prefix('/')?;
    let (word, rest) = command.split_once(char::is_whitespace).unwrap_or((command, ""));
    let word = word.split_once('@').map_or(word, |(w, _)| w);
    (word == "start").then(|| Some(rest.trim()).filter(|e| !e.is_empty()))
}

impl<'f> Outcome<'f> {
    fn notice(&mut self, flow: &'f Flow, kind: NoticeKind) {
        self.replies.push(Reply::Notice { kind, text: kind.text(&flow.texts) });
    }

    fn prompt(&mut self, flow: &'f Flow, c: &Conversation) {
        self.replies.push(Reply::Prompt(c.prompt(flow)));
    }

    /// The prompt this outcome ends with, if any.
    pub fn prompt_shown(&self) -> Option<&Prompt<'f>> {
        self.replies.iter().rev().find_map(|r| match r {
            Reply::Prompt(p) => Some(p),
            _ => None,
        })
    }

    /// The notices of this outcome.
    pub fn notices(&self) -> impl Iterator<Item = NoticeKind> + '_ {
        self.replies.iter().filter_map(|r| match r {
            Reply::Notice { kind, .. } => Some(*kind),
            _ => None,
        })
    }
}
