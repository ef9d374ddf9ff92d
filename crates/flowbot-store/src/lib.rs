//! Durable conversations: the SQL store (SQLite, PostgreSQL) and the service that applies a
//! platform update to a stored conversation — one at a time per conversation, compare-and-swap
//! across processes, each inbound event at most once — with what the step sends stored in the
//! same transaction (the outbox), for a delivery worker to send in order per chat.
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

mod backend;
mod batch;
mod clock;
mod inbound;
mod inline;
mod mailbox;
mod metrics;
mod notices;
mod queue;
mod reads;
mod recent;
mod requests;
mod script;
mod secret;
mod service;
mod sql;

pub use clock::{SystemClock, now};
pub use mailbox::Mailbox;
pub use metrics::{Metrics, Refused};
pub use service::{
    Delivered, Handled, Outgoing, Planned, Service, ServiceError, ServiceOptions, Update,
};
pub use sql::{Backend, OpenError, SqlStore, Synchronous};
