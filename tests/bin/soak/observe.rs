//! What the bot did, as the fake saw it answered: every message sent and edited per chat and
//! every callback query answered, each with the time the fake answered it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use flowbot_tests::fake_telegram::Tapped;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

/// A message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message_id: i64,
    /// The node its buttons' tokens (`REV:NODE:ACTION`) name; `None` without buttons.
    pub node: Option<String>,
    /// The buttons as (label, callback data), row after row.
    pub buttons: Vec<(String, String)>,
    pub at: Instant,
}

impl Sent {
    /// The button that answers choice `index`, as (label, callback data).
    pub fn choice(&self, index: u8) -> Option<&(String, String)> {
        let action = format!(":{index}");
        self.buttons.iter().find(|(_, data)| data.ends_with(&action))
    }
}

/// One chat as the bot wrote it.
#[derive(Debug, Clone, Default)]
pub struct Chat {
    pub sent: Vec<Sent>,
    /// The messages edited at least once.
    pub edited: HashSet<i64>,
}

#[derive(Debug, Default)]
struct Seen {
    chats: HashMap<i64, Chat>,
    answered: HashSet<String>,
    /// `getUpdates` answered at least once: the bot is polling.
    polling: bool,
    /// When the last message was sent or edited, or a press answered.
    last_reply: Option<Instant>,
}

/// The record, shared by the collector, the users and the judge.
#[derive(Debug, Clone, Default)]
pub struct Observed(Arc<Mutex<Seen>>);

impl Observed {
    /// Records every tapped call until the fake stops.
    pub fn collect(&self, mut taps: UnboundedReceiver<Tapped>) {
        let seen = self.clone();
        tokio::spawn(async move {
            while let Some(t) = taps.recv().await {
                seen.record(&t);
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, t: &Tapped) {
        let mut seen = self.lock();
        match t.method.as_str() {
            "getupdates" => seen.polling = true,
            "sendmessage" => {
                let Some(result) = &t.result else { return };
                let chat = result["chat"]["id"].as_i64().unwrap_or(0);
                let buttons: Vec<(String, String)> = t.body["reply_markup"]["inline_keyboard"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|row| row.as_array().into_iter().flatten())
                    .map(|b| (text(&b["text"]), text(&b["callback_data"])))
                    .collect();
                let node = buttons.first().and_then(|(_, data)| token_node(data));
                let sent = Sent {
                    message_id: result["message_id"].as_i64().unwrap_or(0),
                    node,
                    buttons,
                    at: t.at,
                };
                seen.chats.entry(chat).or_default().sent.push(sent);
                seen.last_reply = Some(t.at);
            }
            "editmessagetext" => {
                let (chat, message) = (int(&t.body["chat_id"]), int(&t.body["message_id"]));
                seen.chats.entry(chat).or_default().edited.insert(message);
                seen.last_reply = Some(t.at);
            }
            "answercallbackquery" => {
                let id = text(&t.body["callback_query_id"]);
                seen.answered.insert(id);
                seen.last_reply = Some(t.at);
            }
            _ => {}
        }
    }

    pub fn polling(&self) -> bool {
        self.lock().polling
    }

    /// The newest message in `chat` naming `node` and newer than `after`.
    pub fn newest(&self, chat: i64, node: &str, after: i64) -> Option<Sent> {
        let seen = self.lock();
        let sent = &seen.chats.get(&chat)?.sent;
        sent.iter().rev().find(|s| s.message_id > after && s.node.as_deref() == Some(node)).cloned()
    }

    pub fn chat(&self, chat: i64) -> Chat {
        self.lock().chats.get(&chat).cloned().unwrap_or_default()
    }

    /// Every chat the bot wrote to.
    pub fn chats(&self) -> Vec<i64> {
        self.lock().chats.keys().copied().collect()
    }

    pub fn answered(&self, callback: &str) -> bool {
        self.lock().answered.contains(callback)
    }

    pub fn last_reply(&self) -> Option<Instant> {
        self.lock().last_reply
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

/// The node of a button token `REV:NODE:ACTION`.
fn token_node(data: &str) -> Option<String> {
    let (_, rest) = data.split_once(':')?;
    let (node, _) = rest.rsplit_once(':')?;
    Some(node.to_owned())
}
