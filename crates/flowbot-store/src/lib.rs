//! Durable conversations: the SQL store (SQLite, PostgreSQL) and the service that applies a
//! platform update to a stored conversation — one at a time per conversation, compare-and-swap
//! across processes, each inbound event at most once.

mod service;
mod sql;

pub use service::{Handled, Service, ServiceError, ServiceOptions, Update};
pub use sql::{Backend, OpenError, SqlStore};
