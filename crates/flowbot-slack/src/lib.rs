//! The Slack adapter: in a direct message with the app the bot always answers; in a channel,
//! the slash command (default `/gmis`) or a mention starts a conversation in a thread. Each
//! question is one message with one Block Kit button per answer.
//!
//! Two modes share one handler ([`handler`]: Slack's JSON → the service). Socket Mode
//! ([`socket`]: slack-morphism's client on `apps.connections.open`'s WebSocket) needs no public
//! URL; the HTTP mode ([`endpoint`]: `/slack/events`, `/slack/interactions`,
//! `/slack/commands` on the shared listener) checks every request's signature (slack-morphism's
//! verifier: HMAC-SHA256 of `v0:TIMESTAMP:BODY` within 5 minutes) and refuses a signature seen
//! before. Events, presses, submissions and commands are deduplicated through the store.
//!
//! What a step sends is stored with it and sent by the delivery worker ([`deliver`]: sink
//! [`SINK`]) in order per conversation: a press updates its message (the answer shown, the
//! buttons gone) and the next question follows as a new message. A stale, double, forged or
//! foreign press gets an ephemeral notice and changes nothing. Every Web API call ([`api`])
//! goes through the shared retry policy.

mod api;
mod deliver;
mod endpoint;
mod handler;
mod modal;
mod openings;
mod platform;
mod render;
mod socket;

use std::sync::Arc;

use flowbot_adapter::Secret;
use flowbot_store::Service;

pub use deliver::Replies;
pub use endpoint::{COMMANDS_PATH, EVENTS_PATH, INTERACTIONS_PATH};
pub use platform::{ABOUT, Options};
pub use render::{LIMITS, MAX_TEXT, chunks, mrkdwn};

/// The sink of Slack's stored replies, and the platform of its conversation keys.
pub const SINK: &str = "slack";

/// How to reach Slack.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bot token (`xoxb-…`): every Web API call. Never printed.
    pub bot_token: Secret,
    /// The app-level token (`xapp-…`): Socket Mode.
    pub app_token: Option<Secret>,
    /// The signing secret: the HTTP endpoints.
    pub signing_secret: Option<Secret>,
    /// A base URL standing in for `https://slack.com/api` (a proxy, or a fake in tests).
    pub api_url: Option<String>,
    /// The slash command's name, without the `/`.
    pub command: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("slack: cannot set up the HTTP client: {0}")]
    Client(std::io::Error),
}

/// A Slack bot. Cheap to clone.
#[derive(Clone)]
pub struct Slack {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Slack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slack").field("command", &self.inner.command).finish_non_exhaustive()
    }
}

struct Inner {
    api: api::Api,
    service: Arc<Service>,
    command: String,
    app_token: Option<Secret>,
    /// The endpoints' signature check; `None` (no signing secret) refuses every request.
    signatures: Option<endpoint::Signatures>,
    /// Conversations being opened in a channel (their first question posted, the start not
    /// committed yet).
    openings: openings::Openings,
}

impl Slack {
    /// Prepares the bot (nothing is asked of Slack yet).
    pub fn new(config: &Config, service: Arc<Service>) -> Result<Self, Error> {
        let api =
            api::Api::new(config.api_url.as_deref(), &config.bot_token, service.metrics().clone())
                .map_err(Error::Client)?;
        Ok(Slack {
            inner: Arc::new(Inner {
                api,
                service,
                command: config.command.trim_start_matches('/').to_owned(),
                app_token: config.app_token.clone(),
                signatures: config.signing_secret.as_ref().map(endpoint::Signatures::new),
                openings: openings::Openings::default(),
            }),
        })
    }

    /// The deliverer of this bot's stored replies: the delivery worker's route for [`SINK`].
    pub fn replies(&self) -> Replies {
        Replies::new(self.inner.api.clone())
    }

    /// Posts a help-desk hand-off (or a completion notice) in `target`: a channel (`C…`), a
    /// conversation's thread (`C…:TS`) or a direct message (`D…`, or a user `U…`). The error
    /// names what failed, never the text or the token.
    pub async fn send_handoff(&self, target: &str, text: &str) -> Result<(), String> {
        let (channel, thread) = render::place(target);
        for chunk in render::chunks(text) {
            let blocks = serde_json::Value::Array(vec![render::section(&chunk)]);
            self.inner
                .api
                .post(flowbot_adapter::RetryPolicy::CALL, channel, thread, &chunk, &blocks)
                .await
                .map_err(|err| format!("chat.postMessage in {channel}: {err}"))?;
        }
        Ok(())
    }
}
