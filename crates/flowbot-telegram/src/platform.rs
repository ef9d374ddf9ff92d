//! Telegram as the binary lists it: its settings (flags and environment variables) and the
//! [`Platform`] contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_adapter::{About, Deliver, Link, Platform, PlatformError, Running, Secret};
use flowbot_store::Service;
use tokio_util::sync::CancellationToken;

use crate::{Config, SINK, Telegram, default_webhook_secret};

/// How long one `getUpdates` waits for updates.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// What Telegram is to the binary.
pub const ABOUT: About = About {
    name: SINK,
    limits: &crate::render::LIMITS,
    enable_hint: "TELEGRAM_BOT_TOKEN to run on Telegram",
};

/// Telegram's settings.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(skip)]
pub struct Options {
    /// Telegram: the bot token from BotFather. Prefer the environment variable to the flag.
    #[arg(long, env = "TELEGRAM_BOT_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub telegram_bot_token: Option<Secret>,
    /// Telegram: the Bot API server (default https://api.telegram.org).
    #[arg(long, env = "TELEGRAM_API_URL", value_name = "URL")]
    pub telegram_api_url: Option<url::Url>,
    /// Telegram: receive updates by webhook at this public URL (it must reach
    /// `/telegram/webhook` on the listener) instead of long polling.
    #[arg(long, env = "TELEGRAM_WEBHOOK_URL", value_name = "URL")]
    pub telegram_webhook_url: Option<url::Url>,
    /// Telegram: the webhook's secret token (default: derived from the bot token, so every
    /// replica agrees).
    #[arg(long, env = "TELEGRAM_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub telegram_webhook_secret: Option<Secret>,
    /// Telegram links: the bot's username (`flowbot link`).
    #[arg(long = "bot-username", env = "TELEGRAM_BOT_USERNAME", value_name = "NAME")]
    pub bot_username: Option<String>,
}

#[async_trait]
impl Platform for Options {
    fn about(&self) -> &'static About {
        &ABOUT
    }

    fn enabled(&self) -> bool {
        self.telegram_bot_token.as_ref().is_some_and(|t| !t.is_empty())
    }

    async fn start(&self, service: Arc<Service>) -> Result<Arc<dyn Running>, PlatformError> {
        let token = self.telegram_bot_token.clone().unwrap_or_default();
        let config = Config {
            token: token.clone(),
            api_url: self.telegram_api_url.clone(),
            poll_timeout: POLL_TIMEOUT,
        };
        let telegram = Telegram::connect(&config, service).await.map_err(|e| {
            PlatformError::new(format!(
                "cannot start the Telegram bot (is TELEGRAM_BOT_TOKEN right?): {e}"
            ))
        })?;
        tracing::info!(bot = telegram.username(), "telegram: connected");
        let webhook = match &self.telegram_webhook_url {
            Some(url) => {
                let secret = match &self.telegram_webhook_secret {
                    Some(secret) => secret.expose().to_owned(),
                    None => default_webhook_secret(token.expose()),
                };
                telegram.set_webhook(url, &secret).await.map_err(|e| {
                    PlatformError::new(format!("cannot set the Telegram webhook: {e}"))
                })?;
                tracing::info!(url = %url, "telegram: webhook set");
                Some(secret)
            }
            None => None,
        };
        Ok(Arc::new(Started { telegram, webhook }))
    }

    fn link(&self, entry: Option<&str>) -> Result<Link, PlatformError> {
        let name = self
            .bot_username
            .as_deref()
            .map(|n| n.trim_start_matches('@'))
            .ok_or_else(|| {
                PlatformError::new(
                    "a Telegram link needs the bot's username: --bot-username or TELEGRAM_BOT_USERNAME",
                )
            })?;
        if !valid_username(name) {
            return Err(PlatformError::new(format!(
                "`{name}` is not a Telegram bot username (5 to 32 of A-Z a-z 0-9 _, ending in \"bot\")"
            )));
        }
        let url = match entry {
            Some(entry) => format!("https://t.me/{name}?start={entry}"),
            None => format!("https://t.me/{name}"),
        };
        Ok(Link { url, note: None })
    }
}

fn valid_username(name: &str) -> bool {
    (5..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.to_ascii_lowercase().ends_with("bot")
}

/// A started Telegram bot: webhook route or polling task, replies, hand-off chats.
#[derive(Debug)]
struct Started {
    telegram: Telegram,
    /// The webhook's secret, when updates come by webhook.
    webhook: Option<String>,
}

#[async_trait]
impl Running for Started {
    fn routes(&self) -> Option<axum::Router> {
        self.webhook.clone().map(|secret| self.telegram.webhook_router(secret))
    }

    fn replies(&self) -> Option<Arc<dyn Deliver>> {
        Some(Arc::new(self.telegram.replies()))
    }

    fn handoff(&self, chat: &str) -> Option<Arc<dyn Deliver>> {
        Some(match chat.parse() {
            Ok(chat) => Arc::new(self.telegram.handoff_chat(chat)),
            Err(_) => Arc::new(flowbot_adapter::Refuse("not a Telegram chat id")),
        })
    }

    fn ready(&self) -> Result<(), String> {
        if self.webhook.is_some() { Ok(()) } else { self.telegram.ready() }
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), PlatformError> {
        if self.webhook.is_some() {
            shutdown.cancelled().await;
            return Ok(());
        }
        self.telegram
            .poll(POLL_TIMEOUT, shutdown)
            .await
            .map_err(|e| PlatformError::new(format!("telegram: {e}")))
    }
}
