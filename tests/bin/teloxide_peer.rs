//! The load test's peer: a minimal teloxide 0.17 dialogue bot over the G-MIS tree, written as a
//! typical teloxide bot is, to measure flowbot against (`telegram-load` runs both).
//!
//! State lives in teloxide's `InMemStorage` dialogue (keyed by chat, lost on a restart); updates
//! are confirmed when fetched (teloxide's polling); one message per conversation, edited in place
//! on every press; buttons only: a text typed while a question waits gets a short message asking
//! to use the buttons (no keyboard, no state change), a command or any text at other times starts
//! over. It reads the tree with `flowbot_core` and has its own plain walking logic: no engine, no
//! store, no adapter. A press is taken as a choice of the current question, whichever message it
//! came from (a press on an older question's button with data valid now moves the conversation).
//!
//! ```sh
//! TELOXIDE_TOKEN=… TELEGRAM_API_URL=http://127.0.0.1:PORT target/release/teloxide-peer
//! ```

use std::sync::Arc;

use flowbot_core::{Flow, NodeKind};
use teloxide::dispatching::dialogue::InMemStorage;
use teloxide::prelude::*;
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

type MyDialogue = Dialogue<State, InMemStorage<State>>;
type HandlerResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Where a chat's conversation stands: the index of the node it waits at.
#[derive(Clone, Default)]
enum State {
    #[default]
    Idle,
    At(usize),
}

/// The callback data of the restart button.
const RESTART: &str = "restart";

/// The answer to a text typed while a question waits: this bot takes answers by button only.
const USE_THE_BUTTONS: &str = "ボタンで選んでください。";

/// What a node shows: the texts of the message nodes passed on the way, then the question (or
/// ending), and the index of the node the conversation waits at.
fn screen(flow: &Flow, mut at: usize) -> (String, InlineKeyboardMarkup, usize) {
    let mut text = String::new();
    loop {
        let node = &flow.nodes()[at];
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(node.text());
        match node.kind() {
            NodeKind::Message { next, .. } => at = next.index(),
            NodeKind::Question(q) => {
                let rows =
                    q.choices().iter().enumerate().map(|(i, c)| {
                        vec![InlineKeyboardButton::callback(c.label(), i.to_string())]
                    });
                let restart = std::iter::once(vec![InlineKeyboardButton::callback(
                    &flow.texts().restart,
                    RESTART,
                )]);
                return (text, InlineKeyboardMarkup::new(rows.chain(restart)), at);
            }
            _ => {
                let restart = InlineKeyboardButton::callback(&flow.texts().restart, RESTART);
                return (text, InlineKeyboardMarkup::new([[restart]]), at);
            }
        }
    }
}

async fn on_message(
    bot: Bot,
    dialogue: MyDialogue,
    state: State,
    flow: Arc<Flow>,
    msg: Message,
) -> HandlerResult {
    let command = msg.text().is_some_and(|t| t.starts_with('/'));
    let asking =
        matches!(state, State::At(at) if matches!(flow.nodes()[at].kind(), NodeKind::Question(_)));
    if asking && !command {
        bot.send_message(msg.chat.id, USE_THE_BUTTONS).await?;
        return Ok(());
    }
    let (text, keyboard, at) = screen(&flow, flow.start().index());
    bot.send_message(msg.chat.id, text).reply_markup(keyboard).await?;
    dialogue.update(State::At(at)).await?;
    Ok(())
}

async fn on_press(
    bot: Bot,
    dialogue: MyDialogue,
    state: State,
    flow: Arc<Flow>,
    q: CallbackQuery,
) -> HandlerResult {
    bot.answer_callback_query(q.id.clone()).await?;
    let (Some(data), Some(message)) = (q.data.as_deref(), q.message.as_ref()) else {
        return Ok(());
    };
    let next = match (state, data) {
        (_, RESTART) => flow.start().index(),
        (State::At(at), choice) => {
            let NodeKind::Question(question) = flow.nodes()[at].kind() else { return Ok(()) };
            match choice.parse::<usize>().ok().and_then(|i| question.choices().get(i)) {
                Some(choice) => choice.next().index(),
                None => return Ok(()),
            }
        }
        (State::Idle, _) => return Ok(()),
    };
    let (text, keyboard, at) = screen(&flow, next);
    bot.edit_message_text(message.chat().id, message.id(), text).reply_markup(keyboard).await?;
    dialogue.update(State::At(at)).await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let token = std::env::var("TELOXIDE_TOKEN").expect("TELOXIDE_TOKEN");
    let mut bot = Bot::new(token);
    if let Ok(url) = std::env::var("TELEGRAM_API_URL") {
        bot = bot.set_api_url(url.parse().expect("TELEGRAM_API_URL is a URL"));
    }
    let flow = Arc::new(flowbot_tests::gmis());
    let handler = dptree::entry()
        .branch(
            Update::filter_message()
                .enter_dialogue::<Message, InMemStorage<State>, State>()
                .endpoint(on_message),
        )
        .branch(
            Update::filter_callback_query()
                .enter_dialogue::<CallbackQuery, InMemStorage<State>, State>()
                .endpoint(on_press),
        );
    Dispatcher::builder(bot, handler)
        .dependencies(dptree::deps![InMemStorage::<State>::new(), flow])
        .build()
        .dispatch()
        .await;
}
