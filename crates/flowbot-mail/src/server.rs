//! The `smtp_url` setting: which server, and how the connection is secured.
//!
//! - `smtps://host[:465]`: TLS from the first byte (implicit TLS);
//! - `smtp://host[:587]`: STARTTLS, required: a server that does not offer it is not used;
//! - `smtp://127.0.0.1[:25]?tls=none`: no TLS, only for a relay on the same machine (a loopback
//!   address or `localhost`); refused for any other host.
//!
//! The URL names no user and no password: those are settings of their own, the password in the
//! environment.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

/// How the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the start (`smtps://`).
    Tls,
    /// Plain at first, then STARTTLS, which the server must offer (`smtp://`).
    StartTls,
    /// None: a relay on this machine (`smtp://…?tls=none`, loopback only).
    None,
}

/// A checked `smtp_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// Why an `smtp_url` is refused. The messages quote the URL, which names no secret: one with a
/// password in it is refused without being quoted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("smtp_url `{0}` is not a URL")]
    NotUrl(String),
    #[error("smtp_url `{0}`: use smtps://HOST:465 (TLS) or smtp://HOST:587 (STARTTLS)")]
    Scheme(String),
    #[error("smtp_url `{0}` names no host")]
    NoHost(String),
    #[error(
        "smtp_url holds a user or a password: give `user` and the password's environment variable instead"
    )]
    Credentials,
    #[error("smtp_url `{0}`: a path is not allowed")]
    Path(String),
    #[error("smtp_url `{0}`: the only option is `tls=none`, for smtp:// to this machine")]
    Query(String),
    #[error(
        "smtp_url `{0}`: `tls=none` is only for a relay on this machine (127.0.0.1, ::1, localhost)"
    )]
    NotLoopback(String),
}

impl Server {
    /// Parses and checks an `smtp_url`.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        let url = url::Url::parse(text).map_err(|_| UrlError::NotUrl(text.to_owned()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let (security, default_port) = match url.scheme() {
            "smtps" => (Security::Tls, 465),
            "smtp" => (Security::StartTls, 587),
            _ => return Err(UrlError::Scheme(text.to_owned())),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(UrlError::NoHost(text.to_owned())),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(UrlError::Path(text.to_owned()));
        }
        let mut security = security;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "none", Security::StartTls) => security = Security::None,
                _ => return Err(UrlError::Query(text.to_owned())),
            }
        }
        if url.query().is_some_and(|q| !q.is_empty()) && security != Security::None {
            return Err(UrlError::Query(text.to_owned()));
        }
        if security == Security::None && !is_loopback(&host) {
            return Err(UrlError::NotLoopback(text.to_owned()));
        }
        Ok(Server { host, port: url.port().unwrap_or(default_port), security })
    }
}

/// `127.0.0.0/8`, `::1` or `localhost`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host:port`, as errors name the server.
impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> (String, u16, Security) {
        let s = Server::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (s.host, s.port, s.security)
    }

    #[test]
    fn tls_starttls_and_a_local_relay() {
        assert_eq!(ok("smtps://mail.example.jp"), ("mail.example.jp".into(), 465, Security::Tls));
        assert_eq!(
            ok("smtps://mail.example.jp:2465/"),
            ("mail.example.jp".into(), 2465, Security::Tls)
        );
        assert_eq!(
            ok("smtp://mail.example.jp"),
            ("mail.example.jp".into(), 587, Security::StartTls)
        );
        assert_eq!(ok("smtp://127.0.0.1:25?tls=none"), ("127.0.0.1".into(), 25, Security::None));
        assert_eq!(ok("smtp://localhost?tls=none"), ("localhost".into(), 587, Security::None));
        assert_eq!(ok("smtp://[::1]:2525?tls=none"), ("::1".into(), 2525, Security::None));
        assert_eq!(ok("smtp://127.0.0.2:25?tls=none").2, Security::None);
        assert_eq!(Server::parse("smtp://[::1]:25?tls=none").unwrap().to_string(), "[::1]:25");
    }

    #[test]
    fn plain_text_is_refused_off_this_machine() {
        for bad in [
            "smtp://example.org:25?tls=none",
            "smtp://10.0.0.1:25?tls=none",
            "smtp://localhost.example.org?tls=none",
        ] {
            assert_eq!(Server::parse(bad), Err(UrlError::NotLoopback(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        assert!(matches!(
            Server::parse("mail.example.jp"),
            Err(UrlError::NotUrl(_) | UrlError::Scheme(_))
        ));
        assert!(matches!(Server::parse("http://mail.example.jp"), Err(UrlError::Scheme(_))));
        assert!(matches!(
            Server::parse("smtps://mail.example.jp?tls=none"),
            Err(UrlError::Query(_))
        ));
        assert!(matches!(
            Server::parse("smtp://mail.example.jp?tls=maybe"),
            Err(UrlError::Query(_))
        ));
        assert!(matches!(Server::parse("smtp://127.0.0.1?tls=none&x=1"), Err(UrlError::Query(_))));
        assert!(matches!(Server::parse("smtp://mail.example.jp/inbox"), Err(UrlError::Path(_))));
        assert!(matches!(Server::parse("smtp://"), Err(UrlError::NoHost(_) | UrlError::NotUrl(_))));
        let err = Server::parse("smtps://desk:hunter2-secret@mail.example.jp").unwrap_err();
        assert_eq!(err, UrlError::Credentials);
        assert!(!err.to_string().contains("hunter2"));
    }
}
