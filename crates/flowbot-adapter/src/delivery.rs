//! The delivery worker: sends what steps stored (replies, hand-off requests) from the store, in
//! order per lane, so that a crash loses nothing and one failing chat holds up no other.
//!
//! A step's outgoing items are written in the step's transaction (see
//! `flowbot_store::Service::handle_planned`). Items made by this process come through the
//! service's mailbox already leased to it; items left by a killed process (or parked after a
//! long failure) are claimed from the store once their lease has run out. Each lane (one chat
//! of one platform, or one hand-off request at one destination) has at most one item in flight:
//! the next is sent only once the platform has taken the one before. Lanes run concurrently, so
//! a 429 or a 5xx holds back only its own lane (or every lane of its sink, where the platform
//! says the limit is the bot's).
//!
//! Failures follow the one [`RetryPolicy`]: a 429's delay is waited out, network errors and 5xx
//! back off, anything else is final. An item that cannot be delivered is retried until it is
//! older than its sink's `give_up_after`; then it is recorded as given up, counted and logged
//! (never silently dropped). A sink may `park` its failures in the store instead of waiting in
//! memory (the hand-off destinations, which retry for hours). Leases are renewed while the
//! process lives, so a short lease is enough and a killed process's items are taken over within
//! one lease.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::{Clock, Queued, Store, StoreError, Timestamp};
use flowbot_store::{Mailbox, Metrics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::retry::{RetryPolicy, Scope, Verdict};

/// A destination of stored items: a platform's chats, or a help-desk destination.
#[async_trait]
pub trait Deliver: Send + Sync + fmt::Debug {
    /// Makes the platform call one stored item stands for. `Ok` once the platform took it (or
    /// answered that it is already so).
    async fn deliver(&self, item: &Queued) -> Result<(), Failed>;
}

/// A deliverer for a target that names nothing on its platform (a notice's chat that is not
/// a chat id): every item is given up at once, with this reason.
#[derive(Debug, Clone, Copy)]
pub struct Refuse(pub &'static str);

#[async_trait]
impl Deliver for Refuse {
    async fn deliver(&self, _item: &Queued) -> Result<(), Failed> {
        Err(Failed::new(Verdict::GiveUp, self.0))
    }
}

/// Why a delivery failed, and what that means for trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub verdict: Verdict,
    /// A short description for the log and the store: no secret, no personal data (an HTTP
    /// status, an API error code).
    pub error: String,
}

impl Failed {
    pub fn new(verdict: Verdict, error: impl Into<String>) -> Self {
        Failed { verdict, error: error.into() }
    }
}

/// How one sink's items are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The pauses between attempts (its `attempts` bound is not used: stored items retry until
    /// they are too old).
    pub policy: RetryPolicy,
    /// Items older than this are given up on (counted and logged); `None`: never.
    pub give_up_after: Option<Duration>,
    /// Keep a failed item in the store until its next attempt (releasing the lane) instead of
    /// waiting in memory. For sinks whose pauses are long.
    pub park: bool,
}

impl Route {
    /// A chat platform's replies: the call policy's pauses, given up after `give_up_after`.
    pub fn replies(give_up_after: Duration) -> Self {
        Route { policy: RetryPolicy::CALL, give_up_after: Some(give_up_after), park: false }
    }
}

/// The worker's settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// How long a claimed item is reserved; renewed every third of it while the process lives.
    pub lease: Duration,
    /// How often the store is asked for items no one holds (a killed process's, parked ones).
    pub poll: Duration,
    /// Items claimed from the store at once.
    pub batch: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions { lease: Duration::from_secs(10), poll: Duration::from_secs(1), batch: 256 }
    }
}

/// Counters of what the worker did since it started.
#[derive(Debug, Default)]
pub struct Counters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub gave_up: AtomicU64,
}

/// Sends stored items to their sinks. Run it with [`Worker::run`].
pub struct Worker {
    store: Arc<dyn Store>,
    routes: HashMap<String, (Arc<dyn Deliver>, Route)>,
    options: WorkerOptions,
    mailbox: Arc<Mailbox>,
    clock: Arc<dyn Clock>,
    owner: String,
    counters: Arc<Counters>,
    /// Per sink: no call before this time (a rate limit on the whole bot).
    holds: Mutex<HashMap<String, tokio::time::Instant>>,
    /// The items this worker holds in memory, by id: a claim that returns one of them again
    /// (its lease ran out while this process was paused) must not queue it twice. An item is
    /// let go of by the run loop itself, after the claims that were under way when it was
    /// delivered or given up: one of them may have read it before the store knew.
    held: Mutex<std::collections::HashSet<i64>>,
    metrics: Option<Arc<Metrics>>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sinks: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        sinks.sort_unstable();
        f.debug_struct("Worker").field("sinks", &sinks).field("owner", &self.owner).finish()
    }
}

type LaneKey = (String, String);

impl Worker {
    /// A worker for `routes` (by sink name). `owner` is the service's owner id, under which
    /// the service claims the items it hands over through `mailbox`.
    pub fn new(
        store: Arc<dyn Store>,
        routes: HashMap<String, (Arc<dyn Deliver>, Route)>,
        options: WorkerOptions,
        mailbox: Arc<Mailbox>,
        clock: Arc<dyn Clock>,
        owner: String,
    ) -> Self {
        Worker {
            store,
            routes,
            options,
            mailbox,
            clock,
            owner,
            counters: Arc::new(Counters::default()),
            holds: Mutex::new(HashMap::new()),
            held: Mutex::new(std::collections::HashSet::new()),
            metrics: None,
        }
    }

    /// Records attempts (and, for replies, the step's latency) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn record(&self, item: &Queued, result: &'static str) {
        let Some(m) = &self.metrics else { return };
        m.attempt(&item.sink, result);
        if result == "delivered" && item.request.is_none() {
            // A reply: from the update's arrival (its step's time) until the platform took it.
            let took = self.clock.now().0.saturating_sub(item.created_at.0);
            m.step_latency(&item.sink, Duration::from_millis(took));
        }
    }

    /// The sinks this worker delivers (for `Service::serve`).
    pub fn sinks(&self) -> Vec<&str> {
        self.routes.keys().map(String::as_str).collect()
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Delivers until `shutdown`; then lets the items in flight finish (for a moment) and
    /// releases the rest to the store for the next process.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (done_tx, done_rx) = mpsc::unbounded_channel::<i64>();
        let (idle_tx, mut idle_rx) = mpsc::unbounded_channel::<LaneKey>();
        let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<i64>();
        let ends =
            || Ends { done: done_tx.clone(), finished: finished_tx.clone(), idle: idle_tx.clone() };
        let recorder = tokio::spawn(record_done(self.clone(), done_rx, shutdown.clone()));
        let mut lanes: HashMap<LaneKey, Arc<Mutex<VecDeque<Queued>>>> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        // (Bounded below: an interval of zero would spin.)
        let tick = Duration::from_millis(10);
        let mut poll = tokio::time::interval(self.options.poll.max(tick));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renew = tokio::time::interval((self.options.lease / 3).max(tick));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let items = tokio::select! {
                () = shutdown.cancelled() => break,
                items = self.mailbox.next_batch() => items,
                _ = poll.tick() => self.claim().await,
                _ = renew.tick() => { self.renew().await; continue; }
                Some(id) = finished_rx.recv() => {
                    // Received after the items of any claim under way when it finished.
                    lock(&self.held).remove(&id);
                    continue;
                }
                Some(lane) = idle_rx.recv() => {
                    // A lane task finished: forget the lane unless items came meanwhile.
                    if let Some(queue) = lanes.get(&lane) {
                        let queue = queue.clone();
                        let empty = lock(&queue).is_empty();
                        if empty {
                            lanes.remove(&lane);
                        } else {
                            tasks.spawn(self.clone().lane(lane, queue, ends(), shutdown.clone()));
                        }
                    }
                    continue;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            for item in items {
                if !lock(&self.held).insert(item.id) {
                    continue;
                }
                if !self.routes.contains_key(&item.sink) {
                    // Claimed at commit for a sink this process does not serve: leave it to
                    // the process that does, once the lease runs out.
                    tracing::debug!(sink = %item.sink, "delivery: no route here; left for another process");
                    lock(&self.held).remove(&item.id);
                    continue;
                }
                let key = (item.sink.clone(), item.lane.clone());
                match lanes.get(&key) {
                    Some(queue) => lock(queue).push_back(item),
                    None => {
                        let queue = Arc::new(Mutex::new(VecDeque::from([item])));
                        lanes.insert(key.clone(), queue.clone());
                        tasks.spawn(self.clone().lane(key, queue, ends(), shutdown.clone()));
                    }
                }
            }
        }
        // Let what is in flight finish, briefly; what is left goes back to the store.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
            tasks.abort_all();
        }
        let now = self.clock.now();
        for queue in lanes.values() {
            let left: Vec<Queued> = lock(queue).drain(..).collect();
            for item in left {
                let release = || self.store.failed(item.id, now, "stopped before delivery");
                persist("release an item", &shutdown, release).await;
            }
        }
        drop(done_tx);
        let _ = recorder.await;
    }

    /// Items no one holds, from the store.
    async fn claim(&self) -> Vec<Queued> {
        let now = self.clock.now();
        let until = Timestamp(now.0.saturating_add(millis(self.options.lease)));
        let sinks = self.sinks();
        match self.store.claim_of(now, &self.owner, until, self.options.batch, Some(&sinks)).await {
            Ok(items) => {
                if !items.is_empty() {
                    tracing::debug!(items = items.len(), "delivery: claimed from the store");
                }
                items
            }
            Err(err) => {
                tracing::warn!(error = %err, "delivery: cannot read pending items");
                Vec::new()
            }
        }
    }

    async fn renew(&self) {
        let until = Timestamp(self.clock.now().0.saturating_add(millis(self.options.lease)));
        if let Err(err) = self.store.renew(&self.owner, until).await {
            tracing::warn!(error = %err, "delivery: cannot renew leases");
        }
    }

    /// Delivers one lane's items in order until its queue is empty.
    async fn lane(
        self: Arc<Self>,
        key: LaneKey,
        queue: Arc<Mutex<VecDeque<Queued>>>,
        ends: Ends,
        shutdown: CancellationToken,
    ) {
        let Some((sink, route)) = self.routes.get(&key.0).map(|(s, r)| (s.clone(), *r)) else {
            return;
        };
        loop {
            let Some(item) = lock(&queue).pop_front() else { break };
            let outcome = self.attempt(&sink, route, &item, &shutdown).await;
            if !matches!(outcome, Attempt::Stopped) {
                let _ = ends.finished.send(item.id);
            }
            match outcome {
                Attempt::Delivered => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    self.record(&item, "delivered");
                    let _ = ends.done.send(item.id);
                }
                Attempt::Released => {}
                Attempt::Parked => {
                    // What follows in the lane must not overtake it: back to the store, to be
                    // claimed behind it.
                    let rest: Vec<Queued> = lock(&queue).drain(..).collect();
                    let now = self.clock.now();
                    for later in rest {
                        lock(&self.held).remove(&later.id);
                        let release = || self.store.failed(later.id, now, "behind a failed item");
                        persist("release an item", &shutdown, release).await;
                    }
                }
                Attempt::Stopped => {
                    // Back to the front: `run` releases what is left.
                    lock(&queue).push_front(item);
                    break;
                }
            }
        }
        let _ = ends.idle.send(key);
    }

    /// Tries one item until it is delivered, given up, parked, or the worker stops.
    async fn attempt(
        &self,
        sink: &Arc<dyn Deliver>,
        route: Route,
        item: &Queued,
        shutdown: &CancellationToken,
    ) -> Attempt {
        let mut failures = item.attempts;
        loop {
            self.wait_for_hold(&item.sink, shutdown).await;
            if shutdown.is_cancelled() {
                return Attempt::Stopped;
            }
            let failed = match sink.deliver(item).await {
                Ok(()) => {
                    if let Some(request) = &item.request {
                        tracing::info!(sink = %item.sink, reference = %request.reference, attempts = failures + 1, "delivery: request delivered");
                    } else if failures > item.attempts {
                        tracing::info!(sink = %item.sink, attempts = failures + 1, "delivery: delivered after retries");
                    }
                    return Attempt::Delivered;
                }
                Err(failed) => failed,
            };
            failures += 1;
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
            self.record(item, "retried");
            let now = self.clock.now();
            let age = Duration::from_millis(now.0.saturating_sub(item.created_at.0));
            let wait = route.policy.pause(failed.verdict, failures);
            // Too old now, or by the time of the next attempt: given up now.
            let too_old = route.give_up_after.is_some_and(|limit| {
                age.saturating_add(wait.unwrap_or_default()) > limit || age >= limit
            });
            let Some(wait) = wait.filter(|_| !too_old) else {
                self.give_up(item, &failed, failures, now, shutdown).await;
                return Attempt::Released;
            };
            if let Verdict::RetryAfter(_, Scope::Sink) = failed.verdict {
                self.hold(&item.sink, wait);
            }
            if route.park {
                let at = Timestamp(now.0.saturating_add(millis(wait)));
                tracing::warn!(sink = %item.sink, reference = reference(item), attempts = failures, retry_in_ms = millis(wait), error = %failed.error, "delivery: failed; will retry");
                let park = || self.store.failed(item.id, at, &failed.error);
                persist("record a failure", shutdown, park).await;
                return Attempt::Parked;
            }
            tracing::debug!(sink = %item.sink, reference = reference(item), attempts = failures, retry_in_ms = millis(wait), error = %failed.error, "delivery: failed; will retry");
            tokio::select! {
                () = shutdown.cancelled() => return Attempt::Stopped,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn give_up(
        &self,
        item: &Queued,
        failed: &Failed,
        attempts: u32,
        now: Timestamp,
        shutdown: &CancellationToken,
    ) {
        // Recorded first: once the log and the counters say so, the store knows it (a stale
        // press then shows the question again).
        let record = || self.store.gave_up(item.id, now, &failed.error);
        persist("record a given-up item", shutdown, record).await;
        self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
        self.record(item, "gave_up");
        tracing::error!(
            sink = %item.sink,
            reference = reference(item),
            attempts,
            age_ms = now.0.saturating_sub(item.created_at.0),
            error = %failed.error,
            "delivery: given up; the item stays recorded as not delivered"
        );
    }

    fn hold(&self, sink: &str, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = holds.entry(sink.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    async fn wait_for_hold(&self, sink: &str, shutdown: &CancellationToken) {
        let until = self.holds.lock().unwrap_or_else(PoisonError::into_inner).get(sink).copied();
        if let Some(until) = until.filter(|u| *u > tokio::time::Instant::now()) {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

/// Where a lane task reports: items delivered (to be recorded), items it is done with (to be
/// let go of, see `Worker::held`), and its own end.
#[derive(Debug)]
struct Ends {
    done: mpsc::UnboundedSender<i64>,
    finished: mpsc::UnboundedSender<i64>,
    idle: mpsc::UnboundedSender<LaneKey>,
}

enum Attempt {
    Delivered,
    /// Given up: the store has it, and the lane goes on.
    Released,
    /// Failed and parked in the store until its next attempt: the lane waits for it.
    Parked,
    Stopped,
}

/// Records deliveries in the store in batches (one statement for all that finished meanwhile).
async fn record_done(
    worker: Arc<Worker>,
    mut ids: mpsc::UnboundedReceiver<i64>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::new();
    while let Some(id) = ids.recv().await {
        batch.push(id);
        while let Ok(id) = ids.try_recv() {
            batch.push(id);
        }
        let now = worker.clock.now();
        persist("record deliveries", &shutdown, || worker.store.done(&batch, now)).await;
        batch.clear();
    }
}

/// Runs a store write until it succeeds. An item this worker holds must reach the store as
/// done, failed or given up: otherwise it stays leased to this process, whose heartbeat renews
/// every lease it holds, and its lane waits behind it. Once the worker stops, three attempts
/// more at most: the lease then runs out and another process takes the item (at least once).
async fn persist<F, Fut>(what: &str, shutdown: &CancellationToken, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
{
    let mut failures = 0;
    loop {
        let Err(err) = write().await else { return };
        failures += 1;
        tracing::warn!(error = %err, failures, "delivery: cannot {what}; trying again");
        if shutdown.is_cancelled() && failures >= 3 {
            return;
        }
        tokio::time::sleep(RetryPolicy::CALL.backoff(failures)).await;
    }
}

/// A hand-off request's reference for the log (a reply has none: its lane is a chat id, which
/// stays out of the log).
fn reference(item: &Queued) -> &str {
    item.request.as_ref().map_or("", |r| r.reference.as_str())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
