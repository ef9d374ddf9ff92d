//! The polling loop's chat lanes: fetched updates handled each chat in order, chats at once,
//! while fetching goes on; and the keys of the updates handled since the poller last asked, for
//! it to forget them from the inbox.
//!
//! An update reaches a lane once it is kept in the inbox (or while it is being kept: the poller
//! confirms it to Telegram only once it is), so a lane's work is never lost; a slow chat holds up
//! only its own later updates.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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
    /// Stops a lane's retries (its update stays in the inbox for the next start).
    shutdown: CancellationToken,
}

struct Shared {
    state: Mutex<State>,
    /// Woken whenever an update leaves its lane.
    progress: Notify,
}

#[derive(Default)]
struct State {
    /// Updates handed to a lane and not committed yet.
    in_flight: usize,
    /// Ids of the updates committed since [`Lanes::take_handled`] last took them.
    handled: Vec<i64>,
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
        }
    }

    /// Hands an update to its chat's lane: handled at once if the chat has nothing in flight,
    /// else after what is.
    pub(crate) fn dispatch(&self, update: Update) {
        let chat = update.chat().map_or(0, |c| c.id.0);
        let mut state = self.shared.lock();
        state.in_flight += 1;
        if let Some(queue) = state.waiting.get_mut(&chat) {
            queue.push_back(update);
            return;
        }
        state.waiting.insert(chat, VecDeque::new());
        drop(state);
        let (telegram, shared, shutdown) =
            (self.telegram.clone(), self.shared.clone(), self.shutdown.clone());
        self.tasks.spawn(lane(telegram, shared, shutdown, chat, update));
    }

    /// The ids of the updates committed since the last call.
    pub(crate) fn take_handled(&self) -> Vec<i64> {
        std::mem::take(&mut self.shared.lock().handled)
    }

    /// Gives back ids taken by [`Lanes::take_handled`] that could not be forgotten yet.
    pub(crate) fn give_back(&self, mut ids: Vec<i64>) {
        self.shared.lock().handled.append(&mut ids);
    }

    /// Waits until fewer than `limit` updates are in flight (at once if so).
    pub(crate) async fn room_for(&self, limit: usize) {
        loop {
            let notified = self.shared.progress.notified();
            if self.shared.lock().in_flight < limit {
                return;
            }
            notified.await;
        }
    }

    /// Waits for every lane to finish (updates whose writes keep failing give up at
    /// `shutdown` and stay in the inbox).
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
            // It and what follows stay in the inbox for the next start.
            state.waiting.remove(&chat);
            drop(state);
            shared.progress.notify_waiters();
            return;
        }
        state.in_flight -= 1;
        state.handled.push(i64::from(update.id.0));
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
