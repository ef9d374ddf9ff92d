//! [`Lineworks`]: one hand-off request posted as text messages by the desk's bot, to a channel
//! (`POST {api}/v1.0/bots/{botId}/channels/{channelId}/messages`) or to one member
//! (`…/users/{userId}/messages`), `{"content":{"type":"text","text":…}}`, answered 201.
//!
//! A text longer than one message is split (the core's splitter) and the parts go out in one
//! attempt: a retry may repeat the first ones, and the reference in the text lets the desk see
//! that (delivery is at least once). Each part is retried as a platform call is (a 429's wait,
//! backoff on 5xx), after a 403 `UNAUTHORIZED` once more with a new token; what still fails goes
//! back to the delivery worker, which retries a hand-off until it is delivered.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowbot_adapter::{Classify, Deliver, Failed, RetryPolicy, Secret, Verdict};
use flowbot_core::{Queued, Unit};
use thiserror::Error;

use crate::call::CallError;
use crate::key::PrivateKey;
use crate::token::Tokens;

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The most characters of one text message (LINE WORKS' `content.text` limit).
pub const MAX_TEXT: usize = 2000;

/// Where the bot posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A message room (channel) the bot is a member of.
    Channel(String),
    /// One member, in their room with the bot.
    User(String),
}

/// What a LINE WORKS destination is made of.
#[derive(Clone)]
pub struct Settings {
    pub bot_id: String,
    pub target: Target,
    /// The app's Client ID and Client Secret (Developer Console).
    pub client_id: String,
    pub client_secret: Secret,
    /// The app's service account (`…@example.serviceaccount` style id).
    pub service_account: String,
    pub key: Arc<PrivateKey>,
    /// The Bot API (`https://www.worksapis.com`) and the authorization server
    /// (`https://auth.worksmobile.com`).
    pub api_url: String,
    pub auth_url: String,
}

// The secret and the key stay out of the log.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bot_id", &self.bot_id)
            .field("target", &self.target)
            .field("client_id", &self.client_id)
            .field("service_account", &self.service_account)
            .field("api_url", &self.api_url)
            .field("auth_url", &self.auth_url)
            .finish_non_exhaustive()
    }
}

/// Why a LINE WORKS destination cannot be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LineworksError {
    #[error("`{0}` is empty")]
    Empty(&'static str),
    #[error("`{0}` is not an http(s) URL")]
    Url(String),
    #[error("`{0}`: plain http only to this machine (a test's fake); use https")]
    PlainHttp(String),
    #[error("the client secret is empty")]
    NoSecret,
    #[error("the HTTP client: {0}")]
    Client(String),
}

/// An `https://` URL, or `http://` to a loopback address; with any trailing `/` removed.
pub fn check_url(text: &str) -> Result<url::Url, LineworksError> {
    let url = url::Url::parse(text.trim()).map_err(|_| LineworksError::Url(text.to_owned()))?;
    if url.cannot_be_a_base() || url.host().is_none() || url.query().is_some() {
        return Err(LineworksError::Url(text.to_owned()));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(LineworksError::PlainHttp(text.to_owned())),
        _ => Err(LineworksError::Url(text.to_owned())),
    }
}

/// `base` with `segments` appended (each percent-encoded).
fn join(base: &url::Url, segments: &[&str]) -> String {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url.to_string()
}

/// The LINE WORKS destination: the delivery worker's sink.
pub struct Lineworks {
    client: reqwest::Client,
    url: String,
    /// `POST {url}`, as errors name it.
    endpoint: String,
    tokens: Tokens,
}

impl fmt::Debug for Lineworks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lineworks").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl Lineworks {
    /// Checks the settings and prepares the client (nothing is sent yet).
    pub fn new(settings: Settings) -> Result<Self, LineworksError> {
        let target = match &settings.target {
            Target::Channel(id) => ("channels", id, "channel_id"),
            Target::User(id) => ("users", id, "user_id"),
        };
        for (value, name) in [
            (&settings.bot_id, "bot_id"),
            (target.1, target.2),
            (&settings.client_id, "client_id"),
            (&settings.service_account, "service_account"),
        ] {
            if value.trim().is_empty() {
                return Err(LineworksError::Empty(name));
            }
        }
        if settings.client_secret.is_empty() {
            return Err(LineworksError::NoSecret);
        }
        let api = check_url(&settings.api_url)?;
        let auth = check_url(&settings.auth_url)?;
        let url = join(
            &api,
            &["v1.0", "bots", settings.bot_id.trim(), target.0, target.1.trim(), "messages"],
        );
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| LineworksError::Client(e.to_string()))?;
        let tokens = Tokens::new(
            client.clone(),
            join(&auth, &["oauth2", "v2.0", "token"]),
            settings.client_id.trim().to_owned(),
            settings.client_secret,
            settings.service_account.trim().to_owned(),
            settings.key,
        );
        Ok(Lineworks { client, endpoint: format!("POST {url}"), url, tokens })
    }

    /// Where the messages go, as errors name it: `POST …/messages`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One text message, with a new token and once more if the API says the token is no
    /// longer good.
    async fn send(&self, text: &str) -> Result<(), CallError> {
        let token = self.tokens.token(None).await?;
        match self.post(text, &token).await {
            Err(err) if err.is_unauthorized() => {
                tracing::debug!(endpoint = %self.endpoint, "LINE WORKS: token refused, issuing another");
                let token = self.tokens.token(Some(&token)).await?;
                self.post(text, &token).await
            }
            sent => sent,
        }
    }

    async fn post(&self, text: &str, token: &Secret) -> Result<(), CallError> {
        let body = serde_json::json!({ "content": { "type": "text", "text": text } });
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(token.expose())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|err| CallError::network(&self.endpoint, &err))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(CallError::refused(&self.endpoint, response).await)
    }
}

/// The text in parts LINE WORKS takes.
pub fn split(text: &str) -> Vec<&str> {
    flowbot_core::split(text, MAX_TEXT, Unit::Chars)
}

/// A call's failure for the worker: a 429's wait as it is, anything else retried with the
/// hand-off's pauses (a desk's bot may be misconfigured for a while).
pub fn failed(err: &CallError) -> Failed {
    let verdict = match err.verdict() {
        wait @ Verdict::RetryAfter(..) => wait,
        Verdict::Backoff | Verdict::GiveUp => Verdict::Backoff,
    };
    Failed::new(verdict, err.to_string())
}

#[async_trait]
impl Deliver for Lineworks {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let Some(request) = &item.request else {
            return Err(Failed::new(Verdict::GiveUp, "not a hand-off request"));
        };
        for part in split(&request.text) {
            RetryPolicy::CALL
                .run("LINE WORKS message", || self.send(part))
                .await
                .map_err(|err| failed(&err))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyError;
    use flowbot_adapter::Scope;

    fn settings() -> Settings {
        let pem = include_str!("../../../tests/data/lineworks-test-key.pem");
        Settings {
            bot_id: "2000001".into(),
            target: Target::Channel("ch-1".into()),
            client_id: "client-1".into(),
            client_secret: Secret::new("client-secret-do-not-print"),
            service_account: "svc@example".into(),
            key: Arc::new(PrivateKey::from_pem(pem).unwrap()),
            api_url: "https://www.worksapis.com".into(),
            auth_url: "https://auth.worksmobile.com/".into(),
        }
    }

    #[test]
    fn settings_are_checked_and_name_their_endpoints() {
        let sink = Lineworks::new(settings()).unwrap();
        assert_eq!(
            sink.endpoint(),
            "POST https://www.worksapis.com/v1.0/bots/2000001/channels/ch-1/messages"
        );
        assert!(
            format!("{:?}", sink.tokens).contains("https://auth.worksmobile.com/oauth2/v2.0/token")
        );
        let user = Lineworks::new(Settings {
            target: Target::User("desk 1@example.jp".into()),
            api_url: "http://127.0.0.1:8080/prefix/".into(),
            ..settings()
        })
        .unwrap();
        assert_eq!(
            user.endpoint(),
            "POST http://127.0.0.1:8080/prefix/v1.0/bots/2000001/users/desk%201@example.jp/messages"
        );
        let bad = |change: fn(&mut Settings)| {
            let mut s = settings();
            change(&mut s);
            Lineworks::new(s).unwrap_err()
        };
        assert_eq!(bad(|s| s.bot_id = " ".into()), LineworksError::Empty("bot_id"));
        assert_eq!(
            bad(|s| s.target = Target::Channel(String::new())),
            LineworksError::Empty("channel_id")
        );
        assert_eq!(bad(|s| s.client_secret = Secret::default()), LineworksError::NoSecret);
        assert!(matches!(
            bad(|s| s.api_url = "http://worksapis.example".into()),
            LineworksError::PlainHttp(_)
        ));
        assert!(matches!(bad(|s| s.auth_url = "ftp://x".into()), LineworksError::Url(_)));
        assert!(matches!(bad(|s| s.auth_url = "nope".into()), LineworksError::Url(_)));
        let shown = format!("{:?} {:?}", settings(), Lineworks::new(settings()).unwrap());
        assert!(!shown.contains("do-not-print") && !shown.contains("BEGIN"), "{shown}");
    }

    #[test]
    fn the_worker_retries_every_failure_and_waits_out_a_429() {
        let status = |status: u16, retry_after: Option<u64>| CallError::Status {
            endpoint: "POST x".into(),
            status,
            code: None,
            retry_after: retry_after.map(Duration::from_secs),
        };
        let wait = Verdict::RetryAfter(Duration::from_secs(9), Scope::Sink);
        assert_eq!(failed(&status(429, Some(9))).verdict, wait);
        assert_eq!(failed(&status(429, None)).verdict, Verdict::Backoff);
        assert_eq!(failed(&status(400, None)).verdict, Verdict::Backoff);
        assert_eq!(failed(&status(502, None)).verdict, Verdict::Backoff);
        assert_eq!(failed(&CallError::Key(KeyError::Sign)).verdict, Verdict::Backoff);
        assert_eq!(failed(&status(400, None)).error, "POST x: HTTP 400");
    }

    #[test]
    fn long_texts_are_split_under_the_limit() {
        let text = format!("{}\n\n{}", "あ".repeat(1500), "い".repeat(1500));
        let parts = split(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_TEXT));
        assert_eq!(split("短い依頼"), ["短い依頼"]);
    }
}
