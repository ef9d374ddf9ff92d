//! A fake of LINE's Messaging API on 127.0.0.1, and the LINE platform's side of the webhook.
//!
//! It checks what LINE checks: the channel access token (401 without it), the shape and limits
//! of the messages (one to five; a text of at most 5,000 UTF-16 units; a Flex message's
//! `altText` and bubble size; a postback's `data`, `label` and `displayText`), reply tokens
//! used once and only within their lifetime (400 "Invalid reply token"), no retry key on a
//! reply, and on a push a UUID retry key, answered 409 when it was accepted before. Failures
//! can be scripted per endpoint, including a 500 after the push was accepted (a lost answer).
//!
//! Webhook events are signed with the channel secret and posted to the bot's listener; each
//! message, postback and follow event gets a reply token the fake will accept.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const BOT_USER_ID: &str = "Ub0000000000000000000000000000b07";

/// How a message reached the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Reply,
    Push,
}

/// One message the bot got into a chat.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: String,
    pub via: Via,
    /// A text message's text, or a Flex bubble's text (empty if it has none).
    pub text: String,
    /// A Flex message's `altText`.
    pub alt: Option<String>,
    /// A bubble's tappable boxes: `(displayText, data)`.
    pub buttons: Vec<(String, String)>,
    pub message: Value,
}

/// One API call the fake answered.
#[derive(Debug, Clone)]
pub struct LineCall {
    pub path: String,
    pub status: u16,
    pub retry_key: Option<String>,
    pub body: Value,
}

/// A scripted answer to the next call of an endpoint.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Refused with this status and `message`.
    Status(u16, &'static str),
    /// Accepted (delivered), then answered 500: the answer was lost.
    AcceptedThen500,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Reply,
    Push,
}

#[derive(Debug)]
struct ReplyToken {
    to: String,
    issued: Instant,
    used: bool,
}

#[derive(Debug, Default)]
struct Shared {
    calls: Vec<LineCall>,
    delivered: Vec<Delivered>,
    tokens: HashMap<String, ReplyToken>,
    retry_keys: HashSet<String>,
    failures: HashMap<Endpoint, VecDeque<Failure>>,
    /// How long a reply token is good.
    lifetime: Option<Duration>,
    next: u64,
}

/// The fake; it stops when dropped.
#[derive(Debug)]
pub struct FakeLine {
    shared: Arc<Mutex<Shared>>,
    addr: SocketAddr,
    secret: String,
    _stop: oneshot::Sender<()>,
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Mutex<Shared>>,
    token: String,
}

impl FakeLine {
    pub async fn start(token: &str, secret: &str) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Mutex::new(Shared {
            lifetime: Some(Duration::from_secs(60)),
            ..Shared::default()
        }));
        let ctx = Ctx { shared: shared.clone(), token: token.to_owned() };
        let app = Router::new().fallback(handle).with_state(ctx);
        let stop = flowbot_tests::serve(listener, app);
        FakeLine { shared, addr, secret: secret.to_owned(), _stop: stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("state")
    }

    /// Reply tokens issued from now on are good for `lifetime` only.
    pub fn reply_lifetime(&self, lifetime: Duration) {
        self.lock().lifetime = Some(lifetime);
    }

    /// The next call of `endpoint` gets `failure`.
    pub fn fail_next(&self, endpoint: Endpoint, failure: Failure) {
        self.lock().failures.entry(endpoint).or_default().push_back(failure);
    }

    pub fn calls(&self) -> Vec<LineCall> {
        self.lock().calls.clone()
    }

    /// Every message delivered to `to`, in order.
    pub fn messages(&self, to: &str) -> Vec<Delivered> {
        self.lock().delivered.iter().filter(|d| d.to == to).cloned().collect()
    }

    /// Waits for the first message to `to` after the first `since` that `pred` accepts.
    pub async fn wait_message(
        &self,
        to: &str,
        since: usize,
        timeout: Duration,
        pred: impl Fn(&Delivered) -> bool,
    ) -> Option<Delivered> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.messages(to).into_iter().skip(since).find(|d| pred(d)) {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until a call to `path` after the first `since` calls is answered with `status`.
    pub async fn wait_call(
        &self,
        path: &str,
        status: u16,
        since: usize,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.calls().iter().skip(since).any(|c| c.path == path && c.status == status) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn next_id(&self) -> u64 {
        let mut st = self.lock();
        st.next += 1;
        st.next
    }

    /// A new reply token for a chat.
    fn reply_token(&self, to: &str) -> String {
        let token = format!("rt{:030}", self.next_id());
        let mut st = self.lock();
        st.tokens.insert(
            token.clone(),
            ReplyToken { to: to.to_owned(), issued: Instant::now(), used: false },
        );
        token
    }

    /// An event from `user` in `chat` (a user id for a one-to-one chat, a group id `C…`),
    /// with a new event id and, for `with_reply`, a reply token.
    pub fn event(
        &self,
        chat: &str,
        user: &str,
        kind: &str,
        with_reply: bool,
        extra: Value,
    ) -> Value {
        let source = match chat.as_bytes().first() {
            Some(b'C') => json!({ "type": "group", "groupId": chat, "userId": user }),
            Some(b'R') => json!({ "type": "room", "roomId": chat, "userId": user }),
            _ => json!({ "type": "user", "userId": user }),
        };
        let mut event = json!({
            "type": kind,
            "mode": "active",
            "timestamp": 1_750_000_000_000u64,
            "source": source,
            "webhookEventId": format!("01FAKE{:020}", self.next_id()),
            "deliveryContext": { "isRedelivery": false },
        });
        if with_reply {
            event["replyToken"] = json!(self.reply_token(chat));
        }
        if let (Some(event), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                event.insert(k.clone(), v.clone());
            }
        }
        event
    }

    pub fn text_event(&self, chat: &str, user: &str, text: &str) -> Value {
        let message =
            json!({ "message": { "type": "text", "id": "1", "text": text, "quoteToken": "q" } });
        self.event(chat, user, "message", true, message)
    }

    pub fn postback_event(&self, chat: &str, user: &str, data: &str) -> Value {
        self.event(chat, user, "postback", true, json!({ "postback": { "data": data } }))
    }

    /// The body LINE posts for `events`, and its signature.
    pub fn signed(&self, events: &[Value]) -> (String, String) {
        let body = json!({ "destination": BOT_USER_ID, "events": events }).to_string();
        (body.clone(), sign(&self.secret, body.as_bytes()))
    }

    /// Posts `events` to the bot's webhook at `address`, signed; the HTTP status.
    pub async fn post(&self, address: &str, events: &[Value]) -> u16 {
        let (body, signature) = self.signed(events);
        post_raw(address, Some(&signature), &body).await
    }
}

/// Posts `body` to `/line/webhook` with the signature header if given; the HTTP status.
pub async fn post_raw(address: &str, signature: Option<&str>, body: &str) -> u16 {
    let headers = match signature {
        Some(s) => format!("Content-Type: application/json\r\nX-Line-Signature: {s}\r\n"),
        None => "Content-Type: application/json\r\n".to_owned(),
    };
    let (status, _) = flowbot_tests::http_request(
        address,
        "POST /line/webhook HTTP/1.1",
        &headers,
        body.as_bytes(),
    )
    .await;
    status
}

/// Base64(HMAC-SHA256(secret, body)).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, body).as_ref())
}

async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let retry_key =
        headers.get("x-line-retry-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = if auth != Some(&format!("Bearer {}", ctx.token)) {
        (
            401,
            json!({ "message": "Authentication failed. Confirm that the access token in the authorization header is valid." }),
        )
    } else {
        match (method.as_str(), path.as_str()) {
            ("GET", "/v2/bot/info") => (
                200,
                json!({ "userId": BOT_USER_ID, "basicId": "@fakebot", "displayName": "G-MIS案内" }),
            ),
            ("POST", "/v2/bot/message/reply") => reply(&ctx, &json, retry_key.as_deref()),
            ("POST", "/v2/bot/message/push") => push(&ctx, &json, retry_key.as_deref()),
            _ => (404, json!({ "message": "Not found" })),
        }
    };
    ctx.shared.lock().expect("state").calls.push(LineCall { path, status, retry_key, body: json });
    (StatusCode::from_u16(status).expect("status"), axum::Json(answer)).into_response()
}

fn invalid(message: &str) -> (u16, Value) {
    (
        400,
        json!({ "message": "The request body has 1 error(s)", "details": [{ "message": message }] }),
    )
}

fn reply(ctx: &Ctx, body: &Value, retry_key: Option<&str>) -> (u16, Value) {
    if retry_key.is_some() {
        return (400, json!({ "message": "The retry key is not supported on this endpoint" }));
    }
    let messages = match check_messages(&body["messages"]) {
        Ok(m) => m,
        Err(e) => return invalid(&e),
    };
    let mut st = ctx.shared.lock().expect("state");
    if let Some(failure) = st.failures.get_mut(&Endpoint::Reply).and_then(VecDeque::pop_front) {
        match failure {
            Failure::Status(status, message) => return (status, json!({ "message": message })),
            Failure::AcceptedThen500 => {}
        }
    }
    let lifetime = st.lifetime;
    let token = body["replyToken"].as_str().unwrap_or_default();
    let to = match st.tokens.get_mut(token) {
        Some(t) if !t.used && lifetime.is_none_or(|l| t.issued.elapsed() < l) => {
            t.used = true;
            t.to.clone()
        }
        _ => return (400, json!({ "message": "Invalid reply token" })),
    };
    deliver(&mut st, &to, Via::Reply, messages);
    (200, json!({ "sentMessages": [] }))
}

fn push(ctx: &Ctx, body: &Value, retry_key: Option<&str>) -> (u16, Value) {
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let chat_id = to.len() == 33 && matches!(to.as_bytes()[0], b'U' | b'C' | b'R');
    if !chat_id {
        return invalid("The property, 'to', in the request body is invalid");
    }
    if let Some(key) = retry_key
        && !is_uuid(key)
    {
        return (
            400,
            json!({ "message": "The value for the 'X-Line-Retry-Key' header is invalid" }),
        );
    }
    let messages = match check_messages(&body["messages"]) {
        Ok(m) => m,
        Err(e) => return invalid(&e),
    };
    let mut st = ctx.shared.lock().expect("state");
    if let Some(key) = retry_key
        && st.retry_keys.contains(key)
    {
        return (
            409,
            json!({ "message": "The retry key is already accepted", "sentMessages": [] }),
        );
    }
    let failure = st.failures.get_mut(&Endpoint::Push).and_then(VecDeque::pop_front);
    if let Some(Failure::Status(status, message)) = failure {
        return (status, json!({ "message": message }));
    }
    if let Some(key) = retry_key {
        st.retry_keys.insert(key.to_owned());
    }
    deliver(&mut st, &to, Via::Push, messages);
    if let Some(Failure::AcceptedThen500) = failure {
        return (500, json!({ "message": "An error occurred in the server" }));
    }
    (200, json!({ "sentMessages": [] }))
}

fn deliver(st: &mut Shared, to: &str, via: Via, messages: Vec<Value>) {
    for message in messages {
        let (text, alt, buttons) = match message["type"].as_str() {
            Some("flex") => {
                let mut texts = Vec::new();
                let mut buttons = Vec::new();
                walk(&message["contents"], &mut texts, &mut buttons);
                (
                    texts.first().cloned().unwrap_or_default(),
                    message["altText"].as_str().map(str::to_owned),
                    buttons,
                )
            }
            _ => (message["text"].as_str().unwrap_or_default().to_owned(), None, Vec::new()),
        };
        st.delivered.push(Delivered { to: to.to_owned(), via, text, alt, buttons, message });
    }
}

/// The texts of a bubble outside its tappable boxes, and the boxes' `(displayText, data)`.
fn walk(v: &Value, texts: &mut Vec<String>, buttons: &mut Vec<(String, String)>) {
    if let Some(action) = v.get("action") {
        buttons.push((
            action["displayText"].as_str().unwrap_or_default().to_owned(),
            action["data"].as_str().unwrap_or_default().to_owned(),
        ));
        return;
    }
    if v["type"] == "text"
        && let Some(t) = v["text"].as_str()
    {
        texts.push(t.to_owned());
    }
    for key in ["body", "contents"] {
        match &v[key] {
            Value::Array(items) => items.iter().for_each(|i| walk(i, texts, buttons)),
            Value::Object(_) => walk(&v[key], texts, buttons),
            _ => {}
        }
    }
}

/// LINE's checks of `messages`.
fn check_messages(messages: &Value) -> Result<Vec<Value>, String> {
    let list = messages.as_array().ok_or("messages must be an array")?;
    if list.is_empty() || list.len() > 5 {
        return Err(format!("messages: {} items, 1 to 5 allowed", list.len()));
    }
    for m in list {
        match m["type"].as_str() {
            Some("text") => {
                let text = m["text"].as_str().ok_or("text is required")?;
                let len = text.encode_utf16().count();
                if text.is_empty() || len > 5000 {
                    return Err(format!("text: {len} UTF-16 units"));
                }
            }
            Some("flex") => {
                let alt = m["altText"].as_str().ok_or("altText is required")?;
                if alt.is_empty() || alt.chars().count() > 400 {
                    return Err("altText: 1 to 400".into());
                }
                let size = m["contents"].to_string().len();
                if m["contents"]["type"] != "bubble" || size > 30_000 {
                    return Err(format!("contents: a bubble of at most 30 KB ({size})"));
                }
                check_actions(&m["contents"])?;
            }
            other => return Err(format!("unexpected message type {other:?}")),
        }
    }
    Ok(list.clone())
}

fn check_actions(v: &Value) -> Result<(), String> {
    if let Some(a) = v.get("action") {
        if a["type"] != "postback" {
            return Err("only postback actions expected".into());
        }
        // Grapheme clusters are at most the characters: counting characters is stricter.
        let label = a["label"].as_str().unwrap_or_default().chars().count();
        let data = a["data"].as_str().unwrap_or_default().chars().count();
        let display = a["displayText"].as_str().unwrap_or_default().chars().count();
        if label > 40 || data == 0 || data > 300 || display == 0 || display > 300 {
            return Err(format!("action: label {label}, data {data}, displayText {display}"));
        }
    }
    for key in ["body", "contents"] {
        match &v[key] {
            Value::Array(items) => items.iter().try_for_each(check_actions)?,
            Value::Object(_) => check_actions(&v[key])?,
            _ => {}
        }
    }
    Ok(())
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}
