//! LINE end to end: the real `flowbot run` against the fake Messaging API on 127.0.0.1, with
//! signed webhook events posted to its listener.

use std::time::{Duration, Instant};

use flowbot_tests::{BotProcess, gmis, labels_of_path};
use serde_json::json;

use crate::fake_line::{Delivered, Endpoint, Failure, FakeLine, Via, post_raw, sign};

const TOKEN: &str = "line-token-never-print-this";
const SECRET: &str = "line-secret-never-print-this";
/// What both have in common: the log must never hold it.
const NEVER: &str = "never-print-this";
const WAIT: Duration = Duration::from_secs(20);
const FIRST: &str = "「事前確認メール（★）」は届いていますか？";

fn start(fake: &FakeLine, db: &std::path::Path, args: &[&str]) -> BotProcess {
    let url = fake.url();
    BotProcess::start(
        db,
        args,
        &[
            ("LINE_CHANNEL_ACCESS_TOKEN", TOKEN),
            ("LINE_CHANNEL_SECRET", SECRET),
            ("LINE_API_URL", &url),
            ("RUST_LOG", "info,flowbot_line=debug,flowbot_adapter=debug"),
        ],
        NEVER,
    )
}

fn user(n: u32) -> String {
    format!("U{n:032x}")
}

/// Waits for the next question (a bubble) in `chat` after `since` messages.
async fn bubble_after(fake: &FakeLine, chat: &str, since: usize) -> Delivered {
    fake.wait_message(chat, since, WAIT, |d| !d.buttons.is_empty())
        .await
        .unwrap_or_else(|| panic!("no question in {chat}: {:?}", fake.messages(chat)))
}

/// Every text the bot sent `chat` after `since` messages, up to and including the next bubble.
async fn step_text(fake: &FakeLine, chat: &str, since: usize) -> (String, Delivered) {
    let bubble = bubble_after(fake, chat, since).await;
    let texts: Vec<String> = fake.messages(chat)[since..].iter().map(|d| d.text.clone()).collect();
    (texts.join("\n"), bubble)
}

async fn say(fake: &FakeLine, bot: &BotProcess, chat: &str, from: &str, text: &str) -> Delivered {
    let since = fake.messages(chat).len();
    assert_eq!(fake.post(&bot.address, &[fake.text_event(chat, from, text)]).await, 200);
    bubble_after(fake, chat, since).await
}

fn data_of(message: &Delivered, label: &str) -> String {
    message
        .buttons
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no button {label} on {message:?}"))
        .1
        .clone()
}

fn labels(message: &Delivered) -> Vec<&str> {
    message.buttons.iter().map(|(l, _)| l.as_str()).collect()
}

async fn tap(
    fake: &FakeLine,
    bot: &BotProcess,
    chat: &str,
    from: &str,
    m: &Delivered,
    label: &str,
) -> Delivered {
    let since = fake.messages(chat).len();
    let event = fake.postback_event(chat, from, &data_of(m, label));
    assert_eq!(fake.post(&bot.address, &[event]).await, 200);
    bubble_after(fake, chat, since).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_of_the_flow_by_taps_all_replied() {
    let fake = FakeLine::start(TOKEN, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"), &[]);
    let paths = gmis().paths();
    assert_eq!(paths.len(), 25);
    for (i, path) in paths.iter().enumerate() {
        let (labels_on_path, ending) = labels_of_path(path);
        let chat = user(1000 + i as u32);
        // Adding the account: the greeting and the first question, as a reply.
        let since = fake.messages(&chat).len();
        assert_eq!(
            fake.post(
                &bot.address,
                &[fake.event(
                    &chat,
                    &chat,
                    "follow",
                    true,
                    json!({"follow": {"isUnblocked": false}})
                )]
            )
            .await,
            200
        );
        let (_, mut message) = step_text(&fake, &chat, since).await;
        assert_eq!(message.text, FIRST, "{message:?}");
        assert_eq!(message.alt.as_deref(), Some(FIRST));
        for label in &labels_on_path {
            // The tap's transcript line is the full label.
            let (_, data) = message.buttons.iter().find(|(l, _)| l == label).unwrap().clone();
            assert!(!data.contains('|'), "no owner in a one-to-one chat: {data}");
            let since = fake.messages(&chat).len();
            message = tap(&fake, &bot, &chat, &chat, &message, label).await;
            if label == labels_on_path.last().unwrap() {
                let (text, _) = step_text(&fake, &chat, since).await;
                assert!(text.contains(&ending), "path {i} should end at {ending}: {text}");
            }
        }
        assert_eq!(labels(&message), ["戻る", "最初から"]);
        let all = fake.messages(&chat);
        assert!(all.iter().all(|d| d.via == Via::Reply), "every answer a free reply");
    }
    assert!(fake.calls().iter().all(|c| c.path != "/v2/bot/message/push"));
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_answers_stale_double_and_forged_taps_start_phrases_and_unfollow() {
    let fake = FakeLine::start(TOKEN, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"), &[]);
    let flow = gmis();
    let stale = flow.texts().stale.clone();
    let u = user(1);

    // Typed: a first text starts the flow; a label typed answers.
    let q1 = say(&fake, &bot, &u, &u, "こんにちは").await;
    assert!(q1.text.contains(FIRST) || fake.messages(&u).iter().any(|d| d.text.contains(FIRST)));
    let q_next = say(&fake, &bot, &u, &u, "届いていない").await;
    assert_ne!(q_next.text, q1.text, "moved on: {q_next:?}");

    // A tap on the old question: the notice and the current question again.
    let since = fake.messages(&u).len();
    let event = fake.postback_event(&u, &u, &data_of(&q1, "届いている"));
    assert_eq!(fake.post(&bot.address, &[event]).await, 200);
    let (text, again) = step_text(&fake, &u, since).await;
    assert!(text.starts_with(&stale), "{text}");
    assert_eq!(again.text, q_next.text);
    assert_eq!(labels(&again), labels(&q_next));

    // A double tap: the first moves on, the second gets the notice and the new question.
    let label = labels(&q_next)[0].to_owned();
    let data = data_of(&q_next, &label);
    let since = fake.messages(&u).len();
    let first = fake.postback_event(&u, &u, &data);
    let second = fake.postback_event(&u, &u, &data);
    assert_eq!(fake.post(&bot.address, &[first, second]).await, 200);
    let moved = bubble_after(&fake, &u, since).await;
    let at = fake.messages(&u).iter().position(|d| d.message == moved.message).unwrap() + 1;
    let (text, shown) = step_text(&fake, &u, at).await;
    assert!(text.starts_with(&stale), "{text}");
    assert_eq!(shown.text, moved.text);

    // A forged tap: nothing changes.
    let since = fake.messages(&u).len();
    let event = fake.postback_event(&u, &u, "999:q1:0");
    assert_eq!(fake.post(&bot.address, &[event]).await, 200);
    let (text, shown) = step_text(&fake, &u, since).await;
    assert!(text.starts_with(&stale), "{text}");
    assert_eq!(shown.text, moved.text);

    // A start phrase from a link: the named entry; an unknown name is just text.
    let m3 = say(&fake, &bot, &u, &u, "G-MIS案内 #taiou3").await;
    assert!(labels(&m3).contains(&"「送信完了」だった"), "{m3:?}");
    let since = fake.messages(&u).len();
    assert_eq!(fake.post(&bot.address, &[fake.text_event(&u, &u, "G-MIS案内 #nosuch")]).await, 200);
    let (text, shown) = step_text(&fake, &u, since).await;
    assert!(text.contains(&flow.texts().no_match), "{text}");
    assert_eq!(shown.text, m3.text);

    // Unfollow: nothing is sent; the next message's answer comes first.
    let since = fake.messages(&u).len();
    let unfollow = fake.event(&u, &u, "unfollow", false, json!({}));
    assert_eq!(fake.post(&bot.address, &[unfollow]).await, 200);
    let help = flow.texts().help.lines().next().unwrap().to_owned();
    assert_eq!(fake.post(&bot.address, &[fake.text_event(&u, &u, "/help")]).await, 200);
    let found = fake.wait_message(&u, since, WAIT, |d| d.text.contains(&help)).await;
    assert!(found.is_some(), "{:?}", fake.messages(&u));
    assert!(fake.messages(&u)[since].text.contains(&help), "nothing before the help");
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_checks_signatures_dedupes_and_ignores_what_it_does_not_know() {
    let fake = FakeLine::start(TOKEN, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"), &[]);
    let u = user(2);

    // Unsigned and forged: 401, and their reply tokens are never used.
    let forged_event = fake.text_event(&u, &u, "/start");
    let forged_token = forged_event["replyToken"].as_str().unwrap().to_owned();
    let (body, signature) = fake.signed(&[forged_event]);
    assert_eq!(post_raw(&bot.address, None, &body).await, 401);
    assert_eq!(
        post_raw(&bot.address, Some(&sign("wrong secret", body.as_bytes())), &body).await,
        401
    );
    let tampered = body.replace("/start", "/help");
    assert_eq!(post_raw(&bot.address, Some(&signature), &tampered).await, 401);
    // The console's Verify: no events.
    assert_eq!(fake.post(&bot.address, &[]).await, 200);
    // Signed, but not JSON.
    assert_eq!(post_raw(&bot.address, Some(&sign(SECRET, b"nope")), "nope").await, 400);

    // An event, then the same event redelivered: one answer.
    let event = fake.text_event(&u, &u, "/start");
    let since = fake.messages(&u).len();
    assert_eq!(fake.post(&bot.address, std::slice::from_ref(&event)).await, 200);
    bubble_after(&fake, &u, since).await;
    let mut again = event.clone();
    again["deliveryContext"]["isRedelivery"] = json!(true);
    again["replyToken"] = fake.text_event(&u, &u, "x")["replyToken"].clone();
    // An unknown event type and an unknown field beside a known event.
    let unknown = fake.event(&u, &u, "messageEdited", true, json!({"edited": {"text": "?"}}));
    let mut help = fake.text_event(&u, &u, "/help");
    help["someFieldLineAddsLater"] = json!({"nested": [1, 2]});
    help["message"]["emojis"] = json!([]);
    let after = fake.messages(&u).len();
    assert_eq!(fake.post(&bot.address, &[again, unknown, help]).await, 200);
    let help_text = gmis().texts().help.lines().next().unwrap().to_owned();
    fake.wait_message(&u, after, WAIT, |d| d.text.contains(&help_text)).await.expect("the help");
    assert!(
        fake.messages(&u)[after].text.contains(&help_text),
        "{:?}",
        &fake.messages(&u)[after..]
    );
    let firsts = fake.messages(&u).iter().filter(|d| d.text == FIRST).count();
    assert!(firsts <= 2, "the redelivered /start sent nothing");
    let replies_with_forged = fake
        .calls()
        .iter()
        .filter(|c| c.body["replyToken"].as_str() == Some(forged_token.as_str()))
        .count();
    assert_eq!(replies_with_forged, 0);
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_group_only_when_mentioned_and_only_the_owner_taps() {
    let fake = FakeLine::start(TOKEN, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"), &[]);
    let group = format!("C{:032x}", 77);
    let (a, b) = (user(10), user(11));
    let not_yours = gmis().texts().not_yours.clone();

    // Not addressed: ignored. Mentioned: A's own conversation.
    assert_eq!(fake.post(&bot.address, &[fake.text_event(&group, &a, "届いていない")]).await, 200);
    let since = fake.messages(&group).len();
    let mut mention = fake.text_event(&group, &a, "@G-MIS案内 はじめます");
    mention["message"]["mention"] = json!({"mentionees": [{"index": 0, "length": 8, "type": "user", "userId": crate::fake_line::BOT_USER_ID, "isSelf": true}]});
    assert_eq!(fake.post(&bot.address, &[mention]).await, 200);
    let (text, q1) = step_text(&fake, &group, since).await;
    assert!(fake.messages(&group)[since].text.contains(FIRST) || q1.text == FIRST, "{text}");
    assert_eq!(since, 0, "the unaddressed message got no answer");
    assert!(q1.buttons.iter().all(|(_, d)| d.ends_with(&format!("|{a}"))), "{q1:?}");

    // B taps A's question: the not_yours notice, nothing else.
    let since = fake.messages(&group).len();
    let event = fake.postback_event(&group, &b, &data_of(&q1, "届いていない"));
    assert_eq!(fake.post(&bot.address, &[event]).await, 200);
    let notice = fake.wait_message(&group, since, WAIT, |_| true).await.expect("a notice");
    assert_eq!(notice.text, not_yours);
    assert!(notice.buttons.is_empty());

    // A taps: moves on. A command needs no mention.
    let next = tap(&fake, &bot, &group, &a, &q1, "届いていない").await;
    assert_ne!(next.text, q1.text);
    let help = gmis().texts().help.lines().next().unwrap().to_owned();
    let since = fake.messages(&group).len();
    assert_eq!(fake.post(&bot.address, &[fake.text_event(&group, &a, "/help")]).await, 200);
    fake.wait_message(&group, since, WAIT, |d| d.text.contains(&help)).await.expect("help");
    drop(bot);
}

/// Waits until the bot's metrics show `line`.
async fn metric(address: &str, line: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) =
            flowbot_tests::http_request(address, "GET /metrics HTTP/1.1", "", b"").await;
        if String::from_utf8_lossy(&body).lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no {line} in {}", String::from_utf8_lossy(&body));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_tokens_fall_back_to_push_which_is_delivered_once_and_429s_are_told_apart() {
    let fake = FakeLine::start(TOKEN, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"), &[]);
    const PUSH: &str = "/v2/bot/message/push";

    // An expired reply token: pushed instead, with a retry key.
    fake.reply_lifetime(Duration::ZERO);
    let u = user(20);
    let q1 = say(&fake, &bot, &u, &u, "/start").await;
    assert_eq!(q1.via, Via::Push);
    assert!(fake.calls().iter().any(|c| c.path == "/v2/bot/message/reply" && c.status == 400));
    let pushed = fake.calls().into_iter().find(|c| c.path == PUSH).unwrap();
    assert!(pushed.retry_key.is_some());

    // A push whose answer is lost (accepted, then 500): retried with the same key, 409, once.
    fake.fail_next(Endpoint::Push, Failure::AcceptedThen500);
    let calls = fake.calls().len();
    let since = fake.messages(&u).len();
    let q = tap(&fake, &bot, &u, &u, &q1, "届いていない").await;
    assert!(fake.wait_call(PUSH, 409, calls, WAIT).await);
    let pushes: Vec<_> = fake.calls()[calls..].iter().filter(|c| c.path == PUSH).cloned().collect();
    assert_eq!(pushes.iter().map(|c| c.status).collect::<Vec<_>>(), [500, 409]);
    assert_eq!(pushes[0].retry_key, pushes[1].retry_key);
    let bubbles = fake.messages(&u)[since..].iter().filter(|d| !d.buttons.is_empty()).count();
    assert_eq!(bubbles, 1, "delivered once");

    // A rate limit: retried after a pause, delivered.
    fake.fail_next(
        Endpoint::Push,
        Failure::Status(429, "The API rate limit has been exceeded. Try again later."),
    );
    let calls = fake.calls().len();
    let q = tap(&fake, &bot, &u, &u, &q, labels(&q)[0]).await;
    let statuses: Vec<u16> =
        fake.calls()[calls..].iter().filter(|c| c.path == PUSH).map(|c| c.status).collect();
    assert_eq!(statuses, [429, 200]);

    // The monthly quota: not retried, logged once, counted.
    for _ in 0..2 {
        fake.fail_next(
            Endpoint::Push,
            Failure::Status(429, "You have reached your monthly limit."),
        );
        let calls = fake.calls().len();
        assert_eq!(fake.post(&bot.address, &[fake.text_event(&u, &u, "/help")]).await, 200);
        assert!(fake.wait_call(PUSH, 429, calls, WAIT).await);
    }
    metric(&bot.address, "flowbot_quota_exhausted_total{platform=\"line\"} 2").await;
    // Then a reply that works again: it comes after the refused ones, which were not retried.
    fake.reply_lifetime(Duration::from_secs(60));
    let calls = fake.calls().len();
    let since = fake.messages(&u).len();
    assert_eq!(
        fake.post(&bot.address, &[fake.postback_event(&u, &u, &data_of(&q, labels(&q)[0]))]).await,
        200
    );
    bubble_after(&fake, &u, since).await;
    let quota_pushes = fake.calls()[calls..].iter().filter(|c| c.path == PUSH).count();
    assert_eq!(quota_pushes, 0, "the quota's refusals were not retried");
    assert_eq!(bot.log().matches("monthly message quota is used up").count(), 1, "{}", bot.log());
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_by_typed_answers_and_buttons_reaches_the_line_desk_group() {
    let fake = FakeLine::start(TOKEN, SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let desk = format!("C{:032x}", 0xde5c);
    let config = dir.path().join("flowbot.toml");
    std::fs::write(
        &config,
        format!(
            "[prefecture]\nname = \"福島県\"\n[desk]\nname = \"地域医療課\"\n\
             [handoff]\nretry_first_seconds = 0.2\nretry_max_seconds = 1.0\n\
             [[handoff.destinations]]\nkind = \"line\"\nto = \"{desk}\"\n"
        ),
    )
    .unwrap();
    let db = dir.path().join("db.sqlite");
    let bot = start(&fake, &db, &["--config", config.to_str().unwrap()]);
    let u = user(30);

    let m3 = say(&fake, &bot, &u, &u, "G-MIS案内 #taiou3").await;
    let change = tap(&fake, &bot, &u, &u, &m3, "「送信完了」だった").await;
    let ask = tap(&fake, &bot, &u, &u, &change, "変更依頼を入力する").await;
    assert!(ask.text.contains("報告機関名を入力してください。"), "{ask:?}");
    let code = say(&fake, &bot, &u, &u, "　福島　中央病院　").await;
    assert_eq!(labels(&code), ["分からない", "戻る", "最初から"]);
    let again = say(&fake, &bot, &u, &u, "ぶんからない").await;
    let all: String = fake.messages(&u).iter().rev().take(3).map(|d| d.text.clone()).collect();
    assert!(all.contains("機関コードは半角英数字（20文字以内）で入力してください。"), "{all}");
    let old = tap(&fake, &bot, &u, &u, &again, "分からない").await;
    assert!(old.text.contains("変更前メールアドレス"), "{old:?}");
    let since = fake.messages(&u).len();
    assert_eq!(fake.post(&bot.address, &[fake.text_event(&u, &u, "old@example")]).await, 200);
    let (text, _) = step_text(&fake, &u, since).await;
    assert!(text.contains("メールアドレスの形式になっていません"), "{text}");
    say(&fake, &bot, &u, &u, "old.user@example.jp").await;
    let since = fake.messages(&u).len();
    let confirm = say(&fake, &bot, &u, &u, "wrong@example.jp").await;
    assert_eq!(labels(&confirm), ["確定する", "修正する", "戻る", "最初から"]);
    let (text, _) = step_text(&fake, &u, since).await;
    assert!(text.contains("以下の内容でよろしいですか？"), "{text}");
    let which = tap(&fake, &bot, &u, &u, &confirm, "修正する").await;
    tap(&fake, &bot, &u, &u, &which, "変更後メールアドレス").await;
    let confirm = say(&fake, &bot, &u, &u, "new-user@hospital.example.jp").await;
    let since = fake.messages(&u).len();
    tap(&fake, &bot, &u, &u, &confirm, "確定する").await;
    let (done, _) = step_text(&fake, &u, since).await;
    assert!(
        done.contains("都道府県窓口に、次の内容でメールアドレスの変更依頼を送りました。"),
        "{done}"
    );
    let reference = crate::handoff::reference_in(&done);

    // The desk's group gets the request, pushed with a retry key.
    let request = fake
        .wait_message(&desk, 0, WAIT, |d| d.text.contains(&reference))
        .await
        .expect("the request pushed to the desk's group");
    assert_eq!(request.via, Via::Push);
    assert!(
        request.text.contains("変更後メールアドレス：new-user@hospital.example.jp"),
        "{}",
        request.text
    );
    assert!(!request.text.contains("wrong@example.jp"));
    let push = fake.calls().into_iter().find(|c| c.body["to"] == desk.as_str()).unwrap();
    assert!(push.retry_key.is_some());

    // The desk completes it: the user's notice is pushed to their chat (the conversation's lane).
    let mut cmd = flowbot_tests::flowbot();
    cmd.arg("--config").arg(&config).args(["requests", "complete", &reference]);
    cmd.args(["--login-id", "gmis-line-user-30", "--database-url"])
        .arg(format!("sqlite://{}", db.display()));
    let out = flowbot_tests::run(cmd, b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let since = fake.messages(&u).len();
    let notice = fake
        .wait_message(&u, since, WAIT, |d| d.text.contains("gmis-line-user-30"))
        .await
        .expect("the completion notice pushed to the user");
    assert_eq!(notice.via, Via::Push);
    drop(bot);
}

#[test]
fn links_type_the_flows_start_phrase_and_their_qr_codes_decode() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("taiou3.png");
    let link = |args: &[&str]| {
        flowbot_tests::flowbot().arg("link").args(args).env_remove("LINE_ID").output().unwrap()
    };
    let out = link(&[
        "--platform",
        "line",
        "--line-id",
        "@abc1234d",
        "--entry",
        "taiou3",
        "--qr",
        png.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = "https://line.me/R/oaMessage/%40abc1234d/?G-MIS%E6%A1%88%E5%86%85%20%23taiou3";
    let phrase = format!("{} #taiou3", gmis().texts().start_phrase);
    assert_eq!(flowbot_tests::stdout(&out), format!("{url}\n{phrase}\n"));
    // The phrase the link types starts that entry (the e2e test sends the same words).
    assert_eq!(phrase, "G-MIS案内 #taiou3");
    assert_eq!(flowbot_line::start_entry(&gmis(), &phrase), Some("taiou3"));
    let mut image = rqrr::PreparedImage::prepare(image::open(&png).unwrap().to_luma8());
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1);
    assert_eq!(grids[0].decode().unwrap().1, url);

    // Without an entry: the add-friend link; the id from LINE_ID.
    let out = flowbot_tests::flowbot()
        .args(["link", "--platform", "line"])
        .env("LINE_ID", "@abc1234d")
        .output()
        .unwrap();
    assert_eq!(flowbot_tests::stdout(&out), "https://line.me/R/ti/p/@abc1234d\n");
    let out = link(&["--platform", "line", "--entry", "taiou3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--line-id"));
    let out = link(&["--platform", "line", "--line-id", "@abc", "--entry", "nosuch"]);
    assert!(!out.status.success());
}
