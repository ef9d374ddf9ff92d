//! Help-desk destinations for the outbox: a signed HTTP webhook, a Telegram chat, a Discord
//! channel; and starting the outbox with the ones the configuration names.
//!
//! A webhook receives the request's JSON (`type: flowbot.handoff`) as the body of a POST with
//! `X-Flowbot-Timestamp` (Unix seconds), `X-Flowbot-Reference`, and
//! `X-Flowbot-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` under the shared
//! secret. Any 2xx is a delivery; anything else is retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::Delivery;
use flowbot_discord::Discord;
use flowbot_store::{Outbox, Service, Sink};
use flowbot_telegram::Telegram;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Config, Destination};

/// How long one webhook call may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

struct Webhook {
    url: String,
    secret: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for Webhook {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        let timestamp = flowbot_store::now().0 / 1000;
        let body = delivery.payload.as_bytes().to_vec();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-flowbot-timestamp", timestamp.to_string())
            .header("x-flowbot-reference", &delivery.reference)
            .header("x-flowbot-signature", signature(self.secret.as_bytes(), timestamp, &body))
            .body(body)
            .send()
            .await
            // Only the kind of failure: reqwest's messages carry the URL, which is configuration
            // (no personal data), but keep them short.
            .map_err(|err| {
                let kind = if err.is_timeout() {
                    "timed out"
                } else if err.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                format!("POST {}: {kind}", self.url)
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: HTTP {}", self.url, status.as_u16()))
        }
    }
}

#[derive(Debug)]
struct TelegramChat {
    telegram: Telegram,
    chat: i64,
}

#[async_trait]
impl Sink for TelegramChat {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        self.telegram.send_handoff(self.chat, &delivery.text).await
    }
}

#[derive(Debug)]
struct DiscordChannel {
    discord: Discord,
    channel: u64,
}

#[async_trait]
impl Sink for DiscordChannel {
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String> {
        self.discord.send_handoff(self.channel, &delivery.text).await
    }
}

/// The running messengers a destination may need.
#[derive(Debug, Default, Clone)]
pub struct Messengers {
    pub telegram: Option<Telegram>,
    pub discord: Option<Discord>,
}

/// A sink for every configured destination, or which destination cannot be served here.
fn sinks(
    config: &Config,
    messengers: &Messengers,
) -> anyhow::Result<HashMap<String, Arc<dyn Sink>>> {
    let client = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build()?;
    let mut sinks: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    for d in &config.handoff.destinations {
        let sink: Arc<dyn Sink> = match d {
            Destination::Webhook { url, .. } => Arc::new(Webhook {
                url: url.clone(),
                // Checked present when the configuration loaded.
                secret: d.secret().unwrap_or_default(),
                client: client.clone(),
            }),
            Destination::Telegram { chat_id, .. } => match &messengers.telegram {
                Some(telegram) => {
                    Arc::new(TelegramChat { telegram: telegram.clone(), chat: *chat_id })
                }
                None => anyhow::bail!(
                    "the hand-off destination `{}` is a Telegram chat, and Telegram is not running (set TELEGRAM_BOT_TOKEN)",
                    d.name()
                ),
            },
            Destination::Discord { channel_id, .. } => match &messengers.discord {
                Some(discord) => {
                    Arc::new(DiscordChannel { discord: discord.clone(), channel: *channel_id })
                }
                None => anyhow::bail!(
                    "the hand-off destination `{}` is a Discord channel, and Discord is not running (set DISCORD_TOKEN)",
                    d.name()
                ),
            },
        };
        sinks.insert(d.name().to_owned(), sink);
    }
    Ok(sinks)
}

/// A running outbox.
#[derive(Debug)]
pub struct Started {
    pub outbox: Arc<Outbox>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts delivering the service's hand-off requests, if the configuration has destinations.
/// Fails if a destination needs a messenger that is not running.
pub fn start(
    service: &Service,
    config: &Config,
    messengers: &Messengers,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<Started>> {
    if config.handoff.destinations.is_empty() {
        return Ok(None);
    }
    let sinks = sinks(config, messengers)?;
    let outbox = Arc::new(Outbox::new(
        service.store().clone(),
        sinks,
        config.outbox_options(),
        service.outbox_signal(),
    ));
    let names: Vec<&str> = config.handoff.destinations.iter().map(Destination::name).collect();
    tracing::info!(destinations = ?names, "hand-off: delivering requests");
    let task = tokio::spawn({
        let outbox = outbox.clone();
        async move { outbox.run(shutdown).await }
    });
    Ok(Some(Started { outbox, task }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b'Jefe', b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, br#"{"a":1}"#),
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
        assert_ne!(signature(b"k", 1, b"x"), signature(b"k", 2, b"x"));
    }
}
