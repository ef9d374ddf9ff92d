//! Items no worker sends, read by their lane: the web chat's completion notices, shown when
//! their user comes back (`OutboxStore::pending_in`) and then marked done.

use flowbot_core::{Queued, StoreError};

use crate::backend::db;
use crate::queue::queued;
use crate::sql::SqlStore;

impl SqlStore {
    /// The pending items of `(sink, lane)`, oldest first, at most `limit`; nothing is claimed
    /// (the partial index `outbox_lane` answers it).
    pub(crate) async fn lane_pending(
        &self,
        sink: &str,
        lane: &str,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT o.id, o.sink, o.lane, o.body, o.attempts, o.created_at, r.reference, r.text, \
             r.payload FROM outbox o LEFT JOIN requests r ON r.id = o.request \
             WHERE o.sink = $1 AND o.lane = $2 AND o.delivered_at IS NULL \
             AND o.gave_up_at IS NULL ORDER BY o.id LIMIT $3",
        )
        .bind(sink)
        .bind(lane)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(queued).collect()
    }
}
