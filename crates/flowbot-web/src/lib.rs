//! The web chat: the flow in a browser page at `/chat` on the shared HTTP listener.
//!
//! A help desk's link (`https://…/chat?start=ENTRY`, from `flowbot link --platform web`) opens
//! a page that talks to `/chat/api` in JSON. The conversation is keyed by a random session id in
//! an `HttpOnly`, `SameSite=Strict` cookie; every state-changing request carries a custom header
//! (so another site cannot send one) and a client-chosen id, which is the store's event id: a
//! retried request is applied once. The page renders every text as text (links only from the
//! core's URL and e-mail segments), and holds no conversation logic: what to show comes from
//! the engine, as for every adapter.
//!
//! ```text
//! GET  /chat            the page (static; its script and style beside it)
//! GET  /chat/api        the prompt the session's conversation waits at, if any
//! POST /chat/api        one input: {"id": "…", "start": "ENTRY" | null}, {"id", "press": TOKEN},
//!                       {"id", "text": "…"}, {"id", "command": "back" | "restart" | "help"}
//! ```

mod platform;

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flowbot_core::{
    Action, Button, ConversationKey, Flow, Input, Limits, Outcome, Paragraph, Part, Prompt,
    Segment, View,
};
use flowbot_store::{Handled, Service, Update};
use serde::Deserialize;
use serde_json::{Value, json};

/// What the web chat allows: anything a flow can hold (the page wraps long labels and texts,
/// and a request body of 16 KiB holds any token).
pub const LIMITS: Limits = Limits { platform: "the web chat", ..Limits::NONE };

pub use platform::Options;

/// The page's routes.
pub const CHAT_PATH: &str = "/chat";
const API_PATH: &str = "/chat/api";
const COOKIE: &str = "flowbot_session";
/// The header every POST must carry: a cross-site form cannot set it, and a cross-site script
/// would need a CORS preflight that is never granted.
const CSRF_HEADER: &str = "x-flowbot";
/// The largest request body taken (a typed answer is far smaller).
const MAX_BODY: usize = 16 * 1024;
/// How long the session cookie lives: as long as a conversation can (30 days).
const COOKIE_MAX_AGE: u64 = 30 * 24 * 60 * 60;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// The web chat, on a service.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

struct Inner {
    service: Arc<Service>,
    /// Mark the cookie `Secure` (the public address is https).
    secure: bool,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("secure", &self.inner.secure).finish_non_exhaustive()
    }
}

impl Web {
    /// `secure`: the page is served over https (behind a proxy), so the cookie says so.
    pub fn new(service: Arc<Service>, secure: bool) -> Self {
        Web { inner: Arc::new(Inner { service, secure }) }
    }

    /// The routes for the shared listener.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(CHAT_PATH, get(page))
            .route(
                "/chat/app.js",
                get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
            )
            .route("/chat/app.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
            .route(API_PATH, get(current).post(input))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }
}

/// The page's link for an entry point: `BASE/chat?start=ENTRY` (entry names are URL-safe).
///
/// ```
/// assert_eq!(
///     flowbot_web::link("https://bot.pref.example.jp/", Some("taiou3")),
///     "https://bot.pref.example.jp/chat?start=taiou3"
/// );
/// ```
pub fn link(base: &str, entry: Option<&str>) -> String {
    let base = base.trim_end_matches('/');
    match entry {
        Some(entry) => format!("{base}{CHAT_PATH}?start={entry}"),
        None => format!("{base}{CHAT_PATH}"),
    }
}

async fn page() -> Response {
    let mut response = asset(PAGE, "text/html; charset=utf-8");
    // Only our own script and style; no framing by other sites.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    response
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One input from the page: exactly one of `start`, `press`, `text`, `command`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// The client's id for this request (a retry repeats it): the store's event id.
    id: String,
    #[serde(default, deserialize_with = "present")]
    start: Option<Option<String>>,
    press: Option<String>,
    text: Option<String>,
    command: Option<String>,
}

/// `"start": null` is a start without an entry; a missing `start` is no start.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The session of a request: its cookie, or a new one to set.
struct Session {
    id: String,
    new: bool,
}

impl Session {
    fn of(headers: &HeaderMap) -> Result<Self, String> {
        let existing = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, value)| *name == COOKIE && is_session_id(value))
            .map(|(_, value)| value.to_owned());
        match existing {
            Some(id) => Ok(Session { id, new: false }),
            None => {
                let mut bytes = [0u8; 16];
                getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
                let id = bytes.iter().map(|b| format!("{b:02x}")).collect();
                Ok(Session { id, new: true })
            }
        }
    }

    fn key(&self) -> ConversationKey {
        ConversationKey::new("web", &self.id, &self.id)
    }

    /// Adds the cookie to a response: for a new session, and again on every input, so that it
    /// lives as long as the conversation does (30 days after the last change).
    fn attach(&self, secure: bool, refresh: bool, mut response: Response) -> Response {
        if self.new || refresh {
            let cookie = format!(
                "{COOKIE}={}; Path={CHAT_PATH}; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict{}",
                self.id,
                if secure { "; Secure" } else { "" }
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn is_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn is_request_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// `GET /chat/api`: the flow's title and the prompt the conversation waits at (none yet: the
/// page starts one).
async fn current(State(web): State<Web>, headers: HeaderMap) -> Response {
    let session = match Session::of(&headers) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let service = &web.inner.service;
    let title = service.flow().title().to_owned();
    let shown = if session.new {
        Ok(None)
    } else {
        service.current(&session.key(), service.now(), |_, prompt| prompt_json(&prompt)).await
    };
    let response = match shown {
        Ok(prompt) => {
            let replies: Vec<Value> = prompt.into_iter().collect();
            Json(json!({"title": title, "replies": replies})).into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "web: cannot read a conversation");
            error(StatusCode::SERVICE_UNAVAILABLE, "the conversation store is unavailable")
        }
    };
    session.attach(web.inner.secure, false, response)
}

/// `POST /chat/api`: one input, applied once per request id.
async fn input(State(web): State<Web>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return error(StatusCode::FORBIDDEN, "missing the x-flowbot header");
    }
    let request: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("malformed request: {e}")),
    };
    if !is_request_id(&request.id) {
        return error(StatusCode::BAD_REQUEST, "`id` must be 1 to 64 of A-Z a-z 0-9 -");
    }
    let command = match request.command.as_deref() {
        None => None,
        Some("back") => Some(Input::Back),
        Some("restart") => Some(Input::Restart),
        Some("help") => Some(Input::Help),
        Some(_) => return error(StatusCode::BAD_REQUEST, "`command` is back, restart or help"),
    };
    let given = [
        request.start.is_some(),
        request.press.is_some(),
        request.text.is_some(),
        command.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return error(StatusCode::BAD_REQUEST, "give exactly one of start, press, text, command");
    }
    let input = match (&request.start, &request.press, &request.text, command) {
        (Some(entry), ..) => Input::Start { entry: entry.as_deref().filter(|e| !e.is_empty()) },
        (_, Some(token), ..) => Input::Press(token),
        (_, _, Some(text), _) => Input::Text(text),
        (_, _, _, Some(command)) => command,
        _ => return error(StatusCode::BAD_REQUEST, "nothing to do"),
    };
    let session = match Session::of(&headers) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let key = session.key();
    let event = format!("web:{}:{}", session.id, request.id);
    let update = Update { key: &key, event: Some(&event), input, now: web.inner.service.now() };
    let response = match web.inner.service.handle(update, render).await {
        Ok(Handled::Done(body)) => Json(body).into_response(),
        // A retry of a request already applied (its answer was lost): what is on screen now.
        Ok(Handled::Duplicate) => {
            match web
                .inner
                .service
                .current(&key, web.inner.service.now(), |_, p| prompt_json(&p))
                .await
            {
                Ok(prompt) => {
                    let replies: Vec<Value> = prompt.into_iter().collect();
                    Json(json!({"replies": replies, "duplicate": true})).into_response()
                }
                Err(err) => {
                    tracing::error!(error = %err, "web: cannot read a conversation");
                    error(StatusCode::SERVICE_UNAVAILABLE, "the conversation store is unavailable")
                }
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "web: an input could not be applied");
            error(StatusCode::SERVICE_UNAVAILABLE, "the conversation store is unavailable")
        }
    };
    session.attach(web.inner.secure, true, response)
}

/// An outcome as the page draws it.
fn render(_: &Flow, outcome: &Outcome<'_>) -> Value {
    let view = View::new(outcome);
    json!({"replies": replies(&view), "changed": view.changed})
}

fn prompt_json(prompt: &Prompt<'_>) -> Value {
    replies(&View::of_prompt(prompt)).pop().unwrap_or_default()
}

/// The replies of a view: one entry per paragraph, the prompt's text, note and buttons in one.
fn replies(view: &View<'_>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut paragraphs = view.paragraphs.iter().peekable();
    while let Some(p) = paragraphs.next() {
        out.push(match p.part {
            Part::Notice(kind) => {
                json!({"kind": "notice", "notice": kind.name(), "text": text_json(p)})
            }
            Part::Say(_) => json!({"kind": "say", "text": text_json(p)}),
            Part::Handoff(_) => json!({"kind": "handoff", "text": text_json(p)}),
            Part::Note => continue,
            Part::Prompt(node) => {
                let note = paragraphs.next_if(|n| matches!(n.part, Part::Note)).map(text_json);
                let Some(prompt) = &view.prompt else { continue };
                let button = |b: &Button<'_>, nav: bool| {
                    json!({"label": b.label, "token": b.token.to_string(), "nav": nav})
                };
                let buttons: Vec<Value> = prompt
                    .choices
                    .iter()
                    .map(|b| button(b, false))
                    .chain(prompt.nav.iter().map(|b| {
                        button(b, matches!(b.token.action, Action::Back | Action::Restart))
                    }))
                    .collect();
                // At a form field the page's text box is the answer box.
                let input = prompt.input.map(|(_, field)| json!({"label": field.label()}));
                json!({
                    "kind": "prompt",
                    "node": node.id(),
                    "text": text_json(p),
                    "note": note,
                    "buttons": buttons,
                    "input": input,
                    "ending": prompt.ending,
                })
            }
        });
    }
    out
}

/// A text as segments the page turns into text nodes and links.
fn text_json(paragraph: &Paragraph<'_>) -> Value {
    let parts: Vec<Value> = paragraph
        .segments()
        .into_iter()
        .map(|segment| match segment {
            Segment::Plain(s) => json!({"t": "text", "v": s}),
            Segment::Url(s) => json!({"t": "url", "v": s}),
            Segment::Email(s) => json!({"t": "email", "v": s}),
        })
        .collect();
    Value::Array(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_entries() {
        assert_eq!(
            link("https://bot.example.jp/", Some("taiou3")),
            "https://bot.example.jp/chat?start=taiou3"
        );
        assert_eq!(link("https://bot.example.jp", None), "https://bot.example.jp/chat");
    }

    #[test]
    fn session_and_request_ids_are_checked() {
        assert!(is_session_id(&"a1".repeat(16)));
        assert!(!is_session_id(&"A1".repeat(16)));
        assert!(!is_session_id("short"));
        assert!(is_request_id("r-1"));
        assert!(!is_request_id(""));
        assert!(!is_request_id(&"x".repeat(65)));
        assert!(!is_request_id("a b"));
    }
}
