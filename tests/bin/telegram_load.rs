//! Load test of the Telegram adapter: the real `flowbot run` and a teloxide peer, one after the
//! other in one invocation, against the fake Bot API.
//!
//! For each number of `--users` (a list: `50,500`), each of `--rounds` rounds, and each of
//! `--bots` (`flowbot,teloxide`): a fresh fake on 127.0.0.1 and a fresh bot process, then the
//! simulated users, all active, run whole G-MIS conversations for `--seconds`: `/start`, then
//! one answer per question along a path of the tree, each conversation on a new chat. flowbot
//! runs `flowbot run` (the binary beside this one) on a fresh SQLite file; the peer is
//! `teloxide-peer` (beside it too), a minimal teloxide dialogue bot with in-memory state that
//! edits one message in place and takes answers by button only.
//!
//! The workload is the issue's mix. At each question, drawn per user from its own seeded
//! generator (the same runs for the same options): with `--old P` percent (default 20), if an
//! older question of the conversation was shown, the user first presses one of that older
//! message's choice buttons (on the peer, which edits in place, that is the same message with the
//! older question's callback data); then with `--typed P` percent (default 20) it types the
//! answer's number (`2`) instead of pressing its button. `--typed 0 --old 0` presses buttons
//! only. What counts:
//!
//! - An old press must not move the conversation. flowbot answers it with a toast (the button is
//!   an old question's) and nothing else. A bot that answers without a word reads the data as a
//!   choice of its current question: when it is one, the question it moves to follows and the
//!   conversation is *diverted*; the user, off its path, then presses the first choice of each
//!   question until the end. Such a conversation still counts as one, and as diverted; it is
//!   often shorter than its path (the old press skipped a question, first choices end sooner),
//!   so a bot that diverts gets more conversations per second for the same steps.
//! - A typed answer is *taken* when the next question follows it (flowbot matches the number to
//!   the question's choices). It is *not taken* when a message without buttons follows instead
//!   (the peer asks for the buttons), or the same question asked again (flowbot's answer to a
//!   text it cannot match; its buttons' data name the question): the user then presses the
//!   intended button.
//! - Anything else (no reaction within 30 s, a question still asked at the path's end) stops the
//!   run with a panic naming the chat.
//!
//! A step is an answer that moves the conversation (a press, or a typed answer taken) and
//! `/start`: its latency is from the update entering the fake's queue until the bot's next
//! question (a message or an edit with buttons) arrives there. Old presses (and the question a
//! diverting one brings) and typed answers not taken are not steps; they are counted apart. Reported per run: conversations and steps
//! per second, step latency p50/p99, the bot's CPU time per conversation and per Bot API call
//! (from /proc; `getUpdates` counted apart), its peak memory (VmHWM), the typed answers (and how
//! many were not taken) and the old presses (and the conversations diverted, with their share);
//! then each flowbot figure as a ratio of the peer's in the same round, with both diverted
//! shares.
//!
//! `--baseline PATH` adds another `flowbot` build to each round (before and after a change).
//! `--bots …,marked` adds the peer run with `--marked`: in memory still, but a press makes
//! flowbot's calls (answered, the pressed message marked, the next question a new message, all
//! three at once), so that what that behaviour costs is told apart from what flowbot's
//! durability costs; flowbot is then also given as a ratio of it. Each run also reports the
//! machine's CPU per conversation: the bot's and the load generator's (the fake answering its
//! calls), which share the two cores.
//! `--live N` measures flowbot's memory with N conversations started and none finished.
//!
//! ```sh
//! cargo build --release -p flowbot -p flowbot-tests --bins
//! target/release/telegram-load --users 50,500 --seconds 8 --rounds 2
//! target/release/telegram-load --users 50,500 --seconds 8 --typed 0 --old 0   # buttons only
//! target/release/telegram-load --users 500 --seconds 8 --rounds 3 --typed 0 --old 0 \
//!     --bots flowbot,teloxide,marked
//! ```
//!
//! Options: `--users N,M` (50,500), `--seconds S` (8), `--rounds R` (1), `--bots LIST`
//! (`flowbot,teloxide`; also `marked`, `baseline`), `--typed P` (20), `--old P` (20),
//! `--baseline PATH`, `--live N`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use flowbot_tests::fake_telegram::{FakeTelegram, Tapped};
use flowbot_tests::gmis;
use tokio::sync::mpsc;

// The fake and the simulated users share the machine with the bot under test: the less CPU
// they spend per call, the more is left for the bot (glibc's malloc and free were a third of
// their profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "123456:load-test-token";

/// How long a user waits for the bot's reaction to what it did.
const REACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most messages a user lets pass while it waits for one reaction.
const MAX_EVENTS_PER_WAIT: usize = 64;
/// The most presses a diverted conversation gets to reach an end.
const MAX_PRESSES_TO_FINISH: usize = 64;

/// `(message_id, callback data of each button in order)` of the bot's latest question: its
/// choices first, then navigation (flowbot: back and restart; the peer: restart).
type Shown = (i64, Vec<String>);

/// Whether a button's callback data is a choice of its question: the data ends in the choice's
/// index, `2` on the peer's keyboards and `REV:NODE:2` on flowbot's (flowbot's back `…:b` and
/// restart `…:r`, and the peer's `restart`, do not). A screen without one is a conversation's end.
fn is_choice(data: &str) -> bool {
    let index = data.rsplit(':').next().unwrap_or(data);
    !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
}

/// What the tap task routes to the user of a chat.
#[derive(Debug)]
enum Event {
    /// A message or an edit with buttons: the bot's next question, or a conversation's end.
    Question(Shown),
    /// A new message without buttons: an answer to a typed text, or an earlier chunk of a long
    /// message (its buttons go on the last).
    Plain,
    /// The bot's answer to a callback query the user registered (see [`User::press_for_answer`]);
    /// `toast` if it shows the user a text.
    Answered { query_id: String, toast: bool },
}

/// Whom the tap task tells: the user of each chat, and the chat of each callback query whose
/// answer a user waits for.
#[derive(Debug, Default)]
struct Routes {
    chats: HashMap<i64, mpsc::UnboundedSender<Event>>,
    queries: HashMap<String, i64>,
}

fn lock(routes: &Mutex<Routes>) -> MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The event a call the bot made means to the user of its chat, and that chat; `None` for what
/// no user waits for (an answered message's edit without buttons, an unregistered query's answer).
fn event_of(tapped: &Tapped, routes: &mut Routes) -> Option<(i64, Event)> {
    match tapped.method.as_str() {
        "sendmessage" | "editmessagetext" => {
            let result = tapped.result.as_ref()?;
            let chat = result["chat"]["id"].as_i64().unwrap_or(0);
            let buttons: Vec<String> = tapped.body["reply_markup"]["inline_keyboard"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row.as_array().into_iter().flatten())
                .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
                .collect();
            if !buttons.is_empty() {
                Some((chat, Event::Question((result["message_id"].as_i64().unwrap_or(0), buttons))))
            } else if tapped.method == "sendmessage" {
                Some((chat, Event::Plain))
            } else {
                None // an answered message's mark
            }
        }
        "answercallbackquery" => {
            let query_id = tapped.body["callback_query_id"].as_str()?;
            let chat = routes.queries.remove(query_id)?;
            let toast = tapped.body["text"].as_str().is_some_and(|t| !t.is_empty());
            Some((chat, Event::Answered { query_id: query_id.to_owned(), toast }))
        }
        _ => None,
    }
}

/// The share of a conversation's steps, in percent, at which a user types the answer, and at
/// which it first presses an older question's button.
#[derive(Debug, Clone, Copy)]
struct Workload {
    typed: u64,
    old: u64,
}

/// What users did besides pressing the intended button, and what became of it.
#[derive(Debug, Clone, Copy, Default)]
struct Mixed {
    /// Answers typed as the choice's number, and those the bot did not take as the answer.
    typed: u64,
    typed_not_taken: u64,
    /// Presses on an older question's button, and the conversations one of them moved.
    old_presses: u64,
    diverted: u64,
}

impl Mixed {
    fn add(&mut self, other: Mixed) {
        self.typed += other.typed;
        self.typed_not_taken += other.typed_not_taken;
        self.old_presses += other.old_presses;
        self.diverted += other.diverted;
    }
}

/// A user's own draws: SplitMix64 seeded with its index, so that a run is repeatable.
#[derive(Debug)]
struct Draws(u64);

impl Draws {
    fn new(user: usize) -> Self {
        Draws(0x6a09_e667_f3bc_c908 ^ user as u64)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` %.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// One of `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

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
    /// The peer with `--marked`: flowbot's calls for a press (answer, mark the pressed message,
    /// ask the next question anew), in memory.
    Marked,
    /// The `flowbot` binary given by `--baseline` (another build, for before and after).
    Baseline,
}

impl Bot {
    fn name(self) -> &'static str {
        match self {
            Bot::Flowbot => "flowbot",
            Bot::Teloxide => "teloxide",
            Bot::Marked => "marked",
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
            Bot::Teloxide | Bot::Marked => {
                let mut c = Command::new(beside("teloxide-peer"));
                if self == Bot::Marked {
                    c.arg("--marked");
                }
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
    mixed: Mixed,
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
    /// The CPU the whole machine spent on a conversation: the bot's and the load generator's
    /// (the fake Bot API answering the bot's calls, and the users), in ms. With both sharing
    /// the machine's cores, conversations/s follows it.
    fn machine_cpu_per_conversation_ms(&self) -> f64 {
        (self.cpu + self.own_cpu) * 1e3 / self.conversations as f64
    }
    fn diverted_percent(&self) -> f64 {
        self.mixed.diverted as f64 * 100.0 / self.conversations as f64
    }
    fn print(&self) {
        println!(
            "{:<9} users {:>4}: {:>6.0} conv/s ({} in {:.1} s), {:>6.0} steps/s, step p50 {:>6.1?} p99 {:>6.1?}, \
             bot CPU {:.3} ms/conv, {:.0} µs/call ({:.2} calls/step + {} getUpdates), {:.0}% of a core, peak RSS {:.1} MiB, load generator CPU {:.1} s ({:.3} ms/conv with the bot's), \
             typed {} (not taken {}), old presses {} (diverted {} conversations, {:.1} %)",
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
            self.machine_cpu_per_conversation_ms(),
            self.mixed.typed,
            self.mixed.typed_not_taken,
            self.mixed.old_presses,
            self.mixed.diverted,
            self.diverted_percent(),
        );
    }
}

/// One simulated user: one conversation at a time, each on a new chat.
#[derive(Debug)]
struct User {
    fake: Arc<FakeTelegram>,
    routes: Arc<Mutex<Routes>>,
    /// What the tap task routes to this user's current chat, and the sending end it is given.
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    chat: i64,
    /// Every step's latency.
    latencies: Vec<Duration>,
    mixed: Mixed,
}

impl User {
    fn new(fake: Arc<FakeTelegram>, routes: Arc<Mutex<Routes>>) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        User {
            fake,
            routes,
            events,
            sender,
            chat: 0,
            latencies: Vec::new(),
            mixed: Mixed::default(),
        }
    }

    /// One whole conversation on `chat` along `path` (a choice index per question), answering
    /// as `workload` draws.
    async fn converse(&mut self, chat: i64, path: &[u8], workload: Workload, draws: &mut Draws) {
        self.chat = chat;
        lock(&self.routes).chats.insert(chat, self.sender.clone());
        let sent = Instant::now();
        self.fake.user_message(chat, chat, "/start");
        let mut shown = self.step(sent, "/start").await;
        // The questions shown before the current one.
        let mut older: Vec<Shown> = Vec::new();
        let mut diverted = None;
        for &choice in path {
            let choice = usize::from(choice);
            if draws.percent(workload.old) && !older.is_empty() {
                let (message_id, buttons) = &older[draws.below(older.len())];
                let choices: Vec<&String> = buttons.iter().filter(|d| is_choice(d)).collect();
                if !choices.is_empty() {
                    let data = choices[draws.below(choices.len())].clone();
                    let moved = self.old_press(&shown, *message_id, &data).await;
                    if moved.is_some() {
                        diverted = moved;
                        break;
                    }
                }
            }
            let next = if draws.percent(workload.typed) {
                self.type_answer(&shown, choice).await
            } else {
                let data = choice_data(&shown, choice, chat);
                let sent = Instant::now();
                self.fake.press(chat, chat, shown.0, data);
                self.step(sent, "a press").await
            };
            older.push(std::mem::replace(&mut shown, next));
        }
        if let Some(question) = diverted {
            self.mixed.diverted += 1;
            shown = self.finish_diverted(question).await;
        }
        assert!(
            !shown.1.iter().any(|d| is_choice(d)),
            "chat {chat}: the conversation's path is done, but the bot still asks a question"
        );
        lock(&self.routes).chats.remove(&chat);
    }

    /// Waits for the first event `take` accepts (`Some`), letting others pass; panics, naming
    /// the chat and `what` it waits for an answer to, after 30 s or too many other messages.
    async fn wait<T>(&mut self, what: &str, mut take: impl FnMut(Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + REACTION_TIMEOUT;
        for _ in 0..MAX_EVENTS_PER_WAIT {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(taken) = take(event) {
                        return taken;
                    }
                }
                Ok(None) => unreachable!("the user holds a sender of its own events"),
                Err(_) => panic!("no answer to {what} in chat {} within 30 s", self.chat),
            }
        }
        panic!("no answer to {what} in chat {} among {MAX_EVENTS_PER_WAIT} messages", self.chat);
    }

    /// The bot's next question, letting pass what is not one.
    async fn question(&mut self, what: &str) -> Shown {
        self.wait(what, |event| match event {
            Event::Question(shown) => Some(shown),
            Event::Plain | Event::Answered { .. } => None,
        })
        .await
    }

    /// The bot's next question as a step, its latency counted from `sent`.
    async fn step(&mut self, sent: Instant, what: &str) -> Shown {
        let next = self.question(what).await;
        self.latencies.push(sent.elapsed());
        next
    }

    /// Presses `data` on message `message_id` and has the bot's answer to that callback query
    /// routed to this user. The query is registered under the routes' lock, which the tap task
    /// takes to route the answer: it cannot see the answer before it knows whose it is.
    fn press_for_answer(&self, message_id: i64, data: &str) -> String {
        let mut routes = lock(&self.routes);
        let (_, query_id) = self.fake.press(self.chat, self.chat, message_id, data);
        routes.queries.insert(query_id.clone(), self.chat);
        query_id
    }

    /// Presses `data` of an older question's message `message_id` while `current` waits.
    /// Returns the question the bot then showed if it took the press as an answer (the
    /// conversation is diverted), `None` if it refused or ignored it.
    ///
    /// A bot that refuses an old press says so in its answer's toast (flowbot). A bot that
    /// answers without a word reads the data against its current question (the peer): if the
    /// data is a choice there, the question it moves to follows the answer; if not, nothing does.
    async fn old_press(&mut self, current: &Shown, message_id: i64, data: &str) -> Option<Shown> {
        self.mixed.old_presses += 1;
        let query = self.press_for_answer(message_id, data);
        let mut moved = None;
        let toast = self
            .wait("an old press", |event| match event {
                Event::Answered { query_id, toast } if query_id == query => Some(toast),
                Event::Question(shown) => {
                    moved = Some(shown); // moved before answering
                    None
                }
                Event::Plain | Event::Answered { .. } => None,
            })
            .await;
        if moved.is_none() && !toast && current.1.iter().any(|d| d == data) {
            let what = "an old press answered without a word, its data a choice of the question";
            moved = Some(self.question(what).await);
        }
        moved
    }

    /// Types choice `choice` of `current` as its number. Returns the next question: the typed
    /// answer's if the bot took it; else that of the intended button, pressed then on what the
    /// bot showed instead (a message without buttons asking for them, or the same question
    /// asked again).
    async fn type_answer(&mut self, current: &Shown, choice: usize) -> Shown {
        self.mixed.typed += 1;
        let sent = Instant::now();
        self.fake.user_message(self.chat, self.chat, &(choice + 1).to_string());
        let reaction = self
            .wait("a typed answer", |event| match event {
                Event::Question(shown) => Some(Some(shown)),
                Event::Plain => Some(None),
                Event::Answered { .. } => None,
            })
            .await;
        let asked_again = match reaction {
            Some(next) if !same_question(current, &next) => {
                self.latencies.push(sent.elapsed());
                return next;
            }
            Some(again) => again,
            None => return self.press_after_plain_reply(current, choice, sent).await,
        };
        self.mixed.typed_not_taken += 1;
        let pressed = Instant::now();
        let data = choice_data(&asked_again, choice, self.chat);
        self.fake.press(self.chat, self.chat, asked_again.0, data);
        self.step(pressed, "a press on a question asked again").await
    }

    /// After a typed answer (sent at `sent`) got a message without buttons: presses the intended
    /// button of `current` and returns the question that follows. The press's answer tells
    /// whether the typed answer was taken: refused with a toast (an old button's), it was, the
    /// message was the first chunk of a long reply and the question is the typed answer's.
    async fn press_after_plain_reply(
        &mut self,
        current: &Shown,
        choice: usize,
        sent: Instant,
    ) -> Shown {
        let pressed = Instant::now();
        let query = self.press_for_answer(current.0, choice_data(current, choice, self.chat));
        let (mut question, mut answered) = (None, None);
        let (next, at, refused) = self
            .wait("a press after a typed answer not taken", |event| {
                match event {
                    Event::Question(shown) => question = Some((shown, Instant::now())),
                    Event::Answered { query_id, toast } if query_id == query => {
                        answered = Some(toast);
                    }
                    Event::Plain | Event::Answered { .. } => {}
                }
                let refused = answered?;
                question.take().map(|(shown, at)| (shown, at, refused))
            })
            .await;
        if refused {
            self.latencies.push(at.duration_since(sent));
        } else {
            self.mixed.typed_not_taken += 1;
            self.latencies.push(at.duration_since(pressed));
        }
        next
    }

    /// Ends a diverted conversation, from `shown` on, by pressing the first choice of each
    /// question until a screen has none.
    async fn finish_diverted(&mut self, mut shown: Shown) -> Shown {
        for _ in 0..MAX_PRESSES_TO_FINISH {
            let Some(first) = shown.1.iter().find(|d| is_choice(d)) else { return shown };
            let sent = Instant::now();
            self.fake.press(self.chat, self.chat, shown.0, first);
            shown = self.step(sent, "a press").await;
        }
        panic!(
            "chat {}: a diverted conversation still asks after {MAX_PRESSES_TO_FINISH} presses of \
             its questions' first choice",
            self.chat
        );
    }
}

/// Whether `next` asks the question `current` asked, where the buttons' data name it: flowbot's
/// tokens are `REV:NODE:ACTION` (a question asked again has a new revision, the same node); the
/// peer's data (`0`, `restart`) do not name it, and it never asks a question again.
fn same_question(current: &Shown, next: &Shown) -> bool {
    fn node(shown: &Shown) -> Option<&str> {
        let (_revision, rest) = shown.1.first()?.split_once(':')?;
        Some(rest.rsplit_once(':')?.0)
    }
    node(current).is_some() && node(current) == node(next)
}

/// The callback data of choice `choice` of a question.
fn choice_data(shown: &Shown, choice: usize, chat: i64) -> &str {
    shown.1.get(choice).unwrap_or_else(|| {
        panic!("chat {chat}: the question shows {} buttons, no choice {choice}", shown.1.len())
    })
}

async fn run(bot: Bot, users: usize, seconds: u64, workload: Workload) -> Figures {
    let fake = Arc::new(FakeTelegram::start(TOKEN).await);
    fake.stop_log();
    let mut taps = fake.tap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = bot.spawn(&fake, &dir);
    let pid = child.id();

    // Route what the bot shows, and its answers to registered presses, to the user waiting in
    // that chat; count the calls.
    let routes: Arc<Mutex<Routes>> = Arc::default();
    let (ready_tx, mut ready) = mpsc::unbounded_channel::<()>();
    let counting = Arc::new(AtomicBool::new(false));
    let (calls, polls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (count, c, p, r) = (counting.clone(), calls.clone(), polls.clone(), routes.clone());
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
            let mut routes = lock(&r);
            if let Some((chat, event)) = event_of(&t, &mut routes)
                && let Some(user) = routes.chats.get(&chat)
            {
                let _ = user.send(event);
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
            let (fake, routes, paths) = (fake.clone(), routes.clone(), paths.clone());
            tokio::spawn(async move {
                let mut user = User::new(fake, routes);
                let mut draws = Draws::new(u);
                let mut conversations = 0u64;
                let mut n = 0i64;
                while Instant::now() < deadline {
                    let chat = (u as i64 + 1) * 1_000_000 + n;
                    n += 1;
                    let path = &paths[(u + n as usize) % paths.len()];
                    user.converse(chat, path, workload, &mut draws).await;
                    conversations += 1;
                }
                (conversations, user.latencies, user.mixed)
            })
        })
        .collect();
    let mut conversations = 0;
    let mut latencies = Vec::new();
    let mut mixed = Mixed::default();
    for task in tasks {
        let (c, l, m) = task.await.unwrap();
        conversations += c;
        latencies.extend(l);
        mixed.add(m);
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
        mixed,
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
    let percent = |name: &str| -> u64 {
        arg(name, "20")
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .unwrap_or_else(|| panic!("{name} P: a whole percent of the steps, 0 to 100"))
    };
    let workload = Workload { typed: percent("--typed"), old: percent("--old") };
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
            "marked" => Bot::Marked,
            "baseline" => Bot::Baseline,
            other => panic!("unknown bot {other}: flowbot, teloxide, marked or baseline"),
        })
        .collect();
    println!(
        "workload: {} % of the answers typed, {} % preceded by a press on an older question's button",
        workload.typed, workload.old
    );
    let mut all = Vec::new();
    for &n in &users {
        for _ in 0..rounds {
            for &bot in &bots {
                let figures = run(bot, n, seconds, workload).await;
                figures.print();
                all.push(figures);
            }
        }
    }
    // Every other bot as a ratio of the peer in the same round, and flowbot (and the baseline)
    // of the marked peer when it ran.
    for (peer, others) in [
        (Bot::Teloxide, &[Bot::Flowbot, Bot::Baseline, Bot::Marked][..]),
        (Bot::Marked, &[Bot::Flowbot, Bot::Baseline][..]),
    ] {
        if !bots.contains(&peer) || !bots.iter().any(|b| others.contains(b)) {
            continue;
        }
        println!();
        println!("against {}, same round:", peer.name());
        for round in all.chunks(bots.len()) {
            let Some(t) = round.iter().find(|x| x.bot == peer) else { continue };
            for f in round.iter().filter(|x| others.contains(&x.bot)) {
                ratio(f, t);
            }
        }
    }
}

fn ratio(f: &Figures, t: &Figures) {
    {
        println!(
            "{:<9} users {:>4}: conversations/s {:.2}x, p50 {:.2}x, p99 {:.2}x, CPU per conversation {:.2}x, CPU per call {:.2}x, \
             machine CPU per conversation {:.2}x, peak RSS {:.2}x, diverted {:.1} % ({} {:.1} %)",
            f.bot.name(),
            f.users,
            f.per_second() / t.per_second(),
            f.p50.as_secs_f64() / t.p50.as_secs_f64(),
            f.p99.as_secs_f64() / t.p99.as_secs_f64(),
            f.cpu_per_conversation_ms() / t.cpu_per_conversation_ms(),
            f.cpu_per_call_us() / t.cpu_per_call_us(),
            f.machine_cpu_per_conversation_ms() / t.machine_cpu_per_conversation_ms(),
            f.peak_kib as f64 / t.peak_kib as f64,
            f.diverted_percent(),
            t.bot.name(),
            t.diverted_percent(),
        );
    }
}
