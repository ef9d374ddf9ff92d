//! Discord end to end: `flowbot run` in HTTP interactions mode, driven by requests signed with a
//! test key, with follow-ups going to a fake Discord REST API on 127.0.0.1.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use flowbot_core::{Conversation, Input, NodeKind, Timestamp};
use flowbot_tests::fake_discord::{APPLICATION_ID, FakeDiscord, Kind, message, user};
use flowbot_tests::{BotProcess, gmis, http_request};
use serde_json::{Value, json};

const TOKEN: &str = "discord-test-token-do-not-print";
const CHANNEL: &str = "1300000000000000001";
const WAIT: Duration = Duration::from_secs(20);

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn start(fake: &FakeDiscord, db: &std::path::Path) -> BotProcess {
    let public = hex(key().verifying_key().as_bytes());
    let url = fake.url();
    BotProcess::start(
        db,
        &["--discord-guild-id", "1100000000000000001"],
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

/// The message a user sees and can press: content, components, and whose it is.
#[derive(Debug, Clone)]
struct Shown {
    id: String,
    content: String,
    components: Value,
    owner: String,
    from_component: bool,
}

fn press(id: &str, user_id: &str, shown: &Shown, custom_id: &str) -> Value {
    let mut v = base(3, id, user_id);
    v["data"] = json!({"custom_id": custom_id, "component_type": 2});
    let metadata = if shown.from_component {
        json!({"type": 3, "id": "1600000000000000001", "user": user(&shown.owner, "owner"), "authorizing_integration_owners": {}, "interacted_message_id": "1500000000000000000"})
    } else {
        json!({"type": 2, "id": "1600000000000000001", "user": user(&shown.owner, "owner"), "authorizing_integration_owners": {}})
    };
    v["message"] =
        message(&shown.id, CHANNEL, &json!(shown.content), &shown.components, Some(metadata));
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
        from_component: false,
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
        from_component: true,
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
        from_component: false,
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
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&bot, &body).await["type"], 6, "a duplicate is only acknowledged");
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

/// The gateway mode: a whole conversation over a fake gateway WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_conversation_over_the_gateway() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = fake.url();
    // No public key: the gateway mode.
    let _bot = BotProcess::start(
        &dir.path().join("db.sqlite"),
        &[],
        &[
            ("DISCORD_TOKEN", TOKEN),
            ("DISCORD_APPLICATION_ID", APPLICATION_ID),
            ("DISCORD_API_URL", &url),
        ],
        TOKEN,
    );
    assert!(fake.gateway_ready(WAIT).await, "the bot identified on the gateway");
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
        from_component: false,
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
            from_component: true,
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
