//! The shared adapter layer: what every platform crate (Telegram, Discord, the web chat, …)
//! stands on instead of repeating it.
//!
//! - [`delivery`]: the worker that sends stored replies and hand-off requests, in order per
//!   lane, so that a crash loses nothing and one failing chat holds up no other.
//! - [`platform`]: the contract a platform crate implements for the binary (`Platform`,
//!   `Running`): settings, limits, routes, replies, hand-off destinations, links.
//! - [`replay`]: [`Replays`], the bounded memory that refuses a signed request seen before.
//! - [`retry`]: one retry policy, with each platform classifying its own errors, and
//!   [`transport_failure`], an HTTP client failure named without its URL.
//! - [`secret`]: [`Secret`], a string that never prints, and [`redact`] for error texts.
//! - [`text`]: [`truncate`] to a platform's length, [`parse_hex`] for keys.

pub mod delivery;
pub mod platform;
pub mod replay;
pub mod retry;
pub mod secret;
pub mod text;

pub use delivery::{Counters, Deliver, Failed, Refuse, Route, Worker, WorkerOptions};
pub use platform::{About, Link, Platform, PlatformError, Running};
pub use replay::Replays;
pub use retry::{Classify, RetryPolicy, Scope, Verdict, transport_failure};
pub use secret::{Secret, redact};
pub use text::{escape_markup, parse_hex, truncate};
