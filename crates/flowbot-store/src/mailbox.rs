//! The in-process hand-over from the service to this process's delivery worker.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use flowbot_core::Queued;
use tokio::sync::Notify;

/// Outbox items this process claimed when it committed them (see `Service::serve`), waiting
/// for its delivery worker: no store read between a step and its reply.
///
/// Unbounded: what sits here is already leased to this process in the store, so the worker
/// keeps the leases alive (`OutboxStore::renew`) while it works through them; should the
/// process die, the leases run out and another worker claims the items. Items arrive in
/// commit order, a lane's items in their order.
#[derive(Debug, Default)]
pub struct Mailbox {
    items: Mutex<VecDeque<Queued>>,
    ready: Notify,
}

impl Mailbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands items to the worker.
    pub fn push(&self, items: Vec<Queued>) {
        if items.is_empty() {
            return;
        }
        self.lock().extend(items);
        self.ready.notify_one();
    }

    /// Every item waiting, oldest first; waits for one if there is none. Cancel-safe.
    pub async fn next_batch(&self) -> Vec<Queued> {
        loop {
            let batch = self.take();
            if !batch.is_empty() {
                return batch;
            }
            self.ready.notified().await;
        }
    }

    /// Every item waiting, without waiting (empty if none).
    pub fn take(&self) -> Vec<Queued> {
        self.lock().drain(..).collect()
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowbot_core::Timestamp;

    fn item(id: i64) -> Queued {
        Queued {
            id,
            sink: "s".into(),
            lane: "l".into(),
            body: String::new(),
            request: None,
            attempts: 0,
            created_at: Timestamp(0),
        }
    }

    #[tokio::test]
    async fn a_batch_is_everything_pushed_so_far_and_waits_for_the_next() {
        let mailbox = std::sync::Arc::new(Mailbox::new());
        mailbox.push(vec![item(1), item(2)]);
        mailbox.push(Vec::new());
        mailbox.push(vec![item(3)]);
        let ids = |b: Vec<Queued>| b.iter().map(|q| q.id).collect::<Vec<_>>();
        assert_eq!(ids(mailbox.next_batch().await), [1, 2, 3]);
        assert!(mailbox.is_empty());
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.next_batch().await }
        });
        tokio::task::yield_now().await;
        mailbox.push(vec![item(4)]);
        assert_eq!(ids(waiting.await.unwrap()), [4]);
    }
}
