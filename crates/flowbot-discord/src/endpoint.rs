//! The HTTP interactions endpoint, `POST /discord/interactions`: the Ed25519 signature, the
//! timestamp window, replayed signatures refused, then the shared handler (PING gets PONG).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flowbot_adapter::Replays;
use flowbot_adapter::replay::MAX_REMEMBERED;
use flowbot_core::Clock;
use serenity::all::Interaction;
use serenity::interactions_endpoint::Verifier;

use crate::Discord;
use crate::handler::Mode;

/// The route of the interactions endpoint on the shared HTTP listener.
pub const INTERACTIONS_PATH: &str = "/discord/interactions";
/// How far a request's signed timestamp may be from now.
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(300);

impl Discord {
    /// The interactions endpoint's route for the shared HTTP listener.
    pub fn interactions_router(&self) -> axum::Router {
        axum::Router::new()
            .route(INTERACTIONS_PATH, axum::routing::post(endpoint))
            .with_state(self.clone())
    }
}

/// `POST /discord/interactions`.
async fn endpoint(State(discord): State<Discord>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = discord.inner.signatures.as_ref().is_some_and(|s| {
        s.check(header("x-signature-ed25519"), header("x-signature-timestamp"), &body)
    });
    if !signed {
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(err) => {
            tracing::warn!(error = %err, "discord: an interaction that does not parse");
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    // What follows the answer was stored with the step: the delivery worker sends it.
    match discord.answer(interaction, Mode::Endpoint).await {
        Ok(Some(answer)) => Json(answer.response).into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => {
            tracing::error!(error = %err, "discord: interaction not handled");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The endpoint's signature check: a valid Ed25519 signature by the application's key, of a
/// timestamp within [`SIGNATURE_WINDOW`] of the clock, and a signature not seen before (the
/// shared bounded memory, [`Replays`]).
pub(crate) struct Signatures {
    verifier: Verifier,
    clock: Arc<dyn Clock>,
    replays: Replays,
}

impl Signatures {
    pub(crate) fn new(verifier: Verifier, clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(verifier, clock, MAX_REMEMBERED)
    }

    fn with_capacity(verifier: Verifier, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Signatures { verifier, clock, replays: Replays::new(SIGNATURE_WINDOW, capacity) }
    }

    /// Whether a request with these headers and `body` is genuine, recent and new; remembers
    /// its signature if so.
    pub(crate) fn check(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> bool {
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else { return false };
        let Ok(at) = timestamp.parse::<i64>() else { return false };
        let now = i64::try_from(self.clock.now().0 / 1000).unwrap_or(i64::MAX);
        let window = i64::try_from(SIGNATURE_WINDOW.as_secs()).unwrap_or(i64::MAX);
        if now.abs_diff(at) > window.unsigned_abs()
            || self.verifier.verify(signature, timestamp, body).is_err()
        {
            return false;
        }
        self.replays.fresh(signature, at, now)
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.replays.remembered()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use flowbot_core::{ManualClock, Timestamp};

    use super::*;

    const NOW: i64 = 1_750_000_000;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn signatures(clock: &Arc<ManualClock>, capacity: usize) -> Signatures {
        let verifier = Verifier::try_new(key().verifying_key().to_bytes()).unwrap();
        Signatures::with_capacity(verifier, clock.clone(), capacity)
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Timestamp(u64::try_from(NOW).unwrap() * 1000)))
    }

    /// The signature header of `body` signed at `at`.
    fn sign(at: i64, body: &str) -> String {
        let signed = format!("{at}{body}");
        key().sign(signed.as_bytes()).to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn check(s: &Signatures, at: i64, body: &str) -> bool {
        s.check(Some(&sign(at, body)), Some(&at.to_string()), body.as_bytes())
    }

    #[test]
    fn the_window_is_measured_on_the_clock() {
        let clock = clock();
        let s = signatures(&clock, 10);
        assert!(check(&s, NOW, "a"));
        assert!(check(&s, NOW - 300, "b"), "the window's edge");
        assert!(check(&s, NOW + 300, "c"), "a clock a little behind Discord's");
        assert!(!check(&s, NOW - 301, "d"), "too old");
        assert!(!check(&s, NOW + 301, "e"), "too far ahead");
        assert!(!check(&s, NOW - 360, "f"), "six minutes old");
        // Six minutes later, a request signed now is too old.
        clock.advance(360_000);
        assert!(!check(&s, NOW, "g"));
        assert!(check(&s, NOW + 360, "g"));
    }

    #[test]
    fn bad_signatures_and_headers_are_refused() {
        let clock = clock();
        let s = signatures(&clock, 10);
        let signature = sign(NOW, "a");
        let at = NOW.to_string();
        assert!(!s.check(None, Some(&at), b"a"));
        assert!(!s.check(Some(&signature), None, b"a"));
        assert!(!s.check(Some(&signature), Some("yesterday"), b"a"));
        assert!(!s.check(Some(&signature), Some(&at), b"b"), "another body");
        assert!(!s.check(Some(&signature), Some(&(NOW - 1).to_string()), b"a"), "another time");
        assert!(!s.check(Some("00"), Some(&at), b"a"));
        assert_eq!(s.remembered(), 0, "nothing refused is remembered");
        assert!(s.check(Some(&signature), Some(&at), b"a"));
    }

    #[test]
    fn a_replay_is_refused_and_forgotten_once_out_of_the_window() {
        let clock = clock();
        let s = signatures(&clock, 10);
        assert!(check(&s, NOW, "a"));
        assert!(!check(&s, NOW, "a"), "replayed");
        assert!(check(&s, NOW + 1, "a"), "the same body signed again");
        clock.advance(200_000);
        assert!(!check(&s, NOW, "a"), "replayed within the window");
        assert!(check(&s, NOW + 200, "b"));
        assert_eq!(s.remembered(), 3);
        // Past the window the first two are forgotten; they are refused as too old anyway.
        clock.advance(102_000);
        assert!(check(&s, NOW + 302, "c"));
        assert_eq!(s.remembered(), 2);
        assert!(!check(&s, NOW, "a"));
        assert!(!check(&s, NOW + 200, "b"), "still remembered");
    }

    #[test]
    fn a_flood_of_distinct_signatures_stays_bounded_and_replays_stay_refused() {
        let clock = clock();
        let s = signatures(&clock, 10);
        for i in 0..60 {
            let at = NOW - 299 + i / 4;
            assert!(check(&s, at, &format!("flood {i}")), "{i}");
            assert!(s.remembered() <= 10);
        }
        assert_eq!(s.remembered(), 10);
        // Forgotten signatures cannot be replayed: their timestamps are at or below the floor.
        assert!(!check(&s, NOW - 299, "flood 0"));
        assert!(!check(&s, NOW - 299, "a new one, but as old as the forgotten"));
        // Remembered ones are refused as replays; fresh requests are served.
        assert!(!check(&s, NOW - 299 + 59 / 4, "flood 59"));
        assert!(check(&s, NOW, "fresh"));
        assert_eq!(s.remembered(), 10);
    }
}
