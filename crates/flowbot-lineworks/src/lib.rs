//! The LINE WORKS hand-off destination: a submitted request posted by a bot to the help desk's
//! channel (or one member) through the Bot API 2.0, signed in as the app's service account.
//!
//! - [`key`]: the service account's private key (PEM, PKCS#8 or PKCS#1) and the RS256 JWT it
//!   signs ([`PrivateKey`]).
//! - [`token`]: the JWT exchanged for an access token, kept in memory and renewed before it
//!   expires or when the API answers 403 `UNAUTHORIZED` ([`Tokens`]).
//! - [`send`]: [`Lineworks`], the delivery worker's sink: the request's text as text messages.
//! - `call`: [`CallError`], one call's failure (endpoint, status, LINE WORKS' code; nothing
//!   secret) and its verdict for the retry policy.
//!
//! No SDK exists for LINE WORKS; this is reqwest (rustls with ring) and ring, so the tree keeps
//! one crypto provider (`cargo tree -i aws-lc-rs` finds nothing).

mod call;
pub mod key;
pub mod send;
pub mod token;

pub use call::CallError;
pub use key::{KeyError, PrivateKey};
pub use send::{Lineworks, LineworksError, Settings, Target};
pub use token::Tokens;

/// The Bot API's address when `LINEWORKS_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "https://www.worksapis.com";
/// The authorization server's address when `LINEWORKS_AUTH_URL` is not set.
pub const DEFAULT_AUTH_URL: &str = "https://auth.worksmobile.com";
