//! The HTTP mode on the shared listener: `POST /slack/events` (the Events API, with its
//! `url_verification` challenge), `/slack/interactions` (presses, modal submissions) and
//! `/slack/commands` (the slash command). Every request's signature is checked by
//! slack-morphism's verifier (HMAC-SHA256 of `v0:TIMESTAMP:BODY`, a timestamp within 5
//! minutes), and a signature seen before is refused ([`Replays`]): refused requests get 401
//! and change nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flowbot_adapter::{Replays, Secret};
use serde_json::{Map, Value, json};
use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

use crate::Slack;

pub const EVENTS_PATH: &str = "/slack/events";
pub const INTERACTIONS_PATH: &str = "/slack/interactions";
pub const COMMANDS_PATH: &str = "/slack/commands";
/// How far a request's signed timestamp may be from now (slack-morphism's window).
const WINDOW: Duration =
    Duration::from_secs(SlackEventSignatureVerifier::MAX_TIMESTAMP_AGE_SECONDS as u64);

/// The endpoints' signature check: slack-morphism's verifier, and the shared replay memory.
pub(crate) struct Signatures {
    verifier: SlackEventSignatureVerifier,
    replays: Replays,
}

impl Signatures {
    pub(crate) fn new(secret: &Secret) -> Self {
        let secret = SlackSigningSecret::new(secret.expose().to_owned());
        Signatures {
            verifier: SlackEventSignatureVerifier::new(&secret),
            replays: Replays::new(WINDOW, flowbot_adapter::replay::MAX_REMEMBERED),
        }
    }

    /// Whether a request with these headers and `body` is genuine, recent and new; remembers
    /// its signature if so. (The verifier measures the window on the system clock, so does
    /// the memory.)
    fn check(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(signature), Some(timestamp)) = (
            header(SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER),
            header(SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP),
        ) else {
            return false;
        };
        let (Ok(body), Ok(at)) = (std::str::from_utf8(body), timestamp.parse::<i64>()) else {
            return false;
        };
        if self.verifier.verify(signature, body, timestamp).is_err() {
            return false;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.replays.fresh(signature, at, i64::try_from(now).unwrap_or(i64::MAX))
    }
}

impl Slack {
    /// The HTTP mode's routes for the shared listener.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(EVENTS_PATH, axum::routing::post(events))
            .route(INTERACTIONS_PATH, axum::routing::post(interactions))
            .route(COMMANDS_PATH, axum::routing::post(commands))
            .with_state(self.clone())
    }

    fn signed(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        self.inner.signatures.as_ref().is_some_and(|s| s.check(headers, body))
    }
}

fn refused() -> Response {
    (StatusCode::UNAUTHORIZED, "invalid request signature").into_response()
}

/// A form-encoded body as a JSON object of its fields.
fn form(body: &[u8]) -> Value {
    let fields: Map<String, Value> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(fields)
}

/// `POST /slack/events`.
async fn events(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if !slack.signed(&headers, &body) {
        return refused();
    }
    let Ok(callback) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match callback.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge = callback.get("challenge").cloned().unwrap_or_default();
            Json(json!({ "challenge": challenge })).into_response()
        }
        Some("event_callback") => match slack.on_event(&callback).await {
            Ok(()) => StatusCode::OK.into_response(),
            Err(err) => {
                // Not acknowledged: Slack delivers it again.
                tracing::error!(error = %err, "slack: event not handled");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        },
        _ => StatusCode::OK.into_response(),
    }
}

/// `POST /slack/interactions`: `payload=<json>`.
async fn interactions(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if !slack.signed(&headers, &body) {
        return refused();
    }
    let payload = form(&body)
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| serde_json::from_str::<Value>(p).ok());
    let Some(payload) = payload else { return StatusCode::BAD_REQUEST.into_response() };
    match slack.on_interaction(&payload).await {
        Ok(Some(response)) => Json(response).into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "slack: interaction not handled");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `POST /slack/commands`: the command's form fields.
async fn commands(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    if !slack.signed(&headers, &body) {
        return refused();
    }
    match slack.on_command(&form(&body)).await {
        Ok(Some(text)) => Json(json!({"response_type": "ephemeral", "text": crate::mrkdwn(&text)}))
            .into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "slack: command not handled");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
