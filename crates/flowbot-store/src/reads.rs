//! The SQL of a step's point reads and the row a conversation is read from: shared by the pool's
//! reads (`sql`, `queue`) and SQLite's reads in place (`inline`).

use flowbot_core::{FlowVersion, Snapshot, StoreError, Stored, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::backend::{db, uint};

/// Whether an item of a lane (`$1` sink, `$2` lane) written since `$3` was given up.
pub(crate) const GAVE_UP_SINCE: &str = "SELECT 1 FROM outbox WHERE sink = $1 AND lane = $2 AND created_at >= $3 \
     AND gave_up_at IS NOT NULL LIMIT 1";

/// A conversation's row by its key (`$1` platform, `$2` chat, `$3` user), its columns in the
/// order of [`RawStored`].
pub(crate) const SELECT_CONVERSATION: &str = "SELECT session, flow_id, flow_version, node, revision, entered, path, misses, \
     awaiting_resume, started_at, updated_at, form FROM conversations \
     WHERE platform = $1 AND chat = $2 AND user_id = $3";

/// A conversation's row as stored, before it is checked.
pub(crate) struct RawStored {
    pub session: i64,
    pub flow_id: String,
    pub flow_version: String,
    pub node: String,
    pub revision: i64,
    pub entered: i64,
    pub path: String,
    pub misses: i64,
    pub awaiting_resume: i64,
    pub started_at: i64,
    pub updated_at: i64,
    pub form: Option<String>,
}

impl RawStored {
    pub(crate) fn of(row: &AnyRow) -> Result<Self, StoreError> {
        let get_i = |i: usize| row.try_get::<i64, _>(i).map_err(db);
        let get_s = |i: usize| row.try_get::<String, _>(i).map_err(db);
        Ok(RawStored {
            session: get_i(0)?,
            flow_id: get_s(1)?,
            flow_version: get_s(2)?,
            node: get_s(3)?,
            revision: get_i(4)?,
            entered: get_i(5)?,
            path: get_s(6)?,
            misses: get_i(7)?,
            awaiting_resume: get_i(8)?,
            started_at: get_i(9)?,
            updated_at: get_i(10)?,
            form: row.try_get::<Option<String>, _>(11).map_err(db)?,
        })
    }

    pub(crate) fn into_stored(self) -> Result<Stored, StoreError> {
        let flow_version = FlowVersion::parse_hex(&self.flow_version)
            .ok_or_else(|| StoreError::Corrupt(format!("flow version `{}`", self.flow_version)))?;
        let path =
            Snapshot::parse_path(&self.path).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Stored {
            session: self.session,
            flow_id: self.flow_id,
            flow_version,
            state: Snapshot {
                node: self.node,
                revision: uint(self.revision),
                entered: uint(self.entered),
                path,
                misses: u8::try_from(self.misses).unwrap_or(u8::MAX),
                awaiting_resume: self.awaiting_resume != 0,
                started_at: Timestamp(uint(self.started_at)),
                updated_at: Timestamp(uint(self.updated_at)),
                form: self.form,
            },
        })
    }
}
