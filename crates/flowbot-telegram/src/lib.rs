//! The Telegram adapter: the flow on Telegram with inline keyboards, over long polling or a
//! webhook, with teloxide's Bot API types over the shared adapter layer.
//!
//! It holds no conversation logic. An update becomes an `Input` for the `Service` (keyed by
//! chat and user, deduplicated by update or callback id); the outcome becomes stored jobs
//! (`render` and [`deliver`]) that the delivery worker sends in order per chat. So:
//!
//! - An update is confirmed once it is safe: the next polling offset once the update is kept in
//!   the store's inbox (handled while fetching goes on, taken up again after a restart), the
//!   webhook's 200 once its step is committed, replies included. A crash loses nothing, and an
//!   update handled again is a duplicate that sends nothing twice.
//! - Sending never holds up receiving: a 429 or a 5xx of one chat waits in that chat's lane.
//!
//! Groups: the bot answers when addressed (a command, a mention of it, or a reply to one of its
//! messages). Each user has their own conversation in a chat, and the bot's messages there reply
//! to the message of the user they belong to. A press by anyone else gets the flow's `not_yours`
//! toast.

mod api;
mod deliver;
mod handle;
mod inbox;
mod lanes;
mod platform;
mod poll;
mod render;

use std::sync::Arc;
use std::time::Duration;

use flowbot_adapter::{RetryPolicy, Secret};
use flowbot_store::Service;
use teloxide::payloads::{GetMe, SetMyCommands};
use teloxide::types::BotCommand;

pub use api::{Api, CallError};
pub use deliver::{HandoffChat, Replies};
pub use platform::Options;
pub use poll::{SECRET_HEADER, WEBHOOK_PATH, default_webhook_secret};
pub use render::LIMITS;
pub use render::{MAX_TEXT, Plan, html, plan, split};

/// The sink name of Telegram's stored replies.
pub const SINK: &str = "telegram";

/// How to reach Telegram.
#[derive(Clone)]
pub struct Config {
    /// The bot token from BotFather. Never logged or shown.
    pub token: Secret,
    /// The Bot API server (default `https://api.telegram.org`): a self-hosted one, or a fake.
    pub api_url: Option<url::Url>,
    /// How long one `getUpdates` waits for updates (below the HTTP client's timeout).
    pub poll_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("token", &self.token)
            .field("api_url", &self.api_url.as_ref().map(url::Url::as_str))
            .field("poll_timeout", &self.poll_timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("telegram {call} failed: {source}")]
    Api { call: &'static str, source: CallError },
    #[error("webhook secret must be 1 to 256 of A-Z a-z 0-9 _ -")]
    BadSecret,
}

/// A running Telegram bot. Cheap to clone.
#[derive(Clone)]
pub struct Telegram {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    service: Arc<Service>,
    bot_id: u64,
    username: String,
    /// Why long polling is not receiving updates now (its last `getUpdates` failed, or it has
    /// not started); `None` while it is. Webhook mode never sets it.
    polling: std::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram").field("username", &self.inner.username).finish_non_exhaustive()
    }
}

impl Telegram {
    /// Whether updates are coming in (`/readyz`): `Err` with the reason while long polling
    /// fails.
    pub fn ready(&self) -> Result<(), String> {
        let polling = self.inner.polling.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match polling.as_ref() {
            None => Ok(()),
            Some(reason) => Err(reason.clone()),
        }
    }

    fn set_polling(&self, state: Option<String>) {
        *self.inner.polling.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// Checks the token (`getMe`) and registers the commands (`setMyCommands`).
    pub async fn connect(config: &Config, service: Arc<Service>) -> Result<Self, Error> {
        let api = Api::new(config.token.expose(), config.api_url.as_ref())
            .map_err(|source| Error::Api { call: "getMe", source })?
            .with_metrics(service.metrics().clone());
        let get_me = GetMe::new();
        let me = RetryPolicy::CALL
            .run("getMe", || api.call(&get_me))
            .await
            .map_err(|source| Error::Api { call: "getMe", source })?;
        let telegram = Telegram {
            inner: Arc::new(Inner {
                api,
                service,
                bot_id: me.user.id.0,
                username: me.user.username.clone().unwrap_or_default(),
                polling: std::sync::Mutex::new(None),
            }),
        };
        telegram.register_commands().await?;
        Ok(telegram)
    }

    /// The bot's username (for `https://t.me/<username>` links).
    pub fn username(&self) -> &str {
        &self.inner.username
    }

    /// The deliverer of this bot's stored replies (the worker's route for [`SINK`]).
    pub fn replies(&self) -> Replies {
        Replies::new(self.inner.api.clone())
    }

    /// A hand-off destination: requests posted to `chat` as plain text.
    pub fn handoff_chat(&self, chat: i64) -> HandoffChat {
        HandoffChat::new(self.inner.api.clone(), chat)
    }

    async fn register_commands(&self) -> Result<(), Error> {
        let texts = self.inner.service.flow().texts().clone();
        let commands = vec![
            BotCommand::new("start", &texts.command_start),
            BotCommand::new("back", &texts.command_back),
            BotCommand::new("restart", &texts.command_restart),
            BotCommand::new("help", &texts.command_help),
        ];
        let api = &self.inner.api;
        let request = SetMyCommands::new(commands);
        RetryPolicy::CALL
            .run("setMyCommands", || api.call(&request))
            .await
            .map(|_| ())
            .map_err(|source| Error::Api { call: "setMyCommands", source })
    }
}
