//! The service every adapter calls: applies one platform update to its stored conversation.
//!
//! `handle` loads the conversation, steps the engine on the flow version the conversation
//! started on, and commits the new state, the event id and the log entries in one transaction,
//! compare-and-swap on the revision it read. Within one process, updates of one conversation
//! take turns (a striped lock); across processes the compare-and-swap decides, and the loser
//! re-reads and re-applies (its press may then be stale, which the engine answers).
//!
//! What a step sends is part of the step: [`Service::handle_planned`] renders the outcome
//! before the commit, and the outgoing items it plans are written in the step's transaction
//! (the outbox). A process that delivers a sink ([`Service::serve`]) claims the items of its
//! sinks at commit and finds them in its [`Mailbox`]; anything else waits for a worker's
//! `OutboxStore::claim`.

use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use flowbot_core::{
    Claim, Clock, Commit, Committed, Conversation, ConversationKey, Deployment, Expected, Flow,
    FlowVersion, Handoff, Input, NewOutgoing, NewRequest, Outcome, ParamOrigins, Params, Problems,
    Prompt, Purged, Queued, QueuedRequest, Store, StoreError, Stored, Timestamp, Transition,
    load_flow_in, reference,
};
use serde_json::json;

use crate::clock::SystemClock;
use crate::mailbox::Mailbox;
use crate::metrics::{Metrics, Refused};
use crate::recent::Recent;

/// How many times a conflicting update is re-read and re-applied before giving up.
const MAX_ATTEMPTS: usize = 64;
/// Lock stripes: updates of conversations in different stripes run in parallel.
const STRIPES: usize = 1024;
/// Conversations kept in memory after their last write, so the next step needs no read: the
/// ones used last, at most this many (a miss costs one read). A finished conversation is not
/// kept: most are never touched again.
const CACHED: usize = 20_000;

/// The deployment's rules for conversations.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Values for the flow's parameters.
    pub params: Params,
    /// Where the deployment set them, for problems with a value (on start and on a reload).
    pub param_origins: ParamOrigins,
    /// After this pause (ms) a returning user is asked whether to resume; `None`: never.
    pub resume_after: Option<u64>,
    /// Conversations idle this long (ms) are over: the next update starts a new one, and
    /// `purge` deletes them.
    pub expire_after: u64,
    /// How long (ms) processed event ids are kept for deduplication.
    pub keep_events_for: u64,
    /// How long (ms) personal data (hand-off requests, form drafts) is kept before `purge`
    /// deletes it.
    pub keep_personal_data_for: u64,
    /// The help-desk destinations a submitted form is delivered to (by name); empty: the
    /// request is kept and shown to the user to send themselves.
    pub destinations: Vec<String>,
    /// Where the time comes from ([`Service::now`]).
    pub clock: Arc<dyn Clock>,
    /// How long outbox items claimed at commit are leased to this process (its worker renews
    /// the lease while it holds them).
    pub lease: Duration,
    /// The limits of the platforms this deployment runs on: the flow, and every reload, is
    /// checked against them.
    pub limits: Vec<flowbot_core::Limits>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            params: Params::new(),
            param_origins: ParamOrigins::new(),
            resume_after: Some(flowbot_core::DEFAULT_RESUME_AFTER_MS),
            expire_after: 30 * DAY_MS,
            keep_events_for: 7 * DAY_MS,
            keep_personal_data_for: 90 * DAY_MS,
            destinations: Vec::new(),
            clock: Arc::new(SystemClock),
            lease: Duration::from_secs(10),
            limits: Vec::new(),
        }
    }
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// One inbound update.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    pub key: &'a ConversationKey,
    /// The platform's id for this event (Telegram update id, Discord interaction id, …),
    /// prefixed by the platform; `None` where the platform has none (the terminal).
    pub event: Option<&'a str>,
    pub input: Input<'a>,
    pub now: Timestamp,
}

/// What became of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled<R> {
    /// Applied (or answered without a change); the adapter sends what `render` made.
    Done(R),
    /// The event was processed before: acknowledge it, send nothing.
    Duplicate,
}

/// What a step sends: `now`, for the adapter to use at once (an inline answer, a value for
/// the caller), and `later`, the outgoing items stored with the step and delivered from the
/// outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned<R> {
    pub now: R,
    pub later: Vec<Outgoing>,
    /// Stored too, but only if a reply of the same lane was given up since the conversation
    /// last changed: for a press on an old button while the current question's message was
    /// never delivered, that question again. (Checked only for a step that changed nothing.)
    pub reshow: Vec<Outgoing>,
}

impl<R> Planned<R> {
    /// A plan without a conditional part.
    pub fn new(now: R, later: Vec<Outgoing>) -> Self {
        Planned { now, later, reshow: Vec::new() }
    }
}

/// One outgoing item a step plans (see `flowbot_core::NewOutgoing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Who delivers it: `telegram`, `discord`, …
    pub sink: String,
    /// The chat: the items of one `(sink, lane)` go out in order.
    pub lane: String,
    /// What to send, opaque to the store (the adapter's JSON).
    pub body: String,
}

/// What [`Service::handle_planned`] did with a step's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered<R> {
    /// The plan's `now`.
    pub now: R,
    /// Every outbox item the step wrote, in order, with its id: the planned items, then a
    /// submitted request's deliveries (one per destination).
    pub queued: Vec<Queued>,
    /// The ids of those claimed for this process at commit and pushed into its [`Mailbox`]
    /// (its worker sends them); the others wait for a worker's `claim`.
    pub claimed: Vec<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the flow does not load: {0}")]
    Flow(Problems),
    #[error("conversation {0}: still conflicting after {MAX_ATTEMPTS} attempts")]
    Contention(ConversationKey),
}

/// Applies updates to stored conversations. Cheap to share (`Arc<Service>`).
#[derive(Debug)]
pub struct Service {
    store: Arc<dyn Store>,
    options: ServiceOptions,
    current: RwLock<Arc<Flow>>,
    /// Compiled older versions, by flow id and version.
    versions: Mutex<HashMap<(String, FlowVersion), Arc<Flow>>>,
    stripes: Box<[tokio::sync::Mutex<()>]>,
    /// The last state this process wrote of each recent conversation. Only a hint: a
    /// write based on a stale entry (another process wrote since) fails its compare-and-swap
    /// and the conversation is read again. Nothing is acknowledged from here.
    cache: Mutex<Recent<ConversationKey, Stored>>,
    /// This process's id as an owner of outbox leases.
    owner: String,
    /// The sinks this process delivers: their items are claimed at commit.
    serving: RwLock<HashSet<String>>,
    /// Items claimed at commit, for this process's worker.
    mailbox: Arc<Mailbox>,
    metrics: Arc<Metrics>,
}

impl Service {
    /// Compiles the flow, keeps its version in the store, and serves it to new conversations.
    pub async fn new(
        store: Arc<dyn Store>,
        source: &str,
        origin: &str,
        options: ServiceOptions,
        now: Timestamp,
    ) -> Result<Self, ServiceError> {
        let flow = compile(source, origin, &options)?;
        store.save_flow(flow.id(), flow.version(), source, now).await?;
        let stripes = (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let metrics = Arc::new(Metrics::new());
        metrics.build_info(env!("CARGO_PKG_VERSION"), &flow.version().to_string());
        Ok(Service {
            store,
            options,
            current: RwLock::new(Arc::new(flow)),
            versions: Mutex::new(HashMap::new()),
            stripes,
            cache: Mutex::new(Recent::new(CACHED)),
            owner: owner_id(),
            serving: RwLock::new(HashSet::new()),
            mailbox: Arc::new(Mailbox::new()),
            metrics,
        })
    }

    /// The process's metrics, which the service, the platforms and the worker record.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Makes a changed flow the one new conversations use; running ones finish on theirs.
    pub async fn reload(
        &self,
        source: &str,
        origin: &str,
        now: Timestamp,
    ) -> Result<FlowVersion, ServiceError> {
        let flow = compile(source, origin, &self.options)?;
        self.store.save_flow(flow.id(), flow.version(), source, now).await?;
        let version = flow.version();
        self.metrics.build_info(env!("CARGO_PKG_VERSION"), &version.to_string());
        let previous = std::mem::replace(&mut *self.write_current(), Arc::new(flow));
        self.cache().insert((previous.id().to_owned(), previous.version()), previous);
        Ok(version)
    }

    /// The flow new conversations start on.
    pub fn flow(&self) -> Arc<Flow> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The time now, by the service's clock.
    pub fn now(&self) -> Timestamp {
        self.options.clock.now()
    }

    /// The service's clock, for the adapters and workers that run beside it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.options.clock.clone()
    }

    /// This process's owner id for outbox leases (random, 16 hex digits).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How long items claimed at commit are leased.
    pub fn lease(&self) -> Duration {
        self.options.lease
    }

    /// Where items claimed at commit go: this process's delivery worker reads them here.
    pub fn mailbox(&self) -> Arc<Mailbox> {
        self.mailbox.clone()
    }

    /// Makes this process the deliverer of `sinks` (platforms, hand-off destinations): from
    /// now on, a step whose outbox items all go to served sinks claims them at commit and
    /// pushes them into the [`Mailbox`]. Before (or for a step with any other sink), nothing
    /// is claimed at commit: the items wait for a worker's `claim`. Replaces the set.
    pub fn serve(&self, sinks: &[&str]) {
        let mut serving = self.serving.write().unwrap_or_else(PoisonError::into_inner);
        *serving = sinks.iter().map(|&s| s.to_owned()).collect();
    }

    /// Applies one update; `render` turns the outcome into what the adapter will send (after
    /// the commit). Stores nothing to send: see [`Service::handle_planned`].
    pub async fn handle<R>(
        &self,
        update: Update<'_>,
        render: impl FnOnce(&Flow, &Outcome<'_>) -> R,
    ) -> Result<Handled<R>, ServiceError> {
        let handled = self.run(update, |_, _| (Vec::new(), Vec::new()), render).await?;
        Ok(match handled {
            Handled::Done((now, _, _)) => {
                // Answered inline (the caller returns it at once): the step's latency ends here.
                let took = self.now().0.saturating_sub(update.now.0);
                self.metrics.step_latency(&update.key.platform, Duration::from_millis(took));
                Handled::Done(now)
            }
            Handled::Duplicate => Handled::Duplicate,
        })
    }

    /// Applies one update with what it sends: `render` plans the outcome's messages before the
    /// commit (once per compare-and-swap attempt; the last attempt's plan is the one kept),
    /// and the plan's `later` items are written in the step's transaction. A duplicate writes
    /// and returns nothing. An unchanged step without an event id is committed only when it
    /// plans items.
    pub async fn handle_planned<R>(
        &self,
        update: Update<'_>,
        mut render: impl FnMut(&Flow, &Outcome<'_>) -> Planned<R>,
    ) -> Result<Handled<Delivered<R>>, ServiceError> {
        // A mutex, not a cell: the future must stay `Send`.
        let last: Mutex<Option<R>> = Mutex::new(None);
        let handled = self
            .run(
                update,
                |flow, outcome| {
                    let plan = render(flow, outcome);
                    *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(plan.now);
                    (plan.later, plan.reshow)
                },
                |_, _| (),
            )
            .await?;
        Ok(match handled {
            Handled::Done(((), queued, claimed)) => {
                let now = last
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expect("planned before every commit");
                Handled::Done(Delivered { now, queued, claimed })
            }
            Handled::Duplicate => Handled::Duplicate,
        })
    }

    /// Records the event `update.event` as processed without stepping any conversation: `true`
    /// the first time, `false` for a redelivery (counted as a duplicate). For a platform that
    /// must act on an event before its step can be keyed (Slack posts a thread's first
    /// message to learn the thread); the step that follows carries no event id. An update
    /// without an event id is always new.
    pub async fn record_event(&self, update: Update<'_>) -> Result<bool, ServiceError> {
        let Some(event) = update.event else { return Ok(true) };
        let platform = update.key.platform.as_str();
        let commit = Commit {
            key: update.key,
            expected: Expected::Absent,
            state: None,
            event: Some(event),
            transitions: &[],
            request: None,
            outgoing: &[],
            claim: None,
            now: update.now,
        };
        match self.store.commit(&commit).await? {
            Committed::Duplicate => {
                self.metrics.duplicate(platform, input_kind(&update.input));
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// The step: `plan` makes the items to store (on each attempt), `render` what to return
    /// (once, after the commit).
    async fn run<R>(
        &self,
        update: Update<'_>,
        mut plan: impl FnMut(&Flow, &Outcome<'_>) -> (Vec<Outgoing>, Vec<Outgoing>),
        render: impl FnOnce(&Flow, &Outcome<'_>) -> R,
    ) -> Result<Handled<(R, Vec<Queued>, Vec<i64>)>, ServiceError> {
        let _turn = self.stripe(update.key).lock().await;
        let platform = update.key.platform.as_str();
        let kind = input_kind(&update.input);
        self.metrics.update(platform, kind);
        for attempt in 0..MAX_ATTEMPTS {
            // Taken out, not copied: under the stripe's lock no other step of this process
            // reads it, and a committed change puts the new state back.
            let cached = if attempt == 0 { self.take_cached(update.key) } else { None };
            let from_cache = cached.is_some();
            let loaded = match cached {
                Some(stored) => Some(stored),
                None => self.store.load(update.key).await?,
            };
            let (flow, conversation, expected) = self.resolve(loaded, update.now).await?;
            let (conversation, mut outcome, fresh) = match conversation {
                Some(mut c) => {
                    let outcome = c.step(&flow, update.input, update.now);
                    (c, outcome, false)
                }
                None => {
                    let (c, outcome) = Conversation::open(&flow, update.input, update.now);
                    (c, outcome, true)
                }
            };
            let changed = fresh || outcome.changed;
            if !changed && from_cache {
                // A refusal (an old button, an unmatched answer) changes nothing, so no
                // compare-and-swap would catch a cached state another replica has moved past:
                // judge it again on the stored state (the entry is already out of the cache).
                continue;
            }
            let session = match expected {
                Expected::Revision { session, .. } | Expected::Replace { session, .. } => session,
                Expected::Absent => 0,
            };
            let request = outcome.handoff.as_mut().map(|handoff| {
                // Unique by construction: one revision of one session submits once. (The
                // engine's own reference knows neither.)
                handoff.submission.reference = reference(&[
                    update.key.to_string().as_bytes(),
                    &session.to_le_bytes(),
                    &conversation.revision().to_le_bytes(),
                    &update.now.0.to_le_bytes(),
                ]);
                Request::of(&flow, handoff, &update)
            });
            // Planned once the reference is set, so that the plan can quote it.
            let (mut later, reshow) = plan(&flow, &outcome);
            if !changed && let Some(first) = reshow.first() {
                let since = conversation.updated_at();
                if self.store.gave_up_since(&first.sink, &first.lane, since).await? {
                    later.extend(reshow);
                }
            }
            if !changed && update.event.is_none() && later.is_empty() {
                return Ok(Handled::Done((render(&flow, &outcome), Vec::new(), Vec::new())));
            }
            let stored = Stored {
                session,
                flow_id: flow.id().to_owned(),
                flow_version: flow.version(),
                state: conversation.snapshot(&flow),
            };
            let transitions: Vec<Transition> =
                outcome.event.iter().map(|e| Transition::of(&flow, *e, update.now)).collect();
            let destinations: &[String] =
                if request.is_some() { &self.options.destinations } else { &[] };
            let new_request = request.as_ref().map(|r| r.as_new(destinations));
            let outgoing: Vec<NewOutgoing<'_>> = later
                .iter()
                .map(|o| NewOutgoing { sink: &o.sink, lane: &o.lane, body: &o.body })
                .collect();
            let claim = self.claim_for(&later, destinations);
            let commit = Commit {
                key: update.key,
                expected,
                state: changed.then_some(&stored),
                event: update.event,
                transitions: &transitions,
                request: new_request.as_ref(),
                outgoing: &outgoing,
                claim,
                now: update.now,
            };
            match self.store.commit(&commit).await {
                Ok(Committed::Applied { session, outgoing: ids, claimed }) => {
                    if changed && !conversation.is_finished(&flow) {
                        self.remember(update.key, Stored { session, ..stored });
                    }
                    self.record(&flow, &update, &outcome, conversation.node(), changed);
                    if let Some(r) = &request {
                        // The reference only: the request itself is personal data.
                        tracing::info!(reference = %r.reference, "hand-off request stored");
                    }
                    let queued = queued(&later, request.as_ref(), destinations, &ids, update.now);
                    if !claimed.is_empty() {
                        let mine: Vec<Queued> =
                            queued.iter().filter(|q| claimed.contains(&q.id)).cloned().collect();
                        self.mailbox.push(mine);
                    }
                    return Ok(Handled::Done((render(&flow, &outcome), queued, claimed)));
                }
                Ok(Committed::Duplicate) => {
                    self.forget(update.key);
                    self.metrics.duplicate(platform, kind);
                    return Ok(Handled::Duplicate);
                }
                Ok(Committed::Conflict) => {
                    self.forget(update.key);
                    self.metrics.conflict(platform);
                    tokio::task::yield_now().await;
                }
                Err(err) => {
                    self.forget(update.key);
                    return Err(err.into());
                }
            }
        }
        Err(ServiceError::Contention(update.key.clone()))
    }

    /// The metrics of one committed step.
    fn record(
        &self,
        flow: &Flow,
        update: &Update<'_>,
        outcome: &Outcome<'_>,
        at: flowbot_core::NodeIx,
        changed: bool,
    ) {
        let platform = update.key.platform.as_str();
        let m = &self.metrics;
        m.step(platform);
        if matches!(outcome.event, Some(flowbot_core::Event::Started { .. })) {
            m.started(platform);
        }
        let node = flow.node(at);
        if changed && node.is_ending() {
            m.ended(platform, node.id());
        }
        if outcome.handoff.is_some() {
            m.handoff_request();
        }
        let stale = outcome.replies.iter().any(|r| {
            matches!(r, flowbot_core::Reply::Notice { kind: flowbot_core::NoticeKind::Stale, .. })
        });
        if let (Input::Press(token) | Input::Answer { token, .. }, true) = (update.input, stale) {
            // A token this flow could have printed is an old button; anything else is forged.
            let plausible =
                flowbot_core::Token::parse(token).is_some_and(|t| flow.find(t.node).is_some());
            m.refused(platform, if plausible { Refused::Stale } else { Refused::Forged });
        }
    }

    /// A claim for this process, if it serves every sink the step writes to.
    fn claim_for(&self, later: &[Outgoing], destinations: &[String]) -> Option<Claim<'_>> {
        if later.is_empty() && destinations.is_empty() {
            return None;
        }
        let served = {
            let serving = self.serving.read().unwrap_or_else(PoisonError::into_inner);
            later
                .iter()
                .map(|o| o.sink.as_str())
                .chain(destinations.iter().map(String::as_str))
                .all(|sink| serving.contains(sink))
        };
        served.then(|| Claim {
            owner: &self.owner,
            until: Timestamp(self.now().0.saturating_add(millis(self.options.lease))),
        })
    }

    /// The prompt a conversation waits at, rendered, without changing it; `None` when there is
    /// no live conversation under `key`.
    pub async fn current<R>(
        &self,
        key: &ConversationKey,
        now: Timestamp,
        render: impl FnOnce(&Flow, Prompt<'_>) -> R,
    ) -> Result<Option<R>, ServiceError> {
        let loaded = self.store.load(key).await?;
        let (flow, conversation, _) = self.resolve(loaded, now).await?;
        Ok(conversation.map(|c| render(&flow, c.prompt(&flow))))
    }

    /// The live conversation under `key` with its flow, rendered, without changing it (its
    /// prompt and the path that led there: a page's history); `None` when there is none.
    pub async fn conversation<R>(
        &self,
        key: &ConversationKey,
        now: Timestamp,
        render: impl FnOnce(&Flow, &Conversation) -> R,
    ) -> Result<Option<R>, ServiceError> {
        let loaded = self.store.load(key).await?;
        let (flow, conversation, _) = self.resolve(loaded, now).await?;
        Ok(conversation.map(|c| render(&flow, &c)))
    }

    /// Deletes expired conversations, old event ids and unused flow versions.
    pub async fn purge(&self, now: Timestamp) -> Result<Purged, ServiceError> {
        self.lock_cache().clear();
        let flow = self.flow();
        let keep = [(flow.id().to_owned(), flow.version())];
        let idle_before = Timestamp(now.0.saturating_sub(self.options.expire_after));
        let events_before = Timestamp(now.0.saturating_sub(self.options.keep_events_for));
        let personal_before = Timestamp(now.0.saturating_sub(self.options.keep_personal_data_for));
        Ok(self.store.purge(idle_before, events_before, personal_before, &keep).await?)
    }

    /// The flow, conversation and compare-and-swap expectation for what was loaded. A
    /// conversation that expired, that ended on an older flow version, or whose version can no
    /// longer be compiled is replaced by a new one on the current flow.
    async fn resolve(
        &self,
        loaded: Option<Stored>,
        now: Timestamp,
    ) -> Result<(Arc<Flow>, Option<Conversation>, Expected), ServiceError> {
        let Some(stored) = loaded else { return Ok((self.flow(), None, Expected::Absent)) };
        let replace =
            Expected::Replace { session: stored.session, revision: stored.state.revision };
        if now.0.saturating_sub(stored.state.updated_at.0) >= self.options.expire_after {
            return Ok((self.flow(), None, replace));
        }
        let Some(flow) = self.version(&stored.flow_id, stored.flow_version).await? else {
            return Ok((self.flow(), None, replace));
        };
        let Ok(conversation) = Conversation::restore(&flow, &stored.state) else {
            return Ok((self.flow(), None, replace));
        };
        let current = self.flow();
        if conversation.is_finished(&flow) && !Arc::ptr_eq(&flow, &current) {
            // It ended on an older version: whatever comes next is a new conversation.
            return Ok((current, None, replace));
        }
        let expected =
            Expected::Revision { session: stored.session, revision: stored.state.revision };
        Ok((flow, Some(conversation), expected))
    }

    /// The compiled flow of a stored conversation's version, if it can still be had.
    async fn version(
        &self,
        flow_id: &str,
        version: FlowVersion,
    ) -> Result<Option<Arc<Flow>>, ServiceError> {
        let current = self.flow();
        if current.id() == flow_id && current.version() == version {
            return Ok(Some(current));
        }
        let key = (flow_id.to_owned(), version);
        if let Some(flow) = self.cache().get(&key) {
            return Ok(Some(flow.clone()));
        }
        let Some(source) = self.store.flow_source(flow_id, version).await? else { return Ok(None) };
        let Ok(flow) = compile(&source, &format!("{flow_id}@{version}"), &self.options) else {
            return Ok(None);
        };
        let flow = Arc::new(flow);
        self.cache().insert(key, flow.clone());
        Ok(Some(flow))
    }

    fn take_cached(&self, key: &ConversationKey) -> Option<Stored> {
        self.lock_cache().take(key)
    }

    fn remember(&self, key: &ConversationKey, stored: Stored) {
        self.lock_cache().put(key.clone(), stored);
    }

    fn forget(&self, key: &ConversationKey) {
        self.lock_cache().remove(key);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Recent<ConversationKey, Stored>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stripe(&self, key: &ConversationKey) -> &tokio::sync::Mutex<()> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        &self.stripes[(hash % STRIPES as u64) as usize]
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, FlowVersion), Arc<Flow>>> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_current(&self) -> std::sync::RwLockWriteGuard<'_, Arc<Flow>> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn compile(source: &str, origin: &str, options: &ServiceOptions) -> Result<Flow, ServiceError> {
    let deployment =
        Deployment { params: &options.params, origins: &options.param_origins, limits: &[] };
    let flow = load_flow_in(source, origin, &deployment)
        .map(|f| {
            f.with_resume_after(options.resume_after)
                .with_delivery(!options.destinations.is_empty())
        })
        .map_err(ServiceError::Flow)?;
    let limits: Vec<&flowbot_core::Limits> = options.limits.iter().collect();
    flow.check_limits(&limits).map_err(ServiceError::Flow)?;
    Ok(flow)
}

/// The kind of an update, as metrics count it.
fn input_kind(input: &Input<'_>) -> &'static str {
    match input {
        Input::Start { .. } => "start",
        Input::Press(_) => "press",
        Input::Text(t) if t.trim_start().starts_with('/') => "command",
        Input::Text(_) => "text",
        Input::Answer { .. } => "answer",
        Input::Back | Input::Restart | Input::Help => "command",
    }
}

/// The items a step wrote, as a worker would claim them: `ids` are those of `later`, then of
/// the request's deliveries.
fn queued(
    later: &[Outgoing],
    request: Option<&Request>,
    destinations: &[String],
    ids: &[i64],
    now: Timestamp,
) -> Vec<Queued> {
    let replies = later.iter().map(|o| (o.sink.clone(), o.lane.clone(), o.body.clone(), None));
    let handoffs = request.into_iter().flat_map(|r| {
        destinations.iter().map(move |d| {
            let request = QueuedRequest {
                reference: r.reference.clone(),
                text: r.text.clone(),
                payload: r.payload.clone(),
            };
            (d.clone(), r.reference.clone(), String::new(), Some(request))
        })
    });
    replies
        .chain(handoffs)
        .zip(ids)
        .map(|((sink, lane, body, request), &id)| Queued {
            id,
            sink,
            lane,
            body,
            request,
            attempts: 0,
            created_at: now,
        })
        .collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A random id for this process: 16 hex digits (from the time and the process id should the
/// system have no randomness to give).
fn owner_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        let t = crate::now().0 ^ (u64::from(std::process::id()) << 40);
        bytes = t.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A submitted form as the store keeps it: the text for chats, the JSON for webhooks.
#[derive(Debug)]
struct Request {
    reference: String,
    flow_id: String,
    form: String,
    text: String,
    payload: String,
}

impl Request {
    fn of(flow: &Flow, handoff: &Handoff<'_>, update: &Update<'_>) -> Self {
        let s = &handoff.submission;
        let text = handoff.text();
        // No user ids: the desk answers through the reference and the addresses given.
        let payload = json!({
            "type": "flowbot.handoff",
            "reference": s.reference,
            "submitted_at": update.now.0,
            "platform": update.key.platform,
            "flow": {"id": flow.id(), "version": flow.version().to_string()},
            "form": {"id": s.form, "title": s.title},
            "answers": s.answers.iter().map(|a| json!({
                "field": a.field, "label": a.label, "value": a.value, "unknown": a.value.is_none(),
            })).collect::<Vec<_>>(),
            "ending": {"id": s.ending, "title": s.ending_title},
            "path": s.path.iter().map(|(q, a)| json!({"question": q, "answer": a}))
                .collect::<Vec<_>>(),
            "text": text,
            // The mail destination's subject, from the flow's `mail_subject`.
            "subject": handoff.subject(),
        });
        Request {
            reference: s.reference.clone(),
            flow_id: flow.id().to_owned(),
            form: s.form.clone(),
            text,
            payload: payload.to_string(),
        }
    }

    fn as_new<'a>(&'a self, destinations: &'a [String]) -> NewRequest<'a> {
        NewRequest {
            reference: &self.reference,
            flow_id: &self.flow_id,
            form: &self.form,
            text: &self.text,
            payload: &self.payload,
            destinations,
        }
    }
}
