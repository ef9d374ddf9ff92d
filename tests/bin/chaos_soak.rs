//! Chaos soak of the Telegram path: the real `flowbot run` against the fake Bot API, killed
//! and restarted while the API fails and repeats itself; then a calm phase, and a verdict.
//!
//! The fake answers a share of every Bot API call with 429 (`retry_after` 1 s) or 500 and
//! delivers a share of updates twice (the same `update_id` again, or the same callback query
//! as a new update); users press, press twice and type their answers; the bot is SIGKILLed at
//! random moments (seeded: `--seed` replays the same choices) and started again, on a fresh
//! SQLite file or a fresh PostgreSQL database (`DATABASE_URL`), running a copy of the G-MIS flow
//! file taken at the start (the paths are drawn from the same copy). When the chaos phase ends the
//! faults stop, the users finish what they started, and the soak waits (bounded) until the
//! bot is quiet. Then each conversation is judged against its expected path (see
//! `soak/judge.rs`) and a table and one JSON line are printed; the exit status is 1 when
//! anything was lost, doubled, wrong or stuck, the bot exited unasked, or its token reached
//! its log.
//!
//! ```sh
//! cargo build --release -p flowbot -p flowbot-tests --bins
//! target/release/chaos-soak --backend sqlite --users 20 --seconds 600
//! ```

mod soak {
    pub mod args;
    pub mod bot;
    pub mod judge;
    pub mod observe;
    pub mod plan;
    pub mod rng;
    pub mod users;
}

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowbot_core::{Params, load_flow};
use flowbot_tests::fake_telegram::FakeTelegram;
use flowbot_tests::{TestDb, root};

use soak::args::{Backend, Options, USAGE};
use soak::bot::Bot;
use soak::judge::{self, Run};
use soak::observe::Observed;
use soak::rng::Rng;
use soak::users::{self, World};

const TOKEN: &str = "424242:chaos-soak-token";
/// The embedded default flow's file in the repository.
const GMIS: &str = "flows/gmis-mail-trouble.yaml";
/// The token's secret part, which must never reach the bot's log.
const SECRET_PART: &str = "chaos-soak-token";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("chaos-soak: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let flowbot = options
        .flowbot
        .clone()
        .unwrap_or_else(|| std::env::current_exe().expect("current exe").with_file_name("flowbot"));
    if !flowbot.exists() {
        eprintln!("chaos-soak: {} is missing: cargo build -p flowbot", flowbot.display());
        return ExitCode::from(2);
    }
    eprintln!(
        "chaos-soak: seed {} ({} users, {:?} of chaos, kills every {}..{} ms)",
        options.seed,
        options.users,
        options.chaos,
        options.kill_every_ms.0,
        options.kill_every_ms.1
    );
    let work = tempfile::Builder::new().prefix("chaos-soak-").tempdir().expect("work folder");
    let db = match options.backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => TestDb::postgres().await,
    };
    let (run, tally) = soak(&options, &flowbot, &db, work.path()).await;
    db.cleanup().await;

    print!("{}", judge::table(&run, &tally));
    for example in &tally.examples {
        println!("finding: {example}");
    }
    for exit in &run.exits {
        println!("finding: the bot exited unasked ({exit})");
    }
    if run.token_in_log {
        println!("finding: the bot token reached the bot's log");
    }
    println!("{}", judge::json(&run, &tally));
    let clean = run.clean(&tally);
    if options.keep || !clean {
        let kept = work.keep();
        eprintln!("chaos-soak: bot logs kept in {}", kept.display());
    }
    if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn soak(
    options: &Options,
    flowbot: &std::path::Path,
    db: &TestDb,
    work: &std::path::Path,
) -> (Run, judge::Tally) {
    let fake = Arc::new(FakeTelegram::start(TOKEN).await);
    let seen = Observed::default();
    seen.collect(fake.tap());
    let settings = work.join("flowbot.toml");
    std::fs::write(&settings, format!("[handoff]\nlease_seconds = {}\n", options.lease_seconds))
        .expect("write the settings");
    let settings = settings.display().to_string();
    let api = fake.url();
    let env =
        [("TELEGRAM_BOT_TOKEN", TOKEN), ("TELEGRAM_API_URL", &api), ("FLOWBOT_CONFIG", &settings)];
    // The bot runs a copy of the flow taken now, and the paths come from the same copy: an
    // edit of the file meanwhile, or a binary built from another version, cannot set them
    // apart.
    let source = options.flow.clone().unwrap_or_else(|| root().join(GMIS));
    let source = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let flow = load_flow(&source, GMIS, &Params::new()).expect("the flow loads");
    let flow_file = work.join("flow.yaml");
    std::fs::write(&flow_file, &source).expect("copy the flow");
    let flow_arg = flow_file.display().to_string();
    let log = work.join("bot.log");
    let mut bot = Bot::start(flowbot, &db.url(), &["--flow", &flow_arg], &env, &log);
    // Faults start once the bot polls, so the run does not measure a slow first start.
    let up = Instant::now() + Duration::from_secs(60);
    while !seen.polling() {
        bot.check();
        assert!(Instant::now() < up, "flowbot did not start polling: see {}", work.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.chaos(&["*"], options.fail_429, options.fail_5xx, options.seed);
    fake.duplicate_updates(options.duplicate_share, options.seed.rotate_left(17));

    let started = Instant::now();
    let chaos_until = started + options.chaos;
    let deadline = chaos_until + options.settle;
    let paths = soak::plan::paths(&flow);
    let world = Arc::new(World::new(
        fake.clone(),
        seen.clone(),
        paths,
        options.clone(),
        chaos_until,
        deadline,
    ));
    let mut walkers: Vec<_> =
        (0..options.users).map(|u| tokio::spawn(users::run(world.clone(), u))).collect();

    // The chaos phase: a SIGKILL after each drawn pause, until the phase ends or every user
    // is done (a conversation budget spent).
    let mut rng = Rng::new(options.seed ^ 0x5EED_C0DE);
    let all_done = |w: &[tokio::task::JoinHandle<_>]| w.iter().all(|h| h.is_finished());
    let mut next_kill = Instant::now() + pause(&mut rng, options);
    while Instant::now() < chaos_until && !all_done(&walkers) {
        if Instant::now() >= next_kill {
            bot.kill_and_restart();
            next_kill = Instant::now() + pause(&mut rng, options);
        }
        bot.check();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.calm();
    fake.no_duplicates();
    let calm = Instant::now();

    // The calm phase: the users finish, then the bot falls quiet (no reply for two leases).
    while !all_done(&walkers) && Instant::now() < deadline {
        bot.check();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let quiet = Duration::from_secs(2 * options.lease_seconds);
    loop {
        bot.check();
        let last = seen.last_reply().unwrap_or(calm).max(calm);
        if last.elapsed() >= quiet || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled_in = calm.elapsed();
    bot.stop(Duration::from_secs(20));
    let token_in_log = std::fs::read_to_string(&log).unwrap_or_default().contains(SECRET_PART);

    let mut records = Vec::new();
    for walker in walkers.drain(..) {
        // Every user stops by the deadline, which has passed or all are done.
        records.extend(walker.await.expect("a user task"));
    }
    let tally =
        judge::judge(&records, &seen, &bot.kills, fake.confirmed_offset(), options.resend_window);
    let (injected_429, injected_5xx) = fake.injected();
    let (replayed_same_id, replayed_same_callback) = fake.duplicated();
    let run = Run {
        backend: match options.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        },
        seed: options.seed,
        users: options.users,
        chaos: calm.saturating_duration_since(started),
        settled_in,
        kills: bot.kills.len(),
        starts: bot.starts,
        exits: bot.exits.clone(),
        injected_429,
        injected_5xx,
        replayed_same_id,
        replayed_same_callback,
        api_calls: fake.call_count(),
        token_in_log,
    };
    (run, tally)
}

fn pause(rng: &mut Rng, options: &Options) -> Duration {
    Duration::from_millis(rng.range(options.kill_every_ms.0, options.kill_every_ms.1))
}
