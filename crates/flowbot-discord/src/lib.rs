//! The Discord adapter: a slash command (default `/gmis`) opens a conversation; each question is
//! a message with one button per answer.
//!
//! Two modes share one handler. The HTTP interactions endpoint (`POST /discord/interactions` on
//! the shared listener) is stateless, for several replicas. The gateway (a serenity `Client`) is
//! the usual choice for one process. Every request to the endpoint must carry a valid Ed25519
//! signature of a recent timestamp (a window of [`SIGNATURE_WINDOW`]), seen only once. Interaction
//! ids are deduplicated through the store.
//!
//! A press is answered at once by updating its message (the answer shown, the buttons
//! disabled). The next question follows as a follow-up message. A stale or forged press, or a
//! press on someone else's conversation, gets an ephemeral notice and changes nothing.

mod render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flowbot_core::{Action, ConversationKey, Input, Token};
use flowbot_store::{Handled, Service, ServiceError, Update, now};
use serenity::all::{
    ActionRowComponent, ApplicationId, AutocompleteChoice, ChannelId, CommandInteraction,
    CommandOptionType, ComponentInteraction, CreateActionRow, CreateAutocompleteResponse,
    CreateCommand, CreateCommandOption, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateMessage,
    CreateModal, GuildId, Http, HttpBuilder, InputTextStyle, Interaction, Message,
    MessageInteractionMetadata, ModalInteraction, ResolvedValue, UserId,
};
use serenity::interactions_endpoint::Verifier;

pub use render::{MAX_CONTENT, content, split};

/// The route of the interactions endpoint on the shared HTTP listener.
pub const INTERACTIONS_PATH: &str = "/discord/interactions";
/// How far a request's signed timestamp may be from now.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(300);

/// How to reach Discord.
#[derive(Clone)]
pub struct Config {
    /// The bot token: the gateway's login, and the follow-ups' authorisation. Never logged.
    pub token: String,
    /// The application's id; asked of Discord at start when not given.
    pub application_id: Option<u64>,
    /// The application's public key (hex), for the interactions endpoint.
    pub public_key: Option<String>,
    /// A base URL standing in for `https://discord.com` (a proxy, or a fake in tests). serenity
    /// uses it only with its rate limiter off, so 429s are then retried here.
    pub api_url: Option<String>,
    /// The slash command's name.
    pub command: String,
    /// Register the command in this guild (at once) instead of globally.
    pub guild: Option<u64>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("token", &"<redacted>")
            .field("application_id", &self.application_id)
            .field("api_url", &self.api_url)
            .field("command", &self.command)
            .field("guild", &self.guild)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DISCORD_PUBLIC_KEY is not a 64-digit hex Ed25519 public key")]
    BadPublicKey,
    #[error("discord: {0}")]
    Api(String),
}

/// An error's text with the token removed.
fn redact(err: &dyn std::fmt::Display, token: &str) -> String {
    let text = err.to_string();
    if token.is_empty() { text } else { text.replace(token, "<token>") }
}

/// A Discord bot. Cheap to clone.
#[derive(Clone)]
pub struct Discord {
    inner: Arc<Inner>,
}

struct Inner {
    http: Arc<Http>,
    /// The proxy the HTTP clients use, if any (the gateway client gets one of its own).
    api_url: Option<String>,
    token: String,
    service: Arc<Service>,
    command: String,
    guild: Option<GuildId>,
    verifier: Option<Verifier>,
    /// Signatures seen within the window (replays are refused).
    seen: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord").field("command", &self.inner.command).finish_non_exhaustive()
    }
}

/// What to answer an interaction with, and what to send after the answer.
struct Answer {
    response: CreateInteractionResponse,
    followups: Vec<CreateInteractionResponseFollowup>,
    token: String,
}

impl Discord {
    /// Prepares the bot; asks Discord for the application id if the configuration has none.
    pub async fn connect(config: &Config, service: Arc<Service>) -> Result<Self, Error> {
        let mut builder = HttpBuilder::new(&config.token);
        if let Some(id) = config.application_id.filter(|id| *id > 0) {
            builder = builder.application_id(ApplicationId::new(id));
        }
        if let Some(url) = &config.api_url {
            builder = builder.proxy(url.trim_end_matches('/')).ratelimiter_disabled(true);
        }
        let verifier = match &config.public_key {
            Some(hex) => Some(
                Verifier::try_new(parse_key(hex).ok_or(Error::BadPublicKey)?)
                    .map_err(|_| Error::BadPublicKey)?,
            ),
            None => None,
        };
        let http = builder.build();
        if http.application_id().is_none() {
            let info = http
                .get_current_application_info()
                .await
                .map_err(|e| Error::Api(redact(&e, &config.token)))?;
            http.set_application_id(info.id);
        }
        Ok(Discord {
            inner: Arc::new(Inner {
                http: Arc::new(http),
                api_url: config.api_url.clone(),
                token: config.token.clone(),
                service,
                command: config.command.clone(),
                guild: config.guild.map(GuildId::new),
                verifier,
                seen: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Registers the slash command, retrying in the background until Discord accepts it.
    /// Interactions that arrive meanwhile are served as usual.
    pub fn register_commands(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            loop {
                match this.try_register().await {
                    Ok(()) => {
                        tracing::info!(command = %this.inner.command, "discord: command registered");
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %this.redact(&err), retry_in_s = wait.as_secs(), "discord: command registration failed");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(300));
                    }
                }
            }
        })
    }

    async fn try_register(&self) -> Result<(), serenity::Error> {
        let flow = self.inner.service.flow();
        let option = CreateCommandOption::new(
            CommandOptionType::String,
            "start",
            truncate(&flow.texts().command_start, 100),
        )
        .required(false)
        .set_autocomplete(true);
        let command = CreateCommand::new(&self.inner.command)
            .description(truncate(&flow.texts().command_start, 100))
            .add_option(option);
        let http = &self.inner.http;
        match self.inner.guild {
            Some(guild) => http.create_guild_commands(guild, &vec![command]).await.map(|_| ()),
            None => http.create_global_commands(&vec![command]).await.map(|_| ()),
        }
    }

    /// The interactions endpoint's route for the shared HTTP listener.
    pub fn interactions_router(&self) -> axum::Router {
        axum::Router::new()
            .route(INTERACTIONS_PATH, axum::routing::post(endpoint))
            .with_state(self.clone())
    }

    /// Answers one interaction (the immediate response and the follow-ups to send after it).
    async fn answer(&self, interaction: Interaction) -> Result<Option<Answer>, ServiceError> {
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
        let update = Update { key: &key, event: Some(&event), input, now: now() };
        let handled =
            self.inner.service.handle(update, |_, outcome| render::render(outcome)).await?;
        let Handled::Done(rendered) = handled else {
            return Ok(Answer {
                response: CreateInteractionResponse::Acknowledge,
                followups: vec![],
                token: command.token.clone(),
            });
        };
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
                return Ok(ephemeral(&flow.texts().not_yours, &press.token));
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
        let max = u16::try_from(field.max_chars()).unwrap_or(4000).min(4000);
        // Required even where "unknown" is allowed: that answer has its own button.
        let input = CreateInputText::new(InputTextStyle::Short, field.label(), "answer")
            .max_length(max)
            .required(true);
        Some(
            CreateModal::new(custom_id, truncate(form.title(), 45))
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
            return Ok(ephemeral(&flow.texts().not_yours, press.token));
        }
        let key = key(press.channel, press.user);
        let event = format!("discord:interaction:{}", press.id);
        let update = Update { key: &key, event: Some(&event), input, now: now() };
        let handled = self
            .inner
            .service
            .handle(update, |flow, outcome| {
                let notice = outcome.replies.iter().find_map(|r| match r {
                    flowbot_core::Reply::Notice { text, .. } => Some((*text).to_owned()),
                    _ => None,
                });
                let chosen = match input {
                    // The answer typed is shown as typed (normalised, it is in what follows).
                    Input::Answer { .. } => None,
                    _ => Token::parse(data).and_then(|t| flow.button_label(&t).map(str::to_owned)),
                };
                (outcome.changed, notice, chosen, render::render(outcome))
            })
            .await?;
        let Handled::Done((changed, notice, chosen, rendered)) = handled else {
            return Ok(Answer {
                response: CreateInteractionResponse::Acknowledge,
                followups: vec![],
                token: press.token.to_owned(),
            });
        };
        if !changed {
            return Ok(ephemeral(&notice.unwrap_or_default(), press.token));
        }
        // The pressed message keeps its question, shows the answer, and its buttons go grey.
        let mut answered = press.message.content.clone();
        if let Some(label) = chosen {
            answered.push_str(&format!("\n\n→ **{}**", content(&label)));
        }
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
            .content(truncate(&answered, MAX_CONTENT))
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
                let title = truncate(&format!("{name} — {}", flow.node(ix).title()), 100);
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

    /// Posts a help-desk hand-off (escaped, split to fit) in `channel`: the Discord
    /// destination of the outbox. The error names what failed, never the text or the token.
    pub async fn send_handoff(&self, channel: u64, text: &str) -> Result<(), String> {
        let http = &self.inner.http;
        let channel = ChannelId::new(channel.max(1));
        for chunk in render::split(&render::content(text)) {
            let message = CreateMessage::new().content(chunk);
            retrying(false, || http.send_message(channel, vec![], &message)).await.map_err(
                |err| match &err {
                    serenity::Error::Http(serenity::all::HttpError::UnsuccessfulRequest(r)) => {
                        format!("create message in channel {channel}: HTTP {}", r.status_code)
                    }
                    _ => format!("create message in channel {channel}: {}", self.redact(&err)),
                },
            )?;
        }
        Ok(())
    }

    /// Sends follow-ups one by one, retrying a 429 after its delay and other failures briefly.
    async fn send_followups(&self, token: &str, followups: Vec<CreateInteractionResponseFollowup>) {
        for followup in followups {
            let http = &self.inner.http;
            // A follow-up can reach Discord before the interaction's own response (they travel
            // separately): its 404 is retried like a rate limit.
            let sent =
                retrying(true, || http.create_followup_message(token, &followup, vec![])).await;
            if let Err(err) = sent {
                tracing::error!(error = %self.redact(&err), "discord: a follow-up could not be sent");
                return;
            }
        }
    }

    /// Runs the gateway until `shutdown`: interactions arrive over the WebSocket.
    pub async fn run_gateway(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), serenity::Error> {
        let handler = GatewayHandler { discord: self.clone() };
        // The client needs an HTTP client of its own, set up like ours (it asks it for the
        // gateway's address, through the same proxy).
        let mut builder = HttpBuilder::new(&self.inner.token);
        if let Some(id) = self.inner.http.application_id() {
            builder = builder.application_id(id);
        }
        if let Some(url) = &self.inner.api_url {
            builder = builder.proxy(url.trim_end_matches('/')).ratelimiter_disabled(true);
        }
        let mut client = serenity::all::ClientBuilder::new_with_http(
            builder.build(),
            serenity::all::GatewayIntents::empty(),
        )
        .event_handler(handler)
        .await?;
        let manager = client.shard_manager.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            manager.shutdown_all().await;
        });
        client.start().await
    }

    fn redact(&self, err: &dyn std::fmt::Display) -> String {
        redact(err, &self.inner.token)
    }

    fn check_signature(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(verifier) = &self.inner.verifier else { return false };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(signature), Some(timestamp)) =
            (header("x-signature-ed25519"), header("x-signature-timestamp"))
        else {
            return false;
        };
        let Ok(at) = timestamp.parse::<i64>() else { return false };
        let now = i64::try_from(now().0 / 1000).unwrap_or(i64::MAX);
        let window = i64::try_from(SIGNATURE_WINDOW.as_secs()).unwrap_or(300);
        if (now - at).abs() > window || verifier.verify(signature, timestamp, body).is_err() {
            return false;
        }
        let mut seen = self.inner.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, t| (now - *t).abs() <= window);
        seen.insert(signature.to_owned(), at).is_none()
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

fn ephemeral(text: &str, token: &str) -> Answer {
    let message = CreateInteractionResponseMessage::new().content(content(text)).ephemeral(true);
    Answer {
        response: CreateInteractionResponse::Message(message),
        followups: vec![],
        token: token.to_owned(),
    }
}

/// Runs a REST call until it succeeds or fails for good, at most six times: after a 429 a
/// second later (see `retry_after`), after a server or network error with backoff from 100 ms.
async fn retrying<T, F, Fut>(retry_not_found: bool, mut call: F) -> Result<T, serenity::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, serenity::Error>>,
{
    let mut wait = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(err)
                if attempt >= 6 || !(retryable(&err) || retry_not_found && not_found(&err)) =>
            {
                return Err(err);
            }
            Err(err) => {
                tokio::time::sleep(retry_after(&err).unwrap_or(wait)).await;
                wait = (wait * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}

fn not_found(err: &serenity::Error) -> bool {
    matches!(err, serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) if r.status_code.as_u16() == 404)
}

/// A rate limit, a server error or a network failure: worth another try.
fn retryable(err: &serenity::Error) -> bool {
    use serenity::http::HttpError;
    match err {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            r.status_code.as_u16() == 429 || r.status_code.is_server_error()
        }
        serenity::Error::Http(HttpError::Request(_)) => true,
        _ => false,
    }
}

/// How long to wait after a 429. serenity's error does not carry Discord's `retry_after` (its
/// rate limiter, on in production, handles 429s itself); with the limiter off a second is a
/// safe wait for the per-route limits an interaction touches.
fn retry_after(err: &serenity::Error) -> Option<Duration> {
    if let serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(response)) = err
        && response.status_code.as_u16() == 429
    {
        return Some(Duration::from_secs(1));
    }
    None
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn parse_key(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// `POST /discord/interactions`.
async fn endpoint(State(discord): State<Discord>, headers: HeaderMap, body: Bytes) -> Response {
    if !discord.check_signature(&headers, &body) {
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(err) => {
            tracing::warn!(error = %err, "discord: an interaction that does not parse");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    match discord.answer(interaction).await {
        Ok(Some(answer)) => {
            if !answer.followups.is_empty() {
                let discord = discord.clone();
                let (token, followups) = (answer.token.clone(), answer.followups);
                tokio::spawn(async move { discord.send_followups(&token, followups).await });
            }
            Json(answer.response).into_response()
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "discord: interaction not handled");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

struct GatewayHandler {
    discord: Discord,
}

#[serenity::async_trait]
impl serenity::all::EventHandler for GatewayHandler {
    async fn interaction_create(&self, _ctx: serenity::all::Context, interaction: Interaction) {
        let (id, token) = match &interaction {
            Interaction::Command(c) | Interaction::Autocomplete(c) => (c.id, c.token.clone()),
            Interaction::Component(c) => (c.id, c.token.clone()),
            Interaction::Modal(m) => (m.id, m.token.clone()),
            _ => return,
        };
        let answer = match self.discord.answer(interaction).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(error = %err, "discord: interaction not handled");
                return;
            }
        };
        let http = &self.discord.inner.http;
        let answered = retrying(false, || {
            http.create_interaction_response(id, &token, &answer.response, vec![])
        })
        .await;
        if let Err(err) = answered {
            tracing::error!(error = %self.discord.redact(&err), "discord: could not answer an interaction");
            return;
        }
        self.discord.send_followups(&token, answer.followups).await;
    }

    async fn ready(&self, _ctx: serenity::all::Context, ready: serenity::all::Ready) {
        tracing::info!(user = %ready.user.name, "discord: gateway ready");
    }
}
