//! The SQL store: one implementation of [`Store`] for SQLite and PostgreSQL.
//!
//! It goes through sqlx's `Any` driver: the statements use `$N` placeholders, which both
//! backends accept (numbered in order of appearance), and only the two migrations differ (how an
//! identity column is spelt). The shared store suite runs against both.

use std::borrow::Cow;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_core::{
    Commit, Committed, ConversationKey, ConversationStore, FlowVersion, Purged, StoreError, Stored,
    Timestamp, VersionStats,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot};

pub use crate::backend::Backend;
use crate::backend::{db, int, uint};
use crate::batch::{self, Job, MAX_BATCH, OwnedClaim, OwnedOutgoing, OwnedRequest, Work};
use crate::inline::Inline;
use crate::reads::{RawStored, SELECT_CONVERSATION};

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL (use sqlite://PATH or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("cannot create the folder for the database file {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot connect to the {backend:?} database: {source}")]
    Connect { backend: Backend, source: sqlx::Error },
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot open the database file {path} for reads: {reason}")]
    Inline { path: String, reason: String },
}

/// A conversation store on SQLite or PostgreSQL.
///
/// Commits go to one writer task that applies all waiting commits in one transaction (see
/// `batch`); reads use the pool directly, except SQLite's point reads of a step, made in place
/// (see `inline`).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    jobs: mpsc::Sender<Work>,
    pub(crate) inline: Option<Arc<Inline>>,
}

/// The migrations, in order: `(version, description, SQLite, PostgreSQL)`.
const MIGRATIONS: [(i64, &str, &str, &str); 7] = [
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "handoff",
        include_str!("../migrations/sqlite/0002_handoff.sql"),
        include_str!("../migrations/postgres/0002_handoff.sql"),
    ),
    (
        3,
        "outbox",
        include_str!("../migrations/sqlite/0003_outbox.sql"),
        include_str!("../migrations/postgres/0003_outbox.sql"),
    ),
    (
        4,
        "secrets",
        include_str!("../migrations/sqlite/0004_secrets.sql"),
        include_str!("../migrations/postgres/0004_secrets.sql"),
    ),
    (
        5,
        "requests inbox",
        include_str!("../migrations/sqlite/0005_requests_inbox.sql"),
        include_str!("../migrations/postgres/0005_requests_inbox.sql"),
    ),
    (
        6,
        "outbox indexes",
        include_str!("../migrations/sqlite/0006_outbox_indexes.sql"),
        include_str!("../migrations/postgres/0006_outbox_indexes.sql"),
    ),
    (
        7,
        "inbound",
        include_str!("../migrations/sqlite/0007_inbound.sql"),
        include_str!("../migrations/postgres/0007_inbound.sql"),
    ),
];

impl SqlStore {
    /// Hands work to the writer (`make` wraps the reply's sender) and waits for its answer,
    /// given once the batch that took it has committed.
    pub(crate) async fn to_writer<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Work,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let closed = || StoreError::Database("the store is closed".to_owned());
        self.jobs.send(make(reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Opens (creating if needed) the database at `url` and applies the embedded migrations.
    ///
    /// SQLite: `sqlite://PATH` (the file and its folder are created); WAL journal with
    /// `synchronous=NORMAL`, so a committed step survives a crash of the process (not of the
    /// machine's power: see [`Synchronous`]). PostgreSQL: `postgres://USER:PASSWORD@HOST/DB`.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, Synchronous::default()).await
    }

    /// [`SqlStore::open`], with SQLite's durability chosen (PostgreSQL ignores it: its own
    /// `synchronous_commit` is the server's setting).
    pub async fn open_with(url: &str, synchronous: Synchronous) -> Result<Self, OpenError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = normalize_url(url)?;
        // Reads go through a pool; all writes through one connection of their own (the group
        // commit writer), so a burst of reads never keeps the writer waiting for a connection.
        let readers = if backend == Backend::Sqlite { 3 } else { 12 };
        let pool = Self::pool(backend, &url, readers, synchronous).await?;
        let writer = Self::pool(backend, &url, 1, synchronous).await?;
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sqlite, postgres)| {
                let sql = match backend {
                    Backend::Sqlite => sqlite,
                    Backend::Postgres => postgres,
                };
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        let migrator = Migrator {
            migrations: Cow::Owned(migrations),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        migrator.run(&writer).await?;
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(batch::writer(writer, backend, queue));
        let inline = match backend {
            Backend::Sqlite => {
                let path = sqlite_file(&url)?;
                let inline = Inline::open(&path).map_err(|e| OpenError::Inline {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                Some(Arc::new(inline))
            }
            Backend::Postgres => None,
        };
        Ok(SqlStore { pool, backend, jobs, inline })
    }

    async fn pool(
        backend: Backend,
        url: &str,
        size: u32,
        synchronous: Synchronous,
    ) -> Result<AnyPool, OpenError> {
        let options = match backend {
            // In the process, a SQLite connection cannot have gone away between two uses: no
            // test round trip before each.
            Backend::Sqlite => {
                AnyPoolOptions::new().test_before_acquire(false).after_connect(move |conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute(synchronous.pragma()).await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        Ok(())
                    })
                })
            }
            Backend::Postgres => AnyPoolOptions::new(),
        };
        options
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|source| OpenError::Connect { backend, source })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// How SQLite makes a commit durable (`PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// The WAL is synced at checkpoints only: a committed step survives a crash of the process,
    /// but a crash of the machine or a power cut may roll back the last steps (which the
    /// platform may already have been told of). The default: the fastest safe choice.
    #[default]
    Normal,
    /// The WAL is synced at every commit: a committed step survives a power cut too, at the
    /// cost of one sync per batch of steps.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "PRAGMA synchronous = NORMAL",
            Synchronous::Full => "PRAGMA synchronous = FULL",
        }
    }
}

impl std::str::FromStr for Synchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            other => Err(format!("`{other}` is not \"normal\" or \"full\"")),
        }
    }
}

/// The backend a URL names, and the URL sqlx should get (SQLite: created if missing).
fn normalize_url(url: &str) -> Result<(Backend, String), OpenError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return Err(OpenError::UnsupportedUrl(redact(url)));
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(OpenError::UnsupportedUrl(format!(
            "{url}: give a file path; an in-memory database would lose every conversation"
        )));
    }
    let query = if query.is_empty() { "mode=rwc".to_owned() } else { query.to_owned() };
    let url = format!("sqlite://{path}?{query}");
    let file = sqlite_file(&url)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| OpenError::CreateDir { path: path.to_owned(), source })?;
    }
    Ok((Backend::Sqlite, url))
}

/// The file a SQLite URL names, read as sqlx reads it (the path percent-decoded).
fn sqlite_file(url: &str) -> Result<PathBuf, OpenError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| OpenError::UnsupportedUrl(e.to_string()))?;
    Ok(options.get_filename().to_path_buf())
}

/// A URL fit for an error message: no password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl ConversationStore for SqlStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Stored>, StoreError> {
        if let Some(loaded) = self.inline.as_ref().and_then(|inline| inline.load(key)) {
            return loaded;
        }
        let row = sqlx::query(SELECT_CONVERSATION)
            .bind(&key.platform)
            .bind(&key.conversation)
            .bind(&key.user)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(|row| RawStored::of(row)?.into_stored()).transpose()
    }

    async fn commit(&self, c: &Commit<'_>) -> Result<Committed, StoreError> {
        self.to_writer(|reply| {
            Work::Commit(Box::new(Job {
                key: c.key.clone(),
                expected: c.expected,
                state: c.state.cloned(),
                event: c.event.map(str::to_owned),
                transitions: c.transitions.to_vec(),
                request: c.request.map(OwnedRequest::from),
                outgoing: c.outgoing.iter().map(OwnedOutgoing::from).collect(),
                claim: c.claim.as_ref().map(OwnedClaim::from),
                now: c.now,
                reply,
            }))
        })
        .await
    }

    async fn save_flow(
        &self,
        flow_id: &str,
        version: FlowVersion,
        source: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO flow_versions (flow_id, version, source, saved_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (flow_id, version) DO NOTHING",
        )
        .bind(flow_id)
        .bind(version.to_string())
        .bind(source)
        .bind(int(now.0))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn secret(
        &self,
        name: &str,
        fresh: &[u8],
        now: Timestamp,
    ) -> Result<Vec<u8>, StoreError> {
        crate::secret::keep(&self.pool, name, fresh, now).await
    }

    async fn flow_source(
        &self,
        flow_id: &str,
        version: FlowVersion,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT source FROM flow_versions WHERE flow_id = $1 AND version = $2")
                .bind(flow_id)
                .bind(version.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.map(|r| r.try_get::<String, _>("source").map_err(db)).transpose()
    }

    async fn purge(
        &self,
        idle_before: Timestamp,
        events_before: Timestamp,
        personal_before: Timestamp,
        keep: &[(String, FlowVersion)],
    ) -> Result<Purged, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let conversations = sqlx::query("DELETE FROM conversations WHERE updated_at < $1")
            .bind(int(idle_before.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        let events = sqlx::query("DELETE FROM events WHERE seen_at < $1")
            .bind(int(events_before.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        // Kept updates older than the event ids they are deduplicated by could no longer be
        // told apart from new ones (and may quote what a user typed).
        sqlx::query("DELETE FROM inbound WHERE received_at < $1")
            .bind(int(events_before.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Personal data: old requests with their deliveries (delivered or not), old reply items
        // (given up, or pending with no worker to send them), then the drafts of
        // conversations that are kept but idle since before the retention period.
        sqlx::query(
            "DELETE FROM outbox WHERE request IN (SELECT id FROM requests WHERE created_at < $1)",
        )
        .bind(int(personal_before.0))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let requests = sqlx::query("DELETE FROM requests WHERE created_at < $1")
            .bind(int(personal_before.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        let replies = sqlx::query("DELETE FROM outbox WHERE request IS NULL AND created_at < $1")
            .bind(int(personal_before.0))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        let drafts = sqlx::query(
            "UPDATE conversations SET form = NULL, revision = revision + 1 WHERE updated_at < $1 AND form IS NOT NULL",
        )
        .bind(int(personal_before.0))
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        let unused = sqlx::query(
            "SELECT flow_id, version FROM flow_versions f WHERE NOT EXISTS \
             (SELECT 1 FROM conversations c WHERE c.flow_id = f.flow_id AND c.flow_version = f.version)",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut flow_versions = 0;
        for row in unused {
            let flow_id: String = row.try_get("flow_id").map_err(db)?;
            let version: String = row.try_get("version").map_err(db)?;
            if keep.iter().any(|(id, v)| *id == flow_id && v.to_string() == version) {
                continue;
            }
            flow_versions +=
                sqlx::query("DELETE FROM flow_versions WHERE flow_id = $1 AND version = $2")
                    .bind(&flow_id)
                    .bind(&version)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
        }
        tx.commit().await.map_err(db)?;
        Ok(Purged { conversations, events, flow_versions, requests, replies, drafts })
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        let expected = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
        if applied < expected {
            return Err(StoreError::Database(format!(
                "{applied} of {expected} migrations applied"
            )));
        }
        Ok(())
    }

    async fn stats(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Result<Vec<VersionStats>, StoreError> {
        // Every query reads the transitions in `[since, until)` only ($1 and $2).
        let (since, until) = (int(since.map_or(0, |t| t.0)), int(until.map_or(u64::MAX, |t| t.0)));
        let rows = |sql: &'static str| {
            let pool = &self.pool;
            async move { sqlx::query(sql).bind(since).bind(until).fetch_all(pool).await.map_err(db) }
        };
        let mut all: Vec<VersionStats> = Vec::new();
        let conversations = rows(
            "SELECT flow_id, flow_version, COUNT(DISTINCT session) AS n FROM transitions \
             WHERE at >= $1 AND at < $2 \
             GROUP BY flow_id, flow_version ORDER BY flow_id, flow_version",
        )
        .await?;
        for row in conversations {
            all.push(VersionStats {
                flow_id: row.try_get("flow_id").map_err(db)?,
                flow_version: row.try_get("flow_version").map_err(db)?,
                conversations: uint(row.try_get("n").map_err(db)?),
                ..VersionStats::default()
            });
        }
        let find = |all: &mut Vec<VersionStats>, row: &AnyRow| -> Result<usize, StoreError> {
            let id: String = row.try_get("flow_id").map_err(db)?;
            let version: String = row.try_get("flow_version").map_err(db)?;
            all.iter().position(|s| s.flow_id == id && s.flow_version == version).ok_or_else(|| {
                StoreError::Corrupt(format!("stats for unknown version {id} {version}"))
            })
        };
        // `(node, sessions)` lists: started at, reached, submitted, stopped at.
        let per_node = [
            "SELECT flow_id, flow_version, to_node AS node, COUNT(DISTINCT session) AS n \
             FROM transitions WHERE at >= $1 AND at < $2 AND kind = 'start' \
             GROUP BY flow_id, flow_version, to_node ORDER BY to_node",
            "SELECT flow_id, flow_version, to_node AS node, COUNT(DISTINCT session) AS n \
             FROM transitions WHERE at >= $1 AND at < $2 \
             GROUP BY flow_id, flow_version, to_node ORDER BY to_node",
            "SELECT flow_id, flow_version, from_node AS node, COUNT(DISTINCT session) AS n \
             FROM transitions WHERE at >= $1 AND at < $2 AND kind = 'submit' \
             GROUP BY flow_id, flow_version, from_node ORDER BY from_node",
            "SELECT flow_id, flow_version, to_node AS node, COUNT(*) AS n FROM transitions t \
             WHERE t.id = (SELECT MAX(u.id) FROM transitions u \
             WHERE u.session = t.session AND u.at >= $1 AND u.at < $2) \
             GROUP BY flow_id, flow_version, to_node ORDER BY to_node",
        ];
        for (which, sql) in per_node.into_iter().enumerate() {
            for row in &rows(sql).await? {
                let i = find(&mut all, row)?;
                let node: String = row.try_get("node").map_err(db)?;
                let n = uint(row.try_get("n").map_err(db)?);
                let s = &mut all[i];
                let list = match which {
                    0 => &mut s.started,
                    1 => &mut s.reached,
                    2 => &mut s.submitted,
                    _ => &mut s.stopped_at,
                };
                list.push((node, n));
            }
        }
        let edges = rows(
            "SELECT flow_id, flow_version, from_node, choice, COUNT(DISTINCT session) AS n \
             FROM transitions WHERE at >= $1 AND at < $2 AND kind = 'answer' \
             GROUP BY flow_id, flow_version, from_node, choice ORDER BY from_node, choice",
        )
        .await?;
        for row in &edges {
            let i = find(&mut all, row)?;
            let from: String = row.try_get("from_node").map_err(db)?;
            let choice: i64 = row.try_get("choice").map_err(db)?;
            let choice = u8::try_from(choice)
                .map_err(|_| StoreError::Corrupt(format!("choice {choice}")))?;
            all[i].edges.push((from, choice, uint(row.try_get("n").map_err(db)?)));
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_durability_is_the_chosen_one_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        for (mode, want) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let url = format!("sqlite://{}", dir.path().join(format!("{want}.sqlite")).display());
            let store = SqlStore::open_with(&url, mode).await.unwrap();
            for _ in 0..3 {
                let level: i64 =
                    sqlx::query_scalar("PRAGMA synchronous").fetch_one(&store.pool).await.unwrap();
                assert_eq!(level, want, "{mode:?}");
            }
        }
        assert_eq!("FULL".parse::<Synchronous>(), Ok(Synchronous::Full));
        assert!("off".parse::<Synchronous>().is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(normalize_url("postgres://u:p@h/db").unwrap().0, Backend::Postgres);
        let dir = std::env::temp_dir().join(format!("flowbot-url-{}", std::process::id()));
        let path = dir.join("sub/x.sqlite");
        let (backend, url) = normalize_url(&format!("sqlite://{}", path.display())).unwrap();
        assert_eq!(backend, Backend::Sqlite);
        assert!(url.ends_with("x.sqlite?mode=rwc"), "{url}");
        assert!(path.parent().unwrap().is_dir());
        // The folder made is the one sqlx opens the file in (the path percent-decoded).
        let spaced = dir.join("a%20b/x.sqlite");
        normalize_url(&format!("sqlite://{}", spaced.display())).unwrap();
        assert!(dir.join("a b").is_dir());
        assert!(!dir.join("a%20b").exists());
        std::fs::remove_dir_all(dir).unwrap();
        assert!(normalize_url("sqlite::memory:").is_err());
        let err = normalize_url("mysql://user:secret@host/db").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
