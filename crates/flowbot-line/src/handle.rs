//! One webhook event: a follow, a text message or a postback becomes an input for the service
//! (deduplicated by `webhookEventId`), and its outcome the jobs stored with the step, replied
//! with the event's token by the delivery worker.
//!
//! Groups and rooms: the bot answers a message that mentions it or starts with `/`; each member
//! has their own conversation there, and a button's data names its owner, so a tap by anyone
//! else gets the flow's `not_yours` notice. A tap that changed nothing (an old message, a
//! second tap, a forged one) is answered with the notice and the current question, since LINE
//! cannot change the old message.

use flowbot_adapter::RetryPolicy;
use flowbot_core::{ConversationKey, Flow, Input, View};
use flowbot_store::{Planned, ServiceError, Update};
use serde::Deserialize;
use serde_json::Value;

use crate::deliver::jobs;
use crate::render::{self, parse_data};
use crate::{Line, SINK};

/// The parts of an event the bot reads; anything else is ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    webhook_event_id: Option<String>,
    #[serde(default)]
    reply_token: Option<String>,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    postback: Option<Postback>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    room_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    mention: Option<Mention>,
}

#[derive(Debug, Deserialize)]
struct Mention {
    #[serde(default)]
    mentionees: Vec<Mentionee>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mentionee {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    length: usize,
    #[serde(default)]
    is_self: bool,
}

#[derive(Debug, Deserialize)]
struct Postback {
    #[serde(default)]
    data: String,
}

/// Where an event came from: the chat (the user, or the group or room) and the user.
struct From<'a> {
    chat: &'a str,
    user: &'a str,
    group: bool,
}

impl Line {
    /// Handles one event. `Err` only when it is worth delivering again (the store failed).
    pub(crate) async fn handle(&self, event: Value) -> Result<(), ServiceError> {
        let Ok(event) = serde_json::from_value::<Event>(event) else {
            tracing::debug!("line: an event without the fields read; ignored");
            return Ok(());
        };
        if event.mode.as_deref() == Some("standby") {
            // Another channel answers this chat (module mode).
            return Ok(());
        }
        let Some(source) = &event.source else { return Ok(()) };
        let Some(user) = source.user_id.as_deref() else { return Ok(()) };
        let (chat, group) = match source.kind.as_str() {
            "group" => (source.group_id.as_deref().unwrap_or_default(), true),
            "room" => (source.room_id.as_deref().unwrap_or_default(), true),
            _ => (user, false),
        };
        if chat.is_empty() {
            return Ok(());
        }
        let from = From { chat, user, group };
        match event.kind.as_str() {
            "follow" => self.step(&event, &from, Input::Start { entry: None }).await,
            "unfollow" => {
                // Blocked: nothing can be sent; the conversation stays until it expires.
                self.inner.service.metrics().update(SINK, "unfollow");
                tracing::info!("line: the account was blocked by a user");
                Ok(())
            }
            "message" => self.on_message(&event, &from).await,
            "postback" => self.on_postback(&event, &from).await,
            other => {
                tracing::debug!(kind = other, "line: event ignored");
                Ok(())
            }
        }
    }

    async fn on_message(&self, event: &Event, from: &From<'_>) -> Result<(), ServiceError> {
        let Some(message) = event.message.as_ref().filter(|m| m.kind == "text") else {
            return Ok(());
        };
        let text = message.text.as_deref().unwrap_or_default();
        let text = if from.group {
            let mentions: Vec<&Mentionee> = message
                .mention
                .as_ref()
                .map(|m| m.mentionees.iter().filter(|m| m.is_self).collect())
                .unwrap_or_default();
            let command = text.trim_start().starts_with('/');
            if mentions.is_empty() && !command {
                return Ok(());
            }
            without_mentions(text, &mentions)
        } else {
            text.to_owned()
        };
        let flow = self.inner.service.flow();
        match start_entry(&flow, &text) {
            Some(entry) => self.step(event, from, Input::Start { entry: Some(entry) }).await,
            None => self.step(event, from, Input::Text(&text)).await,
        }
    }

    async fn on_postback(&self, event: &Event, from: &From<'_>) -> Result<(), ServiceError> {
        let Some(postback) = &event.postback else { return Ok(()) };
        let (token, owner) = parse_data(&postback.data);
        if from.group && owner.is_some_and(|owner| owner != from.user) {
            let service = &self.inner.service;
            service.metrics().refused(SINK, flowbot_store::Refused::Foreign);
            let flow = service.flow();
            self.answer_now(event, View::foreign_toast(&flow));
            return Ok(());
        }
        self.step(event, from, Input::Press(token)).await
    }

    /// One step of the conversation, its messages stored to be replied with the event's token.
    async fn step(
        &self,
        event: &Event,
        from: &From<'_>,
        input: Input<'_>,
    ) -> Result<(), ServiceError> {
        let key = ConversationKey::new(SINK, from.chat, from.user);
        let id = event.webhook_event_id.as_deref().map(|id| format!("line:event:{id}"));
        let service = &self.inner.service;
        let update = Update { key: &key, event: id.as_deref(), input, now: service.now() };
        let owner = from.group.then_some(from.user);
        let reply_token = event.reply_token.as_deref();
        service
            .handle_planned(update, |_, outcome| {
                let messages = render::messages(outcome, owner);
                Planned::new((), jobs(from.chat, reply_token, messages))
            })
            .await?;
        Ok(())
    }

    /// A short text replied at once, not stored (a tap on someone else's button changes no
    /// conversation): with the event's token, and dropped if that fails.
    fn answer_now(&self, event: &Event, text: &str) {
        let Some(token) = event.reply_token.clone() else { return };
        let messages = render::texts(text);
        if messages.is_empty() {
            return;
        }
        let api = self.inner.api.clone();
        tokio::spawn(async move {
            if let Err(err) = RetryPolicy::CALL.run("reply", || api.reply(&token, &messages)).await
            {
                tracing::warn!(error = %err, "line: notice not replied");
            }
        });
    }
}

/// The entry a start phrase names (「G-MIS案内 #taiou3」): its last word `#NAME` (or `＃NAME`),
/// when `NAME` is one of the flow's entries; any other text is an answer.
pub fn start_entry<'t>(flow: &Flow, text: &'t str) -> Option<&'t str> {
    let last = text.split_whitespace().last()?;
    let name = last.strip_prefix('#').or_else(|| last.strip_prefix('＃'))?;
    flow.entry(name).is_some().then_some(name)
}

/// `text` without the bot's mentions (`index` and `length` in UTF-16 units), trimmed.
fn without_mentions(text: &str, mentions: &[&Mentionee]) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut keep = vec![true; units.len()];
    for m in mentions {
        let end = m.index.saturating_add(m.length).min(units.len());
        for k in keep.iter_mut().take(end).skip(m.index) {
            *k = false;
        }
    }
    let kept: Vec<u16> = units.iter().zip(&keep).filter(|(_, k)| **k).map(|(u, _)| *u).collect();
    String::from_utf16_lossy(&kept).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_cut_by_utf16_index() {
        let m = Mentionee { index: 0, length: 7, is_self: true };
        assert_eq!(without_mentions("@G-MIS案 はい", &[&m]), "はい");
        let m = Mentionee { index: 3, length: 3, is_self: true };
        assert_eq!(without_mentions("🙂あ@ab いいえ", &[&m]), "🙂あ いいえ");
        let m = Mentionee { index: 50, length: 3, is_self: true };
        assert_eq!(without_mentions("はい", &[&m]), "はい");
    }
}
