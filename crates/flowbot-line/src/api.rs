//! The Messaging API client: `reply`, `push` (with `X-Line-Retry-Key`) and the bot's own info,
//! over reqwest, and what a refusal means for the one retry policy.
//!
//! A refusal is reduced to its kind ([`Refusal`]): LINE's 429 has several causes told apart by
//! the body's `message` (a rate or concurrency limit, worth another try after a pause; the
//! monthly message quota, not worth one), a reply token that is used or expired is a 400 with
//! "Invalid reply token", and a push already accepted under its retry key is a 409. Errors name
//! the call, the status and that kind only: never the channel token, nor what was sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flowbot_adapter::{Classify, Secret, Verdict};
use flowbot_store::Metrics;
use serde_json::{Value, json};

use crate::SINK;

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why LINE refused a call, as far as retrying goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400 "Invalid reply token": used already, or expired.
    InvalidReplyToken,
    /// 429 for a rate or concurrency limit: try again after a pause.
    RateLimit,
    /// 429 for the monthly message quota (or the cap on additional messages): not before the
    /// month turns.
    Quota,
    /// 409 for a push whose retry key was accepted before: delivered.
    Accepted,
    /// Anything else.
    Other,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Refusal::InvalidReplyToken => "invalid reply token",
            Refusal::RateLimit => "rate limit",
            Refusal::Quota => "monthly message quota used up",
            Refusal::Accepted => "already accepted",
            Refusal::Other => "refused",
        }
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer: no connection, a timeout, a broken response.
    #[error("line {call}: {kind}")]
    Network { call: &'static str, kind: &'static str },
    /// An answer other than success.
    #[error("line {call}: HTTP {status} ({})", refusal.name())]
    Status { call: &'static str, status: u16, refusal: Refusal },
}

impl CallError {
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            CallError::Status { refusal, .. } => Some(*refusal),
            CallError::Network { .. } => None,
        }
    }
}

impl Classify for CallError {
    /// No answer, a 5xx and a rate limit: back off; the quota and any other refusal: final.
    fn verdict(&self) -> Verdict {
        match self {
            CallError::Network { .. } => Verdict::Backoff,
            CallError::Status { refusal: Refusal::RateLimit, .. } => Verdict::Backoff,
            CallError::Status { status, .. } if *status >= 500 => Verdict::Backoff,
            CallError::Status { .. } => Verdict::GiveUp,
        }
    }
}

/// The kind of a refusal, from its status and body.
pub fn refusal(status: u16, body: &[u8]) -> Refusal {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b["message"].as_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    match status {
        409 => Refusal::Accepted,
        429 if message.contains("monthly") || message.contains("additional message") => {
            Refusal::Quota
        }
        429 => Refusal::RateLimit,
        400 if message.contains("reply token") => Refusal::InvalidReplyToken,
        _ => Refusal::Other,
    }
}

/// The Messaging API, as one channel. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: url::Url,
    token: Secret,
    metrics: Option<Arc<Metrics>>,
    /// The quota's refusal is logged once per process (it repeats until the month turns).
    quota_logged: Arc<AtomicBool>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(token: Secret, base: url::Url) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|_| "cannot build the HTTP client".to_owned())?;
        Ok(Api { client, base, token, metrics: None, quota_logged: Arc::default() })
    }

    /// Counts every call in `metrics`, and the quota's refusals.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// `POST /v2/bot/message/reply`: up to five messages with an event's reply token (free).
    pub async fn reply(&self, reply_token: &str, messages: &[Value]) -> Result<(), CallError> {
        let body = json!({ "replyToken": reply_token, "messages": messages });
        self.post("reply", "/v2/bot/message/reply", &body, None).await
    }

    /// `POST /v2/bot/message/push` to a user, group or room, with its retry key: a 409 (the key
    /// was accepted before) is a success.
    pub async fn push(
        &self,
        to: &str,
        messages: &[Value],
        retry_key: &str,
    ) -> Result<(), CallError> {
        let body = json!({ "to": to, "messages": messages });
        match self.post("push", "/v2/bot/message/push", &body, Some(retry_key)).await {
            Err(err) if err.refusal() == Some(Refusal::Accepted) => Ok(()),
            Err(err) if err.refusal() == Some(Refusal::Quota) => {
                self.quota_refused();
                Err(err)
            }
            other => other,
        }
    }

    /// `GET /v2/bot/info`: the bot's user id and basic id (checks the token at start).
    pub async fn bot_info(&self) -> Result<BotInfo, CallError> {
        const CALL: &str = "info";
        let response =
            self.client.get(self.url("/v2/bot/info")).bearer_auth(self.token.expose()).send().await;
        let response = self.answered(CALL, response)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| network(CALL, &e))?;
        if status != 200 {
            return Err(CallError::Status { call: CALL, status, refusal: refusal(status, &body) });
        }
        let info: Value = serde_json::from_slice(&body)
            .map_err(|_| CallError::Network { call: CALL, kind: "unexpected answer" })?;
        Ok(BotInfo {
            user_id: info["userId"].as_str().unwrap_or_default().to_owned(),
            basic_id: info["basicId"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn post(
        &self,
        call: &'static str,
        path: &str,
        body: &Value,
        retry_key: Option<&str>,
    ) -> Result<(), CallError> {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(self.token.expose())
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = retry_key {
            request = request.header("x-line-retry-key", key);
        }
        let response = self.answered(call, request.send().await)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let request_id = response
            .headers()
            .get("x-line-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.bytes().await.unwrap_or_default();
        let refusal = refusal(status, &body);
        if refusal != Refusal::Accepted {
            tracing::debug!(call, status, request_id, kind = refusal.name(), "line: call refused");
        }
        Err(CallError::Status { call, status, refusal })
    }

    /// The response, or the failure reduced to its kind; the call counted either way.
    fn answered(
        &self,
        call: &'static str,
        response: reqwest::Result<reqwest::Response>,
    ) -> Result<reqwest::Response, CallError> {
        let status = response.as_ref().ok().map(|r| r.status().as_u16());
        if let Some(metrics) = &self.metrics {
            metrics.api_call(SINK, call, status);
        }
        response.map_err(|e| network(call, &e))
    }

    /// The monthly quota refused a push: counted every time, logged once.
    fn quota_refused(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.quota_exhausted(SINK);
        }
        if !self.quota_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "line: the account's monthly message quota is used up; pushes are not sent until \
                 the month turns (replies still are). See README, \"Running it on LINE\"."
            );
        }
    }
}

/// What `GET /v2/bot/info` says about the bot.
#[derive(Debug, Clone, Default)]
pub struct BotInfo {
    pub user_id: String,
    /// `@xxxx`.
    pub basic_id: String,
}

fn network(call: &'static str, err: &reqwest::Error) -> CallError {
    CallError::Network { call, kind: flowbot_adapter::transport_failure(err) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_their_body() {
        let body = |m: &str| json!({ "message": m }).to_string().into_bytes();
        assert_eq!(refusal(429, &body("You have reached your monthly limit.")), Refusal::Quota);
        assert_eq!(
            refusal(429, &body("The API rate limit has been exceeded. Try again later.")),
            Refusal::RateLimit
        );
        assert_eq!(refusal(429, b"<html>"), Refusal::RateLimit);
        assert_eq!(refusal(400, &body("Invalid reply token")), Refusal::InvalidReplyToken);
        assert_eq!(refusal(400, &body("The request body has 1 error(s)")), Refusal::Other);
        assert_eq!(refusal(409, b""), Refusal::Accepted);
        let status = |status, refusal| CallError::Status { call: "push", status, refusal };
        assert_eq!(status(429, Refusal::RateLimit).verdict(), Verdict::Backoff);
        assert_eq!(status(429, Refusal::Quota).verdict(), Verdict::GiveUp);
        assert_eq!(status(500, Refusal::Other).verdict(), Verdict::Backoff);
        assert_eq!(status(400, Refusal::Other).verdict(), Verdict::GiveUp);
        assert_eq!(
            status(429, Refusal::Quota).to_string(),
            "line push: HTTP 429 (monthly message quota used up)"
        );
    }
}
