//! The outbox half of the SQL store: claiming lane heads under leases, and recording how each
//! attempt went. (The items are written by `batch`, in their step's transaction.)

use async_trait::async_trait;
use flowbot_core::{DeliveryCounts, OutboxStore, Queued, QueuedRequest, StoreError, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::backend::{Backend, bounded, db, int, list, uint};
use crate::batch::{DoneJob, Work};
use crate::reads::GAVE_UP_SINCE;
use crate::sql::SqlStore;

/// Pending: neither delivered nor given up (of the row `o`).
const PENDING: &str = "o.delivered_at IS NULL AND o.gave_up_at IS NULL";

pub(crate) fn queued(row: &AnyRow) -> Result<Queued, StoreError> {
    let reference: Option<String> = row.try_get("reference").map_err(db)?;
    let request = match reference {
        Some(reference) => Some(QueuedRequest {
            reference,
            text: row.try_get("text").map_err(db)?,
            payload: row.try_get("payload").map_err(db)?,
        }),
        None => None,
    };
    Ok(Queued {
        id: row.try_get("id").map_err(db)?,
        sink: row.try_get("sink").map_err(db)?,
        lane: row.try_get("lane").map_err(db)?,
        body: row.try_get("body").map_err(db)?,
        request,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(db)?).unwrap_or(u32::MAX),
        created_at: Timestamp(uint(row.try_get("created_at").map_err(db)?)),
    })
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim_of(
        &self,
        now: Timestamp,
        owner: &str,
        lease_until: Timestamp,
        limit: u32,
        sinks: Option<&[&str]>,
    ) -> Result<Vec<Queued>, StoreError> {
        if limit == 0 || sinks.is_some_and(<[&str]>::is_empty) {
            return Ok(Vec::new());
        }
        let only = match sinks {
            Some(sinks) => format!(" AND o.sink IN ({})", list(5, sinks.len())),
            None => String::new(),
        };
        // One statement that claims. A lane's head stays its head until it is done or given
        // up, so a head seen in an older snapshot is still one.
        let heads = format!(
            "SELECT o.id FROM outbox o WHERE {PENDING} AND o.next_attempt_at <= $3 \
             AND (o.lease_until IS NULL OR o.lease_until <= $3){only} \
             AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.sink = o.sink AND e.lane = o.lane \
             AND e.id < o.id AND e.delivered_at IS NULL AND e.gave_up_at IS NULL) \
             ORDER BY o.id LIMIT $4"
        );
        let sql = match self.backend {
            // Locked once in a CTE (a `LIMIT` subquery inside `IN` may be run again, and claim
            // more than `limit`); rows another worker is claiming are skipped, and locking
            // re-checks a row's conditions against its latest version.
            Backend::Postgres => format!(
                "WITH picked AS ({heads} FOR UPDATE OF o SKIP LOCKED) \
                 UPDATE outbox SET owner = $1, lease_until = $2 FROM picked \
                 WHERE outbox.id = picked.id RETURNING outbox.id"
            ),
            // One writer at a time: the subquery's answer still holds when the update runs.
            Backend::Sqlite => format!(
                "UPDATE outbox SET owner = $1, lease_until = $2 WHERE id IN ({heads}) \
                 RETURNING id"
            ),
        };
        let mut tx = self.pool.begin().await.map_err(db)?;
        let mut query = sqlx::query(&sql)
            .bind(owner)
            .bind(int(lease_until.0))
            .bind(int(now.0))
            .bind(i64::from(limit));
        for sink in sinks.unwrap_or_default() {
            query = query.bind(*sink);
        }
        let claimed: Vec<i64> = query
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.try_get::<i64, _>(0).map_err(db))
            .collect::<Result<_, _>>()?;
        if claimed.is_empty() {
            tx.commit().await.map_err(db)?;
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT o.id, o.sink, o.lane, o.body, o.attempts, o.created_at, r.reference, r.text, \
             r.payload FROM outbox o LEFT JOIN requests r ON r.id = o.request \
             WHERE o.id IN ({}) ORDER BY o.id",
            list(1, claimed.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &claimed {
            q = q.bind(*id);
        }
        let rows = q.fetch_all(&mut *tx).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter().map(queued).collect()
    }

    async fn renew(&self, owner: &str, lease_until: Timestamp) -> Result<u64, StoreError> {
        let renewed = sqlx::query(
            "UPDATE outbox SET lease_until = $1 WHERE owner = $2 AND lease_until IS NOT NULL \
             AND delivered_at IS NULL AND gave_up_at IS NULL",
        )
        .bind(int(lease_until.0))
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(renewed.rows_affected())
    }

    async fn done(&self, ids: &[i64], now: Timestamp) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        // Through the writer, in the transaction of its next batch (see `batch::Work::Done`).
        let ids = ids.to_vec();
        self.to_writer(|reply| Work::Done(DoneJob { ids, now, reply })).await
    }

    async fn failed(&self, id: i64, retry_at: Timestamp, error: &str) -> Result<(), StoreError> {
        self.release(
            "attempts = attempts + 1, next_attempt_at = $1, last_error = $2",
            id,
            retry_at,
            error,
        )
        .await
    }

    async fn gave_up(&self, id: i64, now: Timestamp, error: &str) -> Result<(), StoreError> {
        self.release("gave_up_at = $1, body = '', last_error = $2", id, now, error).await
    }

    async fn pending_in(
        &self,
        sink: &str,
        lane: &str,
        limit: u32,
    ) -> Result<Vec<Queued>, StoreError> {
        self.lane_pending(sink, lane, limit).await
    }

    async fn gave_up_since(
        &self,
        sink: &str,
        lane: &str,
        since: Timestamp,
    ) -> Result<bool, StoreError> {
        if let Some(found) =
            self.inline.as_ref().and_then(|inline| inline.gave_up_since(sink, lane, since))
        {
            return found;
        }
        let row = sqlx::query(GAVE_UP_SINCE)
            .bind(sink)
            .bind(lane)
            .bind(int(since.0))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT (SELECT COUNT(*) FROM requests) AS requests, \
             (SELECT COUNT(*) FROM outbox o WHERE o.request IS NOT NULL AND {PENDING}) AS pending, \
             (SELECT COUNT(*) FROM outbox o WHERE o.request IS NOT NULL \
              AND o.delivered_at IS NOT NULL) AS delivered, \
             (SELECT COUNT(*) FROM outbox o WHERE o.request IS NOT NULL \
              AND o.gave_up_at IS NOT NULL) AS gave_up, \
             (SELECT COUNT(*) FROM outbox o WHERE o.request IS NULL AND {PENDING}) \
              AS replies_pending, \
             (SELECT COUNT(*) FROM outbox o WHERE o.request IS NULL AND o.gave_up_at IS NOT NULL) \
              AS replies_gave_up, \
             (SELECT MIN(o.created_at) FROM outbox o WHERE {PENDING}) AS oldest_pending, \
             (SELECT COUNT(*) FROM inbound) AS updates_kept"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        let count = |name: &str| row.try_get::<i64, _>(name).map(uint).map_err(db);
        let oldest: Option<i64> = row.try_get("oldest_pending").map_err(db)?;
        Ok(DeliveryCounts {
            requests: count("requests")?,
            pending: count("pending")?,
            delivered: count("delivered")?,
            gave_up: count("gave_up")?,
            replies_pending: count("replies_pending")?,
            replies_gave_up: count("replies_gave_up")?,
            oldest_pending: oldest.map(|t| Timestamp(uint(t))),
            updates_kept: count("updates_kept")?,
        })
    }
}

impl SqlStore {
    /// Ends this process's hold on a pending item: `set` (with `$1` = `at`, `$2` = the error,
    /// bounded), owner and lease cleared. An item done or given up stays as it is.
    async fn release(
        &self,
        set: &str,
        id: i64,
        at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE outbox SET {set}, owner = NULL, lease_until = NULL \
             WHERE id = $3 AND delivered_at IS NULL AND gave_up_at IS NULL"
        );
        sqlx::query(&sql)
            .bind(int(at.0))
            .bind(bounded(error))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
