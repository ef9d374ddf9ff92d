//! The clock as an argument: the trait the service, the delivery worker and signature windows
//! read the time through, so that tests run on a clock they move themselves.
//!
//! The core never reads a clock itself; it only names the contract. The wall clock lives in
//! `flowbot_store::SystemClock`; [`ManualClock`] is the test clock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Timestamp;

/// Where the current time comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// A clock that stands still until it is moved: for tests of expiry, resume, retry timing and
/// replay windows.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(AtomicU64::new(at.0))
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.advance(500);
        assert_eq!(clock.now(), Timestamp(1_500));
        clock.set(Timestamp(7));
        assert_eq!(clock.now(), Timestamp(7));
    }
}
