//! The web chat: the flow in a browser page at `/chat` on the shared HTTP listener.
//!
//! A help desk's link (`https://…/chat?start=ENTRY`, from `flowbot link --platform web`) opens
//! a page that talks to `/chat/api` in JSON (documented in `API.md` beside this crate's
//! `Cargo.toml`, included below as [The API](#the-api)). The page renders every text as
//! text (links only from the core's URL and e-mail segments), and holds no conversation logic:
//! what to show comes from the engine, as for every adapter.
//!
//! ```text
//! GET  /                redirects to /chat
//! GET  /chat            the page, titled with the flow's title (its script and style beside it)
//! GET  /chat/api        the desk's waiting notices, and the conversation so far or a preview
//!                       of the start (nothing stored but the notices marked shown)
//! POST /chat/api        one input: {"id": "…", "start": "ENTRY" | null}, {"id", "press": TOKEN},
//!                       {"id", "text": "…"}, {"id", "command": "back" | "restart" | "help"}
//! ```
//!
//! # Sessions
//!
//! A conversation is keyed by a session id in an `HttpOnly`, `SameSite=Strict` cookie. Only the
//! server issues ids: a cookie is `ID.MAC`, the MAC an HMAC-SHA256 of the random id under the
//! deployment's session key, and a cookie that does not verify (made up, altered, from another
//! deployment) is replaced by a new id; so an attacker cannot choose a victim's session id, and
//! a guessed id is 128 random bits plus a 128-bit MAC. Nothing is kept per session beside the
//! conversation (no table that grows with visitors), and the key lives in the store
//! (`ConversationStore::secret`, made at the first start), so cookies stay valid across
//! restarts and across processes sharing a database. The alternatives considered: accepting
//! only ids the store has a conversation for cannot tell an id issued on a page view (which
//! stores nothing, crawlers' included) from a made-up one without a table of issued ids that
//! grows with every visit; and a key in the settings file would be one more secret for every
//! deployment to make and hand out. What signing cannot stop: someone who can write cookies
//! for the chat's host (a sibling subdomain, a man in the middle on plain http) planting a real
//! id of their own; serve the chat over https on a host of its own (`--web-url https://…`
//! marks the cookie `Secure`). To rotate the key, delete the store's `secrets` row
//! `web.session` and restart: every browser then starts afresh.
//!
//! Every state-changing request carries a custom header (so another site cannot send one) and
//! a client-chosen id, which is the store's event id: a retried request is applied once.
//!
//! # Limits
//!
//! `[web] requests_per_minute` per client address on `/chat/api`, and
//! `[web] new_conversations_per_minute` for all clients together (an input for a session with
//! no live conversation opens one), each answered with 429, `Retry-After` and a JSON error
//! when exceeded (see `limit`). The client address is the TCP peer's, or, behind a reverse
//! proxy, the last address in `[web] client_address_header`; without that setting such a
//! header is never read. A page view stores nothing: `GET /chat/api` without a conversation
//! previews the start, and the page opens the conversation with the user's first input.
//!
//! # The API
#![doc = include_str!("../API.md")]

mod api;
mod limit;
mod notices;
mod platform;
mod render;
mod session;
mod settings;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use flowbot_core::Limits;
use flowbot_store::Service;

/// What the web chat allows: anything a flow can hold (the page wraps long labels and texts,
/// and a request body of 16 KiB holds any token).
pub const LIMITS: Limits = Limits { platform: "the web chat", ..Limits::NONE };

pub use notices::SINK as NOTICE_SINK;
pub use platform::Options;
pub use settings::Settings;

/// The page's routes.
pub const CHAT_PATH: &str = "/chat";
const API_PATH: &str = "/chat/api";
/// The largest request body taken (a typed answer is far smaller).
const MAX_BODY: usize = 16 * 1024;

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
    sessions: session::Sessions,
    limiter: limit::Limiter,
    /// The trusted proxy's header with the client's address, if configured.
    trusted: Option<HeaderName>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("secure", &self.inner.secure).finish_non_exhaustive()
    }
}

/// Why the web chat cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the web chat's session key: {0}")]
    Key(String),
    #[error("[web] client_address_header `{0}` is not a header name")]
    Header(String),
}

impl Web {
    /// The web chat on `service`, with its session key from the store (made on first use).
    /// `secure`: the page is served over https (behind a proxy), so the cookie says so.
    pub async fn start(
        service: Arc<Service>,
        settings: &Settings,
        secure: bool,
    ) -> Result<Self, StartError> {
        let mut fresh = [0u8; session::KEY_LEN];
        getrandom::getrandom(&mut fresh).map_err(|e| StartError::Key(e.to_string()))?;
        let key = service
            .store()
            .secret(session::KEY_NAME, &fresh, service.now())
            .await
            .map_err(|e| StartError::Key(e.to_string()))?;
        if key.len() < 16 {
            return Err(StartError::Key("the kept key is shorter than 16 bytes".to_owned()));
        }
        let trusted = settings
            .client_address_header
            .as_deref()
            .map(|h| {
                HeaderName::from_bytes(h.as_bytes()).map_err(|_| StartError::Header(h.to_owned()))
            })
            .transpose()?;
        let limiter = limit::Limiter::new(
            settings.requests_per_minute,
            settings.new_conversations_per_minute,
        );
        let sessions = session::Sessions::new(key);
        Ok(Web { inner: Arc::new(Inner { service, secure, sessions, limiter, trusted }) })
    }

    /// The routes for the shared listener. The client limit needs the peer's address: serve
    /// them with `into_make_service_with_connect_info::<SocketAddr>()` (without it, and without
    /// a trusted header, every client shares one allowance).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/", get(root))
            .route(CHAT_PATH, get(page))
            .route(
                "/chat/app.js",
                get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
            )
            .route("/chat/app.css", get(|| async { asset(STYLE, "text/css; charset=utf-8") }))
            .route(API_PATH, get(api::current).post(api::input))
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

/// `GET /`: the chat (with the query, e.g. `?start=ENTRY`).
async fn root(uri: Uri) -> Redirect {
    match uri.query() {
        Some(query) => Redirect::to(&format!("{CHAT_PATH}?{query}")),
        None => Redirect::to(CHAT_PATH),
    }
}

/// `GET /chat`: the page, titled with the flow's title.
async fn page(State(web): State<Web>) -> Response {
    let title = flowbot_adapter::escape_markup(web.inner.service.flow().title());
    let mut response = asset("", "text/html; charset=utf-8");
    *response.body_mut() = PAGE.replace("{{title}}", &title).into();
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
    fn titles_are_escaped() {
        assert_eq!(
            flowbot_adapter::escape_markup("A&B <i>\"x\"</i> 'y'"),
            "A&amp;B &lt;i&gt;&quot;x&quot;&lt;/i&gt; &#39;y&#39;"
        );
    }
}
