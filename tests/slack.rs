//! Slack end to end: `flowbot run` in HTTP mode, driven by requests signed with the signing
//! secret, its Web API calls going to a fake Slack on 127.0.0.1; and over Socket Mode, through
//! the fake's WebSocket. What a step sends is stored and delivered by the worker, so the tests
//! wait for the calls on the fake.

use std::time::Duration;

use flowbot_core::{Conversation, Input, NodeKind, Timestamp};
use flowbot_tests::fake_slack::{APP_TOKEN, BOT_TOKEN, FakeSlack, SlackCall};
use flowbot_tests::{BotProcess, gmis, http_request};
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "slack-signing-secret-do-not-print";
const WAIT: Duration = Duration::from_secs(20);

fn start(fake: &FakeSlack, dir: &std::path::Path, args: &[&str], socket: bool) -> BotProcess {
    let url = fake.url();
    let mut env = vec![("SLACK_BOT_TOKEN", BOT_TOKEN), ("SLACK_API_URL", url.as_str())];
    if socket {
        env.push(("SLACK_APP_TOKEN", APP_TOKEN));
    } else {
        env.push(("SLACK_SIGNING_SECRET", SECRET));
    }
    BotProcess::start(&dir.join("db.sqlite"), args, &env, BOT_TOKEN)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn sign(secret: &str, ts: u64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!("v0={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn form_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A request as Slack signs it: `signature` None = unsigned; `(ts, body)` signed.
async fn post_raw(
    bot: &BotProcess,
    path: &str,
    content_type: &str,
    body: &str,
    signed: Option<(u64, String)>,
) -> (u16, Value) {
    let mut headers = format!("Content-Type: {content_type}\r\n");
    if let Some((ts, signature)) = signed {
        headers.push_str(&format!(
            "X-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {signature}\r\n"
        ));
    }
    let (status, bytes) =
        http_request(&bot.address, &format!("POST {path} HTTP/1.1"), &headers, body.as_bytes())
            .await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A signed request at `ts`; asserts 200.
async fn post_at(bot: &BotProcess, path: &str, body: &str, ts: u64) -> Value {
    let kind = if path.ends_with("events") {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let (status, value) = post_raw(bot, path, kind, body, Some((ts, sign(SECRET, ts, body)))).await;
    assert_eq!(status, 200, "{path}: {value}");
    value
}

fn command_body(user: &str, channel: &str, text: &str, trigger: &str) -> String {
    format!(
        "command=%2Fgmis&text={}&user_id={user}&channel_id={channel}&team_id=T1&trigger_id={trigger}&response_url=http%3A%2F%2F127.0.0.1%3A9%2F",
        form_escape(text)
    )
}

fn interaction_body(payload: &Value) -> String {
    format!("payload={}", form_escape(&payload.to_string()))
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
fn next_id() -> u64 {
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A question as the user sees it: the posted message.
#[derive(Debug, Clone)]
struct Shown {
    channel: String,
    ts: String,
    text: String,
    /// `(label, value, block_id)` of each button.
    buttons: Vec<(String, String, String)>,
    thread: Option<String>,
}

fn shown_of(call: &SlackCall) -> Shown {
    let buttons = call.body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| {
            let block = b["block_id"].as_str().unwrap_or_default().to_owned();
            b["elements"].as_array().cloned().unwrap_or_default().into_iter().map(move |e| {
                (
                    e["text"]["text"].as_str().unwrap().to_owned(),
                    e["value"].as_str().unwrap().to_owned(),
                    block.clone(),
                )
            })
        })
        .collect();
    Shown {
        channel: call.body["channel"].as_str().unwrap().to_owned(),
        ts: call.ts.clone().unwrap(),
        text: call.body["text"].as_str().unwrap_or_default().to_owned(),
        buttons,
        thread: call.body["thread_ts"].as_str().map(str::to_owned),
    }
}

fn names(shown: &Shown) -> Vec<&str> {
    shown.buttons.iter().map(|(l, _, _)| l.as_str()).collect()
}

/// Waits for the next message with buttons posted in `channel` after `seen` of them.
async fn next_question(fake: &FakeSlack, channel: &str, seen: usize) -> Shown {
    let call = fake
        .wait("chat.postMessage", seen, WAIT, |c| {
            c.body["channel"] == channel
                && c.body["blocks"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
        })
        .await
        .unwrap_or_else(|| panic!("no question in {channel}: {:?}", fake.calls()));
    shown_of(&call)
}

fn questions(fake: &FakeSlack, channel: &str) -> usize {
    fake.ok("chat.postMessage")
        .iter()
        .filter(|c| {
            c.body["channel"] == channel
                && c.body["blocks"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b["type"] == "actions"))
        })
        .count()
}

/// `block_actions` for a press of `label` on `shown` by `user`, with a trigger id `fake` issued.
fn press(fake: &FakeSlack, shown: &Shown, user: &str, label: &str) -> Value {
    let (_, value, block) = shown
        .buttons
        .iter()
        .find(|(l, _, _)| l == label)
        .unwrap_or_else(|| panic!("no button {label} in {:?}", shown.buttons));
    let id = next_id();
    let mut message = json!({"type": "message", "ts": shown.ts, "text": shown.text});
    if let Some(thread) = &shown.thread {
        message["thread_ts"] = json!(thread);
    }
    json!({"type": "block_actions", "team": {"id": "T1", "domain": "x"},
           "user": {"id": user, "username": "u", "team_id": "T1"}, "api_app_id": "A1",
           "container": {"type": "message", "message_ts": shown.ts, "channel_id": shown.channel, "is_ephemeral": false},
           "trigger_id": fake.trigger(), "channel": {"id": shown.channel, "name": "x"},
           "message": message,
           "actions": [{"type": "button", "action_id": "b0", "block_id": block, "value": value,
                        "text": {"type": "plain_text", "text": label}, "action_ts": format!("1700000001.{id:06}")}]})
}

/// A modal's `view_submission` by `user` with `text` in its input.
fn submission(fake: &FakeSlack, view: &Value, user: &str, text: &str) -> Value {
    json!({"type": "view_submission", "team": {"id": "T1", "domain": "x"},
           "user": {"id": user, "username": "u", "team_id": "T1"}, "api_app_id": "A1",
           "trigger_id": fake.trigger(),
           "view": {"id": "V1", "team_id": "T1", "hash": "h1", "type": "modal", "callback_id": view["callback_id"],
                    "private_metadata": view["private_metadata"], "title": view["title"], "submit": view["submit"],
                    "blocks": view["blocks"],
                    "state": {"values": {"answer": {"answer": {"type": "plain_text_input", "value": text}}}}}})
}

/// Presses `label`: checks the update of the pressed message, returns the next question.
async fn choose(
    bot: &BotProcess,
    fake: &FakeSlack,
    shown: &Shown,
    user: &str,
    label: &str,
) -> Shown {
    let seen = questions(fake, &shown.channel);
    post_at(bot, "/slack/interactions", &interaction_body(&press(fake, shown, user, label)), now())
        .await;
    let update = fake
        .wait("chat.update", 0, WAIT, |c| c.body["ts"] == shown.ts.as_str())
        .await
        .expect("the pressed message updated");
    let text = update.body["text"].as_str().unwrap();
    assert!(text.ends_with(&format!("→ *{label}*")), "{text}");
    assert!(
        update.body["blocks"].as_array().unwrap().iter().all(|b| b["type"] != "actions"),
        "no buttons left: {}",
        update.body
    );
    next_question(fake, &shown.channel, seen).await
}

async fn open_dm(
    bot: &BotProcess,
    fake: &FakeSlack,
    user: &str,
    channel: &str,
    entry: &str,
) -> Shown {
    let seen = questions(fake, channel);
    let body = command_body(user, channel, entry, &fake.trigger());
    post_at(bot, "/slack/commands", &body, now()).await;
    next_question(fake, channel, seen).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_over_the_http_endpoints() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, dir.path(), &[], false);
    // The Events API's challenge.
    let challenge = json!({"type": "url_verification", "challenge": "c-123", "token": "x"});
    let answer = post_at(&bot, "/slack/events", &challenge.to_string(), now()).await;
    assert_eq!(answer["challenge"], "c-123");
    let flow = gmis();
    for (i, path) in flow.paths().iter().enumerate() {
        let user = format!("U{i:04}");
        let channel = format!("D{i:04}");
        let mut shown = open_dm(&bot, &fake, &user, &channel, "").await;
        assert!(shown.text.contains("「事前確認メール（★）」は届いていますか？"), "{}", shown.text);
        let (mut conv, _) = Conversation::start(&flow, None, Timestamp(0));
        for &choice in path {
            let NodeKind::Question(q) = flow.node(conv.node()).kind() else { panic!() };
            let label = q.choices()[usize::from(choice)].label().to_owned();
            let expected: Vec<&str> = q.choices().iter().map(|c| c.label()).collect();
            assert!(names(&shown).starts_with(&expected), "{:?} vs {expected:?}", names(&shown));
            conv.step(&flow, Input::Text(&label), Timestamp(0));
            shown = choose(&bot, &fake, &shown, &user, &label).await;
        }
        if let Some(form) = flow.form_of(conv.node()) {
            assert_eq!(
                names(&shown),
                [form.texts().input.as_str(), "戻る", "最初から"],
                "path {i}"
            );
            continue;
        }
        let ending = flow.node(conv.node()).title();
        assert!(shown.text.contains(ending), "path {i}: {ending} not in {}", shown.text);
        assert_eq!(names(&shown), ["戻る", "最初から"]);
        assert!(
            !shown.text.contains("https://") || shown.text.contains("<https://"),
            "links as <url|text>"
        );
    }
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_and_stale_double_foreign_presses_change_nothing() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, dir.path(), &[], false);
    let shown = open_dm(&bot, &fake, "UA", "DA", "").await;
    let label = shown.buttons[0].0.clone();
    let body = interaction_body(&press(&fake, &shown, "UA", &label));
    let kind = "application/x-www-form-urlencoded";
    let path = "/slack/interactions";
    // Unsigned, six minutes old, forged (another secret), and a body other than the signed one.
    let t = now();
    for (signed, what) in [
        (None, "unsigned"),
        (Some((t - 360, sign(SECRET, t - 360, &body))), "stale"),
        (Some((t, sign("another-secret", t, &body))), "forged"),
        (Some((t, sign(SECRET, t, "payload=%7B%7D"))), "another body"),
    ] {
        let (status, _) = post_raw(&bot, path, kind, &body, signed).await;
        assert_eq!(status, 401, "{what}");
    }
    // The genuine one is served; replayed as is, it is refused.
    let signature = sign(SECRET, t, &body);
    let (status, _) = post_raw(&bot, path, kind, &body, Some((t, signature.clone()))).await;
    assert_eq!(status, 200);
    let (status, _) = post_raw(&bot, path, kind, &body, Some((t, signature))).await;
    assert_eq!(status, 401, "replayed");
    let next = next_question(&fake, "DA", 1).await;
    // Slack repeats the interaction (newly signed): applied once.
    post_at(&bot, path, &body, t - 30).await;
    // A double press on the answered message: an ephemeral notice, nothing else.
    let seen_notices = fake.ok("chat.postEphemeral").len();
    post_at(&bot, path, &interaction_body(&press(&fake, &shown, "UA", &label)), now()).await;
    let notice =
        fake.wait("chat.postEphemeral", seen_notices, WAIT, |_| true).await.expect("a notice");
    assert_eq!(notice.body["user"], "UA");
    // A foreign press (someone else in the same channel): not_yours.
    post_at(&bot, path, &interaction_body(&press(&fake, &next, "UB", &next.buttons[0].0)), now())
        .await;
    let notice =
        fake.wait("chat.postEphemeral", seen_notices + 1, WAIT, |_| true).await.expect("not yours");
    assert_eq!(notice.body["user"], "UB");
    assert!(notice.body["text"].as_str().unwrap().contains("別の方"), "{}", notice.body);
    // A typed answer in the DM, redelivered by Slack: applied once. The next question after it
    // proves both were handled.
    let event = |id: &str| {
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": id,
               "event_time": 1, "event": {"type": "message", "channel": "DA", "channel_type": "im",
               "user": "UA", "text": "1", "ts": "1700000002.000100"}})
        .to_string()
    };
    post_at(&bot, "/slack/events", &event("Ev1"), now()).await;
    post_at(&bot, "/slack/events", &event("Ev1"), now() - 20).await;
    let third = next_question(&fake, "DA", 2).await;
    assert_ne!(third.text, next.text);
    // /back typed: the question before again.
    let back = json!({"type": "event_callback", "event_id": "Ev2", "event": {"type": "message",
        "channel": "DA", "channel_type": "im", "user": "UA", "text": "/back", "ts": "1700000003.000100"}});
    post_at(&bot, "/slack/events", &back.to_string(), now()).await;
    let again = next_question(&fake, "DA", 3).await;
    assert_eq!(again.text, next.text, "back to the question before");
    // Exactly one question per applied step: no duplicate from the repeats.
    assert_eq!(questions(&fake, "DA"), 4);
    // The bot's own messages are ignored.
    let own = json!({"type": "event_callback", "event_id": "Ev3", "event": {"type": "message",
        "channel": "DA", "channel_type": "im", "bot_id": "B1", "text": "1", "ts": "1700000004.000100"}});
    post_at(&bot, "/slack/events", &own.to_string(), now()).await;
    let log = bot.log();
    assert!(!log.contains(SECRET), "the signing secret stays out of the log");
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_thread_the_form_through_a_modal_and_a_429() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(
        &config,
        "[handoff]\nretry_first_seconds = 0.2\n\n[[handoff.destinations]]\nkind = \"slack\"\nchannel_id = \"CDESK\"\n",
    )
    .unwrap();
    let bot = start(&fake, dir.path(), &["--config", config.to_str().unwrap()], false);
    // /gmis taiou3 in a channel: the first question in the channel (after a 429 waited out),
    // the conversation in its thread.
    fake.fail_next("chat.postMessage", 1, 429);
    post_at(&bot, "/slack/commands", &command_body("UC", "C1", "taiou3", &fake.trigger()), now())
        .await;
    let first = next_question(&fake, "C1", 0).await;
    assert_eq!(first.thread, None, "the first question opens the thread");
    assert_eq!(fake.ok("chat.postMessage").len(), 1, "nothing before it");
    assert!(fake.calls().iter().any(|c| c.status == 429), "the 429 was waited out");
    let thread = first.ts.clone();
    let shown = choose(&bot, &fake, &first, "UC", "「送信完了」だった").await;
    assert_eq!(shown.thread.as_deref(), Some(thread.as_str()), "in the thread");
    assert_eq!(questions(&fake, "C1"), 2, "the first question is not shown again");
    let name = choose(&bot, &fake, &shown, "UC", "変更依頼を入力する").await;
    assert_eq!(names(&name)[0], "入力する");
    // 入力する opens a modal with the trigger id.
    let payload = press(&fake, &name, "UC", "入力する");
    post_at(&bot, "/slack/interactions", &interaction_body(&payload), now()).await;
    let opened = fake.wait("views.open", 0, WAIT, |_| true).await.expect("views.open");
    assert_eq!(opened.body["trigger_id"], payload["trigger_id"]);
    let view = opened.body["view"].clone();
    assert_eq!(view["type"], "modal");
    // An empty answer is refused inside the modal.
    let refused = post_at(
        &bot,
        "/slack/interactions",
        &interaction_body(&submission(&fake, &view, "UC", "")),
        now(),
    )
    .await;
    assert_eq!(refused["response_action"], "errors", "{refused}");
    assert!(refused["errors"]["answer"].as_str().is_some_and(|e| !e.is_empty()), "{refused}");
    let answered = post_at(
        &bot,
        "/slack/interactions",
        &interaction_body(&submission(&fake, &view, "UC", "〇〇病院")),
        now(),
    )
    .await;
    assert_eq!(answered, Value::Null, "the modal closes");
    let code = next_question(&fake, "C1", 3).await;
    assert!(code.text.contains("機関コードを入力してください。"), "{}", code.text);
    // 分からない stays a button in the message.
    assert_eq!(names(&code)[..2], ["入力する", "分からない"]);
    let old = choose(&bot, &fake, &code, "UC", "分からない").await;
    assert!(old.text.contains("変更前メールアドレス"), "{}", old.text);
    // A typed answer in the thread.
    let typed = |id: &str, text: &str| {
        json!({"type": "event_callback", "event_id": id, "event": {"type": "message", "channel": "C1",
               "channel_type": "channel", "user": "UC", "text": text, "ts": format!("1700000009.{id}"),
               "thread_ts": thread}})
        .to_string()
    };
    // Someone else typing in the thread changes nothing; the owner's next answer follows.
    let foreign = json!({"type": "event_callback", "event_id": "Ev-f", "event": {"type": "message", "channel": "C1",
        "channel_type": "channel", "user": "UZ", "text": "1", "ts": "1700000010.000001",
        "thread_ts": thread}});
    post_at(&bot, "/slack/events", &foreign.to_string(), now()).await;
    post_at(&bot, "/slack/events", &typed("101", "old@example.jp"), now()).await;
    let new = next_question(&fake, "C1", 5).await;
    assert!(new.text.contains("変更後メールアドレス"), "{}", new.text);
    post_at(&bot, "/slack/events", &typed("102", "new@example.jp"), now()).await;
    let confirm = next_question(&fake, "C1", 6).await;
    assert!(confirm.text.contains("以下の内容でよろしいですか？"), "{}", confirm.text);
    assert!(names(&confirm).contains(&"確定する") && names(&confirm).contains(&"修正する"));
    // 修正する: the fields to choose from; 報告機関名 asks again, through the modal.
    let fields = choose(&bot, &fake, &confirm, "UC", "修正する").await;
    assert!(fields.text.contains("修正する項目を選んでください。"), "{}", fields.text);
    let name = choose(&bot, &fake, &fields, "UC", "報告機関名").await;
    let payload = press(&fake, &name, "UC", "入力する");
    post_at(&bot, "/slack/interactions", &interaction_body(&payload), now()).await;
    let opened = fake.wait("views.open", 1, WAIT, |_| true).await.expect("views.open again");
    let view = opened.body["view"].clone();
    let seen = questions(&fake, "C1");
    let answered = post_at(
        &bot,
        "/slack/interactions",
        &interaction_body(&submission(&fake, &view, "UC", "△△病院")),
        now(),
    )
    .await;
    assert_eq!(answered, Value::Null, "the modal closes");
    let confirm = next_question(&fake, "C1", seen).await;
    assert!(
        confirm.text.contains("△△病院") && !confirm.text.contains("〇〇病院"),
        "{}",
        confirm.text
    );
    // The desk's channel answers 500 first: the outbox tries again.
    fake.fail_next("chat.postMessage:CDESK", 2, 500);
    let seen = questions(&fake, "C1");
    post_at(
        &bot,
        "/slack/interactions",
        &interaction_body(&press(&fake, &confirm, "UC", "確定する")),
        now(),
    )
    .await;
    let end = next_question(&fake, "C1", seen).await;
    assert_eq!(names(&end), ["戻る", "最初から"]);
    let posted = fake
        .wait("chat.postMessage", 0, Duration::from_secs(60), |c| c.body["channel"] == "CDESK")
        .await
        .expect("the request posted in the desk's channel");
    assert!(
        fake.calls().iter().any(|c| c.status == 500 && c.body["channel"] == "CDESK"),
        "the desk's channel answered 500 first"
    );
    let text = posted.body["text"].as_str().unwrap();
    assert!(
        text.contains("報告機関名：△△病院") && text.contains("機関コード：分からない"),
        "{text}"
    );
    fake.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_conversation_over_socket_mode() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, dir.path(), &[], true);
    assert!(fake.socket_ready(WAIT).await, "connected: {}", bot.log());
    let command = json!({"command": "/gmis", "text": "", "user_id": "US", "channel_id": "DS",
                         "team_id": "T1", "trigger_id": fake.trigger(), "response_url": "http://127.0.0.1:9/",
                         "channel_name": "directmessage", "team_domain": "x", "user_name": "u", "api_app_id": "A1"});
    let id = fake.envelope("slash_commands", command.clone());
    assert!(fake.ack(&id, WAIT).await.is_some(), "acknowledged");
    let mut shown = next_question(&fake, "DS", 0).await;
    let flow = gmis();
    let path = &flow.paths()[0];
    let (mut conv, _) = Conversation::start(&flow, None, Timestamp(0));
    for (n, &choice) in path.iter().enumerate() {
        let NodeKind::Question(q) = flow.node(conv.node()).kind() else { panic!() };
        let label = q.choices()[usize::from(choice)].label().to_owned();
        conv.step(&flow, Input::Text(&label), Timestamp(0));
        let id = fake.envelope("interactive", press(&fake, &shown, "US", &label));
        assert!(fake.ack(&id, WAIT).await.is_some(), "acknowledged");
        shown = next_question(&fake, "DS", n + 1).await;
    }
    let ending = flow.node(conv.node()).title();
    assert!(shown.text.contains(ending), "{ending} not in {}", shown.text);
    // A typed message over Socket Mode: 最初から as text restarts.
    let event = json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvS",
        "event_time": 1, "event": {"type": "message", "channel": "DS", "channel_type": "im", "user": "US",
        "text": "最初から", "ts": "1700000005.000100"}});
    let id = fake.envelope("events_api", event);
    assert!(fake.ack(&id, WAIT).await.is_some());
    let again = next_question(&fake, "DS", path.len() + 1).await;
    assert!(again.text.contains("「事前確認メール（★）」は届いていますか？"), "{}", again.text);
    // The form over Socket Mode: a refused answer comes back in the submission's ack.
    let mut command = command;
    command["text"] = json!("taiou3");
    command["trigger_id"] = json!(fake.trigger());
    let id = fake.envelope("slash_commands", command);
    assert!(fake.ack(&id, WAIT).await.is_some(), "acknowledged");
    let mut shown = next_question(&fake, "DS", path.len() + 2).await;
    for label in ["「送信完了」だった", "変更依頼を入力する"] {
        let seen = questions(&fake, "DS");
        let id = fake.envelope("interactive", press(&fake, &shown, "US", label));
        assert!(fake.ack(&id, WAIT).await.is_some(), "acknowledged");
        shown = next_question(&fake, "DS", seen).await;
    }
    let id = fake.envelope("interactive", press(&fake, &shown, "US", "入力する"));
    assert!(fake.ack(&id, WAIT).await.is_some(), "acknowledged");
    let opened = fake.wait("views.open", 0, WAIT, |_| true).await.expect("views.open");
    let view = opened.body["view"].clone();
    let id = fake.envelope("interactive", submission(&fake, &view, "US", ""));
    let ack = fake.ack(&id, WAIT).await.expect("acknowledged");
    assert_eq!(ack["payload"]["response_action"], "errors", "{ack}");
    assert!(ack["payload"]["errors"]["answer"].as_str().is_some_and(|e| !e.is_empty()), "{ack}");
    let seen = questions(&fake, "DS");
    let id = fake.envelope("interactive", submission(&fake, &view, "US", "〇〇病院"));
    let ack = fake.ack(&id, WAIT).await.expect("acknowledged");
    assert!(ack["payload"]["response_action"].is_null(), "the modal closes: {ack}");
    let code = next_question(&fake, "DS", seen).await;
    assert!(code.text.contains("機関コードを入力してください。"), "{}", code.text);
    fake.assert_clean();
}

/// A request signed at `ts` with extra header lines (`Name: value\r\n` each); asserts 200.
async fn post_with(bot: &BotProcess, path: &str, body: &str, ts: u64, extra: &str) -> Value {
    let headers = format!(
        "Content-Type: application/json\r\nX-Slack-Request-Timestamp: {ts}\r\nX-Slack-Signature: {}\r\n{extra}",
        sign(SECRET, ts, body)
    );
    let (status, bytes) =
        http_request(&bot.address, &format!("POST {path} HTTP/1.1"), &headers, body.as_bytes())
            .await;
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The messages with buttons posted in `channel` outside any thread.
fn openings(fake: &FakeSlack, channel: &str) -> usize {
    fake.ok("chat.postMessage")
        .iter()
        .filter(|c| c.body["channel"] == channel && c.body["thread_ts"].is_null())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_starts_a_thread_once_a_stored_reply_waits_out_a_429() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, dir.path(), &[], false);
    let flow = gmis();
    // A mention in a channel, and Slack delivering it again (as after a missed ack).
    let mention =
        json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvM1",
        "event_time": 1, "event": {"type": "app_mention", "channel": "CM", "user": "UM",
        "text": "<@UBOT> taiou3", "ts": "1700000020.000100"}})
        .to_string();
    post_with(&bot, "/slack/events", &mention, now(), "").await;
    post_with(
        &bot,
        "/slack/events",
        &mention,
        now() - 2,
        "X-Slack-Retry-Num: 1\r\nX-Slack-Retry-Reason: http_timeout\r\n",
    )
    .await;
    // A slash command in another channel, repeated with its trigger id.
    let command = command_body("UR", "CR", "", &fake.trigger());
    post_at(&bot, "/slack/commands", &command, now()).await;
    post_at(&bot, "/slack/commands", &command, now() - 2).await;
    let first = next_question(&fake, "CM", 0).await;
    assert_eq!(first.thread, None, "the first question opens the thread");
    assert!(first.text.contains("「送信完了」"), "taiou3's question: {}", first.text);
    let started = next_question(&fake, "CR", 0).await;
    assert!(started.text.contains("「事前確認メール（★）」は届いていますか？"), "{}", started.text);
    let label = started.buttons[0].0.clone();
    choose(&bot, &fake, &started, "UR", &label).await;
    // Each start showed its first question once: the positive signals above came after both
    // deliveries were answered.
    assert_eq!((openings(&fake, "CM"), questions(&fake, "CM")), (1, 1));
    assert_eq!((openings(&fake, "CR"), questions(&fake, "CR")), (1, 2));
    // The reply to a press is stored; its first attempt gets a 429, the worker waits it out.
    fake.fail_next("chat.postMessage", 1, 429);
    let pressed = std::time::Instant::now();
    let next = choose(&bot, &fake, &first, "UM", "「送信完了」だった").await;
    assert!(pressed.elapsed() >= Duration::from_millis(900), "Retry-After: 1 waited out");
    assert_eq!(next.thread.as_deref(), Some(first.ts.as_str()), "in the first question's thread");
    let limited: Vec<SlackCall> = fake.calls().into_iter().filter(|c| c.status == 429).collect();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].body["thread_ts"], first.ts.as_str(), "the stored reply was limited");
    assert_eq!((openings(&fake, "CM"), questions(&fake, "CM")), (1, 2));
    // A command this bot does not have: the flow's unknown_command, only to the user.
    let other = command_body("UR", "CR", "", &fake.trigger()).replace("%2Fgmis", "%2Fother");
    let answer = post_at(&bot, "/slack/commands", &other, now()).await;
    assert_eq!(answer["response_type"], "ephemeral");
    assert_eq!(answer["text"], flow.texts().unknown_command.as_str());
    fake.assert_clean();
}

/// Calls the fake's Web API `method` with the bot token and a JSON `body`: its answer.
async fn call_fake(fake: &FakeSlack, method: &str, token: &str, body: &Value) -> Value {
    let url = fake.url();
    let address = url.trim_start_matches("http://").trim_end_matches("/api");
    let headers = format!("Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n");
    let (status, bytes) = http_request(
        address,
        &format!("POST /api/{method} HTTP/1.1"),
        &headers,
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "Slack answers its refusals with 200");
    serde_json::from_slice(&bytes).unwrap()
}

async fn post_to(fake: &FakeSlack, body: Value) -> Value {
    call_fake(fake, "chat.postMessage", BOT_TOKEN, &body).await
}

async fn open_view(fake: &FakeSlack, trigger: String, view: Value) -> Value {
    call_fake(fake, "views.open", BOT_TOKEN, &json!({"trigger_id": trigger, "view": view})).await
}

/// The fake refuses what Slack refuses, so the tests above can fail: trigger ids unknown,
/// used twice or too old; Block Kit over its limits; threads and messages it never posted;
/// and it records acks repeated, late or for no envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_refuses_what_slack_refuses() {
    let fake = FakeSlack::start().await;
    let error = |answer: &Value| answer["error"].as_str().unwrap_or("ok").to_owned();
    let section = |text: &str| json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
    let button = |text: &str, id: &str| {
        json!({"type": "button", "action_id": id, "value": "v",
               "text": {"type": "plain_text", "text": text}})
    };
    let actions = |elements: Vec<Value>| json!({"type": "actions", "elements": elements});
    // A good message, then what Slack refuses in one.
    let good = post_to(
        &fake,
        json!({"channel": "C1", "text": "t", "blocks": [section("t"),
        actions(vec![button("はい", "b0"), button("いいえ", "b1")])]}),
    )
    .await;
    assert_eq!(good["ok"], true, "{good}");
    let ts = good["ts"].as_str().unwrap().to_owned();
    let cases = [
        (json!({"text": "t"}), "channel_not_found"),
        (json!({"channel": "C1"}), "no_text"),
        (json!({"channel": "C1", "text": "x".repeat(40_001)}), "msg_too_long"),
        (json!({"channel": "C1", "text": "t", "blocks": vec![section("t"); 51]}), "invalid_blocks"),
        (
            json!({"channel": "C1", "text": "t", "blocks": [section(&"あ".repeat(3001))]}),
            "invalid_blocks",
        ),
        (json!({"channel": "C1", "text": "t", "blocks": [section("")]}), "invalid_blocks"),
        (
            json!({"channel": "C1", "text": "t", "blocks": [actions(vec![button("b", "b0"); 1].into_iter()
                .chain((1..26).map(|i| button("b", &format!("b{i}")))).collect())]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C1", "text": "t", "blocks": [actions(vec![button(&"b".repeat(76), "b0")])]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C1", "text": "t", "blocks": [actions(vec![button("a", "b0"), button("b", "b0")])]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C1", "text": "t", "blocks": [actions(vec![button("a", &"i".repeat(256))])]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C1", "text": "t", "blocks": [{"type": "actions", "elements": [{"type": "button",
                "action_id": "b0", "value": "v".repeat(2001), "text": {"type": "plain_text", "text": "a"}}]}]}),
            "invalid_blocks",
        ),
        (
            json!({"channel": "C1", "text": "t", "blocks": [{"type": "divider", "block_id": "x"}, {"type": "divider", "block_id": "x"}]}),
            "invalid_blocks",
        ),
        (json!({"channel": "C1", "text": "t", "thread_ts": "1.000001"}), "thread_not_found"),
        (json!({"channel": "C2", "text": "t", "thread_ts": ts}), "thread_not_found"),
    ];
    for (body, expected) in cases {
        let answer = post_to(&fake, body.clone()).await;
        assert_eq!(error(&answer), expected, "{body}");
    }
    let reply = post_to(&fake, json!({"channel": "C1", "text": "t", "thread_ts": ts})).await;
    assert_eq!(reply["ok"], true, "a reply in a thread the fake posted");
    let update = |channel: &str, ts: &str| json!({"channel": channel, "ts": ts, "text": "t", "blocks": [section("t")]});
    let answer = call_fake(&fake, "chat.update", BOT_TOKEN, &update("C1", &ts)).await;
    assert_eq!(answer["ok"], true, "{answer}");
    for (channel, ts) in [("C1", "1.000001"), ("C2", ts.as_str())] {
        let answer = call_fake(&fake, "chat.update", BOT_TOKEN, &update(channel, ts)).await;
        assert_eq!(error(&answer), "message_not_found");
    }
    // views.open: a trigger id the fake issued, once, within 3 s; a modal within the limits.
    let modal = |title: &str, metadata: usize, max: u64| {
        json!({"type": "modal", "callback_id": "f", "private_metadata": "m".repeat(metadata),
               "title": {"type": "plain_text", "text": title}, "submit": {"type": "plain_text", "text": "送信"},
               "blocks": [{"type": "input", "block_id": "a", "label": {"type": "plain_text", "text": "名前"},
                           "element": {"type": "plain_text_input", "action_id": "a", "max_length": max}}]})
    };
    let trigger = fake.trigger();
    assert_eq!(error(&open_view(&fake, trigger.clone(), modal("t", 3000, 3000)).await), "ok");
    assert_eq!(error(&open_view(&fake, trigger, modal("t", 10, 10)).await), "exchanged_trigger_id");
    assert_eq!(
        error(&open_view(&fake, "123.456.abc".into(), modal("t", 10, 10)).await),
        "invalid_trigger_id"
    );
    let old = fake.trigger_issued(Duration::from_millis(3100));
    assert_eq!(error(&open_view(&fake, old, modal("t", 10, 10)).await), "expired_trigger_id");
    for view in [modal(&"t".repeat(25), 10, 10), modal("t", 3001, 10), modal("t", 10, 3001)] {
        assert_eq!(error(&open_view(&fake, fake.trigger(), view).await), "invalid_arguments");
    }
    let refused = fake.refusals().len();
    assert_eq!(refused, 22, "every refusal recorded");
    assert_eq!(fake.problems().len(), refused);
    // Socket Mode: an ack twice, an ack for no envelope, an envelope never acknowledged.
    let url = call_fake(&fake, "apps.connections.open", APP_TOKEN, &json!({})).await;
    let url = url["url"].as_str().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("hello"));
    let acked = fake.envelope("events_api", json!({}));
    let ignored = fake.envelope("events_api", json!({}));
    for id in [&acked, &acked, &"env-none".to_owned()] {
        ws.send(Message::Text(json!({"envelope_id": id}).to_string())).await.unwrap();
    }
    let deadline = std::time::Instant::now() + WAIT;
    while fake.problems().len() < refused + 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let problems = fake.problems()[refused..].join("\n");
    assert!(problems.contains(&format!("envelope {acked} acknowledged twice")), "{problems}");
    assert!(problems.contains("an ack for no envelope"), "{problems}");
    assert!(problems.contains(&format!("envelope {ignored} not acknowledged")), "{problems}");
    assert!(!problems.contains(&format!("envelope {acked} not")), "{problems}");
}
