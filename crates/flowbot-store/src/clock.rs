//! The wall clock.

use flowbot_core::{Clock, Timestamp};

/// The system's wall clock, as the engine's [`Timestamp`]: what a deployment runs on (tests use
/// [`flowbot_core::ManualClock`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
    }
}

/// The wall clock's time: [`SystemClock`] for callers that do not take a clock yet.
pub fn now() -> Timestamp {
    SystemClock.now()
}
