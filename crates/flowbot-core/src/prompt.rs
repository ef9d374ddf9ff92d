//! A prompt: the node the conversation waits at as shown, with its buttons (choices, a form's
//! steps, navigation) and the check that a pressed token is one of them.

use crate::flow::{Node, NodeKind, Texts};
use crate::form::{Form, Stage};
use crate::token::{Action, Token};

/// A question (or an ending, or a step of a form) with its buttons.
#[derive(Debug, Clone)]
pub struct Prompt<'f> {
    pub node: &'f Node,
    /// The revision the buttons' tokens carry.
    pub rev: u64,
    /// Whether the back (戻る) button is offered.
    pub back: bool,
    /// Whether the restart (最初から) button is offered.
    pub restart: bool,
    /// This is the question whether to resume after a pause, not the node's own prompt.
    pub resume: bool,
    /// At a form node: the form, where in it, and the confirmation's text. Boxed: most
    /// prompts are questions, and a small `Reply` is cheap to move.
    pub(crate) form: Option<Box<FormView<'f>>>,
    pub(crate) texts: &'f Texts,
}

#[derive(Debug, Clone)]
pub(crate) struct FormView<'f> {
    pub(crate) form: &'f Form,
    pub(crate) stage: Stage,
    /// The confirmation's text (it lists the answers).
    pub(crate) confirmation: Option<String>,
}

/// A prompt's own buttons (before back and restart), without building a list.
#[derive(Clone, Copy)]
enum Main<'f> {
    None,
    Choices(&'f [crate::flow::Choice]),
    /// A form field's "unknown" button.
    Unknown(&'f str, u8),
    Confirm(&'f Form),
    /// The fields, to pick the one to fix.
    Fields(&'f [crate::form::Field]),
}

impl<'f> Main<'f> {
    fn len(self) -> usize {
        match self {
            Main::None => 0,
            Main::Choices(c) => c.len(),
            Main::Unknown(..) => 1,
            Main::Confirm(_) => 2,
            Main::Fields(f) => f.len(),
        }
    }

    /// Button `i` (`i < len()`).
    fn get(self, i: usize) -> (&'f str, Action) {
        match self {
            Main::Choices(c) => (&c[i].label, Action::Choice(i as u8)),
            Main::Unknown(label, index) => (label, Action::Unknown(index)),
            Main::Confirm(form) if i == 0 => (&form.texts.submit, Action::Submit),
            Main::Confirm(form) => (&form.texts.fix, Action::Fix),
            Main::Fields(f) => (&f[i].label, Action::Choice(i as u8)),
            Main::None => unreachable!("no buttons"),
        }
    }
}

/// One button of a prompt.
#[derive(Debug, Clone, Copy)]
pub struct Button<'f> {
    pub label: &'f str,
    pub token: Token<'f>,
}

impl<'f> Prompt<'f> {
    pub fn text(&self) -> &str {
        if self.resume {
            return &self.texts.resume_question;
        }
        match self.form.as_deref() {
            Some(FormView { form, stage: Stage::Field { index, .. }, .. }) => {
                &form.fields[usize::from(*index)].ask
            }
            Some(FormView { stage: Stage::Confirm, confirmation, .. }) => {
                confirmation.as_deref().unwrap_or_default()
            }
            Some(FormView { form, stage: Stage::Pick, .. }) => &form.texts.fix_question,
            None => self.node.text(),
        }
    }

    /// At a form node: the form and where in it.
    pub fn form(&self) -> Option<(&'f Form, Stage)> {
        self.form.as_deref().map(|v| (v.form, v.stage))
    }

    /// At a form field: the token of the button that opens a box to type the answer in
    /// (for platforms where the bot cannot read typed messages), and the field.
    pub fn input(&self) -> Option<(Button<'f>, &'f crate::form::Field)> {
        match self.form() {
            Some((form, Stage::Field { index, .. })) if !self.resume => Some((
                Button {
                    label: &form.texts.input,
                    token: Token {
                        rev: self.rev,
                        node: &self.node.id,
                        action: Action::Field(index),
                    },
                },
                &form.fields[usize::from(index)],
            )),
            _ => None,
        }
    }

    pub fn note(&self) -> Option<&'f str> {
        match &self.node.kind {
            NodeKind::Question(q) if !self.resume => q.note.as_deref(),
            _ => None,
        }
    }

    pub fn is_ending(&self) -> bool {
        self.node.is_ending()
    }

    /// The choices' buttons, in order, then back and restart where offered. (A form field's
    /// input button is [`Prompt::input`], not one of these.)
    pub fn buttons(&self) -> impl Iterator<Item = Button<'f>> + use<'f> {
        let node = self.node;
        let rev = self.rev;
        let main = match (&node.kind, self.form()) {
            _ if self.resume => Main::None,
            (NodeKind::Question(q), _) => Main::Choices(&q.choices),
            (_, Some((form, Stage::Field { index, .. }))) => {
                match form.fields[usize::from(index)].unknown.as_deref() {
                    Some(label) => Main::Unknown(label, index),
                    None => Main::None,
                }
            }
            (_, Some((form, Stage::Confirm))) => Main::Confirm(form),
            (_, Some((form, Stage::Pick))) => Main::Fields(&form.fields),
            _ => Main::None,
        };
        let nav = [
            self.resume.then_some((self.texts.resume.as_str(), Action::Resume)),
            self.back.then_some((self.texts.back.as_str(), Action::Back)),
            self.restart.then_some((self.texts.restart.as_str(), Action::Restart)),
        ];
        (0..main.len()).map(move |i| main.get(i)).chain(nav.into_iter().flatten()).map(
            move |(label, action)| Button { label, token: Token { rev, node: &node.id, action } },
        )
    }

    /// The number of choice buttons (the ones a typed number selects).
    pub fn choice_count(&self) -> usize {
        match (&self.node.kind, self.form()) {
            _ if self.resume => 0,
            (NodeKind::Question(q), _) => q.choices.len(),
            (_, Some((form, Stage::Pick))) => form.fields.len(),
            _ => 0,
        }
    }
}

/// The action of `token` if it is one of `prompt`'s buttons (or its input button) and was
/// issued at revision `entered`.
pub(crate) fn offered(prompt: &Prompt<'_>, token: &str, entered: u64) -> Option<Action> {
    let token = Token::parse(token).filter(|t| t.rev == entered && t.node == prompt.node.id)?;
    // What `Prompt::buttons` and `Prompt::input` show, without building them.
    let stage = prompt.form().filter(|_| !prompt.resume);
    let field = |i: u8| match stage {
        Some((form, Stage::Field { index, .. })) if index == i => form.fields.get(usize::from(i)),
        _ => None,
    };
    let shown = match token.action {
        Action::Choice(i) => usize::from(i) < prompt.choice_count(),
        Action::Back => prompt.back,
        Action::Restart => prompt.restart,
        Action::Resume => prompt.resume,
        Action::Submit | Action::Fix => matches!(stage, Some((_, Stage::Confirm))),
        Action::Unknown(i) => field(i).is_some_and(|f| f.unknown.is_some()),
        Action::Field(i) => field(i).is_some(),
    };
    shown.then_some(token.action)
}
