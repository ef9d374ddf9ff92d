//! The Telegram adapter: the flow on Telegram with inline keyboards, over long polling or a
//! webhook, on teloxide's Bot API client.
//!
//! It holds no conversation logic. An update becomes an `Input` for the `Service` (keyed by
//! chat and user, deduplicated by update or callback id) and the outcome becomes messages
//! (`render`). Two choices differ from teloxide's own dispatching:
//!
//! - Polling confirms a batch of updates (by asking for the next offset) only after every update
//!   in it was handled and committed. A crash means a redelivery, which the store answers as a
//!   duplicate. Nothing is lost.
//! - The webhook answers 200 only after the update was handled. A failure answers 500, so
//!   Telegram delivers the update again.
//!
//! Groups: the bot answers when addressed (a command, a mention of it, or a reply to one of its
//! messages). Each user has their own conversation in a chat, and the bot's messages there reply
//! to the message of the user they belong to. A press by anyone else gets the flow's `not_yours`
//! toast.

mod api;
mod render;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flowbot_core::{ConversationKey, Input};
use flowbot_store::{Handled, Service, ServiceError, Update as StoreUpdate, now};
use sha2::{Digest, Sha256};
use teloxide::Bot;
use teloxide::payloads::{
    AnswerCallbackQuerySetters, EditMessageTextSetters, GetUpdatesSetters, SendMessageSetters,
    SetWebhookSetters,
};
use teloxide::requests::{Request, Requester};
use teloxide::types::{
    AllowedUpdate, BotCommand, CallbackQuery, ChatId, InlineKeyboardButton, InlineKeyboardMarkup,
    LinkPreviewOptions, Message, MessageId, ParseMode, ReplyParameters, Update, UpdateKind,
};
use tokio_util::sync::CancellationToken;

pub use api::redact;
pub use render::{MAX_TEXT, Plan, html, plan, split};

/// The route of the webhook on the shared HTTP listener.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";
/// The header Telegram sends the webhook's secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// How to reach Telegram.
#[derive(Clone)]
pub struct Config {
    /// The bot token from BotFather. Never logged or shown.
    pub token: String,
    /// The Bot API server (default `https://api.telegram.org`): a self-hosted one, or a fake.
    pub api_url: Option<url::Url>,
    /// How long one `getUpdates` waits for updates (below the HTTP client's 17 s).
    pub poll_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("token", &"<redacted>")
            .field("api_url", &self.api_url.as_ref().map(url::Url::as_str))
            .field("poll_timeout", &self.poll_timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("telegram {call} failed: {message}")]
    Api { call: &'static str, message: String },
    #[error("webhook secret must be 1 to 256 of A-Z a-z 0-9 _ -")]
    BadSecret,
}

/// A running Telegram bot. Cheap to clone.
#[derive(Clone)]
pub struct Telegram {
    inner: Arc<Inner>,
}

struct Inner {
    bot: Bot,
    token: String,
    service: Arc<Service>,
    bot_id: u64,
    username: String,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram").field("username", &self.inner.username).finish_non_exhaustive()
    }
}

impl Telegram {
    /// Checks the token (`getMe`) and registers the commands (`setMyCommands`).
    pub async fn connect(config: &Config, service: Arc<Service>) -> Result<Self, Error> {
        let mut bot = Bot::new(&config.token);
        if let Some(url) = &config.api_url {
            bot = bot.set_api_url(url.clone());
        }
        let token = config.token.clone();
        let me = api::with_retries("getMe", &token, || bot.get_me().send())
            .await
            .map_err(|e| Error::Api { call: "getMe", message: redact(&e, &token) })?;
        let telegram = Telegram {
            inner: Arc::new(Inner {
                bot,
                token,
                service,
                bot_id: me.user.id.0,
                username: me.user.username.clone().unwrap_or_default(),
            }),
        };
        telegram.register_commands().await?;
        Ok(telegram)
    }

    /// The bot's username (for `https://t.me/<username>` links).
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    async fn register_commands(&self) -> Result<(), Error> {
        let texts = self.inner.service.flow().texts().clone();
        let commands = vec![
            BotCommand::new("start", &texts.command_start),
            BotCommand::new("back", &texts.command_back),
            BotCommand::new("restart", &texts.command_restart),
            BotCommand::new("help", &texts.command_help),
        ];
        let bot = &self.inner.bot;
        api::with_retries("setMyCommands", &self.inner.token, || {
            bot.set_my_commands(commands.clone()).send()
        })
        .await
        .map(|_| ())
        .map_err(|e| Error::Api { call: "setMyCommands", message: redact(&e, &self.inner.token) })
    }

    /// Long polling until `shutdown`: fetch, handle the whole batch, then confirm it.
    pub async fn poll(
        &self,
        poll_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let bot = &self.inner.bot;
        let token = &self.inner.token;
        api::with_retries("deleteWebhook", token, || bot.delete_webhook().send())
            .await
            .map_err(|e| Error::Api { call: "deleteWebhook", message: redact(&e, token) })?;
        let timeout = u32::try_from(poll_timeout.as_secs()).unwrap_or(10);
        let allowed = vec![
            AllowedUpdate::Message,
            AllowedUpdate::EditedMessage,
            AllowedUpdate::CallbackQuery,
        ];
        let mut offset: i32 = 0;
        tracing::info!(bot = %self.inner.username, "telegram: long polling");
        loop {
            let fetched = tokio::select! {
                () = shutdown.cancelled() => break,
                fetched = api::with_retries("getUpdates", token, || {
                    bot.get_updates().offset(offset).timeout(timeout).allowed_updates(allowed.clone()).send()
                }) => fetched,
            };
            let updates = match fetched {
                Ok(updates) => updates,
                Err(err) => {
                    tracing::warn!(error = %redact(&err, token), "telegram: getUpdates failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let Some(last) = updates.last() else { continue };
            let next = i32::try_from(last.id.0).unwrap_or(i32::MAX).saturating_add(1);
            // Handled to the end even when asked to stop: in-flight updates finish.
            let (count, started) = (updates.len(), std::time::Instant::now());
            let handled = self.handle_batch(updates).await;
            tracing::debug!(
                updates = count,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "telegram: batch handled"
            );
            if handled {
                offset = next;
            } else {
                // The store failed on some update: fetch the same batch again (what was applied
                // is a duplicate the second time).
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        // Confirm what was handled, so that a restart does not see it again.
        if offset > 0 {
            let _ = bot.get_updates().offset(offset).limit(1).timeout(0).send().await;
        }
        tracing::info!("telegram: polling stopped");
        Ok(())
    }

    /// Handles a batch: one chat's updates in order, different chats at once. `false` if an
    /// update could not be handled for a reason worth retrying.
    async fn handle_batch(&self, updates: Vec<Update>) -> bool {
        let mut by_chat: BTreeMap<i64, Vec<Update>> = BTreeMap::new();
        for update in updates {
            let chat = update.chat().map_or(0, |c| c.id.0);
            by_chat.entry(chat).or_default().push(update);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (_, updates) in by_chat {
            let this = self.clone();
            tasks.spawn(async move {
                let mut ok = true;
                for update in updates {
                    ok &= this.handle(update).await.is_ok();
                }
                ok
            });
        }
        let mut all = true;
        while let Some(done) = tasks.join_next().await {
            all &= done.unwrap_or(false);
        }
        all
    }

    /// Registers the webhook with Telegram (`setWebhook`, with the secret token).
    pub async fn set_webhook(&self, url: &url::Url, secret: &str) -> Result<(), Error> {
        if !valid_secret(secret) {
            return Err(Error::BadSecret);
        }
        let bot = &self.inner.bot;
        let token = &self.inner.token;
        let allowed = vec![
            AllowedUpdate::Message,
            AllowedUpdate::EditedMessage,
            AllowedUpdate::CallbackQuery,
        ];
        api::with_retries("setWebhook", token, || {
            bot.set_webhook(url.clone())
                .secret_token(secret.to_owned())
                .allowed_updates(allowed.clone())
                .send()
        })
        .await
        .map(|_| ())
        .map_err(|e| Error::Api { call: "setWebhook", message: redact(&e, token) })
    }

    /// The webhook's route (`POST /telegram/webhook`) for the shared HTTP listener.
    pub fn webhook_router(&self, secret: String) -> axum::Router {
        axum::Router::new()
            .route(WEBHOOK_PATH, post(webhook))
            .with_state(Arc::new(WebhookState { telegram: self.clone(), secret }))
    }

    /// Handles one update. `Err` only when it is worth delivering again (the store failed).
    pub async fn handle(&self, update: Update) -> Result<(), ServiceError> {
        let id = update.id.0;
        match update.kind {
            UpdateKind::Message(message) => self.on_message(id, &message).await,
            UpdateKind::CallbackQuery(query) => self.on_press(&query).await,
            UpdateKind::EditedMessage(m) => {
                // An edit of an answer already given: answering again would apply it twice.
                tracing::debug!(chat = m.chat.id.0, "telegram: ignoring an edited message");
                Ok(())
            }
            UpdateKind::Error(value) => {
                tracing::warn!(update = id, kind = %value.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(",")).unwrap_or_default(), "telegram: update not understood; ignored");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_message(&self, update_id: u32, message: &Message) -> Result<(), ServiceError> {
        let Some(user) = message.from.as_ref().filter(|u| !u.is_bot) else { return Ok(()) };
        let group = !message.chat.is_private();
        let text = message.text().or(message.caption()).unwrap_or_default();
        let text = if group {
            match self.addressed(message, text) {
                Some(text) => text,
                None => return Ok(()),
            }
        } else {
            text.to_owned()
        };
        let key = ConversationKey::new(
            "telegram",
            &message.chat.id.0.to_string(),
            &user.id.0.to_string(),
        );
        let event = format!("telegram:update:{update_id}");
        let update =
            StoreUpdate { key: &key, event: Some(&event), input: Input::Text(&text), now: now() };
        let handled = self
            .inner
            .service
            .handle(update, |flow, outcome| render::plan(flow, outcome, None))
            .await?;
        if let Handled::Done(plan) = handled {
            let reply_to = group.then_some(message.id);
            self.send(message.chat.id, plan.message.as_ref(), reply_to).await;
        }
        Ok(())
    }

    /// The text of a group message meant for the bot (its `@name` removed), or `None`.
    fn addressed(&self, message: &Message, text: &str) -> Option<String> {
        let mention = format!("@{}", self.inner.username);
        let replies_to_bot = message
            .reply_to_message()
            .and_then(|m| m.from.as_ref())
            .is_some_and(|u| u.id.0 == self.inner.bot_id);
        let command = text.strip_prefix('/').map(|c| c.split_whitespace().next().unwrap_or(""));
        let command_for_us = command.is_some_and(|word| match word.split_once('@') {
            Some((_, name)) => name.eq_ignore_ascii_case(&self.inner.username),
            None => true,
        });
        let mentions = !self.inner.username.is_empty() && text.contains(&mention);
        (replies_to_bot || command_for_us || mentions)
            .then(|| text.replace(&mention, "").trim().to_owned())
    }

    async fn on_press(&self, query: &CallbackQuery) -> Result<(), ServiceError> {
        let bot = &self.inner.bot;
        let token = &self.inner.token;
        let answer = |toast: String| async move {
            let r = api::with_retries("answerCallbackQuery", token, || {
                let request = bot.answer_callback_query(query.id.clone());
                if toast.is_empty() { request.send() } else { request.text(toast.clone()).send() }
            })
            .await;
            if let Err(err) = r.as_ref()
                && !api::is_harmless(err)
            {
                tracing::warn!(error = %redact(err, token), "telegram: answerCallbackQuery failed");
            }
        };
        let (Some(data), Some(message)) = (query.data.as_deref(), query.message.as_ref()) else {
            answer(String::new()).await;
            return Ok(());
        };
        let chat = message.chat().id;
        let group = !message.chat().is_private();
        // In a group, the bot's messages reply to their owner's message.
        let owner = message.regular_message().and_then(|m| m.reply_to_message());
        if group && owner.and_then(|o| o.from.as_ref()).is_some_and(|o| o.id != query.from.id) {
            answer(self.inner.service.flow().texts().not_yours.clone()).await;
            return Ok(());
        }
        let key =
            ConversationKey::new("telegram", &chat.0.to_string(), &query.from.id.0.to_string());
        let event = format!("telegram:callback:{}", query.id.0);
        let update =
            StoreUpdate { key: &key, event: Some(&event), input: Input::Press(data), now: now() };
        let handled = self
            .inner
            .service
            .handle(update, |flow, outcome| {
                let shown = message.regular_message().and_then(|m| m.text());
                render::plan(flow, outcome, Some(render::Pressed { data, shown }))
            })
            .await;
        let plan = match handled {
            Ok(Handled::Done(plan)) => plan,
            Ok(Handled::Duplicate) => {
                answer(String::new()).await;
                return Ok(());
            }
            Err(err) => {
                // Stop the spinner anyway; the update will come again.
                answer(String::new()).await;
                return Err(err);
            }
        };
        // The three calls are independent: stop the spinner, mark the answered message, show
        // what comes next. Made at once, a press costs one round trip, not three.
        let mark = async {
            let Some(text) = &plan.answered else { return };
            let result = api::with_retries("editMessageText", token, || {
                bot.edit_message_text(chat, message.id(), text.clone())
                    .parse_mode(ParseMode::Html)
                    .link_preview_options(no_preview())
                    .send()
            })
            .await;
            if let Err(err) = result.as_ref()
                && !api::is_harmless(err)
            {
                tracing::warn!(chat = chat.0, error = %redact(err, token), "telegram: could not mark the answered message");
            }
        };
        let reply_to = if group { owner.map(|o| o.id) } else { None };
        tokio::join!(
            answer(plan.toast.clone()),
            mark,
            self.send(chat, plan.message.as_ref(), reply_to)
        );
        Ok(())
    }

    /// Sends a help-desk hand-off (plain text, split to fit) to `chat`: the Telegram
    /// destination of the outbox. The error names what failed, never the text or the token.
    pub async fn send_handoff(&self, chat: i64, text: &str) -> Result<(), String> {
        let bot = &self.inner.bot;
        let token = &self.inner.token;
        for chunk in render::split(text) {
            api::with_retries("sendMessage", token, || {
                bot.send_message(ChatId(chat), chunk.clone())
                    .link_preview_options(no_preview())
                    .send()
            })
            .await
            .map_err(|err| format!("sendMessage to chat {chat}: {}", redact_kind(&err, token)))?;
        }
        Ok(())
    }

    /// Sends a rendered message (its chunks, the keyboard on the last); failures are logged.
    async fn send(
        &self,
        chat: ChatId,
        message: Option<&render::Outgoing>,
        reply_to: Option<MessageId>,
    ) {
        let Some(message) = message else { return };
        let bot = &self.inner.bot;
        let token = &self.inner.token;
        let last = message.chunks.len().saturating_sub(1);
        for (i, chunk) in message.chunks.iter().enumerate() {
            let keyboard = (i == last && !message.keyboard.is_empty()).then(|| {
                InlineKeyboardMarkup::new(message.keyboard.iter().map(|row| {
                    row.iter()
                        .map(|(label, data)| {
                            InlineKeyboardButton::callback(label.clone(), data.clone())
                        })
                        .collect::<Vec<_>>()
                }))
            });
            let result = api::with_retries("sendMessage", token, || {
                let mut request = bot
                    .send_message(chat, chunk.clone())
                    .parse_mode(ParseMode::Html)
                    .link_preview_options(no_preview());
                if let Some(keyboard) = &keyboard {
                    request = request.reply_markup(keyboard.clone());
                }
                if let Some(to) = reply_to.filter(|_| i == 0) {
                    request = request
                        .reply_parameters(ReplyParameters::new(to).allow_sending_without_reply());
                }
                request.send()
            })
            .await;
            if let Err(err) = result {
                tracing::error!(chat = chat.0, error = %redact(&err, token), "telegram: a reply could not be sent");
                return;
            }
        }
    }
}

/// An API error reduced to its kind: Telegram's description may quote the message sent.
fn redact_kind(err: &teloxide::RequestError, token: &str) -> String {
    match err {
        teloxide::RequestError::Api(_) => "refused by the Bot API".to_owned(),
        teloxide::RequestError::RetryAfter(s) => format!("rate limited ({}s)", s.seconds()),
        other => redact(other, token),
    }
}

fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

struct WebhookState {
    telegram: Telegram,
    secret: String,
}

/// `POST /telegram/webhook`: 401 without the right secret; 200 once handled; 500 to be retried.
async fn webhook(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    if !constant_time_eq(given, state.secret.as_bytes()) {
        return StatusCode::UNAUTHORIZED;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(err) => {
            // Delivering it again would not make it readable.
            tracing::warn!(error = %err, "telegram webhook: body is not an update; ignored");
            return StatusCode::OK;
        }
    };
    match state.telegram.handle(update).await {
        Ok(()) => StatusCode::OK,
        Err(err) => {
            tracing::error!(error = %err, "telegram webhook: update not handled; Telegram will send it again");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_secret(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The webhook secret to use when none is configured: derived from the token, so every replica
/// of one bot agrees on it without another setting, and the token cannot be read back from it.
pub fn default_webhook_secret(token: &str) -> String {
    let digest = Sha256::digest(format!("flowbot telegram webhook secret\0{token}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        let s = default_webhook_secret("123:ABC");
        assert!(valid_secret(&s));
        assert!(!s.contains("ABC"));
        assert_ne!(s, default_webhook_secret("123:ABD"));
        assert!(!valid_secret("a b"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
