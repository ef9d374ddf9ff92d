//! `/chat/api`: the page's JSON API (see `API.md`), behind the rate limits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flowbot_core::{Conversation, Input};
use flowbot_store::{Handled, Update};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::session::Session;
use crate::{Web, limit, notices, render};

/// The header every POST must carry: a cross-site form cannot set it, and a cross-site script
/// would need a CORS preflight that is never granted.
const CSRF_HEADER: &str = "x-flowbot";
/// The longest entry name taken from a link (longer ones are no entry of any flow).
const MAX_ENTRY: usize = 128;

/// The TCP peer's address, when the listener records it (`ConnectInfo`).
pub(crate) struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
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

pub(crate) fn is_request_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The first character of `s` that is refused in anything typed: a control character other
/// than a line break or a tab (which the engine folds into spaces).
pub(crate) fn refused_char(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t'))
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// 429 with `Retry-After`.
fn too_many(wait: Duration, message: &str) -> Response {
    let seconds = limit::retry_after(wait);
    let mut response =
        (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": message, "retry_after": seconds})))
            .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unavailable(err: &dyn std::fmt::Display, what: &str) -> Response {
    tracing::error!(error = %err, "web: {what}");
    error(StatusCode::SERVICE_UNAVAILABLE, "the conversation store is unavailable")
}

impl Web {
    /// The per-client limit for one request: `None` to go on, or the 429.
    fn admit(&self, headers: &HeaderMap, peer: Peer) -> Option<Response> {
        let client = limit::client_address(headers, peer.0, self.inner.trusted.as_ref());
        let wait = self.inner.limiter.request(client).err()?;
        tracing::debug!("web: a client over its request limit");
        Some(too_many(wait, "too many requests from this address: try again later"))
    }

    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.inner
            .sessions
            .of(headers)
            .inspect_err(|e| tracing::error!(error = %e, "web: no session id"))
            .ok()
    }
}

fn no_session() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "cannot issue a session")
}

/// `GET /chat/api[?start=ENTRY]`: the flow's title, the desk's notices waiting for this
/// session (then marked done), and the session's conversation as a reload shows it (the
/// questions answered and the prompt it waits at); without one, what a start would show, as a
/// preview: nothing is stored until the first input.
pub(crate) async fn current(
    State(web): State<Web>,
    peer: Peer,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(refused) = web.admit(&headers, peer) {
        return refused;
    }
    let Some(session) = web.session(&headers) else { return no_session() };
    let service = &web.inner.service;
    let now = service.now();
    let shown = if session.new {
        Ok(None)
    } else {
        service.conversation(&session.key(), now, render::conversation).await
    };
    let (history, replies, preview) = match shown {
        Ok(Some((history, prompt))) => (history, vec![prompt], false),
        Ok(None) => {
            let flow = service.flow();
            let entry = uri
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find_map(|(name, value)| (name == "start").then_some(value))
                })
                .filter(|e| !e.is_empty() && e.len() <= MAX_ENTRY && refused_char(e).is_none());
            let (_, outcome) = Conversation::start(&flow, entry.as_deref(), now);
            (Vec::new(), render::replies_of(&outcome), true)
        }
        Err(err) => return unavailable(&err, "cannot read a conversation"),
    };
    let waiting = notices::waiting(service, &session).await;
    let shown: Vec<Value> = waiting.iter().map(|n| render::notice(&n.body)).collect();
    let body = json!({
        "title": service.flow().title(),
        "notices": shown,
        "history": history,
        "replies": replies,
        "preview": preview,
    });
    let response = session.attach(web.inner.secure, false, Json(body).into_response());
    // Marked only now that the answer showing them is made (see `notices`).
    notices::shown(service, &waiting).await;
    response
}

/// `POST /chat/api`: one input, applied once per request id.
pub(crate) async fn input(
    State(web): State<Web>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = web.admit(&headers, peer) {
        return refused;
    }
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
    let typed = [request.start.as_ref().and_then(Option::as_ref), request.press.as_ref()]
        .into_iter()
        .chain([request.text.as_ref()])
        .flatten();
    for value in typed {
        if let Some(c) = refused_char(value) {
            let message = format!(
                "control character U+{:04X} refused: only line breaks and tabs may be typed",
                u32::from(c)
            );
            return error(StatusCode::UNPROCESSABLE_ENTITY, &message);
        }
    }
    let input = match (&request.start, &request.press, &request.text, command) {
        (Some(entry), ..) => Input::Start { entry: entry.as_deref().filter(|e| !e.is_empty()) },
        (_, Some(token), ..) => Input::Press(token),
        (_, _, Some(text), _) => Input::Text(text),
        (_, _, _, Some(command)) => command,
        _ => return error(StatusCode::BAD_REQUEST, "nothing to do"),
    };
    let Some(session) = web.session(&headers) else { return no_session() };
    let service = &web.inner.service;
    let key = session.key();
    // Whatever the input, it opens a conversation where there is none (or only an expired one):
    // that is what the global cap counts.
    let exists = if session.new {
        false
    } else {
        match service.conversation(&key, service.now(), |_, _| ()).await {
            Ok(found) => found.is_some(),
            Err(err) => return unavailable(&err, "cannot read a conversation"),
        }
    };
    if !exists && let Err(wait) = web.inner.limiter.new_conversation() {
        let response = too_many(wait, "too many new conversations: try again later");
        // A new session's cookie is still set: its next try is no newer than this one.
        return session.attach(web.inner.secure, false, response);
    }
    let event = format!("web:{}:{}", session.id, request.id);
    let update = Update { key: &key, event: Some(&event), input, now: service.now() };
    let response = match service.handle(update, render::outcome).await {
        Ok(Handled::Done(body)) => Json(body).into_response(),
        // A retry of a request already applied (its answer was lost): what is on screen now.
        Ok(Handled::Duplicate) => {
            match service.current(&key, service.now(), |_, p| render::prompt(&p)).await {
                Ok(prompt) => {
                    let replies: Vec<Value> = prompt.into_iter().collect();
                    Json(json!({"replies": replies, "duplicate": true})).into_response()
                }
                Err(err) => unavailable(&err, "cannot read a conversation"),
            }
        }
        Err(err) => unavailable(&err, "an input could not be applied"),
    };
    session.attach(web.inner.secure, true, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(is_request_id("r-1"));
        assert!(!is_request_id(""));
        assert!(!is_request_id(&"x".repeat(65)));
        assert!(!is_request_id("a b"));
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_and_tabs() {
        assert_eq!(refused_char("福島\n中央\t病院"), None);
        for bad in ["a\0b", "\u{7}", "\u{1b}[31m", "\r", "\u{7f}", "\u{85}", "\u{9f}"] {
            assert!(refused_char(bad).is_some(), "{bad:?}");
        }
    }
}
