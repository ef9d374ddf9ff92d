//! A bounded memory of signed requests, so that a signature seen before is refused (a replay),
//! shared by the platforms whose endpoints sign a timestamp with each request (Discord, Slack).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The most signatures remembered at once by default.
pub const MAX_REMEMBERED: usize = 100_000;

/// The signatures of accepted requests, while their timestamp is inside the window (after
/// that the window refuses them anyway), at most `capacity` of them. When a flood fills the
/// memory, the signature with the oldest timestamp is forgotten and every timestamp up to it
/// is refused from then on: the memory stays bounded and a forgotten signature still cannot
/// be replayed.
#[derive(Debug)]
pub struct Replays {
    window: i64,
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    signatures: HashSet<String>,
    /// The same signatures by their timestamp (seconds), oldest first.
    by_time: BTreeSet<(i64, String)>,
    /// Timestamps up to this one are refused (signatures forgotten for room).
    floor: Option<i64>,
}

impl Replays {
    /// A memory for requests signed within `window` of now, holding at most `capacity`.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Replays {
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            capacity: capacity.max(1),
            seen: Mutex::default(),
        }
    }

    /// Records `signature` (of a genuine request signed at `at`, seconds, checked at `now`);
    /// `false` if it was seen already or `at` is at or below the floor.
    pub fn fresh(&self, signature: &str, at: i64, now: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.remember(signature, at, now.saturating_sub(self.window), self.capacity)
    }

    /// How many signatures are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).signatures.len()
    }
}

impl Seen {
    /// Records `signature` (signed at `at`); `false` if it was seen already or `at` is at or
    /// below the floor. Forgets what is older than `oldest`, then the oldest while over
    /// `capacity`.
    fn remember(&mut self, signature: &str, at: i64, oldest: i64, capacity: usize) -> bool {
        while let Some(first) = self.by_time.first().filter(|(t, _)| *t < oldest) {
            let first = first.clone();
            self.signatures.remove(&first.1);
            self.by_time.remove(&first);
        }
        if self.floor.is_some_and(|floor| at <= floor) || self.signatures.contains(signature) {
            return false;
        }
        self.signatures.insert(signature.to_owned());
        self.by_time.insert((at, signature.to_owned()));
        while self.signatures.len() > capacity {
            let Some((t, forgotten)) = self.by_time.pop_first() else { break };
            self.signatures.remove(&forgotten);
            self.floor = Some(self.floor.map_or(t, |floor| floor.max(t)));
        }
        // This request itself may have been the oldest: it is accepted only if still held.
        self.signatures.contains(signature)
    }
}
