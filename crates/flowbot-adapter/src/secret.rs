//! Secrets (bot tokens, signing keys, webhook secrets) in one type that never prints, and
//! [`redact`], which keeps a secret out of an error's text.
//!
//! [`Secret`] is a small newtype rather than the `secrecy` crate: what adapters need is a value
//! that cannot reach a log by accident (its `Debug` prints `<redacted>`, it has no `Display`, and
//! reading it takes an explicit [`Secret::expose`]) plus redaction of error texts. The platform
//! clients copy the token into their own state anyway (serenity and teloxide take a `String`), so
//! `secrecy`'s zeroing on drop would protect only our copy.

use std::fmt;

/// A secret string: `Debug` prints `<redacted>`, there is no `Display`, and the text is read
/// only through [`Secret::expose`], at the one call that needs it.
///
/// ```
/// use flowbot_adapter::Secret;
/// let token = Secret::new("123:ABC");
/// assert_eq!(format!("{token:?}"), "<redacted>");
/// assert_eq!(token.expose(), "123:ABC");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the call that sends it (a client's constructor, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `err`'s text with this secret replaced by `<redacted>`: see [`redact`].
    pub fn redact(&self, err: &dyn fmt::Display) -> String {
        redact(err, &self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Secret(secret)
    }
}

/// Parsed as it is (with surrounding blanks trimmed), for settings: `Option<Secret>` as a
/// `clap` argument.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.trim().to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Secret(secret.to_owned())
    }
}

/// `err`'s text with every occurrence of `secret` replaced by `<redacted>` (an empty secret
/// leaves the text as it is). Every error text an adapter logs or returns goes through this:
/// clients put tokens in URLs (`/bot<token>/getMe`) and repeat them in their errors.
///
/// ```
/// let text = flowbot_adapter::redact(&"GET /bot1:XYZ/getMe failed", "1:XYZ");
/// assert_eq!(text, "GET /bot<redacted>/getMe failed");
/// ```
pub fn redact(err: &dyn fmt::Display, secret: &str) -> String {
    let text = err.to_string();
    if secret.is_empty() { text } else { text.replace(secret, "<redacted>") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::from("discord-token-do-not-print".to_owned());
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            token: Secret,
            name: &'static str,
        }
        let shown = format!("{:?} {:#?}", Config { token: secret.clone(), name: "x" }, secret);
        assert!(!shown.contains("do-not-print"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(secret.expose(), "discord-token-do-not-print");
        assert!(!secret.is_empty());
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn redacts_every_occurrence() {
        let err =
            "error sending request for url (http://127.0.0.1:1/bot123:SECRET/GetMe): 123:SECRET";
        assert_eq!(
            redact(&err, "123:SECRET"),
            "error sending request for url (http://127.0.0.1:1/bot<redacted>/GetMe): <redacted>"
        );
        assert_eq!(Secret::new("123:SECRET").redact(&err), redact(&err, "123:SECRET"));
    }

    #[test]
    fn an_empty_secret_changes_nothing() {
        assert_eq!(redact(&"no token here", ""), "no token here");
    }
}
