//! The hand-off outbox: delivers stored requests to the help desk's destinations, retrying with
//! backoff until each succeeds.
//!
//! A submitted form is written with one pending delivery per destination in the same
//! transaction as the step that submitted it (see `Service::handle`), so nothing is sent before
//! it is stored and nothing stored is forgotten: a failed attempt is due again later, and a
//! crash leaves the delivery pending (its lease runs out and another worker, or the restarted
//! process, claims it). Delivery is at least once; every destination gets the request's
//! reference to recognise a repeat.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::{Delivery, Store, StoreError, Timestamp};
use tokio::sync::Notify;

use crate::now;

/// A help-desk destination: a chat, a channel, a webhook.
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// Delivers one request. The error is logged: it must say what failed without the
    /// request's content (no personal data), e.g. an HTTP status.
    async fn deliver(&self, delivery: &Delivery) -> Result<(), String>;
}

/// How the outbox retries.
#[derive(Debug, Clone, Copy)]
pub struct OutboxOptions {
    /// The wait after the first failure; it doubles with every further failure…
    pub retry_first: Duration,
    /// …up to this.
    pub retry_max: Duration,
    /// How long a claimed delivery is reserved for the worker that claimed it.
    pub lease: Duration,
    /// How often the store is asked for due deliveries when nothing wakes the worker.
    pub poll: Duration,
    /// Deliveries claimed at once.
    pub batch: u32,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            retry_first: Duration::from_secs(30),
            retry_max: Duration::from_secs(60 * 60),
            lease: Duration::from_secs(120),
            poll: Duration::from_secs(5),
            batch: 16,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub failed: usize,
}

/// Delivers pending requests to their destinations.
#[derive(Debug)]
pub struct Outbox {
    store: Arc<dyn Store>,
    sinks: HashMap<String, Arc<dyn Sink>>,
    options: OutboxOptions,
    wake: Arc<Notify>,
}

impl Outbox {
    /// `sinks` by destination name; `wake` is the service's [`crate::Service::outbox_signal`].
    pub fn new(
        store: Arc<dyn Store>,
        sinks: HashMap<String, Arc<dyn Sink>>,
        options: OutboxOptions,
        wake: Arc<Notify>,
    ) -> Self {
        Outbox { store, sinks, options, wake }
    }

    /// Delivers until `shutdown`: at once when woken, and every `poll` for retries.
    pub async fn run(&self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            loop {
                match self.round().await {
                    // A full batch: there may be more due.
                    Ok(round) if round.delivered + round.failed >= self.options.batch as usize => {}
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = %err, "outbox: cannot read pending deliveries");
                        break;
                    }
                }
                if shutdown.is_cancelled() {
                    return;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.options.poll) => {}
            }
        }
    }

    /// Claims the due deliveries and attempts each once.
    pub async fn round(&self) -> Result<Round, StoreError> {
        let at = now();
        let lease_until = at.0.saturating_add(millis(self.options.lease));
        let due =
            self.store.claim_deliveries(at, Timestamp(lease_until), self.options.batch).await?;
        let mut round = Round::default();
        for delivery in due {
            let result = match self.sinks.get(&delivery.destination) {
                Some(sink) => sink.deliver(&delivery).await,
                None => Err("no such destination is configured".to_owned()),
            };
            match result {
                Ok(()) => {
                    self.store.delivered(delivery.id, now()).await?;
                    round.delivered += 1;
                    tracing::info!(
                        reference = %delivery.reference,
                        destination = %delivery.destination,
                        attempts = delivery.attempts + 1,
                        "outbox: request delivered"
                    );
                }
                Err(error) => {
                    let wait = backoff(&self.options, delivery.attempts);
                    let retry_at = Timestamp(now().0.saturating_add(millis(wait)));
                    self.store.delivery_failed(delivery.id, retry_at, &error).await?;
                    round.failed += 1;
                    tracing::warn!(
                        reference = %delivery.reference,
                        destination = %delivery.destination,
                        attempts = delivery.attempts + 1,
                        retry_in_ms = millis(wait),
                        error = %error,
                        "outbox: delivery failed; will retry"
                    );
                }
            }
        }
        Ok(round)
    }
}

/// The wait after a failure that followed `attempts` earlier ones: doubling, capped.
fn backoff(options: &OutboxOptions, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(20));
    options.retry_first.saturating_mul(factor).min(options.retry_max)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let options = OutboxOptions {
            retry_first: Duration::from_secs(1),
            retry_max: Duration::from_secs(10),
            ..OutboxOptions::default()
        };
        let waits: Vec<u64> = (0..6).map(|a| backoff(&options, a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(&options, u32::MAX), Duration::from_secs(10));
    }
}
