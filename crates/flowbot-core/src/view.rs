//! The platform-neutral view of an outcome: what every renderer draws, computed once here.
//!
//! A [`View`] holds the paragraphs to show (each with its link segments), the prompt's buttons
//! sorted into choices, the input button and navigation, and, for a button press, the toast of a
//! press that changed nothing or the mark of the message that was answered. Renderers (the
//! messengers, the web chat, the terminal, the JSON pipe) hold only their platform's look.

use std::borrow::Cow;

use crate::engine::{Button, Handoff, NoticeKind, Outcome, Prompt, Reply};
use crate::flow::{Flow, Node, NodeKind};
use crate::form::Field;
use crate::text::{Segment, segments};
use crate::token::{Action, Token};

/// Everything one outcome shows, in the order it shows it.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// Notices, messages, the hand-off message, the prompt's text and its note, in order.
    pub paragraphs: Vec<Paragraph<'a>>,
    /// The buttons of the prompt the outcome ends with (an outcome shows at most one prompt).
    pub prompt: Option<PromptView<'a>>,
    /// Whether the conversation changed.
    pub changed: bool,
    /// For a press that changed nothing (an old message, a second press, a forged button): the
    /// notice to show as a toast on the button (empty if there is none). The question it points
    /// to is already on screen, so a messenger sends no message then.
    pub toast: Option<&'a str>,
    /// For a press that moved on: what the pressed message asked and the answer chosen.
    pub answered: Option<Answered<'a>>,
}

/// One paragraph of a view and where it comes from.
#[derive(Debug, Clone)]
pub struct Paragraph<'a> {
    pub part: Part<'a>,
    pub text: Cow<'a, str>,
}

impl Paragraph<'_> {
    /// The paragraph as plain runs and links, as every platform makes them clickable.
    pub fn segments(&self) -> Vec<Segment<'_>> {
        segments(&self.text)
    }
}

/// Where a paragraph comes from.
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// A remark about the input ([`Reply::Notice`]).
    Notice(NoticeKind),
    /// A message node's text ([`Reply::Say`]).
    Say(&'a Node),
    /// The message of a submitted form ([`Handoff::message`]).
    Handoff(&'a Handoff<'a>),
    /// The prompt's text; its buttons are [`View::prompt`].
    Prompt(&'a Node),
    /// The prompt's note, after its text.
    Note,
}

/// A prompt's buttons, sorted the way every platform shows them apart.
#[derive(Debug, Clone)]
pub struct PromptView<'a> {
    /// The node the conversation waits at.
    pub node: &'a Node,
    /// The answers: a question's choices; at a form, the `unknown` button, the confirmation's
    /// submit and fix, or the fields to pick the one to fix.
    pub choices: Vec<Button<'a>>,
    /// At a form field: the button that opens a box to type the answer in (for platforms where
    /// the bot cannot read typed messages), and the field. Not one of `choices`.
    pub input: Option<(Button<'a>, &'a Field)>,
    /// Navigation, in this order where offered: resume (続きから), back (戻る), restart
    /// (最初から).
    pub nav: Vec<Button<'a>>,
    /// This is the question whether to resume after a pause: `nav` holds its two answers.
    pub resume: bool,
    /// The node is an ending.
    pub ending: bool,
}

impl<'a> PromptView<'a> {
    pub fn of(prompt: &'a Prompt<'_>) -> Self {
        let (nav, choices) = prompt.buttons().partition(|b| {
            matches!(b.token.action, Action::Resume | Action::Back | Action::Restart)
        });
        PromptView {
            node: prompt.node,
            choices,
            input: prompt.input(),
            nav,
            resume: prompt.resume,
            ending: prompt.is_ending(),
        }
    }

    /// Every button in the order of [`Prompt::buttons`], the input button first.
    pub fn buttons(&self) -> impl Iterator<Item = &Button<'a>> {
        self.input.iter().map(|(b, _)| b).chain(&self.choices).chain(&self.nav)
    }
}

/// The mark of an answered message: what it asked, and the label of the button chosen. A
/// renderer formats the two (and can drop the buttons, so they cannot be pressed again).
#[derive(Debug, Clone)]
pub struct Answered<'a> {
    /// What the pressed message asked: the question and its note (separated by a blank line),
    /// the resume question, or the node's text.
    pub asked: Cow<'a, str>,
    /// The pressed message was a step of a form, whose text the flow cannot rebuild (the
    /// confirmation lists the answers): a renderer that has the message's own text keeps it,
    /// and `asked` is only the form's title.
    pub keep_shown: bool,
    /// The chosen button's label.
    pub label: &'a str,
}

impl<'a> View<'a> {
    /// The view of `outcome`. `pressed` is the token (callback data, custom id) of the button
    /// whose press caused it, if a button did.
    pub fn of(flow: &'a Flow, outcome: &'a Outcome<'_>, pressed: Option<&str>) -> Self {
        let mut view = View::new(outcome);
        match pressed {
            Some(_) if !outcome.changed => {
                view.toast = Some(
                    outcome
                        .replies
                        .iter()
                        .find_map(|r| match r {
                            Reply::Notice { text, .. } => Some(*text),
                            _ => None,
                        })
                        .unwrap_or_default(),
                );
            }
            Some(token) => view.answered = answered(flow, token),
            None => {}
        }
        view
    }

    /// The view of `outcome` as shown without a press (no toast, no answered mark).
    pub fn new(outcome: &'a Outcome<'_>) -> Self {
        let mut view = View {
            paragraphs: Vec::with_capacity(outcome.replies.len() + 1),
            prompt: None,
            changed: outcome.changed,
            toast: None,
            answered: None,
        };
        for reply in &outcome.replies {
            match reply {
                Reply::Notice { kind, text } => view.push(Part::Notice(*kind), Cow::Borrowed(text)),
                Reply::Say { node, text } => view.push(Part::Say(node), Cow::Borrowed(text)),
                Reply::Handoff => {
                    if let Some(handoff) = outcome.handoff.as_deref() {
                        view.push(Part::Handoff(handoff), Cow::Owned(handoff.message()));
                    }
                }
                Reply::Prompt(prompt) => view.show(prompt),
            }
        }
        view
    }

    /// The view of the prompt a conversation waits at (a re-render of what is on screen).
    pub fn of_prompt(prompt: &'a Prompt<'_>) -> Self {
        let mut view = View {
            paragraphs: Vec::new(),
            prompt: None,
            changed: false,
            toast: None,
            answered: None,
        };
        view.show(prompt);
        view
    }

    /// The toast for a press of a button that belongs to someone else's conversation.
    pub fn foreign_toast(flow: &Flow) -> &str {
        &flow.texts().not_yours
    }

    fn push(&mut self, part: Part<'a>, text: Cow<'a, str>) {
        self.paragraphs.push(Paragraph { part, text });
    }

    fn show(&mut self, prompt: &'a Prompt<'_>) {
        self.push(Part::Prompt(prompt.node), Cow::Borrowed(prompt.text()));
        if let Some(note) = prompt.note() {
            self.push(Part::Note, Cow::Borrowed(note));
        }
        self.prompt = Some(PromptView::of(prompt));
    }
}

/// What the message with the button `token` asked, and the label of that button.
fn answered<'a>(flow: &'a Flow, token: &str) -> Option<Answered<'a>> {
    let token = Token::parse(token)?;
    let node = flow.node(flow.find(token.node)?);
    let label = flow.button_label(&token)?;
    let (asked, keep_shown) = match (token.action, node.kind()) {
        (Action::Resume, _) => (Cow::Borrowed(flow.texts().resume_question.as_str()), false),
        (_, NodeKind::Question(q)) => match q.note() {
            Some(note) => (Cow::Owned(format!("{}\n\n{note}", q.text())), false),
            None => (Cow::Borrowed(q.text()), false),
        },
        (_, NodeKind::Form { .. }) => (Cow::Borrowed(node.text()), true),
        _ => (Cow::Borrowed(node.text()), false),
    };
    Some(Answered { asked, keep_shown, label })
}
