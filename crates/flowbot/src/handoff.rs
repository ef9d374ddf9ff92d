//! Help-desk destinations for the delivery worker: a signed HTTP webhook, a Telegram chat, a
//! Discord channel, a mailbox (`flowbot_mail`), a LINE WORKS channel (`flowbot_lineworks`); and
//! starting the worker with the routes the configuration names.
//!
//! A webhook receives the request's JSON (`type: flowbot.handoff`) as the body of a POST with
//! `X-Flowbot-Timestamp` (Unix seconds), `X-Flowbot-Reference`, and
//! `X-Flowbot-Signature: sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` under the shared
//! secret. Any 2xx is a delivery; anything else is retried.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_adapter::{Deliver, Failed, Route, Running, Secret, Verdict, Worker};
use flowbot_core::{Clock, Queued};
use flowbot_store::Service;
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
    secret: Secret,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish_non_exhaustive()
    }
}

#[async_trait]
impl Deliver for Webhook {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let Some(request) = &item.request else {
            return Err(Failed::new(Verdict::GiveUp, "not a hand-off request"));
        };
        let timestamp = self.clock.now().0 / 1000;
        let body = request.payload.as_bytes().to_vec();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-flowbot-timestamp", timestamp.to_string())
            .header("x-flowbot-reference", &request.reference)
            .header(
                "x-flowbot-signature",
                signature(self.secret.expose().as_bytes(), timestamp, &body),
            )
            .body(body)
            .send()
            .await
            // Only the kind of failure: reqwest's messages carry the URL, which is configuration
            // (no personal data), but keep them short.
            .map_err(|err| {
                let kind = flowbot_adapter::transport_failure(&err);
                Failed::new(Verdict::Backoff, format!("POST {}: {kind}", self.url))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // A desk's endpoint may refuse for a while (misconfigured, restarting): every refusal
        // is retried, with the hand-off's long pauses.
        Err(Failed::new(Verdict::Backoff, format!("POST {}: HTTP {}", self.url, status.as_u16())))
    }
}

/// The worker's routes for every configured destination, or which destination cannot be
/// served here: a webhook, a mailbox or LINE WORKS anywhere, a chat only where its platform is
/// `running`.
pub fn routes(
    config: &Config,
    running: &[(&'static str, Arc<dyn Running>)],
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Routes> {
    let client = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build()?;
    let route = config.handoff_route();
    let mut routes = Routes::new();
    for d in &config.handoff.destinations {
        let sink: Arc<dyn Deliver> = match (d, d.platform_target()) {
            (Destination::Webhook { url, .. }, _) => Arc::new(Webhook {
                url: url.clone(),
                // Checked present when the configuration loaded.
                secret: Secret::new(d.secret().unwrap_or_default()),
                client: client.clone(),
                clock: clock.clone(),
            }),
            (Destination::Mail { .. }, _) => {
                let settings = d.mail().unwrap_or_else(|| unreachable!());
                let mail = flowbot_mail::Mail::new(settings).map_err(|err| {
                    anyhow::anyhow!("the hand-off destination `{}`: {err}", d.name())
                })?;
                Arc::new(mail)
            }
            (Destination::Lineworks { .. }, _) => {
                // The secret and the key were checked when the configuration loaded.
                let Some(settings) = d.lineworks() else {
                    anyhow::bail!("the hand-off destination `{}` is incomplete", d.name())
                };
                let sink = flowbot_lineworks::Lineworks::new(settings).map_err(|err| {
                    anyhow::anyhow!("the hand-off destination `{}`: {err}", d.name())
                })?;
                Arc::new(sink)
            }
            (_, Some((kind, target))) => {
                let platform = running.iter().find(|(name, _)| *name == kind);
                match platform.and_then(|(_, p)| p.handoff(&target)) {
                    Some(sink) => sink,
                    None => anyhow::bail!(
                        "the hand-off destination `{}` is on {kind}, and {kind} is not running here",
                        d.name()
                    ),
                }
            }
            (_, None) => anyhow::bail!("the hand-off destination `{}` has no target", d.name()),
        };
        routes.insert(d.sink(), (sink, route));
    }
    Ok(routes)
}

/// The worker's routes, by sink name.
pub type Routes = HashMap<String, (Arc<dyn Deliver>, Route)>;

/// A running delivery worker.
#[derive(Debug)]
pub struct Started {
    pub worker: Arc<Worker>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts delivering the service's stored items for `routes` (replies of the running
/// platforms, hand-off destinations); `None` when there is nothing to deliver.
pub fn start(
    service: &Service,
    config: &Config,
    routes: Routes,
    shutdown: tokio_util::sync::CancellationToken,
) -> Option<Started> {
    if routes.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = routes.keys().map(String::as_str).collect();
    names.sort_unstable();
    tracing::info!(sinks = ?names, "delivery: sending stored replies and requests");
    service.serve(&names);
    let worker = Arc::new(
        Worker::new(
            service.store().clone(),
            routes,
            config.worker_options(),
            service.mailbox(),
            service.clock(),
            service.owner().to_owned(),
        )
        .with_metrics(service.metrics().clone()),
    );
    let task = tokio::spawn(worker.clone().run(shutdown));
    Some(Started { worker, task })
}

/// Starts delivering hand-off requests from a command that runs no messenger (`chat --user`,
/// `pipe`), when every destination can be served without one.
pub fn start_handoff(
    service: &Service,
    config: &Config,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<Started>> {
    let routes = routes(config, &[], &service.clock())?;
    Ok(start(service, config, routes, shutdown))
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
