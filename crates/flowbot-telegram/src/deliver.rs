//! Sending what a step stored: one job per message chunk (the first may carry the edit that
//! marks the answered message), or the lone edit of an answered message, sent by the delivery
//! worker in order per chat; and the hand-off chat.

use async_trait::async_trait;
use flowbot_adapter::{Classify, Deliver, Failed, RetryPolicy};
use flowbot_core::Queued;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use teloxide::payloads::{
    EditMessageText, EditMessageTextSetters, SendMessage, SendMessageSetters,
};
use teloxide::requests::Payload;
use teloxide::types::{
    ChatId, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, MessageId, ParseMode,
    ReplyParameters,
};

use crate::api::{Api, CallError};

/// What one stored item (lane: the chat) sends: its Bot API calls, in order, each stored as
/// the JSON payload it posts. The delivery worker posts those bytes as they are: no job to
/// parse back into strings, no payload to build and serialize again on every attempt.
///
/// A step stores one item per message chunk; the first may carry, as a call before it, the
/// edit that marks the answered message (`mark`). A retry edits again, which Telegram answers
/// "not modified"; a mark Telegram refuses for good is left, and the question still goes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job<P = Box<RawValue>> {
    calls: Vec<Call<P>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Call<P> {
    method: Method,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    mark: bool,
    payload: P,
}

/// The methods a stored item calls, by teloxide's payload names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Method {
    SendMessage,
    EditMessageText,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::SendMessage => <SendMessage as Payload>::NAME,
            Method::EditMessageText => <EditMessageText as Payload>::NAME,
        }
    }
}

impl Job {
    /// `sendMessage` of one HTML chunk with the keyboard's rows of `(label, callback_data)`
    /// (empty: none), replying to `reply_to` (groups); first, if given, the edit marking the
    /// answered message `(message_id, html)`.
    pub(crate) fn send(
        chat: i64,
        html: String,
        keyboard: Vec<Vec<(String, String)>>,
        reply_to: Option<i32>,
        mark: Option<(i32, String)>,
    ) -> Self {
        let mut calls = Vec::with_capacity(2);
        if let Some((message, html)) = mark {
            calls.push(call(Method::EditMessageText, true, &edit(chat, message, html)));
        }
        calls.push(call(Method::SendMessage, false, &send(chat, html, keyboard, reply_to)));
        Job { calls }
    }

    /// `editMessageText` of an answered message: its new HTML, without buttons.
    pub(crate) fn edit(chat: i64, message: i32, html: String) -> Self {
        Job { calls: vec![call(Method::EditMessageText, false, &edit(chat, message, html))] }
    }

    pub(crate) fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("plain data serializes"))
    }
}

fn call(method: Method, mark: bool, payload: &impl Serialize) -> Call<Box<RawValue>> {
    let payload = serde_json::value::to_raw_value(payload)
        .unwrap_or_else(|_| unreachable!("teloxide's payloads serialize"));
    Call { method, mark, payload }
}

fn send(
    chat: i64,
    html: String,
    keyboard: Vec<Vec<(String, String)>>,
    reply_to: Option<i32>,
) -> SendMessage {
    let mut request = SendMessage::new(ChatId(chat), html)
        .parse_mode(ParseMode::Html)
        .link_preview_options(no_preview());
    if !keyboard.is_empty() {
        request = request.reply_markup(markup(keyboard));
    }
    if let Some(to) = reply_to {
        request = request
            .reply_parameters(ReplyParameters::new(MessageId(to)).allow_sending_without_reply());
    }
    request
}

fn edit(chat: i64, message: i32, html: String) -> EditMessageText {
    EditMessageText::new(ChatId(chat), MessageId(message), html)
        .parse_mode(ParseMode::Html)
        .link_preview_options(no_preview())
}

/// The stored form before payloads were stored ready to post: items a previous version left
/// pending are still delivered.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Earlier {
    Send {
        chat: i64,
        html: String,
        #[serde(default)]
        keyboard: Vec<Vec<(String, String)>>,
        #[serde(default)]
        reply_to: Option<i32>,
        #[serde(default)]
        mark: Option<(i32, String)>,
    },
    Edit {
        chat: i64,
        message: i32,
        html: String,
    },
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

    /// Posts an item's calls. The mark edits a message the user already has, so it goes out
    /// at the same time as the new messages (which go in order): the next question does not
    /// wait a round trip for it.
    ///
    /// If a new message fails, the item fails and is tried again whole (the mark's edit again
    /// is "not modified", harmless). If only the mark fails for a while, it is retried here:
    /// failing the item would send its messages twice. A mark refused for good is left.
    async fn post(&self, calls: &[Call<&RawValue>]) -> Result<(), Failed> {
        let (marks, messages): (Vec<&Call<&RawValue>>, Vec<&Call<&RawValue>>) =
            calls.iter().partition(|c| c.mark);
        let marking = async {
            let mut results = Vec::with_capacity(marks.len());
            for c in &marks {
                results.push(self.post_one(c).await);
            }
            results
        };
        let (marked, sent) = tokio::join!(marking, self.post_in_order(&messages));
        sent?;
        for (c, result) in marks.iter().zip(marked) {
            let result = match result {
                Err(err) if !settled(&err) => {
                    RetryPolicy::CALL.run("editMessageText", || self.post_one(c)).await
                }
                other => other,
            };
            match result {
                Ok(()) => {}
                Err(err) if err.is_harmless() => {}
                Err(err) => {
                    tracing::debug!(error = %failed(&err).error, "telegram: answered message not marked");
                }
            }
        }
        Ok(())
    }

    async fn post_in_order(&self, calls: &[&Call<&RawValue>]) -> Result<(), Failed> {
        for c in calls {
            match self.post_one(c).await {
                Ok(()) => {}
                Err(err) if err.is_harmless() => {}
                Err(err) => return Err(failed(&err)),
            }
        }
        Ok(())
    }

    async fn post_one(&self, c: &Call<&RawValue>) -> Result<(), CallError> {
        self.api.send_json(c.method.name(), c.payload.get().as_bytes().to_vec()).await
    }
}

/// Whether a call's failure is final: harmless ("not modified") or refused for good.
fn settled(err: &CallError) -> bool {
    err.is_harmless() || err.verdict() == flowbot_adapter::Verdict::GiveUp
}

#[async_trait]
impl Deliver for Replies {
    async fn deliver(&self, item: &Queued) -> Result<(), Failed> {
        let unreadable =
            || Failed::new(flowbot_adapter::Verdict::GiveUp, "stored job is not readable");
        if let Ok(job) = serde_json::from_str::<Job<&RawValue>>(&item.body) {
            return self.post(&job.calls).await;
        }
        let job = match serde_json::from_str::<Earlier>(&item.body).map_err(|_| unreadable())? {
            Earlier::Send { chat, html, keyboard, reply_to, mark } => {
                Job::send(chat, html, keyboard, reply_to, mark)
            }
            Earlier::Edit { chat, message, html } => Job::edit(chat, message, html),
        };
        let calls: Vec<Call<&RawValue>> = job
            .calls
            .iter()
            .map(|c| Call { method: c.method, mark: c.mark, payload: &*c.payload })
            .collect();
        self.post(&calls).await
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

    fn calls(body: &str) -> Vec<(Method, bool, serde_json::Value)> {
        let job: Job<&RawValue> = serde_json::from_str(body).unwrap();
        job.calls
            .iter()
            .map(|c| (c.method, c.mark, serde_json::from_str(c.payload.get()).unwrap()))
            .collect()
    }

    #[test]
    fn a_stored_item_holds_its_calls_ready_to_post() {
        let send = Job::send(
            -100,
            "<b>質問</b>".into(),
            vec![vec![("はい".into(), "1:q:0".into())]],
            Some(7),
            Some((6, "→ <b>はい</b>".into())),
        );
        let calls = calls(&send.body());
        assert_eq!(calls.len(), 2);
        let (method, mark, edit) = &calls[0];
        assert_eq!((*method, *mark), (Method::EditMessageText, true));
        assert_eq!(edit["message_id"], 6);
        assert_eq!(edit["text"], "→ <b>はい</b>");
        assert_eq!(edit["parse_mode"], "HTML");
        let (method, mark, sent) = &calls[1];
        assert_eq!((*method, *mark), (Method::SendMessage, false));
        assert_eq!(sent["chat_id"], -100);
        assert_eq!(sent["text"], "<b>質問</b>");
        assert_eq!(sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "1:q:0");
        assert_eq!(sent["reply_parameters"]["message_id"], 7);
        assert_eq!(sent["link_preview_options"]["is_disabled"], true);

        let edit = calls_of(Job::edit(5, 9, "→ はい".into()));
        assert_eq!(edit.len(), 1);
        assert_eq!((edit[0].0, edit[0].1), (Method::EditMessageText, false));
        assert_eq!(edit[0].2["chat_id"], 5);
    }

    fn calls_of(job: Job) -> Vec<(Method, bool, serde_json::Value)> {
        calls(&job.body())
    }

    #[test]
    fn items_stored_by_the_earlier_form_are_still_read() {
        let earlier = r#"{"op":"send","chat":-100,"html":"<b>質問</b>","keyboard":[[["はい","1:q:0"]]],"mark":[6,"→ はい"]}"#;
        let Earlier::Send { chat, html, keyboard, reply_to, mark } =
            serde_json::from_str(earlier).unwrap()
        else {
            panic!("a send")
        };
        let calls = calls_of(Job::send(chat, html, keyboard, reply_to, mark));
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].2["text"], "→ はい");
        assert_eq!(calls[1].2["reply_markup"]["inline_keyboard"][0][0]["text"], "はい");
        let edit: Earlier =
            serde_json::from_str(r#"{"op":"edit","chat":5,"message":9,"html":"x"}"#).unwrap();
        assert!(matches!(edit, Earlier::Edit { chat: 5, message: 9, .. }));
    }
}
