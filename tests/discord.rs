//! Discord end to end: `flowbot run` in HTTP interactions mode, driven by requests signed with a
//! test key, with follow-ups going to a fake Discord REST API on 127.0.0.1; and in the gateway
//! mode, over the fake's gateway WebSocket.
//!
//! The interaction's answer comes at once (the HTTP response, or the gateway's callback); what
//! follows it is stored with the step and sent by the delivery worker, so the tests wait for
//! follow-ups on the fake's recorded calls.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use flowbot_core::{Conversation, Input, NodeKind, Timestamp};
use flowbot_tests::fake_discord::{APPLICATION_ID, FakeDiscord, Kind, message, user};
use flowbot_tests::{BotProcess, gmis, http_request};
use serde_json::{Value, json};

const TOKEN: &str = "discord-test-token-do-not-print";
pub(crate) const CHANNEL: &str = "1300000000000000001";
const WAIT: Duration = Duration::from_secs(20);

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn start(fake: &FakeDiscord, db: &std::path::Path) -> BotProcess {
    start_with(fake, db, &[])
}

/// [`start`] with more arguments for `flowbot run` (e.g. `--config FILE`).
pub(crate) fn start_with(fake: &FakeDiscord, db: &std::path::Path, args: &[&str]) -> BotProcess {
    let public = hex(key().verifying_key().as_bytes());
    let url = fake.url();
    let mut all = vec!["--discord-guild-id", "1100000000000000001"];
    all.extend_from_slice(args);
    BotProcess::start(
        db,
        &all,
        &[
            ("DISCORD_TOKEN", TOKEN),
            ("DISCORD_APPLICATION_ID", APPLICATION_ID),
            ("DISCORD_PUBLIC_KEY", &public),
            ("DISCORD_API_URL", &url),
        ],
        TOKEN,
    )
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// POSTs an interaction signed at `timestamp` (None: unsigned); returns status and JSON body.
async fn post_signed(bot: &BotProcess, body: &Value, timestamp: Option<u64>) -> (u16, Value) {
    let body = body.to_string();
    let headers = match timestamp {
        Some(ts) => {
            let mut signed = ts.to_string().into_bytes();
            signed.extend_from_slice(body.as_bytes());
            let signature = hex(&key().sign(&signed).to_bytes());
            format!(
                "Content-Type: application/json\r\nX-Signature-Ed25519: {signature}\r\nX-Signature-Timestamp: {ts}\r\n"
            )
        }
        None => "Content-Type: application/json\r\n".to_owned(),
    };
    let (status, bytes) = http_request(
        &bot.address,
        "POST /discord/interactions HTTP/1.1",
        &headers,
        body.as_bytes(),
    )
    .await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn post(bot: &BotProcess, body: &Value) -> Value {
    let (status, value) = post_signed(bot, body, Some(now())).await;
    assert_eq!(status, 200, "{value}");
    value
}

/// [`post`] again, as Discord redelivers: the same body newly signed. Signed a minute earlier
/// (inside the window), so the signature differs from the first one's without waiting for the
/// clock to move on.
async fn redeliver(bot: &BotProcess, body: &Value) -> Value {
    let (status, value) = post_signed(bot, body, Some(now() - 60)).await;
    assert_eq!(status, 200, "{value}");
    value
}

fn base(kind: u8, id: &str, user_id: &str) -> Value {
    json!({"id": id, "application_id": APPLICATION_ID, "type": kind, "channel_id": CHANNEL,
           "user": user(user_id, "ann"), "token": format!("tok-{id}"), "version": 1, "locale": "ja",
           "entitlements": [], "attachment_size_limit": 8388608, "app_permissions": "0",
           "authorizing_integration_owners": {}, "context": 1})
}

fn command(id: &str, user_id: &str, start: Option<&str>) -> Value {
    let mut v = base(2, id, user_id);
    let options: Vec<Value> =
        start.map(|s| json!({"name": "start", "type": 3, "value": s})).into_iter().collect();
    v["data"] = json!({"id": "1400000000000000001", "name": "gmis", "type": 1, "options": options});
    v
}

/// The kind of interaction whose response (or follow-up) a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Command,
    Component,
    Modal,
}

/// The message a user sees and can press: content, components, and whose it is.
#[derive(Debug, Clone)]
struct Shown {
    id: String,
    content: String,
    components: Value,
    owner: String,
    via: Via,
}

/// `shown` as Discord sends it with an interaction on it (`interaction_metadata` names the
/// owner, as Discord does).
fn message_of(shown: &Shown) -> Value {
    let owner = user(&shown.owner, "owner");
    let component = json!({"type": 3, "id": "1600000000000000001", "user": owner, "authorizing_integration_owners": {}, "interacted_message_id": "1500000000000000000"});
    let metadata = match shown.via {
        Via::Command => {
            json!({"type": 2, "id": "1600000000000000001", "user": owner, "authorizing_integration_owners": {}})
        }
        Via::Component => component,
        Via::Modal => {
            json!({"type": 5, "id": "1600000000000000002", "user": owner, "authorizing_integration_owners": {}, "triggering_interaction_metadata": component})
        }
    };
    message(&shown.id, CHANNEL, &json!(shown.content), &shown.components, Some(metadata))
}

fn press(id: &str, user_id: &str, shown: &Shown, custom_id: &str) -> Value {
    let mut v = base(3, id, user_id);
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    v["message"] = message_of(shown);
    v
}

/// A modal submitted: `text` typed into the box of the modal `custom_id`, opened from a button
/// on `shown`.
fn modal_submit(id: &str, user_id: &str, shown: &Shown, custom_id: &str, text: &str) -> Value {
    let mut v = base(5, id, user_id);
    v["data"] = json!({"custom_id": custom_id, "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": "answer", "value": text}]}
    ]});
    v["message"] = message_of(shown);
    v
}

fn button(shown: &Shown, label: &str) -> String {
    shown
        .components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .find(|b| b["label"] == label)
        .and_then(|b| b["custom_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no button {label} in {}", shown.components))
}

fn labels(components: &Value) -> Vec<(String, bool)> {
    components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|b| {
            (
                b["label"].as_str().unwrap_or_default().to_owned(),
                b["disabled"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Removes Discord's Markdown escapes.
fn plain(content: &str) -> String {
    content.replace('\\', "")
}

static NEXT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(1_700_000_000_000_000_000);
fn next_id() -> String {
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string()
}

/// Opens a conversation with the slash command; returns the message shown.
async fn open(bot: &BotProcess, user_id: &str, start: Option<&str>) -> Shown {
    let response = post(bot, &command(&next_id(), user_id, start)).await;
    assert_eq!(response["type"], 4, "{response}");
    Shown {
        id: next_id(),
        content: response["data"]["content"].as_str().unwrap().to_owned(),
        components: response["data"]["components"].clone(),
        owner: user_id.to_owned(),
        via: Via::Command,
    }
}

/// Presses `label` on `shown`: checks the update of the pressed message, returns the follow-up.
async fn choose(bot: &BotProcess, fake: &FakeDiscord, shown: &Shown, label: &str) -> Shown {
    let id = next_id();
    let response = post(bot, &press(&id, &shown.owner, shown, &button(shown, label))).await;
    assert_eq!(response["type"], 7, "an update of the pressed message: {response}");
    let updated = response["data"]["content"].as_str().unwrap();
    assert!(plain(updated).ends_with(&format!("→ **{label}**")), "{updated}");
    assert!(
        labels(&response["data"]["components"]).iter().all(|(_, disabled)| *disabled),
        "buttons disabled"
    );
    let followup =
        fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next question as a follow-up");
    Shown {
        id: next_id(),
        content: followup["content"].as_str().unwrap().to_owned(),
        components: followup["components"].clone(),
        owner: shown.owner.clone(),
        via: Via::Component,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_over_the_interactions_endpoint() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"));
    // PING → PONG.
    let pong = post(&bot, &json!({"id": next_id(), "application_id": APPLICATION_ID, "type": 1, "token": "t", "version": 1})).await;
    assert_eq!(pong["type"], 1);
    let flow = gmis();
    for (i, path) in flow.paths().iter().enumerate() {
        let user_id = format!("{}", 1_800_000_000_000_000_000u64 + i as u64);
        let mut shown = open(&bot, &user_id, None).await;
        assert!(
            plain(&shown.content).contains("「事前確認メール（★）」は届いていますか？"),
            "{}",
            shown.content
        );
        let (mut conv, _) = Conversation::start(&flow, None, Timestamp(0));
        for &choice in path {
            let NodeKind::Question(q) = flow.node(conv.node()).kind() else { panic!() };
            let label = q.choices()[usize::from(choice)].label().to_owned();
            conv.step(&flow, Input::Text(&label), Timestamp(0));
            shown = choose(&bot, &fake, &shown, &label).await;
        }
        if let Some(form) = flow.form_of(conv.node()) {
            // A path through a form waits at its first field; filling it in is
            // `the_address_change_form_over_modals`.
            let first = &form.fields()[0];
            assert!(plain(&shown.content).contains(first.ask()), "path {i}: {}", shown.content);
            let shown_labels = labels(&shown.components);
            let names: Vec<&str> = shown_labels.iter().map(|(l, _)| l.as_str()).collect();
            assert_eq!(names, [form.texts().input.as_str(), "戻る", "最初から"], "path {i}");
            continue;
        }
        let ending = flow.node(conv.node()).title();
        assert!(
            plain(&shown.content).contains(ending),
            "path {i}: {ending} not in {}",
            shown.content
        );
        assert_eq!(
            labels(&shown.components).iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
            ["戻る", "最初から"]
        );
        assert!(
            shown.content.contains("<https://") || !shown.content.contains("https://"),
            "links without previews"
        );
    }
    // The command was registered in the guild.
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.method == "PUT" && c.path.ends_with("/guilds/1100000000000000001/commands"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_stale_forged_and_foreign_presses() {
    let fake = FakeDiscord::start().await;
    // Registration fails at first: interactions are served anyway, and it is retried.
    fake.fail_next(Kind::Commands, 1, 500);
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"));
    let body = command(&next_id(), "1900000000000000001", Some("taiou3"));
    assert_eq!(post_signed(&bot, &body, None).await.0, 401, "unsigned");
    assert_eq!(post_signed(&bot, &body, Some(now() - 3600)).await.0, 401, "an old timestamp");
    let mut tampered = body.clone();
    tampered["user"]["id"] = json!("1900000000000000009");
    let ts = now();
    let (status, first) = post_signed(&bot, &body, Some(ts)).await;
    assert_eq!(status, 200);
    assert!(
        plain(first["data"]["content"].as_str().unwrap())
            .starts_with("対応方法3（担当者が退職等で不在のため"),
        "a deep entry: {first}"
    );
    assert_eq!(post_signed(&bot, &body, Some(ts)).await.0, 401, "a replayed signature");
    // A signature of one body on another.
    let headers = {
        let mut signed = ts.to_string().into_bytes();
        signed.extend_from_slice(body.to_string().as_bytes());
        format!(
            "X-Signature-Ed25519: {}\r\nX-Signature-Timestamp: {ts}\r\n",
            hex(&key().sign(&signed).to_bytes())
        )
    };
    let (status, _) = http_request(
        &bot.address,
        "POST /discord/interactions HTTP/1.1",
        &headers,
        tampered.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 401, "a forged body");

    let shown = Shown {
        id: next_id(),
        content: first["data"]["content"].as_str().unwrap().to_owned(),
        components: first["data"]["components"].clone(),
        owner: "1900000000000000001".into(),
        via: Via::Command,
    };
    // Someone else presses it: an ephemeral notice.
    let other = post(
        &bot,
        &press(&next_id(), "1900000000000000002", &shown, &button(&shown, "「不達」だった")),
    )
    .await;
    assert_eq!(other["type"], 4);
    assert_eq!(other["data"]["flags"], 64, "ephemeral");
    assert!(plain(other["data"]["content"].as_str().unwrap()).contains("別の方の案内"), "{other}");
    // A forged custom id: ephemeral, nothing changes.
    let forged = post(&bot, &press(&next_id(), &shown.owner, &shown, "99:m3_absent:0")).await;
    assert_eq!(forged["data"]["flags"], 64);
    assert!(plain(forged["data"]["content"].as_str().unwrap()).contains("以前の質問"), "{forged}");
    // The real press works; pressing the same message again is stale.
    let next = choose(&bot, &fake, &shown, "まだ確認していない").await;
    assert!(plain(&next.content).contains("確認が済みましたら"), "{}", next.content);
    let again =
        post(&bot, &press(&next_id(), &shown.owner, &shown, &button(&shown, "「不達」だった")))
            .await;
    assert_eq!(again["data"]["flags"], 64, "{again}");
    // A redelivered interaction id (newly signed) is acknowledged without a change.
    let id = next_id();
    let body = press(&id, &next.owner, &next, &button(&next, "「送信完了」だった"));
    assert_eq!(post(&bot, &body).await["type"], 7);
    fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next question as a follow-up");
    assert_eq!(redeliver(&bot, &body).await["type"], 6, "a duplicate is only acknowledged");
    assert_eq!(fake.followups(&format!("tok-{id}")).len(), 1, "and sends nothing");
    // Registration was retried after the injected failure.
    let deadline = std::time::Instant::now() + WAIT;
    while fake.calls().iter().filter(|c| c.path.ends_with("/commands")).count() < 2 {
        assert!(std::time::Instant::now() < deadline, "registration not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followups_survive_rate_limits_and_server_errors() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"));
    let shown = open(&bot, "2000000000000000001", None).await;
    // A follow-up that beats its interaction's response to Discord gets a 404: retried too.
    fake.fail_next(Kind::Followup, 1, 404);
    fake.fail_next(Kind::Followup, 1, 429);
    fake.fail_next(Kind::Followup, 1, 500);
    let next = choose(&bot, &fake, &shown, "届いている").await;
    assert!(plain(&next.content).contains("「G-MIS利用案内メール（★）」は届いていますか？"));
    let attempts = fake.calls().iter().filter(|c| c.path.starts_with("/api/v10/webhooks/")).count();
    assert_eq!(attempts, 4, "three failures, then the follow-up");
}

/// A deployment note long enough to make 対応方法5 (a question) three messages: fifteen
/// numbered paragraphs.
fn long_note() -> String {
    (1..=15).map(|i| format!("注記{i:02}：{}", "あ".repeat(300))).collect::<Vec<_>>().join("\n\n")
}

/// Over the HTTP endpoint, Discord answers follow-ups with 429s and 500s for a while: the
/// conversation goes on, and a step's follow-ups (the three chunks of a long text) each
/// arrive once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followups_arrive_once_and_in_order_through_429s_and_500s() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(&config, format!("[params]\ncause3_note = \"\"\"\n{}\"\"\"\n", long_note()))
        .unwrap();
    let bot =
        start_with(&fake, &dir.path().join("db.sqlite"), &["--config", config.to_str().unwrap()]);
    let owner = "2700000000000000001";
    let shown = open(&bot, owner, Some("q5")).await;
    assert!(plain(&shown.content).contains("G-MISを既に利用している部署がありますか"));
    fake.fail_next(Kind::Followup, 1, 429);
    fake.fail_next(Kind::Followup, 1, 500);
    fake.fail_next(Kind::Followup, 1, 429);
    fake.fail_next(Kind::Followup, 2, 500);
    let (text, end) = choose_all(&bot, &fake, &shown, "ない").await;
    let text = plain(&text);
    let at: Vec<usize> = (1..=15)
        .map(|i| {
            let note = format!("注記{i:02}：");
            assert_eq!(text.matches(&note).count(), 1, "{note} once: {text}");
            text.find(&note).unwrap()
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "in order: {at:?}");
    assert!(text.find("③の場合").unwrap() > at[14], "the text after the note");
    assert!(names(&end).contains(&"戻る".to_owned()), "the buttons on the last chunk");
    let followups: Vec<_> =
        fake.calls().into_iter().filter(|c| c.path.starts_with("/api/v10/webhooks/")).collect();
    let statuses: Vec<u16> = followups.iter().map(|c| c.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s != 200).count(), 5, "{statuses:?}");
    let sent: Vec<&Value> = followups.iter().filter(|c| c.status == 200).map(|c| &c.body).collect();
    assert_eq!(sent.len(), 3, "three chunks, each sent once: {statuses:?}");
    // The conversation goes on.
    let back = choose(&bot, &fake, &end, "戻る").await;
    assert!(plain(&back.content).contains("G-MISを既に利用している部署がありますか"));
}

/// The bot is killed right after it answered a press (HTTP 200 with the pressed message's
/// update), before Discord took the follow-up: the next process sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followup_stored_before_a_sigkill_is_sent_after_the_restart() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    // Short leases: a killed process's replies are taken over within seconds.
    let settings = dir.path().join("flowbot.toml");
    std::fs::write(&settings, "[handoff]\nlease_seconds = 2\n").unwrap();
    let args = ["--config", settings.to_str().unwrap()];
    let mut bot = start_with(&fake, &db, &args);
    let owner = "2800000000000000001";
    let shown = open(&bot, owner, None).await;
    // Discord takes no follow-up while the first process lives.
    fake.fail_next(Kind::Followup, 100_000, 500);
    let id = next_id();
    let response = post(&bot, &press(&id, owner, &shown, &button(&shown, "届いている"))).await;
    assert_eq!(response["type"], 7, "{response}");
    bot.child.kill().unwrap();
    bot.child.wait().unwrap();
    let token = format!("tok-{id}");
    assert!(fake.followups(&token).is_empty(), "not sent by the killed process");
    fake.clear_failures();
    bot = start_with(&fake, &db, &args);
    let followup = fake
        .followup(&token, Duration::from_secs(40))
        .await
        .expect("the next question, sent by the new process");
    let next = shown_of(&followup, owner, Via::Component);
    assert!(plain(&next.content).contains("「G-MIS利用案内メール（★）」は届いていますか？"));
    assert_eq!(fake.followups(&token).len(), 1, "once");
    // The conversation goes on in the new process.
    let after = choose(&bot, &fake, &next, "届いている").await;
    assert!(
        plain(&after.content).contains("届いたメールを見ることはできますか？"),
        "{}",
        after.content
    );
}

/// `flowbot run` in the gateway mode (no public key), once it has identified on the fake's
/// gateway.
async fn start_gateway(fake: &FakeDiscord, dir: &std::path::Path) -> BotProcess {
    let url = fake.url();
    let bot = BotProcess::start(
        &dir.join("db.sqlite"),
        &[],
        &[
            ("DISCORD_TOKEN", TOKEN),
            ("DISCORD_APPLICATION_ID", APPLICATION_ID),
            ("DISCORD_API_URL", &url),
        ],
        TOKEN,
    );
    assert!(fake.gateway_ready(WAIT).await, "the bot identified on the gateway");
    bot
}

/// The gateway mode: a whole conversation over a fake gateway WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_conversation_over_the_gateway() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = start_gateway(&fake, dir.path()).await;
    let owner = "2100000000000000001";
    let id = next_id();
    fake.dispatch_interaction(command(&id, owner, None));
    let response = fake.callback(&id, WAIT).await.expect("a response to the command");
    assert_eq!(response["type"], 4, "{response}");
    let mut shown = Shown {
        id: next_id(),
        content: response["data"]["content"].as_str().unwrap().to_owned(),
        components: response["data"]["components"].clone(),
        owner: owner.into(),
        via: Via::Command,
    };
    for label in ["届いている", "届いている", "メールを見ることができた", "アクセスできた"]
    {
        let id = next_id();
        fake.dispatch_interaction(press(&id, owner, &shown, &button(&shown, label)));
        let update = fake.callback(&id, WAIT).await.expect("a response to the press");
        assert_eq!(update["type"], 7, "{update}");
        let followup = fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next question");
        shown = Shown {
            id: next_id(),
            content: followup["content"].as_str().unwrap().to_owned(),
            components: followup["components"].clone(),
            owner: owner.into(),
            via: Via::Component,
        };
    }
    assert!(
        plain(&shown.content).contains("「パスワード設定」を行ってください"),
        "{}",
        shown.content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_option_autocompletes_entry_names() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"));
    let mut body = base(4, &next_id(), "2200000000000000001");
    body["data"] = json!({"id": "1400000000000000001", "name": "gmis", "type": 1,
                          "options": [{"name": "start", "type": 3, "value": "taiou3", "focused": true}]});
    let response = post(&bot, &body).await;
    assert_eq!(response["type"], 8, "{response}");
    let values: Vec<&str> = response["data"]["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["taiou3", "taiou3-view"]);
    let name = response["data"]["choices"][0]["name"].as_str().unwrap();
    assert!(name.starts_with("taiou3 — 対応方法3"), "{name}");
}

// ---------------------------------------------------------------- the address-change form

/// The form's title: the title of every modal it opens.
const FORM_TITLE: &str = "メールアドレスの変更依頼";
/// The form's input button.
const INPUT: &str = "入力する";

fn names(shown: &Shown) -> Vec<String> {
    labels(&shown.components).into_iter().map(|(l, _)| l).collect()
}

/// A follow-up's body as the message the user sees next.
fn shown_of(body: &Value, owner: &str, via: Via) -> Shown {
    Shown {
        id: next_id(),
        content: body["content"].as_str().unwrap().to_owned(),
        components: body["components"].clone(),
        owner: owner.to_owned(),
        via,
    }
}

/// Presses 入力する on `shown`: checks the modal (its custom id is the button's, one short
/// required text box labelled `label`: an optional item's "unknown" is a button of its own),
/// and returns that custom id.
async fn open_box(bot: &BotProcess, shown: &Shown, label: &str) -> String {
    let custom_id = button(shown, INPUT);
    assert_eq!(names(shown)[0], INPUT, "the input button comes first: {}", shown.components);
    let response = post(bot, &press(&next_id(), &shown.owner, shown, &custom_id)).await;
    assert_eq!(response["type"], 9, "a modal: {response}");
    let data = &response["data"];
    assert_eq!(data["custom_id"], custom_id.as_str(), "{response}");
    assert_eq!(data["title"], FORM_TITLE, "{response}");
    let inputs: Vec<Value> = data["components"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|row| assert_eq!(row["type"], 1, "{response}"))
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(inputs.len(), 1, "one text box: {response}");
    let input = &inputs[0];
    assert_eq!(input["type"], 4, "a text input: {response}");
    assert_eq!(input["style"], 1, "a short one: {response}");
    assert_eq!(input["custom_id"], "answer", "{response}");
    assert_eq!(input["label"], label, "{response}");
    assert_eq!(input["required"], true, "{response}");
    custom_id
}

/// Submits `text` in the modal `custom_id` opened on `shown`: checks that `shown` is answered
/// (the question kept, its buttons disabled), and returns what follows.
async fn type_in(
    bot: &BotProcess,
    fake: &FakeDiscord,
    shown: &Shown,
    custom_id: &str,
    text: &str,
) -> Shown {
    let id = next_id();
    let response = post(bot, &modal_submit(&id, &shown.owner, shown, custom_id, text)).await;
    assert_eq!(response["type"], 7, "an update of the message the box was opened on: {response}");
    let updated = response["data"]["content"].as_str().unwrap();
    assert!(updated.starts_with(&shown.content), "the question stays: {updated}");
    let buttons = labels(&response["data"]["components"]);
    assert_eq!(buttons.len(), labels(&shown.components).len(), "{response}");
    assert!(buttons.iter().all(|(_, disabled)| *disabled), "buttons disabled: {response}");
    let followup =
        fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next prompt as a follow-up");
    shown_of(&followup, &shown.owner, Via::Modal)
}

/// Presses `label` on `shown` and returns every follow-up's content joined, and the last one
/// (the one with the buttons).
async fn choose_all(
    bot: &BotProcess,
    fake: &FakeDiscord,
    shown: &Shown,
    label: &str,
) -> (String, Shown) {
    let id = next_id();
    let response = post(bot, &press(&id, &shown.owner, shown, &button(shown, label))).await;
    assert_eq!(response["type"], 7, "{response}");
    assert!(
        plain(response["data"]["content"].as_str().unwrap()).ends_with(&format!("→ **{label}**"))
    );
    let token = format!("tok-{id}");
    let deadline = std::time::Instant::now() + WAIT;
    let all = loop {
        let all = fake.followups(&token);
        let done =
            all.last().is_some_and(|f| f["components"].as_array().is_some_and(|c| !c.is_empty()));
        if done {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "no follow-up with buttons: {all:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let text = all.iter().map(|f| f["content"].as_str().unwrap()).collect::<Vec<_>>().join("\n\n");
    (text, shown_of(all.last().unwrap(), &shown.owner, Via::Component))
}

/// The reference number (受付番号) in `text`: `XXXXX-XXXXX` in Crockford base-32.
fn reference_in(text: &str) -> String {
    let at = text.find("受付番号：").unwrap_or_else(|| panic!("no 受付番号 in {text}"));
    let reference: String = text[at + "受付番号：".len()..].chars().take(11).collect();
    let ok = reference.chars().enumerate().all(|(i, c)| {
        if i == 5 {
            c == '-'
        } else {
            c.is_ascii_digit() || c.is_ascii_uppercase() && !"ILOU".contains(c)
        }
    });
    assert!(ok && reference.len() == 11, "a reference like XXXXX-XXXXX: {reference:?} in {text}");
    reference
}

/// Opens 対応方法3 with the slash command and goes to the form's first field (報告機関名).
async fn to_the_form(bot: &BotProcess, fake: &FakeDiscord, owner: &str) -> Shown {
    let shown = open(bot, owner, Some("taiou3")).await;
    let shown = choose(bot, fake, &shown, "「送信完了」だった").await;
    assert!(plain(&shown.content).contains("上の4項目は、この場で入力して"), "{}", shown.content);
    let name = choose(bot, fake, &shown, "変更依頼を入力する").await;
    assert!(plain(&name.content).contains("報告機関名を入力してください。"), "{}", name.content);
    assert_eq!(names(&name), [INPUT, "戻る", "最初から"]);
    name
}

fn assert_has(text: &str, lines: &[&str]) {
    let text = plain(text);
    for line in lines {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
}

/// The user `owner` fills in the address-change form over the signed endpoint in [`CHANNEL`]
/// and submits it; the request's reference (受付番号). For the other modules' tests.
pub(crate) async fn submit_the_form(bot: &BotProcess, fake: &FakeDiscord, owner: &str) -> String {
    let name = to_the_form(bot, fake, owner).await;
    let code = type_in(bot, fake, &name, &button(&name, INPUT), "〇〇病院").await;
    let old = choose(bot, fake, &code, "分からない").await;
    let new = type_in(bot, fake, &old, &button(&old, INPUT), "old@example.jp").await;
    let confirm = type_in(bot, fake, &new, &button(&new, INPUT), "new@example.jp").await;
    let (text, _) = choose_all(bot, fake, &confirm, "確定する").await;
    reference_in(&plain(&text))
}

const ASK_CODE: &str = "機関コードを入力してください。";
const ASK_OLD: &str = "変更前メールアドレス（申請時のメールアドレス）を入力してください。";
const ASK_NEW: &str = "変更後メールアドレス（これから使うメールアドレス）を入力してください。";
const CONFIRM: &str = "以下の内容でよろしいですか？";

/// The whole form over the signed endpoint: modals for the answers, 分からない, a refused
/// address, full-width input, 修正する, and 確定する to the request and the ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_change_form_over_modals() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"));
    let owner = "2300000000000000001";
    let name = to_the_form(&bot, &fake, owner).await;

    let box_name = open_box(&bot, &name, "報告機関名").await;
    let code = type_in(&bot, &fake, &name, &box_name, "〇〇病院").await;
    assert_has(&code.content, &[ASK_CODE]);
    assert_eq!(names(&code), [INPUT, "分からない", "戻る", "最初から"]);

    let old = choose(&bot, &fake, &code, "分からない").await;
    assert_has(&old.content, &[ASK_OLD]);
    assert_eq!(names(&old), [INPUT, "戻る", "最初から"]);
    let box_old = open_box(&bot, &old, "変更前メールアドレス").await;
    // Not an address: the reason, and the same field again (its buttons still the same).
    let again = type_in(&bot, &fake, &old, &box_old, "old@example").await;
    assert_has(&again.content, &["メールアドレスの形式になっていません", ASK_OLD]);
    assert_eq!(button(&again, INPUT), box_old, "the same field");
    assert_eq!(open_box(&bot, &again, "変更前メールアドレス").await, box_old);
    // Full-width is normalised (NFKC).
    let new = type_in(&bot, &fake, &again, &box_old, "ｏｌｄ＠ｅｘａｍｐｌｅ．ｊｐ").await;
    assert_has(&new.content, &[ASK_NEW]);
    let box_new = open_box(&bot, &new, "変更後メールアドレス").await;
    let confirm = type_in(&bot, &fake, &new, &box_new, "new@example.jp").await;
    assert_has(
        &confirm.content,
        &[
            CONFIRM,
            "報告機関名：〇〇病院",
            "機関コード：分からない",
            "変更前メールアドレス：old@example.jp",
            "変更後メールアドレス：new@example.jp",
        ],
    );
    assert_eq!(names(&confirm), ["確定する", "修正する", "戻る", "最初から"]);

    // 修正する: pick the field, a new box, the confirmation again.
    let pick = choose(&bot, &fake, &confirm, "修正する").await;
    assert_has(&pick.content, &["修正する項目を選んでください。"]);
    assert_eq!(
        names(&pick),
        [
            "報告機関名",
            "機関コード",
            "変更前メールアドレス",
            "変更後メールアドレス",
            "戻る",
            "最初から"
        ]
    );
    let fix = choose(&bot, &fake, &pick, "報告機関名").await;
    assert_has(&fix.content, &["報告機関名を入力してください。"]);
    let box_fix = open_box(&bot, &fix, "報告機関名").await;
    assert_ne!(box_fix, box_name, "a new revision, a new token");
    let confirm = type_in(&bot, &fake, &fix, &box_fix, "△△クリニック").await;
    assert_has(
        &confirm.content,
        &[
            CONFIRM,
            "報告機関名：△△クリニック",
            "機関コード：分からない",
            "変更前メールアドレス：old@example.jp",
            "変更後メールアドレス：new@example.jp",
        ],
    );
    assert!(!confirm.content.contains("〇〇病院"), "{}", confirm.content);

    // 確定する: the request to copy (no destination here), then the ending.
    let (text, end) = choose_all(&bot, &fake, &confirm, "確定する").await;
    assert_has(
        &text,
        &[
            "次の内容をコピーして、都道府県窓口にメールアドレスの変更依頼としてお送りください。",
            "【メールアドレスの変更依頼】",
            "報告機関名：△△クリニック",
            "機関コード：分からない",
            "変更前メールアドレス：old@example.jp",
            "変更後メールアドレス：new@example.jp",
            "回答の経過：",
            "「送信完了」だった",
            "都道府県からG-MIS事務局へ変更依頼後",
            "パスワードリセットを実施していただくようお願いします。",
        ],
    );
    reference_in(&plain(&text));
    assert!(!plain(&text).contains("上の4項目は、この場で入力して"), "the ending, not m3_change");
    assert_eq!(names(&end), ["戻る", "最初から"]);
    // The confirmation is answered: its buttons are stale now.
    let again =
        post(&bot, &press(&next_id(), owner, &confirm, &button(&confirm, "確定する"))).await;
    assert_eq!(again["type"], 4, "{again}");
    assert_eq!(again["data"]["flags"], 64, "{again}");
    assert!(plain(again["data"]["content"].as_str().unwrap()).contains("以前の質問"), "{again}");
}

/// A modal for a button that is no longer current, or a stranger's, changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_foreign_form_boxes_change_nothing() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bot = start(&fake, &dir.path().join("db.sqlite"));
    let owner = "2400000000000000001";
    let stranger = "2400000000000000002";
    let name = to_the_form(&bot, &fake, owner).await;
    let box_name = open_box(&bot, &name, "報告機関名").await;

    // Someone else's press of 入力する, or their modal: the not_yours notice, nothing else.
    let ephemeral = |v: &Value, what: &str| {
        assert_eq!(v["type"], 4, "{v}");
        assert_eq!(v["data"]["flags"], 64, "ephemeral: {v}");
        assert!(plain(v["data"]["content"].as_str().unwrap()).contains(what), "{v}");
    };
    let theirs = post(&bot, &press(&next_id(), stranger, &name, &box_name)).await;
    ephemeral(&theirs, "別の方の案内");
    let theirs =
        post(&bot, &modal_submit(&next_id(), stranger, &name, &box_name, "他人の病院")).await;
    ephemeral(&theirs, "別の方の案内");

    let code = type_in(&bot, &fake, &name, &box_name, "〇〇病院").await;
    assert_has(&code.content, &[ASK_CODE]);
    // A redelivered modal submission (the same interaction id, newly signed) is only
    // acknowledged.
    let id = next_id();
    let body = modal_submit(&id, owner, &code, &button(&code, INPUT), "ABC");
    let first = post(&bot, &body).await;
    assert_eq!(first["type"], 7, "{first}");
    let old = shown_of(
        &fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next field"),
        owner,
        Via::Modal,
    );
    assert_has(&old.content, &[ASK_OLD]);
    assert_eq!(redeliver(&bot, &body).await["type"], 6, "a duplicate is only acknowledged");
    assert_eq!(fake.followups(&format!("tok-{id}")).len(), 1, "and sends nothing");
    // Back to 機関コード for what follows (戻る on the new field).
    let code = choose(&bot, &fake, &old, "戻る").await;
    assert_has(&code.content, &[ASK_CODE]);
    // The first field's box again (a second modal left open, say): stale, no follow-up.
    let stale_id = next_id();
    let stale = post(&bot, &modal_submit(&stale_id, owner, &name, &box_name, "別の病院")).await;
    ephemeral(&stale, "以前の質問");
    // The old message's 入力する still opens a box (the engine judges the answer): stale too.
    assert_eq!(open_box(&bot, &name, "報告機関名").await, box_name);
    let stale2_id = next_id();
    let stale2 = post(&bot, &modal_submit(&stale2_id, owner, &name, &box_name, "別の病院")).await;
    ephemeral(&stale2, "以前の質問");
    // A forged token for the current field, and the current field's box on a later revision.
    let box_code = button(&code, INPUT);
    let forged = post(
        &bot,
        &modal_submit(&next_id(), owner, &code, &box_code.replacen(':', "9:", 1), "ABC"),
    )
    .await;
    ephemeral(&forged, "以前の質問");

    // Unchanged: the conversation is still at 機関コード with 〇〇病院 kept. A code must match
    // its pattern (分からない is a button of its own).
    assert_eq!(open_box(&bot, &code, "機関コード").await, box_code);
    let refused = type_in(&bot, &fake, &code, &box_code, "コード不明").await;
    assert_has(
        &refused.content,
        &["機関コードは半角英数字（20文字以内）で入力してください。", ASK_CODE],
    );
    let old = type_in(&bot, &fake, &refused, &box_code, "ＡＢＣ－１２３").await;
    assert_has(&old.content, &[ASK_OLD]);
    let box_old = button(&old, INPUT);
    let new = type_in(&bot, &fake, &old, &box_old, "old@example.jp").await;
    // The code's box, now a field behind: stale.
    let late = post(&bot, &modal_submit(&next_id(), owner, &code, &box_code, "XYZ")).await;
    ephemeral(&late, "以前の質問");
    let box_new = button(&new, INPUT);
    let confirm = type_in(&bot, &fake, &new, &box_new, "new@example.jp").await;
    assert_has(
        &confirm.content,
        &[
            CONFIRM,
            "報告機関名：〇〇病院",
            "機関コード：ABC-123",
            "変更前メールアドレス：old@example.jp",
        ],
    );
    assert!(!plain(&confirm.content).contains("別の病院") && !confirm.content.contains("XYZ"));
    // The stale submissions sent nothing after their ephemeral answer.
    for id in [&stale_id, &stale2_id] {
        assert!(fake.followups(&format!("tok-{id}")).is_empty(), "no follow-up for a stale box");
    }
}

/// With a Discord channel as the hand-off destination, 確定する posts the request there through
/// the outbox, retried past a rate limit and server errors, and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_form_is_posted_in_the_desk_channel() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(
        &config,
        "[handoff]\nretry_first_seconds = 0.2\n\n[[handoff.destinations]]\nkind = \"discord\"\nchannel_id = 4242\n",
    )
    .unwrap();
    let bot =
        start_with(&fake, &dir.path().join("db.sqlite"), &["--config", config.to_str().unwrap()]);
    let owner = "2500000000000000001";
    let name = to_the_form(&bot, &fake, owner).await;
    let box_name = button(&name, INPUT);
    let code = type_in(&bot, &fake, &name, &box_name, "〇〇病院").await;
    let old = choose(&bot, &fake, &code, "分からない").await;
    let new = type_in(&bot, &fake, &old, &button(&old, INPUT), "old@example.jp").await;
    let confirm = type_in(&bot, &fake, &new, &button(&new, INPUT), "new@example.jp").await;
    assert_has(&confirm.content, &[CONFIRM]);

    // The channel answers a rate limit, then server errors: more than one delivery attempt's
    // retries, so the outbox must try again.
    fake.fail_next(Kind::ChannelMessage, 1, 429);
    fake.fail_next(Kind::ChannelMessage, 6, 500);
    let (text, end) = choose_all(&bot, &fake, &confirm, "確定する").await;
    assert_has(
        &text,
        &[
            "都道府県窓口に、次の内容でメールアドレスの変更依頼を送りました。",
            "【メールアドレスの変更依頼】",
        ],
    );
    assert_eq!(names(&end), ["戻る", "最初から"]);
    let reference = reference_in(&plain(&text));

    let posted = fake
        .channel_message("4242", Duration::from_secs(60))
        .await
        .expect("the request posted in the desk's channel");
    let posted = plain(posted["content"].as_str().unwrap());
    assert!(posted.starts_with("【メールアドレスの変更依頼】"), "the request alone: {posted}");
    assert_has(
        &posted,
        &[
            &format!("受付番号：{reference}"),
            "報告機関名：〇〇病院",
            "機関コード：分からない",
            "変更前メールアドレス：old@example.jp",
            "変更後メールアドレス：new@example.jp",
        ],
    );
    // Delivered once: once the store has it as delivered, nothing is left to post again.
    let store = flowbot_store::SqlStore::open(&format!(
        "sqlite://{}",
        dir.path().join("db.sqlite").display()
    ))
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let counts = flowbot_core::OutboxStore::delivery_counts(&store).await.unwrap();
        if (counts.requests, counts.pending, counts.delivered) == (1, 0, 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not recorded as delivered: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses: Vec<u16> = fake.channel_posts("4242").iter().map(|c| c.status).collect();
    assert_eq!(statuses.len(), 8, "seven failures, then the message: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert!(
        fake.calls().iter().all(|c| !c.path.contains("/channels/") || c.path.contains("/4242/"))
    );
    let log = bot.log();
    assert!(log.contains("will retry"), "the outbox retried:\n{log}");
    for personal in ["〇〇病院", "old@example.jp", "new@example.jp"] {
        assert!(!log.contains(personal), "{personal} in the log:\n{log}");
    }
}

/// The gateway mode: the form's boxes work there too (a modal submission is an interaction
/// like any other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_box_over_the_gateway() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = start_gateway(&fake, dir.path()).await;
    let owner = "2600000000000000001";
    let id = next_id();
    fake.dispatch_interaction(command(&id, owner, Some("taiou3")));
    let response = fake.callback(&id, WAIT).await.expect("a response to the command");
    assert_eq!(response["type"], 4, "{response}");
    let mut shown = shown_of(&response["data"], owner, Via::Command);
    for label in ["「送信完了」だった", "変更依頼を入力する"] {
        let id = next_id();
        fake.dispatch_interaction(press(&id, owner, &shown, &button(&shown, label)));
        let update = fake.callback(&id, WAIT).await.expect("a response to the press");
        assert_eq!(update["type"], 7, "{update}");
        let followup = fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next question");
        shown = shown_of(&followup, owner, Via::Component);
    }
    let custom_id = button(&shown, INPUT);
    let id = next_id();
    fake.dispatch_interaction(press(&id, owner, &shown, &custom_id));
    let modal = fake.callback(&id, WAIT).await.expect("a response to 入力する");
    assert_eq!(modal["type"], 9, "a modal: {modal}");
    assert_eq!(modal["data"]["custom_id"], custom_id.as_str());
    let id = next_id();
    fake.dispatch_interaction(modal_submit(&id, owner, &shown, &custom_id, "〇〇病院"));
    let update = fake.callback(&id, WAIT).await.expect("a response to the modal");
    assert_eq!(update["type"], 7, "{update}");
    let followup = fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next field");
    assert_has(followup["content"].as_str().unwrap(), &[ASK_CODE]);
}

/// The gateway mode, when the answer to an interaction fails (more than its retries): the
/// answer is sent from the store instead, with the bot token: the command's first question as
/// a channel message; for a press, the edit of the pressed message, and the next question in
/// the channel (the interaction was never answered, so its token takes no follow-up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_gateway_answer_is_sent_from_the_store() {
    let fake = FakeDiscord::start().await;
    fake.require_token(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let _bot = start_gateway(&fake, dir.path()).await;
    let owner = "2900000000000000001";
    fake.fail_next(Kind::Callback, 4, 500);
    fake.dispatch_interaction(command(&next_id(), owner, None));
    let first = fake.channel_message(CHANNEL, WAIT).await.expect("the first question, posted");
    let first = Shown { id: "1500000000000000001".into(), ..shown_of(&first, owner, Via::Command) };
    assert!(plain(&first.content).contains("「事前確認メール（★）」は届いていますか？"));
    assert!(names(&first).contains(&"届いている".to_owned()), "{:?}", names(&first));

    // A press whose answer fails too.
    fake.fail_next(Kind::Callback, 4, 500);
    let id = next_id();
    fake.dispatch_interaction(press(&id, owner, &first, &button(&first, "届いている")));
    let deadline = std::time::Instant::now() + WAIT;
    let posts = loop {
        let posts: Vec<Value> = fake
            .channel_posts(CHANNEL)
            .into_iter()
            .filter(|c| c.status == 200)
            .map(|c| c.body)
            .collect();
        if posts.len() == 2 {
            break posts;
        }
        assert!(std::time::Instant::now() < deadline, "no second message: {posts:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let next = shown_of(&posts[1], owner, Via::Component);
    assert!(plain(&next.content).contains("「G-MIS利用案内メール（★）」は届いていますか？"));
    let edits = fake.edits(CHANNEL, &first.id);
    assert_eq!(edits.len(), 1, "the pressed message, edited once: {edits:?}");
    let edited = edits[0]["content"].as_str().unwrap();
    assert!(plain(edited).ends_with("→ **届いている**"), "{edited}");
    assert!(labels(&edits[0]["components"]).iter().all(|(_, disabled)| *disabled));
    assert!(fake.followups(&format!("tok-{id}")).is_empty(), "no follow-up to an unanswered one");

    // An answer that goes through: the follow-up as usual, and nothing from the store.
    let id = next_id();
    fake.dispatch_interaction(press(&id, owner, &next, &button(&next, "届いている")));
    let update = fake.callback(&id, WAIT).await.expect("a response to the press");
    assert_eq!(update["type"], 7, "{update}");
    let followup = fake.followup(&format!("tok-{id}"), WAIT).await.expect("the next question");
    assert!(
        plain(followup["content"].as_str().unwrap())
            .contains("届いたメールを見ることはできますか？")
    );
    // The stored answer comes first in the conversation's lane: by now it sent nothing.
    let channel_calls = fake.calls().into_iter().filter(|c| c.path.contains("/channels/"));
    assert_eq!(channel_calls.clone().filter(|c| c.method == "POST").count(), 2);
    assert_eq!(channel_calls.clone().filter(|c| c.method == "PATCH").count(), 1);
    assert!(channel_calls.clone().all(|c| c.status == 200), "every channel call authorised");
}
