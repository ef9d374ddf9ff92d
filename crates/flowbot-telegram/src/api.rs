//! Calls to the Bot API that survive faults, and error text that never carries the token.
//!
//! teloxide's `Throttle` retries only sends; here every call (sends, edits, callback answers,
//! `getUpdates`) waits out a 429 for its `retry_after` and retries network errors and server
//! errors with bounded backoff.

use std::future::Future;
use std::time::Duration;

use teloxide::{ApiError, RequestError};

/// Attempts per call, the first included.
const ATTEMPTS: u32 = 6;
/// The longest `retry_after` honoured; a longer one (a flood ban) fails the call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Runs `call` until it succeeds, fails for good, or runs out of attempts.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    token: &str,
    mut call: F,
) -> Result<T, RequestError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RequestError>>,
{
    let mut backoff = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        let err = match call().await {
            Ok(value) => return Ok(value),
            Err(err) => err,
        };
        let wait = match &err {
            RequestError::RetryAfter(seconds) if seconds.duration() <= MAX_RETRY_AFTER => {
                seconds.duration()
            }
            RequestError::Network(_) => backoff,
            // What a 5xx becomes (teloxide has already waited 10 s before returning it).
            RequestError::Api(ApiError::Unknown(_)) | RequestError::InvalidJson { .. } => backoff,
            _ => return Err(err),
        };
        if attempt >= ATTEMPTS {
            return Err(err);
        }
        tracing::debug!(call = what, attempt, wait_ms = wait.as_millis() as u64, error = %redact(&err, token), "retrying");
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        attempt += 1;
    }
}

/// An error's text with the token (and the URL path that holds it) removed.
pub fn redact(err: &dyn std::fmt::Display, token: &str) -> String {
    let text = err.to_string();
    if token.is_empty() {
        return text;
    }
    text.replace(token, "<token>")
}

/// Errors that mean "already so": nothing to do.
pub fn is_harmless(err: &RequestError) -> bool {
    matches!(
        err,
        RequestError::Api(
            ApiError::MessageNotModified
                | ApiError::InvalidQueryId
                | ApiError::MessageToEditNotFound
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_token() {
        let err = "error sending request for url (http://127.0.0.1:1/bot123:SECRET/GetMe)";
        assert_eq!(
            redact(&err, "123:SECRET"),
            "error sending request for url (http://127.0.0.1:1/bot<token>/GetMe)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_429_after_its_delay_then_gives_up_on_other_errors() {
        let mut calls = 0;
        let result: Result<u8, _> = with_retries("x", "t", || {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 => Err(RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(3))),
                    2 => Err(RequestError::Api(ApiError::Unknown("Internal Server Error".into()))),
                    _ => Ok(7),
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls, 3);
        let mut calls = 0;
        let result: Result<u8, _> = with_retries("x", "t", || {
            calls += 1;
            async { Err(RequestError::Api(ApiError::BotBlocked)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a permanent error is not retried");
    }
}
