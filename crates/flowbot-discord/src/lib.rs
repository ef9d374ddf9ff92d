//! The Discord adapter: a slash command (default `/gmis`) opens a conversation; each question is
//! a message with one button per answer.
//!
//! Two modes share one handler ([`handler`]: an interaction → the service → an answer). The HTTP
//! interactions endpoint ([`endpoint`]: `POST /discord/interactions` on the shared listener) is
//! stateless, for several replicas; every request must carry a valid Ed25519 signature of a
//! recent timestamp (a window of [`SIGNATURE_WINDOW`]), seen only once. The gateway
//! ([`gateway`]: a serenity `Client`) is the usual choice for one process. REST calls
//! ([`api`]: the gateway's answers, hand-off messages, the command registration) go through the
//! shared retry policy. Interaction ids are deduplicated through the store.
//!
//! A press is answered at once by updating its message (the answer shown, the buttons
//! disabled). The next question follows as a follow-up message, stored with the step and sent
//! by the delivery worker ([`deliver`]: sink [`SINK`], [`Discord::replies`]), in order per
//! conversation, so that a crash or an outage delays it and never loses it. A stale or forged
//! press, or a press on someone else's conversation, gets an ephemeral notice and changes
//! nothing.

mod api;
mod deliver;
mod endpoint;
mod gateway;
mod handler;
mod platform;
mod render;

use std::sync::Arc;

use flowbot_adapter::{Secret, parse_hex};
use flowbot_core::Clock;
use flowbot_store::Service;
use serenity::all::{ApplicationId, GuildId, Http, HttpBuilder};
use serenity::interactions_endpoint::Verifier;

pub use deliver::Replies;
pub use endpoint::{INTERACTIONS_PATH, SIGNATURE_WINDOW};
pub use platform::Options;
pub use render::LIMITS;
pub use render::{MAX_CONTENT, content};
pub use render::{chunks, plain_chunks};

/// The sink name of Discord's stored replies (the delivery worker's route for [`Replies`]),
/// and the platform of its conversation keys.
pub const SINK: &str = "discord";

/// How to reach Discord.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bot token: the gateway's login, and the follow-ups' authorisation. Never printed.
    pub token: Secret,
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
    /// The time signature windows (and the conversations' updates) are measured by: the
    /// service's (`Service::clock`), or a test clock.
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DISCORD_PUBLIC_KEY is not a 64-digit hex Ed25519 public key")]
    BadPublicKey,
    #[error("discord: {0}")]
    Api(String),
}

/// A Discord bot. Cheap to clone.
#[derive(Clone)]
pub struct Discord {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord").field("command", &self.inner.command).finish_non_exhaustive()
    }
}

struct Inner {
    http: Arc<Http>,
    /// The proxy the HTTP clients use, if any (the gateway client gets one of its own).
    api_url: Option<String>,
    token: Secret,
    service: Arc<Service>,
    command: String,
    guild: Option<GuildId>,
    clock: Arc<dyn Clock>,
    /// The interactions endpoint's signature check; `None` (no public key) refuses every request.
    signatures: Option<endpoint::Signatures>,
    /// How this process's gateway answers went, for the stored replies behind them.
    responses: Arc<deliver::Responses>,
}

impl Discord {
    /// Prepares the bot; asks Discord for the application id if the configuration has none.
    pub async fn connect(config: &Config, service: Arc<Service>) -> Result<Self, Error> {
        let clock = config.clock.clone();
        let signatures = match &config.public_key {
            Some(hex) => {
                let key = parse_hex::<32>(hex).ok_or(Error::BadPublicKey)?;
                let verifier = Verifier::try_new(key).map_err(|_| Error::BadPublicKey)?;
                Some(endpoint::Signatures::new(verifier, clock.clone()))
            }
            None => None,
        };
        let http = http_builder(
            &config.token,
            config.application_id.filter(|id| *id > 0).map(ApplicationId::new),
            config.api_url.as_deref(),
        )
        .build();
        if http.application_id().is_none() {
            let info = http
                .get_current_application_info()
                .await
                .map_err(|e| Error::Api(config.token.redact(&e)))?;
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
                clock,
                signatures,
                responses: Arc::default(),
            }),
        })
    }

    /// The deliverer of this bot's stored replies: the delivery worker's route for [`SINK`].
    pub fn replies(&self) -> Replies {
        let inner = &self.inner;
        Replies::new(
            inner.http.clone(),
            inner.token.clone(),
            inner.clock.clone(),
            inner.responses.clone(),
            inner.service.metrics().clone(),
        )
    }
}

/// serenity's HTTP client set up for `token`: behind `api_url` (a proxy, or a fake) serenity's
/// rate limiter has to be off, and 429s are then retried by [`api`].
fn http_builder(
    token: &Secret,
    application_id: Option<ApplicationId>,
    api_url: Option<&str>,
) -> HttpBuilder {
    let mut builder = HttpBuilder::new(token.expose());
    if let Some(id) = application_id {
        builder = builder.application_id(id);
    }
    if let Some(url) = api_url {
        builder = builder.proxy(url.trim_end_matches('/')).ratelimiter_disabled(true);
    }
    builder
}
