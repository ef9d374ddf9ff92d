//! The access token: the service account's JWT exchanged at `{auth}/oauth2/v2.0/token`, kept in
//! memory, and issued again a margin before it expires, or at once when the API says it is no
//! longer good (403 `UNAUTHORIZED`). One exchange at a time: concurrent sends wait for it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flowbot_adapter::Secret;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::call::CallError;
use crate::key::PrivateKey;

/// The OAuth grant for a signed assertion.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// What the bot needs: sending messages.
const SCOPE: &str = "bot";
/// A token's lifetime when the answer does not say (the shorter of LINE WORKS' two).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The most a token is renewed ahead of its expiry…
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// …and at most a quarter of its lifetime, so that a short-lived token is still used.
pub fn renew_at(issued: Instant, lifetime: Duration) -> Instant {
    issued + lifetime - MAX_MARGIN.min(lifetime / 4)
}

/// A token in use.
struct Token {
    access: Secret,
    renew_at: Instant,
}

/// The app's credentials and its current access token.
pub struct Tokens {
    client: reqwest::Client,
    /// `POST {auth}/oauth2/v2.0/token`, as errors name it.
    endpoint: String,
    url: String,
    client_id: String,
    client_secret: Secret,
    service_account: String,
    key: Arc<PrivateKey>,
    current: Mutex<Option<Token>>,
}

// The credentials and the token stay out of the log.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("service_account", &self.service_account)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// `token_url` is `{auth}/oauth2/v2.0/token`.
    pub fn new(
        client: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: Secret,
        service_account: String,
        key: Arc<PrivateKey>,
    ) -> Self {
        Tokens {
            client,
            endpoint: format!("POST {token_url}"),
            url: token_url,
            client_id,
            client_secret,
            service_account,
            key,
            current: Mutex::new(None),
        }
    }

    /// A token good for now: the kept one, unless it is `stale` (the API refused it) or due
    /// for renewal; else a new one.
    pub async fn token(&self, stale: Option<&Secret>) -> Result<Secret, CallError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && Some(&token.access) != stale
            && Instant::now() < token.renew_at
        {
            return Ok(token.access.clone());
        }
        *current = None;
        let token = self.issue().await?;
        let access = token.access.clone();
        *current = Some(token);
        Ok(access)
    }

    /// The exchange: a fresh JWT for an access token.
    async fn issue(&self) -> Result<Token, CallError> {
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let assertion = self.key.jwt(&self.client_id, &self.service_account, iat)?;
        let form = [
            ("assertion", assertion.as_str()),
            ("grant_type", GRANT_TYPE),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("scope", SCOPE),
        ];
        let issued = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .form(&form)
            .send()
            .await
            .map_err(|err| CallError::network(&self.endpoint, &err))?;
        if !response.status().is_success() {
            return Err(CallError::refused(&self.endpoint, response).await);
        }
        let body =
            response.bytes().await.map_err(|err| CallError::network(&self.endpoint, &err))?;
        let body: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| CallError::Garbled(self.endpoint.clone()))?;
        let access = match body["access_token"].as_str() {
            Some(token) if !token.is_empty() => Secret::new(token),
            _ => return Err(CallError::Garbled(self.endpoint.clone())),
        };
        let lifetime = lifetime(&body["expires_in"]);
        tracing::debug!(
            endpoint = %self.endpoint,
            lifetime_s = lifetime.as_secs(),
            "LINE WORKS: access token issued"
        );
        Ok(Token { access, renew_at: renew_at(issued, lifetime) })
    }
}

/// `expires_in` in seconds, a number or a string of one (samples differ); one hour when absent
/// or unreadable, at most two days.
fn lifetime(value: &serde_json::Value) -> Duration {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s >= 1.0 => Duration::from_secs_f64(s.min(2.0 * 86_400.0)),
        _ => DEFAULT_LIFETIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_in_is_read_leniently() {
        assert_eq!(lifetime(&json!(86400)), Duration::from_secs(86400));
        assert_eq!(lifetime(&json!("3600")), Duration::from_secs(3600));
        assert_eq!(lifetime(&json!(" 2 ")), Duration::from_secs(2));
        assert_eq!(lifetime(&json!(null)), DEFAULT_LIFETIME);
        assert_eq!(lifetime(&json!("soon")), DEFAULT_LIFETIME);
        assert_eq!(lifetime(&json!(0)), DEFAULT_LIFETIME);
        assert_eq!(lifetime(&json!(1e12)), Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn a_token_is_renewed_a_margin_before_it_expires() {
        let t0 = Instant::now();
        // A day's token: five minutes ahead.
        let day = Duration::from_secs(86_400);
        assert_eq!(renew_at(t0, day), t0 + day - Duration::from_secs(300));
        // An hour's token: five minutes too.
        let hour = Duration::from_secs(3600);
        assert_eq!(renew_at(t0, hour), t0 + Duration::from_secs(3300));
        // A short one: a quarter of its life.
        assert_eq!(renew_at(t0, Duration::from_secs(8)), t0 + Duration::from_secs(6));
    }

    #[test]
    fn the_credentials_never_print() {
        let key = PrivateKey::from_pem(include_str!("../../../tests/data/lineworks-test-key.pem"))
            .unwrap();
        let tokens = Tokens::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1/oauth2/v2.0/token".into(),
            "client-1".into(),
            Secret::new("client-secret-do-not-print"),
            "svc@example".into(),
            Arc::new(key),
        );
        let shown = format!("{tokens:?}");
        assert!(shown.contains("client-1") && !shown.contains("do-not-print"), "{shown}");
    }
}
