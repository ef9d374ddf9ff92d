//! What Slack's Web API checks before it posts a message or opens a modal, for the fake Slack
//! ([`crate::fake_slack`]): the trigger id of `views.open` (issued, used once, within 3 s),
//! Block Kit's limits on messages and modals, and that a thread or an updated message exists.
//! A refusal is Slack's answer: `{"ok": false, "error": …}` with HTTP 200, and for invalid
//! blocks or views, the reasons in `response_metadata.messages`.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::fake_slack::{Known, TRIGGER_LIFETIME};

/// Slack's limits (Block Kit reference and the methods' pages), in characters.
const MAX_MESSAGE_TEXT: usize = 40_000;
const MAX_MESSAGE_BLOCKS: usize = 50;
const MAX_MODAL_BLOCKS: usize = 100;
const MAX_SECTION_TEXT: usize = 3000;
const MAX_SECTION_FIELD: usize = 2000;
const MAX_SECTION_FIELDS: usize = 10;
const MAX_HEADER_TEXT: usize = 150;
const MAX_CONTEXT_ELEMENTS: usize = 10;
const MAX_ACTIONS: usize = 25;
const MAX_BUTTON_TEXT: usize = 75;
const MAX_BUTTON_VALUE: usize = 2000;
const MAX_URL: usize = 3000;
const MAX_ID: usize = 255;
const MAX_MODAL_TEXT: usize = 24;
const MAX_METADATA: usize = 3000;
const MAX_LABEL: usize = 2000;
const MAX_INPUT: usize = 3000;

/// `Ok` if Slack would accept the call `method` with `body`; else Slack's answer.
pub fn check(method: &str, body: &Value, known: &mut Known<'_>) -> Result<(), Value> {
    match method {
        "chat.postMessage" => {
            channel(body)?;
            thread(body, known)?;
            message(body)
        }
        "chat.postEphemeral" => {
            channel(body)?;
            if !non_empty(&body["user"]) {
                return Err(error("user_not_in_channel"));
            }
            thread(body, known)?;
            message(body)
        }
        "chat.update" => {
            let channel = channel(body)?;
            let ts = body["ts"].as_str().unwrap_or_default();
            if !known.messages.contains(&(channel.to_owned(), ts.to_owned())) {
                return Err(error("message_not_found"));
            }
            message(body)
        }
        "views.open" => {
            let trigger = body["trigger_id"].as_str().unwrap_or_default();
            let Some((issued, used)) = known.triggers.get_mut(trigger) else {
                return Err(error("invalid_trigger_id"));
            };
            if *used {
                return Err(error("exchanged_trigger_id"));
            }
            if issued.elapsed() > TRIGGER_LIFETIME {
                return Err(error("expired_trigger_id"));
            }
            let mut reasons = Vec::new();
            view(&body["view"], "/view", &mut reasons);
            if !reasons.is_empty() {
                return Err(invalid("invalid_arguments", reasons));
            }
            *used = true;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn error(code: &str) -> Value {
    json!({"ok": false, "error": code})
}

fn invalid(code: &str, reasons: Vec<String>) -> Value {
    json!({"ok": false, "error": code, "errors": reasons.clone(),
           "response_metadata": {"messages": reasons}})
}

fn non_empty(value: &Value) -> bool {
    value.as_str().is_some_and(|s| !s.is_empty())
}

fn chars(value: &Value) -> usize {
    value.as_str().map_or(0, |s| s.chars().count())
}

fn channel(body: &Value) -> Result<&str, Value> {
    body["channel"].as_str().filter(|c| !c.is_empty()).ok_or_else(|| error("channel_not_found"))
}

/// `thread_ts`, when given, is a message the fake posted in that channel.
fn thread(body: &Value, known: &Known<'_>) -> Result<(), Value> {
    let Some(thread) = body.get("thread_ts").filter(|t| !t.is_null()) else { return Ok(()) };
    let channel = body["channel"].as_str().unwrap_or_default().to_owned();
    let thread = thread.as_str().unwrap_or_default().to_owned();
    if known.messages.contains(&(channel, thread)) {
        Ok(())
    } else {
        Err(error("thread_not_found"))
    }
}

/// A message's `text` and `blocks`.
fn message(body: &Value) -> Result<(), Value> {
    let blocks = body.get("blocks").filter(|b| !b.is_null());
    let has_blocks = blocks.and_then(Value::as_array).is_some_and(|b| !b.is_empty());
    if !non_empty(&body["text"]) && !has_blocks {
        return Err(error("no_text"));
    }
    if chars(&body["text"]) > MAX_MESSAGE_TEXT {
        return Err(error("msg_too_long"));
    }
    let Some(blocks) = blocks else { return Ok(()) };
    let mut reasons = Vec::new();
    match blocks.as_array() {
        Some(list) if list.len() > MAX_MESSAGE_BLOCKS => {
            reasons.push(format!("no more than {MAX_MESSAGE_BLOCKS} items allowed [/blocks]"));
        }
        Some(list) => blocks_of(list, "/blocks", false, &mut reasons),
        None => reasons.push("must be an array [/blocks]".to_owned()),
    }
    if reasons.is_empty() { Ok(()) } else { Err(invalid("invalid_blocks", reasons)) }
}

/// A modal's view.
fn view(view: &Value, at: &str, reasons: &mut Vec<String>) {
    if view["type"] != "modal" {
        reasons.push(format!("must be modal [{at}/type]"));
    }
    text_object(&view["title"], &format!("{at}/title"), MAX_MODAL_TEXT, true, reasons);
    for (key, required) in [("submit", false), ("close", false)] {
        if !view[key].is_null() || required {
            text_object(&view[key], &format!("{at}/{key}"), MAX_MODAL_TEXT, true, reasons);
        }
    }
    limit(&view["callback_id"], &format!("{at}/callback_id"), MAX_ID, reasons);
    limit(&view["private_metadata"], &format!("{at}/private_metadata"), MAX_METADATA, reasons);
    limit(&view["external_id"], &format!("{at}/external_id"), MAX_ID, reasons);
    let Some(blocks) = view["blocks"].as_array() else {
        reasons.push(format!("must be an array [{at}/blocks]"));
        return;
    };
    if blocks.len() > MAX_MODAL_BLOCKS {
        reasons.push(format!("no more than {MAX_MODAL_BLOCKS} items allowed [{at}/blocks]"));
    }
    if blocks.iter().any(|b| b["type"] == "input") && view["submit"].is_null() {
        reasons.push(format!("a view with inputs needs submit [{at}/submit]"));
    }
    blocks_of(blocks, &format!("{at}/blocks"), true, reasons);
}

/// A surface's blocks: each valid, and block ids and action ids unique among them.
fn blocks_of(blocks: &[Value], at: &str, modal: bool, reasons: &mut Vec<String>) {
    let mut block_ids = HashSet::new();
    let mut action_ids = HashSet::new();
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("{at}/{i}");
        if let Some(id) = b["block_id"].as_str() {
            limit(&b["block_id"], &format!("{at}/block_id"), MAX_ID, reasons);
            if !block_ids.insert(id.to_owned()) {
                reasons.push(format!("duplicate block_id [{at}/block_id]"));
            }
        }
        let mut action_id = |element: &Value, at: &str, reasons: &mut Vec<String>| {
            if let Some(id) = element["action_id"].as_str() {
                limit(&element["action_id"], &format!("{at}/action_id"), MAX_ID, reasons);
                if !action_ids.insert(id.to_owned()) {
                    reasons.push(format!("duplicate action_id [{at}/action_id]"));
                }
            }
        };
        match b["type"].as_str().unwrap_or_default() {
            "section" => {
                if b["text"].is_null() && b["fields"].is_null() {
                    reasons.push(format!("must provide text or fields [{at}]"));
                }
                if !b["text"].is_null() {
                    text_object(
                        &b["text"],
                        &format!("{at}/text"),
                        MAX_SECTION_TEXT,
                        false,
                        reasons,
                    );
                }
                if let Some(fields) = b["fields"].as_array() {
                    if fields.len() > MAX_SECTION_FIELDS {
                        reasons.push(format!("no more than 10 items allowed [{at}/fields]"));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        let at = format!("{at}/fields/{j}");
                        text_object(f, &at, MAX_SECTION_FIELD, false, reasons);
                    }
                }
                if !b["accessory"].is_null() {
                    let at = format!("{at}/accessory");
                    element(&b["accessory"], &at, reasons);
                    action_id(&b["accessory"], &at, reasons);
                }
            }
            "actions" => {
                let elements = b["elements"].as_array().map_or(&[][..], Vec::as_slice);
                if elements.is_empty() || elements.len() > MAX_ACTIONS {
                    reasons.push(format!("must hold 1 to {MAX_ACTIONS} items [{at}/elements]"));
                }
                for (j, e) in elements.iter().enumerate() {
                    let at = format!("{at}/elements/{j}");
                    element(e, &at, reasons);
                    action_id(e, &at, reasons);
                }
            }
            "header" => {
                text_object(&b["text"], &format!("{at}/text"), MAX_HEADER_TEXT, true, reasons);
            }
            "context" => {
                let n = b["elements"].as_array().map_or(0, Vec::len);
                if n == 0 || n > MAX_CONTEXT_ELEMENTS {
                    reasons.push(format!("must hold 1 to 10 items [{at}/elements]"));
                }
            }
            "divider" => {}
            "input" if modal => {
                text_object(&b["label"], &format!("{at}/label"), MAX_LABEL, true, reasons);
                if !b["hint"].is_null() {
                    text_object(&b["hint"], &format!("{at}/hint"), MAX_LABEL, true, reasons);
                }
                let e = &b["element"];
                let at = format!("{at}/element");
                match e["type"].as_str() {
                    Some("plain_text_input") => {
                        for key in ["max_length", "min_length"] {
                            if let Some(n) = e.get(key).filter(|n| !n.is_null())
                                && n.as_u64().is_none_or(|n| n > MAX_INPUT as u64)
                            {
                                reasons.push(format!("must be at most {MAX_INPUT} [{at}/{key}]"));
                            }
                        }
                        if e["max_length"].as_u64() == Some(0) {
                            reasons.push(format!("must be at least 1 [{at}/max_length]"));
                        }
                        limit(
                            &e["initial_value"],
                            &format!("{at}/initial_value"),
                            MAX_INPUT,
                            reasons,
                        );
                    }
                    Some(_) => {}
                    None => reasons.push(format!("must provide an element [{at}]")),
                }
                action_id(e, &at, reasons);
            }
            other => reasons.push(format!("unsupported type `{other}` [{at}/type]")),
        }
    }
}

/// An interactive element (a button checked in full).
fn element(e: &Value, at: &str, reasons: &mut Vec<String>) {
    if e["type"] != "button" {
        return;
    }
    text_object(&e["text"], &format!("{at}/text"), MAX_BUTTON_TEXT, true, reasons);
    limit(&e["value"], &format!("{at}/value"), MAX_BUTTON_VALUE, reasons);
    limit(&e["url"], &format!("{at}/url"), MAX_URL, reasons);
    if let Some(style) = e.get("style").filter(|s| !s.is_null())
        && style != "primary"
        && style != "danger"
    {
        reasons.push(format!("must be primary or danger [{at}/style]"));
    }
}

/// A text object: `plain_text` (or `mrkdwn` where allowed), 1 to `max` characters.
fn text_object(t: &Value, at: &str, max: usize, plain: bool, reasons: &mut Vec<String>) {
    match t["type"].as_str() {
        Some("plain_text") => {}
        Some("mrkdwn") if !plain => {}
        _ => {
            let allowed = if plain { "plain_text" } else { "plain_text or mrkdwn" };
            reasons.push(format!("must be {allowed} [{at}/type]"));
        }
    }
    let n = chars(&t["text"]);
    if n == 0 {
        reasons.push(format!("must be more than 0 characters [{at}/text]"));
    } else if n > max {
        reasons.push(format!("must be less than {} characters [{at}/text]", max + 1));
    }
}

/// A string field of at most `max` characters, if present.
fn limit(value: &Value, at: &str, max: usize, reasons: &mut Vec<String>) {
    if chars(value) > max {
        reasons.push(format!("must be less than {} characters [{at}]", max + 1));
    }
}
