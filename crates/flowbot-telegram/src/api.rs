//! Bot API calls over our own HTTP client, with teloxide's types: errors classified for the
//! shared retry policy, and error text that never carries the token.
//!
//! teloxide's own client sleeps 10 s before it returns any 5xx (teloxide-core's
//! `DELAY_ON_SERVER_ERROR`), which would hold a chat's lane, or the polling loop, for that long.
//! Here a call is one HTTP request: teloxide's payload types are serialized as teloxide does
//! (JSON, `POST {api}/bot{token}/{Method}`), and the envelope is read back into teloxide's
//! result types.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use flowbot_adapter::{Classify, Scope, Secret, Verdict, transport_failure};
use flowbot_store::Metrics;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use teloxide::requests::Payload;
use tokio::sync::Semaphore;

/// How long a call may take beyond its own long-poll timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The most calls in flight at once (`getUpdates` aside, which never waits for one of them).
/// Each call in flight holds a connection with its buffers, so without a bound a burst (10,000
/// chats answered at once) grows memory with it; the rest wait their turn, in order.
const MAX_CALLS_IN_FLIGHT: usize = 64;

/// A Bot API client for one bot.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    /// `{api}/bot{token}/`: holds the token, so it is a secret too.
    base: Secret,
    token: Secret,
    /// Each method's URL (it holds the token) and its Bot API name, made once: parsing the
    /// URL on every call showed in the load test's profile.
    methods: Arc<RwLock<HashMap<&'static str, Method>>>,
    /// Where each call's outcome is counted (`flowbot_api_calls_total`).
    metrics: Option<Arc<Metrics>>,
    /// Permits for calls in flight ([`MAX_CALLS_IN_FLIGHT`]).
    in_flight: Arc<Semaphore>,
}

/// A method's endpoint, `{api}/bot{token}/{Method}`, and its name for the metrics.
#[derive(Clone)]
struct Method {
    url: reqwest::Url,
    name: Arc<str>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// A failed call. Its `Display` holds no token and no message text.
#[derive(Debug)]
pub enum CallError {
    /// No answer: the connection failed or timed out.
    Network(String),
    /// HTTP 429 (or `error_code` 429): wait this long.
    RetryAfter(Duration),
    /// A 5xx.
    Server(u16),
    /// Refused: the error code and Telegram's description (which names the problem, never
    /// the text sent).
    Api { code: u16, description: String },
    /// An answer that is not a Bot API envelope of the expected type.
    Garbled(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Network(kind) => write!(f, "network error ({kind})"),
            CallError::RetryAfter(d) => write!(f, "rate limited: retry after {} s", d.as_secs()),
            CallError::Server(status) => write!(f, "HTTP {status}"),
            CallError::Api { code, description } => write!(f, "error {code}: {description}"),
            CallError::Garbled(what) => write!(f, "unreadable answer: {what}"),
        }
    }
}

impl std::error::Error for CallError {}

impl Classify for CallError {
    fn verdict(&self) -> Verdict {
        match self {
            // Telegram's limits are per chat (and a global one it reports the same way): the
            // lane waits, the others go on.
            CallError::RetryAfter(d) => Verdict::RetryAfter(*d, Scope::Lane),
            CallError::Network(_) | CallError::Server(_) | CallError::Garbled(_) => {
                Verdict::Backoff
            }
            CallError::Api { .. } => Verdict::GiveUp,
        }
    }
}

impl CallError {
    /// Errors that mean "already so": nothing left to do.
    pub fn is_harmless(&self) -> bool {
        let CallError::Api { code: 400, description } = self else { return false };
        [
            "message is not modified",
            "query is too old",
            "query ID is invalid",
            "message to edit not found",
        ]
        .iter()
        .any(|s| description.contains(s))
    }
}

#[derive(Deserialize)]
struct Envelope<R> {
    ok: bool,
    result: Option<R>,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

impl Api {
    /// A client for the bot with `token` at `api_url` (default `https://api.telegram.org`).
    pub fn new(token: &str, api_url: Option<&url::Url>) -> Result<Self, CallError> {
        let root = api_url.map_or("https://api.telegram.org", url::Url::as_str);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CallError::Network(transport_failure(&e).to_owned()))?;
        Ok(Api {
            client,
            base: Secret::new(format!("{}/bot{token}/", root.trim_end_matches('/'))),
            token: Secret::new(token),
            methods: Arc::default(),
            metrics: None,
            in_flight: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
        })
    }

    /// Counts every call in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Makes one call: `payload` as JSON to its method; the result as teloxide's type.
    pub async fn call<P>(&self, payload: &P) -> Result<P::Output, CallError>
    where
        P: Payload + serde::Serialize,
        P::Output: DeserializeOwned,
    {
        self.counted::<P, P::Output>(payload).await
    }

    /// Makes one call whose result is not needed: it is checked for success, not read into
    /// teloxide's type (a sent message's result is the whole message).
    pub async fn send<P>(&self, payload: &P) -> Result<(), CallError>
    where
        P: Payload + serde::Serialize,
    {
        self.counted::<P, serde::de::IgnoredAny>(payload).await.map(|_| ())
    }

    /// Makes one call and reads its result as `R` rather than teloxide's type (`getUpdates`
    /// as raw updates, each parsed only if new).
    pub async fn call_as<P, R>(&self, payload: &P) -> Result<R, CallError>
    where
        P: Payload + serde::Serialize,
        R: DeserializeOwned,
    {
        self.counted::<P, R>(payload).await
    }

    /// Makes one call of the method teloxide names `name` (`SendMessage`) with a payload
    /// already serialized (a stored reply); its result is checked, not read.
    pub async fn send_json(&self, name: &'static str, body: Vec<u8>) -> Result<(), CallError> {
        self.counted_json::<serde::de::IgnoredAny>(name, body, CALL_TIMEOUT).await.map(|_| ())
    }

    async fn counted<P, R>(&self, payload: &P) -> Result<R, CallError>
    where
        P: Payload + serde::Serialize,
        R: DeserializeOwned,
    {
        let body = serde_json::to_vec(payload).map_err(|e| CallError::Garbled(e.to_string()))?;
        let timeout = CALL_TIMEOUT + payload.timeout_hint().unwrap_or_default();
        self.counted_json::<R>(P::NAME, body, timeout).await
    }

    async fn counted_json<R: DeserializeOwned>(
        &self,
        name: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let method = self.method(name)?;
        // The long poll holds its connection for seconds, and the next fetch must never queue
        // behind replies: it takes no permit.
        let _permit = match name {
            "GetUpdates" => None,
            _ => Some(self.in_flight.acquire().await.expect("the semaphore is never closed")),
        };
        let mut status = None;
        let result = self.exchange::<R>(body, timeout, method.url, &mut status).await;
        if let Some(metrics) = &self.metrics {
            metrics.api_call(crate::SINK, &method.name, status);
        }
        result
    }

    /// The endpoint of the method teloxide names `payload` (`SendMessage`).
    fn method(&self, payload: &'static str) -> Result<Method, CallError> {
        let known =
            self.methods.read().unwrap_or_else(PoisonError::into_inner).get(payload).cloned();
        if let Some(method) = known {
            return Ok(method);
        }
        let url = reqwest::Url::parse(&format!("{}{payload}", self.base.expose()))
            // The parser's error names no part of the URL.
            .map_err(|e| CallError::Garbled(format!("the Bot API URL: {e}")))?;
        let method = Method { url, name: method_name(payload).into() };
        let mut methods = self.methods.write().unwrap_or_else(PoisonError::into_inner);
        methods.insert(payload, method.clone());
        Ok(method)
    }

    async fn exchange<R: DeserializeOwned>(
        &self,
        body: Vec<u8>,
        timeout: Duration,
        url: reqwest::Url,
        status: &mut Option<u16>,
    ) -> Result<R, CallError> {
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Network(transport_failure(&e).to_owned()))?;
        let status = *status.insert(response.status().as_u16());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Network(transport_failure(&e).to_owned()))?;
        let envelope: Envelope<R> = match serde_json::from_slice(&bytes) {
            Ok(envelope) => envelope,
            Err(_) if status >= 500 => return Err(CallError::Server(status)),
            Err(e) => return Err(CallError::Garbled(format!("HTTP {status}: {e}"))),
        };
        if envelope.ok {
            return envelope.result.ok_or_else(|| CallError::Garbled("no result".to_owned()));
        }
        let code = envelope.error_code.unwrap_or(status);
        if let Some(after) = envelope.parameters.and_then(|p| p.retry_after) {
            return Err(CallError::RetryAfter(Duration::from_secs(after)));
        }
        if code == 429 {
            return Err(CallError::RetryAfter(Duration::from_secs(1)));
        }
        if code >= 500 || status >= 500 {
            return Err(CallError::Server(code.max(status)));
        }
        let description = envelope.description.unwrap_or_default();
        Err(CallError::Api { code, description: self.token.redact(&description) })
    }
}

/// The Bot API's name of a method (`sendMessage`) from teloxide's payload name (`SendMessage`).
fn method_name(payload: &str) -> String {
    let mut chars = payload.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_for_the_retry_policy() {
        let limited = CallError::RetryAfter(Duration::from_secs(3));
        assert_eq!(limited.verdict(), Verdict::RetryAfter(Duration::from_secs(3), Scope::Lane));
        assert_eq!(CallError::Server(502).verdict(), Verdict::Backoff);
        assert_eq!(CallError::Network("timed out".into()).verdict(), Verdict::Backoff);
        let refused = CallError::Api {
            code: 403,
            description: "Forbidden: bot was blocked by the user".into(),
        };
        assert_eq!(refused.verdict(), Verdict::GiveUp);
        assert!(!refused.is_harmless());
        let same = CallError::Api {
            code: 400,
            description: "Bad Request: message is not modified: x".into(),
        };
        assert!(same.is_harmless());
    }
}
