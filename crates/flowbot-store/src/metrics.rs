//! The bot's Prometheus metrics: one registry per process (no global state), recorded by the
//! service, the platforms' API clients and the delivery worker, encoded at `GET /metrics`.
//!
//! Label values come from small fixed sets (platform, input kind, API method, status class,
//! result) or from the deployment (ending node ids of the flow, hand-off destination names),
//! never from a user: no user id, chat id or text is ever a label.

use std::sync::Mutex;
use std::time::Duration;

use flowbot_core::DeliveryCounts;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

type One = [(&'static str, String); 1];
type Two = [(&'static str, String); 2];
type Three = [(&'static str, String); 3];

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    updates: Family<Two, Counter>,
    duplicates: Family<Two, Counter>,
    steps: Family<One, Counter>,
    started: Family<One, Counter>,
    ended: Family<Two, Counter>,
    refused: Family<Two, Counter>,
    conflicts: Family<One, Counter>,
    step_seconds: Family<One, Histogram>,
    api_calls: Family<Three, Counter>,
    requests: Counter,
    attempts: Family<Two, Counter>,
    pending: Gauge,
    oldest_pending: Gauge<f64, std::sync::atomic::AtomicU64>,
    replies_pending: Gauge,
    updates_kept: Gauge,
    build: Family<Two, Gauge>,
    quota: Family<One, Counter>,
}

/// Why a press did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A button of an earlier question (or pressed twice).
    Stale,
    /// A token no button of this flow ever carried.
    Forged,
    /// A button of someone else's conversation.
    Foreign,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("flowbot");
        let updates = Family::<Two, Counter>::default();
        registry.register("updates", "Updates received, by platform and kind", updates.clone());
        let duplicates = Family::<Two, Counter>::default();
        registry.register(
            "duplicate_updates",
            "Updates received again (redelivered) and not applied, by platform and kind",
            duplicates.clone(),
        );
        let steps = Family::<One, Counter>::default();
        registry.register("steps", "Steps committed, by platform", steps.clone());
        let started = Family::<One, Counter>::default();
        registry.register(
            "conversations_started",
            "Conversations started (or started again), by platform",
            started.clone(),
        );
        let ended = Family::<Two, Counter>::default();
        registry.register(
            "conversations_ended",
            "Conversations that reached an ending, by platform and ending (node id)",
            ended.clone(),
        );
        let refused = Family::<Two, Counter>::default();
        registry.register(
            "presses_refused",
            "Button presses that did nothing, by platform and reason (stale, forged, foreign)",
            refused.clone(),
        );
        let conflicts = Family::<One, Counter>::default();
        registry.register(
            "conflicts",
            "Compare-and-swap conflicts (another process changed the conversation first)",
            conflicts.clone(),
        );
        let step_seconds = Family::<One, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register_with_unit(
            "step_duration",
            "From an update's arrival to its reply accepted by the platform, by platform",
            Unit::Seconds,
            step_seconds.clone(),
        );
        let api_calls = Family::<Three, Counter>::default();
        registry.register(
            "api_calls",
            "Platform API calls, by platform, method and status class (2xx, 4xx, 429, 5xx, error)",
            api_calls.clone(),
        );
        let requests = Counter::default();
        registry.register("handoff_requests", "Hand-off requests stored", requests.clone());
        let attempts = Family::<Two, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts of stored items, by sink and result (delivered, retried, gave_up)",
            attempts.clone(),
        );
        let pending = Gauge::default();
        registry.register("deliveries_pending", "Hand-off deliveries waiting", pending.clone());
        let replies_pending = Gauge::default();
        registry.register("replies_pending", "Stored replies waiting", replies_pending.clone());
        let updates_kept = Gauge::default();
        registry.register(
            "updates_kept",
            "Updates received by long polling and kept in the store, not yet handled",
            updates_kept.clone(),
        );
        let oldest_pending = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register_with_unit(
            "oldest_pending_age",
            "Age of the oldest item waiting to be delivered",
            Unit::Seconds,
            oldest_pending.clone(),
        );
        let build = Family::<Two, Gauge>::default();
        registry.register(
            "build_info",
            "1 for the running version and the flow version new conversations start on",
            build.clone(),
        );
        let quota = Family::<One, Counter>::default();
        registry.register(
            "quota_exhausted",
            "Messages refused because the platform's monthly message quota is used up (not retried), by platform",
            quota.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            updates,
            duplicates,
            steps,
            started,
            ended,
            refused,
            conflicts,
            step_seconds,
            api_calls,
            requests,
            attempts,
            pending,
            oldest_pending,
            replies_pending,
            updates_kept,
            build,
            quota,
        }
    }

    /// `flowbot_build_info{version, flow_version} 1`: the flow new conversations start on
    /// (set at start and on every reload).
    pub fn build_info(&self, version: &str, flow_version: &str) {
        self.build.clear();
        self.build.get_or_create(&two("version", version, "flow_version", flow_version)).set(1);
    }

    pub fn update(&self, platform: &str, kind: &'static str) {
        self.updates.get_or_create(&two("platform", platform, "kind", kind)).inc();
    }

    pub fn duplicate(&self, platform: &str, kind: &'static str) {
        self.duplicates.get_or_create(&two("platform", platform, "kind", kind)).inc();
    }

    pub fn step(&self, platform: &str) {
        self.steps.get_or_create(&[("platform", platform.to_owned())]).inc();
    }

    pub fn started(&self, platform: &str) {
        self.started.get_or_create(&[("platform", platform.to_owned())]).inc();
    }

    pub fn ended(&self, platform: &str, ending: &str) {
        self.ended.get_or_create(&two("platform", platform, "ending", ending)).inc();
    }

    pub fn refused(&self, platform: &str, why: Refused) {
        let reason = match why {
            Refused::Stale => "stale",
            Refused::Forged => "forged",
            Refused::Foreign => "foreign",
        };
        self.refused.get_or_create(&two("platform", platform, "reason", reason)).inc();
    }

    pub fn conflict(&self, platform: &str) {
        self.conflicts.get_or_create(&[("platform", platform.to_owned())]).inc();
    }

    /// An update's reply accepted by its platform `took` after the update arrived.
    pub fn step_latency(&self, platform: &str, took: Duration) {
        let family = &self.step_seconds;
        family.get_or_create(&[("platform", platform.to_owned())]).observe(took.as_secs_f64());
    }

    /// A platform API call's outcome: an HTTP status, or `None` when no answer came.
    pub fn api_call(&self, platform: &str, method: &str, status: Option<u16>) {
        let class = match status {
            None => "error",
            Some(429) => "429",
            Some(s) if s < 300 => "2xx",
            Some(s) if s < 400 => "3xx",
            Some(s) if s < 500 => "4xx",
            Some(_) => "5xx",
        };
        let labels = [
            ("platform", platform.to_owned()),
            ("method", method.to_owned()),
            ("status", class.to_owned()),
        ];
        self.api_calls.get_or_create(&labels).inc();
    }

    /// A message the platform refused for its monthly quota (LINE's push messages).
    pub fn quota_exhausted(&self, platform: &str) {
        self.quota.get_or_create(&[("platform", platform.to_owned())]).inc();
    }

    pub fn handoff_request(&self) {
        self.requests.inc();
    }

    /// A delivery attempt of an item of `sink` (`telegram`, `handoff:desk`): `delivered`,
    /// `retried` or `gave_up`.
    pub fn attempt(&self, sink: &str, result: &'static str) {
        self.attempts.get_or_create(&two("sink", sink, "result", result)).inc();
    }

    /// What waits in the outbox and the inbox, read from the store before each scrape.
    pub fn set_pending(&self, counts: &DeliveryCounts, oldest: Option<Duration>) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.pending.set(gauge(counts.pending));
        self.replies_pending.set(gauge(counts.replies_pending));
        self.updates_kept.set(gauge(counts.updates_kept));
        self.oldest_pending.set(oldest.map_or(0.0, |d| d.as_secs_f64()));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = encode(&mut out, &self.registry());
        out
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn two(k1: &'static str, v1: &str, k2: &'static str, v2: &str) -> Two {
    [(k1, v1.to_owned()), (k2, v2.to_owned())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus() {
        let m = Metrics::new();
        m.update("telegram", "press");
        m.api_call("telegram", "sendMessage", Some(429));
        m.step_latency("telegram", Duration::from_millis(12));
        m.build_info("0.1.0", "old");
        m.build_info("0.1.0", "abc");
        let counts = DeliveryCounts { replies_pending: 2, updates_kept: 3, ..Default::default() };
        m.set_pending(&counts, Some(Duration::from_secs(4)));
        let text = m.encode();
        for want in [
            "flowbot_updates_total{platform=\"telegram\",kind=\"press\"} 1",
            "flowbot_api_calls_total{platform=\"telegram\",method=\"sendMessage\",status=\"429\"} 1",
            "flowbot_step_duration_seconds_count{platform=\"telegram\"} 1",
            "flowbot_build_info{version=\"0.1.0\",flow_version=\"abc\"} 1",
            "# TYPE flowbot_oldest_pending_age_seconds gauge",
            "flowbot_oldest_pending_age_seconds 4.0",
            "flowbot_replies_pending 2",
            "flowbot_updates_kept 3",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(
            !text.contains("flow_version=\"old\""),
            "a reload replaces the flow version:\n{text}"
        );
    }
}
