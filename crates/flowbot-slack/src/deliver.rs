//! Sending what a step stored: one job per Web API call (a message posted, an answered message
//! updated without its buttons), made by the delivery worker in order per conversation.

use async_trait::async_trait;
use flowbot_adapter::{Deliver, Failed, RetryPolicy, Verdict};
use flowbot_core::Queued;
use flowbot_store::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SINK;
use crate::api::Api;

/// One stored Web API call, as the body of an outgoing item (lane: the conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Job {
    /// `chat.postMessage` in `channel` (in the thread `thread`, if any).
    Post {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread: Option<String>,
        text: String,
        blocks: Value,
    },
    /// `chat.update` of the message `ts`: its new text, without buttons.
    Update { channel: String, ts: String, text: String, blocks: Value },
}

impl Job {
    pub(crate) fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("plain data serializes"))
    }
}

/// Jobs as a step's outgoing items on the conversation's lane.
pub(crate) fn outgoing(conversation: &str, jobs: Vec<Job>) -> Vec<Outgoing> {
    jobs.into_iter()
        .map(|job| Outgoing {
            sink: SINK.to_owned(),
            lane: conversation.to_owned(),
            body: job.body(),
        })
        .collect()
}

/// The worker's route for Slack's stored replies (sink [`SINK`]).
#[derive(Debug, Clone)]
pub struct Replies {
    api: Api,
}

impl Replies {
    pub(crate) fn new(api: Api) -> Self {
        Replies { api }
    }
}

/// One attempt per delivery: the worker retries with the same classification.
const ONCE: RetryPolicy = RetryPolicy { attempts: 1, ..RetryPolicy::CALL };

#[async_trait]
impl Deliver for Replies {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let job: Job = serde_json::from_str(&item.body)
            .map_err(|_| Failed::new(Verdict::GiveUp, "stored job is not readable"))?;
        match job {
            Job::Post { channel, thread, text, blocks } => self
                .api
                .post(ONCE, &channel, thread.as_deref(), &text, &blocks)
                .await
                .map(|_| ())
                .map_err(|e| e.failed("chat.postMessage")),
            Job::Update { channel, ts, text, blocks } => self
                .api
                .update(ONCE, &channel, &ts, &text, &blocks)
                .await
                .map_err(|e| e.failed("chat.update")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip() {
        let jobs = [
            Job::Post {
                channel: "D1".into(),
                thread: None,
                text: "質問".into(),
                blocks: serde_json::json!([]),
            },
            Job::Post {
                channel: "C1".into(),
                thread: Some("1.2".into()),
                text: "続き".into(),
                blocks: serde_json::json!([{"type": "section"}]),
            },
            Job::Update {
                channel: "C1".into(),
                ts: "1.3".into(),
                text: "→".into(),
                blocks: serde_json::json!([]),
            },
        ];
        for job in jobs {
            assert_eq!(serde_json::from_str::<Job>(&job.body()).unwrap(), job);
        }
    }
}
