//! One retry policy for every platform call, the command registration and the outbox: wait what
//! the platform says (a 429's `retry_after` / `Retry-After`), back off on network errors and
//! 5xx, give up on the rest. Each platform says which is which by implementing [`Classify`] for
//! its error type; nothing else about retrying is platform-specific.

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// What a failed call's error means for trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The platform said when to come back (HTTP 429 with its delay).
    RetryAfter(Duration, Scope),
    /// Worth another try after a growing pause (a network error, a 5xx, a garbled answer).
    Backoff,
    /// Trying again would fail the same way (a 4xx other than 429).
    GiveUp,
}

/// What a platform's rate limit holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only calls for this chat (Telegram's per-chat limits, Discord's per-route buckets).
    Lane,
    /// Every call of the bot (Discord's global limit).
    Sink,
}

/// The kind of an HTTP client's transport failure, for an error text: reqwest's own message
/// would repeat the URL, which may hold a token (Telegram's does).
pub fn transport_failure(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "broken answer"
    } else {
        "request failed"
    }
}

/// How a platform tells a retryable failure from a final one.
pub trait Classify {
    fn verdict(&self) -> Verdict;
}

/// Attempts, pauses and their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one call in [`RetryPolicy::run`], the first included.
    pub attempts: u32,
    /// The pause after the first failure; it doubles with every further one…
    pub first: Duration,
    /// …up to this.
    pub max: Duration,
    /// The longest wait a platform may ask for; a longer one (a flood ban) is given up on.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// A platform call made while a user waits (and the command registration): six attempts,
    /// 100 ms doubling to 5 s.
    pub const CALL: RetryPolicy = RetryPolicy {
        attempts: 6,
        first: Duration::from_millis(100),
        max: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(120),
    };

    /// The pause after `failures` failures in a row (`failures >= 1`), without the attempt
    /// bound: doubling from `first`, capped at `max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        self.first.saturating_mul(factor).min(self.max)
    }

    /// How long to wait before trying again after the `failures`-th failure in a row, given
    /// what the error means; `None` when it is not worth trying again at all. (The attempt
    /// bound is [`RetryPolicy::run`]'s; stored deliveries retry until they are too old.)
    pub fn wait(&self, verdict: Verdict, failures: u32) -> Option<Duration> {
        match verdict {
            Verdict::RetryAfter(wait, _) if wait <= self.max_retry_after => Some(wait),
            Verdict::RetryAfter(..) | Verdict::GiveUp => None,
            Verdict::Backoff => Some(self.backoff(failures)),
        }
    }

    /// How long a stored item waits before its next attempt after the `failures`-th failure
    /// in a row; `None` when it is not worth trying again. Unlike [`RetryPolicy::wait`], a long
    /// `retry_after` is waited out: what bounds a stored item is its age (the worker gives it up
    /// when the wait would take it past its route's limit), not the patience of a caller.
    pub fn pause(&self, verdict: Verdict, failures: u32) -> Option<Duration> {
        match verdict {
            Verdict::RetryAfter(wait, _) => Some(wait),
            Verdict::Backoff => Some(self.backoff(failures)),
            Verdict::GiveUp => None,
        }
    }

    /// Runs `call` until it succeeds, fails for good, or has used up [`RetryPolicy::attempts`].
    /// `what` names the call in the debug log; the error's `Display` must hold no secret.
    pub async fn run<T, E, F, Fut>(&self, what: &str, mut call: F) -> Result<T, E>
    where
        E: Classify + fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut failures = 0;
        loop {
            let err = match call().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            failures += 1;
            let Some(wait) = self.wait(err.verdict(), failures) else { return Err(err) };
            if failures >= self.attempts {
                return Err(err);
            }
            tracing::debug!(call = what, failures, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(Verdict);

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    impl Classify for E {
        fn verdict(&self) -> Verdict {
            self.0
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::CALL;
        let waits: Vec<u128> = (1..=8).map(|f| p.backoff(f).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn a_flood_ban_is_given_up_on() {
        let p = RetryPolicy::CALL;
        let ban = Verdict::RetryAfter(Duration::from_secs(3600), Scope::Sink);
        assert_eq!(p.wait(ban, 1), None);
        let short = Verdict::RetryAfter(Duration::from_secs(3), Scope::Lane);
        assert_eq!(p.wait(short, 4), Some(Duration::from_secs(3)));
        assert_eq!(p.wait(Verdict::GiveUp, 1), None);
        // A stored item waits out even a long one (its age bounds it).
        assert_eq!(p.pause(ban, 1), Some(Duration::from_secs(3600)));
        assert_eq!(p.pause(Verdict::Backoff, 2), Some(Duration::from_millis(200)));
        assert_eq!(p.pause(Verdict::GiveUp, 1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_what_the_platform_says_then_gives_up_on_a_final_error() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let result: Result<u8, E> = RetryPolicy::CALL
            .run("x", || {
                calls += 1;
                let n = calls;
                async move {
                    match n {
                        1 => Err(E(Verdict::RetryAfter(Duration::from_secs(3), Scope::Lane))),
                        2 => Err(E(Verdict::Backoff)),
                        _ => Ok(7),
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls, 3);
        // 3 s asked for, then the second failure's 200 ms.
        assert_eq!(started.elapsed(), Duration::from_millis(3_200));

        let mut calls = 0;
        let result: Result<u8, E> = RetryPolicy::CALL
            .run("x", || {
                calls += 1;
                async { Err(E(Verdict::GiveUp)) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a final error is not retried");

        let mut calls = 0;
        let result: Result<u8, E> = RetryPolicy::CALL
            .run("x", || {
                calls += 1;
                async { Err(E(Verdict::Backoff)) }
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 6, "bounded");
    }
}
