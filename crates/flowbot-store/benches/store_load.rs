//! Load test of persisted steps: the real service and store, many users at once.
//!
//! `cargo bench -p flowbot-store --bench store_load` runs it on a SQLite file (and on
//! PostgreSQL too when `DATABASE_URL` names a server). Each simulated user runs whole G-MIS
//! conversations by button presses, every press a committed step with its own event id (load,
//! engine step, compare-and-swap update, event id and log entry in one transaction). It prints
//! steps and conversations per second, and the latency of one step at p50 and p99. A run with
//! one user measures the cost of a single persisted step with nothing else going on.
//!
//! SQLite runs twice, side by side: with `synchronous=NORMAL` (the default) and `FULL` (the
//! `[store] sqlite_synchronous = "full"` setting), so the cost of syncing every commit is a
//! ratio measured in one invocation.
//!
//! `FLOWBOT_LOAD_SECONDS` (default 5) sets each run's length.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flowbot_core::{ConversationKey, Input, Params, Timestamp, load_flow};
use flowbot_store::{Handled, Service, ServiceOptions, SqlStore, Synchronous, Update};

const GMIS: &str = include_str!("../../../flows/gmis-mail-trouble.yaml");

struct Run {
    steps: u64,
    conversations: u64,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn run(service: Arc<Service>, users: usize, seconds: u64, tag: &str) -> Run {
    let flow = load_flow(GMIS, "gmis", &Params::new()).unwrap();
    let paths = Arc::new(flow.paths());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let (service, paths) = (service.clone(), paths.clone());
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut steps, mut conversations, mut event) = (0u64, 0u64, 0u64);
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let key = ConversationKey::new("load", &format!("{tag}-{u}"), &format!("{n}"));
                    let path = &paths[(u + n) % paths.len()];
                    n += 1;
                    let mut input_token: Option<String> = None;
                    for i in 0..=path.len() {
                        event += 1;
                        let id = format!("load:{tag}:{u}:{event}");
                        let input = match &input_token {
                            None => Input::Start { entry: None },
                            Some(t) => Input::Press(t),
                        };
                        let update =
                            Update { key: &key, event: Some(&id), input, now: Timestamp(1) };
                        let choose = path.get(i).copied().map(usize::from);
                        let t0 = Instant::now();
                        let handled = service
                            .handle(update, |_, outcome| {
                                let prompt = outcome.prompt_shown()?;
                                let button = prompt.buttons().nth(choose?)?;
                                Some(button.token.to_string())
                            })
                            .await
                            .unwrap();
                        latencies.push(t0.elapsed());
                        steps += 1;
                        let Handled::Done(next) = handled else { panic!("unexpected duplicate") };
                        input_token = next;
                    }
                    conversations += 1;
                }
                (steps, conversations, latencies)
            })
        })
        .collect();
    let mut total =
        Run { steps: 0, conversations: 0, latencies: Vec::new(), elapsed: Duration::ZERO };
    for t in tasks {
        let (s, c, l) = t.await.unwrap();
        total.steps += s;
        total.conversations += c;
        total.latencies.extend(l);
    }
    total.elapsed = started.elapsed();
    total
}

fn report(backend: &str, users: usize, r: &mut Run) {
    r.latencies.sort_unstable();
    let pct =
        |p: f64| r.latencies[((r.latencies.len() as f64 * p) as usize).min(r.latencies.len() - 1)];
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{backend:<11} users {users:>4}: {:>8.0} steps/s {:>7.0} conversations/s  step p50 {:>7.1?} p99 {:>7.1?}  ({} steps in {secs:.1} s)",
        r.steps as f64 / secs,
        r.conversations as f64 / secs,
        pct(0.50),
        pct(0.99),
        r.steps,
    );
}

async fn bench(backend: &str, url: &str, synchronous: Synchronous, seconds: u64) {
    let store = SqlStore::open_with(url, synchronous).await.unwrap();
    let service = Arc::new(
        Service::new(Arc::new(store), GMIS, "gmis", ServiceOptions::default(), Timestamp(0))
            .await
            .unwrap(),
    );
    for users in [1, 64, 500] {
        let mut r = run(service.clone(), users, seconds, &format!("{backend}{users}")).await;
        report(backend, users, &mut r);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let seconds =
        std::env::var("FLOWBOT_LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, synchronous) in [("sqlite", Synchronous::Normal), ("sqlite-full", Synchronous::Full)]
    {
        let url = format!("sqlite://{}", dir.path().join(format!("{name}.sqlite")).display());
        rt.block_on(bench(name, &url, synchronous, seconds));
    }
    if let Ok(url) = std::env::var("DATABASE_URL") {
        rt.block_on(async {
            use sqlx::{Connection, Executor};
            let name = format!("load_{}", std::process::id());
            let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
            let base = &url[..url.rfind('/').unwrap()];
            bench("postgres", &format!("{base}/{name}"), Synchronous::default(), seconds).await;
            admin.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
        });
    }
}
