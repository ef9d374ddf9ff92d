//! The persistence contract: what a conversation store must do, owned by the core.
//!
//! Implementations live outside the core (`flowbot-store`: SQLite and PostgreSQL); the core only
//! defines the data and the semantics every backend must share, which one test suite checks:
//!
//! - A conversation is keyed by `(platform, conversation, user)`.
//! - [`Store::commit`] is a compare-and-swap on the revision read: two writers of one
//!   conversation never both succeed; the loser gets [`Committed::Conflict`] and re-reads.
//! - The platform's event id is recorded in the same transaction as the change it caused; a
//!   redelivered event gets [`Committed::Duplicate`] and changes nothing.
//! - Transitions (the event log) are written in that transaction too.

use std::fmt;

use async_trait::async_trait;

use crate::engine::{Conversation, Event, Step, Timestamp};
use crate::flow::{Flow, FlowVersion, NodeIx};

/// Who a conversation is with, and where: one per user per chat per platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationKey {
    /// `telegram`, `discord`, `cli`, …
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

/// A conversation's state in a form that outlives a flow's indices: node ids, not positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub node: String,
    pub revision: u64,
    pub entered: u64,
    /// `(question id, choice index)`, oldest first.
    pub path: Vec<(String, u8)>,
    pub misses: u8,
    pub awaiting_resume: bool,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    /// A form being filled in (its stage and answers so far), encoded by the core; `None`
    /// outside a form. Personal data: kept no longer than the conversation, and cleared by
    /// `purge` once older than the retention period.
    pub form: Option<String>,
}

/// Why a snapshot does not fit the flow it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("the flow has no node `{0}`")]
    UnknownNode(String),
    #[error("node `{node}` has no choice {choice}")]
    UnknownChoice { node: String, choice: u8 },
    #[error("malformed path `{0}`")]
    MalformedPath(String),
}

impl Snapshot {
    /// The path as stored: `q1:1 q2:0`.
    pub fn path_text(&self) -> String {
        let mut s = String::with_capacity(self.path.len() * 6);
        for (i, (node, choice)) in self.path.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(node);
            s.push(':');
            s.push_str(&choice.to_string());
        }
        s
    }

    /// Parses [`Snapshot::path_text`]'s form.
    pub fn parse_path(text: &str) -> Result<Vec<(String, u8)>, RestoreError> {
        text.split_whitespace()
            .map(|step| {
                let (node, choice) = step
                    .rsplit_once(':')
                    .ok_or_else(|| RestoreError::MalformedPath(text.to_owned()))?;
                let choice =
                    choice.parse().map_err(|_| RestoreError::MalformedPath(text.to_owned()))?;
                Ok((node.to_owned(), choice))
            })
            .collect()
    }
}

impl Conversation {
    /// The conversation as a [`Snapshot`] of `flow` (the flow it runs on).
    pub fn snapshot(&self, flow: &Flow) -> Snapshot {
        Snapshot {
            node: flow.node(self.node()).id().to_owned(),
            revision: self.revision(),
            entered: self.entered(),
            path: self
                .path()
                .iter()
                .map(|s| (flow.node(s.node).id().to_owned(), s.choice))
                .collect(),
            misses: self.misses(),
            awaiting_resume: self.is_awaiting_resume(),
            started_at: self.started_at(),
            updated_at: self.updated_at(),
            form: self.draft().map(crate::form::Draft::encode),
        }
    }

    /// Rebuilds a conversation from a snapshot taken on the same flow version.
    pub fn restore(flow: &Flow, snapshot: &Snapshot) -> Result<Self, RestoreError> {
        let node = find(flow, &snapshot.node)?;
        let path = snapshot
            .path
            .iter()
            .map(|(id, choice)| {
                let ix = find(flow, id)?;
                match flow.node(ix).kind() {
                    crate::NodeKind::Question(q) if usize::from(*choice) < q.choices().len() => {
                        Ok(Step { node: ix, choice: *choice })
                    }
                    _ => Err(RestoreError::UnknownChoice { node: id.clone(), choice: *choice }),
                }
            })
            .collect::<Result<_, _>>()?;
        // A draft that no longer fits (or was cleared by `purge`) starts the form again.
        let form = flow.form_of(node).map(|form| {
            snapshot
                .form
                .as_deref()
                .and_then(|s| crate::form::Draft::decode(form, s))
                .unwrap_or_else(|| crate::form::Draft::new(form))
        });
        Ok(Conversation::from_parts(node, snapshot, path, form))
    }
}

fn find(flow: &Flow, id: &str) -> Result<NodeIx, RestoreError> {
    flow.find(id).ok_or_else(|| RestoreError::UnknownNode(id.to_owned()))
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

/// One transition for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    /// The node left (none for a start).
    pub from: Option<String>,
    /// The choice taken (answers only).
    pub choice: Option<u8>,
    /// The node reached (a question or an ending).
    pub to: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Start,
    Answer,
    Back,
    Restart,
    Resume,
    Submit,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Start => "start",
            TransitionKind::Answer => "answer",
            TransitionKind::Back => "back",
            TransitionKind::Restart => "restart",
            TransitionKind::Resume => "resume",
            TransitionKind::Submit => "submit",
        }
    }
}

impl Transition {
    /// The log entry for an engine event.
    pub fn of(flow: &Flow, event: Event, at: Timestamp) -> Self {
        let id = |ix: NodeIx| flow.node(ix).id().to_owned();
        let (kind, from, choice, to) = match event {
            Event::Started { at } => (TransitionKind::Start, None, None, at),
            Event::Answered { from, choice, to } => {
                (TransitionKind::Answer, Some(id(from)), Some(choice), to)
            }
            Event::Back { from, to } => (TransitionKind::Back, Some(id(from)), None, to),
            Event::Restarted { from, to } => (TransitionKind::Restart, Some(id(from)), None, to),
            Event::Resumed { at } => (TransitionKind::Resume, Some(id(at)), None, at),
            Event::Submitted { from, to } => (TransitionKind::Submit, Some(id(from)), None, to),
        };
        Transition { kind, from, choice, to: id(to), at }
    }
}

/// What [`Store::commit`] compares against.
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
    /// pending delivery per destination.
    pub request: Option<&'a NewRequest<'a>>,
    pub now: Timestamp,
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
    /// The names of the destinations to deliver to; one pending delivery each. Empty: the
    /// request is only kept (the user sends the text themselves).
    pub destinations: &'a [String],
}

/// One pending delivery of a request to one destination, claimed by a delivery worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The store's id of this delivery.
    pub id: i64,
    pub reference: String,
    pub destination: String,
    pub text: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// Counts of hand-off deliveries, for `flowbot stats` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub requests: u64,
    pub pending: u64,
    pub delivered: u64,
}

/// The result of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Written; the conversation's session id (new for `Absent` and `Replace`).
    Applied { session: i64 },
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
    /// Form drafts cleared from idle conversations older than the retention period.
    pub drafts: u64,
}

/// Counts for `flowbot stats`, per flow version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionStats {
    pub flow_id: String,
    pub flow_version: String,
    /// Conversations (sessions) that started on this version.
    pub conversations: u64,
    /// `(node, sessions that reached it)`, any node; endings are picked out by the caller.
    pub reached: Vec<(String, u64)>,
    /// `(from, choice, count)` of answers.
    pub edges: Vec<(String, u8, u64)>,
    /// `(node, sessions whose last transition left them there)`.
    pub stopped_at: Vec<(String, u64)>,
}

/// A conversation store. Every implementation passes the shared store suite.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// The conversation under `key`, if any.
    async fn load(&self, key: &ConversationKey) -> Result<Option<Stored>, StoreError>;

    /// Writes a change atomically if the stored conversation is still as `commit.expected`
    /// says, and the event (if any) was not processed before.
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
    /// their deliveries (delivered or not), and the form drafts of conversations idle since
    /// before it are cleared.
    async fn purge(
        &self,
        idle_before: Timestamp,
        events_before: Timestamp,
        personal_before: Timestamp,
        keep: &[(String, FlowVersion)],
    ) -> Result<Purged, StoreError>;

    /// Claims up to `limit` deliveries that are due (`next attempt <= now`, not delivered, not
    /// claimed by a lease that is still running), oldest first, leasing them until
    /// `lease_until`. Two workers (in two processes) never claim one delivery under the same
    /// lease.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Marks a delivery done.
    async fn delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError>;

    /// Records a failed attempt: one more attempt, due again at `retry_at`, lease released.
    /// `error` is a short description without personal data.
    async fn delivery_failed(
        &self,
        id: i64,
        retry_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;

    /// How many requests there are and how their deliveries stand.
    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError>;

    /// Statistics from the event log, per flow version.
    async fn stats(&self) -> Result<Vec<VersionStats>, StoreError>;
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.platform, self.conversation, self.user)
    }
}
