//! Telegram end to end: the real `flowbot run` against the fake Bot API on 127.0.0.1.

use std::time::{Duration, Instant};

use flowbot_store::SqlStore;
use flowbot_tests::fake_telegram::{Call, Failure, FakeMessage, FakeTelegram};
use flowbot_tests::{BotProcess, gmis, http_request, labels_of_path};

pub(crate) const TOKEN: &str = "123456:TEST-never-print-this-token";
pub(crate) const SECRET_PART: &str = "never-print-this-token";
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// `flowbot run` against a fake Bot API.
pub(crate) struct Bot;

impl Bot {
    pub(crate) fn start(fake: &FakeTelegram, db: &std::path::Path, extra: &[&str]) -> BotProcess {
        let url = fake.url();
        BotProcess::start(
            db,
            extra,
            &[("TELEGRAM_BOT_TOKEN", TOKEN), ("TELEGRAM_API_URL", &url)],
            SECRET_PART,
        )
    }
}

pub(crate) fn chat_of(call: &Call) -> i64 {
    let id = &call.body["chat_id"];
    id.as_i64().or_else(|| id.as_str().and_then(|s| s.parse().ok())).unwrap_or(0)
}

/// Where a chat stood before a step: the call count, and how many bot messages it had.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    since: usize,
    known: usize,
}

pub(crate) fn mark(fake: &FakeTelegram, chat: i64) -> Mark {
    Mark { since: fake.call_count(), known: fake.bot_messages(chat).len() }
}

/// Waits for the bot's next message in `chat` after `mark`, and returns it (its last chunk,
/// which carries the keyboard).
pub(crate) async fn next_message(fake: &FakeTelegram, chat: i64, mark: Mark) -> FakeMessage {
    fake.wait_for(mark.since, WAIT, |c| c.method == "sendmessage" && chat_of(c) == chat)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no message in chat {chat}; calls: {:?}",
                fake.calls().iter().map(|c| &c.method).collect::<Vec<_>>()
            )
        });
    let deadline = Instant::now() + WAIT;
    loop {
        let messages = fake.bot_messages(chat);
        if let Some(last) =
            messages.last().filter(|m| !m.buttons.is_empty() && messages.len() > mark.known)
        {
            return last.clone();
        }
        assert!(Instant::now() < deadline, "no new keyboard in chat {chat}: {messages:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The first new bot message in `chat` after `mark` whose text holds `text` and that has
/// buttons.
pub(crate) async fn message_with(
    fake: &FakeTelegram,
    chat: i64,
    mark: Mark,
    text: &str,
) -> FakeMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = fake
            .bot_messages(chat)
            .into_iter()
            .skip(mark.known)
            .find(|m| m.text.contains(text) && !m.buttons.is_empty());
        if let Some(message) = found {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "no message with {text:?} in chat {chat}: {:?}",
            fake.bot_messages(chat)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Everything sent to `chat` for the updates before it has gone out once this returns: a
/// `/help` from `user` is answered after it (a chat's updates are handled in order, and its
/// replies go out in order). Returns the index of that answer among the fake's calls.
pub(crate) async fn barrier(fake: &FakeTelegram, chat: i64, user: i64) -> usize {
    let help = gmis().texts().help.lines().next().unwrap_or_default().to_owned();
    barrier_with(fake, chat, user, &help).await
}

/// [`barrier`] for a user without a conversation yet, whose `/help` starts one: its answer is
/// the first question, `expect`.
pub(crate) async fn barrier_with(fake: &FakeTelegram, chat: i64, user: i64, expect: &str) -> usize {
    let since = fake.call_count();
    let help = expect.to_owned();
    fake.user_message(chat, user, "/help");
    let (at, _) = fake
        .wait_for(since, WAIT, |c| {
            c.method == "sendmessage"
                && chat_of(c) == chat
                && c.body["text"].as_str().is_some_and(|t| t.contains(&help))
        })
        .await
        .expect("the help, after everything before it");
    at
}

pub(crate) async fn say(fake: &FakeTelegram, chat: i64, user: i64, text: &str) -> FakeMessage {
    let at = mark(fake, chat);
    fake.user_message(chat, user, text);
    next_message(fake, chat, at).await
}

pub(crate) fn data_of(message: &FakeMessage, label: &str) -> String {
    message
        .buttons
        .iter()
        .flatten()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no button {label} on {message:?}"))
        .1
        .clone()
}

pub(crate) async fn press(
    fake: &FakeTelegram,
    chat: i64,
    user: i64,
    message: &FakeMessage,
    label: &str,
) -> FakeMessage {
    let at = mark(fake, chat);
    fake.press(chat, user, message.message_id, &data_of(message, label));
    next_message(fake, chat, at).await
}

/// The bot's message `id` once its keyboard is gone (it was answered).
pub(crate) async fn answered(fake: &FakeTelegram, chat: i64, id: i64) -> FakeMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        let message = fake.message(chat, id).expect("the message");
        if message.buttons.is_empty() {
            return message;
        }
        assert!(Instant::now() < deadline, "the answered message kept its keyboard: {message:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The toast of the next answerCallbackQuery after `since`.
pub(crate) async fn toast(fake: &FakeTelegram, since: usize) -> String {
    let (_, call) = fake
        .wait_for(since, WAIT, |c| c.method == "answercallbackquery")
        .await
        .expect("a callback answer");
    call.body["text"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_of_the_flow_by_button_presses() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    // The commands are registered at start.
    let (_, commands) = fake.wait_for(0, WAIT, |c| c.method == "setmycommands").await.unwrap();
    let names: Vec<_> = commands.body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["start", "back", "restart", "help"]);

    let paths = gmis().paths();
    assert_eq!(paths.len(), 25);
    for (i, path) in paths.iter().enumerate() {
        let (labels, ending) = labels_of_path(path);
        let chat = 1000 + i as i64;
        let mut message = say(&fake, chat, chat, "/start").await;
        assert!(message.text.contains("「事前確認メール（★）」は届いていますか？"), "{message:?}");
        assert_eq!(message.parse_mode.as_deref(), Some("HTML"));
        for label in &labels {
            let pressed = message.message_id;
            let since = fake.call_count();
            message = press(&fake, chat, chat, &message, label).await;
            assert_eq!(toast(&fake, since).await, "", "a press that moves on shows no toast");
            // The answered message shows the answer and has no buttons left (the edit goes out
            // alongside the next message, so it may land a moment later).
            let answered = answered(&fake, chat, pressed).await;
            assert!(answered.text.ends_with(&format!("→ <b>{label}</b>")), "{answered:?}");
        }
        assert!(message.text.contains(&ending), "path {i} should end at {ending}: {message:?}");
        let buttons: Vec<_> = message.buttons.iter().flatten().map(|(l, _)| l.as_str()).collect();
        assert_eq!(buttons, ["戻る", "最初から"]);
        assert!(!message.text.contains(".rest/"));
        if message.text.contains("https://www.med-login.mhlw.go.jp/") {
            assert!(
                message.text.contains("<a href=\"https://www.med-login.mhlw.go.jp/\">"),
                "links are clickable"
            );
        }
    }
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_answers_stale_double_and_forged_presses_and_deep_links() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let chat = 42;

    // Typed answers: a full-width number, a label, a yes word.
    let q1 = say(&fake, chat, chat, "/start").await;
    let q2 = say(&fake, chat, chat, "２").await;
    assert!(q2.text.contains("「G-MIS利用案内メール（★）」は届いていますか？"), "{q2:?}");
    let q3 = say(&fake, chat, chat, "届いていない").await;
    assert!(q3.text.contains("メールボックスの空き容量は不足していませんか？"));
    let miss = say(&fake, chat, chat, "なんとなく").await;
    assert!(
        miss.text.starts_with("選択肢の番号（1、2…）か、ボタンの文言を入力してください。"),
        "{miss:?}"
    );

    // A press on an old message: a toast, nothing sent, nothing changed.
    let since = fake.call_count();
    fake.press(chat, chat, q1.message_id, &data_of(&q1, "届いている"));
    assert_eq!(
        toast(&fake, since).await,
        "このボタンは以前の質問のものです。いまの質問にお答えください。"
    );
    // A forged button the same way.
    let since = fake.call_count();
    fake.press(chat, chat, miss.message_id, "99:q3:0");
    assert_eq!(
        toast(&fake, since).await,
        "このボタンは以前の質問のものです。いまの質問にお答えください。"
    );
    let since = fake.call_count();
    fake.press(chat, chat, miss.message_id, "\u{0}garbage");
    assert!(!toast(&fake, since).await.is_empty());
    let until = barrier(&fake, chat, chat).await;
    assert!(
        fake.calls()[since..until].iter().all(|c| c.method != "sendmessage"),
        "stale presses send nothing"
    );

    // A double press: both arrive, one applies.
    let at = mark(&fake, chat);
    let since = at.since;
    let data = data_of(&miss, "空き容量は十分にある");
    fake.press(chat, chat, miss.message_id, &data);
    fake.press(chat, chat, miss.message_id, &data);
    let q4 = next_message(&fake, chat, at).await;
    assert!(q4.text.contains("「迷惑メールフォルダ」に当該メールがありますか？"));
    // Both presses are answered (wait for the second), and only one sent a question.
    let (first, _) =
        fake.wait_for(since, WAIT, |c| c.method == "answercallbackquery").await.unwrap();
    fake.wait_for(first + 1, WAIT, |c| c.method == "answercallbackquery")
        .await
        .expect("the second press answered");
    let until = barrier(&fake, chat, chat).await;
    let calls = fake.calls();
    assert_eq!(calls[since..until].iter().filter(|c| c.method == "sendmessage").count(), 1);
    assert_eq!(
        calls[since..].iter().filter(|c| c.method == "answercallbackquery").count(),
        2,
        "both presses answered"
    );

    // Deep links: a named entry, and an unknown one.
    let m3 = say(&fake, 43, 43, "/start taiou3").await;
    assert!(
        m3.text.starts_with("対応方法3（担当者が退職等で不在のため、メールが確認できない場合）"),
        "{m3:?}"
    );
    let unknown = say(&fake, 44, 44, "/start nosuch").await;
    assert!(
        unknown.text.starts_with("指定された開始位置が見つからないため、最初から案内します。"),
        "{unknown:?}"
    );
    assert!(unknown.text.contains("「事前確認メール（★）」は届いていますか？"));
    // A sticker: answered like an unmatched answer.
    let at = mark(&fake, 44);
    fake.push_update(serde_json::json!({"message": {"message_id": 9001, "date": 1, "chat": {"id": 44, "type": "private", "first_name": "U"}, "from": {"id": 44, "is_bot": false, "first_name": "U"}, "sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1, "height": 1, "is_animated": false, "is_video": false}}}));
    let answer = next_message(&fake, 44, at).await;
    assert!(answer.text.starts_with("選択肢の番号"), "{answer:?}");
    // An edited message is not applied again.
    let since = fake.call_count();
    fake.push_update(serde_json::json!({"edited_message": {"message_id": 9002, "date": 1, "edit_date": 2, "chat": {"id": 44, "type": "private", "first_name": "U"}, "from": {"id": 44, "is_bot": false, "first_name": "U"}, "text": "1"}}));
    let until = barrier(&fake, 44, 44).await;
    assert!(fake.calls()[since..until].iter().all(|c| c.method != "sendmessage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_group_only_when_addressed_and_only_the_owner_presses() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let (group, alice, bob) = (-100_123, 1, 2);
    let since = fake.call_count();
    fake.user_message(group, alice, "こんにちは、皆さん");
    let first = gmis().node(gmis().start()).text().lines().next().unwrap().to_owned();
    let until = barrier_with(&fake, group, alice, &first).await;
    assert!(
        fake.calls()[since..until].iter().all(|c| c.method != "sendmessage"),
        "not addressed: no answer"
    );

    let q1 = say(&fake, group, alice, "/start@gmis_test_bot").await;
    assert!(q1.reply_to.is_some(), "the bot replies to the member it answers");
    let since = fake.call_count();
    fake.press(group, bob, q1.message_id, &data_of(&q1, "届いている"));
    assert_eq!(
        toast(&fake, since).await,
        "このボタンは別の方の案内のものです。ご自身の案内は /start から始めてください。"
    );
    let q2 = press(&fake, group, alice, &q1, "届いている").await;
    assert!(q2.text.contains("「G-MIS利用案内メール（★）」は届いていますか？"));
    assert_eq!(q2.reply_to, q1.reply_to, "still replying to alice");
    // Bob's own conversation in the same group is separate.
    let bob_q1 = say(&fake, group, bob, "/start").await;
    assert!(bob_q1.text.contains("「事前確認メール（★）」は届いていますか？"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_network_drops_lose_no_reply() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let chat = 7;
    fake.fail_next("sendMessage", 1, Failure::TooManyRequests { retry_after: 1 });
    fake.fail_next("getUpdates", 1, Failure::NetworkDrop);
    let started = Instant::now();
    let q1 = say(&fake, chat, chat, "/start").await;
    assert!(started.elapsed() >= Duration::from_secs(1), "waited out retry_after");
    fake.fail_next("answerCallbackQuery", 1, Failure::TooManyRequests { retry_after: 1 });
    fake.fail_next("editMessageText", 1, Failure::TooManyRequests { retry_after: 1 });
    fake.fail_next("sendMessage", 2, Failure::NetworkDrop);
    let since = fake.call_count();
    let q2 = press(&fake, chat, chat, &q1, "届いている").await;
    assert!(q2.text.contains("「G-MIS利用案内メール（★）」は届いていますか？"));
    // The answer and the edit wait out their retry_after while the next question goes out.
    for method in ["answercallbackquery", "editmessagetext"] {
        let (first, _) = fake.wait_for(since, WAIT, |c| c.method == method).await.expect(method);
        fake.wait_for(first + 1, WAIT, |c| c.method == method)
            .await
            .unwrap_or_else(|| panic!("{method} retried"));
    }
    answered(&fake, chat, q1.message_id).await;
}

/// The mark goes out beside the next question; when only the mark fails for a while, it is
/// retried alone: the question is not sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_refused_for_a_while_is_retried_without_the_question_again() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let chat = 12;
    let q1 = say(&fake, chat, chat, "/start").await;
    fake.fail_next("editMessageText", 1, Failure::TooManyRequests { retry_after: 1 });
    let since = fake.call_count();
    let q2 = press(&fake, chat, chat, &q1, "届いている").await;
    let question = "「G-MIS利用案内メール（★）」は届いていますか？";
    assert!(q2.text.contains(question));
    answered(&fake, chat, q1.message_id).await;
    let after = barrier(&fake, chat, chat).await;
    let calls = fake.calls();
    let step = &calls[since..after];
    let sent = step
        .iter()
        .filter(|c| c.method == "sendmessage")
        .filter(|c| c.body["text"].as_str().is_some_and(|t| t.contains(question)))
        .count();
    assert_eq!(
        sent,
        1,
        "the question once: {:?}",
        step.iter().map(|c| &c.method).collect::<Vec<_>>()
    );
    let edits = step.iter().filter(|c| c.method == "editmessagetext").count();
    assert!(edits >= 2, "the mark retried: {edits} edits");
}

/// teloxide waits 10 s after any 5xx before it reports it, so this test takes that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_retried() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    fake.fail_next("sendMessage", 1, Failure::ServerError);
    let q1 = say(&fake, 9, 9, "/start").await;
    assert!(q1.text.contains("「事前確認メール（★）」は届いていますか？"));
    assert_eq!(fake.calls().iter().filter(|c| c.method == "sendmessage").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_checks_its_secret_and_answers_after_handling() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "replicas-share_this-secret";
    let bot = Bot::start(
        &fake,
        &dir.path().join("db.sqlite"),
        &[
            "--telegram-webhook-url",
            "https://bot.example.org/telegram/webhook",
            "--telegram-webhook-secret",
            secret,
        ],
    );
    // (teloxide sends setWebhook as multipart, whose fields the fake does not keep.)
    fake.wait_for(0, WAIT, |c| c.method == "setwebhook").await.expect("setWebhook");
    assert!(fake.calls().iter().all(|c| c.method != "getupdates"), "no polling in webhook mode");

    let update = |id: i64, text: &str| {
        serde_json::json!({"update_id": id, "message": {"message_id": id, "date": 1,
            "chat": {"id": 77, "type": "private", "first_name": "U"},
            "from": {"id": 77, "is_bot": false, "first_name": "U"}, "text": text}})
        .to_string()
    };
    assert_eq!(post(&bot.address, None, &update(1, "/start")).await, 401);
    assert_eq!(post(&bot.address, Some("wrong"), &update(1, "/start")).await, 401);
    assert!(fake.calls().iter().all(|c| c.method != "sendmessage"), "refused requests did nothing");
    // 200 once the step and its reply are committed; the reply goes out from the store.
    assert_eq!(post(&bot.address, Some(secret), &update(1, "/start")).await, 200);
    fake.wait_for(0, WAIT, |c| c.method == "sendmessage").await.expect("the reply");
    // A redelivery of the same update is acknowledged and sends nothing: the next update's
    // reply, in the same chat's lane behind anything the duplicate could have queued, is the
    // second message of the chat.
    assert_eq!(post(&bot.address, Some(secret), &update(1, "/start")).await, 200);
    assert_eq!(post(&bot.address, Some(secret), &update(2, "/help")).await, 200);
    let help = gmis().texts().help.lines().next().unwrap_or_default().to_owned();
    fake.wait_for(0, WAIT, |c| {
        c.method == "sendmessage" && c.body["text"].as_str().is_some_and(|t| t.contains(&help))
    })
    .await
    .expect("the help");
    let sends = fake.calls().iter().filter(|c| c.method == "sendmessage").count();
    assert_eq!(sends, 2, "one reply per distinct update");
    assert_eq!(
        post(&bot.address, Some(secret), "{not json").await,
        200,
        "unreadable: nothing to retry"
    );
    assert_eq!(request(&bot.address, "GET /healthz HTTP/1.1", "", "").await, 200);
}

#[test]
fn run_without_a_messenger_says_what_to_set() {
    let out =
        flowbot_tests::flowbot().arg("run").env_remove("TELEGRAM_BOT_TOKEN").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TELEGRAM_BOT_TOKEN") && err.contains("flowbot chat"), "{err}");
}

/// A webhook POST to the bot's listener; returns the status code.
async fn post(address: &str, secret: Option<&str>, body: &str) -> u16 {
    let secret =
        secret.map(|s| format!("X-Telegram-Bot-Api-Secret-Token: {s}\r\n")).unwrap_or_default();
    request(
        address,
        "POST /telegram/webhook HTTP/1.1",
        &format!("Content-Type: application/json\r\n{secret}"),
        body,
    )
    .await
}

/// A minimal HTTP/1.1 request on loopback; returns the status code.
async fn request(address: &str, line: &str, headers: &str, body: &str) -> u16 {
    http_request(address, line, headers, body.as_bytes()).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_mid_conversation_it_continues() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let chat = 5;
    let mut bot = Bot::start(&fake, &db, &[]);
    let q1 = say(&fake, chat, chat, "/start").await;
    let q2 = press(&fake, chat, chat, &q1, "届いている").await;
    bot.child.kill().unwrap();
    bot.child.wait().unwrap();
    drop(bot);
    // While it is down the user presses; the update waits at Telegram.
    let at = mark(&fake, chat);
    fake.press(chat, chat, q2.message_id, &data_of(&q2, "届いている"));
    let mut bot = Bot::start(&fake, &db, &[]);
    // Killed right after q2 went out, the old process may not have recorded it as delivered:
    // it is sent again once its lease runs out (at least once), then comes q6.
    let q6 = message_with(&fake, chat, at, "届いたメールを見ることはできますか？").await;
    let q7 = press(&fake, chat, chat, &q6, "メールを見ることができた").await;
    assert!(q7.text.contains("メールに記載のURLにアクセスできましたか？"));
    // SIGTERM: a clean exit, with the handled updates confirmed to Telegram.
    let status = bot.terminate();
    assert!(status.success(), "{status}: {}", bot.log());
    let handled = fake.calls().iter().filter(|c| c.method == "getupdates").count();
    assert!(handled > 0);
    assert_eq!(fake.pending_updates(), 0, "everything handled was confirmed");
}

/// Long polling keeps what it fetches in the store's inbox and confirms it to Telegram at once:
/// an update kept and confirmed but never handled (the process died in between) is handled at
/// the next start, once, and then forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_update_is_handled_after_a_restart_once_and_forgotten() {
    use flowbot_core::{InboundStore, Timestamp};
    use teloxide::payloads::GetUpdatesSetters;
    use teloxide::requests::Requester;
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let chat = 6;
    let mut bot = Bot::start(&fake, &db, &[]);
    let q1 = say(&fake, chat, chat, "/start").await;
    let status = bot.terminate();
    assert!(status.success(), "{status}: {}", bot.log());
    drop(bot);

    // A process fetches the press, keeps it and confirms it, then dies before handling it.
    let (id, _) = fake.press(chat, chat, q1.message_id, &data_of(&q1, "届いている"));
    let api = teloxide::Bot::new(TOKEN).set_api_url(fake.url().parse().unwrap());
    let fetched = api.get_updates().offset(id as i32).timeout(0).await.expect("getUpdates");
    assert_eq!(fetched.len(), 1);
    let store = SqlStore::open(&format!("sqlite://{}", db.display())).await.unwrap();
    let source = format!("telegram:{}", fake.bot_id());
    let body = serde_json::to_string(&fetched[0]).unwrap();
    store.inbound(&source, &[(id, &body)], &[], Timestamp(1)).await.unwrap();
    api.get_updates().offset(id as i32 + 1).limit(1).timeout(0).await.expect("confirm");
    assert_eq!(fake.pending_updates(), 0, "Telegram has nothing left to send");

    let at = mark(&fake, chat);
    let mut bot = Bot::start(&fake, &db, &[]);
    let q2 = message_with(&fake, chat, at, "「G-MIS利用案内メール（★）」は届いていますか？").await;
    // The next step goes on from there: the kept press was applied.
    let q6 = press(&fake, chat, chat, &q2, "届いている").await;
    assert!(q6.text.contains("届いたメールを見ることはできますか？"), "{q6:?}");
    let status = bot.terminate();
    assert!(status.success(), "{status}: {}", bot.log());
    assert_eq!(store.inbound_pending(&source).await.unwrap(), vec![], "handled, so forgotten");
    let asked = fake
        .calls()
        .iter()
        .filter(|c| c.method == "sendmessage" && chat_of(c) == chat)
        .filter(|c| c.body["text"].as_str().is_some_and(|t| t.contains("G-MIS利用案内メール（★）")))
        .count();
    assert_eq!(asked, 1, "the kept press was applied once");
}

/// Many chats answered at once: the Bot API calls in flight stay bounded (each holds a
/// connection and its buffers), and every chat still gets its question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_are_bounded_and_every_chat_is_answered() {
    const CHATS: i64 = 200;
    const FIRST: i64 = 10_000;
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    say(&fake, 1, 1, "/start").await;
    fake.set_latency(Duration::from_millis(40));
    for chat in FIRST..FIRST + CHATS {
        fake.user_message(chat, chat, "/start");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let answered: std::collections::HashSet<i64> = fake
            .calls()
            .iter()
            .filter(|c| c.method == "sendmessage")
            .map(chat_of)
            .filter(|c| *c >= FIRST)
            .collect();
        if answered.len() == CHATS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "{} of {CHATS} chats answered", answered.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(bot);
    let most = fake.most_calls_in_flight();
    assert!(most <= 64, "{most} calls in flight at once");
    assert!(most >= 32, "the replies did not overlap ({most} at most): the bound was not tested");
}

fn labels(message: &FakeMessage) -> Vec<&str> {
    message.buttons.iter().flatten().map(|(l, _)| l.as_str()).collect()
}

/// The address-change form on Telegram: answers typed and pressed, addresses asked again, an
/// item fixed, the confirmation pressed; the request goes to the help desk's chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_change_form_reaches_the_desk_chat() {
    use flowbot_core::OutboxStore;

    use crate::handoff::handoff_counts;
    const DESK: i64 = -100_777;
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(
        &config,
        format!(
            "[prefecture]\nname = \"福島県\"\n[desk]\nname = \"地域医療課\"\n\
             [handoff]\nretry_first_seconds = 0.2\nretry_max_seconds = 1.0\n\
             [[handoff.destinations]]\nkind = \"telegram\"\nchat_id = {DESK}\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("db.sqlite");
    let _bot = Bot::start(&fake, &db, &["--config", config.to_str().unwrap()]);
    let chat = 4242;

    let m3 = say(&fake, chat, chat, "/start taiou3").await;
    let change = press(&fake, chat, chat, &m3, "「送信完了」だった").await;
    assert!(
        change.text.contains(
            "上の4項目は、この場で入力して都道府県窓口への変更依頼にすることができます。"
        )
    );
    assert_eq!(
        labels(&change),
        ["変更依頼を入力する", "自分で都道府県窓口に連絡する", "戻る", "最初から"]
    );
    let ask = press(&fake, chat, chat, &change, "変更依頼を入力する").await;
    assert!(ask.text.contains("報告機関名を入力してください。"), "{ask:?}");
    let pressed = answered(&fake, chat, change.message_id).await;
    assert!(pressed.text.ends_with("→ <b>変更依頼を入力する</b>"), "{pressed:?}");

    // Typed answers; at the code, a wrong one and then the 分からない button.
    let code = say(&fake, chat, chat, "　福島　中央病院　").await;
    assert!(code.text.contains("機関コードを入力してください。"), "{code:?}");
    assert_eq!(labels(&code), ["分からない", "戻る", "最初から"]);
    let again = say(&fake, chat, chat, "ぶんからない").await;
    assert!(
        again.text.contains("機関コードは半角英数字（20文字以内）で入力してください。"),
        "{again:?}"
    );
    let old = press(&fake, chat, chat, &again, "分からない").await;
    assert!(
        old.text.contains("変更前メールアドレス（申請時のメールアドレス）を入力してください。")
    );

    // Addresses that are not addresses are asked again, with the reason.
    for typo in ["old@example", "old@@example.jp", "古いアドレス"] {
        let again = say(&fake, chat, chat, typo).await;
        assert!(again.text.contains("メールアドレスの形式になっていません"), "{typo}: {again:?}");
        assert!(
            again
                .text
                .contains("変更前メールアドレス（申請時のメールアドレス）を入力してください。"),
            "{typo}: {again:?}"
        );
    }
    let new = say(&fake, chat, chat, "ｏｌｄ．ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｊｐ").await;
    assert!(
        new.text.contains("変更後メールアドレス（これから使うメールアドレス）を入力してください。")
    );
    let confirm = say(&fake, chat, chat, "wrong@example.jp").await;
    assert!(confirm.text.starts_with("以下の内容でよろしいですか？"), "{confirm:?}");
    for line in [
        "報告機関名：福島 中央病院",
        "機関コード：分からない",
        "変更前メールアドレス：<a href=\"mailto:old.user@example.jp\">old.user@example.jp</a>",
        "変更後メールアドレス：<a href=\"mailto:wrong@example.jp\">",
    ] {
        assert!(confirm.text.contains(line), "no {line} in {confirm:?}");
    }
    assert_eq!(labels(&confirm), ["確定する", "修正する", "戻る", "最初から"]);

    // 修正する, the item, the new value: back at the confirmation.
    let which = press(&fake, chat, chat, &confirm, "修正する").await;
    assert!(which.text.contains("修正する項目を選んでください。"), "{which:?}");
    assert_eq!(
        labels(&which)[..4],
        ["報告機関名", "機関コード", "変更前メールアドレス", "変更後メールアドレス"]
    );
    let fix = press(&fake, chat, chat, &which, "変更後メールアドレス").await;
    assert!(
        fix.text.contains("変更後メールアドレス（これから使うメールアドレス）を入力してください。")
    );
    let confirm = say(&fake, chat, chat, "new-user@hospital.example.jp").await;
    assert!(confirm.text.starts_with("以下の内容でよろしいですか？"), "{confirm:?}");
    assert!(confirm.text.contains("mailto:new-user@hospital.example.jp"), "{confirm:?}");
    assert!(!confirm.text.contains("wrong@example.jp"), "{confirm:?}");

    // 確定する: the confirmation shows the press, the user gets the request and the ending.
    let since = fake.call_count();
    let done = press(&fake, chat, chat, &confirm, "確定する").await;
    let confirmed = answered(&fake, chat, confirm.message_id).await;
    assert!(confirmed.text.ends_with("→ <b>確定する</b>"), "{confirmed:?}");
    assert!(confirmed.text.contains("報告機関名：福島 中央病院"), "{confirmed:?}");
    assert!(
        done.text.starts_with("都道府県窓口に、次の内容でメールアドレスの変更依頼を送りました。"),
        "{done:?}"
    );
    let reference = crate::handoff::reference_in(&done.text);
    assert!(done.text.contains("約２週間程度"), "{done:?}");
    assert_eq!(labels(&done), ["戻る", "最初から"]);

    // The desk's chat gets the request as plain text.
    let (_, call) = fake
        .wait_for(since, WAIT, |c| c.method == "sendmessage" && chat_of(c) == DESK)
        .await
        .expect("the request sent to the desk's chat");
    let text = call.body["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("【メールアドレスの変更依頼】\n受付番号：{reference}\n")),
        "{text}"
    );
    for line in [
        "報告機関名：福島 中央病院",
        "機関コード：分からない",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
        "該当した対応方法：対応方法3（メールが「送信完了」となっている場合）",
        "回答の経過：",
        "・対応方法3（担当者が退職等で不在のため、メールが確認できない場合）：「送信完了」だった",
        "・対応方法3（メールが「送信完了」となっている場合）：変更依頼を入力する",
    ] {
        assert!(text.contains(line), "no {line} in {text}");
    }
    assert!(call.body["parse_mode"].is_null(), "plain text: {:?}", call.body);
    assert!(call.body["reply_markup"].is_null(), "no buttons: {:?}", call.body);
    let store = flowbot_store::SqlStore::open(&format!("sqlite://{}", db.display())).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let want = (1, 0, 1);
    while handoff_counts(store.delivery_counts().await.unwrap()) != want {
        assert!(Instant::now() < deadline, "{:?}", store.delivery_counts().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 確定する pressed again: stale, nothing sent, nothing stored.
    let since = fake.call_count();
    fake.press(chat, chat, confirm.message_id, &data_of(&confirm, "確定する"));
    assert_eq!(
        toast(&fake, since).await,
        "このボタンは以前の質問のものです。いまの質問にお答えください。"
    );
    let until = barrier(&fake, chat, chat).await;
    assert!(fake.calls()[since..until].iter().all(|c| c.method != "sendmessage"));
    assert_eq!(handoff_counts(store.delivery_counts().await.unwrap()), want);
    assert_eq!(fake.bot_messages(DESK).len(), 1);
}

/// Long polling is pipelined: while one chat's updates are still being committed one after the
/// other, an update of another chat fetched later is committed before them (the next
/// `getUpdates` waits only for the fetched updates to be kept, not for any chat), and every
/// update of the busy chat is applied once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_chat_does_not_hold_up_the_next_fetch() {
    use sqlx::{Connection, Row};
    const BUSY: i64 = 7_101;
    const OTHER: i64 = 7_102;
    const RESTARTS: usize = 40;
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let bot = Bot::start(&fake, &db, &[]);
    say(&fake, BUSY, BUSY, "/start").await;
    let mut taps = fake.tap();
    let last = (0..RESTARTS).map(|_| fake.user_message(BUSY, BUSY, "/start").0).max().unwrap();
    // Once a fetch has returned the busy chat's last update, the other chat writes.
    let deadline = Instant::now() + WAIT;
    loop {
        let t = tokio::time::timeout_at(deadline.into(), taps.recv()).await;
        let Ok(Some(t)) = t else { panic!("the busy chat's updates were never fetched") };
        let fetched = t
            .result
            .as_ref()
            .and_then(|r| r.as_array())
            .map_or(0, |a| a.iter().filter_map(|u| u["update_id"].as_i64()).max().unwrap_or(0));
        if t.method == "getupdates" && fetched >= last {
            break;
        }
    }
    say(&fake, OTHER, OTHER, "/start").await;

    // Read the log once every restart of the busy chat is in it.
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let (busy, chats) = loop {
        let chats: Vec<String> = sqlx::query(
            "SELECT c.chat FROM transitions t JOIN conversations c ON c.session = t.session \
             ORDER BY t.id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
        let busy: Vec<usize> = (0..chats.len()).filter(|&i| chats[i] == BUSY.to_string()).collect();
        // The start and each restart, once each.
        if busy.len() > RESTARTS || Instant::now() > deadline {
            break (busy, chats);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(bot);
    assert_eq!(busy.len(), RESTARTS + 1, "{chats:?}");
    let other = chats.iter().position(|c| *c == OTHER.to_string()).expect("the other chat's step");
    assert!(
        other < *busy.last().unwrap(),
        "the other chat waited for the busy chat's whole batch: {chats:?}"
    );
}
