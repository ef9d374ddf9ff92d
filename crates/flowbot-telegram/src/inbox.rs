//! The poller's side of the durable inbox: which fetched updates are new, which are kept in the
//! store (and so may be confirmed to Telegram), and which the lanes handled (to forget).
//!
//! `getUpdates` confirms every update below its `offset`. An update is handed to its lane as
//! soon as it is fetched, and written to the store at the same time; the next fetch's offset
//! confirms only what that write kept. A crash before the write: Telegram sends the update
//! again. After it: the next start takes it up from the store. Either way the step's event id
//! stops a second application.

use std::time::Duration;

use flowbot_core::StoreError;
use serde_json::value::RawValue;
use teloxide::types::Update;
use tokio_util::sync::CancellationToken;

use crate::Telegram;
use crate::lanes::Lanes;

/// Fetched updates and how far they are kept.
pub(crate) struct Inbox {
    telegram: Telegram,
    /// The store's name for this bot's updates.
    source: String,
    /// The highest update id handed to a lane.
    dispatched: Option<i64>,
    /// Handed to a lane, not kept yet: `(id, update as fetched)`, by id.
    unkept: Vec<(i64, String)>,
}

impl Inbox {
    pub(crate) fn new(telegram: Telegram) -> Self {
        let source = format!("telegram:{}", telegram.inner.bot_id);
        Inbox { telegram, source, dispatched: None, unkept: Vec::new() }
    }

    /// The `offset` that confirms exactly what is kept: the lowest update not kept yet, else
    /// one past the last handed out (0 before any).
    pub(crate) fn offset(&self) -> i32 {
        let next = match self.unkept.first() {
            Some(&(id, _)) => id,
            None => self.dispatched.map_or(0, |d| d.saturating_add(1)),
        };
        i32::try_from(next).unwrap_or(i32::MAX)
    }

    /// Hands the updates kept before this start (confirmed, not handled) to their lanes, first.
    /// A store that cannot be read is asked again until `shutdown`.
    pub(crate) async fn take_up(&mut self, lanes: &Lanes, shutdown: &CancellationToken) {
        let store = self.telegram.inner.service.store().clone();
        let kept = loop {
            match store.inbound_pending(&self.source).await {
                Ok(kept) => break kept,
                Err(err) => {
                    self.telegram.set_polling(Some(format!("kept updates not readable: {err}")));
                    tracing::warn!(error = %err, "telegram: kept updates not readable; trying again");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        if !kept.is_empty() {
            tracing::info!(updates = kept.len(), "telegram: taking up kept updates");
        }
        let mut unreadable = Vec::new();
        for (id, body) in kept {
            self.dispatched = Some(self.dispatched.map_or(id, |d| d.max(id)));
            match serde_json::from_str::<Update>(&body) {
                Ok(update) => lanes.dispatch(update),
                Err(_) => unreadable.push(id),
            }
        }
        if !unreadable.is_empty() {
            tracing::warn!(
                updates = unreadable.len(),
                "telegram: kept updates not readable; forgotten"
            );
            lanes.give_back(unreadable);
        }
    }

    /// Hands the new updates of a fetch to their lanes (an update fetched again because it is
    /// not confirmed yet is skipped without being parsed); how many were new. One that is not
    /// an update is logged (by id) and confirmed with the rest: it would never be one.
    pub(crate) fn dispatch(&mut self, fetched: &[Box<RawValue>], lanes: &Lanes) -> usize {
        #[derive(serde::Deserialize)]
        struct Id {
            update_id: i64,
        }
        let mut new = 0;
        for raw in fetched {
            let Ok(Id { update_id: id }) = serde_json::from_str::<Id>(raw.get()) else {
                tracing::warn!("telegram: an update without an id; skipped");
                continue;
            };
            if self.dispatched.is_some_and(|d| id <= d) {
                continue;
            }
            self.dispatched = Some(id);
            match serde_json::from_str::<Update>(raw.get()) {
                Ok(update) => {
                    lanes.dispatch(update);
                    self.unkept.push((id, raw.get().to_owned()));
                    new += 1;
                }
                Err(err) => {
                    tracing::warn!(update = id, error = %err, "telegram: not an update; skipped");
                }
            }
        }
        new
    }

    /// Keeps what was fetched and is not kept yet, and forgets what the lanes handled, in one
    /// write. On failure both are tried again with the next call.
    pub(crate) async fn keep(&mut self, lanes: &Lanes) -> Result<(), StoreError> {
        let handled = lanes.take_handled();
        if self.unkept.is_empty() && handled.is_empty() {
            return Ok(());
        }
        let service = &self.telegram.inner.service;
        let received: Vec<(i64, &str)> =
            self.unkept.iter().map(|(id, body)| (*id, body.as_str())).collect();
        match service.store().inbound(&self.source, &received, &handled, service.now()).await {
            Ok(()) => {
                self.unkept.clear();
                Ok(())
            }
            Err(err) => {
                lanes.give_back(handled);
                Err(err)
            }
        }
    }
}
