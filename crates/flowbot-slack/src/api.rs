//! The Web API calls, through slack-morphism's client: each one classified for the shared
//! retry policy (a 429 waits its `Retry-After`, 5xx and network errors back off, the rest is
//! final), counted in the metrics, and shown without the tokens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flowbot_adapter::{Classify, RetryPolicy, Scope, Secret, Verdict};
use flowbot_store::Metrics;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use slack_morphism::errors::*;
use slack_morphism::prelude::*;

/// The client's connector: HTTPS only against Slack; plain HTTP allowed too behind
/// `SLACK_API_URL` (a proxy, or a fake in tests).
pub(crate) type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// How long to wait after a 429 that names no delay.
const UNKNOWN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// An ephemeral notice or a modal: the user waits, and a trigger id lasts 3 s.
pub(crate) const QUICK: RetryPolicy = RetryPolicy {
    attempts: 4,
    first: Duration::from_millis(100),
    max: Duration::from_millis(800),
    max_retry_after: Duration::from_secs(2),
};

/// The Web API client and the bot token.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) client: Arc<SlackClient<Connector>>,
    token: SlackApiToken,
    secret: Secret,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// A failed Web API call: slack-morphism's error, classified, shown without the token.
#[derive(Debug)]
pub(crate) struct CallError {
    pub(crate) error: SlackClientError,
    text: String,
}

impl CallError {
    fn new(error: SlackClientError, secret: &Secret) -> Self {
        let text = match &error {
            SlackClientError::ApiError(e) => format!("slack answered {}", e.code),
            SlackClientError::HttpError(e) => format!("HTTP {}", e.status_code.as_u16()),
            SlackClientError::RateLimitError(_) => "rate limited (429)".to_owned(),
            other => secret.redact(other),
        };
        CallError { error, text }
    }

    /// The failure for the delivery worker.
    pub(crate) fn failed(&self, what: &str) -> flowbot_adapter::Failed {
        flowbot_adapter::Failed::new(self.verdict(), format!("{what}: {}", self.text))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Classify for CallError {
    fn verdict(&self) -> Verdict {
        classify(&self.error)
    }
}

fn classify(error: &SlackClientError) -> Verdict {
    match error {
        SlackClientError::RateLimitError(e) => {
            Verdict::RetryAfter(e.retry_after.unwrap_or(UNKNOWN_RETRY_AFTER), Scope::Lane)
        }
        SlackClientError::HttpError(e) if e.status_code.is_server_error() => Verdict::Backoff,
        SlackClientError::HttpError(_) => Verdict::GiveUp,
        SlackClientError::ApiError(e)
            if matches!(
                e.code.as_str(),
                "ratelimited" | "internal_error" | "fatal_error" | "service_unavailable"
            ) =>
        {
            Verdict::Backoff
        }
        SlackClientError::ApiError(_) => Verdict::GiveUp,
        _ => Verdict::Backoff,
    }
}

impl Api {
    pub(crate) fn new(
        api_url: Option<&str>,
        token: &Secret,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        // webpki-roots' CA certificates, built in: the image needs no system store.
        let roots = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots();
        let connector = match api_url {
            Some(url) => SlackClientHyperConnector::with_connector(
                roots.https_or_http().enable_http1().build(),
            )
            .with_slack_api_url(url.trim_end_matches('/')),
            None => {
                SlackClientHyperConnector::with_connector(roots.https_only().enable_http1().build())
            }
        };
        Ok(Api {
            client: Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(token.expose().to_owned().into()),
            secret: token.clone(),
            metrics,
        })
    }

    /// Runs one call under `policy`, counted as `method`.
    async fn call<T, Fut>(
        &self,
        policy: RetryPolicy,
        method: &str,
        call: impl Fn() -> Fut,
    ) -> Result<T, CallError>
    where
        Fut: Future<Output = Result<T, SlackClientError>>,
    {
        policy
            .run(method, || {
                let sent = call();
                async move {
                    let result = sent.await;
                    let status = match &result {
                        Ok(_) => Some(200),
                        Err(SlackClientError::RateLimitError(_)) => Some(429),
                        Err(SlackClientError::HttpError(e)) => Some(e.status_code.as_u16()),
                        Err(SlackClientError::ApiError(_)) => Some(200),
                        Err(_) => None,
                    };
                    self.metrics.api_call(crate::SINK, method, status);
                    result.map_err(|e| CallError::new(e, &self.secret))
                }
            })
            .await
    }

    /// `chat.postMessage`; the new message's `ts`.
    pub(crate) async fn post(
        &self,
        policy: RetryPolicy,
        channel: &str,
        thread: Option<&str>,
        text: &str,
        blocks: &Value,
    ) -> Result<String, CallError> {
        let content = content(text, blocks);
        let mut request = SlackApiChatPostMessageRequest::new(channel.into(), content)
            .with_unfurl_links(false)
            .with_unfurl_media(false);
        if let Some(thread) = thread {
            request = request.with_thread_ts(thread.into());
        }
        let (client, token) = (&self.client, &self.token);
        let sent = self
            .call(policy, "chat.postMessage", || {
                let request = request.clone();
                async move { client.open_session(token).chat_post_message(&request).await }
            })
            .await?;
        Ok(sent.ts.to_string())
    }

    /// `chat.update` of the message `ts`.
    pub(crate) async fn update(
        &self,
        policy: RetryPolicy,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &Value,
    ) -> Result<(), CallError> {
        let request =
            SlackApiChatUpdateRequest::new(channel.into(), content(text, blocks), ts.into());
        let (client, token) = (&self.client, &self.token);
        self.call(policy, "chat.update", || {
            let request = request.clone();
            async move { client.open_session(token).chat_update(&request).await }
        })
        .await
        .map(|_| ())
    }

    /// `chat.postEphemeral`: a notice only `user` sees.
    pub(crate) async fn ephemeral(
        &self,
        channel: &str,
        thread: Option<&str>,
        user: &str,
        text: &str,
    ) -> Result<(), CallError> {
        let blocks = Value::Array(vec![crate::render::section(text)]);
        let mut request = SlackApiChatPostEphemeralRequest::new(
            channel.into(),
            user.into(),
            content(text, &blocks),
        );
        if let Some(thread) = thread {
            request = request.with_thread_ts(thread.into());
        }
        let (client, token) = (&self.client, &self.token);
        self.call(QUICK, "chat.postEphemeral", || {
            let request = request.clone();
            async move { client.open_session(token).chat_post_ephemeral(&request).await }
        })
        .await
        .map(|_| ())
    }

    /// `views.open` of a modal (`view` as Block Kit JSON) with the press's trigger id.
    pub(crate) async fn open_view(&self, trigger: &str, view: &Value) -> Result<(), CallError> {
        let view: SlackView = serde_json::from_value(view.clone())
            .unwrap_or_else(|e| unreachable!("the modal is well-formed: {e}"));
        let request = SlackApiViewsOpenRequest::new(trigger.into(), view);
        let (client, token) = (&self.client, &self.token);
        self.call(QUICK, "views.open", || {
            let request = request.clone();
            async move { client.open_session(token).views_open(&request).await }
        })
        .await
        .map(|_| ())
    }
}

/// A message's content: the text (the notification's and the fallback) and the blocks.
fn content(text: &str, blocks: &Value) -> SlackMessageContent {
    let blocks: Vec<SlackBlock> = serde_json::from_value(blocks.clone())
        .unwrap_or_else(|e| unreachable!("blocks are well-formed: {e}"));
    SlackMessageContent::new().with_text(text.to_owned()).with_blocks(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slacks_errors_are_classified() {
        let limited = SlackClientError::RateLimitError(
            SlackRateLimitError::new().with_retry_after(Duration::from_secs(3)),
        );
        assert_eq!(classify(&limited), Verdict::RetryAfter(Duration::from_secs(3), Scope::Lane));
        let http = |code: u16| {
            SlackClientError::HttpError(SlackClientHttpError::new(
                axum::http::StatusCode::from_u16(code).unwrap(),
            ))
        };
        assert_eq!(classify(&http(500)), Verdict::Backoff);
        assert_eq!(classify(&http(503)), Verdict::Backoff);
        assert_eq!(classify(&http(404)), Verdict::GiveUp);
        let api = |code: &str| SlackClientError::ApiError(SlackClientApiError::new(code.into()));
        assert_eq!(classify(&api("channel_not_found")), Verdict::GiveUp);
        assert_eq!(classify(&api("internal_error")), Verdict::Backoff);
    }
}
