//! The shared adapter layer: what every platform crate (Telegram, Discord, the web chat, …)
//! stands on instead of repeating it.
//!
//! - [`retry`]: one retry policy, with each platform classifying its own errors.

pub mod retry;

pub use retry::{Classify, RetryPolicy, Scope, Verdict};
