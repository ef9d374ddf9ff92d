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
//! With `--marked` it makes the calls flowbot makes for a press instead, all three at once as
//! flowbot sends them: the press answered, the pressed message edited to what it asked and the
//! answer chosen (`→ label`, no buttons), and the next question as a new message. Everything
//! else stays as above (in memory, buttons only), so the load test can tell what that behaviour
//! costs apart from what flowbot's durability costs.
//!
//! ```sh
//! TELOXIDE_TOKEN=… TELEGRAM_API_URL=http://127.0.0.1:PORT target/release/teloxide-peer [--marked]
//! ```

use std::future::IntoFuture;
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

/// Whether a press marks the pressed message and asks the next question anew (`--marked`), as
/// flowbot does, rather than editing the question in place.
#[derive(Clone, Copy)]
struct Marked(bool);

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

/// The node a press leads to, and what it answered (the question's text and the chosen label):
/// `None` for a press that means nothing now.
fn pressed<'f>(flow: &'f Flow, state: State, data: &'f str) -> Option<(usize, &'f str, &'f str)> {
    match (state, data) {
        (state, RESTART) => {
            let asked = match state {
                State::At(at) => flow.nodes()[at].text(),
                State::Idle => "",
            };
            Some((flow.start().index(), asked, flow.texts().restart.as_str()))
        }
        (State::At(at), choice) => {
            let NodeKind::Question(question) = flow.nodes()[at].kind() else { return None };
            let choice = question.choices().get(choice.parse::<usize>().ok()?)?;
            Some((choice.next().index(), flow.nodes()[at].text(), choice.label()))
        }
        (State::Idle, _) => None,
    }
}

async fn on_press(
    bot: Bot,
    dialogue: MyDialogue,
    state: State,
    flow: Arc<Flow>,
    marked: Marked,
    q: CallbackQuery,
) -> HandlerResult {
    let answer = bot.answer_callback_query(q.id.clone());
    let Some((data, message)) = q.data.as_deref().zip(q.message.as_ref()) else {
        answer.await?;
        return Ok(());
    };
    let Some((next, asked, label)) = pressed(&flow, state, data) else {
        answer.await?;
        return Ok(());
    };
    let (text, keyboard, at) = screen(&flow, next);
    let chat = message.chat().id;
    if marked.0 {
        // The three calls at once: the latency of one round trip, as flowbot has.
        let mark = bot.edit_message_text(chat, message.id(), format!("{asked}\n\n→ {label}"));
        let ask = bot.send_message(chat, text).reply_markup(keyboard);
        let (answered, marked, asked) =
            tokio::join!(answer.into_future(), mark.into_future(), ask.into_future());
        answered?;
        marked?;
        asked?;
    } else {
        answer.await?;
        bot.edit_message_text(chat, message.id(), text).reply_markup(keyboard).await?;
    }
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
    let marked = Marked(std::env::args().skip(1).any(|a| a == "--marked"));
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
        .dependencies(dptree::deps![InMemStorage::<State>::new(), flow, marked])
        .build()
        .dispatch()
        .await;
}
