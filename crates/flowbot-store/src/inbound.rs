//! The inbox half of the SQL store: a poller's fetched updates, kept until handled. (Written by
//! the writer, in the transaction of its next batch.)

use async_trait::async_trait;
use flowbot_core::{InboundStore, StoreError, Timestamp};
use sqlx::Row;

use crate::backend::db;
use crate::batch::{InboundJob, Work};
use crate::sql::SqlStore;

#[async_trait]
impl InboundStore for SqlStore {
    async fn inbound(
        &self,
        source: &str,
        received: &[(i64, &str)],
        handled: &[i64],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if received.is_empty() && handled.is_empty() {
            return Ok(());
        }
        self.to_writer(|reply| {
            Work::Inbound(InboundJob {
                source: source.to_owned(),
                received: received.iter().map(|&(id, body)| (id, body.to_owned())).collect(),
                handled: handled.to_vec(),
                now,
                reply,
            })
        })
        .await
    }

    async fn inbound_pending(&self, source: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT update_id, body FROM inbound WHERE source = $1 ORDER BY update_id")
                .bind(source)
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok((r.try_get::<i64, _>(0).map_err(db)?, r.try_get::<String, _>(1).map_err(db)?))
            })
            .collect()
    }
}
