//! The persistence contract: what a conversation store must do, owned by the core.
//!
//! Implementations live outside the core (`flowbot-store`: SQLite and PostgreSQL); the core only
//! defines the data and the semantics every backend must share, which one test suite checks:
//!
//! - A conversation is keyed by `(platform, conversation, user)`.
//! - [`ConversationStore::commit`] is a compare-and-swap on the revision read: two writers of one
//!   conversation never both succeed; the loser gets [`Committed::Conflict`] and re-reads.
//! - The platform's event id is recorded in the same transaction as the change it caused; a
//!   redelivered event gets [`Committed::Duplicate`] and changes nothing.
//! - Transitions (the event log) are written in that transaction too, and so are the step's
//!   outgoing items (its replies, and a submitted request's hand-off deliveries): the outbox,
//!   which a delivery worker drains through [`OutboxStore`], in order per `(sink, lane)`.
//!
//! The contract is two traits, [`ConversationStore`] and [`OutboxStore`]; [`Store`] is both.

use std::fmt;

use async_trait::async_trait;

use crate::Timestamp;
use crate::flow::FlowVersion;
use crate::snapshot::{Snapshot, Transition};

/// Who a conversation is with, and where: one per user per chat per platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationKey {
    /// The platform's name (`cli` for the terminal).
    pub platform: String,
    /// The chat or channel id on that platform.
    pub conversation: String,
    /// The user's id on that platform.
    pub user: String,
}

impl ConversationKey {
    pub fn new(platform: &str, conversation: &str, user: &str) -> Self {
        ConversationKey {
            platform: platform.to_owned(),
            conversation: conversation.to_owned(),
            user: user.to_owned(),
        }
    }
}

/// A conversation as stored, with the flow version it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The store's id of this conversation session (a new one when a conversation starts over
    /// after expiry); the event log refers to it, never to the user.
    pub session: i64,
    pub flow_id: String,
    pub flow_version: FlowVersion,
    pub state: Snapshot,
}

/// What [`ConversationStore::commit`] compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// No conversation under the key: insert one.
    Absent,
    /// The stored conversation has this session and revision: update it in place.
    Revision { session: i64, revision: u64 },
    /// The stored conversation (this session and revision) expired: replace it with a new
    /// session.
    Replace { session: i64, revision: u64 },
}

/// One atomic write: a state change, the event that caused it, and its log entries.
#[derive(Debug, Clone)]
pub struct Commit<'a> {
    pub key: &'a ConversationKey,
    pub expected: Expected,
    /// The new state; `None` when the input changed nothing (the event id is still recorded).
    pub state: Option<&'a Stored>,
    /// The platform's id of the inbound event, for deduplication.
    pub event: Option<&'a str>,
    pub transitions: &'a [Transition],
    /// A hand-off request submitted by this step, written in the same transaction with one
    /// pending outbox item per destination (sink = the destination's name, lane = the
    /// request's reference, so hand-offs never wait for one another; empty body).
    pub request: Option<&'a NewRequest<'a>>,
    /// What the step sends, in order: written (due at once) only when the commit applies,
    /// also when `state` is `None` (an unchanged step still answers, e.g. a stale press).
    pub outgoing: &'a [NewOutgoing<'a>],
    /// Claim the items this commit writes for the process that made them (see [`Claim`]).
    pub claim: Option<Claim<'a>>,
    /// The time of the step: the items' `created_at` and first due time.
    pub now: Timestamp,
}

/// A platform call a step makes, stored with the step and delivered later, in order per lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOutgoing<'a> {
    /// Who delivers it: a platform's name, or a hand-off destination's sink.
    pub sink: &'a str,
    /// The chat: the items of one `(sink, lane)` go out in order, one at a time.
    pub lane: &'a str,
    /// Opaque to the store (the adapter's JSON). May quote personal data: a delivered reply is
    /// deleted, a given-up one cleared.
    pub body: &'a str,
}

/// Claims the items a commit writes for the process that made them, so that it delivers them
/// at once without asking the store.
///
/// Applies to every item the commit writes (its `outgoing` items and its hand-off
/// deliveries), per lane, and only where nothing could overtake: an item is claimed only if
/// every item of its `(sink, lane)` written before this commit that is still pending is held by
/// the same owner under a live lease (its worker has them, and sends these after them). A
/// lane's items of one commit are claimed all or none. An item not claimed waits for an
/// [`OutboxStore::claim`] once the lane's earlier items are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub owner: &'a str,
    pub until: Timestamp,
}

/// One stored outgoing item (a reply, or a hand-off delivery), as a worker gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The store's id; increasing in the order items were written.
    pub id: i64,
    pub sink: String,
    pub lane: String,
    /// Empty for hand-off deliveries.
    pub body: String,
    /// Hand-off deliveries: the request to deliver.
    pub request: Option<QueuedRequest>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// The request a hand-off delivery carries (personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRequest {
    pub reference: String,
    /// The ready-to-send text (what chat destinations receive).
    pub text: String,
    /// The request as a JSON document (what webhook destinations receive).
    pub payload: String,
}

/// A submitted hand-off request (personal data), as [`Commit`] writes it.
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    /// The reference number the user is shown; unique.
    pub reference: &'a str,
    pub flow_id: &'a str,
    /// The form's id in the flow.
    pub form: &'a str,
    /// The ready-to-send text (what chat destinations receive).
    pub text: &'a str,
    /// The request as a JSON document (what webhook destinations receive).
    pub payload: &'a str,
    /// The names of the destinations to deliver to; one pending outbox item each. Empty: the
    /// request is only kept (the user sends the text themselves).
    pub destinations: &'a [String],
}

/// How the outbox (and the inbox) stands, for `flowbot stats`, monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Hand-off requests kept.
    pub requests: u64,
    /// Hand-off deliveries not yet delivered (and not given up).
    pub pending: u64,
    /// Hand-off deliveries delivered (kept until their request is purged).
    pub delivered: u64,
    /// Hand-off deliveries given up.
    pub gave_up: u64,
    /// Replies not yet delivered (and not given up). Delivered replies are deleted.
    pub replies_pending: u64,
    /// Replies given up (kept, without their body, until purged).
    pub replies_gave_up: u64,
    /// When the oldest pending item (reply or hand-off delivery) was written.
    pub oldest_pending: Option<Timestamp>,
    /// Updates received (long polling) and kept in the inbox, not yet handled and forgotten.
    pub updates_kept: u64,
}

/// The result of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Written; the conversation's session id (new for `Absent` and `Replace`).
    Applied {
        session: i64,
        /// The ids of the outbox items written, in order: the commit's `outgoing` items, then
        /// its request's deliveries in the order of its destinations. Increasing.
        outgoing: Vec<i64>,
        /// Those of them claimed for `Commit::claim`'s owner (see [`Claim`]), in order.
        claimed: Vec<i64>,
    },
    /// Another writer changed the conversation first: re-read and re-apply.
    Conflict,
    /// The event was already processed: nothing was written.
    Duplicate,
}

/// A failure of the store itself (not a conflict or a duplicate, which are results).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("stored conversation is corrupt: {0}")]
    Corrupt(String),
}

/// What `purge` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub conversations: u64,
    pub events: u64,
    pub flow_versions: u64,
    /// Hand-off requests (with their deliveries) older than the retention period.
    pub requests: u64,
    /// Reply items written before the retention period (given up, or still pending with no
    /// worker to deliver them): their bodies may quote personal data.
    pub replies: u64,
    /// Form drafts cleared from idle conversations older than the retention period.
    pub drafts: u64,
}

/// Counts for `flowbot stats`, per flow version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionStats {
    pub flow_id: String,
    pub flow_version: String,
    /// Conversations (sessions) on this version with a transition in the time range.
    pub conversations: u64,
    /// `(node, sessions that started there)`: the flow's first question, or an entry point's.
    pub started: Vec<(String, u64)>,
    /// `(node, sessions that reached it)`, any node; endings are picked out by the caller.
    pub reached: Vec<(String, u64)>,
    /// `(from, choice, sessions that chose it)` of answers.
    pub edges: Vec<(String, u8, u64)>,
    /// `(form, sessions that submitted it)`.
    pub submitted: Vec<(String, u64)>,
    /// `(node, sessions whose last transition in the range left them there)`.
    pub stopped_at: Vec<(String, u64)>,
}

/// Conversations: load, compare-and-swap commit, flow versions, retention, statistics. Every
/// implementation passes the shared store suite.
#[async_trait]
pub trait ConversationStore: Send + Sync + fmt::Debug {
    /// The conversation under `key`, if any.
    async fn load(&self, key: &ConversationKey) -> Result<Option<Stored>, StoreError>;

    /// Writes a change atomically if the stored conversation is still as `commit.expected`
    /// says, and the event (if any) was not processed before: the state, the event id, the
    /// transitions, the request and the outgoing items, all or nothing.
    async fn commit(&self, commit: &Commit<'_>) -> Result<Committed, StoreError>;

    /// Keeps a flow version's source, so that conversations started on it can finish on it.
    async fn save_flow(
        &self,
        flow_id: &str,
        version: FlowVersion,
        source: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The source of a kept flow version.
    async fn flow_source(
        &self,
        flow_id: &str,
        version: FlowVersion,
    ) -> Result<Option<String>, StoreError>;

    /// Deletes conversations idle since before `idle_before` (and with them the personal data
    /// they hold), event ids recorded before `events_before`, and flow versions that no
    /// conversation uses any more, except those in `keep`.
    ///
    /// Personal data: hand-off requests created before `personal_before` are deleted with
    /// their deliveries (delivered or not), reply items written before it are deleted (given
    /// up or not), and the form drafts of conversations idle since before it are cleared.
    async fn purge(
        &self,
        idle_before: Timestamp,
        events_before: Timestamp,
        personal_before: Timestamp,
        keep: &[(String, FlowVersion)],
    ) -> Result<Purged, StoreError>;

    /// Statistics from the event log, per flow version, of the transitions at or after
    /// `since` and before `until` (`None`: that side open).
    async fn stats(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<Vec<VersionStats>, StoreError>;

    /// Whether the store can serve: the database answers and its schema is the one this build
    /// expects (`/readyz`). An in-memory store is always ready.
    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The deployment's secret named `name` (e.g. the web chat's session key): the one kept, or
    /// else `fresh`, kept from now on. The first writer wins across processes, and every caller
    /// gets the kept value. Never logged; `purge` leaves it.
    async fn secret(&self, name: &str, fresh: &[u8], now: Timestamp)
    -> Result<Vec<u8>, StoreError>;
}

/// The outbox: the outgoing items commits wrote (replies and hand-off deliveries), drained by
/// delivery workers in order per `(sink, lane)`, under leases. Delivery is at least once.
#[async_trait]
pub trait OutboxStore: Send + Sync + fmt::Debug {
    /// Claims up to `limit` due items (next attempt at or before `now`, not done, not given
    /// up, lease free or run out) that are each the head of their `(sink, lane)`: no earlier
    /// item of that lane is still pending (given-up items do not block). Sets their owner and
    /// lease. Two workers never hold one item under live leases. Oldest first.
    async fn claim(
        &self,
        now: Timestamp,
        owner: &str,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError> {
        self.claim_of(now, owner, lease_until, limit, None).await
    }

    /// [`OutboxStore::claim`], of the items of `sinks` only (`None`: of every sink). A worker
    /// claims only what it can deliver: another process's platform stays with that process.
    async fn claim_of(
        &self,
        now: Timestamp,
        owner: &str,
        lease_until: Timestamp,
        limit: u32,
        sinks: Option<&[&str]>,
    ) -> Result<Vec<Queued>, StoreError>;

    /// Extends every lease `owner` holds on a pending item to `lease_until` (a heartbeat).
    /// Returns how many.
    async fn renew(&self, owner: &str, lease_until: Timestamp) -> Result<u64, StoreError>;

    /// Delivered: reply items are deleted (their body may quote personal data); hand-off
    /// deliveries are marked delivered (counted until their request is purged).
    async fn done(&self, ids: &[i64], now: Timestamp) -> Result<(), StoreError>;

    /// A failed attempt: one more attempt, due again at `retry_at`, lease released. `error` is
    /// a short description without personal data (kept, bounded).
    async fn failed(&self, id: i64, retry_at: Timestamp, error: &str) -> Result<(), StoreError>;

    /// Given up (too old): no longer pending, no longer blocks its lane, counted; the body is
    /// cleared.
    async fn gave_up(&self, id: i64, now: Timestamp, error: &str) -> Result<(), StoreError>;

    /// The pending items of one `(sink, lane)`, oldest first, at most `limit`, read without
    /// claiming them: for a sink no worker delivers, whose items wait until their user comes
    /// back (the web chat's notices), then are marked [`OutboxStore::done`] by whoever showed
    /// them.
    async fn pending_in(
        &self,
        sink: &str,
        lane: &str,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError>;

    /// Whether an item of `(sink, lane)` written at or after `since` was given up (the current
    /// question was never delivered).
    async fn gave_up_since(
        &self,
        sink: &str,
        lane: &str,
        since: Timestamp,
    ) -> Result<bool, StoreError>;

    /// How the outbox stands: hand-off requests and deliveries, and replies.
    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError>;
}

/// The durable inbox of a poller: updates fetched from a platform and not handled yet.
///
/// A poller that may confirm an update only once it is safe (a long-polling offset) keeps what
/// it fetched here, confirms it at once, and handles it while fetching goes on.
/// After a restart it takes up what is left. An update handled and not forgotten yet (killed in
/// between) is handled again: its step's event id makes that a duplicate.
#[async_trait]
pub trait InboundStore: Send + Sync + fmt::Debug {
    /// In one transaction: keeps the `received` updates `(key, body)` of `source` (a key kept
    /// already stays as it is), then forgets the `handled` keys.
    async fn inbound(
        &self,
        source: &str,
        received: &[(i64, &str)],
        handled: &[i64],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The kept updates of `source` `(key, body)`, by key.
    async fn inbound_pending(&self, source: &str) -> Result<Vec<(i64, String)>, StoreError>;
}

/// A whole store: conversations, the outbox and the inbox. `Arc<dyn Store>` is what the
/// service holds.
pub trait Store: ConversationStore + OutboxStore + InboundStore {}

impl<T: ConversationStore + OutboxStore + InboundStore + ?Sized> Store for T {}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.platform, self.conversation, self.user)
    }
}

/// A kept hand-off request as the desk sees it (personal data): `flowbot requests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub reference: String,
    pub flow_id: String,
    /// The form's id in the flow.
    pub form: String,
    /// The ready-to-send text.
    pub text: String,
    /// The request as a JSON document (answers, ending, path).
    pub payload: String,
    pub created_at: Timestamp,
    /// The conversation it came from; `None` for requests stored before it was kept.
    pub key: Option<ConversationKey>,
    /// When the desk marked it done.
    pub completed_at: Option<Timestamp>,
    /// One per destination, in the order they were written.
    pub deliveries: Vec<DeliveryRecord>,
}

/// One destination's delivery of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The destination's sink (`handoff:NAME`).
    pub sink: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub gave_up_at: Option<Timestamp>,
    /// The last failure, without personal data.
    pub last_error: Option<String>,
}

/// Where a request stands, for the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestState {
    /// Kept with no destination to deliver to.
    Kept,
    /// A delivery is still to be made, and none has failed yet.
    Pending,
    /// A delivery was given up, or is being retried after a failure.
    Failed,
    /// Every destination has it.
    Delivered,
    /// The desk marked it done.
    Completed,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Kept => "kept",
            RequestState::Pending => "pending",
            RequestState::Failed => "failed",
            RequestState::Delivered => "delivered",
            RequestState::Completed => "completed",
        }
    }
}

impl DeliveryRecord {
    /// This delivery's own state (never `Completed` or `Kept`).
    pub fn state(&self) -> RequestState {
        if self.delivered_at.is_some() {
            RequestState::Delivered
        } else if self.gave_up_at.is_some() || self.last_error.is_some() {
            RequestState::Failed
        } else {
            RequestState::Pending
        }
    }
}

impl RequestRecord {
    /// Completed if marked so; else failed if any delivery failed, pending if any is still to
    /// be made, delivered once all are, kept when there is none.
    pub fn state(&self) -> RequestState {
        if self.completed_at.is_some() {
            return RequestState::Completed;
        }
        let states: Vec<RequestState> = self.deliveries.iter().map(DeliveryRecord::state).collect();
        if states.is_empty() {
            RequestState::Kept
        } else if states.contains(&RequestState::Failed) {
            RequestState::Failed
        } else if states.contains(&RequestState::Pending) {
            RequestState::Pending
        } else {
            RequestState::Delivered
        }
    }
}

/// What [`RequestStore::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Marked done now; the notice (if any) is queued, its outbox id given.
    Completed { notice: Option<i64> },
    /// It was marked done before: nothing written.
    Already,
    /// No request has that reference.
    Unknown,
}

/// The desk's inbox over the kept requests: list, show, resend, complete. Every
/// implementation passes the shared suite (`tests/requests.rs`).
#[async_trait]
pub trait RequestStore: Send + Sync + fmt::Debug {
    /// The requests created at or after `since` (all: `None`), oldest first, with their
    /// deliveries.
    async fn requests(&self, since: Option<Timestamp>) -> Result<Vec<RequestRecord>, StoreError>;

    /// The request with this reference.
    async fn request(&self, reference: &str) -> Result<Option<RequestRecord>, StoreError>;

    /// Queues the request's deliveries again, due at `now`: each existing one (delivered,
    /// given up or pending) becomes pending, and a delivery is added for each sink of
    /// `destinations` it has none for. Returns how many are queued; `None`: no such request.
    async fn resend(
        &self,
        reference: &str,
        destinations: &[String],
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError>;

    /// Marks the request done at `now` and, in the same transaction, writes `notice` (the
    /// completion notice to its user, a reply-like outbox item: deleted once delivered, purged
    /// with the personal data otherwise). Nothing is written if it was done already.
    async fn complete(
        &self,
        reference: &str,
        now: Timestamp,
        notice: Option<NewOutgoing<'_>>,
    ) -> Result<Completion, StoreError>;
}
