//! Load test of the Telegram adapter: the real `flowbot run` and a teloxide peer, one after the
//! other in one invocation, against the fake Bot API.
//!
//! For each number of `--users` (a list: `50,500`), each of `--rounds` rounds, and each of
//! `--bots` (`flowbot,teloxide`): a fresh fake on 127.0.0.1 and a fresh bot process, then the
//! simulated users run whole G-MIS conversations by button presses for `--seconds`: `/start`,
//! then one press per question, each conversation on a new chat. flowbot runs `flowbot run` (the
//! binary beside this one) on a fresh SQLite file; the peer is `teloxide-peer` (beside it too),
//! a minimal teloxide dialogue bot with in-memory state that edits one message in place. A
//! step's latency is from the update entering the fake's queue until the bot's next question
//! (a message or an edit with buttons) arrives there. Reported per run: conversations and steps
//! per second, step latency p50/p99, the bot's CPU time per conversation and per Bot API call
//! (from /proc; `getUpdates` counted apart), its peak memory (VmHWM); then each flowbot figure
//! as a ratio of the peer's in the same round.
//!
//! `--baseline PATH` adds another `flowbot` build to each round (before and after a change).
//! `--live N` measures flowbot's memory with N conversations started and none finished.
//!
//! ```sh
//! cargo build --release -p flowbot -p flowbot-tests --bins
//! target/release/telegram-load --users 50,500 --seconds 8 --rounds 2
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowbot_tests::fake_telegram::FakeTelegram;
use flowbot_tests::gmis;
use tokio::sync::mpsc;

// The fake and the simulated users share the machine with the bot under test: the less CPU
// they spend per call, the more is left for the bot (glibc's malloc and free were a third of
// their profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "123456:load-test-token";

/// `(message_id, callback data of each choice button in order)` of the bot's latest question.
type Shown = (i64, Vec<String>);

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_owned()))
}

/// User and system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let hz = Command::new("getconf").arg("CLK_TCK").output().ok()?;
    let hz: f64 = String::from_utf8_lossy(&hz.stdout).trim().parse().ok()?;
    Some(ticks / hz)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bot {
    Flowbot,
    Teloxide,
    /// The `flowbot` binary given by `--baseline` (another build, for before and after).
    Baseline,
}

impl Bot {
    fn name(self) -> &'static str {
        match self {
            Bot::Flowbot => "flowbot",
            Bot::Teloxide => "teloxide",
            Bot::Baseline => "baseline",
        }
    }

    fn spawn(self, fake: &FakeTelegram, dir: &tempfile::TempDir) -> std::process::Child {
        let beside = |name: &str| -> PathBuf {
            let path = std::env::current_exe().unwrap().with_file_name(name);
            assert!(
                path.exists(),
                "build {name} first: cargo build --release -p flowbot -p flowbot-tests --bins"
            );
            path
        };
        let log = std::env::var("FLOWBOT_LOAD_LOG").unwrap_or_else(|_| "warn".into());
        let mut command = match self {
            Bot::Flowbot | Bot::Baseline => {
                let program = match self {
                    Bot::Baseline => PathBuf::from(arg("--baseline", "")),
                    _ => beside("flowbot"),
                };
                let mut c = Command::new(program);
                c.args(["run", "--listen", "127.0.0.1:0", "--database-url"])
                    .arg(format!("sqlite://{}", dir.path().join("load.sqlite").display()))
                    .env("TELEGRAM_BOT_TOKEN", TOKEN)
                    .env("TELEGRAM_API_URL", fake.url())
                    .env("RUST_LOG", log)
                    .env_remove("DATABASE_URL");
                c
            }
            Bot::Teloxide => {
                let mut c = Command::new(beside("teloxide-peer"));
                c.env("TELOXIDE_TOKEN", TOKEN).env("TELEGRAM_API_URL", fake.url());
                c
            }
        };
        command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("start the bot")
    }
}

/// One run's figures.
#[derive(Debug, Clone)]
struct Figures {
    bot: Bot,
    users: usize,
    elapsed: f64,
    conversations: u64,
    steps: usize,
    p50: Duration,
    p99: Duration,
    cpu: f64,
    /// Bot API calls other than `getUpdates` in the measured window, and `getUpdates`.
    calls: u64,
    polls: u64,
    peak_kib: u64,
    own_cpu: f64,
}

impl Figures {
    fn per_second(&self) -> f64 {
        self.conversations as f64 / self.elapsed
    }
    fn cpu_per_conversation_ms(&self) -> f64 {
        self.cpu * 1e3 / self.conversations as f64
    }
    fn cpu_per_call_us(&self) -> f64 {
        self.cpu * 1e6 / (self.calls + self.polls) as f64
    }
    fn print(&self) {
        println!(
            "{:<9} users {:>4}: {:>6.0} conv/s ({} in {:.1} s), {:>6.0} steps/s, step p50 {:>6.1?} p99 {:>6.1?}, \
             bot CPU {:.3} ms/conv, {:.0} µs/call ({:.2} calls/step + {} getUpdates), {:.0}% of a core, peak RSS {:.1} MiB, load generator CPU {:.1} s",
            self.bot.name(),
            self.users,
            self.per_second(),
            self.conversations,
            self.elapsed,
            self.steps as f64 / self.elapsed,
            self.p50,
            self.p99,
            self.cpu_per_conversation_ms(),
            self.cpu_per_call_us(),
            self.calls as f64 / self.steps as f64,
            self.polls,
            self.cpu * 100.0 / self.elapsed,
            self.peak_kib as f64 / 1024.0,
            self.own_cpu,
        );
    }
}

async fn run(bot: Bot, users: usize, seconds: u64) -> Figures {
    let fake = Arc::new(FakeTelegram::start(TOKEN).await);
    fake.stop_log();
    let mut taps = fake.tap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = bot.spawn(&fake, &dir);
    let pid = child.id();

    // Route the bot's questions to the user waiting in that chat; count the calls.
    let waiting: Arc<Mutex<HashMap<i64, mpsc::UnboundedSender<Shown>>>> = Arc::default();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let routes = waiting.clone();
    let counting = Arc::new(AtomicBool::new(false));
    let (calls, polls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (count, c, p) = (counting.clone(), calls.clone(), polls.clone());
    tokio::spawn(async move {
        let mut polling = false;
        while let Some(t) = taps.recv().await {
            let counted = count.load(Ordering::Relaxed);
            if t.method == "getupdates" {
                if counted {
                    p.fetch_add(1, Ordering::Relaxed);
                }
                if !polling {
                    polling = true;
                    let _ = ready_tx.send(());
                }
                continue;
            }
            if counted {
                c.fetch_add(1, Ordering::Relaxed);
            }
            if t.method != "sendmessage" && t.method != "editmessagetext" {
                continue;
            }
            let Some(result) = t.result else { continue };
            let chat = result["chat"]["id"].as_i64().unwrap_or(0);
            let buttons: Vec<String> = t.body["reply_markup"]["inline_keyboard"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row.as_array().into_iter().flatten())
                .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
                .collect();
            if buttons.is_empty() {
                continue; // an earlier chunk of a long message, or an answered message's mark
            }
            let shown = (result["message_id"].as_i64().unwrap_or(0), buttons);
            if let Some(user) = routes.lock().unwrap().get(&chat) {
                let _ = user.send(shown);
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready.recv())
        .await
        .expect("the bot started polling");

    let paths = Arc::new(gmis().paths());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    counting.store(true, Ordering::Relaxed);
    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let own_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let (fake, waiting, paths) = (fake.clone(), waiting.clone(), paths.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut conversations = 0u64;
                let mut n = 0i64;
                let (tx, mut rx) = mpsc::unbounded_channel::<Shown>();
                while Instant::now() < deadline {
                    let chat = (u as i64 + 1) * 1_000_000 + n;
                    n += 1;
                    waiting.lock().unwrap().insert(chat, tx.clone());
                    let path = &paths[(u + n as usize) % paths.len()];
                    let t0 = Instant::now();
                    fake.user_message(chat, chat, "/start");
                    let Ok(Some(mut shown)) =
                        tokio::time::timeout(Duration::from_secs(30), rx.recv()).await
                    else {
                        panic!("no answer to /start in chat {chat}");
                    };
                    latencies.push(t0.elapsed());
                    for &choice in path {
                        let data = shown.1[usize::from(choice)].clone();
                        let t0 = Instant::now();
                        fake.press(chat, chat, shown.0, &data);
                        let Ok(Some(next)) =
                            tokio::time::timeout(Duration::from_secs(30), rx.recv()).await
                        else {
                            panic!("no answer to a press in chat {chat}");
                        };
                        latencies.push(t0.elapsed());
                        shown = next;
                    }
                    waiting.lock().unwrap().remove(&chat);
                    conversations += 1;
                }
                (conversations, latencies)
            })
        })
        .collect();
    let mut conversations = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (c, l) = task.await.unwrap();
        conversations += c;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    counting.store(false, Ordering::Relaxed);
    let own_cpu = cpu_seconds(std::process::id()).unwrap_or(0.0) - own_before;
    let peak_kib = proc_field(pid, "status", "VmHWM:")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();

    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Figures {
        bot,
        users,
        elapsed,
        conversations,
        steps: latencies.len(),
        p50: pct(0.50),
        p99: pct(0.99),
        cpu,
        calls: calls.load(Ordering::Relaxed),
        polls: polls.load(Ordering::Relaxed),
        peak_kib,
        own_cpu,
    }
}

/// `--live N`: flowbot alone, N conversations started (each `/start` on a new chat, answered)
/// and none finished; the bot's resident memory then, and at its peak.
async fn live(n: usize) {
    let fake = FakeTelegram::start(TOKEN).await;
    let mut taps = fake.tap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Bot::Flowbot.spawn(&fake, &dir);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polling = false;
    while !polling {
        let t = tokio::time::timeout_at(deadline.into(), taps.recv()).await;
        polling = matches!(t, Ok(Some(t)) if t.method == "getupdates");
    }
    let started = Instant::now();
    let mut answered = 0;
    for wave in (0..n).collect::<Vec<_>>().chunks(500) {
        for &i in wave {
            let chat = 50_000_000 + i as i64;
            fake.user_message(chat, chat, "/start");
        }
        let mut left = wave.len();
        while left > 0 {
            let Ok(Some(t)) = tokio::time::timeout_at(deadline.into(), taps.recv()).await else {
                panic!("only {answered} of {n} conversations started within 120 s");
            };
            if t.method == "sendmessage" {
                left -= 1;
                answered += 1;
            }
        }
    }
    let kib = |key| {
        proc_field(pid, "status", key)
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    println!(
        "flowbot with {n} conversations live (started in {:.1} s, none finished): RSS {:.1} MiB, peak RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        kib("VmRSS:") / 1024.0,
        kib("VmHWM:") / 1024.0,
    );
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--live", "0").parse().expect("--live N");
    if n > 0 {
        live(n).await;
        return;
    }
    let users: Vec<usize> = arg("--users", "50,500")
        .split(',')
        .map(|u| u.trim().parse().expect("--users N,M"))
        .collect();
    let seconds: u64 = arg("--seconds", "8").parse().expect("--seconds N");
    let rounds: usize = arg("--rounds", "1").parse().expect("--rounds N");
    let default_bots = if arg("--baseline", "").is_empty() {
        "flowbot,teloxide"
    } else {
        "baseline,flowbot,teloxide"
    };
    let bots: Vec<Bot> = arg("--bots", default_bots)
        .split(',')
        .map(|b| match b.trim() {
            "flowbot" => Bot::Flowbot,
            "teloxide" => Bot::Teloxide,
            "baseline" => Bot::Baseline,
            other => panic!("unknown bot {other}: flowbot, teloxide or baseline"),
        })
        .collect();
    let mut all = Vec::new();
    for &n in &users {
        for _ in 0..rounds {
            for &bot in &bots {
                let figures = run(bot, n, seconds).await;
                figures.print();
                all.push(figures);
            }
        }
    }
    // flowbot (and the baseline) as a ratio of the peer in the same round.
    println!();
    println!("against teloxide, same round:");
    for round in all.chunks(bots.len()) {
        let Some(t) = round.iter().find(|x| x.bot == Bot::Teloxide) else { continue };
        for f in round.iter().filter(|x| x.bot != Bot::Teloxide) {
            ratio(f, t);
        }
    }
}

fn ratio(f: &Figures, t: &Figures) {
    {
        println!(
            "{:<9} users {:>4}: conversations/s {:.2}x, p50 {:.2}x, p99 {:.2}x, CPU per conversation {:.2}x, CPU per call {:.2}x, peak RSS {:.2}x",
            f.bot.name(),
            f.users,
            f.per_second() / t.per_second(),
            f.p50.as_secs_f64() / t.p50.as_secs_f64(),
            f.p99.as_secs_f64() / t.p99.as_secs_f64(),
            f.cpu_per_conversation_ms() / t.cpu_per_conversation_ms(),
            f.cpu_per_call_us() / t.cpu_per_call_us(),
            f.peak_kib as f64 / t.peak_kib as f64,
        );
    }
}
