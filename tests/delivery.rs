//! Stored replies, end to end on Telegram: every conversation completes while the Bot API
//! answers a share of reply calls with 429 and 500, and SIGKILLs under load lose no reply and
//! apply no update twice.

use std::time::{Duration, Instant};

use flowbot_tests::BotProcess;
use flowbot_tests::fake_telegram::{Failure, FakeMessage, FakeTelegram};

use crate::telegram::{Bot, TOKEN, data_of, say};

/// The reply methods that fail at random.
const REPLY_METHODS: [&str; 3] = ["sendMessage", "editMessageText", "answerCallbackQuery"];
/// How long one step may take under faults and restarts.
const STEP: Duration = Duration::from_secs(45);

/// One user walking the flow by pressing each question's first answer until an ending;
/// returns the ending's message. Each press is on the newest message with buttons, and the
/// next is any newer one: a message sent again after a crash (at least once) is pressed like
/// the original, and a press on an old copy is refused and followed by the current question.
async fn walk(fake: &FakeTelegram, chat: i64) -> FakeMessage {
    let mut message = say(fake, chat, chat, "/start").await;
    let mut presses = 0;
    while let Some(label) = first_choice(&message) {
        assert!(presses < 40, "chat {chat}: no ending after {presses} presses");
        fake.press(chat, chat, message.message_id, &data_of(&message, &label));
        message = newer_than(fake, chat, message.message_id).await;
        presses += 1;
    }
    message
}

/// The newest bot message with buttons in `chat` newer than `id`, once there is one.
async fn newer_than(fake: &FakeTelegram, chat: i64, id: i64) -> FakeMessage {
    let deadline = Instant::now() + STEP;
    loop {
        let newest = fake
            .bot_messages(chat)
            .into_iter()
            .filter(|m| m.message_id > id && !m.buttons.is_empty())
            .max_by_key(|m| m.message_id);
        if let Some(message) = newest {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "chat {chat}: nothing after message {id} within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The first button that is an answer (not 戻る or 最初から), if the message is a question.
fn first_choice(message: &FakeMessage) -> Option<String> {
    message
        .buttons
        .iter()
        .flatten()
        .map(|(label, _)| label.clone())
        .find(|label| label != "戻る" && label != "最初から")
}

/// The ending reached by always pressing the first answer: its text's first line, and how
/// many questions lead there.
fn first_answers_ending() -> (String, usize) {
    let flow = flowbot_tests::gmis();
    let (mut conv, _) = flowbot_core::Conversation::start(&flow, None, flowbot_core::Timestamp(0));
    let mut steps = 0;
    while let flowbot_core::NodeKind::Question(q) = flow.node(conv.node()).kind() {
        let label = q.choices()[0].label().to_owned();
        conv.step(&flow, flowbot_core::Input::Text(&label), flowbot_core::Timestamp(0));
        steps += 1;
    }
    let text = flow.node(conv.node()).text().lines().next().unwrap_or_default().to_owned();
    (text, steps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conversation_completes_through_429s_and_500s() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.chaos(&REPLY_METHODS, 0.20, 0.10, 20261204);
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let users: Vec<i64> = (1..=40).map(|u| 9_000 + u).collect();
    let started = Instant::now();
    let walks = users.iter().map(|&chat| {
        let fake = &fake;
        async move { (chat, walk(fake, chat).await) }
    });
    let results = futures_util::future::join_all(walks).await;
    let (ending, questions) = first_answers_ending();
    for (chat, last) in &results {
        assert!(last.text.contains(&ending), "chat {chat} ended at {last:?}");
        // Nothing was sent twice: one message per question, and the ending.
        let sent = fake.bot_messages(*chat).len();
        assert_eq!(sent, questions + 1, "chat {chat}: {:?}", fake.bot_messages(*chat));
    }
    let failed = fake
        .calls()
        .iter()
        .filter(|c| REPLY_METHODS.iter().any(|m| m.eq_ignore_ascii_case(&c.method)))
        .count();
    assert!(failed > 0);
    eprintln!(
        "{} conversations through random 429s and 500s in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_under_load_lose_no_reply() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    // Short leases: a killed process's replies are taken over within 2 s.
    let settings = dir.path().join("flowbot.toml");
    std::fs::write(&settings, "[handoff]\nlease_seconds = 2\n").unwrap();
    let settings = settings.display().to_string();
    let env_bot = |fake: &FakeTelegram| {
        BotProcess::start(
            &db,
            &[],
            &[
                ("TELEGRAM_BOT_TOKEN", TOKEN),
                ("TELEGRAM_API_URL", &fake.url()),
                ("FLOWBOT_CONFIG", &settings),
            ],
            crate::telegram::SECRET_PART,
        )
    };
    let mut bot = env_bot(&fake);
    let users: Vec<i64> = (1..=30).map(|u| 8_000 + u).collect();
    let walks = users.iter().map(|&chat| {
        let fake = &fake;
        async move { (chat, walk(fake, chat).await) }
    });
    let killer = async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            bot.child.kill().unwrap();
            bot.child.wait().unwrap();
            bot = env_bot(&fake);
        }
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(walks), killer);
    let (ending, questions) = first_answers_ending();
    for (chat, last) in &results {
        assert!(last.text.contains(&ending), "chat {chat} ended at {last:?}");
    }
    drop(bot);
    // No update applied twice, whatever was fetched again after a kill: the log has the start
    // and one step per question of every chat, once.
    use sqlx::{Connection, Row};
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    for chat in &users {
        let logged: i64 = sqlx::query(
            "SELECT COUNT(*) FROM transitions t JOIN conversations c ON c.session = t.session \
             WHERE c.chat = $1",
        )
        .bind(chat.to_string())
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
        assert_eq!(logged, questions as i64 + 1, "chat {chat}");
    }
}

/// A question Telegram refused for good is given up (and logged); a press on the button before
/// it, the only one the user has, then shows that question again under the stale notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_button_shows_the_question_that_never_arrived() {
    let fake = FakeTelegram::start(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let chat = 7_100;
    let q1 = say(&fake, chat, chat, "/start").await;
    let label = first_choice(&q1).expect("a question");
    let flow = flowbot_tests::gmis();
    let (mut conv, _) = flowbot_core::Conversation::start(&flow, None, flowbot_core::Timestamp(0));
    conv.step(&flow, flowbot_core::Input::Text(&label), flowbot_core::Timestamp(0));
    let next = flow.node(conv.node()).text().lines().next().unwrap().to_owned();

    fake.fail_next("sendMessage", 1, Failure::Refused);
    fake.press(chat, chat, q1.message_id, &data_of(&q1, &label));
    let deadline = Instant::now() + STEP;
    while !bot.log().contains("delivery: given up") {
        assert!(Instant::now() < deadline, "not given up:\n{}", bot.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fake.bot_messages(chat).iter().all(|m| !m.text.contains(&next)), "it never arrived");

    fake.press(chat, chat, q1.message_id, &data_of(&q1, &label));
    let again = newer_than(&fake, chat, q1.message_id).await;
    assert!(again.text.contains(&next), "the current question again: {again:?}");
    assert!(again.text.contains(&flow.texts().stale), "under the stale notice: {again:?}");
    // Its buttons work.
    let answer = first_choice(&again).expect("a question");
    fake.press(chat, chat, again.message_id, &data_of(&again, &answer));
    let after = newer_than(&fake, chat, again.message_id).await;
    assert!(!after.text.contains(&flow.texts().stale), "{after:?}");
}
