//! SQLite: a batch's verdicts read before it writes, so that its writes need no `RETURNING`.
//!
//! sqlx runs a SQLite connection on a thread of its own and sends each row a statement returns
//! back across a channel, one message and often one wake-up a row. With `RETURNING` on the
//! event ids, the compare-and-swap, the new conversations, the outbox insert and the claim, a
//! batch of 24 steps sent about 110 rows back, and each statement that returned rows had to be
//! a call of its own.
//!
//! Under `BEGIN IMMEDIATE` the batch holds SQLite's one write lock from its first statement to
//! its commit, so nothing another connection or process does can change what it read first.
//! One query, before any write, answers what the writes would have returned: which event ids
//! are already stored, which compare-and-swaps would find nothing, which new conversations'
//! keys are taken, and the last session and outbox ids ever used (`sqlite_sequence`), from
//! which the batch numbers its new rows itself. The writes then go in one call with the
//! `COMMIT`, and a write that would contradict the probe (a key or an id taken after all)
//! fails the batch on a constraint instead of being skipped.
//!
//! PostgreSQL has no such lock (replicas write at once): there the writes keep `RETURNING`.

use std::collections::HashSet;

use flowbot_core::Expected;
use sqlx::{AnyConnection, Row};

use crate::backend::{Backend, int, rows};
use crate::batch::Job;
use crate::script::{Script, Stmt, Val};

/// What a SQLite batch knows before it writes.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The batch's event ids already stored.
    pub seen: HashSet<String>,
    /// Batch indexes whose compare-and-swap (`Expected::Revision`) would match no row.
    pub stale: HashSet<usize>,
    /// Batch indexes of new conversations (`Expected::Absent`) whose key is taken.
    pub taken: HashSet<usize>,
    /// The last session id used, and the last outbox id: the batch's new rows follow them.
    pub last_session: i64,
    pub last_outbox: i64,
}

impl Probe {
    /// The next session id for a new conversation.
    pub(crate) fn next_session(&mut self) -> i64 {
        self.last_session += 1;
        self.last_session
    }

    /// The next outbox id.
    pub(crate) fn next_outbox(&mut self) -> i64 {
        self.last_outbox += 1;
        self.last_outbox
    }
}

/// The highest id a table has ever used: `sqlite_sequence`'s (kept by `AUTOINCREMENT`, which
/// never reuses an id) or the largest present, whichever is larger.
fn last_id(table: &str, column: &str) -> String {
    format!(
        "SELECT '{table}', CAST(MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = \
         '{table}'), 0), COALESCE((SELECT MAX({column}) FROM {table}), 0)) AS TEXT)"
    )
}

/// Reads the verdicts of `batch`'s writes in the script's first call (with its `BEGIN
/// IMMEDIATE`): one query of `(what, value)` rows, nearly always just the two last ids.
pub(crate) async fn probe<'a>(
    conn: &mut AnyConnection,
    script: &mut Script<'a>,
    batch: &'a [Job],
) -> Result<Probe, sqlx::Error> {
    let mut parts: Vec<String> = Vec::new();
    let mut vals: Vec<Val<'a>> = Vec::new();

    let events: Vec<&str> = batch.iter().filter_map(|j| j.event.as_deref()).collect();
    if !events.is_empty() {
        parts.push(format!(
            "SELECT 'event', event_id FROM events WHERE event_id IN {}",
            rows(Backend::Sqlite, 1, events.len())
        ));
        vals.extend(events.iter().map(|&e| Val::from(e)));
    }
    let swaps: Vec<(usize, i64, u64)> = batch
        .iter()
        .enumerate()
        .filter(|(_, j)| j.state.is_some())
        .filter_map(|(i, j)| match j.expected {
            Expected::Revision { session, revision } => Some((i, session, revision)),
            _ => None,
        })
        .collect();
    if !swaps.is_empty() {
        parts.push(format!(
            "SELECT 'stale', CAST(v.column1 AS TEXT) FROM (VALUES {}) AS v WHERE NOT EXISTS \
             (SELECT 1 FROM conversations c WHERE c.session = v.column2 AND c.revision = v.column3)",
            rows(Backend::Sqlite, swaps.len(), 3)
        ));
        for &(i, session, revision) in &swaps {
            vals.extend([Val::from(int(i as u64)), Val::from(session), Val::from(int(revision))]);
        }
    }
    let new: Vec<usize> = (0..batch.len())
        .filter(|&i| batch[i].state.is_some() && matches!(batch[i].expected, Expected::Absent))
        .collect();
    if !new.is_empty() {
        parts.push(format!(
            "SELECT 'taken', CAST(v.column1 AS TEXT) FROM (VALUES {}) AS v WHERE EXISTS \
             (SELECT 1 FROM conversations c WHERE c.platform = v.column2 AND c.chat = v.column3 \
             AND c.user_id = v.column4)",
            rows(Backend::Sqlite, new.len(), 4)
        ));
        for &i in &new {
            let k = &batch[i].key;
            vals.extend([
                Val::from(int(i as u64)),
                Val::from(k.platform.as_str()),
                Val::from(k.conversation.as_str()),
                Val::from(k.user.as_str()),
            ]);
        }
    }
    if batch.iter().any(|j| j.state.is_some()) {
        parts.push(last_id("conversations", "session"));
    }
    if batch.iter().any(|j| !j.outgoing.is_empty() || j.request.is_some()) {
        parts.push(last_id("outbox", "id"));
    }

    let mut probe = Probe::default();
    if parts.is_empty() {
        return Ok(probe);
    }
    let mut q = Stmt::new(parts.join(" UNION ALL "));
    for v in vals {
        q.bind(v);
    }
    let index = |v: &str| {
        v.parse::<usize>().map_err(|_| sqlx::Error::Protocol(format!("probe: bad index {v:?}")))
    };
    let id = |v: &str| {
        v.parse::<i64>().map_err(|_| sqlx::Error::Protocol(format!("probe: bad id {v:?}")))
    };
    for row in script.fetch(conn, q).await? {
        let what: String = row.try_get(0)?;
        let value: String = row.try_get(1)?;
        match what.as_str() {
            "event" => {
                probe.seen.insert(value);
            }
            "stale" => {
                probe.stale.insert(index(&value)?);
            }
            "taken" => {
                probe.taken.insert(index(&value)?);
            }
            "conversations" => probe.last_session = id(&value)?,
            "outbox" => probe.last_outbox = id(&value)?,
            other => return Err(sqlx::Error::Protocol(format!("probe: unknown row {other:?}"))),
        }
    }
    Ok(probe)
}
