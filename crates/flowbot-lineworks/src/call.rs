//! One HTTP call to LINE WORKS and what its failure means: [`CallError`], classified for the
//! one retry policy. An error names the endpoint, the HTTP status and LINE WORKS' error code
//! only: never a token, the client secret, or what was sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowbot_adapter::{Classify, Scope, Verdict};
use thiserror::Error;

use crate::key::KeyError;

/// A failed call.
#[derive(Debug, Error)]
pub enum CallError {
    /// No answer: no connection, a timeout, a broken response.
    #[error("{endpoint}: {kind}")]
    Network { endpoint: String, kind: &'static str },
    /// An answer other than success.
    #[error("{endpoint}: HTTP {status}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        /// LINE WORKS' `code` (`UNAUTHORIZED`, `TOO_MANY_REQUESTS`) or OAuth's `error`.
        code: Option<String>,
        /// What a 429's headers say to wait.
        retry_after: Option<Duration>,
    },
    /// A success whose body is not what LINE WORKS sends (no access token).
    #[error("{0}: unexpected answer")]
    Garbled(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl CallError {
    /// reqwest's failure reduced to its kind (its text would repeat the URL and more).
    pub(crate) fn network(endpoint: &str, err: &reqwest::Error) -> Self {
        let kind = flowbot_adapter::transport_failure(err);
        CallError::Network { endpoint: endpoint.to_owned(), kind }
    }

    /// A refused call, from its status, headers and body.
    pub(crate) async fn refused(endpoint: &str, response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = (status == 429).then(|| wait(response.headers())).flatten();
        let body = response.bytes().await.unwrap_or_default();
        CallError::Status { endpoint: endpoint.to_owned(), status, code: code(&body), retry_after }
    }

    /// The API's "the access token is no longer good": 403 `UNAUTHORIZED` (what the official
    /// sample re-issues the token on), or a plain 401.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            CallError::Status { status: 401, .. } => true,
            CallError::Status { status: 403, code, .. } => code.as_deref() == Some("UNAUTHORIZED"),
            _ => false,
        }
    }
}

impl Classify for CallError {
    /// 429: its wait, or a backoff without one (the limit is the app's, so the whole sink
    /// waits); no answer and 5xx: a backoff; any other refusal, and a bad key: final for this
    /// call (the hand-off's worker still retries it later).
    fn verdict(&self) -> Verdict {
        match self {
            CallError::Status { status: 429, retry_after: Some(wait), .. } => {
                Verdict::RetryAfter(*wait, Scope::Sink)
            }
            CallError::Status { status: 429, .. } => Verdict::Backoff,
            CallError::Status { status, .. } if *status >= 500 => Verdict::Backoff,
            CallError::Network { .. } | CallError::Garbled(_) => Verdict::Backoff,
            CallError::Status { .. } | CallError::Key(_) => Verdict::GiveUp,
        }
    }
}

/// The error code in a refusal's JSON body (`code`, or OAuth's `error`), when it looks like one:
/// a short identifier, nothing that could quote what was sent.
fn code(body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = body["code"].as_str().or_else(|| body["error"].as_str())?;
    let plain = code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    plain.then(|| code.to_owned())
}

/// How long a 429 asks to wait: `Retry-After` in seconds, else `RateLimit-Reset` (seconds to
/// the reset, or, when it is that large, the reset's Unix time).
fn wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = |name: &str| -> Option<u64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| s.ceil() as u64)
    };
    if let Some(s) = seconds("retry-after") {
        return Some(Duration::from_secs(s));
    }
    let reset = seconds("ratelimit-reset")?;
    const EPOCH_LIKE: u64 = 1_000_000_000;
    if reset < EPOCH_LIKE {
        return Some(Duration::from_secs(reset));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn status(status: u16, code: Option<&str>, retry_after: Option<u64>) -> CallError {
        CallError::Status {
            endpoint: "POST http://127.0.0.1:1/x".into(),
            status,
            code: code.map(str::to_owned),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn verdicts() {
        let wait = Verdict::RetryAfter(Duration::from_secs(3), Scope::Sink);
        assert_eq!(status(429, Some("TOO_MANY_REQUESTS"), Some(3)).verdict(), wait);
        assert_eq!(status(429, None, None).verdict(), Verdict::Backoff);
        assert_eq!(status(500, None, None).verdict(), Verdict::Backoff);
        assert_eq!(status(503, None, None).verdict(), Verdict::Backoff);
        assert_eq!(status(400, Some("INVALID_PARAMETER"), None).verdict(), Verdict::GiveUp);
        assert_eq!(status(403, Some("FORBIDDEN"), None).verdict(), Verdict::GiveUp);
        let network = CallError::Network { endpoint: "x".into(), kind: "timed out" };
        assert_eq!(network.verdict(), Verdict::Backoff);
        assert_eq!(CallError::Key(KeyError::Sign).verdict(), Verdict::GiveUp);
        assert!(status(403, Some("UNAUTHORIZED"), None).is_unauthorized());
        assert!(status(401, None, None).is_unauthorized());
        assert!(!status(403, Some("FORBIDDEN"), None).is_unauthorized());
        assert!(!status(429, None, None).is_unauthorized());
        assert_eq!(
            status(403, Some("UNAUTHORIZED"), None).to_string(),
            "POST http://127.0.0.1:1/x: HTTP 403 UNAUTHORIZED"
        );
    }

    #[test]
    fn only_a_plain_code_is_kept_from_a_body() {
        assert_eq!(
            code(br#"{"code":"TOO_MANY_REQUESTS","description":"x"}"#).as_deref(),
            Some("TOO_MANY_REQUESTS")
        );
        assert_eq!(code(br#"{"error":"invalid_client"}"#).as_deref(), Some("invalid_client"));
        assert_eq!(code("{\"code\":\"text 山田 was refused\"}".as_bytes()), None);
        assert_eq!(code(b"<html>"), None);
    }

    #[test]
    fn a_429_says_how_long_to_wait() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(wait(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        let reset = [("ratelimit-remaining", "0"), ("ratelimit-reset", "2")];
        assert_eq!(wait(&headers(&reset)), Some(Duration::from_secs(2)));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let at = (now + 30).to_string();
        let left = wait(&headers(&[("RateLimit-Reset", &at)])).unwrap();
        assert!((29..=30).contains(&left.as_secs()), "{left:?}");
        assert_eq!(wait(&headers(&[("ratelimit-limit", "60")])), None);
        assert_eq!(wait(&headers(&[("retry-after", "soon")])), None);
    }
}
