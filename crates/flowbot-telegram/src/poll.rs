//! Receiving updates: long polling and the webhook. Long polling confirms an update once it is
//! kept in the store's inbox (see `inbox`), the webhook once its step, replies included, is
//! committed; neither waits for a reply to be sent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flowbot_adapter::RetryPolicy;
use sha2::{Digest, Sha256};
use teloxide::payloads::{
    DeleteWebhook, GetUpdates, GetUpdatesSetters, SetWebhook, SetWebhookSetters,
};
use teloxide::types::{AllowedUpdate, Update};
use tokio_util::sync::CancellationToken;

use serde_json::value::RawValue;

use crate::inbox::Inbox;
use crate::lanes::Lanes;
use crate::{Error, Telegram};

/// The route of the webhook on the shared HTTP listener.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";
/// The header Telegram sends the webhook's secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

fn allowed() -> Vec<AllowedUpdate> {
    vec![AllowedUpdate::Message, AllowedUpdate::EditedMessage, AllowedUpdate::CallbackQuery]
}

/// The most updates handed to lanes and not committed yet: beyond it, fetching waits (what is
/// not fetched waits at Telegram, unconfirmed), so a flood or a stalled database cannot grow
/// memory without bound.
const MAX_IN_FLIGHT: usize = 2_000;

impl Telegram {
    /// Long polling until `shutdown`, through the durable inbox: each fetch's new updates go to
    /// their chats' lanes (each chat in order, chats at once) and into the store in one write
    /// (with the keys of the updates handled meanwhile, to forget), and the next fetch, which
    /// confirms them to Telegram, waits only for that write: not for any chat, nor for replies,
    /// which the delivery worker sends. Updates kept from before a restart (confirmed, not
    /// handled) are handled first.
    pub async fn poll(
        &self,
        poll_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let api = &self.inner.api;
        let delete = DeleteWebhook::new();
        RetryPolicy::CALL.run("deleteWebhook", || api.call(&delete)).await.map_err(|source| {
            self.set_polling(Some(format!("long polling could not start: {source}")));
            Error::Api { call: "deleteWebhook", source }
        })?;
        let timeout = u32::try_from(poll_timeout.as_secs()).unwrap_or(10);
        let lanes = Lanes::new(self.clone(), shutdown.clone());
        let mut inbox = Inbox::new(self.clone());
        inbox.take_up(&lanes, &shutdown).await;
        tracing::info!(bot = %self.inner.username, "telegram: long polling");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = lanes.room_for(MAX_IN_FLIGHT) => {}
            }
            let request = GetUpdates::new()
                .offset(inbox.offset())
                .timeout(timeout)
                .allowed_updates(allowed());
            let fetched = tokio::select! {
                () = shutdown.cancelled() => break,
                fetched = RetryPolicy::CALL.run("getUpdates", || api.call_as::<_, Vec<Box<RawValue>>>(&request)) => fetched,
            };
            match fetched {
                Ok(updates) => {
                    self.set_polling(None);
                    let new = inbox.dispatch(&updates, &lanes);
                    tracing::debug!(updates = updates.len(), new, "telegram: fetched");
                }
                Err(err) => {
                    // The error names the call and the status, never the token.
                    self.set_polling(Some(format!("getUpdates failed: {err}")));
                    tracing::warn!(error = %err, "telegram: getUpdates failed; trying again");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
            if let Err(err) = inbox.keep(&lanes).await {
                // Not confirmed: Telegram keeps the updates, and the next write tries again.
                tracing::warn!(error = %err, "telegram: fetched updates not kept; trying again");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        // Committed to the end even when asked to stop: in-flight updates finish. Then forget
        // what was handled and confirm what is kept, so that a restart does not see it again.
        lanes.drain().await;
        if let Err(err) = inbox.keep(&lanes).await {
            tracing::warn!(error = %err, "telegram: handled updates not forgotten; a restart skips them as duplicates");
        }
        let offset = inbox.offset();
        if offset > 0 {
            let confirm = GetUpdates::new().offset(offset).limit(1).timeout(0);
            let _ = api.call(&confirm).await;
        }
        tracing::info!("telegram: polling stopped");
        Ok(())
    }

    /// Registers the webhook with Telegram (`setWebhook`, with the secret token).
    pub async fn set_webhook(&self, url: &url::Url, secret: &str) -> Result<(), Error> {
        if !valid_secret(secret) {
            return Err(Error::BadSecret);
        }
        let request =
            SetWebhook::new(url.clone()).secret_token(secret.to_owned()).allowed_updates(allowed());
        let api = &self.inner.api;
        RetryPolicy::CALL
            .run("setWebhook", || api.call(&request))
            .await
            .map(|_| ())
            .map_err(|source| Error::Api { call: "setWebhook", source })
    }

    /// The webhook's route (`POST /telegram/webhook`) for the shared HTTP listener.
    pub fn webhook_router(&self, secret: String) -> axum::Router {
        axum::Router::new()
            .route(WEBHOOK_PATH, post(webhook))
            .with_state(Arc::new(WebhookState { telegram: self.clone(), secret }))
    }
}

struct WebhookState {
    telegram: Telegram,
    secret: String,
}

/// `POST /telegram/webhook`: 401 without the right secret; 200 once committed; 500 to be
/// retried.
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
    match state.telegram.handle(&update).await {
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
