//! Conversations being opened in a channel: the first question is posted before the start is
//! committed under its `ts` (see `Slack::start_in_channel`), so a press on it may come before
//! that commit. A press in a channel's thread waits, bounded, until no opening is in flight
//! in that channel; otherwise it would find no conversation and be answered as a stale press.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// The openings in flight, by channel.
#[derive(Debug, Default)]
pub(crate) struct Openings {
    by_channel: Mutex<HashMap<String, usize>>,
    settled: Notify,
}

/// An opening in flight; it ends when dropped.
#[derive(Debug)]
pub(crate) struct Opening<'a> {
    openings: &'a Openings,
    channel: String,
}

impl Openings {
    /// Marks an opening in `channel` as in flight until the returned guard is dropped.
    pub(crate) fn begin(&self, channel: &str) -> Opening<'_> {
        *self.lock().entry(channel.to_owned()).or_default() += 1;
        Opening { openings: self, channel: channel.to_owned() }
    }

    /// Waits until no opening is in flight in `channel`, at most `within`.
    pub(crate) async fn settled(&self, channel: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            // Registered before the check, so an opening that ends in between still wakes us.
            notified.as_mut().enable();
            if !self.lock().contains_key(channel) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.by_channel.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        let mut map = self.openings.lock();
        if let Some(n) = map.get_mut(&self.channel) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.channel);
            }
        }
        drop(map);
        self.openings.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_press_waits_for_the_openings_of_its_channel_only() {
        let openings = std::sync::Arc::new(Openings::default());
        let a = openings.begin("CA");
        // Another channel is not held up.
        tokio::time::timeout(
            Duration::from_secs(5),
            openings.settled("CB", Duration::from_secs(60)),
        )
        .await
        .expect("CB has no opening");
        let waiter = {
            let openings = openings.clone();
            tokio::spawn(async move { openings.settled("CA", Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "CA's opening is in flight");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").unwrap();
        // Bounded: an opening that never ends holds a press for `within` only.
        let _stuck = openings.begin("CC");
        tokio::time::timeout(
            Duration::from_secs(5),
            openings.settled("CC", Duration::from_millis(20)),
        )
        .await
        .expect("gave up waiting");
    }
}
