//! A fake of the Telegram Bot API on 127.0.0.1 for end-to-end tests.
//!
//! [`FakeTelegram::start`] serves `POST /bot{token}/{method}` the way teloxide 0.17
//! (teloxide-core 0.13) expects it: method names match case-insensitively (teloxide sends
//! `SendMessage`), every answer is the envelope `{"ok":true,"result":..}` or
//! `{"ok":false,"error_code":N,"description":..}`, and the JSON it produces deserializes into
//! teloxide's `Me`, `Message`, `Update` and `CallbackQuery`.
//!
//! Tests queue updates ([`FakeTelegram::user_message`], [`FakeTelegram::press`],
//! [`FakeTelegram::push_update`]), read what the bot did ([`FakeTelegram::calls`],
//! [`FakeTelegram::wait_for`], [`FakeTelegram::message`]) and script faults
//! ([`FakeTelegram::fail_next`]) or draw them at random ([`FakeTelegram::chaos`]: 429s and 500s;
//! [`FakeTelegram::duplicate_updates`]: updates delivered twice).
//!
//! Known simplifications: `parse_mode` is stored but the text is not parsed (no entities are
//! made from markup, the text stays as sent); multipart bodies (file uploads) are recorded with
//! empty params; inline-mode messages (`inline_message_id`) are not supported.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

/// The bot's username, as `getMe` reports it.
pub const BOT_USERNAME: &str = "gmis_test_bot";
/// The bot's first name, as `getMe` reports it.
pub const BOT_FIRST_NAME: &str = "GMIS Test Bot";
/// The bot's id when the token does not start with a numeric id (`"<id>:<secret>"`).
pub const DEFAULT_BOT_ID: i64 = 7_000_000_001;
/// The longest a `getUpdates` long poll waits, whatever its `timeout` (teloxide's client gives
/// up after 17 s).
pub const MAX_LONG_POLL: Duration = Duration::from_secs(10);

const NOT_MODIFIED: &str = "Bad Request: message is not modified: specified new message content \
     and reply markup are exactly the same as a current content and reply markup of the message";

/// One request the fake received with the right token, in arrival order.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method, lower-cased (`"sendmessage"`).
    pub method: String,
    /// The parameters: the JSON body, or the form/query fields as an object (values that look
    /// like JSON objects or arrays are parsed, others stay strings). `Null` if the body was not
    /// valid JSON.
    pub body: Value,
    /// When the request arrived.
    pub at: Instant,
}

/// A fault [`FakeTelegram::fail_next`] injects instead of the normal answer.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// HTTP 429 with `parameters.retry_after` (teloxide: `RequestError::RetryAfter`).
    TooManyRequests {
        /// Seconds the client is told to wait.
        retry_after: u32,
    },
    /// HTTP 500 `{"ok":false,"error_code":500,"description":"Internal Server Error"}`.
    /// (teloxide's own client sleeps 10 s on any 5xx; flowbot's calls do not go through it.)
    ServerError,
    /// The connection is closed without an answer (teloxide: `RequestError::Network`).
    NetworkDrop,
    /// HTTP 400 `Bad Request: message can't be sent`: refused for good.
    Refused,
}

/// A message as the fake stores it (bot messages and the user messages it made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeMessage {
    /// Its id (unique per fake, across chats).
    pub message_id: i64,
    /// The text after edits, as sent (markup is not parsed).
    pub text: String,
    /// The `parse_mode` of the last send or edit.
    pub parse_mode: Option<String>,
    /// The inline keyboard, row by row, as (text, callback_data); a button without
    /// `callback_data` has its `url` there, or "". Empty when there is no keyboard.
    pub buttons: Vec<Vec<(String, String)>>,
    /// The message it replies to, if any.
    pub reply_to: Option<i64>,
}

/// A call seen through [`FakeTelegram::tap`]: method (lower-cased), parameters and the result.
#[derive(Debug, Clone)]
pub struct Tapped {
    pub method: String,
    pub body: Value,
    /// The `result` of a successful answer (`sendMessage`: the message, with its id).
    pub result: Option<Value>,
    /// When the answer was about to be sent (before the client could read it).
    pub at: Instant,
}

/// A fake Telegram Bot API server on 127.0.0.1; it shuts down when dropped.
#[derive(Debug)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Shared {
    token: String,
    bot_id: i64,
    username: String,
    state: Mutex<State>,
    /// Woken when an update is queued or the server stops.
    updates_changed: Notify,
    stopping: AtomicBool,
    /// Receivers of every answered call with its result (load tests wait on these, not on
    /// `calls`).
    taps: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Tapped>>>,
    /// How long each call but `getUpdates` takes before it is answered (ms; 0: at once).
    latency_ms: AtomicU64,
    /// Calls but `getUpdates` being answered now, and the most at any one time.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// Counts a call as in flight for as long as it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    /// Sorted by update_id.
    updates: VecDeque<Value>,
    next_update_id: i64,
    confirmed_offset: i64,
    allowed_updates: Option<Vec<String>>,
    messages: HashMap<(i64, i64), Stored>,
    next_message_id: i64,
    next_callback_id: u64,
    failures: HashMap<String, VecDeque<Failure>>,
    chaos: Option<Chaos>,
    duplicates: Option<Duplicates>,
    /// Faults answered so far, scripted or random: 429s and 500s.
    injected: (u64, u64),
    /// Calls are no longer logged ([`FakeTelegram::stop_log`]).
    unlogged: bool,
}

/// Updates delivered twice ([`FakeTelegram::duplicate_updates`]).
#[derive(Debug, Clone)]
struct Duplicates {
    share: f64,
    state: u64,
    /// The highest update id already rolled for (an update is rolled for once, however often
    /// it is fetched).
    rolled_upto: i64,
    /// Updates to answer again, with their own update ids, in the next `getUpdates`.
    replay: Vec<Value>,
    /// How many updates were delivered again (same id) and callbacks sent again (new id).
    same_id: u64,
    same_callback: u64,
}

/// Random faults on some methods: a share of 429s and a share of 500s, from a seeded generator.
#[derive(Debug, Clone)]
struct Chaos {
    methods: Vec<String>,
    too_many: f64,
    server_error: f64,
    state: u64,
}

/// The next number in [0, 1) of a xorshift64* generator.
fn next_unit(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Chaos {
    fn roll(&mut self, method: &str) -> Option<Failure> {
        if !self.methods.iter().any(|m| m == method || m == "*") {
            return None;
        }
        let x = next_unit(&mut self.state);
        if x < self.too_many {
            Some(Failure::TooManyRequests { retry_after: 1 })
        } else if x < self.too_many + self.server_error {
            Some(Failure::ServerError)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    message_id: i64,
    chat: i64,
    from: Value,
    from_bot: bool,
    date: i64,
    text: String,
    entities: Option<Value>,
    parse_mode: Option<String>,
    reply_markup: Option<Value>,
    reply_to: Option<i64>,
    edit_date: Option<i64>,
}

/// An API error: HTTP status (= `error_code`) and description.
type ApiError = (u16, String);
type ApiResult = Result<Value, ApiError>;

fn bad_request(description: &str) -> ApiError {
    (400, description.to_owned())
}

impl FakeTelegram {
    /// Binds 127.0.0.1:0 and serves `POST /bot{token}/{method}` (JSON bodies; also
    /// application/x-www-form-urlencoded, query strings, or an empty body). A request with
    /// another token gets 401 `Unauthorized` (and is not recorded); an unknown method gets 404
    /// `Not Found`. The bot id is the numeric prefix of the token (`"123:abc"` → 123), else
    /// [`DEFAULT_BOT_ID`].
    pub async fn start(token: &str) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let bot_id = token
            .split(':')
            .next()
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .unwrap_or(DEFAULT_BOT_ID);
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            bot_id,
            username: BOT_USERNAME.to_owned(),
            state: Mutex::new(State {
                next_update_id: 1,
                next_message_id: 1,
                next_callback_id: 1,
                ..State::default()
            }),
            updates_changed: Notify::new(),
            stopping: AtomicBool::new(false),
            taps: Mutex::new(Vec::new()),
            latency_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let (tx, rx) = oneshot::channel::<()>();
        let server = axum::serve(
            DropListener { inner: listener },
            app.into_make_service_with_connect_info::<Conn>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        tokio::spawn(async move {
            let _ = server.await;
        });
        FakeTelegram { shared, addr, shutdown: Some(tx) }
    }

    /// The base URL for `Bot::set_api_url`: `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bot's username (without `@`).
    pub fn bot_username(&self) -> &str {
        &self.shared.username
    }

    /// The bot's user id.
    pub fn bot_id(&self) -> i64 {
        self.shared.bot_id
    }

    /// Queues a raw update (assigns `"update_id"` if absent, increasing from 1) and returns its
    /// id. An update with an explicit id moves the counter past it.
    pub fn push_update(&self, update: Value) -> i64 {
        let id = push(&mut self.shared.lock(), update);
        self.shared.updates_changed.notify_waiters();
        id
    }

    /// Queues a text message from `user` (> 0) in `chat` (> 0: the private chat with that id;
    /// < 0: a supergroup) and stores it, so bot messages can reply to it. The message has a
    /// `bot_command` entity when the text starts with '/'. Returns (update_id, message_id).
    pub fn user_message(&self, chat: i64, user: i64, text: &str) -> (i64, i64) {
        let ids = {
            let mut st = self.shared.lock();
            let message_id = st.next_message_id;
            st.next_message_id += 1;
            let entities = text.starts_with('/').then(|| {
                let command = text.split(char::is_whitespace).next().unwrap_or(text);
                json!([{"type": "bot_command", "offset": 0, "length": command.encode_utf16().count()}])
            });
            let stored = Stored {
                message_id,
                chat,
                from: user_json(user),
                from_bot: false,
                date: now(),
                text: text.to_owned(),
                entities,
                parse_mode: None,
                reply_markup: None,
                reply_to: None,
                edit_date: None,
            };
            let message = render(&st, &stored, true);
            st.messages.insert((chat, message_id), stored);
            (push(&mut st, json!({ "message": message })), message_id)
        };
        self.shared.updates_changed.notify_waiters();
        ids
    }

    /// Queues a press by `user` on a button of message `message_id` in `chat`, carrying `data`.
    /// The callback query's `message` is the message as stored now (text, reply_markup,
    /// reply_to_message), so teloxide sees a regular message; an unknown message is sent as an
    /// inaccessible one (`date` 0). Returns (update_id, callback_query_id).
    pub fn press(&self, chat: i64, user: i64, message_id: i64, data: &str) -> (i64, String) {
        let ids = {
            let mut st = self.shared.lock();
            let query_id = format!("cbq-{}", st.next_callback_id);
            st.next_callback_id += 1;
            let message = match st.messages.get(&(chat, message_id)) {
                Some(stored) => render(&st, stored, true),
                None => json!({"message_id": message_id, "chat": chat_json(chat), "date": 0}),
            };
            let update = json!({"callback_query": {
                "id": query_id,
                "from": user_json(user),
                "message": message,
                "chat_instance": format!("ci{chat}"),
                "data": data,
            }});
            (push(&mut st, update), query_id)
        };
        self.shared.updates_changed.notify_waiters();
        ids
    }

    /// Every call from now on that gets an answer (not an injected failure), with its result,
    /// just before the answer is sent.
    pub fn tap(&self) -> tokio::sync::mpsc::UnboundedReceiver<Tapped> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.shared.taps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(tx);
        rx
    }

    /// From now on calls are only tapped, not logged: [`calls`](Self::calls) keeps what it
    /// had. For load tests, whose hundreds of thousands of calls would otherwise each cost the
    /// fake a copy of its parameters and keep it in memory.
    pub fn stop_log(&self) {
        self.shared.lock().unlogged = true;
    }

    /// Every call received with the right token so far, in order (injected failures included).
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// How many calls were received so far (`calls().len()` without the copy).
    pub fn call_count(&self) -> usize {
        self.shared.lock().calls.len()
    }

    /// Waits (polling every 5 ms, at most `timeout`) until `pred` holds for a call with index
    /// `>= since` (pass `call_count()` taken before the action), and returns that call's index
    /// and the call. `pred` runs without the fake's lock held, so it may call the fake.
    pub async fn wait_for(
        &self,
        since: usize,
        timeout: Duration,
        pred: impl Fn(&Call) -> bool,
    ) -> Option<(usize, Call)> {
        let deadline = Instant::now() + timeout;
        let mut next = since;
        loop {
            let fresh: Vec<Call> = {
                let st = self.shared.lock();
                st.calls.get(next..).map(<[Call]>::to_vec).unwrap_or_default()
            };
            for call in fresh {
                if pred(&call) {
                    return Some((next, call));
                }
                next += 1;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5).min(deadline - now)).await;
        }
    }

    /// Every call but `getUpdates` is answered only after `latency` (a slow network), so that
    /// a client's calls overlap.
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.shared.latency_ms.store(ms, Ordering::SeqCst);
    }

    /// The most calls but `getUpdates` that were being answered at one time.
    pub fn most_calls_in_flight(&self) -> usize {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// The next `n` calls of `method` (case-insensitive) fail with `failure`, before any effect
    /// (the calls are still recorded). Repeated calls queue up in order.
    pub fn fail_next(&self, method: &str, n: usize, failure: Failure) {
        let mut st = self.shared.lock();
        let queue = st.failures.entry(method.to_ascii_lowercase()).or_default();
        queue.extend(std::iter::repeat_n(failure, n));
    }

    /// The highest offset a `getUpdates` call has confirmed (updates below it are gone).
    /// From now on answers a share `too_many` of the calls to `methods` (lower-cased) with 429
    /// (`retry_after` 1 s) and a share `server_error` with 500, chosen by a generator seeded
    /// with `seed`; the call is not carried out. Scripted faults ([`FakeTelegram::fail_next`])
    /// come first. The method `"*"` stands for every method.
    pub fn chaos(&self, methods: &[&str], too_many: f64, server_error: f64, seed: u64) {
        self.shared.lock().chaos = Some(Chaos {
            methods: methods.iter().map(|m| m.to_ascii_lowercase()).collect(),
            too_many,
            server_error,
            state: seed | 1,
        });
    }

    /// Ends [`FakeTelegram::chaos`].
    pub fn calm(&self) {
        self.shared.lock().chaos = None;
    }

    /// From now on delivers a share `share` of the updates twice, chosen by a generator seeded
    /// with `seed`: once a `getUpdates` answer has carried an update, the next answer carries
    /// it again with the same `update_id` (whatever offset was confirmed meanwhile, as Telegram
    /// does when a confirmation is lost), or, for half of the button presses, as a new update
    /// with the same callback query. Each update is rolled for once.
    pub fn duplicate_updates(&self, share: f64, seed: u64) {
        let mut st = self.shared.lock();
        let rolled_upto = st.next_update_id - 1;
        st.duplicates = Some(Duplicates {
            share,
            state: seed | 1,
            rolled_upto,
            replay: Vec::new(),
            same_id: 0,
            same_callback: 0,
        });
    }

    /// Ends [`FakeTelegram::duplicate_updates`]: what is waiting to be replayed is dropped, the
    /// counts stay.
    pub fn no_duplicates(&self) {
        if let Some(dup) = self.shared.lock().duplicates.as_mut() {
            dup.share = 0.0;
            dup.replay.clear();
        }
    }

    /// How many 429s and 500s were answered instead of a call so far (scripted and random).
    pub fn injected(&self) -> (u64, u64) {
        self.shared.lock().injected
    }

    /// How many updates [`FakeTelegram::duplicate_updates`] delivered again with the same
    /// update id, and how many presses it sent again as new updates (same callback query).
    pub fn duplicated(&self) -> (u64, u64) {
        self.shared.lock().duplicates.as_ref().map_or((0, 0), |d| (d.same_id, d.same_callback))
    }

    pub fn confirmed_offset(&self) -> i64 {
        self.shared.lock().confirmed_offset
    }

    /// How many updates are queued (not yet confirmed).
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().updates.len()
    }

    /// Takes every queued update out of the queue, for a test that delivers them itself (to a
    /// bot in webhook mode, which never polls).
    pub fn take_updates(&self) -> Vec<Value> {
        self.shared.lock().updates.drain(..).collect()
    }

    /// The message `message_id` in `chat` as it is now (bot or user message), or `None` if it
    /// was never stored or was deleted.
    pub fn message(&self, chat: i64, message_id: i64) -> Option<FakeMessage> {
        let st = self.shared.lock();
        let stored = st.messages.get(&(chat, message_id))?;
        Some(FakeMessage {
            message_id: stored.message_id,
            text: stored.text.clone(),
            parse_mode: stored.parse_mode.clone(),
            buttons: buttons(stored.reply_markup.as_ref()),
            reply_to: stored.reply_to,
        })
    }

    /// The bot's messages in `chat`, oldest first.
    pub fn bot_messages(&self, chat: i64) -> Vec<FakeMessage> {
        let ids: Vec<i64> = {
            let st = self.shared.lock();
            let mut ids: Vec<i64> = st
                .messages
                .values()
                .filter(|m| m.chat == chat && m.from_bot)
                .map(|m| m.message_id)
                .collect();
            ids.sort_unstable();
            ids
        };
        ids.into_iter().filter_map(|id| self.message(chat, id)).collect()
    }

    /// Shuts the server down (same as dropping it): no new connections, idle connections are
    /// closed, pending long polls answer `[]` at once.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.updates_changed.notify_waiters();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn me(&self) -> Value {
        json!({
            "id": self.bot_id,
            "is_bot": true,
            "first_name": BOT_FIRST_NAME,
            "username": self.username,
            "can_join_groups": true,
            "can_read_all_group_messages": false,
            "supports_inline_queries": false,
            "can_connect_to_business": false,
            "has_main_web_app": false,
        })
    }

    fn bot_user(&self) -> Value {
        json!({"id": self.bot_id, "is_bot": true, "first_name": BOT_FIRST_NAME, "username": self.username})
    }
}

// ---- The HTTP side -------------------------------------------------------------------------

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut segments = uri.path().trim_start_matches('/').split('/');
    let (Some(first), Some(method), None) = (segments.next(), segments.next(), segments.next())
    else {
        return envelope(Err((404, "Not Found".into())));
    };
    let first = percent_decode(first);
    let Some(token) = first.strip_prefix("bot") else {
        return envelope(Err((404, "Not Found".into())));
    };
    if token != shared.token {
        return envelope(Err((401, "Unauthorized".into())));
    }
    let method = percent_decode(method).to_ascii_lowercase();
    let _in_flight = (method != "getupdates").then(|| InFlight::new(&shared));
    let latency = shared.latency_ms.load(Ordering::SeqCst);
    if latency > 0 && method != "getupdates" {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let params = parse_params(&headers, uri.query(), &body);
    let failure = {
        let mut st = shared.lock();
        if !st.unlogged {
            st.calls.push(Call {
                method: method.clone(),
                body: params.clone().unwrap_or(Value::Null),
                at: Instant::now(),
            });
        }
        let scripted = st.failures.get_mut(&method).and_then(VecDeque::pop_front);
        let failure = scripted.or_else(|| st.chaos.as_mut().and_then(|c| c.roll(&method)));
        match failure {
            Some(Failure::TooManyRequests { .. }) => st.injected.0 += 1,
            Some(Failure::ServerError) => st.injected.1 += 1,
            _ => {}
        }
        failure
    };
    match failure {
        Some(Failure::TooManyRequests { retry_after }) => {
            return envelope_with(
                429,
                json!({
                    "ok": false,
                    "error_code": 429,
                    "description": format!("Too Many Requests: retry after {retry_after}"),
                    "parameters": {"retry_after": retry_after},
                }),
            );
        }
        Some(Failure::ServerError) => {
            return envelope(Err((500, "Internal Server Error".into())));
        }
        Some(Failure::Refused) => {
            return envelope(Err(bad_request("Bad Request: message can't be sent")));
        }
        Some(Failure::NetworkDrop) => {
            // The connection's IO now fails, so hyper drops it without writing this response.
            conn.kill.store(true, Ordering::SeqCst);
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        None => {}
    }
    let Some(params) = params else {
        return envelope(Err(bad_request("Bad Request: can't parse JSON object")));
    };
    let result = match method.as_str() {
        "getupdates" => get_updates(&shared, &params).await,
        other => call(&shared, other, &params),
    };
    let mut taps = shared.taps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !taps.is_empty() {
        let tapped = Tapped {
            method,
            body: params,
            result: result.as_ref().ok().cloned(),
            at: Instant::now(),
        };
        if let [tap] = taps.as_slice() {
            // The usual case: one receiver, which takes this very call.
            if tap.send(tapped).is_err() {
                taps.clear();
            }
        } else {
            taps.retain(|tap| tap.send(tapped.clone()).is_ok());
        }
    }
    drop(taps);
    envelope(result)
}

/// The methods that answer at once.
fn call(shared: &Shared, method: &str, p: &Value) -> ApiResult {
    match method {
        "getme" => Ok(shared.me()),
        "getwebhookinfo" => {
            Ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0}))
        }
        "sendmessage" => send_message(shared, p),
        "editmessagetext" => edit_message(shared, p, true),
        "editmessagereplymarkup" => edit_message(shared, p, false),
        "deletemessage" => {
            if let (Ok(chat), Some(id)) = (chat_id(p), int(p, "message_id")) {
                shared.lock().messages.remove(&(chat, id));
            }
            Ok(json!(true))
        }
        "answercallbackquery"
        | "setmycommands"
        | "deletemycommands"
        | "deletewebhook"
        | "setwebhook"
        | "sendchataction"
        | "close"
        | "logout" => Ok(json!(true)),
        "getmycommands" => Ok(json!([])),
        _ => Err((404, "Not Found".into())),
    }
}

async fn get_updates(shared: &Shared, p: &Value) -> ApiResult {
    let offset = int(p, "offset").unwrap_or(0);
    let limit = int(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(int(p, "timeout").unwrap_or(0).max(0) as u64);
    let deadline = Instant::now() + timeout.min(MAX_LONG_POLL);
    let from = {
        let mut st = shared.lock();
        if let Some(allowed) = p.get("allowed_updates").map(json_field) {
            let list: Vec<String> = allowed
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            st.allowed_updates = (!list.is_empty()).then_some(list);
        }
        confirm(&mut st, offset)
    };
    loop {
        let notified = shared.updates_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = shared.lock();
            let mut batch: Vec<Value> = st
                .updates
                .iter()
                .filter(|u| update_id(u) >= from)
                .filter(|u| allowed(st.allowed_updates.as_deref(), u))
                .take(limit)
                .cloned()
                .collect();
            if st.duplicates.is_some() {
                batch = with_duplicates(&mut st, batch, limit);
            }
            if !batch.is_empty() || shared.stopping.load(Ordering::SeqCst) {
                return Ok(Value::Array(batch));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(json!([]));
        }
        let _ = tokio::time::timeout(deadline - now, notified).await;
    }
}

/// A `getUpdates` answer with [`Duplicates`]: what was rolled for replay before joins the batch
/// (at most `limit` in all, sorted by update id as Telegram sends them, and none past the
/// batch's last id, so that confirming the answer confirms nothing unseen); then each update of
/// `batch` not rolled for yet may be chosen to come again.
fn with_duplicates(st: &mut State, batch: Vec<Value>, limit: usize) -> Vec<Value> {
    let Some(dup) = st.duplicates.as_mut() else { return batch };
    let last = batch.last().map_or(i64::MAX, update_id);
    let mut out = Vec::new();
    let mut kept = Vec::new();
    for update in dup.replay.drain(..) {
        if update_id(&update) <= last && batch.len() + out.len() < limit {
            out.push(update);
        } else {
            kept.push(update);
        }
    }
    dup.replay = kept;
    dup.same_id += out.len() as u64;
    let mut again = Vec::new();
    for update in &batch {
        let id = update_id(update);
        if id <= dup.rolled_upto {
            continue;
        }
        dup.rolled_upto = id;
        if next_unit(&mut dup.state) >= dup.share {
            continue;
        }
        let press = update.get("callback_query").is_some();
        if press && next_unit(&mut dup.state) < 0.5 {
            // The same callback query as a new update: strip the id, queue it after the rest.
            let mut copy = update.clone();
            if let Some(obj) = copy.as_object_mut() {
                obj.remove("update_id");
            }
            again.push(copy);
        } else {
            dup.replay.push(update.clone());
        }
    }
    out.extend(batch);
    // Stable: a replay comes before the update it repeats when both are in one answer.
    out.sort_by_key(update_id);
    for copy in again {
        push(st, copy);
        if let Some(dup) = st.duplicates.as_mut() {
            dup.same_callback += 1;
        }
    }
    out
}

/// Drops the updates `offset` confirms and returns the lowest update id to answer with.
fn confirm(st: &mut State, offset: i64) -> i64 {
    if offset > 0 {
        st.updates.retain(|u| update_id(u) >= offset);
        st.confirmed_offset = st.confirmed_offset.max(offset);
        offset
    } else if offset < 0 {
        // Telegram: the last -offset updates are kept, all previous ones are forgotten.
        let keep = offset.unsigned_abs() as usize;
        while st.updates.len() > keep {
            st.updates.pop_front();
        }
        let first = st.updates.front().map(update_id).unwrap_or(st.next_update_id);
        st.confirmed_offset = st.confirmed_offset.max(first);
        first
    } else {
        0
    }
}

fn allowed(list: Option<&[String]>, update: &Value) -> bool {
    let Some(list) = list else { return true };
    let Some(obj) = update.as_object() else { return true };
    obj.keys().filter(|k| *k != "update_id").any(|k| list.iter().any(|a| a == k))
}

fn send_message(shared: &Shared, p: &Value) -> ApiResult {
    let chat = chat_id(p)?;
    let text = check_text(p)?;
    let markup = reply_markup(p)?;
    let reply = p.get("reply_parameters").map(json_field);
    let reply_to =
        reply.as_ref().and_then(|r| int(r, "message_id")).or_else(|| int(p, "reply_to_message_id"));
    let without_reply = reply.as_ref().and_then(|r| boolean(r, "allow_sending_without_reply"))
        == Some(true)
        || boolean(p, "allow_sending_without_reply") == Some(true);
    let mut st = shared.lock();
    let reply_to = match reply_to {
        Some(id) if st.messages.contains_key(&(chat, id)) => Some(id),
        Some(_) if !without_reply => {
            return Err(bad_request("Bad Request: message to be replied not found"));
        }
        _ => None,
    };
    let message_id = st.next_message_id;
    st.next_message_id += 1;
    let stored = Stored {
        message_id,
        chat,
        from: shared.bot_user(),
        from_bot: true,
        date: now(),
        text,
        entities: None,
        parse_mode: p.get("parse_mode").and_then(Value::as_str).map(str::to_owned),
        reply_markup: markup,
        reply_to,
        edit_date: None,
    };
    let message = render(&st, &stored, true);
    st.messages.insert((chat, message_id), stored);
    Ok(message)
}

/// `editMessageText` (`with_text`) or `editMessageReplyMarkup`.
fn edit_message(shared: &Shared, p: &Value, with_text: bool) -> ApiResult {
    let chat = chat_id(p)?;
    let Some(message_id) = int(p, "message_id") else {
        return Err(bad_request("Bad Request: message to edit not found"));
    };
    let text = if with_text { Some(check_text(p)?) } else { None };
    let markup = reply_markup(p)?;
    let mut st = shared.lock();
    let Some(stored) = st.messages.get_mut(&(chat, message_id)) else {
        return Err(bad_request("Bad Request: message to edit not found"));
    };
    if !stored.from_bot {
        return Err(bad_request("Bad Request: message can't be edited"));
    }
    let same_text = text.as_ref().is_none_or(|t| *t == stored.text);
    if same_text && markup == stored.reply_markup {
        return Err(bad_request(NOT_MODIFIED));
    }
    if let Some(text) = text {
        stored.text = text;
        stored.entities = None;
        stored.parse_mode = p.get("parse_mode").and_then(Value::as_str).map(str::to_owned);
    }
    stored.reply_markup = markup;
    stored.edit_date = Some(now());
    let stored = stored.clone();
    Ok(render(&st, &stored, true))
}

fn check_text(p: &Value) -> Result<String, ApiError> {
    let text = match p.get("text") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if text.trim().is_empty() {
        return Err(bad_request("Bad Request: message text is empty"));
    }
    if text.chars().count() > 4096 {
        return Err(bad_request("Bad Request: message is too long"));
    }
    Ok(text)
}

/// The inline keyboard of the request, as a message would carry it: `None` for no keyboard, an
/// empty one, or a non-inline keyboard (those are not echoed in messages).
fn reply_markup(p: &Value) -> Result<Option<Value>, ApiError> {
    let Some(markup) = p.get("reply_markup").map(json_field) else { return Ok(None) };
    let Some(rows) = markup.get("inline_keyboard").and_then(Value::as_array) else {
        return Ok(None);
    };
    for row in rows {
        let Some(row) = row.as_array() else {
            return Err(bad_request("Bad Request: can't parse inline keyboard button"));
        };
        for button in row {
            if button.get("text").and_then(Value::as_str).is_none() {
                return Err(bad_request("Bad Request: can't parse inline keyboard button"));
            }
            if let Some(data) = button.get("callback_data") {
                let len = data.as_str().map_or(0, str::len);
                if !(1..=64).contains(&len) {
                    return Err(bad_request("Bad Request: BUTTON_DATA_INVALID"));
                }
            }
        }
    }
    if rows.iter().all(|r| r.as_array().is_some_and(Vec::is_empty)) {
        return Ok(None);
    }
    Ok(Some(json!({ "inline_keyboard": rows })))
}

fn buttons(markup: Option<&Value>) -> Vec<Vec<(String, String)>> {
    let rows = markup.and_then(|m| m.get("inline_keyboard")).and_then(Value::as_array);
    rows.map(|rows| {
        rows.iter()
            .map(|row| {
                let row = row.as_array().map(Vec::as_slice).unwrap_or_default();
                row.iter()
                    .map(|b| {
                        let text = b.get("text").and_then(Value::as_str).unwrap_or_default();
                        let data = ["callback_data", "url"]
                            .iter()
                            .find_map(|k| b.get(*k).and_then(Value::as_str))
                            .unwrap_or_default();
                        (text.to_owned(), data.to_owned())
                    })
                    .collect()
            })
            .collect()
    })
    .unwrap_or_default()
}

// ---- JSON shapes ---------------------------------------------------------------------------

/// Queues `update`, assigning an id if it has none, and returns the id.
fn push(st: &mut State, mut update: Value) -> i64 {
    let id = match update.get("update_id").and_then(Value::as_i64) {
        Some(id) => id,
        None => {
            let id = st.next_update_id;
            if let Some(obj) = update.as_object_mut() {
                obj.insert("update_id".into(), json!(id));
            }
            id
        }
    };
    st.next_update_id = st.next_update_id.max(id + 1);
    if st.updates.back().is_none_or(|last| update_id(last) < id) {
        st.updates.push_back(update);
    } else {
        let at = st.updates.iter().position(|u| update_id(u) > id).unwrap_or(st.updates.len());
        st.updates.insert(at, update);
    }
    id
}

fn update_id(update: &Value) -> i64 {
    update.get("update_id").and_then(Value::as_i64).unwrap_or(0)
}

/// A message as Telegram sends it; with `reply`, its `reply_to_message` (one level only).
fn render(st: &State, m: &Stored, reply: bool) -> Value {
    let mut obj = Map::new();
    obj.insert("message_id".into(), json!(m.message_id));
    obj.insert("from".into(), m.from.clone());
    obj.insert("date".into(), json!(m.date));
    obj.insert("chat".into(), chat_json(m.chat));
    obj.insert("text".into(), json!(m.text));
    if let Some(entities) = &m.entities {
        obj.insert("entities".into(), entities.clone());
    }
    if let Some(markup) = &m.reply_markup {
        obj.insert("reply_markup".into(), markup.clone());
    }
    if let Some(edit_date) = m.edit_date {
        obj.insert("edit_date".into(), json!(edit_date));
    }
    if reply && let Some(target) = m.reply_to.and_then(|id| st.messages.get(&(m.chat, id))) {
        obj.insert("reply_to_message".into(), render(st, target, false));
    }
    Value::Object(obj)
}

fn chat_json(chat: i64) -> Value {
    if chat > 0 {
        json!({"id": chat, "type": "private", "first_name": "User"})
    } else {
        json!({"id": chat, "type": "supergroup", "title": "Group"})
    }
}

fn user_json(user: i64) -> Value {
    json!({"id": user, "is_bot": false, "first_name": "User", "language_code": "en"})
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs() as i64)
}

// ---- Parameters ----------------------------------------------------------------------------

/// The request's parameters as one JSON object (query fields, then the body's), or `None` if
/// the body is not a JSON object.
fn parse_params(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Option<Value> {
    let mut obj = Map::new();
    if let Some(query) = query {
        form_fields(query, &mut obj);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if body.iter().all(u8::is_ascii_whitespace) || content_type.starts_with("multipart/") {
        // No params (or a file upload, which the fake does not read).
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        form_fields(&String::from_utf8_lossy(body), &mut obj);
    } else {
        match serde_json::from_slice::<Value>(body).ok()? {
            Value::Object(fields) => obj.extend(fields),
            _ => return None,
        }
    }
    Some(Value::Object(obj))
}

fn form_fields(form: &str, obj: &mut Map<String, Value>) {
    for pair in form.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " "));
        let parsed = if value.starts_with('{') || value.starts_with('[') {
            serde_json::from_str(&value).unwrap_or(Value::String(value))
        } else {
            Value::String(value)
        };
        obj.insert(percent_decode(&key.replace('+', " ")), parsed);
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A field that may be JSON or a JSON string (form-encoded requests).
fn json_field(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

fn int(p: &Value, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(p: &Value, key: &str) -> Option<bool> {
    match p.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `chat_id` as a number or a numeric string; `@username` chats do not exist here.
fn chat_id(p: &Value) -> Result<i64, ApiError> {
    match p.get("chat_id") {
        None | Some(Value::Null) => Err(bad_request("Bad Request: chat_id is empty")),
        Some(_) => int(p, "chat_id")
            .filter(|id| *id != 0)
            .ok_or_else(|| bad_request("Bad Request: chat not found")),
    }
}

fn envelope(result: ApiResult) -> Response {
    match result {
        Ok(value) => envelope_with(200, json!({"ok": true, "result": value})),
        Err((code, description)) => envelope_with(
            code,
            json!({"ok": false, "error_code": code, "description": description}),
        ),
    }
}

fn envelope_with(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

// ---- Connections that can be dropped -------------------------------------------------------

/// A TCP listener whose connections can be cut from a handler ([`Failure::NetworkDrop`]).
#[derive(Debug)]
struct DropListener {
    inner: TcpListener,
}

/// The handle a handler gets (as `ConnectInfo`) to cut its connection.
#[derive(Debug, Clone)]
struct Conn {
    kill: Arc<AtomicBool>,
}

#[derive(Debug)]
struct DropIo {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl Listener for DropListener {
    type Io = DropIo;
    type Addr = Conn;

    async fn accept(&mut self) -> (DropIo, Conn) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let kill = Arc::new(AtomicBool::new(false));
                    return (DropIo { inner: stream, kill: Arc::clone(&kill) }, Conn { kill });
                }
                // Out of file descriptors and the like: back off a little.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        Ok(Conn { kill: Arc::new(AtomicBool::new(false)) })
    }
}

impl Connected<IncomingStream<'_, DropListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, DropListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl DropIo {
    fn killed(&self) -> bool {
        self.kill.load(Ordering::SeqCst)
    }
}

fn dropped() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection dropped by the fake")
}

impl AsyncRead for DropIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for DropIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.killed() {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed() {
            return Poll::Ready(Err(dropped()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
