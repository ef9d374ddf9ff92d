//! A batch's transaction sent in as few calls as the backend allows.
//!
//! Each call to a SQLite connection is a hand-off to the connection's thread and back, and under
//! load that hand-off, not the SQL, is what a statement costs (a `BEGIN` took as long as a
//! 24-row insert). SQLite runs several statements in one call, binding anonymous `?`
//! parameters across them in order, so a statement whose outcome the batch does not need waits
//! and goes with the next call, `BEGIN` and `COMMIT` included. PostgreSQL takes one statement
//! with parameters a call: there the same script is sent statement by statement.
//!
//! Merged statements use anonymous placeholders only ([`crate::backend::rows`] and
//! [`params`]); a statement with numbered ones goes through [`Script::fetch_alone`].

use std::borrow::Cow;

use sqlx::AnyConnection;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor};

use crate::backend::Backend;

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(Cow<'a, str>),
    MaybeText(Option<&'a str>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}

impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::MaybeInt(v)
    }
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Val<'_> {
    fn from(v: String) -> Self {
        Val::Text(Cow::Owned(v))
    }
}

impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::MaybeText(v)
    }
}

/// One statement and its values, in placeholder order.
#[derive(Debug)]
pub(crate) struct Stmt<'a> {
    sql: String,
    vals: Vec<Val<'a>>,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        Stmt { sql: sql.into(), vals: Vec::new() }
    }

    /// Binds the next placeholder.
    pub(crate) fn bind(&mut self, v: impl Into<Val<'a>>) -> &mut Self {
        self.vals.push(v.into());
        self
    }
}

/// `n` placeholders separated by commas, from the `first` (numbered for PostgreSQL, `?` for
/// SQLite, so that the statement can be merged).
pub(crate) fn params(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; n].join(","),
        Backend::Postgres => crate::backend::list(first, n),
    }
}

/// An open transaction and the statements waiting for its next call. Dropped without
/// [`Script::commit`] (an error), the connection is left inside the transaction: the caller
/// closes it, which rolls it back.
#[derive(Debug)]
pub(crate) struct Script<'a> {
    backend: Backend,
    pending: Vec<Stmt<'a>>,
}

impl<'a> Script<'a> {
    /// A transaction whose `BEGIN` goes with the first call.
    pub(crate) fn begin(backend: Backend) -> Self {
        Script { backend, pending: vec![Stmt::new("BEGIN")] }
    }

    /// A statement whose outcome the batch does not need (it returns no rows): sent with the
    /// next call.
    pub(crate) fn push(&mut self, stmt: Stmt<'a>) {
        debug_assert!(!stmt.sql.contains("RETURNING"), "a pushed statement returns no rows");
        self.pending.push(stmt);
    }

    /// Sends what waits and `stmt`, in one call where the backend allows; the rows of `stmt`.
    pub(crate) async fn fetch(
        &mut self,
        conn: &mut AnyConnection,
        stmt: Stmt<'a>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        self.pending.push(stmt);
        self.send(conn).await
    }

    /// [`Script::fetch`] for a statement with numbered placeholders: what waits goes first, in
    /// a call of its own.
    pub(crate) async fn fetch_alone(
        &mut self,
        conn: &mut AnyConnection,
        stmt: Stmt<'a>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        if !self.pending.is_empty() {
            self.send(conn).await?;
        }
        self.fetch(conn, stmt).await
    }

    /// Sends what waits, then `COMMIT`.
    pub(crate) async fn commit(mut self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.pending.push(Stmt::new("COMMIT"));
        self.send(conn).await.map(drop)
    }

    /// Sends every waiting statement; the rows of the last (the only one that may return any).
    async fn send(&mut self, conn: &mut AnyConnection) -> Result<Vec<AnyRow>, sqlx::Error> {
        let stmts = std::mem::take(&mut self.pending);
        match self.backend {
            Backend::Sqlite => {
                let sql: Vec<&str> = stmts.iter().map(|s| s.sql.as_str()).collect();
                let sql = sql.join(";\n");
                let vals = stmts.iter().flat_map(|s| &s.vals);
                conn.fetch_all(bound(sqlx::query(&sql), vals)).await
            }
            Backend::Postgres => {
                let mut rows = Vec::new();
                for s in &stmts {
                    rows = conn.fetch_all(bound(sqlx::query(&s.sql), &s.vals)).await?;
                }
                Ok(rows)
            }
        }
    }
}

fn bound<'q, 'v: 'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    vals: impl IntoIterator<Item = &'q Val<'v>>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for v in vals {
        q = match v {
            Val::Int(i) => q.bind(*i),
            Val::MaybeInt(i) => q.bind(*i),
            Val::Text(t) => q.bind(t.as_ref()),
            Val::MaybeText(t) => q.bind(*t),
        };
    }
    q
}
