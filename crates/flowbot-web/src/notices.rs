//! The desk's completion notices to a web user (`flowbot requests complete`): the web chat
//! cannot write first, so they wait in the outbox (sink [`SINK`], lane = the session id, the
//! conversation's chat) and `GET /chat/api` shows them at the user's next visit.
//!
//! At least once: a notice is marked done only after the answer showing it was made; if
//! marking fails, or the process stops in between, the next visit shows it again. An answer
//! lost on the way to the browser after it was marked is not repeated.

use flowbot_core::Queued;
use flowbot_store::Service;

use crate::session::Session;

/// The outbox sink of the web chat's notices (`notice:PLATFORM`, as the desk writes them).
pub const SINK: &str = "notice:web";
/// The most notices one answer shows; more wait for the next visit.
const MAX_SHOWN: u32 = 20;

/// The notices waiting for `session`, oldest first. A store error is logged and shows none:
/// they wait for the next visit.
pub(crate) async fn waiting(service: &Service, session: &Session) -> Vec<Queued> {
    if session.new {
        return Vec::new();
    }
    let lane = session.key().conversation;
    match service.store().pending_in(SINK, &lane, MAX_SHOWN).await {
        Ok(notices) => notices,
        Err(err) => {
            tracing::error!(error = %err, "web: cannot read the waiting notices");
            Vec::new()
        }
    }
}

/// Marks `notices` done once an answer shows them (their text, personal data, is deleted).
pub(crate) async fn shown(service: &Service, notices: &[Queued]) {
    if notices.is_empty() {
        return;
    }
    let ids: Vec<i64> = notices.iter().map(|n| n.id).collect();
    match service.store().done(&ids, service.now()).await {
        Ok(()) => tracing::info!(count = ids.len(), "web: notices shown"),
        Err(err) => {
            tracing::error!(error = %err, "web: notices shown but not marked: shown again");
        }
    }
}
