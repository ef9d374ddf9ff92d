//! The web chat's `[web]` settings: how many requests a client may make, how many conversations
//! may start, and where a client's address comes from behind a reverse proxy.

use serde::Deserialize;

/// `[web]` in the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Requests to `/chat/api` one client address may make per minute (then 429 with
    /// `Retry-After`).
    pub requests_per_minute: u32,
    /// Conversations the web chat may start per minute, all clients together.
    pub new_conversations_per_minute: u32,
    /// The header a trusted reverse proxy puts the client's address in (e.g. `X-Forwarded-For`,
    /// whose last address is taken, or `X-Real-IP`). Unset: the peer's own address, and any such
    /// header a client sends is ignored.
    pub client_address_header: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            requests_per_minute: 120,
            new_conversations_per_minute: 600,
            client_address_header: None,
        }
    }
}

impl Settings {
    /// Every problem, as `(key, message)`: the key names the setting in `[web]`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("requests_per_minute", self.requests_per_minute),
            ("new_conversations_per_minute", self.new_conversations_per_minute),
        ] {
            if !(1..=1_000_000).contains(&value) {
                problems.push((key, format!("{key} = {value}: use 1 to 1000000")));
            }
        }
        if let Some(header) = &self.client_address_header
            && axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            problems.push((
                "client_address_header",
                format!("client_address_header `{header}` is not a header name"),
            ));
        }
        problems
    }
}
