//! Discord's REST calls made here (the gateway's interaction responses, hand-off messages, the
//! command registration) go through the shared [`RetryPolicy`], with Discord's errors
//! classified by [`Failed`]; the stored replies ([`crate::deliver`]) are retried by the
//! delivery worker with the same classification ([`failed`]).

use std::fmt;
use std::time::Duration;

use flowbot_adapter::{Classify, RetryPolicy, Scope, Secret, Verdict, truncate};
use flowbot_store::Metrics;
use serenity::all::{
    ChannelId, CommandOptionType, CreateCommand, CreateCommandOption, CreateInteractionResponse,
    CreateMessage, HttpError, InteractionId,
};

use crate::Discord;

/// A command's (and its option's) description, in characters.
const DESCRIPTION_MAX: usize = 100;

/// The command registration: retried in the background until Discord accepts it (or refuses it
/// for good), waiting 1 s doubling to 5 minutes.
const REGISTRATION: RetryPolicy = RetryPolicy {
    attempts: u32::MAX,
    first: Duration::from_secs(1),
    max: Duration::from_secs(300),
    max_retry_after: RetryPolicy::CALL.max_retry_after,
};

/// The gateway's answer to an interaction: Discord takes it within 3 s, so a few quick
/// attempts; after that the answer is sent from the store instead (see [`crate::deliver`]).
const RESPONSE: RetryPolicy = RetryPolicy {
    attempts: 4,
    first: Duration::from_millis(100),
    max: Duration::from_millis(800),
    max_retry_after: Duration::from_secs(2),
};

/// How long to wait after a 429 when Discord's delay is unknown. serenity's error does not carry
/// Discord's `retry_after` or `global` (its rate limiter, on against discord.com, waits out 429s
/// itself); behind `DISCORD_API_URL` the limiter is off, and a second is a safe wait for the
/// per-route limits an interaction touches.
const UNKNOWN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a REST call was, where that changes what its error means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A follow-up: it can reach Discord before its interaction's own response (they travel
    /// separately), and its 404 then means "not yet".
    Followup,
    Other,
}

/// A failed REST call: serenity's error, classified for the retry policy, and shown without the
/// token.
struct Failed<'a> {
    error: serenity::Error,
    call: Call,
    token: &'a Secret,
}

impl Failed<'_> {
    fn status(&self) -> Option<u16> {
        status(&self.error)
    }
}

/// Counts one REST call `method` in `flowbot_api_calls_total`.
pub(crate) fn count<T>(metrics: &Metrics, method: &str, result: &Result<T, serenity::Error>) {
    let status = match result {
        Ok(_) => Some(200),
        Err(error) => status(error),
    };
    metrics.api_call(crate::SINK, method, status);
}

/// The HTTP status Discord answered a failed call with, if it answered.
pub(crate) fn status(error: &serenity::Error) -> Option<u16> {
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => Some(r.status_code.as_u16()),
        _ => None,
    }
}

/// A failed call `what` for the delivery worker: its verdict, and a text without the token or
/// what was sent (the HTTP status and Discord's error code, or the kind of failure).
pub(crate) fn failed(
    what: &str,
    error: &serenity::Error,
    call: Call,
    token: &Secret,
) -> flowbot_adapter::Failed {
    let verdict = classify(error, call);
    let text = match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            format!("{what}: HTTP {} (code {})", r.status_code.as_u16(), r.error.code)
        }
        serenity::Error::Http(HttpError::Request(e)) if e.is_timeout() => {
            format!("{what}: timed out")
        }
        serenity::Error::Http(HttpError::Request(_)) => format!("{what}: no answer"),
        // Not a request's error: no URL, no body, but the token kept out all the same.
        other => format!("{what}: {}", token.redact(other)),
    };
    flowbot_adapter::Failed::new(verdict, text)
}

fn classify(error: &serenity::Error, call: Call) -> Verdict {
    match status(error) {
        // serenity drops Discord's `retry_after` and `global`: see UNKNOWN_RETRY_AFTER.
        Some(429) => Verdict::RetryAfter(UNKNOWN_RETRY_AFTER, Scope::Lane),
        Some(status) if (500..600).contains(&status) => Verdict::Backoff,
        Some(404) if call == Call::Followup => Verdict::Backoff,
        Some(_) => Verdict::GiveUp,
        None if matches!(error, serenity::Error::Http(HttpError::Request(_))) => Verdict::Backoff,
        None => Verdict::GiveUp,
    }
}

impl Classify for Failed<'_> {
    fn verdict(&self) -> Verdict {
        classify(&self.error, self.call)
    }
}

impl fmt::Display for Failed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token.redact(&self.error))
    }
}

impl Discord {
    /// Runs one REST call under `policy`.
    async fn call<T, Fut>(
        &self,
        policy: RetryPolicy,
        what: &str,
        kind: Call,
        call: impl Fn() -> Fut,
    ) -> Result<T, Failed<'_>>
    where
        Fut: Future<Output = Result<T, serenity::Error>>,
    {
        let token = &self.inner.token;
        let metrics = self.inner.service.metrics();
        policy
            .run(what, || {
                let sent = call();
                async move {
                    let result = sent.await;
                    count(metrics, what, &result);
                    result.map_err(|error| Failed { error, call: kind, token })
                }
            })
            .await
    }

    /// Registers the slash command, retrying in the background until Discord accepts it.
    /// Interactions that arrive meanwhile are served as usual.
    pub fn register_commands(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let token = &this.inner.token;
            let registered = REGISTRATION
                .run("register commands", || async {
                    let registered = this.try_register().await;
                    registered.map_err(|error| {
                        let failed = Failed { error, call: Call::Other, token };
                        tracing::warn!(error = %failed, "discord: command registration failed");
                        failed
                    })
                })
                .await;
            match registered {
                Ok(()) => {
                    tracing::info!(command = %this.inner.command, "discord: command registered");
                }
                Err(err) => {
                    tracing::error!(error = %err, "discord: command registration refused");
                }
            }
        })
    }

    async fn try_register(&self) -> Result<(), serenity::Error> {
        let flow = self.inner.service.flow();
        let description = truncate(&flow.texts().command_start, DESCRIPTION_MAX);
        let option = CreateCommandOption::new(CommandOptionType::String, "start", &description)
            .required(false)
            .set_autocomplete(true);
        let command =
            CreateCommand::new(&self.inner.command).description(description).add_option(option);
        let http = &self.inner.http;
        match self.inner.guild {
            Some(guild) => http.create_guild_commands(guild, &vec![command]).await.map(|_| ()),
            None => http.create_global_commands(&vec![command]).await.map(|_| ()),
        }
    }

    /// Posts a help-desk hand-off (escaped, split to fit) in `channel`: the Discord
    /// destination of the outbox. The error names what failed, never the text or the token.
    pub async fn send_handoff(&self, channel: u64, text: &str) -> Result<(), String> {
        let http = &self.inner.http;
        let channel = ChannelId::new(channel.max(1));
        for chunk in crate::render::chunks(text) {
            let message = CreateMessage::new().content(chunk);
            self.call(RetryPolicy::CALL, "create_message", Call::Other, || {
                http.send_message(channel, vec![], &message)
            })
            .await
            .map_err(|err| match err.status() {
                Some(status) => format!("create message in channel {channel}: HTTP {status}"),
                None => format!("create message in channel {channel}: {err}"),
            })?;
        }
        Ok(())
    }

    /// Answers an interaction that came over the gateway, retrying briefly (Discord's 3 s);
    /// `false` if that failed.
    pub(crate) async fn respond(
        &self,
        id: InteractionId,
        token: &str,
        response: &CreateInteractionResponse,
    ) -> bool {
        let http = &self.inner.http;
        let answered = self
            .call(RESPONSE, "create_interaction_response", Call::Other, || {
                http.create_interaction_response(id, token, response, vec![])
            })
            .await;
        if let Err(err) = &answered {
            tracing::error!(error = %err, "discord: could not answer an interaction");
        }
        answered.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use serenity::all::ErrorResponse;

    use super::*;

    /// serenity's error for an HTTP `status` (with a body like Discord's 429).
    async fn unsuccessful(status: u16) -> serenity::Error {
        let response = axum::http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(r#"{"code": 0, "message": "injected", "retry_after": 0.2, "global": true}"#)
            .unwrap();
        let response = reqwest::Response::from(response);
        let response = ErrorResponse::from_response(response, reqwest::Method::POST).await;
        HttpError::UnsuccessfulRequest(response).into()
    }

    #[tokio::test]
    async fn discords_errors_are_classified() {
        let token = Secret::new("discord-token-do-not-print");
        for (status, call, expected) in [
            (429, Call::Other, Verdict::RetryAfter(UNKNOWN_RETRY_AFTER, Scope::Lane)),
            (500, Call::Other, Verdict::Backoff),
            (503, Call::Followup, Verdict::Backoff),
            (404, Call::Followup, Verdict::Backoff),
            (404, Call::Other, Verdict::GiveUp),
            (400, Call::Followup, Verdict::GiveUp),
            (403, Call::Other, Verdict::GiveUp),
        ] {
            let failed = Failed { error: unsuccessful(status).await, call, token: &token };
            assert_eq!(failed.verdict(), expected, "{status} {call:?}");
        }
        // A request that never left (reqwest's errors are all alike to the policy).
        let network = reqwest::get("not a url").await.unwrap_err();
        let error = serenity::Error::Http(HttpError::Request(network));
        assert_eq!(Failed { error, call: Call::Other, token: &token }.verdict(), Verdict::Backoff);
        let error = serenity::Error::Other("not an HTTP error");
        assert_eq!(
            Failed { error, call: Call::Followup, token: &token }.verdict(),
            Verdict::GiveUp
        );
    }

    #[tokio::test]
    async fn a_failure_for_the_worker_shows_neither_token_nor_what_was_sent() {
        let token = Secret::new("discord-token-do-not-print");
        let error = unsuccessful(500).await;
        let failure = failed("create followup", &error, Call::Followup, &token);
        assert_eq!(failure.verdict, Verdict::Backoff);
        assert_eq!(failure.error, "create followup: HTTP 500 (code 0)");
        let error = serenity::Error::Other("401 for Bot discord-token-do-not-print");
        let failure = failed("create message", &error, Call::Other, &token);
        assert_eq!(failure.verdict, Verdict::GiveUp);
        assert_eq!(failure.error, "create message: 401 for Bot <redacted>");
    }

    #[test]
    fn a_failure_shows_no_token() {
        let token = Secret::new("discord-token-do-not-print");
        let error = serenity::Error::Other("401 for Bot discord-token-do-not-print");
        let shown = Failed { error, call: Call::Other, token: &token }.to_string();
        assert_eq!(shown, "401 for Bot <redacted>");
    }
}
