//! The store's secrets (the web chat's session key) on both backends: kept once, the same for
//! every caller and after a reopen, and left alone by `purge`.

use flowbot_core::{ConversationStore, Timestamp};
use flowbot_tests::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_kept_once_on_sqlite() {
    let db = TestDb::sqlite();
    a_secret_is_kept_once(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_kept_once_on_postgres() {
    let db = TestDb::postgres().await;
    a_secret_is_kept_once(&db).await;
    db.cleanup().await;
}

async fn a_secret_is_kept_once(db: &TestDb) {
    let store = db.store().await;
    let first = [7u8; 32];
    assert_eq!(store.secret("web.session", &first, Timestamp(1)).await.unwrap(), first);
    // Another caller's fresh value loses to the kept one; another name is its own.
    assert_eq!(store.secret("web.session", &[9u8; 32], Timestamp(2)).await.unwrap(), first);
    assert_eq!(store.secret("other", &[1, 2, 3], Timestamp(2)).await.unwrap(), [1, 2, 3]);

    // Concurrent first callers of a new name all get the same value.
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.secret("race", &[i; 16], Timestamp(3)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.expect("a task").expect("a secret"));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");

    // Purging everything leaves it; a reopened store has it.
    store
        .purge(Timestamp(u64::MAX / 2), Timestamp(u64::MAX / 2), Timestamp(u64::MAX / 2), &[])
        .await
        .unwrap();
    drop(store);
    let store = db.store().await;
    assert_eq!(store.secret("web.session", &[0u8; 32], Timestamp(4)).await.unwrap(), first);
}
