//! The shared store suite: every case runs on SQLite and on PostgreSQL, each on a fresh database.

use std::sync::Arc;

use std::collections::HashSet;

use flowbot_core::{
    Claim, Commit, Committed, ConversationKey, ConversationStore, Expected, FlowVersion,
    InboundStore, Input, ManualClock, NewOutgoing, NewRequest, OutboxStore, Queued, Snapshot,
    Store, Stored, Timestamp, Transition, TransitionKind,
};
use flowbot_store::{
    Delivered, Handled, Outgoing, Planned, Service, ServiceOptions, SqlStore, Update,
};
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
    a_later_batch_sees_what_earlier_ones_wrote_and_never_reuses_an_id,
    form_drafts_round_trip,
    a_commit_with_a_request_writes_it_with_one_delivery_per_destination,
    a_duplicate_or_conflicting_commit_writes_no_request,
    only_the_winner_of_a_batch_writes_its_request,
    claimed_deliveries_are_leased_retried_and_delivered,
    purge_deletes_old_requests_and_clears_old_drafts,
    concurrent_claimers_never_share_a_delivery,
    outgoing_items_are_written_with_the_step_only_when_it_applies,
    outgoing_ids_follow_the_order_given_in_every_commit_of_a_batch,
    claim_takes_only_the_head_of_each_lane,
    a_worker_claims_only_the_sinks_it_delivers,
    leases_keep_other_owners_out_until_they_run_out,
    a_commit_claims_its_items_only_where_the_lane_is_clear,
    giving_up_unblocks_the_lane_and_is_remembered,
    done_deletes_replies_and_keeps_handoffs_counted,
    purge_deletes_old_reply_items,
    service_stores_planned_items_with_the_step_and_hands_claimed_ones_over,
    service_expiry_and_resume_follow_the_test_clock,
    the_inbox_keeps_updates_until_handled_and_purge_drops_old_ones,
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
    Commit {
        key,
        expected,
        state,
        event,
        transitions: &[],
        request: None,
        outgoing: &[],
        claim: None,
        now: Timestamp(100),
    }
}

async fn insert(store: &dyn Store, key: &ConversationKey, s: &Stored) -> i64 {
    match store.commit(&commit(key, Expected::Absent, Some(s), None)).await.unwrap() {
        Committed::Applied { session, .. } => session,
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
        applied(session)
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
    let Committed::Applied { session, .. } = store.commit(&c).await.unwrap() else { panic!() };
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
    assert!(store.stats(None, None).await.unwrap().is_empty(), "no transition logged");
    // A different event applies.
    let mut other = again.clone();
    other.event = Some("tg:2");
    assert!(matches!(store.commit(&other).await.unwrap(), Committed::Applied { .. }));
    assert_eq!(store.stats(None, None).await.unwrap()[0].edges, [("q1".to_owned(), 1, 1)]);
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
    let Committed::Applied { session, .. } =
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
    let stats = service.store().stats(None, None).await.unwrap();
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
    assert_eq!(edge("q2", 0), 2, "届いていない at q2: b, c");
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
    assert_eq!(store.commit(&c).await.unwrap(), applied(session));
}

/// What one batch wrote decides the next one's commits (a stored event id, a taken key, a
/// stale revision: each refused, none of its writes kept), and an id once used is never used
/// again, even after its row is gone.
async fn a_later_batch_sees_what_earlier_ones_wrote_and_never_reuses_an_id(db: &TestDb) {
    let store = db.store().await;
    let first = say_with(&store, "a", Some("e1"), &[out("tg", "a", "1")], None, 100).await;
    let Committed::Applied { session, .. } = first else { panic!("{first:?}") };
    let first_ids = ids_of(&first);
    // The same event again, a taken key, a stale revision: nothing of theirs is kept.
    let again = say_with(&store, "b", Some("e1"), &[out("tg", "b", "x")], None, 110).await;
    assert_eq!(again, Committed::Duplicate);
    let k = key("a");
    let taken = stored(0, "q1", 1, 120);
    let items = [out("tg", "a", "x")];
    let mut c = commit(&k, Expected::Absent, Some(&taken), Some("e2"));
    c.outgoing = &items;
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Conflict);
    let stale = stored(session, "q9", 5, 130);
    let c = commit(&k, Expected::Revision { session, revision: 7 }, Some(&stale), Some("e3"));
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Conflict);
    assert_eq!(store.load(&key("b")).await.unwrap(), None);
    assert_eq!(store.load(&k).await.unwrap().unwrap().state.revision, 1);
    assert_eq!(replies(&store).await, (1, 0), "only the first step's item");
    // The losers' event ids were not kept.
    let later = say_with(&store, "a", Some("e2"), &[], None, 140).await;
    assert_eq!(later, applied(session));
    // Delivered items are deleted; the ids after them are still new.
    store.done(&first_ids, Timestamp(150)).await.unwrap();
    let next =
        say_with(&store, "c", None, &[out("tg", "c", "2"), out("tg", "c", "3")], None, 160).await;
    let Committed::Applied { session: other, .. } = next else { panic!("{next:?}") };
    assert!(other > session, "session {other} after {session}");
    let next_ids = ids_of(&next);
    assert_eq!(next_ids.len(), 2);
    assert!(
        next_ids[0] > first_ids[0] && next_ids[1] > next_ids[0],
        "{next_ids:?} after {first_ids:?}"
    );
    let heads = store.claim(Timestamp(160), "w", Timestamp(200), 10).await.unwrap();
    assert_eq!((heads.len(), heads[0].id, heads[0].body.as_str()), (1, next_ids[0], "2"));
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
        assert_eq!(store.commit(&c).await.unwrap(), applied(session));
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

/// Hand-off requests, pending deliveries, delivered ones.
async fn handoffs(store: &dyn Store) -> (u64, u64, u64) {
    let c = store.delivery_counts().await.unwrap();
    (c.requests, c.pending, c.delivered)
}

fn applied(session: i64) -> Committed {
    Committed::Applied { session, outgoing: Vec::new(), claimed: Vec::new() }
}

fn handoff(q: &Queued) -> &flowbot_core::QueuedRequest {
    q.request.as_ref().expect("a hand-off delivery")
}

fn reference(q: &Queued) -> &str {
    &handoff(q).reference
}

fn text(q: &Queued) -> &str {
    &handoff(q).text
}

fn payload(q: &Queued) -> &str {
    &handoff(q).payload
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
    assert_eq!(handoffs(&store).await, (0, 0, 0));
    let to = destinations(&["desk", "hook"]);
    assert!(matches!(
        submit(&store, "a", &request("R-1", &to), 100).await,
        Committed::Applied { .. }
    ));
    assert_eq!(handoffs(&store).await, (1, 2, 0));
    // No destinations: the request is only kept.
    assert!(matches!(
        submit(&store, "b", &request("R-2", &[]), 110).await,
        Committed::Applied { .. }
    ));
    assert_eq!(handoffs(&store).await, (2, 2, 0));
    // An update in place carries a request too.
    let k = key("a");
    let session = store.load(&k).await.unwrap().unwrap().session;
    let next = stored(session, "done", 2, 120);
    let to3 = destinations(&["desk"]);
    let r3 = request("R-3", &to3);
    let mut c = commit(&k, Expected::Revision { session, revision: 1 }, Some(&next), Some("e-3"));
    c.request = Some(&r3);
    c.now = Timestamp(120);
    assert!(matches!(
        store.commit(&c).await.unwrap(),
        Committed::Applied { session: s, outgoing, .. } if s == session && outgoing.len() == 1
    ));
    assert_eq!(handoffs(&store).await, (3, 3, 0));

    let claimed = store.claim(Timestamp(200), "w", Timestamp(300), 10).await.unwrap();
    let shown: Vec<(&str, &str, u64)> =
        claimed.iter().map(|d| (reference(d), d.sink.as_str(), d.created_at.0)).collect();
    assert_eq!(shown, [("R-1", "desk", 100), ("R-1", "hook", 100), ("R-3", "desk", 120)]);
    for d in &claimed {
        assert_eq!((text(d), payload(d), d.attempts), (AWKWARD, r3.payload, 0));
    }
}

async fn a_duplicate_or_conflicting_commit_writes_no_request(db: &TestDb) {
    let store = db.store().await;
    let k = key("a");
    let s1 = stored(0, "q1", 1, 10);
    let Committed::Applied { session, .. } =
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
    assert_eq!(handoffs(&store).await, (0, 0, 0));
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
    assert_eq!(handoffs(&store).await, (0, 0, 0));
    assert!(store.claim(Timestamp(1000), "w", Timestamp(2000), 10).await.unwrap().is_empty());
    // The same request on the right revision is written (its reference was never taken).
    let mut c = commit(&k, Expected::Revision { session, revision: 1 }, Some(&s2), Some("e-2"));
    c.request = Some(&r);
    let Committed::Applied { session: again, outgoing, claimed } = store.commit(&c).await.unwrap()
    else {
        panic!()
    };
    assert_eq!((again, outgoing.len(), claimed.len()), (session, 2, 0), "no claim asked");
    assert_eq!(handoffs(&store).await, (1, 2, 0));
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
    assert_eq!(handoffs(store.as_ref()).await, (2, 3, 0));
    let claimed = store.claim(Timestamp(100), "w", Timestamp(200), 10).await.unwrap();
    let mut references: Vec<String> = claimed.iter().map(|d| reference(d).to_owned()).collect();
    references.sort();
    references.dedup();
    assert_eq!(references, applied);
}

async fn claimed_deliveries_are_leased_retried_and_delivered(db: &TestDb) {
    let store = db.store().await;
    let to = destinations(&["desk", "hook"]);
    submit(&store, "a", &request("R-1", &to), 100).await;
    let claim = |now: u64, lease: u64| store.claim(Timestamp(now), "w", Timestamp(lease), 10);
    let ids = |ds: &[Queued]| ds.iter().map(|d| d.id).collect::<Vec<_>>();

    assert!(claim(99, 200).await.unwrap().is_empty(), "not due before the request was made");
    let first = claim(100, 200).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].id < first[1].id, "oldest first");
    assert_eq!((first[0].sink.as_str(), first[1].sink.as_str()), ("desk", "hook"));
    assert!(claim(150, 250).await.unwrap().is_empty(), "leased until 200");
    assert!(claim(199, 250).await.unwrap().is_empty(), "leased until 200");

    let (desk, hook) = (first[0].id, first[1].id);
    let long_error = "é".repeat(1000);
    store.failed(desk, Timestamp(300), &long_error).await.unwrap();
    store.done(&[hook], Timestamp(160)).await.unwrap();
    assert_eq!(handoffs(&store).await, (1, 1, 1));
    assert!(claim(250, 350).await.unwrap().is_empty(), "released, but due again at 300 only");
    let retried = claim(300, 400).await.unwrap();
    assert_eq!(ids(&retried), [desk]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(text(&retried[0]), AWKWARD);
    // A lease that ran out (a worker that died) makes it due again.
    let again = claim(400, 500).await.unwrap();
    assert_eq!((ids(&again), again[0].attempts), (vec![desk], 1));
    store.done(&[desk], Timestamp(450)).await.unwrap();
    assert_eq!(handoffs(&store).await, (1, 0, 2));
    assert!(claim(10_000, 20_000).await.unwrap().is_empty(), "delivered is done");
    // A late failure report of a delivered one changes nothing.
    store.failed(desk, Timestamp(600), "late").await.unwrap();
    assert!(claim(10_000, 20_000).await.unwrap().is_empty());
    assert_eq!(handoffs(&store).await, (1, 0, 2));

    // The error kept is bounded.
    let pool = sqlx::AnyPool::connect(&db.url()).await.unwrap();
    let kept: String = sqlx::query_scalar("SELECT last_error FROM outbox WHERE id = $1")
        .bind(desk)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, "é".repeat(500));
    pool.close().await;

    // `limit` takes the oldest.
    let to = destinations(&["1", "2", "3"]);
    submit(&store, "b", &request("R-2", &to), 1000).await;
    let two = store.claim(Timestamp(1000), "w", Timestamp(2000), 2).await.unwrap();
    let names: Vec<&str> = two.iter().map(|d| d.sink.as_str()).collect();
    assert_eq!(names, ["1", "2"]);
    let rest = store.claim(Timestamp(1000), "w", Timestamp(2000), 2).await.unwrap();
    assert_eq!(rest.iter().map(|d| d.sink.as_str()).collect::<Vec<_>>(), ["3"]);
    assert!(store.claim(Timestamp(1000), "w", Timestamp(2000), 0).await.unwrap().is_empty());
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
    let claimed = store.claim(Timestamp(100), "w", Timestamp(200), 1).await.unwrap();
    assert_eq!(reference(&claimed[0]), "R-old");
    store.done(&[claimed[0].id], Timestamp(150)).await.unwrap();
    assert_eq!(handoffs(&store).await, (2, 2, 1));

    let purged = store.purge(Timestamp(0), Timestamp(0), Timestamp(500), &[]).await.unwrap();
    assert_eq!((purged.requests, purged.drafts, purged.conversations), (1, 1, 0));
    assert_eq!(handoffs(&store).await, (1, 1, 0));
    let remaining = store.claim(Timestamp(5000), "w", Timestamp(6000), 10).await.unwrap();
    assert_eq!(remaining.iter().map(reference).collect::<Vec<_>>(), ["R-new"]);
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
    assert_eq!(handoffs(&store).await, (0, 0, 0));
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
        let claim = |s: &Arc<SqlStore>, owner: &'static str| {
            let s = s.clone();
            tokio::spawn(async move {
                s.claim(Timestamp(100), owner, Timestamp(1_000), 4).await.unwrap()
            })
        };
        let (a, b, c) = (claim(&store, "a1"), claim(&store, "a2"), claim(&other, "b1"));
        let (a, b, c) = tokio::join!(a, b, c);
        let (d, e) = tokio::join!(
            store.claim(Timestamp(100), "a3", Timestamp(1_000), 3),
            other.claim(Timestamp(100), "b2", Timestamp(1_000), 3)
        );
        for d in [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap(), e.unwrap()].iter().flatten() {
            assert!(seen.insert(d.id), "delivery {} claimed twice", d.id);
        }
    }
    assert_eq!(seen.len(), total);
    assert!(store.claim(Timestamp(999), "w", Timestamp(2_000), 100).await.unwrap().is_empty());
    // Once the leases run out, each is claimed again, once.
    let (a, b) = tokio::join!(
        store.claim(Timestamp(1_000), "w", Timestamp(2_000), 100),
        other.claim(Timestamp(1_000), "w", Timestamp(2_000), 100)
    );
    let again: Vec<i64> = a.unwrap().iter().chain(&b.unwrap()).map(|d| d.id).collect();
    assert_eq!(again.len(), total);
    assert_eq!(again.iter().collect::<HashSet<_>>().len(), total);
}

fn out<'a>(sink: &'a str, lane: &'a str, body: &'a str) -> NewOutgoing<'a> {
    NewOutgoing { sink, lane, body }
}

fn bodies(qs: &[Queued]) -> Vec<&str> {
    qs.iter().map(|q| q.body.as_str()).collect()
}

/// Replies pending and given up.
async fn replies(store: &dyn Store) -> (u64, u64) {
    let c = store.delivery_counts().await.unwrap();
    (c.replies_pending, c.replies_gave_up)
}

/// Commits a change of `user`'s conversation (inserted if new) with `items`; the result.
async fn say_with(
    store: &dyn Store,
    user: &str,
    event: Option<&str>,
    items: &[NewOutgoing<'_>],
    claim: Option<Claim<'_>>,
    now: u64,
) -> Committed {
    let k = key(user);
    let (expected, state) = match store.load(&k).await.unwrap() {
        Some(s) => (
            Expected::Revision { session: s.session, revision: s.state.revision },
            stored(s.session, "q2", s.state.revision + 1, now),
        ),
        None => (Expected::Absent, stored(0, "q1", 1, now)),
    };
    let mut c = commit(&k, expected, Some(&state), event);
    c.outgoing = items;
    c.claim = claim;
    c.now = Timestamp(now);
    store.commit(&c).await.unwrap()
}

fn ids_of(c: &Committed) -> Vec<i64> {
    match c {
        Committed::Applied { outgoing, .. } => outgoing.clone(),
        other => panic!("{other:?}"),
    }
}

async fn outgoing_items_are_written_with_the_step_only_when_it_applies(db: &TestDb) {
    let store = db.store().await;
    let items = [out("tg", "c1", "a1"), out("tg", "c1", "a2"), out("tg", "c2", AWKWARD)];
    let first = say_with(&store, "a", Some("e-1"), &items, None, 100).await;
    let ids = ids_of(&first);
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(matches!(&first, Committed::Applied { claimed, .. } if claimed.is_empty()));
    assert_eq!(replies(&store).await, (3, 0));
    // A redelivered event writes nothing.
    assert_eq!(say_with(&store, "a", Some("e-1"), &items, None, 110).await, Committed::Duplicate);
    // Nor does a lost compare-and-swap.
    let k = key("a");
    let session = store.load(&k).await.unwrap().unwrap().session;
    let next = stored(session, "q9", 7, 120);
    let mut c = commit(&k, Expected::Revision { session, revision: 0 }, Some(&next), Some("e-2"));
    c.outgoing = &items;
    assert_eq!(store.commit(&c).await.unwrap(), Committed::Conflict);
    assert_eq!(replies(&store).await, (3, 0));
    // An unchanged step (a stale press) still answers: its items are written with its event.
    let mut c = commit(&k, Expected::Revision { session, revision: 1 }, None, Some("e-3"));
    let stale = [out("tg", "c1", "stale")];
    c.outgoing = &stale;
    let fourth = store.commit(&c).await.unwrap();
    assert_eq!(ids_of(&fourth).len(), 1);
    assert!(ids_of(&fourth)[0] > ids[2]);
    assert_eq!(replies(&store).await, (4, 0));
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!(counts.oldest_pending, Some(Timestamp(100)));
    // What a worker gets: the heads of c1 and c2, with their bodies intact.
    let heads = store.claim(Timestamp(100), "w", Timestamp(200), 10).await.unwrap();
    assert_eq!(bodies(&heads), ["a1", AWKWARD]);
    assert_eq!(heads.iter().map(|q| q.id).collect::<Vec<_>>(), [ids[0], ids[2]]);
    let q = &heads[0];
    assert_eq!(
        (q.sink.as_str(), q.lane.as_str(), q.attempts, q.created_at, q.request.is_none()),
        ("tg", "c1", 0, Timestamp(100), true)
    );
}

/// Commits racing into shared transactions each get their own items, in their order.
async fn outgoing_ids_follow_the_order_given_in_every_commit_of_a_batch(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let lane = format!("L{i}");
                let texts: Vec<String> = (0..3).map(|n| format!("{i}-{n}")).collect();
                let items: Vec<NewOutgoing<'_>> =
                    texts.iter().map(|t| out("tg", &lane, t)).collect();
                let result =
                    say_with(store.as_ref(), &format!("u{i}"), None, &items, None, 100).await;
                (i, ids_of(&result))
            })
        })
        .collect();
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap());
    }
    // Each round of claims takes every lane's head: item n of every commit, by its id.
    for n in 0..3 {
        let heads = store.claim(Timestamp(100), "w", Timestamp(200), 100).await.unwrap();
        assert_eq!(heads.len(), written.len(), "round {n}");
        for (i, ids) in &written {
            let head = heads.iter().find(|q| q.lane == format!("L{i}")).unwrap();
            assert_eq!((head.id, head.body.clone()), (ids[n], format!("{i}-{n}")));
        }
        let ids: Vec<i64> = heads.iter().map(|q| q.id).collect();
        store.done(&ids, Timestamp(150)).await.unwrap();
    }
    assert_eq!(replies(store.as_ref()).await, (0, 0));
}

async fn claim_takes_only_the_head_of_each_lane(db: &TestDb) {
    let store = db.store().await;
    let items = [out("tg", "c1", "1"), out("tg", "c1", "2"), out("dc", "c1", "x")];
    say_with(&store, "a", None, &items, None, 100).await;
    say_with(&store, "a", None, &[out("tg", "c1", "3")], None, 110).await;
    let claim = |now: u64, limit: u32| store.claim(Timestamp(now), "w", Timestamp(now + 50), limit);
    assert!(claim(99, 10).await.unwrap().is_empty(), "not due before it was written");
    assert_eq!(bodies(&claim(100, 1).await.unwrap()), ["1"], "oldest first, up to the limit");
    assert_eq!(bodies(&claim(100, 10).await.unwrap()), ["x"], "another sink is another lane");
    assert!(claim(120, 10).await.unwrap().is_empty(), "2 waits behind 1, which is leased");
    // A failed head keeps its place: what is behind it waits, also while it is not due.
    let head = claim(150, 10).await.unwrap();
    assert_eq!(bodies(&head), ["1", "x"], "the leases ran out");
    store.failed(head[0].id, Timestamp(1_000), "429").await.unwrap();
    store.done(&[head[1].id], Timestamp(160)).await.unwrap();
    assert!(claim(500, 10).await.unwrap().is_empty());
    let again = claim(1_000, 10).await.unwrap();
    assert_eq!((bodies(&again), again[0].attempts), (vec!["1"], 1));
    // Done: the next in line.
    store.done(&[again[0].id], Timestamp(1_010)).await.unwrap();
    assert_eq!(bodies(&claim(1_010, 10).await.unwrap()), ["2"]);
}

async fn a_worker_claims_only_the_sinks_it_delivers(db: &TestDb) {
    let store = db.store().await;
    let items = [out("tg", "c1", "1"), out("dc", "c2", "x"), out("handoff:hook", "r1", "h")];
    say_with(&store, "a", None, &items, None, 100).await;
    let claim = |sinks: Option<&'static [&'static str]>| {
        store.claim_of(Timestamp(100), "w", Timestamp(150), 10, sinks)
    };
    assert!(claim(Some(&[])).await.unwrap().is_empty(), "no sink, nothing");
    assert_eq!(bodies(&claim(Some(&["dc", "handoff:hook"])).await.unwrap()), ["x", "h"]);
    assert_eq!(bodies(&claim(Some(&["tg"])).await.unwrap()), ["1"]);
    assert!(claim(None).await.unwrap().is_empty(), "all leased now");
}

async fn leases_keep_other_owners_out_until_they_run_out(db: &TestDb) {
    let store = db.store().await;
    say_with(&store, "a", None, &[out("tg", "c1", "1")], None, 100).await;
    let a = store.claim(Timestamp(100), "a", Timestamp(200), 10).await.unwrap();
    assert_eq!(bodies(&a), ["1"]);
    assert!(store.claim(Timestamp(150), "b", Timestamp(250), 10).await.unwrap().is_empty());
    // A heartbeat keeps it.
    assert_eq!(store.renew("a", Timestamp(400)).await.unwrap(), 1);
    assert_eq!(store.renew("nobody", Timestamp(400)).await.unwrap(), 0);
    assert!(store.claim(Timestamp(300), "b", Timestamp(500), 10).await.unwrap().is_empty());
    // Run out: another owner takes it over (the attempt was never recorded).
    let b = store.claim(Timestamp(400), "b", Timestamp(500), 10).await.unwrap();
    assert_eq!((bodies(&b), b[0].attempts), (vec!["1"], 0));
    assert_eq!(store.renew("a", Timestamp(900)).await.unwrap(), 0, "no longer a's");
    // A failure releases the lease and the owner.
    store.failed(b[0].id, Timestamp(450), &"é".repeat(1000)).await.unwrap();
    assert_eq!(store.renew("b", Timestamp(900)).await.unwrap(), 0);
    let a = store.claim(Timestamp(450), "a", Timestamp(600), 10).await.unwrap();
    assert_eq!((bodies(&a), a[0].attempts), (vec!["1"], 1));
    let pool = sqlx::AnyPool::connect(&db.url()).await.unwrap();
    let kept: String = sqlx::query_scalar("SELECT last_error FROM outbox WHERE id = $1")
        .bind(a[0].id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, "é".repeat(500), "the error kept is bounded");
    pool.close().await;
}

async fn a_commit_claims_its_items_only_where_the_lane_is_clear(db: &TestDb) {
    let store = Arc::new(db.store().await);
    let p = Claim { owner: "p", until: Timestamp(500) };
    let first = say_with(
        store.as_ref(),
        "a",
        None,
        &[out("tg", "c1", "1"), out("tg", "c1", "2")],
        Some(p),
        100,
    )
    .await;
    let Committed::Applied { outgoing, claimed, .. } = &first else { panic!() };
    assert_eq!(claimed, outgoing, "a clear lane: all of the commit's items");
    // Behind the same owner's pending items: claimed too (its worker sends them after those).
    let second = say_with(
        store.as_ref(),
        "b",
        None,
        &[out("tg", "c1", "3"), out("tg", "c2", "y")],
        Some(p),
        110,
    )
    .await;
    let Committed::Applied { outgoing: ids2, claimed: claimed2, .. } = &second else { panic!() };
    assert_eq!(claimed2, ids2, "c1 is held by p, c2 is clear");
    // Behind another owner's: not claimed; a worker takes it once the lane is clear.
    let o = Claim { owner: "o", until: Timestamp(500) };
    let third = say_with(
        store.as_ref(),
        "e",
        None,
        &[out("tg", "c1", "4"), out("tg", "c5", "z")],
        Some(o),
        115,
    )
    .await;
    let Committed::Applied { outgoing: ids3, claimed: claimed3, .. } = &third else { panic!() };
    assert_eq!(claimed3, &[ids3[1]], "c1 is busy with p's items, c5 is clear");
    assert!(store.claim(Timestamp(120), "q", Timestamp(300), 10).await.unwrap().is_empty());
    assert_eq!(store.renew("p", Timestamp(600)).await.unwrap(), 4);
    store.done(outgoing, Timestamp(130)).await.unwrap();
    store.done(ids2, Timestamp(130)).await.unwrap();
    assert_eq!(bodies(&store.claim(Timestamp(130), "q", Timestamp(300), 10).await.unwrap()), ["4"]);
    // An expired lease of the same owner does not count: that item may be someone else's now.
    let late = say_with(store.as_ref(), "f", None, &[out("tg", "c5", "w")], Some(o), 600).await;
    let Committed::Applied { claimed: claimed4, .. } = &late else { panic!() };
    assert!(claimed4.is_empty(), "z's lease ran out at 500");
    // A hand-off's deliveries are claimed with the commit too (each its own lane).
    let to = destinations(&["desk", "hook"]);
    let r = request("R-1", &to);
    let k = key("c");
    let s = stored(0, "done", 1, 140);
    let mut c = commit(&k, Expected::Absent, Some(&s), None);
    c.request = Some(&r);
    c.claim = Some(p);
    let reply = [out("tg", "c3", "thanks")];
    c.outgoing = &reply;
    let Committed::Applied { outgoing, claimed, .. } = store.commit(&c).await.unwrap() else {
        panic!()
    };
    assert_eq!((outgoing.len(), &claimed), (3, &outgoing));
    // Commits of different processes racing on one lane: exactly one claims.
    let owners: Vec<&'static str> =
        vec!["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"];
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            let owner = owners[i];
            tokio::spawn(async move {
                let claim = Claim { owner, until: Timestamp(500) };
                let items = [out("tg", "busy", "x")];
                match say_with(store.as_ref(), &format!("r{i}"), None, &items, Some(claim), 200)
                    .await
                {
                    Committed::Applied { claimed, .. } => claimed.len(),
                    other => panic!("{other:?}"),
                }
            })
        })
        .collect();
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await.unwrap();
    }
    assert_eq!(claimed, 1);
}

async fn giving_up_unblocks_the_lane_and_is_remembered(db: &TestDb) {
    let store = db.store().await;
    let items = [out("tg", "c1", "secret question"), out("tg", "c1", "2")];
    let ids = ids_of(&say_with(&store, "a", None, &items, None, 100).await);
    say_with(&store, "b", None, &[out("tg", "c9", "other")], None, 300).await;
    assert!(!store.gave_up_since("tg", "c1", Timestamp(0)).await.unwrap());
    store.gave_up(ids[0], Timestamp(250), "too old").await.unwrap();
    assert_eq!(replies(&store).await, (2, 1));
    let heads = store.claim(Timestamp(300), "w", Timestamp(400), 10).await.unwrap();
    assert_eq!(bodies(&heads), ["2", "other"], "no longer blocks its lane");
    assert!(store.gave_up_since("tg", "c1", Timestamp(100)).await.unwrap());
    assert!(!store.gave_up_since("tg", "c1", Timestamp(101)).await.unwrap(), "written before");
    assert!(!store.gave_up_since("tg", "c9", Timestamp(0)).await.unwrap());
    assert!(!store.gave_up_since("dc", "c1", Timestamp(0)).await.unwrap());
    // Given up is final, and its body is cleared.
    store.failed(ids[0], Timestamp(300), "late").await.unwrap();
    store.done(&[ids[0]], Timestamp(300)).await.unwrap();
    let pool = sqlx::AnyPool::connect(&db.url()).await.unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM outbox WHERE id = $1")
        .bind(ids[0])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(body, "");
    pool.close().await;
    assert_eq!(replies(&store).await, (2, 1));
}

async fn done_deletes_replies_and_keeps_handoffs_counted(db: &TestDb) {
    let store = db.store().await;
    let ids = ids_of(&say_with(&store, "a", None, &[out("tg", "c1", "1")], None, 100).await);
    let to = destinations(&["desk"]);
    submit(&store, "b", &request("R-1", &to), 100).await;
    let all = store.claim(Timestamp(100), "w", Timestamp(200), 10).await.unwrap();
    assert_eq!(all.len(), 2);
    let all_ids: Vec<i64> = all.iter().map(|q| q.id).collect();
    store.done(&all_ids, Timestamp(150)).await.unwrap();
    let pool = sqlx::AnyPool::connect(&db.url()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id = $1")
        .bind(ids[0])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "a delivered reply is deleted");
    pool.close().await;
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!((counts.requests, counts.pending, counts.delivered), (1, 0, 1));
    assert_eq!(
        (counts.replies_pending, counts.replies_gave_up, counts.oldest_pending),
        (0, 0, None)
    );
    assert!(store.claim(Timestamp(10_000), "w", Timestamp(20_000), 10).await.unwrap().is_empty());
    store.done(&[], Timestamp(150)).await.unwrap();
}

async fn purge_deletes_old_reply_items(db: &TestDb) {
    let store = db.store().await;
    let old = ids_of(
        &say_with(&store, "a", None, &[out("tg", "c1", "1"), out("tg", "c2", "2")], None, 100)
            .await,
    );
    say_with(&store, "b", None, &[out("tg", "c3", "new")], None, 1_000).await;
    store.gave_up(old[0], Timestamp(200), "too old").await.unwrap();
    let purged = store.purge(Timestamp(0), Timestamp(0), Timestamp(500), &[]).await.unwrap();
    assert_eq!((purged.replies, purged.requests), (2, 0));
    assert_eq!(replies(&store).await, (1, 0));
    let left = store.claim(Timestamp(1_000), "w", Timestamp(2_000), 10).await.unwrap();
    assert_eq!(bodies(&left), ["new"]);
}

fn clocked(clock: &Arc<ManualClock>) -> ServiceOptions {
    ServiceOptions { clock: clock.clone(), ..ServiceOptions::default() }
}

/// One item per step: the prompt shown, to the conversation's chat.
fn plan(
    k: &ConversationKey,
) -> impl FnMut(&flowbot_core::Flow, &flowbot_core::Outcome<'_>) -> Planned<Option<String>> + '_ {
    move |_, o| {
        let shown = o.prompt_shown().map(|p| p.node.id().to_owned());
        let later = shown
            .iter()
            .map(|node| Outgoing {
                sink: "test".into(),
                lane: k.conversation.clone(),
                body: node.clone(),
            })
            .collect();
        Planned::new(shown, later)
    }
}

async fn service_stores_planned_items_with_the_step_and_hands_claimed_ones_over(db: &TestDb) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_000)));
    let service = service(db, clocked(&clock)).await;
    let k = key("planned");
    let update = |event, input, now| Update { key: &k, event, input, now };
    let Handled::Done(first) = service
        .handle_planned(update(Some("p:1"), Input::Text("/start"), service.now()), plan(&k))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(first.now.as_deref(), Some("q1"));
    assert_eq!(first.queued.len(), 1);
    let q = &first.queued[0];
    assert_eq!((q.sink.as_str(), q.lane.as_str(), q.body.as_str()), ("test", "chat", "q1"));
    assert!(first.claimed.is_empty(), "this process serves no sink yet");
    assert!(service.mailbox().is_empty());
    // A redelivery writes and returns nothing.
    assert_eq!(
        service
            .handle_planned(update(Some("p:1"), Input::Text("/start"), service.now()), plan(&k))
            .await
            .unwrap(),
        Handled::Duplicate
    );
    assert_eq!(replies(service.store().as_ref()).await, (1, 0));
    // Serving the sink: the next step's item is claimed at commit, but its lane is busy (q1
    // is still pending), so it waits for a worker.
    service.serve(&["test"]);
    clock.advance(10);
    let Handled::Done(second) = service
        .handle_planned(update(Some("p:2"), Input::Text("届いている"), service.now()), plan(&k))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((second.now.as_deref(), second.claimed.len()), (Some("q2"), 0));
    let worker = service
        .store()
        .claim(service.now(), "w", Timestamp(service.now().0 + 100), 10)
        .await
        .unwrap();
    assert_eq!(bodies(&worker), ["q1"]);
    let ids: Vec<i64> = first.queued.iter().chain(&second.queued).map(|q| q.id).collect();
    service.store().done(&ids, service.now()).await.unwrap();
    // A clear lane: claimed for this process and in its mailbox, leased by the clock.
    clock.advance(10);
    let Handled::Done(third) = service
        .handle_planned(update(Some("p:3"), Input::Back, service.now()), plan(&k))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(third.claimed, [third.queued[0].id]);
    let mailed = service.mailbox().next_batch().await;
    assert_eq!(mailed, third.queued);
    assert_eq!(service.owner().len(), 16);
    assert!(
        service
            .store()
            .claim(service.now(), "w", Timestamp(u64::MAX / 2), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The lease is the service's: after it runs out (on the test clock), a worker may take it.
    clock.advance(10_000);
    let taken = service
        .store()
        .claim(service.now(), "w", Timestamp(service.now().0 + 100), 10)
        .await
        .unwrap();
    assert_eq!(bodies(&taken), ["q1"]);
    // `handle` stores nothing to send.
    assert_eq!(
        service.handle(update(Some("p:4"), Input::Help, service.now()), |_, _| ()).await.unwrap(),
        Handled::Done(())
    );
    assert_eq!(replies(service.store().as_ref()).await, (1, 0));
    let _: Option<Delivered<()>> = None;
}

async fn service_expiry_and_resume_follow_the_test_clock(db: &TestDb) {
    let day = 24 * 3_600_000;
    let clock = Arc::new(ManualClock::new(Timestamp(1)));
    let options = ServiceOptions { expire_after: 30 * day, ..clocked(&clock) };
    let service = service(db, options).await;
    let k = key("idle");
    let say_now = |text: &'static str| {
        let (service, k) = (&service, &k);
        async move { say(service, k, text, service.now().0).await }
    };
    say_now("/start").await;
    clock.advance(1);
    say_now("届いていない").await;
    let first = service.store().load(&k).await.unwrap().unwrap().session;
    clock.advance(day + day / 2);
    assert_eq!(say_now("?").await.as_deref(), Some("q3"));
    assert!(service.store().load(&k).await.unwrap().unwrap().state.awaiting_resume);
    clock.advance(30 * day);
    assert_eq!(say_now("こんにちは").await.as_deref(), Some("q1"));
    let now = service.store().load(&k).await.unwrap().unwrap();
    assert_ne!(now.session, first);
    clock.advance(31 * day);
    assert_eq!(service.purge(service.now()).await.unwrap().conversations, 1);
}

async fn the_inbox_keeps_updates_until_handled_and_purge_drops_old_ones(db: &TestDb) {
    let store = db.store().await;
    let pending = |source: &'static str| {
        let store = store.clone();
        async move { store.inbound_pending(source).await.unwrap() }
    };
    let owned = |rows: &[(i64, &str)]| -> Vec<(i64, String)> {
        rows.iter().map(|&(id, body)| (id, body.to_owned())).collect()
    };
    let kept = || {
        let store = store.clone();
        async move { store.delivery_counts().await.unwrap().updates_kept }
    };
    assert_eq!(kept().await, 0);
    store.inbound("a", &[(5, "five"), (3, "three")], &[], Timestamp(10)).await.unwrap();
    assert_eq!(pending("a").await, owned(&[(3, "three"), (5, "five")]), "by key");
    assert_eq!(kept().await, 2, "counted for the metrics");
    // Fetched again (not confirmed in time): the kept one stays as it is.
    store.inbound("a", &[(5, "FIVE"), (7, "seven")], &[3], Timestamp(20)).await.unwrap();
    assert_eq!(pending("a").await, owned(&[(5, "five"), (7, "seven")]));
    store.inbound("b", &[(3, "bee")], &[], Timestamp(10)).await.unwrap();
    // Forgetting a key never kept (or of another source) is harmless.
    store.inbound("a", &[], &[5, 7, 99], Timestamp(30)).await.unwrap();
    assert_eq!(pending("a").await, vec![]);
    assert_eq!(pending("b").await, owned(&[(3, "bee")]), "sources are apart");
    assert_eq!(kept().await, 1, "every source's are counted");
    store.inbound("a", &[], &[], Timestamp(30)).await.unwrap();

    // More than one statement's rows, in one write.
    let bodies: Vec<String> = (0..1_200).map(|i| format!("u{i}")).collect();
    let many: Vec<(i64, &str)> =
        bodies.iter().enumerate().map(|(i, b)| (1_000 + i as i64, b.as_str())).collect();
    store.inbound("a", &many, &[], Timestamp(40)).await.unwrap();
    let kept = pending("a").await;
    assert_eq!(kept.len(), 1_200);
    assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
    let handled: Vec<i64> = many.iter().map(|(id, _)| *id).filter(|id| id % 2 == 0).collect();
    store.inbound("a", &[], &handled, Timestamp(50)).await.unwrap();
    assert_eq!(pending("a").await.len(), 600);

    // Older than the event ids that would tell a second handling apart: purged.
    store.purge(Timestamp(0), Timestamp(15), Timestamp(0), &[]).await.unwrap();
    assert_eq!(pending("b").await, vec![]);
    assert_eq!(pending("a").await.len(), 600, "recent ones stay");
}
