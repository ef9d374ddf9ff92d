//! A fake Slack on 127.0.0.1 for the end-to-end tests: the Web API (`POST /api/METHOD`, with
//! the bot token required as Slack requires it, `Retry-After` on a scripted 429, scripted 5xx)
//! and Socket Mode (`apps.connections.open` with the app token, a WebSocket that sends `hello`
//! and envelopes and records the client's acks). It refuses what Slack refuses (see
//! [`crate::slack_checks`]): a `views.open` without a trigger id it issued in the last 3 s or
//! with one used before, Block Kit over Slack's limits, a thread or a message it never posted;
//! and it records an ack that is late, repeated or for no envelope. [`FakeSlack::assert_clean`]
//! fails a test on any of these.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub const BOT_TOKEN: &str = "xoxb-slack-test-token-do-not-print";
pub const APP_TOKEN: &str = "xapp-slack-test-app-token-do-not-print";

/// One Web API call as the fake received it.
#[derive(Debug, Clone)]
pub struct SlackCall {
    pub method: String,
    pub body: Value,
    pub status: u16,
    /// The `ts` of the message it posted (chat.postMessage).
    pub ts: Option<String>,
    /// Slack's `error` when the fake answered `ok: false` (HTTP 200) to a call it refused.
    pub error: Option<String>,
}

/// How long Slack honours a trigger id.
pub const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);
/// How long Slack waits for a Socket Mode envelope's ack.
pub const ACK_WITHIN: Duration = Duration::from_secs(3);

/// One envelope sent over Socket Mode: when, and when its ack came.
#[derive(Debug, Clone)]
struct Envelope {
    sent: Instant,
    acked: Option<Instant>,
}

#[derive(Default)]
struct State_ {
    calls: Vec<SlackCall>,
    failures: HashMap<String, VecDeque<u16>>,
    next_ts: u64,
    ws_url: String,
    /// The open Socket Mode connection's sender.
    socket: Option<mpsc::UnboundedSender<String>>,
    hello_sent: bool,
    acks: Vec<Value>,
    /// The trigger ids issued: when, and whether `views.open` used it.
    triggers: HashMap<String, (Instant, bool)>,
    /// The messages posted (`channel`, `ts`).
    messages: HashSet<(String, String)>,
    envelopes: HashMap<String, Envelope>,
    /// What the Socket Mode client did wrong (an ack repeated or for no envelope).
    socket_errors: Vec<String>,
}

/// The fake; it stops when dropped.
#[derive(Debug)]
pub struct FakeSlack {
    state: Arc<Mutex<State_>>,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for State_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl FakeSlack {
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let ws = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let ws_url = format!("ws://{}/link", ws.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State_ {
            next_ts: 1_700_000_000_000_100,
            ws_url,
            ..State_::default()
        }));
        tokio::spawn(serve_socket(ws, state.clone()));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let stop = crate::serve(listener, app);
        FakeSlack { state, addr, _stop: stop }
    }

    /// The base URL for `SLACK_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn calls(&self) -> Vec<SlackCall> {
        self.state.lock().expect("state").calls.clone()
    }

    /// The next `n` calls of `method` (or `method:CHANNEL`: those in that channel) fail with
    /// HTTP `status` (429 carries `Retry-After: 1`).
    pub fn fail_next(&self, method: &str, n: usize, status: u16) {
        let mut st = self.state.lock().expect("state");
        st.failures.entry(method.to_owned()).or_default().extend(std::iter::repeat_n(status, n));
    }

    /// The successful calls of `method`.
    pub fn ok(&self, method: &str) -> Vec<SlackCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.status == 200 && c.error.is_none())
            .collect()
    }

    /// A fresh trigger id, as Slack puts in an interaction or command payload; `views.open`
    /// takes it once, within [`TRIGGER_LIFETIME`].
    pub fn trigger(&self) -> String {
        self.trigger_issued(Duration::ZERO)
    }

    /// A trigger id issued `ago`.
    pub fn trigger_issued(&self, ago: Duration) -> String {
        let mut st = self.state.lock().expect("state");
        st.next_ts += 1;
        let id = format!("{}.{}.trig", st.next_ts, st.next_ts % 7919);
        let issued = Instant::now().checked_sub(ago).expect("a time in the past");
        st.triggers.insert(id.clone(), (issued, false));
        id
    }

    /// The calls the fake refused as Slack would (HTTP 200, `ok: false`).
    pub fn refusals(&self) -> Vec<SlackCall> {
        self.calls().into_iter().filter(|c| c.error.is_some()).collect()
    }

    /// What went wrong on the fake's side of the bot: refused calls, envelopes not acked or
    /// acked later than [`ACK_WITHIN`], acks repeated or for no envelope.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .refusals()
            .iter()
            .map(|c| format!("{} refused: {:?} {}", c.method, c.error, c.body))
            .collect();
        let st = self.state.lock().expect("state");
        problems.extend(st.socket_errors.iter().cloned());
        for (id, envelope) in &st.envelopes {
            match envelope.acked {
                None => problems.push(format!("envelope {id} not acknowledged")),
                Some(acked) if acked - envelope.sent > ACK_WITHIN => problems
                    .push(format!("envelope {id} acknowledged after {:?}", acked - envelope.sent)),
                Some(_) => {}
            }
        }
        problems
    }

    /// Fails the test on any of [`FakeSlack::problems`].
    pub fn assert_clean(&self) {
        let problems = self.problems();
        assert!(problems.is_empty(), "the fake Slack saw: {problems:#?}");
    }

    /// Waits (at most `timeout`) until there are more than `seen` successful calls of
    /// `method` matching `matches`; returns the first one after those `seen`.
    pub async fn wait(
        &self,
        method: &str,
        seen: usize,
        timeout: Duration,
        matches: impl Fn(&SlackCall) -> bool,
    ) -> Option<SlackCall> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let found: Vec<SlackCall> =
                self.ok(method).into_iter().filter(|c| matches(c)).collect();
            if found.len() > seen {
                return Some(found[seen].clone());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Waits (at most `timeout`) until a Socket Mode client got its `hello`.
    pub async fn socket_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state.lock().expect("state").hello_sent {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Sends an envelope of `kind` (`events_api`, `interactive`, `slash_commands`) over Socket
    /// Mode; its envelope id.
    pub fn envelope(&self, kind: &str, payload: Value) -> String {
        let mut st = self.state.lock().expect("state");
        st.next_ts += 1;
        let id = format!("env-{}", st.next_ts);
        let frame = json!({"envelope_id": id, "type": kind, "payload": payload,
                           "accepts_response_payload": kind != "events_api", "retry_attempt": 0});
        st.envelopes.insert(id.clone(), Envelope { sent: Instant::now(), acked: None });
        let socket = st.socket.as_ref().expect("a Socket Mode client is connected");
        socket.send(frame.to_string()).expect("the connection is open");
        id
    }

    /// Waits (at most `timeout`) for the client's ack of envelope `id`.
    pub async fn ack(&self, id: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let found = {
                let st = self.state.lock().expect("state");
                st.acks.iter().find(|a| a["envelope_id"] == id).cloned()
            };
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

/// A form-encoded or JSON body as JSON (slack-morphism posts JSON for chat.* and views.*,
/// form fields for apps.connections.open).
fn body_json(headers: &HeaderMap, body: &[u8]) -> Value {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        let fields: serde_json::Map<String, Value> = url_decode(body);
        return Value::Object(fields);
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn url_decode(body: &[u8]) -> serde_json::Map<String, Value> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect()
}

async fn handle(
    State(state): State<Arc<Mutex<State_>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let method = uri.path().trim_start_matches("/api").trim_start_matches('/').to_owned();
    let body = body_json(&headers, &body);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut st = state.lock().expect("state");
    let record = |status: u16, ts: Option<String>, st: &mut State_| {
        st.calls.push(SlackCall {
            method: method.clone(),
            body: body.clone(),
            status,
            ts,
            error: None,
        });
    };
    let channel_key = format!("{method}:{}", body["channel"].as_str().unwrap_or_default());
    let failure = match st.failures.get_mut(&channel_key).and_then(VecDeque::pop_front) {
        Some(status) => Some(status),
        None => st.failures.get_mut(&method).and_then(VecDeque::pop_front),
    };
    if let Some(status) = failure {
        record(status, None, &mut st);
        let mut response = (
            StatusCode::from_u16(status).expect("status"),
            json!({"ok": false, "error": "injected"}).to_string(),
        )
            .into_response();
        if status == 429 {
            response.headers_mut().insert("retry-after", "1".parse().expect("header"));
        }
        return response;
    }
    let wanted = if method == "apps.connections.open" { APP_TOKEN } else { BOT_TOKEN };
    if auth != format!("Bearer {wanted}") {
        return refuse(&mut st, method, body, json!({"ok": false, "error": "invalid_auth"}));
    }
    let fields = &mut *st;
    let mut known = Known { triggers: &mut fields.triggers, messages: &fields.messages };
    if let Err(refusal) = crate::slack_checks::check(&method, &body, &mut known) {
        return refuse(&mut st, method, body, refusal);
    }
    st.next_ts += 1;
    let ts = format!("{}.{:06}", st.next_ts / 1_000_000, st.next_ts % 1_000_000);
    let text = body["text"].clone();
    let answer = match method.as_str() {
        "chat.postMessage" => {
            record(200, Some(ts.clone()), &mut st);
            let channel = body["channel"].as_str().unwrap_or_default().to_owned();
            st.messages.insert((channel, ts.clone()));
            json!({"ok": true, "channel": body["channel"], "ts": ts,
                   "message": {"type": "message", "ts": ts, "text": text}})
        }
        "chat.update" => {
            record(200, None, &mut st);
            json!({"ok": true, "channel": body["channel"], "ts": body["ts"],
                   "message": {"text": text}})
        }
        "chat.postEphemeral" => {
            record(200, None, &mut st);
            json!({"ok": true, "message_ts": ts})
        }
        "views.open" => {
            record(200, None, &mut st);
            let mut view = body["view"].clone();
            view["id"] = json!(format!("V{}", st.next_ts));
            view["team_id"] = json!("T1");
            view["hash"] = json!("h1");
            view["state"] = json!({"values": {}});
            json!({"ok": true, "view": view})
        }
        "apps.connections.open" => {
            record(200, None, &mut st);
            json!({"ok": true, "url": st.ws_url})
        }
        _ => {
            record(200, None, &mut st);
            json!({"ok": false, "error": "unknown_method"})
        }
    };
    axum::Json(answer).into_response()
}

/// Records a call the fake refused, and answers as Slack does: HTTP 200, `ok: false`.
fn refuse(st: &mut State_, method: String, body: Value, answer: Value) -> Response {
    let error = answer["error"].as_str().map(str::to_owned);
    st.calls.push(SlackCall { method, body, status: 200, ts: None, error });
    axum::Json(answer).into_response()
}

/// What the fake issued, for [`crate::slack_checks::check`].
#[derive(Debug)]
pub struct Known<'a> {
    /// Trigger ids: when issued, whether used.
    pub triggers: &'a mut HashMap<String, (Instant, bool)>,
    /// Messages posted: (`channel`, `ts`).
    pub messages: &'a HashSet<(String, String)>,
}

/// Serves Socket Mode connections: `hello`, then the envelopes sent with
/// [`FakeSlack::envelope`]; records what the client sends back (acks).
async fn serve_socket(listener: TcpListener, state: Arc<Mutex<State_>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
            let (mut sink, mut stream) = ws.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            let hello = json!({"type": "hello", "num_connections": 1,
                               "debug_info": {"host": "fake"}, "connection_info": {"app_id": "A1"}});
            if sink.send(Message::Text(hello.to_string())).await.is_err() {
                return;
            }
            {
                let mut st = state.lock().expect("state");
                st.socket = Some(tx);
                st.hello_sent = true;
            }
            loop {
                tokio::select! {
                    frame = rx.recv() => match frame {
                        Some(frame) => {
                            if sink.send(Message::Text(frame)).await.is_err() {
                                return;
                            }
                        }
                        None => return,
                    },
                    message = stream.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                            acked(&mut state.lock().expect("state"), value);
                        }
                        Some(Ok(Message::Ping(data))) => {
                            let _ = sink.send(Message::Pong(data)).await;
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                }
            }
        });
    }
}

/// A frame from the Socket Mode client: the ack of an envelope sent and not acked yet.
fn acked(st: &mut State_, ack: Value) {
    let id = ack["envelope_id"].as_str().unwrap_or_default().to_owned();
    match st.envelopes.get_mut(&id) {
        None => st.socket_errors.push(format!("an ack for no envelope: {ack}")),
        Some(Envelope { acked: Some(_), .. }) => {
            st.socket_errors.push(format!("envelope {id} acknowledged twice"));
        }
        Some(envelope) => envelope.acked = Some(Instant::now()),
    }
    st.acks.push(ack);
}
