//! One update: a message or a button press becomes an input for the service, and its outcome
//! the jobs stored with the step (sent later, in order) and the press's toast (answered now).

use flowbot_adapter::RetryPolicy;
use flowbot_core::{ConversationKey, Input};
use flowbot_store::{Handled, Outgoing, Planned, ServiceError, Update as StoreUpdate};
use teloxide::payloads::{AnswerCallbackQuery, AnswerCallbackQuerySetters};
use teloxide::types::{CallbackQuery, Message, MessageId, Update, UpdateKind};

use crate::deliver::Job;
use crate::render::{self, Plan};
use crate::{SINK, Telegram};

impl Telegram {
    /// Handles one update. `Err` only when it is worth delivering again (the store failed).
    pub async fn handle(&self, update: &Update) -> Result<(), ServiceError> {
        let id = update.id.0;
        match &update.kind {
            UpdateKind::Message(message) => self.on_message(id, message).await,
            UpdateKind::CallbackQuery(query) => self.on_press(query).await,
            UpdateKind::EditedMessage(m) => {
                // An edit of an answer already given: answering again would apply it twice.
                tracing::debug!(chat = m.chat.id.0, "telegram: ignoring an edited message");
                Ok(())
            }
            UpdateKind::Error(value) => {
                tracing::warn!(update = id, kind = %value.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(",")).unwrap_or_default(), "telegram: update not understood; ignored");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_message(&self, update_id: u32, message: &Message) -> Result<(), ServiceError> {
        let Some(user) = message.from.as_ref().filter(|u| !u.is_bot) else { return Ok(()) };
        let group = !message.chat.is_private();
        let text = message.text().or(message.caption()).unwrap_or_default();
        let text = if group {
            match self.addressed(message, text) {
                Some(text) => text,
                None => return Ok(()),
            }
        } else {
            text.to_owned()
        };
        let chat = message.chat.id.0;
        let key = ConversationKey::new(SINK, &chat.to_string(), &user.id.0.to_string());
        let event = format!("telegram:update:{update_id}");
        let service = &self.inner.service;
        let update = StoreUpdate {
            key: &key,
            event: Some(&event),
            input: Input::Text(&text),
            now: service.now(),
        };
        let reply_to = group.then_some(message.id);
        service
            .handle_planned(update, |flow, outcome| {
                let plan = render::plan(flow, outcome, None);
                Planned::new((), jobs(chat, &plan, None, reply_to))
            })
            .await?;
        Ok(())
    }

    /// The text of a group message meant for the bot (its `@name` removed), or `None`.
    fn addressed(&self, message: &Message, text: &str) -> Option<String> {
        let mention = format!("@{}", self.inner.username);
        let replies_to_bot = message
            .reply_to_message()
            .and_then(|m| m.from.as_ref())
            .is_some_and(|u| u.id.0 == self.inner.bot_id);
        let command = text.strip_prefix('/').map(|c| c.split_whitespace().next().unwrap_or(""));
        let command_for_us = command.is_some_and(|word| match word.split_once('@') {
            Some((_, name)) => name.eq_ignore_ascii_case(&self.inner.username),
            None => true,
        });
        let mentions = !self.inner.username.is_empty() && text.contains(&mention);
        (replies_to_bot || command_for_us || mentions)
            .then(|| text.replace(&mention, "").trim().to_owned())
    }

    async fn on_press(&self, query: &CallbackQuery) -> Result<(), ServiceError> {
        let (Some(data), Some(message)) = (query.data.as_deref(), query.message.as_ref()) else {
            self.answer(query, String::new());
            return Ok(());
        };
        let chat = message.chat().id;
        let group = !message.chat().is_private();
        // In a group, the bot's messages reply to their owner's message.
        let owner = message.regular_message().and_then(|m| m.reply_to_message());
        if group && owner.and_then(|o| o.from.as_ref()).is_some_and(|o| o.id != query.from.id) {
            self.inner.service.metrics().refused(SINK, flowbot_store::Refused::Foreign);
            self.answer(query, self.inner.service.flow().texts().not_yours.clone());
            return Ok(());
        }
        let key = ConversationKey::new(SINK, &chat.0.to_string(), &query.from.id.0.to_string());
        let event = format!("telegram:callback:{}", query.id.0);
        let service = &self.inner.service;
        let update = StoreUpdate {
            key: &key,
            event: Some(&event),
            input: Input::Press(data),
            now: service.now(),
        };
        let reply_to = if group { owner.map(|o| o.id) } else { None };
        let handled = service
            .handle_planned(update, |flow, outcome| {
                let shown = message.regular_message().and_then(|m| m.text());
                let plan = render::plan(flow, outcome, Some(render::Pressed { data, shown }));
                let later = jobs(chat.0, &plan, Some(message.id()), reply_to);
                // An old button while the current question never reached the chat: the notice
                // and that question, as a new message.
                let reshow = if plan.message.is_none() {
                    jobs(chat.0, &render::plan(flow, outcome, None), None, reply_to)
                } else {
                    Vec::new()
                };
                Planned { now: plan.toast, later, reshow }
            })
            .await;
        match handled {
            Ok(Handled::Done(done)) => self.answer(query, done.now),
            Ok(Handled::Duplicate) => self.answer(query, String::new()),
            Err(err) => {
                // Stop the spinner anyway; the update will come again.
                self.answer(query, String::new());
                return Err(err);
            }
        }
        Ok(())
    }

    /// Answers a press (its toast, or just stops the spinner) without holding up the update:
    /// the answer is not stored, since Telegram forgets an unanswered query within seconds.
    fn answer(&self, query: &CallbackQuery, toast: String) {
        let mut request = AnswerCallbackQuery::new(query.id.clone());
        if !toast.is_empty() {
            request = request.text(toast);
        }
        let api = self.inner.api.clone();
        tokio::spawn(async move {
            let result = RetryPolicy::CALL.run("answerCallbackQuery", || api.send(&request)).await;
            if let Err(err) = result
                && !err.is_harmless()
            {
                tracing::warn!(error = %err, "telegram: answerCallbackQuery failed");
            }
        });
    }
}

/// The stored jobs of a plan, in the order they go out: the answered message's edit, then the
/// message's chunks (the keyboard on the last, the first replying to `reply_to`). The edit goes
/// with the first chunk when there is one: one stored item instead of two.
fn jobs(
    chat: i64,
    plan: &Plan,
    pressed: Option<MessageId>,
    reply_to: Option<MessageId>,
) -> Vec<Outgoing> {
    let mut jobs = Vec::new();
    let mut mark = match (&plan.answered, pressed) {
        (Some(html), Some(message)) => Some((message.0, html.clone())),
        _ => None,
    };
    if let Some(message) = &plan.message {
        let last = message.chunks.len().saturating_sub(1);
        for (i, chunk) in message.chunks.iter().enumerate() {
            jobs.push(Job::send(
                chat,
                chunk.clone(),
                if i == last { message.keyboard.clone() } else { Vec::new() },
                reply_to.filter(|_| i == 0).map(|m| m.0),
                mark.take(),
            ));
        }
    }
    if let Some((message, html)) = mark {
        jobs.push(Job::edit(chat, message, html));
    }
    let lane = chat.to_string();
    jobs.into_iter()
        .map(|job| Outgoing { sink: SINK.to_owned(), lane: lane.clone(), body: job.body() })
        .collect()
}
