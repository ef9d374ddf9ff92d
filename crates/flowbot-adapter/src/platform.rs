//! The contract between a platform crate and the binary: what `flowbot run`, `flowbot link`,
//! `flowbot check` and the hand-off destinations need of a platform, so that the binary loops
//! over one list instead of naming each platform.
//!
//! A platform crate declares its settings as a `clap::Args` struct (flags with their
//! environment variables; the binary parses them) and implements [`Platform`] for it. Started,
//! it gives a [`Running`] platform: its routes on the shared listener, the deliverer of its
//! stored replies, its hand-off destinations, and its background task.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use flowbot_core::{Flow, Limits};
use flowbot_store::Service;
use tokio_util::sync::CancellationToken;

use crate::delivery::Deliver;

/// A platform that could not start, or a link that cannot be made: a sentence for the
/// operator, without secrets.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlatformError(pub String);

impl PlatformError {
    pub fn new(message: impl Into<String>) -> Self {
        PlatformError(message.into())
    }
}

/// The link a help desk hands out, and what to say under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    /// A line printed after the link (e.g. the command to type).
    pub note: Option<String>,
}

/// What a platform is, whatever its settings: each platform crate declares one as a constant.
#[derive(Debug, Clone, Copy)]
pub struct About {
    /// Its name: the platform of its conversation keys, the sink of its stored replies,
    /// `flowbot link --platform NAME`, the `kind` of its hand-off destinations.
    pub name: &'static str,
    /// What it allows (label lengths, token bytes, …): checked against the flow when it is
    /// enabled, and by `flowbot check` always.
    pub limits: &'static Limits,
    /// What to set to turn it on: part of the message `flowbot run` shows when nothing is on.
    pub enable_hint: &'static str,
}

/// A platform as configured, before it runs: one entry of the binary's list.
#[async_trait]
pub trait Platform: Send + Sync + fmt::Debug {
    /// Its name, limits and how to turn it on.
    fn about(&self) -> &'static About;

    /// Whether its settings turn it on (its token is set, …).
    fn enabled(&self) -> bool;

    /// Connects (checks its token, registers its commands, …); what runs in the background
    /// starts with [`Running::run`].
    async fn start(&self, service: Arc<Service>) -> Result<Arc<dyn Running>, PlatformError>;

    /// The link that opens the bot at `entry` (already checked to be one of the flow's
    /// entries), or at its start.
    fn link(&self, entry: Option<&str>) -> Result<Link, PlatformError>;

    /// [`Platform::link`] for a platform whose link carries the flow's own words (LINE's start
    /// phrase, typed into the chat); `flowbot link` calls this one.
    fn link_in(&self, flow: &Flow, entry: Option<&str>) -> Result<Link, PlatformError> {
        let _ = flow;
        self.link(entry)
    }
}

/// A started platform.
#[async_trait]
pub trait Running: Send + Sync + fmt::Debug {
    /// Its routes on the shared HTTP listener (webhooks, interaction endpoints, pages).
    fn routes(&self) -> Option<axum::Router> {
        None
    }

    /// The deliverer of its stored replies (the delivery worker's route for its sink).
    fn replies(&self) -> Option<Arc<dyn Deliver>> {
        None
    }

    /// A hand-off destination on this platform: the chat, channel or user `target`, as the
    /// platform writes its ids. `None` when the platform has no such destinations (its
    /// completion notices then have no route either); a `target` that names nothing gives a
    /// deliverer that refuses every item ([`crate::Refuse`]), never `None`.
    fn handoff(&self, target: &str) -> Option<Arc<dyn Deliver>> {
        let _ = target;
        None
    }

    /// Whether it is serving (`/readyz`): `Err` with the reason while it is not (e.g. its
    /// background task has stopped). Started and running, by default.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// Its background work (long polling, a gateway connection) until `shutdown`; in-flight
    /// updates finish first.
    async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), PlatformError> {
        shutdown.cancelled().await;
        Ok(())
    }
}
