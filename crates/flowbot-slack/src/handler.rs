//! The shared handler of both modes: an event, a slash command or an interaction (as Slack's
//! JSON, whichever way it came) → an update for the service, with what it sends stored in the
//! step's transaction (see [`crate::deliver`]); ephemeral notices and modals are made at once.

use flowbot_core::{Action, Conversation, ConversationKey, Input, Token};
use flowbot_store::{Handled, Planned, ServiceError, Update};
use serde_json::Value;

use crate::deliver::{Job, outgoing};
use crate::render::{self, Owner, Plan, place};
use crate::{SINK, Slack};

/// How long a press in a thread waits for its channel's openings (Slack wants an answer
/// within 3 s; an opening commits within milliseconds).
const OPENING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl Slack {
    /// An Events API callback: a message in a direct message or a conversation's thread, or a
    /// mention of the bot in a channel. `Err` only when it is worth delivering again.
    pub(crate) async fn on_event(&self, callback: &Value) -> Result<(), ServiceError> {
        let Some(event) = callback.get("event") else { return Ok(()) };
        let event_id = str_at(callback, "/event_id").unwrap_or_default();
        if event.get("bot_id").is_some_and(|b| !b.is_null()) || str_at(event, "/subtype").is_some()
        {
            return Ok(());
        }
        let (Some(kind), Some(channel), Some(user)) =
            (str_at(event, "/type"), str_at(event, "/channel"), str_at(event, "/user"))
        else {
            return Ok(());
        };
        let text = str_at(event, "/text").unwrap_or_default();
        let ts = str_at(event, "/ts").unwrap_or_default();
        let thread = str_at(event, "/thread_ts").filter(|t| *t != ts);
        let event = format!("slack:event:{event_id}");
        match (kind, str_at(event_json(callback), "/channel_type"), thread) {
            ("message", Some("im"), _) => self.on_text(channel, user, text, &event).await,
            ("message", _, Some(thread)) => {
                let conversation = format!("{channel}:{thread}");
                self.on_text(&conversation, user, text, &event).await
            }
            ("app_mention", _, None) => {
                let entry = without_mentions(text);
                self.start_in_channel(channel, user, entry.split_whitespace().next(), &event).await
            }
            _ => Ok(()),
        }
    }

    /// Typed text in a conversation: a direct message always, a thread only if it is the
    /// user's own conversation.
    async fn on_text(
        &self,
        conversation: &str,
        user: &str,
        text: &str,
        event: &str,
    ) -> Result<(), ServiceError> {
        let key = ConversationKey::new(SINK, conversation, user);
        let service = &self.inner.service;
        let (channel, thread) = place(conversation);
        let thread = thread.is_some();
        if thread {
            self.inner.openings.settled(channel, OPENING_WAIT).await;
        }
        if thread && service.current(&key, service.now(), |_, _| ()).await?.is_none() {
            return Ok(());
        }
        let text = without_mentions(text);
        self.step(conversation, user, event, Input::Text(&text)).await
    }

    /// A slash command (its form fields as a JSON object). `Some(text)`: an ephemeral answer
    /// to give at once.
    pub(crate) async fn on_command(&self, command: &Value) -> Result<Option<String>, ServiceError> {
        let flow = self.inner.service.flow();
        let name = str_at(command, "/command").unwrap_or_default();
        if name.trim_start_matches('/') != self.inner.command {
            return Ok(Some(flow.texts().unknown_command.clone()));
        }
        let (Some(channel), Some(user)) =
            (str_at(command, "/channel_id"), str_at(command, "/user_id"))
        else {
            return Ok(None);
        };
        let trigger = str_at(command, "/trigger_id").unwrap_or_default();
        let text = str_at(command, "/text").unwrap_or_default().to_owned();
        let event = format!("slack:command:{trigger}");
        let entry = text.split_whitespace().next();
        if channel.starts_with('D') {
            self.start(channel, user, entry, &event).await?;
        } else {
            self.start_in_channel(channel, user, entry, &event).await?;
        }
        Ok(None)
    }

    /// Starts a conversation in a thread of `channel`, under the bot's first question. The
    /// thread's `ts` is part of the conversation's key, so the first question is posted
    /// before the step: the event is recorded first (a redelivery posts nothing), then the
    /// start is previewed (nothing stored), its first message posted in the channel, and the
    /// start applied under that message's `ts` with the rest of its messages stored for the
    /// thread. The step is the preview's own (a fresh key starts the same way, and its
    /// tokens hold no time), which the plan checks: if the flow was reloaded in between, the
    /// first message goes into the thread too rather than a stale one being left alone.
    /// Returns once the event is recorded; the rest runs on (Slack wants an answer within
    /// 3 s, and a redelivery would be a duplicate anyway).
    async fn start_in_channel(
        &self,
        channel: &str,
        user: &str,
        entry: Option<&str>,
        event: &str,
    ) -> Result<(), ServiceError> {
        let service = &self.inner.service;
        let key = ConversationKey::new(SINK, channel, user);
        let update = Update {
            key: &key,
            event: Some(event),
            input: Input::Start { entry },
            now: service.now(),
        };
        if !service.record_event(update).await? {
            return Ok(());
        }
        let this = self.clone();
        let (channel, user, entry) =
            (channel.to_owned(), user.to_owned(), entry.map(str::to_owned));
        tokio::spawn(async move {
            if let Err(err) = this.open_thread(&channel, &user, entry.as_deref()).await {
                tracing::error!(error = %err, "slack: conversation not started in the channel");
            }
        });
        Ok(())
    }

    /// Posts the start's first message in `channel` and applies the start in its thread (see
    /// [`Slack::start_in_channel`]).
    async fn open_thread(
        &self,
        channel: &str,
        user: &str,
        entry: Option<&str>,
    ) -> Result<(), ServiceError> {
        let service = &self.inner.service;
        // A press on the first question waits for the start's commit (see `openings`).
        let _opening = self.inner.openings.begin(channel);
        let flow = service.flow();
        let (_, preview) = Conversation::start(&flow, entry, service.now());
        let unplaced = format!("{channel}:");
        let owner = Owner { user, conversation: &unplaced };
        let Some(first) = render::plan(&flow, &preview, owner, None).messages.into_iter().next()
        else {
            return Ok(());
        };
        let ts = match self
            .inner
            .api
            .post(flowbot_adapter::RetryPolicy::CALL, channel, None, &first.text, &first.blocks)
            .await
        {
            Ok(ts) => ts,
            Err(err) => {
                tracing::error!(error = %err, "slack: cannot post the first question in the channel");
                return Ok(());
            }
        };
        let conversation = format!("{channel}:{ts}");
        let key = ConversationKey::new(SINK, &conversation, user);
        let update =
            Update { key: &key, event: None, input: Input::Start { entry }, now: service.now() };
        let owner = Owner { user, conversation: &conversation };
        service
            .handle_planned(update, |flow, outcome| {
                let mut plan = render::plan(flow, outcome, owner, None);
                if plan.messages.first() == Some(&first) {
                    plan.messages.remove(0);
                } else {
                    tracing::warn!("slack: the start changed since its first message was posted");
                }
                Planned::new((), outgoing(&conversation, jobs(&conversation, &plan, None)))
            })
            .await?;
        Ok(())
    }

    /// Starts (or restarts) the conversation `conversation` of `user`, at `entry`.
    async fn start(
        &self,
        conversation: &str,
        user: &str,
        entry: Option<&str>,
        event: &str,
    ) -> Result<(), ServiceError> {
        self.step(conversation, user, event, Input::Start { entry }).await
    }

    /// One step of `user`'s conversation `conversation` that answers no press: what it sends
    /// stored for the conversation's lane.
    async fn step(
        &self,
        conversation: &str,
        user: &str,
        event: &str,
        input: Input<'_>,
    ) -> Result<(), ServiceError> {
        let key = ConversationKey::new(SINK, conversation, user);
        let service = &self.inner.service;
        let update = Update { key: &key, event: Some(event), input, now: service.now() };
        let owner = Owner { user, conversation };
        service
            .handle_planned(update, |flow, outcome| {
                let plan = render::plan(flow, outcome, owner, None);
                Planned::new((), outgoing(conversation, jobs(conversation, &plan, None)))
            })
            .await?;
        Ok(())
    }

    /// An interaction: a button press or a modal's submission. `Some(body)`: the response to
    /// give (a modal's errors).
    pub(crate) async fn on_interaction(
        &self,
        payload: &Value,
    ) -> Result<Option<Value>, ServiceError> {
        match str_at(payload, "/type") {
            Some("block_actions") => self.on_press(payload).await.map(|()| None),
            Some("view_submission") => self.on_submit(payload).await,
            _ => Ok(None),
        }
    }

    async fn on_press(&self, payload: &Value) -> Result<(), ServiceError> {
        let flow = self.inner.service.flow();
        let Some(action) = payload.pointer("/actions/0") else { return Ok(()) };
        let (Some(user), Some(value), Some(block)) =
            (str_at(payload, "/user/id"), str_at(action, "/value"), str_at(action, "/block_id"))
        else {
            return Ok(());
        };
        let channel = str_at(payload, "/container/channel_id")
            .or_else(|| str_at(payload, "/channel/id"))
            .unwrap_or_default();
        let message_ts = str_at(payload, "/container/message_ts").unwrap_or_default();
        let Some((owner, placed)) = block.split_once('|') else { return Ok(()) };
        // A thread's buttons name its channel only: the thread is the message's own, or the
        // message itself if it is the thread's first (see `Owner::block_id`).
        let thread = str_at(payload, "/message/thread_ts");
        let conversation = match placed.strip_suffix(':') {
            Some(channel) => format!("{channel}:{}", thread.unwrap_or(message_ts)),
            None => placed.to_owned(),
        };
        if conversation.ends_with(':') {
            return Ok(());
        }
        let conversation = conversation.as_str();
        let (in_channel, thread_of_key) = place(conversation);
        if thread_of_key.is_some() {
            // The thread's start may still be committing (its first question is posted first).
            self.inner.openings.settled(in_channel, OPENING_WAIT).await;
        }
        let thread = thread_of_key.or(thread);
        if owner != user {
            self.inner.service.metrics().refused(SINK, flowbot_store::Refused::Foreign);
            self.notify(channel, thread, user, flowbot_core::View::foreign_toast(&flow));
            return Ok(());
        }
        let trigger = str_at(payload, "/trigger_id").unwrap_or_default();
        // A form field's input button opens a modal for the answer; whether the button is
        // still current is the engine's to judge when the answer arrives.
        if let Some(token) = Token::parse(value).filter(|t| matches!(t.action, Action::Field(_)))
            && let Some(modal) = self.modal(&token, value, conversation, message_ts, payload)
        {
            let api = self.inner.api.clone();
            let trigger = trigger.to_owned();
            tokio::spawn(async move {
                if let Err(err) = api.open_view(&trigger, &modal).await {
                    tracing::warn!(error = %err, "slack: views.open failed");
                }
            });
            return Ok(());
        }
        let shown = str_at(payload, "/message/text");
        let action_ts = str_at(action, "/action_ts").unwrap_or(trigger);
        let event = format!("slack:action:{user}:{action_ts}");
        self.on_button(
            Pressed { user, conversation, channel, message_ts },
            &event,
            Input::Press(value),
            (value, shown),
        )
        .await
        .map(|notice| {
            if let Some(notice) = notice {
                self.notify(channel, thread, user, &notice);
            }
        })
    }

    /// A press (or a modal's answer) on one of the bot's messages: the pressed message loses
    /// its buttons and shows the answer, what comes next is stored; a press that changed
    /// nothing gets its notice. `Some(notice)` when the step changed nothing.
    pub(crate) async fn on_button(
        &self,
        press: Pressed<'_>,
        event: &str,
        input: Input<'_>,
        pressed: (&str, Option<&str>),
    ) -> Result<Option<String>, ServiceError> {
        let key = ConversationKey::new(SINK, press.conversation, press.user);
        let service = &self.inner.service;
        let update = Update { key: &key, event: Some(event), input, now: service.now() };
        let owner = Owner { user: press.user, conversation: press.conversation };
        let conversation = press.conversation;
        let handled = service
            .handle_planned(update, |flow, outcome| {
                // A modal's answer refused: the reason is shown in the modal, which stays open
                // for another answer; the message keeps its buttons.
                if let Input::Answer { .. } = input
                    && let Some(reason) = refusal(outcome)
                {
                    return Planned::new(Some(reason.to_owned()), Vec::new());
                }
                let plan = render::plan(flow, outcome, owner, Some(pressed));
                if let Some(notice) = &plan.notice {
                    // An old button while the current question never reached the chat: that
                    // question again.
                    let again = render::plan(flow, outcome, owner, None);
                    return Planned {
                        now: Some(notice.clone()),
                        later: Vec::new(),
                        reshow: outgoing(conversation, jobs(conversation, &again, None)),
                    };
                }
                let pressed = Some((press.channel, press.message_ts));
                Planned::new(None, outgoing(conversation, jobs(conversation, &plan, pressed)))
            })
            .await?;
        let Handled::Done(done) = handled else { return Ok(None) };
        Ok(done.now)
    }

    /// An ephemeral notice to `user`, sent without holding up the request (not stored: it
    /// is useful only now).
    pub(crate) fn notify(&self, channel: &str, thread: Option<&str>, user: &str, text: &str) {
        let api = self.inner.api.clone();
        let (channel, thread, user) =
            (channel.to_owned(), thread.map(str::to_owned), user.to_owned());
        let text = render::mrkdwn(text);
        tokio::spawn(async move {
            if let Err(err) = api.ephemeral(&channel, thread.as_deref(), &user, &text).await {
                tracing::warn!(error = %err, "slack: chat.postEphemeral failed");
            }
        });
    }
}

/// The event's body (the callback's `event`).
fn event_json(callback: &Value) -> &Value {
    callback.get("event").unwrap_or(&Value::Null)
}

/// The reason a form's answer was refused, if it was.
pub(crate) fn refusal<'a>(outcome: &'a flowbot_core::Outcome<'_>) -> Option<&'a str> {
    outcome.replies.iter().find_map(|r| match r {
        flowbot_core::Reply::Notice { kind: flowbot_core::NoticeKind::Invalid, text } => {
            Some(*text)
        }
        _ => None,
    })
}

/// The parts of a press `on_button` needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pressed<'a> {
    pub(crate) user: &'a str,
    pub(crate) conversation: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) message_ts: &'a str,
}

/// Text without `<@U…>` mentions, trimmed.
fn without_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// The stored jobs of a plan, in the order they go out: the answered message's update, then
/// the messages.
fn jobs(conversation: &str, plan: &Plan, pressed: Option<(&str, &str)>) -> Vec<Job> {
    let (channel, thread) = place(conversation);
    let mut jobs = Vec::new();
    if let (Some(text), Some((pressed_channel, ts))) = (&plan.answered, pressed)
        && !ts.is_empty()
    {
        let channel = if pressed_channel.is_empty() { channel } else { pressed_channel };
        jobs.push(Job::Update {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
            text: text.clone(),
            blocks: Value::Array(vec![render::section(text)]),
        });
    }
    jobs.extend(plan.messages.iter().map(|m| Job::Post {
        channel: channel.to_owned(),
        thread: thread.map(str::to_owned),
        text: m.text.clone(),
        blocks: m.blocks.clone(),
    }));
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_taken_out() {
        assert_eq!(without_mentions("<@U123> taiou3"), "taiou3");
        assert_eq!(without_mentions("はい <@U1>"), "はい");
        assert_eq!(without_mentions("<@U1 broken"), "<@U1 broken");
    }
}
