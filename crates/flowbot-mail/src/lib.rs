//! The mail hand-off destination: a submitted request sent to the help desk's mailbox over SMTP
//! (lettre's tokio transport, TLS by rustls).
//!
//! - [`server`]: the `smtp_url` rules ([`Server`]): `smtps://` (TLS), `smtp://` (STARTTLS
//!   required), `smtp://…?tls=none` for a relay on this machine only.
//! - [`ca`]: [`Ca`], the `ca_file` setting: a private CA trusted besides the public roots.
//! - [`send`]: [`Mail`], the delivery worker's sink: the subject and the text the request was
//!   stored with, as a UTF-8 plain-text message to every recipient.

pub mod ca;
pub mod send;
pub mod server;

pub use ca::{Ca, CaError};
pub use send::{Mail, MailError, Settings, check_address};
pub use server::{Security, Server, UrlError};
