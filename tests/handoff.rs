//! Hand-off: the address-change request delivered to the help desk through the outbox.
//!
//! A fake help-desk webhook on 127.0.0.1 records every request and answers as told (a number of
//! failures first, or down until switched up); the real `flowbot` runs as `chat --user`,
//! `pipe` and `run` (Telegram against the fake Bot API) on SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use flowbot_core::{DeliveryCounts, OutboxStore};
use flowbot_tests::fake_telegram::FakeTelegram;
use flowbot_tests::{BotProcess, TestDb, flowbot};
use serde_json::{Value, json};

use crate::telegram::{SECRET_PART, TOKEN, chat_of, press, say};

/// The webhook's signing secret: it must never be printed or logged.
const HOOK_SECRET: &str = "hook-secret-7f3a9c2e-never-log";
/// The help desk's Telegram chat.
const DESK_CHAT: i64 = -100_777;
/// The bound on every wait for something that should happen within a second or two.
const WAIT: Duration = Duration::from_secs(30);
/// The intro of the user's message when the request went to the desk.
const SENT: &str = "都道府県窓口に、次の内容でメールアドレスの変更依頼を送りました。";
const M3_ABSENT: &str = "対応方法3（担当者が退職等で不在のため、メールが確認できない場合）";
const M3_CHANGE: &str = "対応方法3（メールが「送信完了」となっている場合）";

// ---- The fake help-desk webhook --------------------------------------------------------------

/// One request the webhook received, and the status it answered.
#[derive(Debug, Clone)]
struct Hit {
    /// Lower-cased header names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    status: u16,
    at: Instant,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn reference(&self) -> &str {
        self.header("x-flowbot-reference")
    }

    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }
}

#[derive(Debug, Default)]
struct HookState {
    hits: Mutex<Vec<Hit>>,
    /// Answer 500 to this many more requests.
    failures_left: AtomicUsize,
    /// Answer 503 to everything.
    down: AtomicBool,
}

/// A help-desk webhook on 127.0.0.1; stops when dropped.
#[derive(Debug)]
struct Webhook {
    state: Arc<HookState>,
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Webhook {
    /// Serves `POST /hook`: 500 to the first `fail_first` requests, then 200.
    async fn start(fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(HookState {
            failures_left: AtomicUsize::new(fail_first),
            ..HookState::default()
        });
        let app = Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&state));
        let tx = flowbot_tests::serve(listener, app);
        Webhook { state, addr, _stop: tx }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// While down, every request gets 503.
    fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits (at most `timeout`) until `done` holds for the requests so far, and returns them.
    async fn wait(&self, what: &str, timeout: Duration, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "webhook: {what} did not happen in {timeout:?}; got {:?}",
                hits.iter().map(|h| (h.reference(), h.status)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<HookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let status = if state.down.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else if state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let hit = Hit { headers, body: body.to_vec(), status: status.as_u16(), at: Instant::now() };
    state.hits.lock().unwrap_or_else(PoisonError::into_inner).push(hit);
    status
}

/// The successful deliveries of `reference`.
fn delivered(hits: &[Hit], reference: &str) -> usize {
    hits.iter().filter(|h| h.ok() && h.reference() == reference).count()
}

/// The failed attempts for `reference`.
fn failed(hits: &[Hit], reference: &str) -> usize {
    hits.iter().filter(|h| !h.ok() && h.reference() == reference).count()
}

/// `sha256=HEX`: HMAC-SHA256 of `TIMESTAMP.BODY` under `secret`, computed here (not by the
/// product's code).
fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

// ---- Configuration, references, the store ---------------------------------------------------

/// Writes a deployment's settings to `dir/flowbot.toml`: the desk, a webhook and/or a Telegram
/// chat as destinations, and the retry timing (first, max) in seconds; leases of 2 s.
fn write_config(
    dir: &Path,
    hook: Option<&str>,
    desk_chat: Option<i64>,
    retry: (f64, f64),
) -> PathBuf {
    let mut toml = format!(
        "[prefecture]\nname = \"福島県\"\n[desk]\nname = \"地域医療課\"\n\
         [retention]\npersonal_data_days = 90\n\
         [handoff]\nretry_first_seconds = {:?}\nretry_max_seconds = {:?}\n\
         lease_seconds = 2\n",
        retry.0, retry.1
    );
    if let Some(url) = hook {
        toml += &format!(
            "[[handoff.destinations]]\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{HOOK_SECRET}\"\n"
        );
    }
    if let Some(chat) = desk_chat {
        toml += &format!("[[handoff.destinations]]\nkind = \"telegram\"\nchat_id = {chat}\n");
    }
    let path = dir.join("flowbot.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Whether `r` is a reference: 5 + 5 characters of Crockford's base32, joined by `-`.
fn is_reference(r: &str) -> bool {
    const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    r.len() == 11
        && r.char_indices().all(|(i, c)| if i == 5 { c == '-' } else { CROCKFORD.contains(c) })
}

/// The reference after 「受付番号：」 in `text`.
pub(crate) fn reference_in(text: &str) -> String {
    let after = text.split("受付番号：").nth(1).unwrap_or_else(|| panic!("no 受付番号 in {text}"));
    let reference: String =
        after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    assert!(is_reference(&reference), "not a reference: {reference:?} in {text}");
    reference
}

/// The hand-off part of the store's delivery counts: requests kept, deliveries pending and
/// done.
type Counts = (u64, u64, u64);

fn counts(requests: u64, pending: u64, delivered: u64) -> Counts {
    (requests, pending, delivered)
}

pub(crate) fn handoff_counts(d: DeliveryCounts) -> Counts {
    (d.requests, d.pending, d.delivered)
}

/// Waits (at most `timeout`) until the store's delivery counts are `want`.
async fn wait_counts(db: &TestDb, want: Counts, timeout: Duration) {
    let store = db.store().await;
    let deadline = Instant::now() + timeout;
    loop {
        let now = handoff_counts(store.delivery_counts().await.expect("delivery counts"));
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "delivery counts {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

// ---- flowbot as a child process with its output collected -------------------------------------

/// A `flowbot` child with standard input kept open, its output read as it comes; killed on drop.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flowbot");
        let collect = |mut from: Box<dyn Read + Send>| {
            let sink = Arc::new(Mutex::new(Vec::new()));
            let to = Arc::clone(&sink);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    to.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(&buf[..n]);
                }
            });
            sink
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Proc { stdin: child.stdin.take(), child, stdout, stderr }
    }

    fn write_lines(&mut self, lines: &[String]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        for line in lines {
            stdin.write_all(line.as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        stdin.flush().unwrap();
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Waits (at most `timeout`) until standard output contains `needle`; returns it all.
    async fn wait_stdout(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "flowbot exited ({status}) before printing {needle:?}:\n{out}\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {timeout:?}:\n{out}\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Closes standard input and waits (at most `timeout`) for the exit.
    async fn finish(&mut self, timeout: Duration) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers drain the pipes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "flowbot did not exit in {timeout:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILL, and the exit reaped.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `flowbot --config CONFIG chat --user USER --database-url URL [--entry ENTRY]`.
fn chat_process(config: &Path, url: &str, user: &str, entry: Option<&str>) -> Proc {
    let mut cmd = flowbot();
    cmd.arg("--config").arg(config).args(["chat", "--user", user, "--database-url", url]);
    if let Some(entry) = entry {
        cmd.args(["--entry", entry]);
    }
    Proc::spawn(cmd)
}

/// `flowbot run` on Telegram (the fake) with `--config CONFIG`, logging at `log`.
fn telegram_bot(fake: &FakeTelegram, url: &str, config: &Path, log: &str) -> BotProcess {
    let config = config.to_str().unwrap();
    BotProcess::start_url(
        url,
        &["--config", config],
        &[("TELEGRAM_BOT_TOKEN", TOKEN), ("TELEGRAM_API_URL", &fake.url()), ("RUST_LOG", log)],
        SECRET_PART,
    )
}

/// A Telegram user in private `chat` goes from 対応方法3 through the form with `answers` (typed,
/// or pressed when it is 「分からない」) and presses 確定する. Returns the last message and the
/// reference shown.
pub(crate) async fn telegram_request(
    fake: &FakeTelegram,
    chat: i64,
    answers: &[&str],
) -> (String, String) {
    let m3 = say(fake, chat, chat, "/start taiou3").await;
    let change = press(fake, chat, chat, &m3, "「送信完了」だった").await;
    let mut ask = press(fake, chat, chat, &change, "変更依頼を入力する").await;
    for answer in answers {
        ask = if *answer == "分からない" {
            press(fake, chat, chat, &ask, answer).await
        } else {
            say(fake, chat, chat, answer).await
        };
    }
    assert!(ask.text.contains("以下の内容でよろしいですか？"), "{ask:?}");
    let done = press(fake, chat, chat, &ask, "確定する").await;
    let reference = reference_in(&done.text);
    (done.text, reference)
}

// ---- 1. Retried until the webhook takes it; signed; the payload ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_chat_is_retried_until_the_webhook_takes_it() {
    let hook = Webhook::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), Some(&hook.url()), None, (0.2, 1.0));
    let db = TestDb::sqlite();
    let user = "user-4711-private";
    let started_ms = u128::from(unix_now()) * 1000;
    let mut chat = chat_process(&config, &db.url(), user, Some("taiou3"));
    let lines = [
        "「送信完了」だった",
        "変更依頼を入力する",
        "　福島　中央病院　",
        "分からない",
        "ｏｌｄ．ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｊｐ",
        "new-user@hospital.example.jp",
        "確定する",
    ];
    chat.write_lines(&lines.map(str::to_owned));
    // The process stays up (its input is open) while its outbox retries: two 500s, then 200.
    chat.wait_stdout("回答の経過：", WAIT).await;
    let hits = hook.wait("a delivery", WAIT, |h| h.iter().any(Hit::ok)).await;
    let status = chat.finish(WAIT).await;
    assert!(status.success(), "{status}: {}", chat.stderr());
    let out = chat.stdout();

    // What the user was told.
    assert!(out.contains(SENT), "{out}");
    assert!(!out.contains("次の内容をコピーして"), "{out}");
    let reference = reference_in(&out);
    for line in [
        "【メールアドレスの変更依頼】",
        "報告機関名：福島 中央病院",
        "機関コード：分からない",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
    ] {
        assert!(out.contains(line), "no {line} in {out}");
    }

    // Exactly three attempts (the process has exited: there will be no more), one delivery.
    let statuses: Vec<u16> = hits.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [500, 500, 200], "{hits:?}");
    assert_eq!(hook.hits().len(), 3);
    // The waits double: at least retry_first, then twice that.
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(195), "{:?}", hits[1].at - hits[0].at);
    assert!(hits[2].at - hits[1].at >= Duration::from_millis(395), "{:?}", hits[2].at - hits[1].at);
    for hit in &hits {
        assert_eq!(hit.reference(), reference);
        assert_eq!(hit.body, hits[0].body, "every attempt sends the stored payload");
        assert!(hit.header("content-type").starts_with("application/json"), "{hit:?}");
        let timestamp = hit.header("x-flowbot-timestamp");
        let seconds: u64 = timestamp.parse().unwrap_or_else(|_| panic!("timestamp {timestamp:?}"));
        assert!(seconds.abs_diff(unix_now()) < 600, "timestamp {seconds} is not now");
        assert_eq!(hit.header("x-flowbot-signature"), signature(HOOK_SECRET, timestamp, &hit.body));
        assert_ne!(
            hit.header("x-flowbot-signature"),
            signature("another-secret-0123", timestamp, &hit.body)
        );
    }

    // The payload.
    let body = hits[2].json();
    assert_eq!(body["type"], "flowbot.handoff");
    assert_eq!(body["reference"], reference.as_str());
    let submitted = body["submitted_at"].as_u64().expect("submitted_at") as u128;
    assert!(
        submitted >= started_ms && submitted <= u128::from(unix_now() + 1) * 1000,
        "{submitted}"
    );
    assert_eq!(body["platform"], "cli");
    assert_eq!(body["flow"]["id"], "gmis-mail-trouble");
    assert!(body["flow"]["version"].as_str().is_some_and(|v| !v.is_empty()), "{body}");
    assert_eq!(body["form"], json!({"id": "address_change", "title": "メールアドレスの変更依頼"}));
    assert_eq!(
        body["answers"],
        json!([
            {"field": "institution", "label": "報告機関名", "value": "福島 中央病院", "unknown": false},
            {"field": "code", "label": "機関コード", "value": null, "unknown": true},
            {"field": "old_mail", "label": "変更前メールアドレス", "value": "old.user@example.jp", "unknown": false},
            {"field": "new_mail", "label": "変更後メールアドレス", "value": "new-user@hospital.example.jp", "unknown": false},
        ])
    );
    assert_eq!(body["ending"], json!({"id": "m3_change_sent", "title": M3_CHANGE}));
    assert_eq!(
        body["path"],
        json!([
            {"question": M3_ABSENT, "answer": "「送信完了」だった"},
            {"question": M3_CHANGE, "answer": "変更依頼を入力する"},
        ])
    );
    let text = body["text"].as_str().expect("text");
    assert!(text.starts_with("【メールアドレスの変更依頼】\n"), "{text}");
    assert!(text.contains(&format!("受付番号：{reference}\n")), "{text}");
    assert!(text.contains(&format!("該当した対応方法：{M3_CHANGE}")), "{text}");
    assert!(text.contains(&format!("・{M3_ABSENT}：「送信完了」だった")), "{text}");
    assert!(
        out.contains(text.trim_end()),
        "the user saw the text the desk got:\n{out}\n---\n{text}"
    );
    let raw = String::from_utf8_lossy(&hits[2].body);
    assert!(!raw.contains(user), "no user id in the payload: {raw}");
    assert!(!raw.contains('＠') && !raw.contains('ｏ'), "normalised: {raw}");

    wait_counts(&db, counts(1, 0, 1), WAIT).await;
}

// ---- 2. Stopped with deliveries pending: none lost, each delivered once ---------------------

/// `flowbot pipe` lines for one user filling in the form from 対応方法3.
fn pipe_lines(chat: &str, answers: &[&str]) -> Vec<String> {
    let line = |v: Value| v.to_string();
    let mut lines = vec![line(json!({"chat": chat, "user": chat, "start": "taiou3"}))];
    for text in
        ["「送信完了」だった", "変更依頼を入力する"].iter().chain(answers).chain(&["確定する"])
    {
        lines.push(line(json!({"chat": chat, "user": chat, "text": text})));
    }
    lines
}

/// Requests submitted while the desk's webhook is down stay pending across a stop, and a new
/// process delivers each exactly once.
///
/// `flowbot run` is stopped with SIGTERM (it finishes its round, so no delivery stays claimed)
/// and `flowbot pipe`, which has no outbox, with SIGKILL right after it acknowledged. A SIGKILL
/// in the middle of an attempt would leave that delivery leased for the outbox's fixed 120 s,
/// too long for this suite.
async fn stopped_with_deliveries_pending_loses_none(db: &TestDb) {
    let hook = Webhook::start(0).await;
    hook.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), Some(&hook.url()), None, (0.2, 1.0));
    let url = db.url();
    let fake = FakeTelegram::start(TOKEN).await;

    // While the desk is down: two Telegram users through `flowbot run`, and one through
    // `flowbot pipe` (which stores requests but does not deliver them).
    let mut bot = telegram_bot(&fake, &url, &config, "info");
    let mut pipe = {
        let mut cmd = flowbot();
        cmd.arg("--config").arg(&config).args(["pipe", "--database-url", &url]);
        Proc::spawn(cmd)
    };
    pipe.write_lines(&pipe_lines("p1", &["病院P", "P-1", "p.old@example.jp", "p.new@example.jp"]));
    let mut references = Vec::new();
    for (chat, answers) in [
        (601, ["病院A", "分からない", "ａ．ｏｌｄ＠ｅｘａｍｐｌｅ．ｊｐ", "a.new@example.jp"]),
        (602, ["病院B", "B-2", "b.old@example.jp", "b.new@example.jp"]),
    ] {
        let (text, reference) = telegram_request(&fake, chat, &answers).await;
        assert!(
            text.contains(SENT),
            "stored for delivery, so the user is told it was sent: {text}"
        );
        references.push(reference);
    }
    let out = pipe.wait_stdout("\"reference\"", WAIT).await;
    let handoff = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| v["replies"].as_array().cloned().unwrap_or_default())
        .find(|r| r["kind"] == "handoff")
        .expect("a handoff reply");
    let piped = handoff["reference"].as_str().unwrap().to_owned();
    assert!(handoff["text"].as_str().unwrap().starts_with(SENT), "{handoff}");
    references.push(piped.clone());
    // The pipe acknowledged the request (it printed the answer): kill it without warning. (Its
    // own outbox may be mid-attempt: that delivery waits out its lease, 2 s here, before `run`
    // claims it.)
    pipe.kill();
    // `run` keeps retrying every request, the piped one included.
    hook.wait("two failed attempts at every request", WAIT, |hits| {
        references.iter().all(|r| failed(hits, r) >= 2)
    })
    .await;
    let status = bot.terminate();
    assert!(status.success(), "{status}: {}", bot.log());
    drop(bot);
    wait_counts(db, counts(3, 3, 0), WAIT).await;
    assert!(hook.hits().iter().all(|h| !h.ok()));

    // The desk is back; a new `flowbot run` and a `flowbot chat --user` (two workers) deliver.
    hook.set_down(false);
    let mut bot = telegram_bot(&fake, &url, &config, "info");
    let mut courier = chat_process(&config, &url, "courier", None);
    hook.wait("every request delivered", WAIT, |hits| {
        references.iter().all(|r| delivered(hits, r) >= 1)
    })
    .await;
    wait_counts(db, counts(3, 0, 3), WAIT).await;
    let status = courier.finish(WAIT).await;
    assert!(status.success(), "{status}: {}", courier.stderr());
    let status = bot.terminate();
    assert!(status.success(), "{status}: {}", bot.log());

    let all = hook.hits();
    for reference in &references {
        assert_eq!(delivered(&all, reference), 1, "{reference} delivered exactly once: {all:?}");
    }
    assert_eq!(all.iter().filter(|h| h.ok()).count(), 3);
    for hit in all.iter().filter(|h| h.ok()) {
        let body = hit.json();
        assert_eq!(body["reference"], hit.reference());
        let platform = if hit.reference() == piped { "pipe" } else { "telegram" };
        assert_eq!(body["platform"], platform, "{body}");
    }
    let answers = |r: &str| {
        let hit = all.iter().find(|h| h.ok() && h.reference() == r).unwrap();
        hit.json()["answers"].clone()
    };
    assert_eq!(answers(&references[0])[1]["unknown"], true);
    assert_eq!(answers(&references[0])[2]["value"], "a.old@example.jp");
    assert_eq!(answers(&references[1])[1]["value"], "B-2");
    assert_eq!(answers(&piped)[0]["value"], "病院P");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_with_deliveries_pending_loses_none_sqlite() {
    let db = TestDb::sqlite();
    stopped_with_deliveries_pending_loses_none(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_with_deliveries_pending_loses_none_postgres() {
    let db = TestDb::postgres().await;
    stopped_with_deliveries_pending_loses_none(&db).await;
    db.cleanup().await;
}

// ---- 3. Personal data never reaches the log ------------------------------------------------

const INSTITUTION: &str = "ログ確認記念病院";
const CODE: &str = "LOGQ-4242";
const OLD_WIDE: &str = "ｐｒｉｖａｔｅ．ｏｌｄ＠ｌｏｇｔｅｓｔ．ｅｘａｍｐｌｅ．ｊｐ";
const OLD: &str = "private.old@logtest.example.jp";
const NEW: &str = "private.new@logtest.example.jp";
/// A mistyped address (re-asked): personal data as well.
const TYPO: &str = "private.typo@@logtest";

async fn personal_data_never_reaches_the_log(level: &str) {
    let hook = Webhook::start(1).await;
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), Some(&hook.url()), Some(DESK_CHAT), (0.2, 1.0));
    let db = TestDb::sqlite();
    let mut bot = telegram_bot(&fake, &db.url(), &config, level);

    let chat = 777;
    let m3 = say(&fake, chat, chat, "/start taiou3").await;
    let change = press(&fake, chat, chat, &m3, "「送信完了」だった").await;
    press(&fake, chat, chat, &change, "変更依頼を入力する").await;
    say(&fake, chat, chat, INSTITUTION).await;
    say(&fake, chat, chat, CODE).await;
    let again = say(&fake, chat, chat, TYPO).await;
    assert!(again.text.contains("メールアドレスの形式になっていません"), "{again:?}");
    say(&fake, chat, chat, OLD_WIDE).await;
    let confirm = say(&fake, chat, chat, NEW).await;
    // (Telegram shows the addresses as mailto links.)
    assert!(
        confirm.text.contains(&format!("変更前メールアドレス：<a href=\"mailto:{OLD}\">")),
        "{confirm:?}"
    );
    let done = press(&fake, chat, chat, &confirm, "確定する").await;
    let reference = reference_in(&done.text);

    // The webhook fails once, then takes it; the desk chat gets it too.
    hook.wait("a delivery after a failure", WAIT, |hits| delivered(hits, &reference) == 1).await;
    fake.wait_for(0, WAIT, |c| c.method == "sendmessage" && chat_of(c) == DESK_CHAT)
        .await
        .expect("the request in the desk chat");
    wait_counts(&db, counts(1, 0, 2), WAIT).await;
    let deadline = Instant::now() + WAIT;
    while bot.log().matches("delivery: request delivered").count() < 2 {
        assert!(Instant::now() < deadline, "no delivery log lines:\n{}", bot.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = bot.terminate();
    let log = bot.log();
    assert!(status.success(), "{status}: {log}");

    // The deliveries are in the log by reference…
    let mentions = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert!(mentions(&reference) >= 3, "the failure and both deliveries name {reference}:\n{log}");
    assert!(
        log.lines().any(|l| l.contains(&reference) && l.contains("HTTP 500")),
        "the failure says what failed:\n{log}"
    );
    // …and nothing of what the user typed, in either form, nor the secrets.
    for needle in [
        INSTITUTION,
        CODE,
        OLD_WIDE,
        OLD,
        NEW,
        TYPO,
        "logtest",
        "ｌｏｇｔｅｓｔ",
        "private.",
        "ｐｒｉｖａｔｅ",
        HOOK_SECRET,
        SECRET_PART,
    ] {
        assert!(!log.contains(needle), "{needle:?} reached the log at {level}:\n{log}");
    }
    assert!(log.lines().count() > 10, "logging at {level} is on:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_never_reaches_the_log_at_debug() {
    personal_data_never_reaches_the_log("debug").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_never_reaches_the_log_at_trace() {
    personal_data_never_reaches_the_log("trace").await;
}

// ---- 4. Bad settings: every problem listed, no secret printed ------------------------------

/// Runs `cmd` with empty standard input; its output, within 30 s.
fn output_within(mut cmd: Command) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flowbot");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not exit in {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

const BAD_SECRET: &str = "Long-enough-but-NOT-TO-PRINT-9731";
const SHORT_SECRET: &str = "SHORT-sec-42";

#[test]
fn bad_settings_stop_every_command_with_every_problem_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "[desk]\nmail = \"desk-at-example\"\n\
             [retention]\npersonal_data_days = 0\n\
             [handoff]\nretry_first_seconds = 0\n\
             [[handoff.destinations]]\nkind = \"webhook\"\nname = \"bad-url\"\nurl = \"ftp://desk.example.jp/hook\"\nsecret = \"{BAD_SECRET}\"\n\
             [[handoff.destinations]]\nkind = \"webhook\"\nname = \"short\"\nurl = \"https://desk.example.jp/hook\"\nsecret = \"{SHORT_SECRET}\"\n\
             [[handoff.destinations]]\nkind = \"telegram\"\nchat_id = 0\n"
        ),
    )
    .unwrap();
    let problems = [
        "[desk] mail `desk-at-example` is not an e-mail address",
        "[retention] personal_data_days = 0",
        "[handoff] retry_first_seconds = 0",
        "`bad-url`: url `ftp://desk.example.jp/hook` is not an http(s) URL",
        "`short`: the signing secret is shorter than 16 bytes",
        "`telegram`: chat_id 0 is not a chat",
    ];
    let db = dir.path().join("never.sqlite");
    let url = format!("sqlite://{}", db.display());
    let commands: Vec<Vec<&str>> = vec![
        vec!["check"],
        vec!["chat"],
        vec!["chat", "--user", "u1", "--database-url", &url],
        vec!["pipe", "--database-url", &url],
        vec!["stats", "--database-url", &url],
        vec!["purge", "--database-url", &url],
        vec!["render", "--format", "mermaid"],
        vec!["link", "--platform", "telegram", "--bot-username", "gmis_test_bot"],
        vec!["test"],
        vec!["run", "--listen", "127.0.0.1:0", "--database-url", &url],
    ];
    for args in &commands {
        let mut cmd = flowbot();
        cmd.arg("--config").arg(&config).args(args);
        // `run` has a messenger, so only the settings can stop it (the API is never reached).
        cmd.env("TELEGRAM_BOT_TOKEN", TOKEN).env("TELEGRAM_API_URL", "http://127.0.0.1:9");
        let out = output_within(cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started with bad settings: {err}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for problem in problems {
            assert!(err.contains(problem), "{args:?}: no {problem:?} in\n{err}");
        }
        for secret in [BAD_SECRET, SHORT_SECRET, SECRET_PART] {
            assert!(!err.contains(secret), "{args:?} printed a secret:\n{err}");
        }
        assert!(!db.exists(), "{args:?} opened the store before checking its settings");
    }

    // The same problems given by the environment.
    let out = output_within({
        let mut cmd = flowbot();
        cmd.arg("check")
            .env("FLOWBOT_DESK_MAIL", "desk.example.jp")
            .env("FLOWBOT_RETENTION_DAYS", "0")
            .env("FLOWBOT_HANDOFF_RETRY_SECONDS", "-3")
            .env("FLOWBOT_HANDOFF_WEBHOOK_URL", "not a url")
            .env("FLOWBOT_HANDOFF_WEBHOOK_SECRET", SHORT_SECRET)
            .env("FLOWBOT_HANDOFF_TELEGRAM_CHAT", "0");
        cmd
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for problem in [
        "invalid settings (6 problems)",
        "environment variable FLOWBOT_DESK_MAIL: [desk] mail `desk.example.jp` is not an e-mail address",
        "environment variable FLOWBOT_RETENTION_DAYS: [retention] personal_data_days = 0",
        "environment variable FLOWBOT_HANDOFF_RETRY_SECONDS: [handoff] retry_first_seconds = -3",
        "url `not a url` is not an http(s) URL",
        "the signing secret is shorter than 16 bytes",
        "chat_id 0 is not a chat",
    ] {
        assert!(err.contains(problem), "no {problem:?} in\n{err}");
    }
    assert!(!err.contains(SHORT_SECRET), "{err}");
    // A webhook without a secret.
    let out = output_within({
        let mut cmd = flowbot();
        cmd.arg("check").env("FLOWBOT_HANDOFF_WEBHOOK_URL", "https://desk.example.jp/hook");
        cmd
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("a webhook needs a signing secret"), "{err}");

    // Good settings pass, and their secret is not shown either.
    let good = write_config(
        dir.path(),
        Some("https://desk.example.jp/hook"),
        Some(DESK_CHAT),
        (30.0, 3600.0),
    );
    let out = output_within({
        let mut cmd = flowbot();
        cmd.arg("--config").arg(&good).arg("check");
        cmd
    });
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(HOOK_SECRET), "{all}");
}
