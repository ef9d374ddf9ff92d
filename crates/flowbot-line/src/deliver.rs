//! Sending what a step stored: one [`Job`] per call of up to five messages, made by the
//! delivery worker in order per chat; and the push destination (hand-offs, completion notices).
//!
//! Reply first, push only when needed: a step's first job carries the event's reply token,
//! which is free but single-use and good for about a minute. When LINE refuses it (used or
//! expired), or the job is already older than that, the job is pushed instead, with the retry
//! key made when the job was stored: a push retried after a timeout or a 5xx is delivered once
//! (LINE answers 409 to a key it accepted). The monthly quota's 429 is final (pushes are not
//! retried until the month turns); a rate limit's 429 backs off.

use std::time::Duration;

use async_trait::async_trait;
use flowbot_adapter::{Classify, Deliver, Failed, Verdict};
use flowbot_core::{Clock, Queued};
use flowbot_store::Outgoing;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use crate::SINK;
use crate::api::{Api, CallError, Refusal};
use crate::render::{self, MAX_MESSAGES};

/// How long a reply token is tried after its event: LINE takes it "within one minute"; older,
/// the job is pushed without trying.
pub const REPLY_WINDOW: Duration = Duration::from_secs(50);

/// One stored call: up to five messages to `to` (a user, group or room id), replied with
/// `reply_token` if it has one and it is still good, else pushed with `retry_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Job {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
    pub retry_key: String,
    pub messages: Vec<Value>,
}

impl Job {
    pub(crate) fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("plain data serializes"))
    }
}

/// A step's messages as stored jobs on the chat's lane: five a job, the first with the reply
/// token, each with a retry key of its own.
pub(crate) fn jobs(to: &str, reply_token: Option<&str>, messages: Vec<Value>) -> Vec<Outgoing> {
    let mut reply_token = reply_token.map(str::to_owned);
    messages
        .chunks(MAX_MESSAGES)
        .map(|batch| {
            let job = Job {
                to: to.to_owned(),
                reply_token: reply_token.take(),
                retry_key: retry_key(),
                messages: batch.to_vec(),
            };
            Outgoing { sink: SINK.to_owned(), lane: to.to_owned(), body: job.body() }
        })
        .collect()
}

/// A new retry key: a random UUID (version 4).
pub(crate) fn retry_key() -> String {
    let mut bytes = [0u8; 16];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        // No randomness: a key from the clock is still unique enough for one channel's day.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    uuid(bytes)
}

/// A retry key that is the same on every attempt of one item (for items whose body the
/// platform did not write: hand-off requests and notices): a UUID from their id, time, chat and
/// part.
fn stable_key(item: &Queued, to: &str, part: usize) -> String {
    let seed = format!("{}\n{}\n{}\n{to}\n{part}", item.id, item.created_at.0, item.sink);
    let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid(bytes)
}

fn uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// The worker's route for LINE's stored replies.
#[derive(Debug, Clone)]
pub struct Replies {
    api: Api,
    clock: Arc<dyn Clock>,
}

impl Replies {
    pub(crate) fn new(api: Api, clock: Arc<dyn Clock>) -> Self {
        Replies { api, clock }
    }
}

#[async_trait]
impl Deliver for Replies {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let job: Job = serde_json::from_str(&item.body)
            .map_err(|_| Failed::new(Verdict::GiveUp, "stored job is not readable"))?;
        let age = Duration::from_millis(self.clock.now().0.saturating_sub(item.created_at.0));
        if let Some(token) = job.reply_token.as_deref().filter(|_| age < REPLY_WINDOW) {
            match self.api.reply(token, &job.messages).await {
                Ok(()) => return Ok(()),
                Err(err) if err.refusal() == Some(Refusal::InvalidReplyToken) => {
                    tracing::debug!("line: reply token refused; pushing instead");
                }
                Err(err) => return Err(failed(&err)),
            }
        }
        self.api.push(&job.to, &job.messages, &job.retry_key).await.map_err(|e| failed(&e))
    }
}

/// A push destination: a user, group or room that receives hand-off requests (and, as the
/// platform's chat, completion notices) as text messages.
#[derive(Debug, Clone)]
pub struct Push {
    api: Api,
    to: String,
}

impl Push {
    pub(crate) fn new(api: Api, to: String) -> Self {
        Push { api, to }
    }
}

#[async_trait]
impl Deliver for Push {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let Some(request) = &item.request else {
            return Err(Failed::new(Verdict::GiveUp, "not a hand-off request"));
        };
        let messages = render::texts(&request.text);
        // Each part keeps its key across attempts: a part LINE took is not sent twice.
        for (part, batch) in messages.chunks(MAX_MESSAGES).enumerate() {
            let key = stable_key(item, &self.to, part);
            self.api.push(&self.to, batch, &key).await.map_err(|e| failed(&e))?;
        }
        Ok(())
    }
}

fn failed(err: &CallError) -> Failed {
    Failed::new(err.verdict(), err.to_string())
}

/// Whether `id` looks like a LINE user, group or room id (`U`, `C` or `R` and 32 hex digits).
pub fn is_chat_id(id: &str) -> bool {
    id.len() == 33
        && matches!(id.as_bytes()[0], b'U' | b'C' | b'R')
        && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowbot_core::Timestamp;
    use serde_json::json;

    #[test]
    fn jobs_take_five_messages_and_only_the_first_replies() {
        let messages: Vec<Value> =
            (0..7).map(|i| json!({"type":"text","text":i.to_string()})).collect();
        let jobs = jobs("Uabc", Some("r1"), messages);
        assert_eq!(jobs.len(), 2);
        let first: Job = serde_json::from_str(&jobs[0].body).unwrap();
        let second: Job = serde_json::from_str(&jobs[1].body).unwrap();
        assert_eq!(first.messages.len(), 5);
        assert_eq!(first.reply_token.as_deref(), Some("r1"));
        assert_eq!(second.reply_token, None);
        assert_ne!(first.retry_key, second.retry_key);
        assert_eq!(first.retry_key.len(), 36);
        assert_eq!(&first.retry_key[14..15], "4");
    }

    #[test]
    fn a_stable_key_is_the_same_on_every_attempt() {
        let item = Queued {
            id: 7,
            sink: "handoff:desk".into(),
            lane: "A-1".into(),
            body: String::new(),
            request: None,
            attempts: 0,
            created_at: Timestamp(1),
        };
        let again = Queued { attempts: 3, ..item.clone() };
        assert_eq!(stable_key(&item, "Cx", 0), stable_key(&again, "Cx", 0));
        assert_ne!(stable_key(&item, "Cx", 0), stable_key(&item, "Cx", 1));
        assert!(is_chat_id(&format!("C{}", "0a".repeat(16))));
        assert!(!is_chat_id("C123"));
        assert!(!is_chat_id(""));
    }
}
