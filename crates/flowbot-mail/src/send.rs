//! [`Mail`]: one hand-off request as one mail (subject: the request's subject line from the
//! flow's `mail_subject`; body: the request's text), sent over SMTP to every recipient at once.
//!
//! Every failure to send (no connection, TLS, a 4xx or 5xx reply, a refused recipient) is
//! retried by the delivery worker with the hand-off's pauses. An error's text names the server
//! and the SMTP code only: never the password, never the mail's content.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_adapter::{Deliver, Failed, Secret, Verdict};
use flowbot_core::{Queued, QueuedRequest};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use thiserror::Error;

use crate::ca::Ca;
use crate::server::{Security, Server, UrlError};

/// How long one SMTP conversation may wait for the server at each step.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a mail destination is made of (checked by [`Mail::new`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// One or more recipients: `desk@pref.example.jp` or `窓口 <desk@pref.example.jp>`.
    pub to: Vec<String>,
    pub from: String,
    pub smtp_url: String,
    /// The SMTP user, if the server wants one (AUTH PLAIN or LOGIN); then `password` too.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// A private CA (`ca_file`) the server's certificate may be signed by, besides the public
    /// roots.
    pub ca: Option<Ca>,
}

/// Why a mail destination cannot be made.
#[derive(Debug, Error)]
pub enum MailError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("`{0}` is not an e-mail address")]
    Address(String),
    #[error("no recipient: `to` needs at least one address")]
    NoRecipient,
    #[error("a `user` needs a password (its environment variable is not set)")]
    NoPassword,
    #[error("a password is given without a `user`")]
    NoUser,
    #[error("TLS for {0}: {1}")]
    Tls(String, String),
}

/// An address as the settings give it: `a@b.jp` or `Name <a@b.jp>`.
pub fn check_address(text: &str) -> Result<Mailbox, MailError> {
    text.trim().parse::<Mailbox>().map_err(|_| MailError::Address(text.to_owned()))
}

/// The mail destination: the delivery worker's sink.
pub struct Mail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: Server,
    from: Mailbox,
    to: Mailboxes,
}

// No transport (it holds the credentials) and no addresses beyond the server in the log.
impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail").field("server", &self.server.to_string()).finish_non_exhaustive()
    }
}

impl Mail {
    /// Checks the settings and prepares the transport (no connection is made yet).
    pub fn new(settings: Settings) -> Result<Self, MailError> {
        let server = Server::parse(&settings.smtp_url)?;
        let from = check_address(&settings.from)?;
        if settings.to.is_empty() {
            return Err(MailError::NoRecipient);
        }
        let mut to = Mailboxes::new();
        for address in &settings.to {
            to.push(check_address(address)?);
        }
        let tls = |server: &Server| {
            let parameters = match &settings.ca {
                Some(ca) => ca.tls_parameters(server.host.clone()),
                None => TlsParameters::new(server.host.clone()),
            };
            parameters.map_err(|e| MailError::Tls(server.to_string(), e.to_string()))
        };
        let tls = match server.security {
            Security::Tls => Tls::Wrapper(tls(&server)?),
            Security::StartTls => Tls::Required(tls(&server)?),
            Security::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        match (settings.user, settings.password) {
            (Some(user), Some(password)) if !password.is_empty() => {
                builder = builder.credentials(Credentials::new(
                    user.trim().to_owned(),
                    password.expose().to_owned(),
                ));
            }
            (Some(_), _) => return Err(MailError::NoPassword),
            (None, Some(p)) if !p.is_empty() => return Err(MailError::NoUser),
            (None, _) => {}
        }
        Ok(Mail { transport: builder.build(), server, from, to })
    }

    /// The server this destination sends through, `host:port`.
    pub fn server(&self) -> String {
        self.server.to_string()
    }

    /// The message for one request: UTF-8 plain text, the subject and body encoded for mail
    /// (RFC 2047 and quoted-printable or base64, whichever lettre finds shorter).
    pub fn message(&self, request: &QueuedRequest) -> Result<Message, Failed> {
        // One Message-ID per request, the same on every attempt: a desk's mail client sees a
        // mail delivered twice (delivery is at least once) as one.
        let domain = self.from.email.domain();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject(request))
            .message_id(Some(format!("<flowbot.{}@{domain}>", request.reference)));
        for to in self.to.iter() {
            builder = builder.to(to.clone());
        }
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(request.text.clone())
            .map_err(|e| Failed::new(Verdict::GiveUp, format!("mail to build: {e}")))
    }
}

/// The subject the request was stored with (the flow's `mail_subject`, filled in when the form
/// was submitted), on one line; a request stored before subjects were kept gets its form's
/// title and reference.
fn subject(request: &QueuedRequest) -> String {
    let payload: serde_json::Value = serde_json::from_str(&request.payload).unwrap_or_default();
    let subject = match payload["subject"].as_str() {
        Some(s) if !s.trim().is_empty() => s.to_owned(),
        _ => match payload["form"]["title"].as_str() {
            Some(title) => format!("{title} {}", request.reference),
            None => request.reference.clone(),
        },
    };
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl Deliver for Mail {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let Some(request) = &item.request else {
            return Err(Failed::new(Verdict::GiveUp, "not a hand-off request"));
        };
        let message = self.message(request)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(err) => Err(Failed::new(Verdict::Backoff, self.describe(&err))),
        }
    }
}

impl Mail {
    /// An SMTP failure in a few words: the server and the reply code, or the kind of failure.
    /// (A server's reply text may quote addresses or the message: it is left out.)
    fn describe(&self, err: &lettre::transport::smtp::Error) -> String {
        let what = match err.status() {
            Some(code) => format!("SMTP {code}"),
            None if err.is_timeout() => "timed out".to_owned(),
            None if err.is_tls() => "TLS failed".to_owned(),
            None if err.is_client() => {
                "the server does not offer what is required (STARTTLS, AUTH)".to_owned()
            }
            None if err.is_response() => "unexpected reply".to_owned(),
            None => "cannot connect".to_owned(),
        };
        format!("{}: {what}", self.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            to: vec!["desk@pref.example.jp".into(), "窓口 <sub@pref.example.jp>".into()],
            from: "flowbot@pref.example.jp".into(),
            smtp_url: "smtp://127.0.0.1:2525?tls=none".into(),
            user: None,
            password: None,
            ca: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(Mail::new(settings()).is_ok());
        let bad = |change: fn(&mut Settings)| {
            let mut s = settings();
            change(&mut s);
            Mail::new(s).unwrap_err().to_string()
        };
        assert!(bad(|s| s.to.clear()).contains("no recipient"));
        assert!(bad(|s| s.to.push("desk".into())).contains("`desk` is not an e-mail address"));
        assert!(bad(|s| s.from = "nobody@".into()).contains("not an e-mail address"));
        assert!(
            bad(|s| s.smtp_url = "smtp://example.org:25?tls=none".into())
                .contains("only for a relay on this machine")
        );
        assert!(bad(|s| s.user = Some("desk".into())).contains("needs a password"));
        let err = bad(|s| s.password = Some(Secret::new("pw-do-not-print")));
        assert!(err.contains("without a `user`") && !err.contains("pw-do-not-print"), "{err}");
        let mail = Mail::new(Settings {
            user: Some("desk".into()),
            password: Some(Secret::new("pw-do-not-print")),
            smtp_url: "smtps://mail.example.jp".into(),
            ..settings()
        })
        .unwrap();
        assert_eq!(mail.server(), "mail.example.jp:465");
        assert!(!format!("{mail:?}").contains("pw-do-not-print"));
    }

    #[test]
    fn the_subject_is_the_stored_one_on_one_line() {
        let request = |payload: &str| QueuedRequest {
            reference: "ABCDE-FGHJK".into(),
            text: "本文".into(),
            payload: payload.into(),
        };
        let stored =
            request(r#"{"subject":"【変更依頼】\n受付番号 ABCDE-FGHJK","form":{"title":"x"}}"#);
        assert_eq!(subject(&stored), "【変更依頼】 受付番号 ABCDE-FGHJK");
        assert_eq!(subject(&request(r#"{"form":{"title":"変更依頼"}}"#)), "変更依頼 ABCDE-FGHJK");
        assert_eq!(subject(&request("not json")), "ABCDE-FGHJK");
    }
}
