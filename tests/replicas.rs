//! The compose topology without Docker: two `flowbot run` replicas on one PostgreSQL, Telegram in
//! webhook mode, every update posted to either replica at random (some to both, as a load
//! balancer's retry would), and a help desk's webhook that sees each hand-off attempted by one
//! replica at a time.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use flowbot_core::{ConversationKey, ConversationStore};
use flowbot_tests::fake_telegram::FakeTelegram;
use flowbot_tests::{BotProcess, TestDb, http_request};

use crate::handoff::telegram_request;
use crate::telegram::{SECRET_PART, TOKEN};

const WEBHOOK_SECRET: &str = "replica-webhook-secret-0123";
const HOOK_SECRET: &str = "desk-hook-secret-0123456789";
const CHATS: i64 = 8;
const WAIT: Duration = Duration::from_secs(60);

/// One attempt the desk's webhook saw: the request's reference, when it began and ended.
#[derive(Debug, Clone)]
struct Attempt {
    reference: String,
    began: Instant,
    ended: Instant,
    ok: bool,
}

#[derive(Debug, Default)]
struct Desk {
    attempts: Mutex<Vec<Attempt>>,
    /// References seen once: their first attempt fails (500), so a retry may go to either
    /// replica.
    seen: Mutex<HashMap<String, usize>>,
}

async fn desk(State(desk): State<Arc<Desk>>, headers: HeaderMap) -> StatusCode {
    let reference =
        headers.get("x-flowbot-reference").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let began = Instant::now();
    let first = {
        let mut seen = desk.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let n = seen.entry(reference.clone()).or_insert(0);
        *n += 1;
        *n == 1
    };
    // A slow desk: an attempt is in flight long enough for a second one to overlap, if the
    // replicas ever made two at once.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let ok = !first;
    let attempt = Attempt { reference, began, ended: Instant::now(), ok };
    desk.attempts.lock().unwrap_or_else(PoisonError::into_inner).push(attempt);
    if ok { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR }
}

/// Posts every update the fake has queued to a replica chosen at random, and one in five to the
/// other one as well; until `stop`.
async fn balance(fake: &FakeTelegram, replicas: [String; 2], stop: Arc<AtomicBool>) -> usize {
    let mut seed: u64 = 0x5eed_cafe;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut posted = 0;
    // Bounded: the test's own deadline stops it at the latest.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        for update in fake.take_updates() {
            let body = update.to_string();
            let first = usize::from(random() % 2 == 0);
            let mut targets = vec![first];
            if random() % 5 == 0 {
                targets.push(1 - first);
            }
            for target in targets {
                let headers = format!(
                    "Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: {WEBHOOK_SECRET}\r\n"
                );
                let (status, _) = http_request(
                    &replicas[target],
                    "POST /telegram/webhook HTTP/1.1",
                    &headers,
                    body.as_bytes(),
                )
                .await;
                assert_eq!(status, 200, "replica {target} refused an update");
                posted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    posted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_behind_a_balancer_lose_nothing_and_double_nothing() {
    let db = TestDb::postgres().await;
    let url = db.url();
    drop(db.store().await);

    let state = Arc::new(Desk::default());
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(desk))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(
        &config,
        format!(
            "[prefecture]\nname = \"福島県\"\n[handoff]\nretry_first_seconds = 0.2\nretry_max_seconds = 1\n\
             lease_seconds = 2\n[[handoff.destinations]]\nkind = \"webhook\"\nurl = \"{hook}\"\n\
             secret = \"{HOOK_SECRET}\"\n"
        ),
    )
    .unwrap();
    let fake = Arc::new(FakeTelegram::start(TOKEN).await);
    let replica = || {
        BotProcess::start_url(
            &url,
            &[
                "--config",
                config.to_str().unwrap(),
                "--telegram-webhook-url",
                "https://bot.example.org/telegram/webhook",
                "--telegram-webhook-secret",
                WEBHOOK_SECRET,
            ],
            &[("TELEGRAM_BOT_TOKEN", TOKEN), ("TELEGRAM_API_URL", &fake.url())],
            SECRET_PART,
        )
    };
    let (mut a, mut b) = (replica(), replica());
    let stop = Arc::new(AtomicBool::new(false));
    let balancer = {
        let (fake, stop) = (Arc::clone(&fake), stop.clone());
        let replicas = [a.address.clone(), b.address.clone()];
        tokio::spawn(async move { balance(&fake, replicas, stop).await })
    };

    // Every user fills the address-change form and confirms it, all at once.
    let users = (1..=CHATS).map(|chat| {
        let fake = Arc::clone(&fake);
        async move {
            let answers = ["病院", "C-1", "old@example.jp", "new@example.jp"];
            tokio::time::timeout(WAIT, telegram_request(&fake, 1000 + chat, &answers))
                .await
                .expect("the conversation completes")
        }
    });
    let users: Vec<_> = users.map(tokio::spawn).collect();
    let mut requests = Vec::new();
    for user in futures_util::future::join_all(users).await {
        match user {
            Ok(request) => requests.push(request),
            Err(err) => panic!(
                "a user failed: {err}\n--- replica a:\n{}\n--- replica b:\n{}",
                a.log(),
                b.log()
            ),
        }
    }
    let references: Vec<String> = requests.into_iter().map(|(_, r)| r).collect();

    // Each request reaches the desk: a failed first attempt, then one success.
    let deadline = Instant::now() + WAIT;
    loop {
        let attempts = state.attempts.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let delivered = |r: &String| attempts.iter().filter(|a| &a.reference == r && a.ok).count();
        if references.iter().all(|r| delivered(r) >= 1) {
            break;
        }
        assert!(Instant::now() < deadline, "not every request was delivered: {attempts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let posted = balancer.await.unwrap();
    assert!(posted > (CHATS * 8) as usize, "every update was posted, some twice: {posted}");

    let attempts = state.attempts.lock().unwrap_or_else(PoisonError::into_inner).clone();
    for reference in &references {
        let mine: Vec<&Attempt> = attempts.iter().filter(|a| &a.reference == reference).collect();
        assert_eq!(mine.iter().filter(|a| a.ok).count(), 1, "{reference} delivered once: {mine:?}");
        for (i, x) in mine.iter().enumerate() {
            for y in &mine[i + 1..] {
                let apart = x.ended <= y.began || y.ended <= x.began;
                assert!(apart, "{reference}: two attempts at once: {x:?} {y:?}");
            }
        }
    }

    // No step lost or applied twice: every conversation took the same eight steps (start,
    // two presses, four answers, the confirmation), whichever replica took each update.
    let store = db.store().await;
    for chat in 1..=CHATS {
        let id = (1000 + chat).to_string();
        let key = ConversationKey::new("telegram", &id, &id);
        let stored = store.load(&key).await.unwrap().expect("the conversation");
        assert_eq!(stored.state.revision, 8, "chat {id}");
        let sent = fake
            .calls()
            .iter()
            .filter(|c| c.method == "sendmessage" && crate::telegram::chat_of(c) == 1000 + chat)
            .count();
        assert_eq!(sent, 8, "chat {id}: one message per step");
    }
    assert!(a.terminate().success(), "{}", a.log());
    assert!(b.terminate().success(), "{}", b.log());
    db.cleanup().await;
}

/// The bug the test above found, in process: a replica's cached state, moved past by another
/// replica, must not make it refuse a press that is current in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_judges_a_press_on_the_stored_state_not_its_cache() {
    use flowbot_core::{Input, Timestamp};
    use flowbot_store::{Service, ServiceOptions, SqlStore};

    let db = TestDb::sqlite();
    let store: Arc<SqlStore> = Arc::new(db.store().await);
    let source = flowbot_tests::root().join("flows/gmis-mail-trouble.yaml");
    let source = std::fs::read_to_string(source).unwrap();
    let replica = || async {
        let store: Arc<dyn flowbot_core::Store> = store.clone();
        Service::new(store, &source, "gmis", ServiceOptions::default(), Timestamp(1)).await.unwrap()
    };
    let (a, b) = (replica().await, replica().await);
    let key = ConversationKey::new("test", "chat", "user");
    // Replica a starts the conversation (and caches it); b takes the next press.
    let (_, yes) = step(&a, &key, "e1", Input::Start { entry: None }, "届いている").await;
    let (at, no) = step(&b, &key, "e2", Input::Press(&yes.unwrap()), "届いていない").await;
    assert_eq!(at, "q2");
    // The press on q2 reaches a, whose cache still says q1: it must be applied.
    let (at, _) = step(&a, &key, "e3", Input::Press(&no.unwrap()), "").await;
    assert_eq!(at, "q3", "a current press refused on a stale cache");
    db.cleanup().await;
}

/// One update through `service`: where it leads, and the token of that prompt's button `label`.
async fn step(
    service: &flowbot_store::Service,
    key: &ConversationKey,
    event: &str,
    input: flowbot_core::Input<'_>,
    label: &str,
) -> (String, Option<String>) {
    let now = flowbot_core::Timestamp(2);
    let update = flowbot_store::Update { key, event: Some(event), input, now };
    let handled = service
        .handle(update, |_, outcome| {
            let prompt = outcome.prompt_shown().expect("a prompt");
            let token = prompt.buttons().find(|b| b.label == label).map(|b| b.token.to_string());
            (prompt.node.id().to_owned(), token)
        })
        .await
        .unwrap();
    let flowbot_store::Handled::Done(done) = handled else { panic!("a duplicate") };
    done
}
