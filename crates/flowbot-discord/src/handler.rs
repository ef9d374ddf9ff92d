//! The shared handler of both modes: an interaction → an update for the service → an
//! [`Answer`] (the interaction's response, made at once), with what follows the answer stored
//! in the step's transaction (see [`crate::deliver`]).

use flowbot_adapter::truncate;
use flowbot_core::{Action, ConversationKey, Input, Token, View};
use flowbot_store::{Handled, Planned, ServiceError, Update};
use serenity::all::{
    ActionRowComponent, AutocompleteChoice, ButtonKind, CommandInteraction, ComponentInteraction,
    CreateActionRow, CreateAutocompleteResponse, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseMessage, CreateModal, InputTextStyle, Interaction, Message,
    MessageInteractionMetadata, ModalInteraction, ResolvedValue, UserId,
};

use crate::deliver::{Job, Rows, lane, outgoing};
use crate::render::{self, content};
use crate::{Discord, MAX_CONTENT, SINK};

/// An autocomplete choice's name, in characters.
const CHOICE_NAME_MAX: usize = 100;

/// How the answer reaches Discord, which decides what is stored beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The HTTP response's body: it cannot fail on our side.
    Endpoint,
    /// A REST call after the step: its content is stored too ([`Job::Response`]), in case it
    /// fails.
    Gateway,
}

/// What to answer an interaction with.
pub(crate) struct Answer {
    pub(crate) response: CreateInteractionResponse,
    /// Whether the step stored a [`Job::Response`] for this answer (gateway mode).
    pub(crate) stored: bool,
}

impl Answer {
    fn now(response: CreateInteractionResponse) -> Self {
        Answer { response, stored: false }
    }
}

/// The answer a step plans: a message (the command's first chunk), an update of the pressed
/// message, or an ephemeral notice.
enum Now {
    Message(String, Rows),
    Update(String, Rows),
    Notice(String),
}

impl Discord {
    /// Answers one interaction: the immediate response; the follow-ups are stored.
    pub(crate) async fn answer(
        &self,
        interaction: Interaction,
        mode: Mode,
    ) -> Result<Option<Answer>, ServiceError> {
        match interaction {
            Interaction::Ping(_) => Ok(Some(Answer::now(CreateInteractionResponse::Pong))),
            Interaction::Command(command) => self.on_command(&command, mode).await.map(Some),
            Interaction::Component(component) => self.on_press(&component, mode).await.map(Some),
            Interaction::Modal(modal) => self.on_modal(&modal, mode).await.map(Some),
            Interaction::Autocomplete(auto) => Ok(Some(self.on_autocomplete(&auto))),
            _ => Ok(None),
        }
    }

    async fn on_command(
        &self,
        command: &CommandInteraction,
        mode: Mode,
    ) -> Result<Answer, ServiceError> {
        let flow = self.inner.service.flow();
        if command.data.name != self.inner.command {
            return Ok(ephemeral(&flow.texts().unknown_command));
        }
        let entry = command.data.options().into_iter().find(|o| o.name == "start").and_then(|o| {
            match o.value {
                ResolvedValue::String(s) => Some(s.to_owned()),
                ResolvedValue::Autocomplete { value, .. } => Some(value.to_owned()),
                _ => None,
            }
        });
        let channel = command.channel_id.get();
        let key = key(channel, command.user.id);
        let lane = lane(channel, command.user.id.get());
        let event = format!("discord:interaction:{}", command.id);
        let input = Input::Start { entry: entry.as_deref().filter(|e| !e.is_empty()) };
        let update = Update { key: &key, event: Some(&event), input, now: self.inner.clock.now() };
        let token = command.token.as_str();
        let handled = self
            .inner
            .service
            .handle_planned(update, |_, outcome| {
                let rendered = render::render(outcome);
                let mut parts = parts(&rendered).into_iter();
                let (first, rows) = parts.next().unwrap_or_default();
                let mut jobs = Vec::new();
                if mode == Mode::Gateway {
                    jobs.push(Job::Response {
                        token: token.to_owned(),
                        channel,
                        edit: None,
                        content: first.clone(),
                        rows: rows.clone(),
                    });
                }
                jobs.extend(parts.map(|(content, rows)| followup(token, channel, content, rows)));
                Planned::new(Now::Message(first, rows), outgoing(&lane, jobs))
            })
            .await?;
        Ok(answer_of(handled, mode))
    }

    async fn on_press(
        &self,
        press: &ComponentInteraction,
        mode: Mode,
    ) -> Result<Answer, ServiceError> {
        let data = press.data.custom_id.as_str();
        // A form field's input button opens a text box (a modal) for the answer; the answer
        // comes back as a modal submission. Whether the button is still current is the
        // engine's to judge when the answer arrives.
        if let Some(token) = Token::parse(data).filter(|t| matches!(t.action, Action::Field(_)))
            && let Some(modal) = self.modal(&token, data)
        {
            if self.foreign(&press.message, press.user.id) {
                let flow = self.inner.service.flow();
                return Ok(ephemeral(View::foreign_toast(&flow)));
            }
            return Ok(Answer::now(CreateInteractionResponse::Modal(modal)));
        }
        let on = Pressed {
            message: &press.message,
            user: press.user.id,
            channel: press.channel_id.get(),
            id: press.id.get(),
            token: &press.token,
        };
        self.on_button(on, data, Input::Press(data), mode).await
    }

    /// A modal's answer to a form field: applied like a press of the button that opened it.
    async fn on_modal(&self, modal: &ModalInteraction, mode: Mode) -> Result<Answer, ServiceError> {
        let flow = self.inner.service.flow();
        let data = modal.data.custom_id.as_str();
        let text = modal
            .data
            .components
            .iter()
            .flat_map(|row| &row.components)
            .find_map(|c| match c {
                ActionRowComponent::InputText(input) => input.value.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let Some(message) = modal.message.as_deref() else {
            return Ok(ephemeral(&flow.texts().stale));
        };
        let on = Pressed {
            message,
            user: modal.user.id,
            channel: modal.channel_id.get(),
            id: modal.id.get(),
            token: &modal.token,
        };
        self.on_button(on, data, Input::Answer { token: data, text: &text }, mode).await
    }

    /// The text box for a form field's input button; `None` if the token names no field.
    fn modal(&self, token: &Token<'_>, custom_id: &str) -> Option<CreateModal> {
        let flow = self.inner.service.flow();
        let (form, field) = flow.input_field(token)?;
        let limits = render::LIMITS;
        let max = field.max_chars().min(limits.input);
        let label = truncate(field.label(), limits.modal_label);
        // Required even where "unknown" is allowed: that answer has its own button.
        let input = CreateInputText::new(InputTextStyle::Short, label, "answer")
            .max_length(u16::try_from(max).unwrap_or(u16::MAX))
            .required(true);
        Some(
            CreateModal::new(custom_id, truncate(form.title(), limits.modal_title))
                .components(vec![CreateActionRow::InputText(input)]),
        )
    }

    /// Whether `message` belongs to someone other than `user` (its interaction's user).
    fn foreign(&self, message: &Message, user: UserId) -> bool {
        let owner = match message.interaction_metadata.as_deref() {
            Some(MessageInteractionMetadata::Command(m)) => Some(m.user.id),
            Some(MessageInteractionMetadata::Component(m)) => Some(m.user.id),
            Some(MessageInteractionMetadata::ModalSubmit(m)) => Some(m.user.id),
            _ => None,
        };
        owner.is_some_and(|o| o != user)
    }

    /// A press (or a modal's answer) on one of the bot's messages: the pressed message shows
    /// the answer with its buttons disabled, and what comes next is stored as follow-ups.
    async fn on_button(
        &self,
        press: Pressed<'_>,
        data: &str,
        input: Input<'_>,
        mode: Mode,
    ) -> Result<Answer, ServiceError> {
        let flow = self.inner.service.flow();
        if self.foreign(press.message, press.user) {
            return Ok(ephemeral(View::foreign_toast(&flow)));
        }
        let key = key(press.channel, press.user);
        let lane = lane(press.channel, press.user.get());
        let event = format!("discord:interaction:{}", press.id);
        let update = Update { key: &key, event: Some(&event), input, now: self.inner.clock.now() };
        let old_rows = old_rows(press.message);
        let handled = self
            .inner
            .service
            .handle_planned(update, |flow, outcome| {
                let mut rendered = render::render_press(flow, outcome, data);
                if let Input::Answer { .. } = input {
                    // The answer typed is shown as typed (normalised, it is in what follows).
                    rendered.chosen = None;
                }
                // A press that changed nothing (stale, forged) gets its notice and nothing
                // else, unless the current question was never delivered: then that
                // question again, as a follow-up.
                if let Some(toast) = &rendered.toast {
                    let again = parts(&render::render(outcome))
                        .into_iter()
                        .map(|(content, rows)| followup(press.token, press.channel, content, rows))
                        .collect();
                    return Planned {
                        now: Now::Notice(toast.clone()),
                        later: Vec::new(),
                        reshow: outgoing(&lane, again),
                    };
                }
                // The pressed message keeps its question, shows the answer, and its buttons
                // go grey.
                let answered = match &rendered.chosen {
                    Some(label) => render::answered(&press.message.content, label),
                    None => truncate(&press.message.content, MAX_CONTENT),
                };
                let mut jobs = Vec::new();
                if mode == Mode::Gateway {
                    jobs.push(Job::Response {
                        token: press.token.to_owned(),
                        channel: press.channel,
                        edit: Some(press.message.id.get()),
                        content: answered.clone(),
                        rows: old_rows.clone(),
                    });
                }
                jobs.extend(
                    parts(&rendered)
                        .into_iter()
                        .map(|(content, rows)| followup(press.token, press.channel, content, rows)),
                );
                Planned::new(Now::Update(answered, old_rows.clone()), outgoing(&lane, jobs))
            })
            .await?;
        Ok(answer_of(handled, mode))
    }

    fn on_autocomplete(&self, auto: &CommandInteraction) -> Answer {
        let flow = self.inner.service.flow();
        let typed = auto.data.autocomplete().map(|a| a.value.to_owned()).unwrap_or_default();
        let choices: Vec<AutocompleteChoice> = flow
            .entries()
            .filter(|(name, _)| name.starts_with(typed.as_str()))
            .take(25)
            .map(|(name, ix)| {
                let title =
                    truncate(&format!("{name} — {}", flow.node(ix).title()), CHOICE_NAME_MAX);
                AutocompleteChoice::new(title, name)
            })
            .collect();
        Answer::now(CreateInteractionResponse::Autocomplete(
            CreateAutocompleteResponse::new().set_choices(choices),
        ))
    }
}

/// The parts of a press (a component or a modal interaction) `on_button` needs.
#[derive(Debug, Clone, Copy)]
struct Pressed<'a> {
    message: &'a Message,
    user: UserId,
    channel: u64,
    id: u64,
    token: &'a str,
}

fn key(channel: u64, user: UserId) -> ConversationKey {
    ConversationKey::new(SINK, &channel.to_string(), &user.get().to_string())
}

/// The buttons a pressed message showed, as rows of `(label, custom_id, is_choice)`.
fn old_rows(message: &Message) -> Rows {
    message
        .components
        .iter()
        .map(|row| {
            row.components
                .iter()
                .filter_map(|c| match c {
                    ActionRowComponent::Button(b) => match &b.data {
                        ButtonKind::NonLink { custom_id, .. } => {
                            Some((b.label.clone().unwrap_or_default(), custom_id.clone(), true))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// The messages of a rendered outcome: each chunk's content, with the buttons on the last.
fn parts(rendered: &render::Rendered) -> Vec<(String, Rows)> {
    let last = rendered.chunks.len().saturating_sub(1);
    rendered
        .chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let rows = if i == last { rendered.rows.clone() } else { Vec::new() };
            (chunk.clone(), rows)
        })
        .collect()
}

fn followup(token: &str, channel: u64, content: String, rows: Rows) -> Job {
    Job::Followup { token: token.to_owned(), channel, content, rows }
}

/// The answer to send now for a handled step. A duplicate (a redelivered interaction) is only
/// acknowledged, and stores nothing.
fn answer_of(handled: Handled<flowbot_store::Delivered<Now>>, mode: Mode) -> Answer {
    let Handled::Done(done) = handled else {
        return Answer::now(CreateInteractionResponse::Acknowledge);
    };
    let stored = mode == Mode::Gateway;
    match done.now {
        Now::Message(text, rows) => Answer {
            response: CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new()
                    .content(text)
                    .components(render::action_rows(&rows, false)),
            ),
            stored,
        },
        Now::Update(text, rows) => Answer {
            response: CreateInteractionResponse::UpdateMessage(
                CreateInteractionResponseMessage::new()
                    .content(text)
                    .components(render::action_rows(&rows, true)),
            ),
            stored,
        },
        Now::Notice(text) => ephemeral(&text),
    }
}

/// An ephemeral notice of plain `text`.
fn ephemeral(text: &str) -> Answer {
    let message = CreateInteractionResponseMessage::new().content(content(text)).ephemeral(true);
    Answer::now(CreateInteractionResponse::Message(message))
}
