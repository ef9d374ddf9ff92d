//! Sending what a step stored: one job per message chunk (the first may carry the edit that
//! marks the answered message), or the lone edit of an answered message, sent by the delivery
//! worker in order per chat; and the hand-off chat.

use async_trait::async_trait;
use flowbot_adapter::{Classify, Deliver, Failed, RetryPolicy};
use flowbot_core::Queued;
use serde::{Deserialize, Serialize};
use teloxide::payloads::{
    EditMessageText, EditMessageTextSetters, SendMessage, SendMessageSetters,
};
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, MessageId, ParseMode,
    ReplyParameters,
};

use crate::api::{Api, CallError};

/// One stored Bot API call, as the body of an outgoing item (lane: the chat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Job {
    /// `sendMessage` of one HTML chunk, with the keyboard's rows of `(label, callback_data)`
    /// (empty: none) and the message it replies to (groups).
    Send {
        chat: i64,
        html: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        keyboard: Vec<Vec<(String, String)>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<i32>,
        /// The answered message to mark first, `(message_id, html)`: one stored item for the
        /// mark and the next question. A retry edits again, which Telegram answers "not
        /// modified"; a mark Telegram refuses for good is left, and the question still goes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mark: Option<(i32, String)>,
    },
    /// `editMessageText` of an answered message: its new HTML, without buttons.
    Edit { chat: i64, message: i32, html: String },
}

impl Job {
    pub(crate) fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("plain data serializes"))
    }
}

/// The worker's route for Telegram's stored replies.
#[derive(Debug, Clone)]
pub struct Replies {
    api: Api,
}

impl Replies {
    pub(crate) fn new(api: Api) -> Self {
        Replies { api }
    }
}

#[async_trait]
impl Deliver for Replies {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let job: Job = serde_json::from_str(&item.body).map_err(|_| {
            Failed::new(flowbot_adapter::Verdict::GiveUp, "stored job is not readable")
        })?;
        let result = match job {
            Job::Send { chat, html, keyboard, reply_to, mark } => {
                if let Some((message, marked)) = mark {
                    let edit = EditMessageText::new(ChatId(chat), MessageId(message), marked)
                        .parse_mode(ParseMode::Html)
                        .link_preview_options(no_preview());
                    match self.api.send(&edit).await {
                        Ok(()) => {}
                        Err(err) if err.is_harmless() => {}
                        Err(err) if err.verdict() == flowbot_adapter::Verdict::GiveUp => {
                            tracing::debug!(error = %failed(&err).error, "telegram: answered message not marked");
                        }
                        Err(err) => return Err(failed(&err)),
                    }
                }
                let mut request = SendMessage::new(ChatId(chat), html)
                    .parse_mode(ParseMode::Html)
                    .link_preview_options(no_preview());
                if !keyboard.is_empty() {
                    request = request.reply_markup(markup(keyboard));
                }
                if let Some(to) = reply_to {
                    request = request.reply_parameters(
                        ReplyParameters::new(MessageId(to)).allow_sending_without_reply(),
                    );
                }
                self.api.send(&request).await
            }
            Job::Edit { chat, message, html } => {
                let request = EditMessageText::new(ChatId(chat), MessageId(message), html)
                    .parse_mode(ParseMode::Html)
                    .link_preview_options(no_preview());
                self.api.send(&request).await
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(err) if err.is_harmless() => Ok(()),
            Err(err) => Err(failed(&err)),
        }
    }
}

/// A hand-off destination: a Telegram chat that receives requests as plain text.
#[derive(Debug, Clone)]
pub struct HandoffChat {
    api: Api,
    chat: i64,
}

impl HandoffChat {
    pub(crate) fn new(api: Api, chat: i64) -> Self {
        HandoffChat { api, chat }
    }
}

#[async_trait]
impl Deliver for HandoffChat {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let Some(request) = &item.request else {
            return Err(Failed::new(flowbot_adapter::Verdict::GiveUp, "not a hand-off request"));
        };
        // The chunks go out in one attempt: a retry may repeat the first ones, and the
        // reference in the text lets the desk see that (at least once).
        for chunk in crate::render::split(&request.text) {
            let request =
                SendMessage::new(ChatId(self.chat), chunk).link_preview_options(no_preview());
            RetryPolicy::CALL.run("sendMessage", || self.api.call(&request)).await.map_err(
                |err| {
                    let mut f = failed(&err);
                    f.error = format!("sendMessage to chat {}: {}", self.chat, f.error);
                    f
                },
            )?;
        }
        Ok(())
    }
}

/// A failed call for the worker: its verdict, and its text reduced to the kind of failure
/// (Telegram's description may quote what was sent).
fn failed(err: &CallError) -> Failed {
    let error = match err {
        CallError::Api { code, .. } => format!("refused by the Bot API ({code})"),
        other => other.to_string(),
    };
    Failed::new(err.verdict(), error)
}

fn markup(rows: Vec<Vec<(String, String)>>) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(rows.into_iter().map(|row| {
        row.into_iter()
            .map(|(label, data)| InlineKeyboardButton::callback(label, data))
            .collect::<Vec<_>>()
    }))
}

pub(crate) fn no_preview() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_through_their_stored_body() {
        let send = Job::Send {
            chat: -100,
            html: "<b>質問</b>".into(),
            keyboard: vec![vec![("はい".into(), "1:q:0".into())]],
            reply_to: Some(7),
            mark: Some((6, "→ <b>はい</b>".into())),
        };
        let edit = Job::Edit { chat: 5, message: 9, html: "→ はい".into() };
        for job in [send, edit] {
            assert_eq!(serde_json::from_str::<Job>(&job.body()).unwrap(), job);
        }
    }
}
