//! The shared store suite: every case runs on SQLite and on PostgreSQL, each on a fresh database.

use std::sync::Arc;

use std::collections::HashSet;

use flowbot_core::{
    Commit, Committed, ConversationKey, Delivery, DeliveryCounts, Expected, FlowVersion, Input,
    NewRequest, Snapshot, Store, Stored, Timestamp, Transition, TransitionKind,
};
use flowbot_store::{Handled, Service, ServiceOptions, SqlStore, Update};
use flowbot_tests::{TestDb, root};

/// Runs each case on both backends, as `sqlite::CASE` and `postgres::CASE`.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = flowbot_tests::TestDb::sqlite();
                    super::$case(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = flowbot_tests::TestDb::postgres().await;
                    super::$case(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

on_both_backends!(
    compare_and_swap_on_the_revision,
    only_one_of_two_inserts_wins,
    a_redelivered_event_changes_nothing,
    an_unchanged_step_still_records_its_event,
    replacing_an_expired_conversation_starts_a_new_session,
    flow_versions_are_kept,
    purge_removes_expired_conversations_old_events_and_unused_versions,
    service_applies_concurrent_updates_of_one_conversation_one_at_a_time,
    service_deduplicates_concurrent_redeliveries,
    service_keeps_a_conversation_on_its_flow_version,
    service_expires_idle_conversations,
    stats_count_endings_edges_and_drop_off_where_paths_merge,
    reopened_store_keeps_everything,
    each_commit_of_a_batch_stands_alone,
    form_drafts_round_trip,
    a_commit_with_a_request_writes_it_with_one_delivery_per_destination,
    a_duplicate_or_conflicting_commit_writes_no_request,
    only_the_winner_of_a_batch_writes_its_request,
    claimed_deliveries_are_leased_retried_and_delivered,
    purge_deletes_old_requests_and_clears_old_drafts,
    concurrent_claimers_never_share_a_delivery,
);

const V1: FlowVersion = FlowVersion([1; 8]);
const V2: FlowVersion = FlowVersion([2; 8]);

fn key(user: &str) -> ConversationKey {
    ConversationKey::new("test", "chat", user)
}

fn stored(session: i64, node: &str, revision: u64, at: u64) -> Stored {
    Stored {
        session,
        flow_id: "f".into(),
        flow_version: V1,
        state: Snapshot {
            node: node.into(),
            revision,
            entered: revision,
            path: vec![("q1".into(), 1), ("q2".into(), 0)],
            misses: 2,
            awaiting_resume: true,
            started_at: Timestamp(5),
            updated_at: Timestamp(at),
            form: None,
        },
    }
}

fn commit<'a>(
    key: &'a ConversationKey,
    expected: Expected,
    state: Option<&'a Stored>,
    event: Option<&'a str>,
) -> Commit<'a> {
    Commit { key, expected, state, event, transitions: &[], request: None, now: Timestamp(100) }
}

async fn insert(store: &dyn Store, key: &ConversationKey, s: &Stored) -> i64 {
    match store.commit(&commit(key, Expected::Absent, Some(s), None)).await.unwrap() {
        Committed::Applied { session } => session,
        other => panic!("{other:?}"),
    }
}

async fn compare_and_swap_on_the_revision(db: &TestDb) {
    let store = db.store().await;
    let k = key("a");
    assert_eq!(store.load(&k).await.unwrap(), None);
    let session = insert(&store, &k, &stored(0, "q3", 1, 10)).await;
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded, stored(session, "q3", 1, 10), "everything round-trips");

    let next = stored(session, "q4", 2, 20);
    let stale = Expected::Revision { session, revision: 0 };
    assert_eq!(
        store.commit(&commit(&k, stale, Some(&next), None)).await.unwrap(),
        Committed::Conflict
    );
    let fresh = Expected::Revision { session, revision: 1 };
    assert_eq!(
        store.commit(&commit(&k, fresh, Some(&next), None)).await.unwrap(),
        Committed::Applied { session }
    );
    assert_eq!(store.load(&k).await.unwrap().unwrap().state.node, "q4");
    // The same expectation again is now stale.
    assert_eq!(
        store.commit(&commit(&k, fresh, Some(&next), None)).await.unwrap(),
        Committed::Conflict
    );
    // Keys differ by every part.
    for other in
        [ConversationKey::new("x", "chat", "a"), ConversationKey::new("test", "x", "a"), key("b")]
    {
        assert_eq!(store.load(&other).await.unwrap(), None);
    }
}

async fn only_one_of_two_inserts_wins(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let k = key("a");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let s = stored(0, &format!("n{i}"), 1, 10);
            store.commit(&commit(&k, Expected::Absent, Some(&s), None)).await.unwrap()
        }));
    }
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            Committed::Applied { .. } => applied += 1,
            Committed::Conflict => {}
            Committed::Duplicate => panic!("no events given"),
        }
    }
    assert_eq!(applied, 1);
}

async fn a_redelivered_event_changes_nothing(db: &TestDb) {
    let store = db.store().await;
    let k = key("a");
    let s1 = stored(0, "q1", 1, 10);
    let c = commit(&k, Expected::Absent, Some(&s1), Some("tg:1"));
    let Committed::Applied { session } = store.commit(&c).await.unwrap() else { panic!() };
    let s2 = stored(session, "q2", 2, 20);
    let t = [Transition {
        kind: TransitionKind::Answer,
        from: Some("q1".into()),
        choice: Some(1),
        to: "q2".into(),
        at: Timestamp(20),
    }];
    let mut again =
        commit(&k, Expected::Revision { session, revision: 1 }, Some(&s2), Some("tg:1"));
    again.transitions = &t;
    assert_eq!(store.commit(&again).await.unwrap(), Committed::Duplicate);
    assert_eq!(store.load(&k).await.unwrap().unwrap().state.node, "q1", "nothing written");
    assert!(store.stats().await.unwrap().is_empty(), "no transition logged");
    // A different event applies.
    let mut other = again.clone();
    other.event = Some("tg:2");
    assert!(matches!(store.commit(&other).await.unwrap(), Committed::Applied { .. }));
    assert_eq!(store.stats().await.unwrap()[0].edges, [("q1".to_owned(), 1, 1)]);
}

async fn an_unchanged_step_still_records_its_event(db: &TestDb) {
    let store = db.store().await;
    let k = key("a");
    let session = insert(&store, &k, &stored(0, "q1", 1, 10)).await;
    let expected = Expected::Revision { session, revision: 1 };
    assert!(matches!(
        store.commit(&commit(&k, expected, None, Some("e"))).await.unwrap(),
        Committed::Applied { .. }
    ));
    assert_eq!(
        store.commit(&commit(&k, expected, None, Some("e"))).await.unwrap(),
        Committed::Duplicate
    );
    assert_eq!(store.load(&k).await.unwrap().unwrap().state.revision, 1);
}

async fn replacing_an_expired_conversation_starts_a_new_session(db: &TestDb) {
    let store = db.store().await;
    let k = key("a");
    let old = insert(&store, &k, &stored(0, "q5", 7, 10)).await;
    let fresh = stored(0, "q1", 1, 99);
    let wrong = Expected::Replace { session: old, revision: 6 };
    assert_eq!(
        store.commit(&commit(&k, wrong, Some(&fresh), None)).await.unwrap(),
        Committed::Conflict
    );
    let right = Expected::Replace { session: old, revision: 7 };
    let Committed::Applied { session } =
        store.commit(&commit(&k, right, Some(&fresh), None)).await.unwrap()
    else {
        panic!()
    };
    assert_ne!(session, old);
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!((loaded.session, loaded.state.node.as_str()), (session, "q1"));
}

async fn flow_versions_are_kept(db: &TestDb) {
    let store = db.store().await;
    store.save_flow("f", V1, "one", Timestamp(1)).await.unwrap();
    store.save_flow("f", V1, "one", Timestamp(2)).await.unwrap();
    store.save_flow("f", V2, "two", Timestamp(3)).await.unwrap();
    assert_eq!(store.flow_source("f", V1).await.unwrap().as_deref(), Some("one"));
    assert_eq!(store.flow_source("f", V2).await.unwrap().as_deref(), Some("two"));
    assert_eq!(store.flow_source("g", V1).await.unwrap(), None);
}

async fn purge_removes_expired_conversations_old_events_and_unused_versions(db: &TestDb) {
    let store = db.store().await;
    store.save_flow("f", V1, "one", Timestamp(1)).await.unwrap();
    store.save_flow("f", V2, "two", Timestamp(1)).await.unwrap();
    store.save_flow("g", V2, "gee", Timestamp(1)).await.unwrap();
    let (old, live) = (key("old"), key("live"));
    let aged = stored(0, "q1", 1, 10);
    let c = commit(&old, Expected::Absent, Some(&aged), Some("e-old"));
    store.commit(&c).await.unwrap();
    let mut young = stored(0, "q1", 1, 1000);
    young.flow_version = V2;
    let mut c = commit(&live, Expected::Absent, Some(&young), Some("e-new"));
    c.now = Timestamp(1000);
    store.commit(&c).await.unwrap();

    let purged = store
        .purge(Timestamp(500), Timestamp(500), Timestamp(0), &[("g".into(), V2)])
        .await
        .unwrap();
    assert_eq!((purged.conversations, purged.events, purged.flow_versions), (1, 1, 1));
    assert_eq!((purged.requests, purged.drafts), (0, 0));
    assert_eq!(
        store.load(&old).await.unwrap(),
        None,
        "the expired conversation and its user are gone"
    );
    assert!(store.load(&live).await.unwrap().is_some());
    assert_eq!(store.flow_source("f", V1).await.unwrap(), None, "no conversation uses it");
    assert!(store.flow_source("f", V2).await.unwrap().is_some(), "a live conversation uses it");
    assert!(store.flow_source("g", V2).await.unwrap().is_some(), "kept: current");
    // The old event id is forgotten; the recent one still deduplicates.
    let c = commit(&live, Expected::Revision { session: 0, revision: 0 }, None, Some("e-new"));
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Duplicate);
}

fn gmis_source() -> String {
    std::fs::read_to_string(root().join("flows/gmis-mail-trouble.yaml")).unwrap()
}

async fn service(db: &TestDb, options: ServiceOptions) -> Service {
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    Service::new(store, &gmis_source(), "gmis", options, Timestamp(0)).await.unwrap()
}

/// The node a conversation is at, as the store has it.
async fn node_of(service: &Service, k: &ConversationKey) -> String {
    service.store().load(k).await.unwrap().unwrap().state.node
}

async fn say(service: &Service, k: &ConversationKey, text: &str, at: u64) -> Option<String> {
    let update = Update { key: k, event: None, input: Input::Text(text), now: Timestamp(at) };
    match service
        .handle(update, |_, o| o.prompt_shown().map(|p| p.node.id().to_owned()))
        .await
        .unwrap()
    {
        Handled::Done(node) => node,
        Handled::Duplicate => None,
    }
}

async fn service_applies_concurrent_updates_of_one_conversation_one_at_a_time(db: &TestDb) {
    let service = Arc::new(service(db, ServiceOptions::default()).await);
    let k = key("busy");
    say(&service, &k, "/start", 1).await;
    let start_rev = service.store().load(&k).await.unwrap().unwrap().state.revision;
    // 40 restarts at once, each a change: none may be lost.
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (service, k) = (service.clone(), k.clone());
            tokio::spawn(async move { say(&service, &k, "/restart", 2).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().as_deref(), Some("q1"));
    }
    let rev = service.store().load(&k).await.unwrap().unwrap().state.revision;
    assert_eq!(rev, start_rev + 40, "every update applied exactly once");
}

async fn service_deduplicates_concurrent_redeliveries(db: &TestDb) {
    let service = Arc::new(service(db, ServiceOptions::default()).await);
    let k = key("dup");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (service, k) = (service.clone(), k.clone());
            tokio::spawn(async move {
                let update = Update {
                    key: &k,
                    event: Some("tg:42"),
                    input: Input::Text("2"),
                    now: Timestamp(1),
                };
                service.handle(update, |_, _| ()).await.unwrap()
            })
        })
        .collect();
    let mut done = 0;
    for t in tasks {
        if t.await.unwrap() == Handled::Done(()) {
            done += 1;
        }
    }
    assert_eq!(done, 1, "one delivery applied, the rest acknowledged as duplicates");
}

async fn service_keeps_a_conversation_on_its_flow_version(db: &TestDb) {
    let service = service(db, ServiceOptions::default()).await;
    let (old, new) = (key("old"), key("new"));
    say(&service, &old, "/start", 1).await;
    say(&service, &old, "届いている", 2).await;
    let v1 = service.flow().version();
    // A new version renames the question text; the old conversation keeps its version.
    let changed =
        gmis_source().replace("届いたメールを見ることはできますか？", "届いたメールを開けますか？");
    let v2 = service.reload(&changed, "gmis v2", Timestamp(3)).await.unwrap();
    assert_ne!(v1, v2);
    let text = |_: &flowbot_core::Flow, o: &flowbot_core::Outcome<'_>| {
        o.prompt_shown().unwrap().text().to_owned()
    };
    let update =
        Update { key: &old, event: None, input: Input::Text("届いている"), now: Timestamp(4) };
    assert_eq!(
        service.handle(update, text).await.unwrap(),
        Handled::Done("届いたメールを見ることはできますか？".into())
    );
    assert_eq!(service.store().load(&old).await.unwrap().unwrap().flow_version, v1);
    say(&service, &new, "/start", 5).await;
    say(&service, &new, "届いている", 6).await;
    let update =
        Update { key: &new, event: None, input: Input::Text("届いている"), now: Timestamp(7) };
    assert_eq!(
        service.handle(update, text).await.unwrap(),
        Handled::Done("届いたメールを開けますか？".into())
    );
    // Once the old conversation ends, what comes next runs on the new version.
    say(&service, &old, "1", 8).await;
    say(&service, &old, "1", 9).await;
    assert_eq!(node_of(&service, &old).await, "done");
    say(&service, &old, "hello", 10).await;
    assert_eq!(service.store().load(&old).await.unwrap().unwrap().flow_version, v2);
    // A new service (a restart) still finds v1 in the store for conversations on it.
    let k = key("still-v1");
    let store = service.store().clone();
    let restarted =
        Service::new(store, &changed, "gmis v2", ServiceOptions::default(), Timestamp(11))
            .await
            .unwrap();
    drop(service);
    let s = stored(0, "q6", 3, 11);
    let mut s = Stored { flow_id: "gmis-mail-trouble".into(), flow_version: v1, ..s };
    s.state.path = vec![("q1".into(), 1), ("q2".into(), 0)];
    restarted.store().commit(&commit(&k, Expected::Absent, Some(&s), None)).await.unwrap();
    let update = Update { key: &k, event: None, input: Input::Help, now: Timestamp(12) };
    assert_eq!(
        restarted.handle(update, text).await.unwrap(),
        Handled::Done("届いたメールを見ることはできますか？".into())
    );
}

async fn service_expires_idle_conversations(db: &TestDb) {
    let day = 24 * 3_600_000;
    let options = ServiceOptions { expire_after: 30 * day, ..ServiceOptions::default() };
    let service = service(db, options).await;
    let k = key("idle");
    say(&service, &k, "/start", 1).await;
    say(&service, &k, "届いていない", 2).await;
    let first = service.store().load(&k).await.unwrap().unwrap().session;
    // After a day and a half: asked whether to resume; the conversation is still there.
    assert_eq!(say(&service, &k, "?", 2 + day + day / 2).await.as_deref(), Some("q3"));
    assert!(service.store().load(&k).await.unwrap().unwrap().state.awaiting_resume);
    // After 30 idle days it is over: a new conversation, a new session.
    let later = 2 + day + day / 2 + 30 * day;
    assert_eq!(say(&service, &k, "こんにちは", later).await.as_deref(), Some("q1"));
    let now = service.store().load(&k).await.unwrap().unwrap();
    assert_ne!(now.session, first);
    assert!(!now.state.awaiting_resume);
    let purged = service.purge(Timestamp(later + 31 * day)).await.unwrap();
    assert_eq!(purged.conversations, 1);
    assert_eq!(service.store().load(&k).await.unwrap(), None);
}

async fn stats_count_endings_edges_and_drop_off_where_paths_merge(db: &TestDb) {
    let service = service(db, ServiceOptions::default()).await;
    // Two paths merge into q3 (from q1 and from q2); two merge into 対応方法3 (m3_change).
    let conversations: [(&str, &[&str]); 6] = [
        ("a", &["届いていない", "空き容量が不足している"]), // q1 -> q3 -> m1
        ("b", &["届いている", "届いていない", "空き容量が不足している"]), // q1 -> q2 -> q3 -> m1
        ("c", &["届いている", "届いていない"]),             // stops at q3
        ("d", &["担当者が退職等で不在であり、不明", "「送信完了」だった"]), // -> m3_change
        (
            "e",
            &[
                "届いていない",
                "空き容量は十分にある",
                "迷惑メールフォルダにもメールがない",
                "ない",
                "「送信完了」だった",
            ],
        ), // -> m5 -> m3_change
        ("f", &["届いている", "/back", "届いていない"]),    // back, then stops at q3
    ];
    for (user, lines) in conversations {
        let k = key(user);
        say(&service, &k, "/start", 1).await;
        for line in lines {
            say(&service, &k, line, 2).await;
        }
    }
    let stats = service.store().stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.conversations, 6);
    let reached = |node: &str| s.reached.iter().find(|(n, _)| n == node).map_or(0, |(_, c)| *c);
    assert_eq!(reached("m1"), 2);
    assert_eq!(reached("m3_change"), 2);
    assert_eq!(reached("q3"), 5, "a, b, c, e, f reached q3 by two different paths");
    let edge = |from: &str, choice: u8| {
        s.edges.iter().find(|(f, c, _)| f == from && *c == choice).map_or(0, |e| e.2)
    };
    assert_eq!(edge("q1", 0), 3, "届いていない: a, e, f (after going back)");
    assert_eq!(edge("q1", 1), 3, "届いている: b, c, f");
    assert_eq!(edge("q2", 1), 2);
    assert_eq!(edge("q3", 0), 2);
    let stopped = |node: &str| s.stopped_at.iter().find(|(n, _)| n == node).map_or(0, |(_, c)| *c);
    assert_eq!((stopped("m1"), stopped("m3_change"), stopped("q3")), (2, 2, 2));
    assert_eq!(s.stopped_at.iter().map(|(_, c)| c).sum::<u64>(), 6);
}

async fn reopened_store_keeps_everything(db: &TestDb) {
    let k = key("persist");
    {
        let service = service(db, ServiceOptions::default()).await;
        say(&service, &k, "/start", 1).await;
        say(&service, &k, "届いていない", 2).await;
        service.store().load(&k).await.unwrap();
    }
    let reopened = SqlStore::open(&db.url()).await.unwrap();
    let s = reopened.load(&k).await.unwrap().unwrap();
    assert_eq!(s.state.node, "q3");
    assert_eq!(s.state.path, [("q1".to_owned(), 0)]);
}

/// Many commits at once land in shared transactions; each keeps its own outcome.
async fn each_commit_of_a_batch_stands_alone(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let k = key("contested");
    let session = insert(store.as_ref(), &k, &stored(0, "q1", 1, 10)).await;
    let mut tasks = Vec::new();
    // 20 writers of one conversation from revision 1, each with its own event: one wins.
    for i in 0..20 {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let next = stored(session, &format!("n{i}"), 2, 20);
            let event = format!("race-{i}");
            let c =
                commit(&k, Expected::Revision { session, revision: 1 }, Some(&next), Some(&event));
            let result = store.commit(&c).await.unwrap();
            (event, result)
        }));
    }
    // 20 new conversations sharing one event id: one applies, the rest are duplicates.
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = stored(0, "q1", 1, 10);
            let k = key(&format!("dup-{i}"));
            (
                "shared".to_owned(),
                store
                    .commit(&commit(&k, Expected::Absent, Some(&s), Some("shared")))
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut lost = Vec::new();
    let (mut won, mut shared_applied, mut duplicates) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (e, Committed::Applied { .. }) if e == "shared" => shared_applied += 1,
            (_, Committed::Applied { .. }) => won += 1,
            (e, Committed::Conflict) => lost.push(e),
            (_, Committed::Duplicate) => duplicates += 1,
        }
    }
    assert_eq!((won, lost.len(), shared_applied, duplicates), (1, 19, 1, 19));
    // A loser's event id was not kept: redelivered against the new revision, it applies.
    let stored_now = store.load(&k).await.unwrap().unwrap();
    assert_eq!(stored_now.state.revision, 2);
    let expected = Expected::Revision { session, revision: 2 };
    let next = stored(session, "q9", 3, 30);
    let c = commit(&k, expected, Some(&next), Some(&lost[0]));
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Applied { session });
}

/// A form draft with everything a text column might mangle.
const AWKWARD: &str =
    "stage=2\nname=\"O'Brien\" | a\\b\\\\c; -- '; DROP TABLE x;\r\n\t日本語 ✓ 🎉\n";

async fn form_drafts_round_trip(db: &TestDb) {
    let store = db.store().await;
    let k = key("form");
    let mut s = stored(0, "q1", 1, 10);
    s.state.form = Some(AWKWARD.to_owned());
    let session = insert(&store, &k, &s).await;
    let loaded = store.load(&k).await.unwrap().unwrap();
    assert_eq!(loaded, Stored { session, ..s.clone() }, "inserted with its draft");
    // Updated in place: a new draft, an empty one, none.
    let forms = [Some("name=\"x\"|y\\z\n".to_owned()), Some(String::new()), None];
    for (revision, form) in (1..).zip(forms) {
        let mut next = stored(session, "q2", revision + 1, 20 + revision);
        next.state.form = form.clone();
        let c = commit(&k, Expected::Revision { session, revision }, Some(&next), None);
        assert_eq!(store.commit(&c).await.unwrap(), Committed::Applied { session });
        assert_eq!(store.load(&k).await.unwrap().unwrap(), next, "{form:?}");
    }
    // Another conversation in the same batch keeps its own draft.
    let (a, b) = (key("fa"), key("fb"));
    let mut sa = stored(0, "q1", 1, 10);
    sa.state.form = Some("a|1".into());
    let mut sb = stored(0, "q1", 1, 10);
    sb.state.form = Some("b|2".into());
    let (ca, cb) = (
        commit(&a, Expected::Absent, Some(&sa), None),
        commit(&b, Expected::Absent, Some(&sb), None),
    );
    let (ra, rb) = tokio::join!(store.commit(&ca), store.commit(&cb));
    assert!(matches!(
        (ra.unwrap(), rb.unwrap()),
        (Committed::Applied { .. }, Committed::Applied { .. })
    ));
    assert_eq!(store.load(&a).await.unwrap().unwrap().state.form.as_deref(), Some("a|1"));
    assert_eq!(store.load(&b).await.unwrap().unwrap().state.form.as_deref(), Some("b|2"));
}

fn destinations(names: &[&str]) -> Vec<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

fn request<'a>(reference: &'a str, destinations: &'a [String]) -> NewRequest<'a> {
    NewRequest {
        reference,
        flow_id: "f",
        form: "contact",
        text: AWKWARD,
        payload: r#"{"reference":"R","answers":{"name":"O'Brien \"x\" | \\"}}"#,
        destinations,
    }
}

fn counts(requests: u64, pending: u64, delivered: u64) -> DeliveryCounts {
    DeliveryCounts { requests, pending, delivered }
}

/// Commits a new conversation under `user` with `request`, at `now`.
async fn submit(store: &dyn Store, user: &str, r: &NewRequest<'_>, now: u64) -> Committed {
    let k = key(user);
    let s = stored(0, "done", 1, now);
    let mut c = commit(&k, Expected::Absent, Some(&s), None);
    c.request = Some(r);
    c.now = Timestamp(now);
    store.commit(&c).await.unwrap()
}

async fn a_commit_with_a_request_writes_it_with_one_delivery_per_destination(db: &TestDb) {
    let store = db.store().await;
    assert_eq!(store.delivery_counts().await.unwrap(), counts(0, 0, 0));
    let to = destinations(&["desk", "hook"]);
    assert!(matches!(
        submit(&store, "a", &request("R-1", &to), 100).await,
        Committed::Applied { .. }
    ));
    assert_eq!(store.delivery_counts().await.unwrap(), counts(1, 2, 0));
    // No destinations: the request is only kept.
    assert!(matches!(
        submit(&store, "b", &request("R-2", &[]), 110).await,
        Committed::Applied { .. }
    ));
    assert_eq!(store.delivery_counts().await.unwrap(), counts(2, 2, 0));
    // An update in place carries a request too.
    let k = key("a");
    let session = store.load(&k).await.unwrap().unwrap().session;
    let next = stored(session, "done", 2, 120);
    let to3 = destinations(&["desk"]);
    let r3 = request("R-3", &to3);
    let mut c = commit(&k, Expected::Revision { session, revision: 1 }, Some(&next), Some("e-3"));
    c.request = Some(&r3);
    c.now = Timestamp(120);
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Applied { session });
    assert_eq!(store.delivery_counts().await.unwrap(), counts(3, 3, 0));

    let claimed = store.claim_deliveries(Timestamp(200), Timestamp(300), 10).await.unwrap();
    let shown: Vec<(&str, &str, u64)> = claimed
        .iter()
        .map(|d| (d.reference.as_str(), d.destination.as_str(), d.created_at.0))
        .collect();
    assert_eq!(shown, [("R-1", "desk", 100), ("R-1", "hook", 100), ("R-3", "desk", 120)]);
    for d in &claimed {
        assert_eq!((d.text.as_str(), d.payload.as_str(), d.attempts), (AWKWARD, r3.payload, 0));
    }
}

async fn a_duplicate_or_conflicting_commit_writes_no_request(db: &TestDb) {
    let store = db.store().await;
    let k = key("a");
    let s1 = stored(0, "q1", 1, 10);
    let Committed::Applied { session } =
        store.commit(&commit(&k, Expected::Absent, Some(&s1), Some("e-1"))).await.unwrap()
    else {
        panic!()
    };
    let to = destinations(&["desk", "hook"]);
    let r = request("R-1", &to);
    let s2 = stored(session, "done", 2, 20);
    // A redelivered event.
    let mut c = commit(&k, Expected::Revision { session, revision: 1 }, Some(&s2), Some("e-1"));
    c.request = Some(&r);
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Duplicate);
    assert_eq!(store.delivery_counts().await.unwrap(), counts(0, 0, 0));
    // A lost compare-and-swap.
    let mut c = commit(&k, Expected::Revision { session, revision: 0 }, Some(&s2), Some("e-2"));
    c.request = Some(&r);
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Conflict);
    // An insert that another writer beat, and a replacement of a changed conversation.
    let mut c = commit(&k, Expected::Absent, Some(&s2), Some("e-3"));
    c.request = Some(&r);
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Conflict);
    let mut c = commit(&k, Expected::Replace { session, revision: 0 }, Some(&s2), None);
    c.request = Some(&r);
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Conflict);
    assert_eq!(store.delivery_counts().await.unwrap(), counts(0, 0, 0));
    assert!(store.claim_deliveries(Timestamp(1000), Timestamp(2000), 10).await.unwrap().is_empty());
    // The same request on the right revision is written (its reference was never taken).
    let mut c = commit(&k, Expected::Revision { session, revision: 1 }, Some(&s2), Some("e-2"));
    c.request = Some(&r);
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Applied { session });
    assert_eq!(store.delivery_counts().await.unwrap(), counts(1, 2, 0));
}

/// Racing commits in shared transactions: only those that apply write their requests.
async fn only_the_winner_of_a_batch_writes_its_request(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let k = key("contested");
    let session = insert(store.as_ref(), &k, &stored(0, "q1", 1, 10)).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, k) = (store.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let next = stored(session, &format!("n{i}"), 2, 20);
            let reference = format!("race-{i}");
            let to = destinations(&["desk", "hook"]);
            let r = request(&reference, &to);
            let mut c = commit(&k, Expected::Revision { session, revision: 1 }, Some(&next), None);
            c.request = Some(&r);
            let result = store.commit(&c).await.unwrap();
            (reference, result)
        }));
    }
    // New conversations sharing one event id, each with a request: one applies.
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = stored(0, "q1", 1, 10);
            let k = key(&format!("dup-{i}"));
            let reference = format!("shared-{i}");
            let to = destinations(&["desk"]);
            let r = request(&reference, &to);
            let mut c = commit(&k, Expected::Absent, Some(&s), Some("shared"));
            c.request = Some(&r);
            let result = store.commit(&c).await.unwrap();
            (reference, result)
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        if let (reference, Committed::Applied { .. }) = t.await.unwrap() {
            applied.push(reference);
        }
    }
    applied.sort();
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert_eq!(store.delivery_counts().await.unwrap(), counts(2, 3, 0));
    let claimed = store.claim_deliveries(Timestamp(100), Timestamp(200), 10).await.unwrap();
    let mut references: Vec<String> = claimed.iter().map(|d| d.reference.clone()).collect();
    references.sort();
    references.dedup();
    assert_eq!(references, applied);
}

async fn claimed_deliveries_are_leased_retried_and_delivered(db: &TestDb) {
    let store = db.store().await;
    let to = destinations(&["desk", "hook"]);
    submit(&store, "a", &request("R-1", &to), 100).await;
    let claim = |now: u64, lease: u64| store.claim_deliveries(Timestamp(now), Timestamp(lease), 10);
    let ids = |ds: &[Delivery]| ds.iter().map(|d| d.id).collect::<Vec<_>>();

    assert!(claim(99, 200).await.unwrap().is_empty(), "not due before the request was made");
    let first = claim(100, 200).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].id < first[1].id, "oldest first");
    assert_eq!((first[0].destination.as_str(), first[1].destination.as_str()), ("desk", "hook"));
    assert!(claim(150, 250).await.unwrap().is_empty(), "leased until 200");
    assert!(claim(199, 250).await.unwrap().is_empty(), "leased until 200");

    let (desk, hook) = (first[0].id, first[1].id);
    let long_error = "é".repeat(1000);
    store.delivery_failed(desk, Timestamp(300), &long_error).await.unwrap();
    store.delivered(hook, Timestamp(160)).await.unwrap();
    assert_eq!(store.delivery_counts().await.unwrap(), counts(1, 1, 1));
    assert!(claim(250, 350).await.unwrap().is_empty(), "released, but due again at 300 only");
    let retried = claim(300, 400).await.unwrap();
    assert_eq!(ids(&retried), [desk]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].text, AWKWARD);
    // A lease that ran out (a worker that died) makes it due again.
    let again = claim(400, 500).await.unwrap();
    assert_eq!((ids(&again), again[0].attempts), (vec![desk], 1));
    store.delivered(desk, Timestamp(450)).await.unwrap();
    assert_eq!(store.delivery_counts().await.unwrap(), counts(1, 0, 2));
    assert!(claim(10_000, 20_000).await.unwrap().is_empty(), "delivered is done");
    // A late failure report of a delivered one changes nothing.
    store.delivery_failed(desk, Timestamp(600), "late").await.unwrap();
    assert!(claim(10_000, 20_000).await.unwrap().is_empty());
    assert_eq!(store.delivery_counts().await.unwrap(), counts(1, 0, 2));

    // The error kept is bounded.
    let pool = sqlx::AnyPool::connect(&db.url()).await.unwrap();
    let kept: String = sqlx::query_scalar("SELECT last_error FROM deliveries WHERE id = $1")
        .bind(desk)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, "é".repeat(500));
    pool.close().await;

    // `limit` takes the oldest.
    let to = destinations(&["1", "2", "3"]);
    submit(&store, "b", &request("R-2", &to), 1000).await;
    let two = store.claim_deliveries(Timestamp(1000), Timestamp(2000), 2).await.unwrap();
    let names: Vec<&str> = two.iter().map(|d| d.destination.as_str()).collect();
    assert_eq!(names, ["1", "2"]);
    let rest = store.claim_deliveries(Timestamp(1000), Timestamp(2000), 2).await.unwrap();
    assert_eq!(rest.iter().map(|d| d.destination.as_str()).collect::<Vec<_>>(), ["3"]);
    assert!(store.claim_deliveries(Timestamp(1000), Timestamp(2000), 0).await.unwrap().is_empty());
}

async fn purge_deletes_old_requests_and_clears_old_drafts(db: &TestDb) {
    let store = db.store().await;
    let with_form = |at: u64, form: &str| {
        let mut s = stored(0, "q1", 1, at);
        s.state.form = Some(form.to_owned());
        s
    };
    let (old, new) = (key("old-draft"), key("new-draft"));
    let old_state = with_form(10, "old|draft");
    let new_state = with_form(1000, "new|draft");
    let old_session = insert(&store, &old, &old_state).await;
    insert(&store, &new, &new_state).await;
    let to = destinations(&["desk", "hook"]);
    submit(&store, "a", &request("R-old", &to), 100).await;
    let to1 = destinations(&["desk"]);
    submit(&store, "b", &request("R-new", &to1), 1000).await;
    // One of the old request's deliveries was delivered: it goes as well.
    let claimed = store.claim_deliveries(Timestamp(100), Timestamp(200), 1).await.unwrap();
    assert_eq!(claimed[0].reference, "R-old");
    store.delivered(claimed[0].id, Timestamp(150)).await.unwrap();
    assert_eq!(store.delivery_counts().await.unwrap(), counts(2, 2, 1));

    let purged = store.purge(Timestamp(0), Timestamp(0), Timestamp(500), &[]).await.unwrap();
    assert_eq!((purged.requests, purged.drafts, purged.conversations), (1, 1, 0));
    assert_eq!(store.delivery_counts().await.unwrap(), counts(1, 1, 0));
    let remaining = store.claim_deliveries(Timestamp(5000), Timestamp(6000), 10).await.unwrap();
    assert_eq!(remaining.iter().map(|d| d.reference.as_str()).collect::<Vec<_>>(), ["R-new"]);
    // The old conversation stays, without its draft; the recent draft stays.
    // (Its revision moves on, so a process still holding the draft in its cache cannot write it
    // back: its compare-and-swap fails and it reads the conversation again.)
    let mut expected = Stored { session: old_session, ..old_state };
    expected.state.form = None;
    expected.state.revision += 1;
    assert_eq!(store.load(&old).await.unwrap().unwrap(), expected);
    assert_eq!(store.load(&new).await.unwrap().unwrap().state.form.as_deref(), Some("new|draft"));
    // Again: nothing left to purge.
    let purged = store.purge(Timestamp(0), Timestamp(0), Timestamp(500), &[]).await.unwrap();
    assert_eq!((purged.requests, purged.drafts), (0, 0));
    // An expired conversation is deleted with its draft, counted as a conversation.
    let purged = store.purge(Timestamp(2000), Timestamp(0), Timestamp(2000), &[]).await.unwrap();
    assert_eq!((purged.conversations, purged.requests, purged.drafts), (4, 1, 0));
    assert_eq!(store.delivery_counts().await.unwrap(), counts(0, 0, 0));
}

/// Two workers in one process and one in another (a second store on the same database) claim
/// at once: every delivery goes to exactly one of them.
async fn concurrent_claimers_never_share_a_delivery(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let other = Arc::new(SqlStore::open(&db.url()).await.unwrap());
    let to: Vec<String> = (0..6).map(|i| format!("d{i}")).collect();
    for i in 0..10 {
        let reference = format!("R-{i}");
        submit(store.as_ref(), &format!("u{i}"), &request(&reference, &to), 100).await;
    }
    let total = 60;
    let mut seen = HashSet::new();
    let mut rounds = 0;
    while seen.len() < total {
        rounds += 1;
        assert!(rounds < 100, "claims stopped making progress");
        let claim = |s: &Arc<SqlStore>| {
            let s = s.clone();
            tokio::spawn(async move {
                s.claim_deliveries(Timestamp(100), Timestamp(1_000), 4).await.unwrap()
            })
        };
        let (a, b, c) = (claim(&store), claim(&store), claim(&other));
        let (a, b, c) = tokio::join!(a, b, c);
        let (d, e) = tokio::join!(
            store.claim_deliveries(Timestamp(100), Timestamp(1_000), 3),
            other.claim_deliveries(Timestamp(100), Timestamp(1_000), 3)
        );
        for d in [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap(), e.unwrap()].iter().flatten() {
            assert!(seen.insert(d.id), "delivery {} claimed twice", d.id);
        }
    }
    assert_eq!(seen.len(), total);
    assert!(
        store.claim_deliveries(Timestamp(999), Timestamp(2_000), 100).await.unwrap().is_empty()
    );
    // Once the leases run out, each is claimed again, once.
    let (a, b) = tokio::join!(
        store.claim_deliveries(Timestamp(1_000), Timestamp(2_000), 100),
        other.claim_deliveries(Timestamp(1_000), Timestamp(2_000), 100)
    );
    let again: Vec<i64> = a.unwrap().iter().chain(&b.unwrap()).map(|d| d.id).collect();
    assert_eq!(again.len(), total);
    assert_eq!(again.iter().collect::<HashSet<_>>().len(), total);
}
