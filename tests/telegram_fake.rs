//! The fake Telegram Bot API (`flowbot_tests::fake_telegram`) checked through teloxide itself.

use std::time::{Duration, Instant};

use flowbot_tests::fake_telegram::{Failure, FakeTelegram};
use serde_json::{Value, json};
use teloxide::prelude::*;
use teloxide::types::{
    CallbackQueryId, InlineKeyboardButton, InlineKeyboardMarkup, MessageEntityKind, MessageId,
    ParseMode, ReplyParameters, UpdateKind,
};
use teloxide::{ApiError, RequestError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "123456:test-token";
const WAIT: Duration = Duration::from_secs(2);

fn bot(fake: &FakeTelegram) -> Bot {
    Bot::new(TOKEN).set_api_url(fake.url().parse().expect("fake URL"))
}

fn keyboard(buttons: &[(&str, &str)]) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([buttons
        .iter()
        .map(|(text, data)| InlineKeyboardButton::callback(*text, *data))
        .collect::<Vec<_>>()])
}

/// A raw HTTP/1.1 POST to the fake: (status, JSON body).
async fn raw_post(fake: &FakeTelegram, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let addr = fake.url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("connect to the fake");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write the request");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the fake answers in time")
        .expect("read the response");
    let response = String::from_utf8(response).expect("UTF-8 response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn get_me_parses_as_me() {
    let fake = FakeTelegram::start(TOKEN).await;
    let me = bot(&fake).get_me().await.expect("getMe");
    assert_eq!(me.username(), fake.bot_username());
    assert_eq!(me.id.0 as i64, fake.bot_id());
    assert_eq!(fake.bot_id(), 123456);
    assert!(me.is_bot && me.can_join_groups);
    assert_eq!(fake.calls()[0].method, "getme", "methods are recorded lower-cased");
}

#[tokio::test]
async fn messages_and_presses_come_back_as_regular_updates_and_offsets_confirm() {
    let fake = FakeTelegram::start(TOKEN).await;
    let bot = bot(&fake);

    let (u1, m1) = fake.user_message(42, 42, "/start printer_jam");
    let sent = bot
        .send_message(ChatId(42), "Is it plugged in?")
        .reply_markup(keyboard(&[("Yes", "n:2"), ("No", "n:3")]))
        .reply_parameters(ReplyParameters::new(MessageId(m1 as i32)))
        .await
        .expect("sendMessage");
    assert_eq!(sent.reply_to_message().map(|m| m.id.0 as i64), Some(m1));
    let (u2, cbq) = fake.press(42, 42, sent.id.0 as i64, "n:2");
    let (u3, _) = fake.user_message(-100, 7, "hello group");
    assert_eq!((u1, u2, u3), (1, 2, 3));

    let updates = bot.get_updates().offset(0).timeout(0).await.expect("getUpdates");
    assert_eq!(updates.len(), 3);
    let UpdateKind::Message(msg) = &updates[0].kind else {
        panic!("expected a message, got {:?}", updates[0].kind)
    };
    assert_eq!(msg.text(), Some("/start printer_jam"));
    assert_eq!(msg.chat.id, ChatId(42));
    assert!(msg.chat.is_private());
    let entities = msg.entities().expect("entities");
    assert!(matches!(entities[0].kind, MessageEntityKind::BotCommand));
    assert_eq!(entities[0].length, "/start".len());

    let UpdateKind::CallbackQuery(q) = &updates[1].kind else {
        panic!("expected a callback query, got {:?}", updates[1].kind)
    };
    assert_eq!(q.id.0, cbq);
    assert_eq!(q.data.as_deref(), Some("n:2"));
    let pressed = q.regular_message().expect("a regular (accessible) message");
    assert_eq!(pressed.id, sent.id);
    assert_eq!(pressed.text(), Some("Is it plugged in?"));
    assert_eq!(pressed.reply_markup(), Some(&keyboard(&[("Yes", "n:2"), ("No", "n:3")])));
    assert_eq!(pressed.reply_to_message().map(|m| m.id.0 as i64), Some(m1));

    let UpdateKind::Message(group) = &updates[2].kind else {
        panic!("expected a message, got {:?}", updates[2].kind)
    };
    assert!(group.chat.is_supergroup());
    assert_eq!(group.from.as_ref().map(|u| u.id.0), Some(7));

    bot.answer_callback_query(q.id.clone()).await.expect("answerCallbackQuery");

    // A limit, then confirming the first update drops it for good.
    let first = bot.get_updates().offset(0).limit(1).timeout(0).await.expect("getUpdates");
    assert_eq!(first.len(), 1);
    let rest = bot.get_updates().offset(2).timeout(0).await.expect("getUpdates");
    assert_eq!(rest.iter().map(|u| u.id.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(fake.confirmed_offset(), 2);
    assert_eq!(fake.pending_updates(), 2);
    let none = bot.get_updates().offset(4).timeout(0).await.expect("getUpdates");
    assert!(none.is_empty());
    assert_eq!(fake.confirmed_offset(), 4);
    assert_eq!(fake.pending_updates(), 0);

    // A raw update keeps its shape and gets the next id.
    let id = fake.push_update(json!({"edited_message": {
        "message_id": m1, "date": 1_700_000_000, "edit_date": 1_700_000_001,
        "chat": {"id": 42, "type": "private", "first_name": "User"},
        "from": {"id": 42, "is_bot": false, "first_name": "User"}, "text": "edited"
    }}));
    assert_eq!(id, 4);
    let updates = bot.get_updates().offset(4).timeout(0).await.expect("getUpdates");
    assert!(matches!(updates[0].kind, UpdateKind::EditedMessage(_)), "{:?}", updates[0].kind);
}

#[tokio::test]
async fn long_polling_wakes_on_a_push_and_times_out_empty() {
    let fake = FakeTelegram::start(TOKEN).await;
    let bot = bot(&fake);
    let poll = tokio::spawn({
        let bot = bot.clone();
        async move { bot.get_updates().timeout(5).await }
    });
    // The waiting poll must not block other requests.
    fake.wait_for(0, WAIT, |c| c.method == "getupdates").await.expect("the poll arrives");
    bot.get_me().await.expect("getMe while a poll waits");
    assert!(!poll.is_finished());
    let started = Instant::now();
    fake.user_message(42, 42, "hi");
    let updates = poll.await.expect("join").expect("getUpdates");
    assert_eq!(updates.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));

    let started = Instant::now();
    let empty = bot.get_updates().offset(2).timeout(1).await.expect("getUpdates");
    assert!(empty.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test]
async fn edits_change_the_stored_message_and_unchanged_edits_are_refused() {
    let fake = FakeTelegram::start(TOKEN).await;
    let bot = bot(&fake);
    let kb = keyboard(&[("Yes", "n:2")]);
    let sent = bot
        .send_message(ChatId(-100), "Q1?")
        .parse_mode(ParseMode::Html)
        .reply_markup(kb.clone())
        .await
        .expect("sendMessage");
    let id = sent.id.0 as i64;
    let stored = fake.message(-100, id).expect("stored");
    assert_eq!(stored.text, "Q1?");
    assert_eq!(stored.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(stored.buttons, [[("Yes".to_owned(), "n:2".to_owned())]]);
    assert_eq!(fake.bot_messages(-100).len(), 1);

    let same = bot.edit_message_text(ChatId(-100), sent.id, "Q1?").reply_markup(kb.clone()).await;
    assert!(matches!(same, Err(RequestError::Api(ApiError::MessageNotModified))), "{same:?}");

    let edited =
        bot.edit_message_text(ChatId(-100), sent.id, "Q1? → Yes").await.expect("editMessageText");
    assert_eq!(edited.text(), Some("Q1? → Yes"));
    assert!(edited.reply_markup().is_none());
    let stored = fake.message(-100, id).expect("stored");
    assert_eq!(stored.text, "Q1? → Yes");
    assert!(stored.buttons.is_empty());
    assert_eq!(stored.parse_mode, None);

    let again = bot.edit_message_reply_markup(ChatId(-100), sent.id).await;
    assert!(matches!(again, Err(RequestError::Api(ApiError::MessageNotModified))), "{again:?}");
    let with_kb = bot
        .edit_message_reply_markup(ChatId(-100), sent.id)
        .reply_markup(kb)
        .await
        .expect("editMessageReplyMarkup");
    assert!(with_kb.reply_markup().is_some());
    assert_eq!(fake.message(-100, id).expect("stored").buttons.len(), 1);

    let missing = bot.edit_message_text(ChatId(-100), MessageId(9999), "x").await;
    assert!(
        matches!(missing, Err(RequestError::Api(ApiError::MessageToEditNotFound))),
        "{missing:?}"
    );
    let (_, user_msg) = fake.user_message(-100, 7, "mine");
    let theirs = bot.edit_message_text(ChatId(-100), MessageId(user_msg as i32), "x").await;
    assert!(matches!(theirs, Err(RequestError::Api(ApiError::MessageCantBeEdited))), "{theirs:?}");
    let long =
        bot.send_message(ChatId(-100), "x").reply_markup(keyboard(&[("A", &"a".repeat(65))]));
    assert!(matches!(long.await, Err(RequestError::Api(ApiError::ButtonDataInvalid))));
}

#[tokio::test]
async fn injected_failures_map_to_teloxide_errors() {
    let fake = FakeTelegram::start(TOKEN).await;
    let bot = bot(&fake);

    fake.fail_next("SendMessage", 1, Failure::TooManyRequests { retry_after: 3 });
    let limited = bot.send_message(ChatId(42), "hi").await;
    assert!(matches!(limited, Err(RequestError::RetryAfter(s)) if s.seconds() == 3), "{limited:?}");
    assert!(fake.bot_messages(42).is_empty(), "a failed call has no effect");
    bot.send_message(ChatId(42), "hi").await.expect("the next call goes through");
    let sends = fake.calls().into_iter().filter(|c| c.method == "sendmessage").count();
    assert_eq!(sends, 2, "failed calls are recorded too");

    fake.fail_next("answerCallbackQuery", 1, Failure::NetworkDrop);
    let dropped = bot.answer_callback_query(CallbackQueryId("cbq-1".to_owned())).await;
    assert!(matches!(dropped, Err(RequestError::Network(_))), "{dropped:?}");
    bot.answer_callback_query(CallbackQueryId("cbq-1".to_owned()))
        .await
        .expect("the next call goes through");

    // Checked without teloxide, which sleeps 10 s on any 5xx.
    fake.fail_next("getme", 1, Failure::ServerError);
    let path = format!("/bot{TOKEN}/getMe");
    let (status, body) = raw_post(&fake, &path, "application/json", "").await;
    assert_eq!(status, 500);
    assert_eq!(body["error_code"], 500);
    assert_eq!(raw_post(&fake, &path, "application/json", "").await.0, 200);
}

#[tokio::test]
async fn wrong_tokens_unknown_methods_and_form_bodies() {
    let fake = FakeTelegram::start(TOKEN).await;

    let wrong = Bot::new("999:wrong").set_api_url(fake.url().parse().expect("URL"));
    let err = wrong.get_me().await;
    assert!(matches!(err, Err(RequestError::Api(ApiError::InvalidToken))), "{err:?}");
    let (status, body) = raw_post(&fake, "/bot999:wrong/getMe", "application/json", "{}").await;
    assert_eq!((status, body["description"].as_str()), (401, Some("Unauthorized")));
    assert!(fake.calls().is_empty(), "requests with another token are not recorded");

    let path = format!("/bot{TOKEN}/NoSuchMethod");
    let (status, body) = raw_post(&fake, &path, "application/json", "{}").await;
    assert_eq!((status, body["error_code"].as_i64()), (404, Some(404)));

    let path = format!("/bot{TOKEN}/SENDMESSAGE");
    let form = "chat_id=-100&text=hi+there%21&reply_markup=%7B%22inline_keyboard%22%3A%5B%5B%7B%22text%22%3A%22A%22%2C%22callback_data%22%3A%22a%22%7D%5D%5D%7D";
    let (status, body) = raw_post(&fake, &path, "application/x-www-form-urlencoded", form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["text"], "hi there!");
    assert_eq!(body["result"]["chat"]["type"], "supergroup");
    let id = body["result"]["message_id"].as_i64().expect("message_id");
    let stored = fake.message(-100, id).expect("stored");
    assert_eq!(stored.buttons, [[("A".to_owned(), "a".to_owned())]]);

    let path = format!("/bot{TOKEN}/sendMessage");
    let (status, body) =
        raw_post(&fake, &path, "application/json", r#"{"chat_id":"42","text":"x"}"#).await;
    assert_eq!((status, body["result"]["chat"]["id"].as_i64()), (200, Some(42)));

    let path = format!("/bot{TOKEN}/getWebhookInfo");
    let (status, body) = raw_post(&fake, &path, "application/json", "").await;
    assert_eq!((status, body["result"]["url"].as_str()), (200, Some("")));

    let (i, call) = fake
        .wait_for(0, WAIT, |c| c.method == "sendmessage" && c.body["chat_id"] == "42")
        .await
        .expect("the JSON send is recorded");
    assert_eq!(fake.calls()[i].method, call.method);
    assert!(fake.wait_for(i + 1, Duration::from_millis(20), |c| c.method == "x").await.is_none());
}

#[tokio::test]
async fn a_teloxide_dispatcher_runs_against_the_fake() {
    use teloxide::update_listeners::Polling;

    let fake = FakeTelegram::start(TOKEN).await;
    let bot = bot(&fake);
    let handler = dptree::entry()
        .branch(Update::filter_message().endpoint(|bot: Bot, m: Message| async move {
            let text = format!("echo: {}", m.text().unwrap_or_default());
            bot.send_message(m.chat.id, text).reply_markup(keyboard(&[("Yes", "n:2")])).await?;
            Ok::<(), RequestError>(())
        }))
        .branch(Update::filter_callback_query().endpoint(
            |bot: Bot, q: CallbackQuery| async move {
                bot.answer_callback_query(q.id.clone()).await?;
                if let Some(m) = &q.message {
                    bot.edit_message_reply_markup(m.chat().id, m.id()).await?;
                }
                Ok::<(), RequestError>(())
            },
        ));
    let listener = Polling::builder(bot.clone()).timeout(Duration::from_secs(5)).build();
    let mut dispatcher = Dispatcher::builder(bot, handler).build();
    let token = dispatcher.shutdown_token();
    let run = tokio::spawn(async move {
        dispatcher.dispatch_with_listener(listener, LoggingErrorHandler::new()).await;
    });

    fake.user_message(42, 42, "/start");
    let (i, send) =
        fake.wait_for(0, WAIT, |c| c.method == "sendmessage").await.expect("the bot answers");
    assert_eq!(send.body["text"], "echo: /start");
    let msg = fake.bot_messages(42).pop().expect("stored");
    assert_eq!(msg.buttons.len(), 1);
    let (_, query_id) = fake.press(42, 42, msg.message_id, "n:2");
    let (_, answer) = fake
        .wait_for(i, WAIT, |c| c.method == "answercallbackquery")
        .await
        .expect("the press is answered");
    assert_eq!(answer.body["callback_query_id"], query_id.as_str());
    fake.wait_for(i, WAIT, |c| c.method == "editmessagereplymarkup").await.expect("an edit");
    assert!(fake.message(42, msg.message_id).expect("stored").buttons.is_empty());

    token.shutdown().expect("running").await;
    tokio::time::timeout(WAIT, run).await.expect("stops in time").expect("join");
    assert_eq!(fake.confirmed_offset(), 3, "the stopping poll confirms both updates");
    let polls: Vec<Value> =
        fake.calls().into_iter().filter(|c| c.method == "getupdates").map(|c| c.body).collect();
    let mut allowed: Vec<&str> = polls[0]["allowed_updates"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    allowed.sort_unstable();
    assert_eq!(allowed, ["callback_query", "message"], "teloxide infers them (in any order)");
    assert_eq!(polls.last(), Some(&json!({"offset": 3, "limit": 1, "timeout": 0})));
}
