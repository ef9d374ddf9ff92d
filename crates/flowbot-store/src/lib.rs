//! Durable conversations: the SQL store (SQLite, PostgreSQL) and the service that applies a
//! platform update to a stored conversation — one at a time per conversation, compare-and-swap
//! across processes, each inbound event at most once.
//!
//! An adapter turns a platform update into an [`Update`] and renders the outcome:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use flowbot_core::{ConversationKey, Input, Timestamp};
//! use flowbot_store::{Handled, Service, ServiceOptions, SqlStore, Update};
//!
//! let dir = std::env::temp_dir().join(format!("flowbot-doc-{}", std::process::id()));
//! let store = SqlStore::open(&format!("sqlite://{}/db.sqlite", dir.display())).await?;
//! let source = include_str!("../../../flows/gmis-mail-trouble.yaml");
//! let service =
//!     Service::new(Arc::new(store), source, "gmis", ServiceOptions::default(), Timestamp(0)).await?;
//!
//! let key = ConversationKey::new("telegram", "42", "42");
//! let update = Update { key: &key, event: Some("telegram:1"), input: Input::Text("/start"), now: Timestamp(1) };
//! let shown = service.handle(update, |_, outcome| outcome.prompt_shown().map(|p| p.text().to_owned())).await?;
//! assert_eq!(shown, Handled::Done(Some("「事前確認メール（★）」は届いていますか？".to_owned())));
//!
//! // Telegram delivers the same update again: acknowledged, nothing sent, nothing changed.
//! assert_eq!(service.handle(update, |_, _| ()).await?, Handled::Duplicate);
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(())
//! # }
//! ```

mod batch;
mod outbox;
mod service;
mod sql;

pub use outbox::{Outbox, OutboxOptions, Round, Sink};
pub use service::{Handled, Service, ServiceError, ServiceOptions, Update};

/// The wall clock as the engine's [`flowbot_core::Timestamp`]: the one place adapters read it.
pub fn now() -> flowbot_core::Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    flowbot_core::Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}
pub use sql::{Backend, OpenError, SqlStore};
