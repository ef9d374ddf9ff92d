//! The LINE adapter: the flow on a LINE official account (Messaging API) with Flex questions,
//! over a thin client of its own (reqwest and ring: no LINE SDK, whose TLS stack would bring a
//! second crypto provider, so `cargo tree -i aws-lc-rs` stays empty).
//!
//! It holds no conversation logic. An event becomes an `Input` for the `Service` (keyed by chat
//! and user, deduplicated by `webhookEventId`); the outcome becomes stored jobs (`render` and
//! `deliver`) that the delivery worker sends in order per chat, replying with the event's
//! token and pushing (with a retry key) only when the token is refused.
//!
//! - `api`: the client and what LINE's refusals mean ([`CallError`], [`Refusal`]).
//! - `webhook`: `POST /line/webhook` and its signature.
//! - `handle`: events to inputs; groups; start phrases.
//! - `render`: the `View` as text messages and a Flex bubble; [`LIMITS`].
//! - `deliver`: [`Replies`] (reply first, then push) and [`Push`] (hand-off destinations).
//! - `platform`: [`Options`] (settings) and the `Platform` contract.

mod api;
mod deliver;
mod handle;
mod platform;
mod render;
mod webhook;

use std::sync::Arc;

use flowbot_adapter::Secret;
use flowbot_store::Service;

pub use api::{Api, BotInfo, CallError, Refusal};
pub use deliver::{Push, REPLY_WINDOW, Replies, is_chat_id};
pub use handle::start_entry;
pub use platform::{ABOUT, Options};
pub use render::{LIMITS, MAX_MESSAGES, MAX_TEXT, data, messages, parse_data, texts};
pub use webhook::{SIGNATURE_HEADER, WEBHOOK_PATH, signature, verify};

/// The sink name of LINE's stored replies, and the platform of its conversation keys.
pub const SINK: &str = "line";
/// The Messaging API when `LINE_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://api.line.me";

/// A running LINE bot. Cheap to clone.
#[derive(Clone)]
pub struct Line {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    service: Arc<Service>,
    /// The channel secret: the webhook's signing key. Never logged.
    secret: Secret,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Line").field("api", &self.inner.api).finish_non_exhaustive()
    }
}

impl Line {
    /// A bot on `api`, whose webhook is signed with `secret`.
    pub fn new(api: Api, secret: Secret, service: Arc<Service>) -> Self {
        Line { inner: Arc::new(Inner { api, service, secret }) }
    }

    /// The deliverer of this bot's stored replies (the worker's route for [`SINK`]).
    pub fn replies(&self) -> Replies {
        Replies::new(self.inner.api.clone(), self.inner.service.clock())
    }

    /// A push destination: a user, group or room id.
    pub fn push(&self, to: &str) -> Push {
        Push::new(self.inner.api.clone(), to.to_owned())
    }
}
