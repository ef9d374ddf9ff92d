//! Load test of the Telegram adapter: the real `flowbot run` against the fake Bot API.
//!
//! Starts the fake on 127.0.0.1 and `flowbot run` (the binary beside this one) with a fresh
//! SQLite file, then lets `--users` simulated users run whole G-MIS conversations by button
//! presses for `--seconds`: `/start`, then one press per question, each on a new chat. A step's
//! latency is from the update entering the fake's queue until the bot's next message arrives
//! there. Reported: conversations and steps per second, step latency p50/p99, and the bot
//! process's CPU time and peak memory (from /proc).
//!
//! ```sh
//! cargo build --release -p flowbot -p flowbot-tests --bins
//! target/release/telegram-load --users 500 --seconds 10
//! ```

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowbot_tests::fake_telegram::FakeTelegram;
use flowbot_tests::gmis;
use tokio::sync::mpsc;

const TOKEN: &str = "123456:load-test-token";

/// `(message_id, callback data of each choice button in order)` of the bot's latest message.
type Shown = (i64, Vec<String>);

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

#[tokio::main]
async fn main() {
    let users = arg("--users", 500) as usize;
    let seconds = arg("--seconds", 10);
    let flowbot = std::env::current_exe().unwrap().with_file_name("flowbot");
    assert!(flowbot.exists(), "build flowbot first: cargo build --release -p flowbot");

    let fake = Arc::new(FakeTelegram::start(TOKEN).await);
    let mut taps = fake.tap();
    let dir = tempfile::tempdir().unwrap();
    let mut bot = Command::new(&flowbot)
        .args(["run", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", dir.path().join("load.sqlite").display()))
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", fake.url())
        .env("RUST_LOG", std::env::var("FLOWBOT_LOAD_LOG").unwrap_or_else(|_| "warn".into()))
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start flowbot run");
    let pid = bot.id();

    // Route the bot's messages to the user waiting in that chat.
    let waiting: Arc<Mutex<HashMap<i64, mpsc::UnboundedSender<Shown>>>> = Arc::default();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let routes = waiting.clone();
    tokio::spawn(async move {
        let mut polling = false;
        while let Some(t) = taps.recv().await {
            if t.method == "getupdates" && !polling {
                polling = true;
                let _ = ready_tx.send(());
            }
            if t.method != "sendmessage" {
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
                continue; // an earlier chunk of a long message
            }
            let shown = (result["message_id"].as_i64().unwrap_or(0), buttons);
            if let Some(user) = routes.lock().unwrap().get(&chat) {
                let _ = user.send(shown);
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), ready.recv())
        .await
        .expect("flowbot started polling");

    let paths = Arc::new(gmis().paths());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
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
    let own = cpu_seconds(std::process::id()).unwrap_or(0.0) - own_before;
    let peak = proc_field(pid, "status", "VmHWM:").unwrap_or_else(|| "?".into());
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = bot.wait();

    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let steps = latencies.len();
    println!("users at once:        {users}");
    println!("run:                  {elapsed:.1} s");
    println!("conversations:        {conversations} ({:.0}/s)", conversations as f64 / elapsed);
    println!("steps:                {steps} ({:.0}/s)", steps as f64 / elapsed);
    println!("step latency:         p50 {:.1?}, p99 {:.1?}", pct(0.50), pct(0.99));
    println!(
        "bot CPU time:         {cpu:.1} s ({:.0} µs per step, {:.0}% of one core)",
        cpu * 1e6 / steps as f64,
        cpu * 100.0 / elapsed
    );
    println!("bot peak memory:      {peak}");
    println!(
        "load generator CPU:   {own:.1} s (the fake API and the simulated users, same machine)"
    );
}
