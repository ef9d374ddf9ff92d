//! A fake of Discord's REST API on 127.0.0.1: command registration, interaction responses and
//! follow-ups, the original response of an interaction, messages posted and edited in channels
//! (the hand-off destination, and replies whose interaction could not be used).
//!
//! serenity reaches it through `HttpBuilder::proxy` (its rate limiter off), so requests arrive
//! as `/api/v10/...`. Calls are recorded; failures can be injected per route kind. Channel
//! calls need the bot token ([`FakeDiscord::require_token`]); interaction calls, as on Discord,
//! are authorised by the interaction's token in the path.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const APPLICATION_ID: &str = "1200000000000000001";
pub const BOT_USER_ID: &str = "1200000000000000002";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct DiscordCall {
    pub method: String,
    pub path: String,
    pub body: Value,
    /// The HTTP status the fake answered with.
    pub status: u16,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// Which requests a failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Commands,
    Followup,
    /// `POST /channels/{id}/messages`.
    ChannelMessage,
    /// `PATCH /channels/{id}/messages/{id}`.
    EditMessage,
    /// `POST /interactions/{id}/{token}/callback`: the interaction's response (gateway mode).
    Callback,
}

#[derive(Debug, Default)]
struct State_ {
    /// `ws://…` of the fake gateway.
    gateway: String,
    /// Whether a client has identified on the gateway.
    identified: bool,
    /// Events to send to the connected gateway client.
    events: Option<tokio::sync::mpsc::UnboundedSender<Value>>,
    calls: Vec<DiscordCall>,
    failures: HashMap<Kind, VecDeque<u16>>,
    next_message: u64,
    /// The bot token channel calls must carry (`Authorization: Bot TOKEN`); `None`: any.
    token: Option<String>,
}

/// The fake; it stops when dropped.
#[derive(Debug)]
pub struct FakeDiscord {
    state: Arc<Mutex<State_>>,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let ws = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let gateway = format!("ws://{}", ws.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(State_ {
            next_message: 1_500_000_000_000_000_000,
            gateway,
            ..State_::default()
        }));
        tokio::spawn(serve_gateway(ws, state.clone()));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let stop = crate::serve(listener, app);
        FakeDiscord { state, addr, _stop: stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<DiscordCall> {
        self.state.lock().expect("state").calls.clone()
    }

    /// The next `n` requests of `kind` fail with HTTP `status` (429 carries `retry_after`).
    pub fn fail_next(&self, kind: Kind, n: usize, status: u16) {
        let mut st = self.state.lock().expect("state");
        st.failures.entry(kind).or_default().extend(std::iter::repeat_n(status, n));
    }

    /// Forgets the failures not yet used.
    pub fn clear_failures(&self) {
        self.state.lock().expect("state").failures.clear();
    }

    /// Channel calls (`/channels/…`) without `Authorization: Bot TOKEN` are refused with 401.
    pub fn require_token(&self, token: &str) {
        self.state.lock().expect("state").token = Some(token.to_owned());
    }

    /// Every successful `PATCH /channels/{channel}/messages/{message}` so far, oldest first.
    pub fn edits(&self, channel: &str, message: &str) -> Vec<Value> {
        let path = format!("/api/v10/channels/{channel}/messages/{message}");
        self.calls()
            .into_iter()
            .filter(|c| c.method == "PATCH" && c.path == path && c.status == 200)
            .map(|c| c.body)
            .collect()
    }

    /// Waits (at most `timeout`) until a client identified on the gateway.
    pub async fn gateway_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state.lock().expect("state").identified {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Sends an `INTERACTION_CREATE` dispatch to the gateway client.
    pub fn dispatch_interaction(&self, interaction: Value) {
        let st = self.state.lock().expect("state");
        let events = st.events.as_ref().expect("a gateway client is connected");
        events.send(interaction).expect("the gateway connection is open");
    }

    /// Waits for the interaction callback (`POST /interactions/{id}/{token}/callback`) of
    /// interaction `id`, and returns its body.
    pub async fn callback(&self, id: &str, timeout: Duration) -> Option<Value> {
        let prefix = format!("/api/v10/interactions/{id}/");
        self.wait_call(timeout, |c| c.path.starts_with(&prefix)).await
    }

    /// Waits (at most `timeout`) for a successful follow-up to the interaction with `token`,
    /// and returns its body.
    pub async fn followup(&self, token: &str, timeout: Duration) -> Option<Value> {
        let path = format!("/api/v10/webhooks/{APPLICATION_ID}/{token}");
        self.wait_call(timeout, |c| c.path == path && c.status == 200).await
    }

    /// Every successful follow-up to the interaction with `token` so far, oldest first.
    pub fn followups(&self, token: &str) -> Vec<Value> {
        let path = format!("/api/v10/webhooks/{APPLICATION_ID}/{token}");
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.path == path && c.status == 200)
            .map(|c| c.body)
            .collect()
    }

    /// Every `POST /channels/{channel}/messages` so far (failed ones too), oldest first.
    pub fn channel_posts(&self, channel: &str) -> Vec<DiscordCall> {
        let path = format!("/api/v10/channels/{channel}/messages");
        self.calls().into_iter().filter(|c| c.method == "POST" && c.path == path).collect()
    }

    /// Waits (at most `timeout`) for a message posted successfully in `channel`, and returns
    /// its body.
    pub async fn channel_message(&self, channel: &str, timeout: Duration) -> Option<Value> {
        let path = format!("/api/v10/channels/{channel}/messages");
        self.wait_call(timeout, |c| c.path == path && c.status == 200).await
    }

    /// The body of the latest POST matching `pred`, waiting at most `timeout` for one.
    async fn wait_call(
        &self,
        timeout: Duration,
        pred: impl Fn(&DiscordCall) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let found = self
                .state
                .lock()
                .expect("state")
                .calls
                .iter()
                .rev()
                .find(|c| c.method == "POST" && pred(c))
                .map(|c| c.body.clone());
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

async fn handle(
    State(state): State<Arc<Mutex<State_>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let original = path.starts_with("/api/v10/webhooks/") && path.ends_with("/messages/@original");
    let kind = if path.ends_with("/commands") {
        Some(Kind::Commands)
    } else if path.starts_with("/api/v10/webhooks/") && method == Method::POST {
        Some(Kind::Followup)
    } else if method == Method::POST
        && path.starts_with("/api/v10/channels/")
        && path.ends_with("/messages")
    {
        Some(Kind::ChannelMessage)
    } else if method == Method::PATCH
        && path.starts_with("/api/v10/channels/")
        && path.split('/').nth(5) == Some("messages")
    {
        Some(Kind::EditMessage)
    } else if method == Method::POST && path.starts_with("/api/v10/interactions/") {
        Some(Kind::Callback)
    } else {
        None
    };
    let mut st = state.lock().expect("state");
    let unauthorized = path.starts_with("/api/v10/channels/")
        && st.token.as_ref().is_some_and(|t| authorization.as_deref() != Some(&format!("Bot {t}")));
    let failure = if unauthorized {
        Some(401)
    } else {
        kind.and_then(|k| st.failures.get_mut(&k).and_then(VecDeque::pop_front))
    };
    // The original response of an interaction exists once a response was taken.
    let answered = original.then(|| {
        let token = path.split('/').nth(5).unwrap_or_default();
        st.calls.iter().any(|c| {
            c.status < 300
                && c.path.starts_with("/api/v10/interactions/")
                && c.path.split('/').nth(5) == Some(token)
        })
    });
    let status = failure.unwrap_or(if answered == Some(false) { 404 } else { 200 });
    st.calls.push(DiscordCall {
        method: method.to_string(),
        path: path.clone(),
        body: body.clone(),
        status,
        authorization,
    });
    if unauthorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response();
    }
    if let Some(status) = failure {
        let body =
            json!({"message": "injected failure", "code": 0, "retry_after": 0.2, "global": false});
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response();
    }
    match kind {
        Some(Kind::Commands) => axum::Json(json!([])).into_response(),
        Some(Kind::Followup) => {
            st.next_message += 1;
            let id = st.next_message.to_string();
            axum::Json(message(&id, "1300000000000000001", &body["content"], &body["components"], None)).into_response()
        }
        Some(Kind::ChannelMessage) => {
            st.next_message += 1;
            let id = st.next_message.to_string();
            let channel = path.split('/').nth(4).unwrap_or_default().to_owned();
            axum::Json(message(&id, &channel, &body["content"], &body["components"], None))
                .into_response()
        }
        Some(Kind::EditMessage) => {
            let channel = path.split('/').nth(4).unwrap_or_default().to_owned();
            let id = path.split('/').nth(6).unwrap_or_default().to_owned();
            axum::Json(message(&id, &channel, &body["content"], &body["components"], None))
                .into_response()
        }
        Some(Kind::Callback) => StatusCode::NO_CONTENT.into_response(),
        None if answered == Some(true) => {
            axum::Json(message("1500000000000000000", "1300000000000000001", &json!(""), &json!([]), None))
                .into_response()
        }
        None if answered == Some(false) => {
            (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Unknown Message", "code": 10008})))
                .into_response()
        }
        None if path == "/api/v10/gateway" => axum::Json(json!({"url": st.gateway})).into_response(),
        None if path == "/api/v10/oauth2/applications/@me" => axum::Json(json!({
            "id": APPLICATION_ID, "name": "flowbot", "icon": null, "description": "", "bot_public": true,
            "bot_require_code_grant": false, "verify_key": "00", "flags": 0,
            "owner": user(BOT_USER_ID, "owner"),
        }))
        .into_response(),
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "404: Not Found", "code": 0}))).into_response(),
    }
}

/// A user object as Discord sends it.
pub fn user(id: &str, name: &str) -> Value {
    json!({"id": id, "username": name, "discriminator": "0", "global_name": name, "avatar": null})
}

/// A message object as Discord sends it, with every field serenity requires.
pub fn message(
    id: &str,
    channel: &str,
    content: &Value,
    components: &Value,
    metadata: Option<Value>,
) -> Value {
    let mut m = json!({
        "id": id, "channel_id": channel, "author": {"id": BOT_USER_ID, "username": "flowbot", "discriminator": "0", "avatar": null, "bot": true},
        "content": content.as_str().unwrap_or_default(), "timestamp": "2024-01-01T00:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0, "flags": 0,
        "components": if components.is_array() { components.clone() } else { json!([]) },
    });
    if let Some(metadata) = metadata {
        m["interaction_metadata"] = metadata;
    }
    m
}

/// The fake gateway: Hello, READY after Identify, heartbeat acks, and queued dispatches.
async fn serve_gateway(listener: TcpListener, state: Arc<Mutex<State_>>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    while let Ok((stream, _)) = listener.accept().await {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { continue };
        let (mut sink, mut source) = ws.split();
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel::<Value>();
        state.lock().expect("state").events = Some(tx);
        let state = state.clone();
        tokio::spawn(async move {
            let hello = json!({"op": 10, "d": {"heartbeat_interval": 45000}});
            if sink.send(Message::Text(hello.to_string())).await.is_err() {
                return;
            }
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    incoming = source.next() => {
                        let Some(Ok(Message::Text(text))) = incoming else { break };
                        let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        let reply = match frame["op"].as_u64() {
                            Some(1) => Some(json!({"op": 11})),
                            Some(2) => {
                                state.lock().expect("state").identified = true;
                                seq += 1;
                                Some(json!({"op": 0, "s": seq, "t": "READY", "d": {
                                    "v": 10, "user": {"id": BOT_USER_ID, "username": "flowbot", "discriminator": "0", "avatar": null, "bot": true},
                                    "guilds": [], "session_id": "session", "resume_gateway_url": "ws://127.0.0.1:1",
                                    "shard": [0, 1], "application": {"id": APPLICATION_ID, "flags": 0},
                                }}))
                            }
                            _ => None,
                        };
                        if let Some(reply) = reply
                            && sink.send(Message::Text(reply.to_string())).await.is_err()
                        {
                            break;
                        }
                    }
                    event = events.recv() => {
                        let Some(d) = event else { break };
                        seq += 1;
                        let frame = json!({"op": 0, "s": seq, "t": "INTERACTION_CREATE", "d": d});
                        if sink.send(Message::Text(frame.to_string())).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}
