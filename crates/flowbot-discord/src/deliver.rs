//! Sending what a step stored: one job per REST call, made by the delivery worker in order per
//! lane (see [`lane`]), through the shared retry policy.
//!
//! The interaction's own answer is not stored: Discord wants it within 3 s, so it is made at
//! once (the HTTP response's body, or the gateway's create-response call). What follows it
//! (the next question after a press, the further chunks of a long text) is a
//! [`Job::Followup`]: a follow-up message with the interaction's token. Discord takes those
//! for 15 minutes; an older one (after an outage, say), or one whose interaction was never
//! answered, is posted as a plain channel message with the bot token instead.
//!
//! In the gateway mode the answer is a REST call that can fail. Its step therefore stores a
//! [`Job::Response`] first in the lane: delivering it waits for this process's answer to
//! settle ([`Responses`]); if the answer went out it sends nothing, and if it failed it sends
//! its content in its place (the first question as a channel message, or the edit of the
//! answered message). A process that took the job over from a killed one cannot know how the
//! answer went: it asks Discord for the interaction's original response (a message answer) or
//! just makes the edit (it changes nothing twice). Follow-ups wait behind the job in the lane,
//! so they never reach Discord before their interaction's answer.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use flowbot_adapter::{Deliver, Failed, Secret, Verdict};
use flowbot_core::{Clock, Queued};
use flowbot_store::{Metrics, Outgoing};
use serde::{Deserialize, Serialize};
use serenity::all::{
    ChannelId, CreateInteractionResponseFollowup, CreateMessage, EditMessage, Http, MessageId,
};
use tokio::sync::Notify;

use crate::SINK;
use crate::api::{Call, count, failed, status};
use crate::render;

/// How long Discord accepts calls with an interaction's token (15 minutes), less a margin for
/// the call itself and clocks: an older follow-up goes out as a channel message.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
/// A follow-up's 404 this long after its step means the interaction was never answered (its
/// answer has to reach Discord within 3 s); before that, it may just not have arrived yet.
pub(crate) const UNANSWERED_AFTER: Duration = Duration::from_secs(10);
/// How long a [`Job::Response`] waits for this process's answer to settle.
const RESPONSE_WAIT: Duration = Duration::from_secs(10);
/// Gateway answers remembered at most (each for [`TOKEN_LIFETIME`]).
const REMEMBERED: usize = 100_000;

/// Buttons as stored: rows of `(label, custom_id, is_choice)` (see [`render::action_rows`]).
pub(crate) type Rows = Vec<Vec<(String, String, bool)>>;

/// One stored REST call, as the body of an outgoing item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Job {
    /// A follow-up message of the interaction with `token`: a content chunk and its buttons
    /// (empty: none). A channel message in `channel` when the token is too old, or the
    /// interaction was never answered.
    Followup {
        token: String,
        channel: u64,
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rows: Rows,
    },
    /// The gateway's answer to the interaction with `token`, should it fail: a message in
    /// `channel` (the answer to a command), or, with `edit`, that message of the channel
    /// answered (its new content, its buttons disabled).
    Response {
        token: String,
        channel: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edit: Option<u64>,
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rows: Rows,
    },
}

impl Job {
    pub(crate) fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("plain data serializes"))
    }
}

/// The lane of a conversation's replies: its channel and user (the conversation key).
///
/// Per user rather than per channel: what has to stay in order is one conversation's
/// messages, and Discord limits follow-ups per interaction, so a busy channel's users need not
/// queue behind one another (nor behind one user's retries).
pub(crate) fn lane(channel: u64, user: u64) -> String {
    format!("{channel}:{user}")
}

/// Jobs as a step's outgoing items on `lane`.
pub(crate) fn outgoing(lane: &str, jobs: Vec<Job>) -> Vec<Outgoing> {
    jobs.into_iter()
        .map(|job| Outgoing { sink: SINK.to_owned(), lane: lane.to_owned(), body: job.body() })
        .collect()
}

/// How a gateway answer went, as far as this process knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answered {
    Pending,
    Yes,
    No,
}

/// The gateway answers of this process, by interaction token, for [`Job::Response`] and the
/// follow-ups behind it.
#[derive(Debug, Default)]
pub(crate) struct Responses {
    states: Mutex<HashMap<String, (Instant, Answered)>>,
    settled: Notify,
}

impl Responses {
    /// An answer is about to be planned and made (before its step commits).
    pub(crate) fn begin(&self, token: &str) {
        let mut states = self.lock();
        let now = Instant::now();
        states.retain(|_, (at, _)| now.duration_since(*at) < TOKEN_LIFETIME);
        if states.len() >= REMEMBERED {
            // Any entry will do: a forgotten answer is checked with Discord.
            if let Some(old) = states.keys().next().cloned() {
                states.remove(&old);
            }
        }
        states.insert(token.to_owned(), (now, Answered::Pending));
    }

    /// The answer went out (`true`) or failed for good.
    pub(crate) fn finish(&self, token: &str, answered: bool) {
        if let Some((_, state)) = self.lock().get_mut(token) {
            *state = if answered { Answered::Yes } else { Answered::No };
        }
        self.settled.notify_waiters();
    }

    /// Nothing was stored that asks about this answer.
    pub(crate) fn forget(&self, token: &str) {
        self.lock().remove(token);
        self.settled.notify_waiters();
    }

    /// How the answer went; waits (at most `wait`) while it is being made. `None`: unknown
    /// here (another process made it), or still pending.
    async fn settled(&self, token: &str, wait: Duration) -> Option<Answered> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.state(token) {
                Some(Answered::Pending) => {}
                other => return other,
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    fn state(&self, token: &str) -> Option<Answered> {
        self.lock().get(token).map(|(_, state)| *state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Answered)>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The worker's route for Discord's stored replies (sink [`SINK`]).
#[derive(Clone)]
pub struct Replies {
    http: Arc<Http>,
    token: Secret,
    clock: Arc<dyn Clock>,
    responses: Arc<Responses>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Replies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replies").finish_non_exhaustive()
    }
}

impl Replies {
    pub(crate) fn new(
        http: Arc<Http>,
        token: Secret,
        clock: Arc<dyn Clock>,
        responses: Arc<Responses>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Replies { http, token, clock, responses, metrics }
    }

    fn age(&self, item: &Queued) -> Duration {
        Duration::from_millis(self.clock.now().0.saturating_sub(item.created_at.0))
    }

    async fn followup(
        &self,
        item: &Queued,
        token: &str,
        channel: u64,
        content: String,
        rows: &Rows,
    ) -> Result<(), Failed> {
        let age = self.age(item);
        if age >= TOKEN_LIFETIME || self.responses.state(token) == Some(Answered::No) {
            return self.post(channel, content, rows).await;
        }
        let followup = CreateInteractionResponseFollowup::new()
            .content(content.clone())
            .components(render::action_rows(rows, false));
        let sent = self.http.create_followup_message(token, &followup, vec![]).await;
        count(&self.metrics, "create_followup_message", &sent);
        match sent {
            Ok(_) => Ok(()),
            Err(error) if status(&error) == Some(404) && age >= UNANSWERED_AFTER => {
                tracing::warn!(
                    "discord: a follow-up's interaction was never answered; posting it in the channel"
                );
                self.post(channel, content, rows).await
            }
            // The token is no longer valid (Discord's 50027): the channel has to do.
            Err(error) if status(&error) == Some(401) => {
                tracing::warn!(
                    "discord: a follow-up's token has expired; posting it in the channel"
                );
                self.post(channel, content, rows).await
            }
            Err(error) => Err(failed("create followup", &error, Call::Followup, &self.token)),
        }
    }

    async fn response(
        &self,
        item: &Queued,
        token: &str,
        channel: u64,
        edit: Option<u64>,
        content: String,
        rows: &Rows,
    ) -> Result<(), Failed> {
        match self.responses.settled(token, RESPONSE_WAIT).await {
            Some(Answered::Yes) => return Ok(()),
            Some(Answered::No) => {
                tracing::warn!(
                    "discord: an interaction could not be answered; sending its answer in the channel"
                );
            }
            Some(Answered::Pending) | None => {
                // Made by another process (or not settled in time): an edit can be made again;
                // a message is sent only if Discord has no answer to the interaction (which it
                // can tell only while the token is valid).
                if edit.is_none() && self.age(item) < TOKEN_LIFETIME {
                    let got = self.http.get_original_interaction_response(token).await;
                    count(&self.metrics, "get_original_interaction_response", &got);
                    match got {
                        Ok(_) => return Ok(()),
                        Err(error) if matches!(status(&error), Some(404)) => {}
                        Err(error) => {
                            return Err(failed(
                                "get original response",
                                &error,
                                Call::Other,
                                &self.token,
                            ));
                        }
                    }
                }
            }
        }
        match edit {
            Some(message) => {
                let edit =
                    EditMessage::new().content(content).components(render::action_rows(rows, true));
                let edited = self
                    .http
                    .edit_message(
                        ChannelId::new(channel.max(1)),
                        MessageId::new(message.max(1)),
                        &edit,
                        vec![],
                    )
                    .await;
                count(&self.metrics, "edit_message", &edited);
                edited.map(|_| ()).map_err(|e| failed("edit message", &e, Call::Other, &self.token))
            }
            None => self.post(channel, content, rows).await,
        }
    }

    /// A message in `channel` with the bot token.
    async fn post(&self, channel: u64, content: String, rows: &Rows) -> Result<(), Failed> {
        let message =
            CreateMessage::new().content(content).components(render::action_rows(rows, false));
        let sent = self.http.send_message(ChannelId::new(channel.max(1)), vec![], &message).await;
        count(&self.metrics, "create_message", &sent);
        sent.map(|_| ()).map_err(|e| failed("create message", &e, Call::Other, &self.token))
    }
}

#[async_trait]
impl Deliver for Replies {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let job: Job = serde_json::from_str(&item.body)
            .map_err(|_| Failed::new(Verdict::GiveUp, "stored job is not readable"))?;
        match job {
            Job::Followup { token, channel, content, rows } => {
                self.followup(item, &token, channel, content, &rows).await
            }
            Job::Response { token, channel, edit, content, rows } => {
                self.response(item, &token, channel, edit, content, &rows).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_through_their_stored_body() {
        let rows = vec![vec![("はい".to_owned(), "1:q:u0".to_owned(), true)]];
        let jobs = [
            Job::Followup {
                token: "t".into(),
                channel: 5,
                content: "質問".into(),
                rows: rows.clone(),
            },
            Job::Followup { token: "t".into(), channel: 5, content: "続き".into(), rows: vec![] },
            Job::Response {
                token: "t".into(),
                channel: 5,
                edit: Some(9),
                content: "→ はい".into(),
                rows,
            },
            Job::Response {
                token: "t".into(),
                channel: 5,
                edit: None,
                content: "最初".into(),
                rows: vec![],
            },
        ];
        for job in jobs {
            assert_eq!(serde_json::from_str::<Job>(&job.body()).unwrap(), job);
        }
    }

    /// A fake Discord that records `METHOD path` and answers follow-ups 404 (an interaction
    /// never answered) and channel messages 200; its base URL.
    async fn fake(calls: Arc<Mutex<Vec<String>>>) -> String {
        use axum::http::{Method, StatusCode, Uri};
        use axum::response::IntoResponse;
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
            let calls = calls.clone();
            async move {
                let path = uri.path().to_owned();
                calls.lock().unwrap().push(format!("{method} {path}"));
                if path.starts_with("/api/v10/webhooks/") {
                    let body = r#"{"message": "Unknown Webhook", "code": 10015}"#;
                    return (StatusCode::NOT_FOUND, body).into_response();
                }
                let message = serde_json::json!({
                    "id": "9", "channel_id": "5", "content": "", "timestamp": "2024-01-01T00:00:00.000000+00:00",
                    "author": {"id": "2", "username": "flowbot", "discriminator": "0", "avatar": null, "bot": true},
                    "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
                    "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 0,
                    "flags": 0, "components": [],
                });
                axum::Json(message).into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn an_unanswered_or_old_followup_goes_to_the_channel() {
        use flowbot_core::{ManualClock, Timestamp};
        let calls = Arc::new(Mutex::new(Vec::new()));
        let url = fake(calls.clone()).await;
        let token = Secret::new("bot-token");
        let app = serenity::all::ApplicationId::new(1);
        let http = crate::http_builder(&token, Some(app), Some(&url)).build();
        let start = 1_750_000_000_000;
        let clock = Arc::new(ManualClock::new(Timestamp(start)));
        let replies =
            Replies::new(Arc::new(http), token, clock.clone(), Arc::default(), Arc::default());
        let job =
            Job::Followup { token: "tok".into(), channel: 5, content: "次".into(), rows: vec![] };
        let item = |created_at: u64| Queued {
            id: 1,
            sink: SINK.into(),
            lane: lane(5, 6),
            body: job.body(),
            request: None,
            attempts: 0,
            created_at: Timestamp(created_at),
        };
        let taken = || std::mem::take(&mut *calls.lock().unwrap());
        let followup = "POST /api/v10/webhooks/1/tok";
        let channel = "POST /api/v10/channels/5/messages";
        // Just made: a 404 means Discord has not seen the answer yet.
        let failed = replies.deliver(&item(start)).await.unwrap_err();
        assert_eq!(failed.verdict, Verdict::Backoff, "{failed:?}");
        assert_eq!(taken(), [followup]);
        // Still 404 once the answer is long due: the interaction was never answered.
        clock.advance(u64::try_from(UNANSWERED_AFTER.as_millis()).unwrap());
        replies.deliver(&item(start)).await.unwrap();
        assert_eq!(taken(), [followup, channel]);
        // Older than the token's lifetime: straight to the channel.
        clock.advance(u64::try_from(TOKEN_LIFETIME.as_millis()).unwrap());
        replies.deliver(&item(start)).await.unwrap();
        assert_eq!(taken(), [channel]);
        // A gateway answer that failed: its follow-ups go to the channel at once.
        replies.responses.begin("tok");
        replies.responses.finish("tok", false);
        replies.deliver(&item(clock.now().0)).await.unwrap();
        assert_eq!(taken(), [channel]);
    }

    #[tokio::test]
    async fn a_response_job_waits_for_the_answer_to_settle() {
        let responses = Arc::new(Responses::default());
        assert_eq!(responses.settled("a", Duration::from_millis(10)).await, None, "unknown");
        responses.begin("a");
        assert_eq!(responses.settled("a", Duration::from_millis(10)).await, None, "pending");
        let waiting = {
            let responses = responses.clone();
            tokio::spawn(async move { responses.settled("a", Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        responses.finish("a", false);
        assert_eq!(waiting.await.unwrap(), Some(Answered::No));
        responses.begin("b");
        responses.finish("b", true);
        assert_eq!(responses.settled("b", Duration::ZERO).await, Some(Answered::Yes));
        responses.forget("b");
        assert_eq!(responses.state("b"), None);
    }
}
