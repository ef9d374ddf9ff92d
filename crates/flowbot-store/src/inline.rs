//! SQLite's point reads of a step on the caller's thread (a conversation; whether its chat's
//! delivery gave up): one connection of its own, its statements prepared once, read without a
//! hand-off.
//!
//! Through sqlx a read is a hand-off to a connection's thread and back, and in the Telegram
//! load test that hand-off (waking the thread, parking it again) cost more than the read: the
//! reader threads spent half their time parking. A point read on a warm page cache takes
//! microseconds, so it is made here, in place. It never waits: if the connection is in use (a
//! runtime with several workers) or SQLite is busy (a WAL recovery), the read goes through the
//! pool as before ([`Inline::load`] answers `None`).
//!
//! Every read is a transaction of its own that ends with it, so it sees every commit the writer
//! made before it began, and holds no snapshot that would keep a checkpoint from finishing.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use flowbot_core::{ConversationKey, StoreError, Stored, Timestamp};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::backend::int;
use crate::reads::{GAVE_UP_SINCE, RawStored, SELECT_CONVERSATION};

/// A connection for reads in place.
#[derive(Debug)]
pub(crate) struct Inline {
    conn: Mutex<Connection>,
}

impl Inline {
    /// Opens the database at `path` (made and migrated already) for reads.
    pub(crate) fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        // Never wait on the async runtime's thread: busy means "through the pool".
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        // Checked now: a statement that does not prepare is a bug, not a busy database.
        conn.prepare_cached(SELECT_CONVERSATION)?;
        conn.prepare_cached(GAVE_UP_SINCE)?;
        Ok(Inline { conn: Mutex::new(conn) })
    }

    /// The conversation under `key`, or `None` when it cannot be read in place right now.
    pub(crate) fn load(&self, key: &ConversationKey) -> Option<Result<Option<Stored>, StoreError>> {
        let conn = self.conn()?;
        // (SQLite reads `$1` as a parameter named so, numbered by its first appearance.)
        let read = conn.prepare_cached(SELECT_CONVERSATION).and_then(|mut statement| {
            statement
                .query_row([&key.platform, &key.conversation, &key.user], |row| {
                    Ok(RawStored {
                        session: row.get(0)?,
                        flow_id: row.get(1)?,
                        flow_version: row.get(2)?,
                        node: row.get(3)?,
                        revision: row.get(4)?,
                        entered: row.get(5)?,
                        path: row.get(6)?,
                        misses: row.get(7)?,
                        awaiting_resume: row.get(8)?,
                        started_at: row.get(9)?,
                        updated_at: row.get(10)?,
                        form: row.get(11)?,
                    })
                })
                .optional()
        });
        answer(read).map(|read| read.and_then(|raw| raw.map(RawStored::into_stored).transpose()))
    }

    /// The store's `gave_up_since`, or `None` when it cannot be read in place right now.
    pub(crate) fn gave_up_since(
        &self,
        sink: &str,
        lane: &str,
        since: Timestamp,
    ) -> Option<Result<bool, StoreError>> {
        let conn = self.conn()?;
        let read = conn.prepare_cached(GAVE_UP_SINCE).and_then(|mut statement| {
            statement.exists(rusqlite::params![sink, lane, int(since.0)])
        });
        answer(read)
    }

    /// The connection, unless another thread is using it.
    fn conn(&self) -> Option<MutexGuard<'_, Connection>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        }
    }
}

/// A read's answer; `None` if the database was busy (to be read through the pool).
fn answer<T>(read: rusqlite::Result<T>) -> Option<Result<T, StoreError>> {
    match read {
        Ok(value) => Some(Ok(value)),
        Err(err) if busy(&err) => None,
        Err(err) => Some(Err(StoreError::Database(err.to_string()))),
    }
}

fn busy(err: &rusqlite::Error) -> bool {
    matches!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowbot_core::{Commit, Committed, ConversationStore, Expected, FlowVersion, Snapshot};

    use crate::SqlStore;

    fn stored(revision: u64) -> Stored {
        Stored {
            session: 0,
            flow_id: "gmis".into(),
            flow_version: FlowVersion([1, 2, 3, 4, 5, 6, 7, 8]),
            state: Snapshot {
                node: "q2".into(),
                revision,
                entered: 1,
                path: vec![("q1".into(), 1)],
                misses: 0,
                awaiting_resume: false,
                started_at: Timestamp(5),
                updated_at: Timestamp(7),
                form: Some("draft".into()),
            },
        }
    }

    async fn commit(store: &SqlStore, key: &ConversationKey, expected: Expected, s: &Stored) {
        let commit = Commit {
            key,
            expected,
            state: Some(s),
            event: None,
            transitions: &[],
            request: None,
            outgoing: &[],
            claim: None,
            now: Timestamp(7),
        };
        assert!(matches!(store.commit(&commit).await.unwrap(), Committed::Applied { .. }));
    }

    #[tokio::test]
    #[allow(clippy::await_holding_lock)]
    async fn reads_in_place_what_the_writer_committed_and_through_the_pool_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let store = SqlStore::open(&url).await.unwrap();
        let inline = store.inline.clone().expect("SQLite reads in place");
        let key = ConversationKey::new("telegram", "1", "2");
        assert_eq!(inline.load(&key).unwrap().unwrap(), None, "nothing stored yet");

        commit(&store, &key, Expected::Absent, &stored(1)).await;
        let first = inline.load(&key).expect("read in place").unwrap().expect("stored");
        assert_eq!(first.state, stored(1).state);
        assert_eq!((first.flow_id.as_str(), first.flow_version), ("gmis", stored(1).flow_version));

        // The next commit is seen by the next read: no snapshot is held between reads.
        let expected = Expected::Revision { session: first.session, revision: 1 };
        commit(&store, &key, expected, &Stored { session: first.session, ..stored(2) }).await;
        assert_eq!(inline.load(&key).unwrap().unwrap().unwrap().state.revision, 2);

        // In use elsewhere (another worker thread): not now, and the store reads through the
        // pool, the same conversation. (Held across the pool's read on purpose: this test's
        // runtime has one thread, and nothing else takes the lock.)
        let held = inline.conn.lock().unwrap();
        assert!(inline.load(&key).is_none());
        let pooled = store.load(&key).await.unwrap().unwrap();
        drop(held);
        assert_eq!(pooled, inline.load(&key).unwrap().unwrap().unwrap());
    }

    #[tokio::test]
    async fn reads_the_file_sqlx_writes_when_the_url_is_percent_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/my%20bot.sqlite", dir.path().display());
        let store = SqlStore::open(&url).await.unwrap();
        assert!(dir.path().join("my bot.sqlite").is_file());
        let key = ConversationKey::new("telegram", "1", "2");
        commit(&store, &key, Expected::Absent, &stored(1)).await;
        let inline = store.inline.clone().unwrap();
        assert_eq!(inline.load(&key).unwrap().unwrap().unwrap().state, stored(1).state);
    }

    #[tokio::test]
    async fn the_connection_only_reads() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let store = SqlStore::open(&url).await.unwrap();
        let inline = store.inline.clone().unwrap();
        let conn = inline.conn.lock().unwrap();
        let err = conn.execute("DELETE FROM conversations", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        assert!(!busy(&err));
    }
}
