//! The polling loop's chat lanes: fetched updates handled each chat in order, chats at once,
//! while the next `getUpdates` goes on; and the watermark that says how far the fetched updates
//! may be confirmed (every update below it is committed).
//!
//! `getUpdates` confirms every update below its `offset`, so the next fetch asks from the lowest
//! update still in a lane: Telegram sends what is still in flight again (skipped here, since a
//! lane holds it) together with what is new. Nothing is confirmed before its step is committed,
//! and a slow chat holds back only the confirmation, not the other chats.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::value::RawValue;
use teloxide::types::Update;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Telegram;

/// How long a lane waits before handling an update again whose store write failed.
const RETRY: Duration = Duration::from_secs(1);

/// Updates in flight, per chat.
pub(crate) struct Lanes {
    telegram: Telegram,
    shared: Arc<Shared>,
    tasks: TaskTracker,
    /// Stops a lane's retries (its update is left unconfirmed for the next start).
    shutdown: CancellationToken,
    /// The highest update id handed to a lane.
    dispatched: Option<i32>,
}

struct Shared {
    state: Mutex<State>,
    /// Woken whenever an update leaves its lane.
    progress: Notify,
}

#[derive(Default)]
struct State {
    /// Ids handed to a lane and not committed yet.
    in_flight: BTreeSet<i32>,
    /// Updates waiting behind the one a chat's task is handling, by chat.
    waiting: HashMap<i64, VecDeque<Update>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lanes {
    pub(crate) fn new(telegram: Telegram, shutdown: CancellationToken) -> Self {
        Lanes {
            telegram,
            shared: Arc::new(Shared { state: Mutex::default(), progress: Notify::new() }),
            tasks: TaskTracker::new(),
            shutdown,
            dispatched: None,
        }
    }

    /// The `offset` that confirms exactly what is committed: the lowest update in flight, else
    /// one past the last handed out (0 before any).
    pub(crate) fn offset(&self) -> i32 {
        let lowest = self.shared.lock().in_flight.first().copied();
        lowest.unwrap_or_else(|| self.dispatched.map_or(0, |d| d.saturating_add(1)))
    }

    /// Whether any update is still in a lane.
    pub(crate) fn busy(&self) -> bool {
        !self.shared.lock().in_flight.is_empty()
    }

    /// Hands the new updates of a fetch to their chats' lanes; updates already handed out
    /// (fetched again because they are not confirmed yet) are skipped without being parsed.
    /// How many were new; an error if a new one is not an update.
    pub(crate) fn dispatch(
        &mut self,
        fetched: &[Box<RawValue>],
    ) -> Result<usize, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Id {
            update_id: i64,
        }
        let mut new = 0;
        for raw in fetched {
            let id = serde_json::from_str::<Id>(raw.get())?.update_id;
            let id = i32::try_from(id).unwrap_or(i32::MAX);
            if self.dispatched.is_some_and(|d| id <= d) {
                continue;
            }
            let update: Update = serde_json::from_str(raw.get())?;
            self.dispatched = Some(id);
            new += 1;
            let chat = update.chat().map_or(0, |c| c.id.0);
            let mut state = self.shared.lock();
            state.in_flight.insert(id);
            if let Some(queue) = state.waiting.get_mut(&chat) {
                queue.push_back(update);
                continue;
            }
            state.waiting.insert(chat, VecDeque::new());
            drop(state);
            let (telegram, shared, shutdown) =
                (self.telegram.clone(), self.shared.clone(), self.shutdown.clone());
            self.tasks.spawn(lane(telegram, shared, shutdown, chat, update));
        }
        Ok(new)
    }

    /// Waits until the lowest update in flight is committed (at once if none is in flight), so
    /// that the next fetch confirms something and is not the same answer again.
    pub(crate) async fn advanced(&self) {
        let from = self.offset();
        loop {
            let notified = self.shared.progress.notified();
            if !self.busy() || self.offset() != from {
                return;
            }
            notified.await;
        }
    }

    /// Waits for every lane to finish (updates whose writes keep failing give up at
    /// `shutdown` and stay in flight, unconfirmed).
    pub(crate) async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// One chat's lane: its updates in order, each until committed (or until shutdown, if the
/// store keeps failing), then the next queued behind it.
async fn lane(
    telegram: Telegram,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    chat: i64,
    mut update: Update,
) {
    loop {
        let id = i32::try_from(update.id.0).unwrap_or(i32::MAX);
        let mut committed = false;
        loop {
            match telegram.handle(&update).await {
                Ok(()) => {
                    committed = true;
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "telegram: update not committed; trying again");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(RETRY) => {}
                    }
                }
            }
        }
        let mut state = shared.lock();
        if !committed {
            // Left in flight, so that it and what follows stay unconfirmed.
            state.waiting.remove(&chat);
            drop(state);
            shared.progress.notify_waiters();
            return;
        }
        state.in_flight.remove(&id);
        let next = state.waiting.get_mut(&chat).and_then(VecDeque::pop_front);
        if next.is_none() {
            state.waiting.remove(&chat);
        }
        drop(state);
        shared.progress.notify_waiters();
        match next {
            Some(n) => update = n,
            None => return,
        }
    }
}
