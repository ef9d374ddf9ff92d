//! Group commit: one writer task applies every waiting commit in one transaction.
//!
//! A statement through sqlx costs tens of microseconds of hand-off whatever it does, so steps
//! that each ran their own transaction (begin, event, update, log, commit) were bound by that,
//! not by the database. The writer takes the first waiting commit and every other one already
//! queued (up to [`MAX_BATCH`]), and applies them with a constant number of multi-row statements;
//! each caller is answered only after the transaction commits. Under load batches grow by
//! themselves. Work found alone (typically a fetch's inbox write) waits one turn of the
//! scheduler first, so that the commits of the tasks woken with it (that fetch's chats) join its
//! transaction; if none does, it is a batch of one.
//!
//! Each commit in a batch keeps its own all-or-nothing outcome without savepoints: its event id
//! is inserted first (a duplicate stops it there), its state change is a compare-and-swap whose
//! losers are told apart by `RETURNING`, and a loser's event id is deleted again before the
//! transaction commits.
//!
//! The outgoing items of every applied commit are written with one multi-row statement per
//! batch (ids increasing in the order given), and claimed for their process with one more
//! where asked. A hand-off request is written only once its commit is known to apply (rare, so
//! row by row), with its deliveries as outbox items.
//!
//! The statements go through a [`Script`]: on SQLite those whose outcome the batch does not need
//! (the log, the undo, the delivery records, the inbox) wait for the next call, so a typical
//! batch is five calls to the connection's thread, `BEGIN` and `COMMIT` included.

use std::collections::{HashMap, HashSet};

use flowbot_core::{
    Claim, Committed, ConversationKey, Expected, NewOutgoing, NewRequest, StoreError, Stored,
    Timestamp, Transition,
};
use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, int, rows};
use crate::script::{Script, Stmt, params};

/// The most commits one transaction takes.
pub(crate) const MAX_BATCH: usize = 64;

/// A commit with its data owned, on its way to the writer.
#[derive(Debug)]
pub(crate) struct Job {
    pub key: ConversationKey,
    pub expected: Expected,
    pub state: Option<Stored>,
    pub event: Option<String>,
    pub transitions: Vec<Transition>,
    pub request: Option<OwnedRequest>,
    pub outgoing: Vec<OwnedOutgoing>,
    pub claim: Option<OwnedClaim>,
    pub now: Timestamp,
    pub reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// A [`NewOutgoing`] with its data owned.
#[derive(Debug, Clone)]
pub(crate) struct OwnedOutgoing {
    pub sink: String,
    pub lane: String,
    pub body: String,
}

impl From<&NewOutgoing<'_>> for OwnedOutgoing {
    fn from(o: &NewOutgoing<'_>) -> Self {
        OwnedOutgoing { sink: o.sink.to_owned(), lane: o.lane.to_owned(), body: o.body.to_owned() }
    }
}

/// A [`Claim`] with its data owned.
#[derive(Debug, Clone)]
pub(crate) struct OwnedClaim {
    pub owner: String,
    pub until: Timestamp,
}

impl From<&Claim<'_>> for OwnedClaim {
    fn from(c: &Claim<'_>) -> Self {
        OwnedClaim { owner: c.owner.to_owned(), until: c.until }
    }
}

/// A [`NewRequest`] with its data owned.
#[derive(Debug, Clone)]
pub(crate) struct OwnedRequest {
    pub reference: String,
    pub flow_id: String,
    pub form: String,
    pub text: String,
    pub payload: String,
    pub destinations: Vec<String>,
}

impl From<&NewRequest<'_>> for OwnedRequest {
    fn from(r: &NewRequest<'_>) -> Self {
        OwnedRequest {
            reference: r.reference.to_owned(),
            flow_id: r.flow_id.to_owned(),
            form: r.form.to_owned(),
            text: r.text.to_owned(),
            payload: r.payload.to_owned(),
            destinations: r.destinations.to_vec(),
        }
    }
}

/// What the writer is asked to do.
#[derive(Debug)]
pub(crate) enum Work {
    /// Boxed: a commit is large, a delivery record small.
    Commit(Box<Job>),
    /// Outbox items delivered (see `OutboxStore::done`): written in the next batch's
    /// transaction, so that recording deliveries never contends with commits for SQLite's one
    /// writer.
    Done(DoneJob),
    /// A poller's fetched and handled updates (see `InboundStore::inbound`), likewise.
    Inbound(InboundJob),
}

/// Delivered outbox items, on their way to the writer.
#[derive(Debug)]
pub(crate) struct DoneJob {
    pub ids: Vec<i64>,
    pub now: Timestamp,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// A poller's updates to keep and to forget, on their way to the writer.
#[derive(Debug)]
pub(crate) struct InboundJob {
    pub source: String,
    pub received: Vec<(i64, String)>,
    pub handled: Vec<i64>,
    pub now: Timestamp,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The work of one batch, taken from the queue.
#[derive(Debug, Default)]
struct Taken {
    commits: Vec<Job>,
    dones: Vec<DoneJob>,
    inbound: Vec<InboundJob>,
}

impl Taken {
    fn push(&mut self, work: Work) {
        match work {
            Work::Commit(job) => self.commits.push(*job),
            Work::Done(done) => self.dones.push(done),
            Work::Inbound(job) => self.inbound.push(job),
        }
    }

    fn len(&self) -> usize {
        self.commits.len() + self.dones.len() + self.inbound.len()
    }

    /// Answers every caller: commits with their results, the rest with `Ok`; or all with the
    /// batch's error.
    fn answer(&mut self, outcome: Result<Vec<Committed>, sqlx::Error>) {
        let (mut results, error) = match outcome {
            Ok(results) => (results.into_iter(), None),
            Err(err) => (Vec::new().into_iter(), Some(err.to_string())),
        };
        let status = || error.clone().map_or(Ok(()), |e| Err(StoreError::Database(e)));
        for job in self.commits.drain(..) {
            let result = match &error {
                None => Ok(results.next().expect("one result per commit")),
                Some(err) => Err(StoreError::Database(err.clone())),
            };
            let _ = job.reply.send(result);
        }
        for done in self.dones.drain(..) {
            let _ = done.reply.send(status());
        }
        for job in self.inbound.drain(..) {
            let _ = job.reply.send(status());
        }
    }
}

/// Runs until every sender is gone.
///
/// With SQLite the writer keeps its connection from batch to batch: taking one from the pool
/// and giving it back costs a round trip each (sqlx tests a connection when it is given
/// back), a hand-off to the connection's thread and back, as dear as a statement, for a
/// connection that cannot go away in between. After a failed batch the connection is closed
/// (it may still be inside the failed transaction, which closing rolls back) and the next
/// batch takes one afresh. A PostgreSQL connection is taken for each batch, tested first: the
/// server may have dropped it.
pub(crate) async fn writer(pool: AnyPool, backend: Backend, mut work: mpsc::Receiver<Work>) {
    let mut taken = Taken { commits: Vec::with_capacity(MAX_BATCH), ..Taken::default() };
    let mut held: Option<PoolConnection<Any>> = None;
    while let Some(first) = work.recv().await {
        taken.push(first);
        drain(&mut work, &mut taken);
        if taken.len() == 1 {
            // Alone (typically a fetch's inbox write): the tasks woken with it (that fetch's
            // chats) get to run first, and their commits join this transaction rather than
            // wait for the next one.
            tokio::task::yield_now().await;
            drain(&mut work, &mut taken);
        }
        let outcome = match held.take() {
            Some(conn) => Ok(conn),
            None => pool.acquire().await,
        };
        let outcome = match outcome {
            Ok(mut conn) => {
                let outcome = apply(&mut conn, backend, &taken).await;
                if outcome.is_err() {
                    // Possibly still inside the failed transaction: closed, which rolls it
                    // back, rather than handed out again.
                    let _ = conn.detach().close().await;
                } else if backend == Backend::Sqlite {
                    held = Some(conn);
                }
                outcome
            }
            Err(err) => Err(err),
        };
        taken.answer(outcome);
    }
}

/// Takes what is already waiting, up to [`MAX_BATCH`].
fn drain(work: &mut mpsc::Receiver<Work>, taken: &mut Taken) {
    while taken.len() < MAX_BATCH {
        match work.try_recv() {
            Ok(w) => taken.push(w),
            Err(_) => break,
        }
    }
}

/// Binds a stored conversation's state columns in table order (flow_id … updated_at, form).
fn bind_state<'q>(q: &mut Stmt<'q>, s: &'q Stored) {
    let st = &s.state;
    q.bind(s.flow_id.as_str())
        .bind(s.flow_version.to_string())
        .bind(st.node.as_str())
        .bind(int(st.revision))
        .bind(int(st.entered))
        .bind(st.path_text())
        .bind(i64::from(st.misses))
        .bind(i64::from(st.awaiting_resume))
        .bind(int(st.started_at.0))
        .bind(int(st.updated_at.0))
        .bind(st.form.as_deref());
}

const STATE_COLUMNS: usize = 11;

async fn apply(
    conn: &mut PoolConnection<Any>,
    backend: Backend,
    taken: &Taken,
) -> Result<Vec<Committed>, sqlx::Error> {
    let conn: &mut AnyConnection = conn;
    let mut script = Script::begin(backend);
    let batch = &taken.commits;
    let results = if batch.is_empty() {
        Vec::new()
    } else {
        apply_commits(conn, &mut script, backend, batch).await?
    };
    // Every delivery record waiting, in one pair of statements (stamped with the latest time),
    // and the inbox writes: with the commit.
    let ids: Vec<i64> = taken.dones.iter().flat_map(|d| d.ids.iter().copied()).collect();
    if let Some(now) = taken.dones.iter().map(|d| d.now).max() {
        record_done(&mut script, backend, &ids, now);
    }
    for job in &taken.inbound {
        record_inbound(&mut script, backend, job);
    }
    script.commit(conn).await?;
    Ok(results)
}

/// The commits of a batch, in the batch's transaction.
async fn apply_commits<'a>(
    conn: &mut AnyConnection,
    script: &mut Script<'a>,
    backend: Backend,
    batch: &'a [Job],
) -> Result<Vec<Committed>, sqlx::Error> {
    let mut results: Vec<Option<Committed>> = vec![None; batch.len()];

    // 1. Event ids: the first of each id in the batch is inserted; a repeat, or an id already
    //    stored, makes its commit a duplicate.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    for (i, job) in batch.iter().enumerate() {
        if let Some(event) = job.event.as_deref() {
            if first_of.contains_key(event) {
                results[i] = Some(Committed::Duplicate);
            } else {
                first_of.insert(event, i);
            }
        }
    }
    if !first_of.is_empty() {
        let sql = format!(
            "INSERT INTO events (event_id, seen_at) VALUES {} ON CONFLICT DO NOTHING RETURNING event_id",
            rows(backend, first_of.len(), 2)
        );
        let mut q = Stmt::new(sql);
        for (event, &i) in &first_of {
            q.bind(*event).bind(int(batch[i].now.0));
        }
        let inserted: HashSet<String> = script
            .fetch(conn, q)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        for (event, &i) in &first_of {
            if !inserted.contains(*event) {
                results[i] = Some(Committed::Duplicate);
            }
        }
    }
    // One change per conversation per batch: a second one for the same conversation was based
    // on the state before the first, so it is a conflict and re-reads.
    let mut sessions_seen = HashSet::new();
    let mut keys_seen = HashSet::new();
    for (i, job) in batch.iter().enumerate() {
        if results[i].is_some() || job.state.is_none() {
            continue;
        }
        let first = match job.expected {
            Expected::Revision { session, .. } => sessions_seen.insert(session),
            Expected::Replace { session, .. } => {
                sessions_seen.insert(session) && keys_seen.insert(&job.key)
            }
            Expected::Absent => keys_seen.insert(&job.key),
        };
        if !first {
            results[i] = Some(Committed::Conflict);
        }
    }
    let live = |i: usize, results: &[Option<Committed>]| results[i].is_none();

    // 2. Updates in place: a compare-and-swap on (session, revision) per row.
    let updates: Vec<usize> = (0..batch.len())
        .filter(|&i| live(i, &results))
        .filter(|&i| {
            batch[i].state.is_some() && matches!(batch[i].expected, Expected::Revision { .. })
        })
        .collect();
    if !updates.is_empty() {
        let cols = 2 + STATE_COLUMNS;
        let sql = format!(
            "UPDATE conversations SET flow_id = v.column3, flow_version = v.column4, node = v.column5, \
             revision = v.column6, entered = v.column7, path = v.column8, misses = v.column9, \
             awaiting_resume = v.column10, started_at = v.column11, updated_at = v.column12, \
             form = v.column13 \
             FROM (VALUES {}) AS v \
             WHERE conversations.session = v.column1 AND conversations.revision = v.column2 \
             RETURNING conversations.session",
            rows(backend, updates.len(), cols)
        );
        let mut q = Stmt::new(sql);
        for &i in &updates {
            let Expected::Revision { session, revision } = batch[i].expected else {
                unreachable!()
            };
            q.bind(session).bind(int(revision));
            bind_state(&mut q, batch[i].state.as_ref().expect("filtered"));
        }
        let done: HashSet<i64> = script
            .fetch(conn, q)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for &i in &updates {
            let Expected::Revision { session, .. } = batch[i].expected else { unreachable!() };
            results[i] =
                Some(if done.contains(&session) { applied(session) } else { Committed::Conflict });
        }
    }

    // 3. Replacements of expired conversations (rare): delete the old session if unchanged.
    let mut inserts = Vec::new();
    for i in 0..batch.len() {
        if !live(i, &results) || batch[i].state.is_none() {
            continue;
        }
        match batch[i].expected {
            Expected::Replace { session, revision } => {
                let mut q = Stmt::new(
                    "DELETE FROM conversations WHERE session = $1 AND revision = $2 \
                     RETURNING session",
                );
                q.bind(session).bind(int(revision));
                let deleted = script.fetch_alone(conn, q).await?;
                if deleted.is_empty() {
                    results[i] = Some(Committed::Conflict);
                } else {
                    inserts.push(i);
                }
            }
            Expected::Absent => inserts.push(i),
            Expected::Revision { .. } => {}
        }
    }

    // 4. New conversations; one that another writer inserted first is a conflict.
    if !inserts.is_empty() {
        let cols = 3 + STATE_COLUMNS;
        let sql = format!(
            "INSERT INTO conversations (platform, chat, user_id, flow_id, flow_version, node, revision, \
             entered, path, misses, awaiting_resume, started_at, updated_at, form) VALUES {} \
             ON CONFLICT (platform, chat, user_id) DO NOTHING RETURNING session, platform, chat, user_id",
            rows(backend, inserts.len(), cols)
        );
        let mut q = Stmt::new(sql);
        for &i in &inserts {
            let k = &batch[i].key;
            q.bind(k.platform.as_str()).bind(k.conversation.as_str()).bind(k.user.as_str());
            bind_state(&mut q, batch[i].state.as_ref().expect("filtered"));
        }
        let mut sessions: HashMap<(String, String, String), i64> = HashMap::new();
        for r in script.fetch(conn, q).await? {
            sessions.insert((r.try_get(1)?, r.try_get(2)?, r.try_get(3)?), r.try_get(0)?);
        }
        for &i in &inserts {
            let k = &batch[i].key;
            let id = (k.platform.clone(), k.conversation.clone(), k.user.clone());
            results[i] = Some(match sessions.get(&id) {
                Some(&session) => applied(session),
                None => Committed::Conflict,
            });
        }
    }

    // 5. What is left changed nothing but its event id.
    for (i, job) in batch.iter().enumerate() {
        if results[i].is_none() {
            let session = match job.expected {
                Expected::Revision { session, .. } | Expected::Replace { session, .. } => session,
                Expected::Absent => 0,
            };
            results[i] = Some(applied(session));
        }
    }
    let mut results: Vec<Committed> =
        results.into_iter().map(|r| r.expect("every commit decided")).collect();

    // 6. The event log of every applied change.
    let logged: Vec<(i64, &Stored, &Transition)> = batch
        .iter()
        .zip(&results)
        .filter_map(|(job, r)| match (r, &job.state) {
            (Committed::Applied { session, .. }, Some(state)) => {
                Some((*session, state, &job.transitions))
            }
            _ => None,
        })
        .flat_map(|(session, state, ts)| ts.iter().map(move |t| (session, state, t)))
        .collect();
    if !logged.is_empty() {
        let sql = format!(
            "INSERT INTO transitions (session, flow_id, flow_version, kind, from_node, choice, to_node, at) \
             VALUES {}",
            rows(backend, logged.len(), 8)
        );
        let mut q = Stmt::new(sql);
        for (session, state, t) in &logged {
            q.bind(*session)
                .bind(state.flow_id.as_str())
                .bind(state.flow_version.to_string())
                .bind(t.kind.as_str())
                .bind(t.from.as_deref())
                .bind(t.choice.map(i64::from))
                .bind(t.to.as_str())
                .bind(int(t.at.0));
        }
        // Needed by nothing that follows: sent with the outbox insert.
        script.push(q);
    }

    // 7. The outgoing items of every applied commit, in order, in one statement.
    let mut written: Vec<Vec<(i64, usize)>> = vec![Vec::new(); batch.len()];
    let items: Vec<(usize, &OwnedOutgoing)> = batch
        .iter()
        .zip(&results)
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, Committed::Applied { .. }))
        .flat_map(|(i, (job, _))| job.outgoing.iter().map(move |o| (i, o)))
        .collect();
    if !items.is_empty() {
        let sql = format!(
            "INSERT INTO outbox (sink, lane, body, next_attempt_at, created_at) VALUES {} \
             RETURNING id",
            rows(backend, items.len(), 5)
        );
        let mut q = Stmt::new(sql);
        for (i, o) in &items {
            let now = int(batch[*i].now.0);
            q.bind(o.sink.as_str()).bind(o.lane.as_str()).bind(o.body.as_str()).bind(now).bind(now);
        }
        let ids = returned_ids(script.fetch(conn, q).await?, items.len())?;
        for (k, ((i, _), id)) in items.iter().zip(ids).enumerate() {
            written[*i].push((id, k));
        }
    }
    // The lanes of the items, to claim by: (sink, lane) of written item k.
    let mut lanes: Vec<(&str, &str)> =
        items.iter().map(|(_, o)| (o.sink.as_str(), o.lane.as_str())).collect();

    // 8. The hand-off request of every applied commit, with one outbox item per destination.
    for (i, job) in batch.iter().enumerate() {
        if let (Committed::Applied { .. }, Some(request)) = (&results[i], &job.request) {
            let ids = insert_request(conn, script, backend, &job.key, request, job.now).await?;
            for (id, destination) in ids.into_iter().zip(&request.destinations) {
                written[i].push((id, lanes.len()));
                lanes.push((destination.as_str(), request.reference.as_str()));
            }
        }
    }

    // 9. Claims: a commit's items of one lane are claimed for its owner, all of them, if no
    //    earlier item of the lane is pending (written before, in this batch or earlier) but
    //    under a live lease of that same owner: its worker holds the lane's earlier items and
    //    sends these after them (a user who answers the moment a question arrives must not
    //    wait for the worker's next look at the store).
    let mut candidates: Vec<(i64, &OwnedClaim, i64, Timestamp)> = Vec::new();
    for (i, job) in batch.iter().enumerate() {
        let Some(claim) = &job.claim else { continue };
        for &(id, k) in &written[i] {
            let first = written[i]
                .iter()
                .filter(|(_, other)| lanes[*other] == lanes[k])
                .map(|(id, _)| *id)
                .min()
                .unwrap_or(id);
            candidates.push((id, claim, first, job.now));
        }
    }
    let mut claimed: HashSet<i64> = HashSet::new();
    if !candidates.is_empty() {
        let sql = format!(
            "UPDATE outbox SET owner = v.column2, lease_until = v.column3 FROM (VALUES {}) AS v \
             WHERE outbox.id = v.column1 AND NOT EXISTS (SELECT 1 FROM outbox e \
             WHERE e.sink = outbox.sink AND e.lane = outbox.lane AND e.id < v.column4 \
             AND e.delivered_at IS NULL AND e.gave_up_at IS NULL \
             AND NOT (e.owner IS NOT NULL AND e.owner = v.column2 AND e.lease_until > v.column5)) \
             RETURNING outbox.id",
            rows(backend, candidates.len(), 5)
        );
        let mut q = Stmt::new(sql);
        for (id, claim, first, now) in &candidates {
            q.bind(*id)
                .bind(claim.owner.as_str())
                .bind(int(claim.until.0))
                .bind(*first)
                .bind(int(now.0));
        }
        for row in script.fetch(conn, q).await? {
            claimed.insert(row.try_get::<i64, _>(0)?);
        }
    }
    for (i, result) in results.iter_mut().enumerate() {
        if let Committed::Applied { outgoing, claimed: mine, .. } = result {
            *outgoing = written[i].iter().map(|(id, _)| *id).collect();
            *mine = outgoing.iter().copied().filter(|id| claimed.contains(id)).collect();
        }
    }

    // 10. A commit that lost its compare-and-swap leaves no event id behind.
    let undo: Vec<&str> = batch
        .iter()
        .zip(&results)
        .filter(|(_, r)| **r == Committed::Conflict)
        .filter_map(|(job, _)| job.event.as_deref())
        .collect();
    if !undo.is_empty() {
        let sql = format!("DELETE FROM events WHERE event_id IN {}", rows(backend, 1, undo.len()));
        let mut q = Stmt::new(sql);
        for event in &undo {
            q.bind(*event);
        }
        script.push(q);
    }

    Ok(results)
}

/// An applied commit's result before its outbox items are known.
fn applied(session: i64) -> Committed {
    Committed::Applied { session, outgoing: Vec::new(), claimed: Vec::new() }
}

/// The ids a multi-row `INSERT … RETURNING id` wrote, in the order of its rows: ids are
/// assigned in row order on both backends, but `RETURNING` promises no order, so they are
/// sorted (and counted).
fn returned_ids(rows: Vec<sqlx::any::AnyRow>, expected: usize) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids: Vec<i64> =
        rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<Result<_, _>>()?;
    if ids.len() != expected {
        return Err(sqlx::Error::Protocol(format!(
            "{expected} outbox rows inserted, {} ids returned",
            ids.len()
        )));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Writes a request and its deliveries (outbox items: not attempted yet, due at once); the
/// deliveries' ids, in the order of the destinations.
async fn insert_request<'a>(
    conn: &mut AnyConnection,
    script: &mut Script<'a>,
    backend: Backend,
    key: &'a ConversationKey,
    r: &'a OwnedRequest,
    now: Timestamp,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut q = Stmt::new(
        "INSERT INTO requests (reference, flow_id, form, text, payload, created_at, platform, \
         chat, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    );
    q.bind(r.reference.as_str())
        .bind(r.flow_id.as_str())
        .bind(r.form.as_str())
        .bind(r.text.as_str())
        .bind(r.payload.as_str())
        .bind(int(now.0))
        .bind(key.platform.as_str())
        .bind(key.conversation.as_str())
        .bind(key.user.as_str());
    let rows_back = script.fetch_alone(conn, q).await?;
    let row = rows_back.first().ok_or(sqlx::Error::RowNotFound)?;
    let id: i64 = row.try_get(0)?;
    if r.destinations.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO outbox (sink, lane, body, request, next_attempt_at, created_at) VALUES {} \
         RETURNING id",
        rows(backend, r.destinations.len(), 6)
    );
    let mut q = Stmt::new(sql);
    for destination in &r.destinations {
        q.bind(destination.as_str())
            .bind(r.reference.as_str())
            .bind("")
            .bind(id)
            .bind(int(now.0))
            .bind(int(now.0));
    }
    returned_ids(script.fetch(conn, q).await?, r.destinations.len())
}

/// Records delivered items, with the batch's next call: reply rows are deleted (their body may
/// quote personal data); hand-off deliveries are kept, marked delivered. Neither statement
/// touches the other's rows, so both are sent whatever the items are.
fn record_done(script: &mut Script<'_>, backend: Backend, ids: &[i64], now: Timestamp) {
    if ids.is_empty() {
        return;
    }
    let mut q = Stmt::new(format!(
        "UPDATE outbox SET delivered_at = {}, owner = NULL, lease_until = NULL \
         WHERE request IS NOT NULL AND delivered_at IS NULL AND id IN ({})",
        params(backend, 1, 1),
        params(backend, 2, ids.len())
    ));
    q.bind(int(now.0));
    for id in ids {
        q.bind(*id);
    }
    script.push(q);
    let mut q = Stmt::new(format!(
        "DELETE FROM outbox WHERE request IS NULL AND gave_up_at IS NULL AND id IN ({})",
        params(backend, 1, ids.len())
    ));
    for id in ids {
        q.bind(*id);
    }
    script.push(q);
}

/// The most rows of one inbox statement (four parameters each, far below either backend's
/// limit on parameters).
const INBOUND_ROWS: usize = 500;

/// Keeps a poller's fetched updates, then forgets its handled ones, with the batch's next call.
fn record_inbound<'a>(script: &mut Script<'a>, backend: Backend, job: &'a InboundJob) {
    for chunk in job.received.chunks(INBOUND_ROWS) {
        let mut q = Stmt::new(format!(
            "INSERT INTO inbound (source, update_id, body, received_at) VALUES {} \
             ON CONFLICT (source, update_id) DO NOTHING",
            rows(backend, chunk.len(), 4)
        ));
        for (id, body) in chunk {
            q.bind(job.source.as_str()).bind(*id).bind(body.as_str()).bind(int(job.now.0));
        }
        script.push(q);
    }
    for chunk in job.handled.chunks(INBOUND_ROWS) {
        let mut q = Stmt::new(format!(
            "DELETE FROM inbound WHERE source = {} AND update_id IN ({})",
            params(backend, 1, 1),
            params(backend, 2, chunk.len())
        ));
        q.bind(job.source.as_str());
        for id in chunk {
            q.bind(*id);
        }
        script.push(q);
    }
}
