//! The desk's inbox half of the SQL store: kept hand-off requests with their deliveries,
//! queued again on demand, and marked done with the completion notice written in the same
//! transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use flowbot_core::{
    Completion, ConversationKey, DeliveryRecord, NewOutgoing, RequestRecord, RequestStore,
    StoreError, Timestamp,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::backend::{db, int, uint};
use crate::sql::SqlStore;

const REQUEST_COLUMNS: &str = "id, reference, flow_id, form, text, payload, created_at, platform, \
                               chat, user_id, completed_at";

const DELIVERY_COLUMNS: &str =
    "request, sink, attempts, next_attempt_at, delivered_at, gave_up_at, last_error";

fn time(row: &AnyRow, name: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(name).map_err(db)?.map(|t| Timestamp(uint(t))))
}

fn request_from_row(row: &AnyRow) -> Result<(i64, RequestRecord), StoreError> {
    let get_s = |name: &str| row.try_get::<String, _>(name).map_err(db);
    let get_o = |name: &str| row.try_get::<Option<String>, _>(name).map_err(db);
    let key = match (get_o("platform")?, get_o("chat")?, get_o("user_id")?) {
        (Some(platform), Some(conversation), Some(user)) => {
            Some(ConversationKey { platform, conversation, user })
        }
        _ => None,
    };
    let record = RequestRecord {
        reference: get_s("reference")?,
        flow_id: get_s("flow_id")?,
        form: get_s("form")?,
        text: get_s("text")?,
        payload: get_s("payload")?,
        created_at: Timestamp(uint(row.try_get("created_at").map_err(db)?)),
        key,
        completed_at: time(row, "completed_at")?,
        deliveries: Vec::new(),
    };
    Ok((row.try_get("id").map_err(db)?, record))
}

fn delivery_from_row(row: &AnyRow) -> Result<(i64, DeliveryRecord), StoreError> {
    let attempts: i64 = row.try_get("attempts").map_err(db)?;
    let delivery = DeliveryRecord {
        sink: row.try_get("sink").map_err(db)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: Timestamp(uint(row.try_get("next_attempt_at").map_err(db)?)),
        delivered_at: time(row, "delivered_at")?,
        gave_up_at: time(row, "gave_up_at")?,
        last_error: row.try_get("last_error").map_err(db)?,
    };
    Ok((row.try_get("request").map_err(db)?, delivery))
}

impl SqlStore {
    /// The requests `filter` selects (a `WHERE` on `requests r` binding `value` as `$1`), with
    /// their deliveries, oldest first.
    async fn select_requests(
        &self,
        filter: &str,
        value: Bind<'_>,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM requests r WHERE {filter} ORDER BY r.id");
        let rows = value.query(&sql).fetch_all(&self.pool).await.map_err(db)?;
        let mut records = Vec::with_capacity(rows.len());
        let mut index = HashMap::new();
        for row in &rows {
            let (id, record) = request_from_row(row)?;
            index.insert(id, records.len());
            records.push(record);
        }
        if records.is_empty() {
            return Ok(records);
        }
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE request IN \
             (SELECT r.id FROM requests r WHERE {filter}) ORDER BY id"
        );
        for row in value.query(&sql).fetch_all(&self.pool).await.map_err(db)? {
            let (request, delivery) = delivery_from_row(&row)?;
            if let Some(&i) = index.get(&request) {
                records[i].deliveries.push(delivery);
            }
        }
        Ok(records)
    }
}

/// What a filter binds as `$1`.
#[derive(Debug, Clone, Copy)]
enum Bind<'a> {
    Nothing,
    Int(i64),
    Text(&'a str),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl<'a> Bind<'a> {
    fn query<'q>(self, sql: &'q str) -> AnyQuery<'q>
    where
        'a: 'q,
    {
        let q = sqlx::query(sql);
        match self {
            Bind::Nothing => q,
            Bind::Int(v) => q.bind(v),
            Bind::Text(v) => q.bind(v),
        }
    }
}

#[async_trait]
impl RequestStore for SqlStore {
    async fn requests(&self, since: Option<Timestamp>) -> Result<Vec<RequestRecord>, StoreError> {
        match since {
            Some(since) => {
                self.select_requests("r.created_at >= $1", Bind::Int(int(since.0))).await
            }
            None => self.select_requests("1 = 1", Bind::Nothing).await,
        }
    }

    async fn request(&self, reference: &str) -> Result<Option<RequestRecord>, StoreError> {
        Ok(self.select_requests("r.reference = $1", Bind::Text(reference)).await?.pop())
    }

    async fn resend(
        &self,
        reference: &str,
        destinations: &[String],
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let Some(row) = sqlx::query("SELECT id FROM requests WHERE reference = $1")
            .bind(reference)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id").map_err(db)?;
        // A delivery a worker holds keeps its lease: it is sent again once that attempt ends.
        let mut queued = sqlx::query(
            "UPDATE outbox SET delivered_at = NULL, gave_up_at = NULL, next_attempt_at = $1 \
             WHERE request = $2",
        )
        .bind(int(now.0))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        for sink in destinations {
            queued += sqlx::query(
                "INSERT INTO outbox (sink, lane, body, request, next_attempt_at, created_at) \
                 SELECT $1, $2, '', $3, $4, $4 WHERE NOT EXISTS \
                 (SELECT 1 FROM outbox WHERE request = $3 AND sink = $1)",
            )
            .bind(sink.as_str())
            .bind(reference)
            .bind(id)
            .bind(int(now.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        }
        tx.commit().await.map_err(db)?;
        Ok(Some(queued))
    }

    async fn complete(
        &self,
        reference: &str,
        now: Timestamp,
        notice: Option<NewOutgoing<'_>>,
    ) -> Result<Completion, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let marked = sqlx::query(
            "UPDATE requests SET completed_at = $1 WHERE reference = $2 AND completed_at IS NULL",
        )
        .bind(int(now.0))
        .bind(reference)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        if marked == 0 {
            let known = sqlx::query("SELECT 1 AS one FROM requests WHERE reference = $1")
                .bind(reference)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?
                .is_some();
            return Ok(if known { Completion::Already } else { Completion::Unknown });
        }
        let mut id = None;
        if let Some(n) = notice {
            // A reply-like item (no request): deleted once delivered, purged with the
            // personal data otherwise.
            let row = sqlx::query(
                "INSERT INTO outbox (sink, lane, body, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(n.sink)
            .bind(n.lane)
            .bind(n.body)
            .bind(int(now.0))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            id = Some(row.try_get::<i64, _>("id").map_err(db)?);
        }
        tx.commit().await.map_err(db)?;
        Ok(Completion::Completed { notice: id })
    }
}
