//! The webhook, `POST /line/webhook`: the `X-Line-Signature` checked on the raw body before
//! anything is parsed (401 without it), then each event handled in order and the 200 given
//! once their steps are committed, or after [`ANSWER_WITHIN`] with the steps still going on
//! (LINE wants an answer within 2 s; a step commits well within that, and one that does not
//! still finishes).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use ring::hmac;
use serde::Deserialize;
use serde_json::Value;

use crate::Line;

/// The route of the webhook on the shared HTTP listener.
pub const WEBHOOK_PATH: &str = "/line/webhook";
/// The header with the body's signature.
pub const SIGNATURE_HEADER: &str = "x-line-signature";
/// How long the webhook waits for its events' steps before it answers anyway.
const ANSWER_WITHIN: Duration = Duration::from_millis(1500);

/// The Base64 HMAC-SHA256 of `body` under the channel secret: what `X-Line-Signature` holds.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, body).as_ref())
}

/// Whether `header` is the signature of `body` under `secret` (compared in constant time).
pub fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(decoded) =
        header.and_then(|h| base64::engine::general_purpose::STANDARD.decode(h.trim()).ok())
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, body, &decoded).is_ok()
}

/// The envelope: only `events` is read, each event on its own (one that does not parse is
/// skipped, not the batch).
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    events: Vec<Value>,
}

impl Line {
    /// The webhook's route for the shared HTTP listener.
    pub fn webhook_router(&self) -> axum::Router {
        axum::Router::new()
            .route(WEBHOOK_PATH, axum::routing::post(webhook))
            .with_state(self.clone())
    }
}

async fn webhook(State(line): State<Line>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !verify(line.inner.secret.expose(), &body, header) {
        return StatusCode::UNAUTHORIZED;
    }
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(_) => {
            tracing::warn!("line: a signed webhook body that is not JSON; ignored");
            return StatusCode::BAD_REQUEST;
        }
    };
    if envelope.events.is_empty() {
        // The console's "Verify".
        return StatusCode::OK;
    }
    let task = tokio::spawn(async move {
        for event in envelope.events {
            line.handle(event).await?;
        }
        Ok::<(), flowbot_store::ServiceError>(())
    });
    match tokio::time::timeout(ANSWER_WITHIN, task).await {
        Ok(Ok(Ok(()))) => StatusCode::OK,
        Ok(Ok(Err(err))) => {
            // Not committed: a redelivery (if the channel has it on) tries again.
            tracing::error!(error = %err, "line: event not handled");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Ok(Err(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        Err(_) => {
            tracing::debug!("line: events still being handled; answered");
            StatusCode::OK
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_base64_hmac_sha256_of_the_body() {
        // Python: base64.b64encode(hmac.new(b'secret', b'{"events":[]}', 'sha256').digest())
        let body = br#"{"events":[]}"#;
        let sig = signature("secret", body);
        assert_eq!(sig, "pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=");
        assert!(verify("secret", body, Some(&sig)));
        assert!(!verify("other", body, Some(&sig)));
        assert!(!verify("secret", br#"{"events":[] }"#, Some(&sig)));
        assert!(!verify("secret", body, None));
        assert!(!verify("secret", body, Some("not base64!")));
    }
}
