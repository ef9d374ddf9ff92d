//! The delivery worker in process, on a real SQLite store and the test clock: a lane that keeps
//! failing holds up no other, a lane goes out in order, and an item too old is given up and
//! counted, not dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use flowbot_adapter::{Deliver, Failed, RetryPolicy, Route, Scope, Verdict, Worker, WorkerOptions};
use flowbot_core::{Clock, ConversationKey, Input, ManualClock, Queued, Store, Timestamp};
use flowbot_store::{Outgoing, Planned, Service, ServiceOptions, SqlStore, Update};
use tokio_util::sync::CancellationToken;

const SINK: &str = "fake";
const WAIT: Duration = Duration::from_secs(10);

/// A platform that takes every item except those of the lanes it refuses, and keeps what it
/// took in order.
#[derive(Debug, Default)]
struct Platform {
    taken: Mutex<Vec<String>>,
    refuse: Mutex<HashMap<String, Verdict>>,
}

#[async_trait]
impl Deliver for Platform {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        if let Some(verdict) = self.refuse.lock().unwrap().get(&item.lane) {
            return Err(Failed::new(*verdict, "refused by the fake"));
        }
        self.taken.lock().unwrap().push(item.body.clone());
        Ok(())
    }
}

impl Platform {
    fn taken(&self) -> Vec<String> {
        self.taken.lock().unwrap().clone()
    }
}

struct Setup {
    service: Arc<Service>,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let options = ServiceOptions { clock: clock.clone(), ..ServiceOptions::default() };
    let source = include_str!("../flows/gmis-mail-trouble.yaml");
    let service = Service::new(store.clone(), source, "gmis", options, clock.now()).await.unwrap();
    Setup { service: Arc::new(service), store, clock, _dir: dir }
}

/// One step of the conversation in `lane` that stores `bodies` for the fake platform.
async fn step(service: &Service, lane: &str, event: &str, bodies: &[&str]) {
    let key = ConversationKey::new(SINK, lane, lane);
    let update =
        Update { key: &key, event: Some(event), input: Input::Text("/start"), now: service.now() };
    let later: Vec<Outgoing> = bodies
        .iter()
        .map(|b| Outgoing { sink: SINK.into(), lane: lane.into(), body: (*b).into() })
        .collect();
    service.handle_planned(update, |_, _| Planned::new((), later.clone())).await.unwrap();
}

fn worker(setup: &Setup, platform: Arc<Platform>, route: Route) -> Arc<Worker> {
    let routes = HashMap::from([(SINK.to_owned(), (platform as Arc<dyn Deliver>, route))]);
    let options = WorkerOptions {
        lease: Duration::from_secs(10),
        poll: Duration::from_millis(20),
        batch: 64,
    };
    setup.service.serve(&[SINK]);
    Arc::new(Worker::new(
        setup.store.clone(),
        routes,
        options,
        setup.service.mailbox(),
        setup.service.clock(),
        setup.service.owner().to_owned(),
    ))
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_that_keeps_failing_holds_up_no_other_and_each_lane_keeps_its_order() {
    let setup = setup().await;
    let platform = Arc::new(Platform::default());
    // Chat A is rate limited for an hour; B and C are fine.
    let limited = Verdict::RetryAfter(Duration::from_secs(3_600), Scope::Lane);
    platform.refuse.lock().unwrap().insert("A".into(), limited);
    let worker = worker(&setup, platform.clone(), Route::replies(Duration::from_secs(86_400)));
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.clone().run(stop.clone()));
    step(&setup.service, "A", "e1", &["a1", "a2"]).await;
    step(&setup.service, "B", "e2", &["b1", "b2"]).await;
    step(&setup.service, "C", "e3", &["c1"]).await;
    step(&setup.service, "B", "e4", &["b3"]).await;
    until("B and C delivered", || platform.taken().len() == 4).await;
    let taken = platform.taken();
    let b: Vec<&String> = taken.iter().filter(|t| t.starts_with('b')).collect();
    assert_eq!(b, ["b1", "b2", "b3"], "a lane in order: {taken:?}");
    assert!(taken.iter().all(|t| !t.starts_with('a')), "{taken:?}");
    // A's items are still there, waiting, not given up (once the deliveries are recorded).
    let deadline = Instant::now() + WAIT;
    loop {
        let counts = setup.store.delivery_counts().await.unwrap();
        if counts.replies_pending == 2 {
            assert_eq!(counts.replies_gave_up, 0);
            break;
        }
        assert!(Instant::now() < deadline, "{counts:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_too_old_is_given_up_counted_and_unblocks_its_lane() {
    let setup = setup().await;
    let platform = Arc::new(Platform::default());
    platform.refuse.lock().unwrap().insert("A".into(), Verdict::Backoff);
    let route = Route {
        policy: RetryPolicy { first: Duration::from_millis(5), ..RetryPolicy::CALL },
        give_up_after: Some(Duration::from_secs(3_600)),
        park: false,
    };
    let worker = worker(&setup, platform.clone(), route);
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.clone().run(stop.clone()));
    step(&setup.service, "A", "e1", &["a1"]).await;
    // Retried while young: nothing given up.
    until("a few attempts", || {
        worker.counters().retried.load(std::sync::atomic::Ordering::Relaxed) >= 3
    })
    .await;
    assert_eq!(worker.counters().gave_up.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Two hours later (on the test clock) the next failure gives it up.
    setup.clock.advance(2 * 3_600 * 1_000);
    until("given up", || worker.counters().gave_up.load(std::sync::atomic::Ordering::Relaxed) >= 1)
        .await;
    let counts = setup.store.delivery_counts().await.unwrap();
    assert_eq!((counts.replies_pending, counts.replies_gave_up), (0, 1));
    assert!(setup.store.gave_up_since(SINK, "A", Timestamp(0)).await.unwrap());
    // The lane goes on: the chat's platform takes the next item.
    platform.refuse.lock().unwrap().clear();
    step(&setup.service, "A", "e2", &["a2"]).await;
    until("the next item delivered", || platform.taken() == ["a2"]).await;
    // Given up once: the lease that ran out on the test clock did not queue it twice.
    assert_eq!(worker.counters().gave_up.load(std::sync::atomic::Ordering::Relaxed), 1);
    stop.cancel();
    task.await.unwrap();
}
