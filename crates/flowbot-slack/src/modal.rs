//! Forms on Slack: a form field's input button opens a modal (`views.open` with the press's
//! trigger id) holding one text input; its submission is applied like a press of that button,
//! and a refused answer is shown inside the modal (`response_action: errors`).

use flowbot_adapter::truncate;
use flowbot_core::{Input, Token};
use flowbot_store::ServiceError;
use serde_json::{Value, json};

use crate::Slack;
use crate::handler::{Pressed, str_at};
use crate::render;

/// The modal's `callback_id`, and its text input's block and action id.
const MODAL: &str = "flowbot";
const ANSWER: &str = "answer";
/// The most a modal's `private_metadata` holds, in characters.
const METADATA_MAX: usize = 3000;

impl Slack {
    /// A modal's answer to a form field: applied like a press of the button that opened it;
    /// a refused answer is shown in the modal.
    pub(crate) async fn on_submit(&self, payload: &Value) -> Result<Option<Value>, ServiceError> {
        if str_at(payload, "/view/callback_id") != Some(MODAL) {
            return Ok(None);
        }
        let meta: Value = str_at(payload, "/view/private_metadata")
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default();
        let (Some(user), Some(token), Some(conversation), Some(owner)) = (
            str_at(payload, "/user/id"),
            str_at(&meta, "/token"),
            str_at(&meta, "/conversation"),
            str_at(&meta, "/owner"),
        ) else {
            return Ok(None);
        };
        if owner != user {
            return Ok(None);
        }
        let text = payload
            .pointer(&format!("/view/state/values/{ANSWER}/{ANSWER}/value"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let channel = str_at(&meta, "/channel").unwrap_or_default();
        let message_ts = str_at(&meta, "/ts").unwrap_or_default();
        let event = match str_at(payload, "/trigger_id") {
            Some(trigger) => format!("slack:view:{trigger}"),
            None => format!(
                "slack:view:{}:{}",
                str_at(payload, "/view/id").unwrap_or_default(),
                str_at(payload, "/view/hash").unwrap_or_default()
            ),
        };
        let press = Pressed { user, conversation, channel, message_ts };
        let shown = str_at(&meta, "/shown");
        let notice =
            self.on_button(press, &event, Input::Answer { token, text }, (token, shown)).await?;
        Ok(notice.map(|notice| {
            json!({"response_action": "errors", "errors": {ANSWER: truncate(&notice, 2000)}})
        }))
    }

    /// The modal for a form field's input button; `None` if the token names no field.
    pub(crate) fn modal(
        &self,
        token: &Token<'_>,
        value: &str,
        conversation: &str,
        message_ts: &str,
        payload: &Value,
    ) -> Option<Value> {
        let flow = self.inner.service.flow();
        let (form, field) = flow.input_field(token)?;
        let limits = render::LIMITS;
        let channel = str_at(payload, "/container/channel_id").unwrap_or_default();
        let meta = json!({
            "token": value,
            "conversation": conversation,
            "owner": str_at(payload, "/user/id"),
            "channel": channel,
            "ts": message_ts,
        });
        let meta = metadata(meta, str_at(payload, "/message/text").unwrap_or_default());
        let plain =
            |text: &str, max: usize| json!({"type": "plain_text", "text": truncate(text, max)});
        Some(json!({
            "type": "modal",
            "callback_id": MODAL,
            "private_metadata": meta,
            "title": plain(form.title(), limits.modal_title),
            "submit": plain(&form.texts().input, limits.modal_title),
            "blocks": [{
                "type": "input",
                "block_id": ANSWER,
                "label": plain(field.label(), limits.modal_label),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ANSWER,
                    "max_length": field.max_chars().min(limits.input),
                },
            }],
        }))
    }
}

/// A modal's `private_metadata`: `meta` with as much of the pressed message's text `shown` as
/// fits in [`METADATA_MAX`] characters once serialized (JSON escapes quotes and line breaks).
fn metadata(mut meta: Value, shown: &str) -> String {
    let mut with = |kept: usize| {
        meta["shown"] = json!(truncate(shown, kept));
        meta.to_string()
    };
    let fits = |text: &String| text.chars().count() <= METADATA_MAX;
    // The most characters that fit, by bisection (the length grows with each one kept).
    let (mut low, mut high) = (0, shown.chars().count());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if fits(&with(mid)) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    with(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fits_slacks_limit_once_escaped() {
        let meta = json!({"token": "t".repeat(100), "conversation": "C1:1.2"});
        let shown = "\"\n".repeat(2000);
        let text = metadata(meta.clone(), &shown);
        assert!(text.chars().count() <= METADATA_MAX, "{}", text.chars().count());
        let read: Value = serde_json::from_str(&text).unwrap();
        assert!(shown.starts_with(read["shown"].as_str().unwrap()));
        assert!(read["shown"].as_str().unwrap().len() > 1000, "as much as fits is kept");
        let short = metadata(meta, "質問");
        assert_eq!(serde_json::from_str::<Value>(&short).unwrap()["shown"], "質問");
    }
}
