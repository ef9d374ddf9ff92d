//! The shared handler of both modes: an interaction → an update for the service → an
//! [`Answer`] (the interaction's response and the follow-ups to send after it).

use flowbot_adapter::truncate;
use flowbot_core::{Action, ConversationKey, Input, Token, View};
use flowbot_store::{Handled, ServiceError, Update};
use serenity::all::{
    ActionRowComponent, AutocompleteChoice, CommandInteraction, ComponentInteraction,
    CreateActionRow, CreateAutocompleteResponse, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateModal,
    InputTextStyle, Interaction, Message, MessageInteractionMetadata, ModalInteraction,
    ResolvedValue, UserId,
};

use crate::render::{self, content};
use crate::{Discord, MAX_CONTENT};

/// An autocomplete choice's name, in characters.
const CHOICE_NAME_MAX: usize = 100;

/// What to answer an interaction with, and what to send after the answer.
pub(crate) struct Answer {
    pub(crate) response: CreateInteractionResponse,
    pub(crate) followups: Vec<CreateInteractionResponseFollowup>,
    /// The interaction's token, which the follow-ups are sent with.
    pub(crate) token: String,
}

impl Discord {
    /// Answers one interaction (the immediate response and the follow-ups to send after it).
    pub(crate) async fn answer(
        &self,
        interaction: Interaction,
    ) -> Result<Option<Answer>, ServiceError> {
        match interaction {
            Interaction::Ping(_) => Ok(Some(Answer {
                response: CreateInteractionResponse::Pong,
                followups: vec![],
                token: String::new(),
            })),
            Interaction::Command(command) => self.on_command(&command).await.map(Some),
            Interaction::Component(component) => self.on_press(&component).await.map(Some),
            Interaction::Modal(modal) => self.on_modal(&modal).await.map(Some),
            Interaction::Autocomplete(auto) => Ok(Some(self.on_autocomplete(&auto))),
            _ => Ok(None),
        }
    }

    async fn on_command(&self, command: &CommandInteraction) -> Result<Answer, ServiceError> {
        let flow = self.inner.service.flow();
        if command.data.name != self.inner.command {
            return Ok(ephemeral(&flow.texts().unknown_command, &command.token));
        }
        let entry = command.data.options().into_iter().find(|o| o.name == "start").and_then(|o| {
            match o.value {
                ResolvedValue::String(s) => Some(s.to_owned()),
                ResolvedValue::Autocomplete { value, .. } => Some(value.to_owned()),
                _ => None,
            }
        });
        let key = key(command.channel_id.get(), command.user.id);
        let event = format!("discord:interaction:{}", command.id);
        let input = Input::Start { entry: entry.as_deref().filter(|e| !e.is_empty()) };
        let update = Update { key: &key, event: Some(&event), input, now: self.inner.clock.now() };
        let handled =
            self.inner.service.handle(update, |_, outcome| render::render(outcome)).await?;
        // A duplicate (a redelivered interaction) is only acknowledged.
        let Handled::Done(rendered) = handled else { return Ok(acknowledge(&command.token)) };
        let mut parts = parts(&rendered).into_iter();
        let first = parts.next().map(as_response).unwrap_or_default();
        Ok(Answer {
            response: CreateInteractionResponse::Message(first),
            followups: parts.map(as_followup).collect(),
            token: command.token.clone(),
        })
    }

    async fn on_press(&self, press: &ComponentInteraction) -> Result<Answer, ServiceError> {
        let data = press.data.custom_id.as_str();
        // A form field's input button opens a text box (a modal) for the answer; the answer
        // comes back as a modal submission. Whether the button is still current is the
        // engine's to judge when the answer arrives.
        if let Some(token) = Token::parse(data).filter(|t| matches!(t.action, Action::Field(_)))
            && let Some(modal) = self.modal(&token, data)
        {
            if self.foreign(&press.message, press.user.id) {
                let flow = self.inner.service.flow();
                return Ok(ephemeral(View::foreign_toast(&flow), &press.token));
            }
            return Ok(Answer {
                response: CreateInteractionResponse::Modal(modal),
                followups: vec![],
                token: press.token.to_owned(),
            });
        }
        let on = Pressed {
            message: &press.message,
            user: press.user.id,
            channel: press.channel_id.get(),
            id: press.id.get(),
            token: &press.token,
        };
        self.on_button(on, data, Input::Press(data)).await
    }

    /// A modal's answer to a form field: applied like a press of the button that opened it.
    async fn on_modal(&self, modal: &ModalInteraction) -> Result<Answer, ServiceError> {
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
            return Ok(ephemeral(&flow.texts().stale, &modal.token));
        };
        let on = Pressed {
            message,
            user: modal.user.id,
            channel: modal.channel_id.get(),
            id: modal.id.get(),
            token: &modal.token,
        };
        self.on_button(on, data, Input::Answer { token: data, text: &text }).await
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
    /// the answer with its buttons disabled, and what comes next goes out as follow-ups.
    async fn on_button(
        &self,
        press: Pressed<'_>,
        data: &str,
        input: Input<'_>,
    ) -> Result<Answer, ServiceError> {
        let flow = self.inner.service.flow();
        if self.foreign(press.message, press.user) {
            return Ok(ephemeral(View::foreign_toast(&flow), press.token));
        }
        let key = key(press.channel, press.user);
        let event = format!("discord:interaction:{}", press.id);
        let update = Update { key: &key, event: Some(&event), input, now: self.inner.clock.now() };
        let handled = self
            .inner
            .service
            .handle(update, |flow, outcome| {
                let mut rendered = render::render_press(flow, outcome, data);
                if let Input::Answer { .. } = input {
                    // The answer typed is shown as typed (normalised, it is in what follows).
                    rendered.chosen = None;
                }
                rendered
            })
            .await?;
        // A duplicate (a redelivered interaction) is only acknowledged.
        let Handled::Done(rendered) = handled else { return Ok(acknowledge(press.token)) };
        // A press that changed nothing (stale, forged) gets its notice and nothing else.
        if let Some(toast) = &rendered.toast {
            return Ok(ephemeral(toast, press.token));
        }
        // The pressed message keeps its question, shows the answer, and its buttons go grey.
        let answered = match &rendered.chosen {
            Some(label) => render::answered(&press.message.content, label),
            None => truncate(&press.message.content, MAX_CONTENT),
        };
        let old_rows: Vec<Vec<(String, String, bool)>> = press
            .message
            .components
            .iter()
            .map(|row| {
                row.components
                    .iter()
                    .filter_map(|c| match c {
                        serenity::all::ActionRowComponent::Button(b) => {
                            let id = match &b.data {
                                serenity::all::ButtonKind::NonLink { custom_id, .. } => {
                                    custom_id.clone()
                                }
                                _ => return None,
                            };
                            Some((b.label.clone().unwrap_or_default(), id, true))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let update = CreateInteractionResponseMessage::new()
            .content(answered)
            .components(render::action_rows(&old_rows, true));
        let followups = parts(&rendered).into_iter().map(as_followup).collect();
        Ok(Answer {
            response: CreateInteractionResponse::UpdateMessage(update),
            followups,
            token: press.token.to_owned(),
        })
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
        Answer {
            response: CreateInteractionResponse::Autocomplete(
                CreateAutocompleteResponse::new().set_choices(choices),
            ),
            followups: vec![],
            token: auto.token.clone(),
        }
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
    ConversationKey::new("discord", &channel.to_string(), &user.get().to_string())
}

/// The messages of a rendered outcome: each chunk's content, with the buttons on the last.
fn parts(rendered: &render::Rendered) -> Vec<(String, Vec<serenity::all::CreateActionRow>)> {
    let last = rendered.chunks.len().saturating_sub(1);
    rendered
        .chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let rows =
                if i == last { render::action_rows(&rendered.rows, false) } else { Vec::new() };
            (chunk.clone(), rows)
        })
        .collect()
}

fn as_response(
    (content, rows): (String, Vec<serenity::all::CreateActionRow>),
) -> CreateInteractionResponseMessage {
    CreateInteractionResponseMessage::new().content(content).components(rows)
}

fn as_followup(
    (content, rows): (String, Vec<serenity::all::CreateActionRow>),
) -> CreateInteractionResponseFollowup {
    CreateInteractionResponseFollowup::new().content(content).components(rows)
}

fn acknowledge(token: &str) -> Answer {
    Answer {
        response: CreateInteractionResponse::Acknowledge,
        followups: vec![],
        token: token.to_owned(),
    }
}

fn ephemeral(text: &str, token: &str) -> Answer {
    let message = CreateInteractionResponseMessage::new().content(content(text)).ephemeral(true);
    Answer {
        response: CreateInteractionResponse::Message(message),
        followups: vec![],
        token: token.to_owned(),
    }
}
