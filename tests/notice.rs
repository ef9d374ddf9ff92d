//! The desk's completion notice (`flowbot requests complete`) reaching the user where the request
//! came from: on the web chat at the user's next visit (once), and on Discord through the
//! running bot's delivery worker, with the web chat served beside it.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use flowbot_core::{DeliveryCounts, OutboxStore};
use flowbot_tests::fake_discord::FakeDiscord;
use flowbot_tests::{BotProcess, http_exchange};
use serde_json::{Value, json};

/// The bound of one HTTP exchange, and of one wait for the bot.
const WAIT: Duration = Duration::from_secs(30);
/// Limits no test reaches.
const SETTINGS: &str =
    "[web]\nrequests_per_minute = 1000000\nnew_conversations_per_minute = 1000000\n";
const COOKIE: &str = "flowbot_session";

/// One browser as the web chat's API sees it: the session cookie and request ids.
struct WebUser {
    address: String,
    cookie: Option<String>,
    ids: u32,
}

impl WebUser {
    fn new(bot: &BotProcess) -> Self {
        WebUser { address: bot.address.clone(), cookie: None, ids: 0 }
    }

    /// A GET or POST of `/chat/api` with the cookie; answered 200 with JSON.
    async fn call(&mut self, body: Option<Value>) -> Value {
        let cookie = self.cookie.as_ref().map(|c| format!("{COOKIE}={c}"));
        let mut headers = vec![("Content-Type", "application/json"), ("x-flowbot", "1")];
        if let Some(cookie) = &cookie {
            headers.push(("Cookie", cookie));
        }
        let (method, bytes) = match &body {
            Some(body) => ("POST", body.to_string().into_bytes()),
            None => ("GET", Vec::new()),
        };
        let response =
            http_exchange(&self.address, method, "/chat/api", &headers, &bytes, WAIT).await;
        assert_eq!(response.status, 200, "{method} {body:?}: {}", response.text());
        if let Some(set) = response.header("set-cookie") {
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("a cookie");
            assert_eq!(name, COOKIE);
            self.cookie = Some(value.to_owned());
        }
        response.json()
    }

    async fn get(&mut self) -> Value {
        self.call(None).await
    }

    async fn post(&mut self, mut input: Value) -> Value {
        self.ids += 1;
        input["id"] = json!(format!("n-{}", self.ids));
        self.call(Some(input)).await
    }

    /// Presses the button `label` of the prompt `answer` ends with.
    async fn press(&mut self, answer: &Value, label: &str) -> Value {
        let prompt = answer["replies"].as_array().and_then(|r| r.last()).expect("a prompt");
        let token = prompt["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["label"] == label)
            .and_then(|b| b["token"].as_str())
            .unwrap_or_else(|| panic!("no button {label} in {prompt}"))
            .to_owned();
        self.post(json!({ "press": token })).await
    }

    async fn say(&mut self, text: &str) -> Value {
        self.post(json!({ "text": text })).await
    }

    /// The address-change form from 対応方法3 to 確定する; the request's reference.
    async fn submit_the_form(&mut self) -> String {
        let answer = self.post(json!({ "start": "taiou3" })).await;
        let answer = self.press(&answer, "「送信完了」だった").await;
        self.press(&answer, "変更依頼を入力する").await;
        let answer = self.say("福島中央病院").await;
        self.press(&answer, "分からない").await;
        self.say("old.user@example.jp").await;
        let answer = self.say("new.user@example.jp").await;
        let answer = self.press(&answer, "確定する").await;
        let text = answer["replies"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["kind"] == "handoff")
            .map(|r| joined(&r["text"]))
            .unwrap_or_else(|| panic!("no hand-off in {answer}"));
        text.lines()
            .find_map(|l| l.strip_prefix("受付番号："))
            .unwrap_or_else(|| panic!("no reference in {text}"))
            .to_owned()
    }
}

/// A text's segments joined.
fn joined(segments: &Value) -> String {
    segments.as_array().into_iter().flatten().filter_map(|s| s["v"].as_str()).collect()
}

/// The texts of an answer's `notices`.
fn notices(shown: &Value) -> Vec<String> {
    let list = shown["notices"].as_array().unwrap_or_else(|| panic!("notices: {shown}"));
    list.iter().map(|n| joined(&n["text"])).collect()
}

/// `flowbot --config CONFIG requests complete REFERENCE --login-id ID` on the bot's database.
fn complete(config: &Path, db: &Path, reference: &str, login_id: &str) -> String {
    let mut cmd = flowbot_tests::flowbot();
    cmd.arg("--config").arg(config).args(["requests", "complete", reference]);
    cmd.args(["--login-id", login_id, "--database-url"]).arg(format!("sqlite://{}", db.display()));
    let out: Output = flowbot_tests::run(cmd, b"");
    assert!(out.status.success(), "complete failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn counts(db: &Path) -> DeliveryCounts {
    let store = flowbot_store::SqlStore::open(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the bot's database");
    store.delivery_counts().await.expect("counts")
}

/// A web user submits the form; the desk completes it on the same database; the user's next
/// visit shows the notice with the login id, once; another session never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_shows_the_notice_at_the_web_users_next_visit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(&config, SETTINGS).unwrap();
    let db = dir.path().join("flowbot.sqlite");
    let bot = BotProcess::start_web(&db, &["--config", config.to_str().unwrap(), "--web"], &[]);
    let mut user = WebUser::new(&bot);
    let reference = user.submit_the_form().await;
    let mut other = WebUser::new(&bot);
    other.post(json!({ "start": null })).await;
    assert_eq!(notices(&user.get().await), Vec::<String>::new(), "nothing before the desk");

    let out = complete(&config, &db, &reference, "gmis-web-user-7");
    assert!(out.contains("waits for the user's next visit to the web chat"), "{out}");
    assert_eq!(counts(&db).await.replies_pending, 1, "the notice waits in the store");

    // Another session's visit neither shows nor takes it.
    assert_eq!(notices(&other.get().await), Vec::<String>::new());
    let shown = user.get().await;
    let texts = notices(&shown);
    assert_eq!(texts.len(), 1, "{shown}");
    assert!(texts[0].contains("ユーザ名（ログインID）：gmis-web-user-7"), "{}", texts[0]);
    assert!(texts[0].contains(&format!("受付番号：{reference}")), "{}", texts[0]);
    let link = shown["notices"][0]["text"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["t"] == "url" && s["v"] == "https://www.med-login.mhlw.go.jp/");
    assert!(link, "the login page is a link segment: {shown}");
    // The conversation is still shown beside it.
    assert_eq!(shown["preview"], false, "{shown}");
    assert!(shown["replies"].as_array().is_some_and(|r| !r.is_empty()), "{shown}");

    // Shown once: the next visit has none, and the item (personal data) is gone.
    assert_eq!(notices(&user.get().await), Vec::<String>::new(), "shown twice");
    let after = counts(&db).await;
    assert_eq!((after.replies_pending, after.replies_gave_up), (0, 0), "{after:?}");
    let log = bot.log();
    for private in ["gmis-web-user-7", "old.user@example.jp", "福島中央病院"] {
        assert!(!log.contains(private), "{private} reached the log:\n{log}");
    }
}

/// A Discord user and a web user submit the form to one `flowbot run` serving both; the desk
/// completes both: the Discord user's notice is posted in their channel through the fake's REST
/// API while the web user's waits (no worker takes it), and is shown at their next visit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_reaches_the_user_on_discord_beside_the_web_chat() {
    let fake = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(&config, SETTINGS).unwrap();
    let db = dir.path().join("db.sqlite");
    let bot =
        crate::discord::start_with(&fake, &db, &["--web", "--config", config.to_str().unwrap()]);
    let owner = "2500000000000000077";
    let discord_reference = crate::discord::submit_the_form(&bot, &fake, owner).await;
    let mut web = WebUser::new(&bot);
    let web_reference = web.submit_the_form().await;
    assert_eq!(fake.channel_posts(crate::discord::CHANNEL).len(), 0, "no post before the desk");

    // The web user's notice first: an older pending item of another sink holds nothing up.
    let out = complete(&config, &db, &web_reference, "gmis-web-user-8");
    assert!(out.contains("waits for the user's next visit to the web chat"), "{out}");
    let out = complete(&config, &db, &discord_reference, "gmis-discord-user-9");
    assert!(out.contains("on discord"), "{out}");

    let deadline = Instant::now() + WAIT;
    let posted = loop {
        let found = fake
            .channel_posts(crate::discord::CHANNEL)
            .into_iter()
            .filter(|c| c.status == 200)
            .filter_map(|c| c.body["content"].as_str().map(|s| s.replace('\\', "")))
            .find(|t| t.contains("gmis-discord-user-9"));
        if let Some(text) = found {
            break text;
        }
        assert!(Instant::now() < deadline, "no notice in the channel: {:?}", fake.calls());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(posted.contains("ユーザ名（ログインID）：gmis-discord-user-9"), "{posted}");
    assert!(posted.contains(&format!("受付番号：{discord_reference}")), "{posted}");
    // Delivered and deleted; the web user's notice still waits, neither claimed nor given up.
    let deadline = Instant::now() + WAIT;
    loop {
        let now = counts(&db).await;
        if now.replies_pending == 1 {
            assert_eq!(now.replies_gave_up, 0, "{now:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the Discord notice stayed in the outbox: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(fake.channel_posts(crate::discord::CHANNEL).len(), 1, "posted once");
    let texts = notices(&web.get().await);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("ユーザ名（ログインID）：gmis-web-user-8"), "{}", texts[0]);
    assert_eq!(notices(&web.get().await), Vec::<String>::new(), "shown twice");
    let log = bot.log();
    for private in ["gmis-discord-user-9", "gmis-web-user-8", "old@example.jp"] {
        assert!(!log.contains(private), "{private} reached the log:\n{log}");
    }
}

/// `OutboxStore::pending_in` on both backends: one lane's pending items only, oldest first,
/// bounded, nothing claimed; `done` removes them.
async fn pending_in_reads_one_lane(db: &flowbot_tests::TestDb) {
    use flowbot_core::{
        Commit, ConversationKey, Expected, FlowVersion, NewOutgoing, Snapshot, Store, Stored,
        Timestamp,
    };
    let store = db.store().await;
    let store: &dyn Store = &store;
    let key = ConversationKey::new("test", "chat", "u");
    let state = Stored {
        session: 0,
        flow_id: "f".into(),
        flow_version: FlowVersion([1; 8]),
        state: Snapshot {
            node: "q1".into(),
            revision: 1,
            entered: 1,
            path: Vec::new(),
            misses: 0,
            awaiting_resume: false,
            started_at: Timestamp(5),
            updated_at: Timestamp(5),
            form: None,
        },
    };
    let out = |sink, lane, body| NewOutgoing { sink, lane, body };
    let items = [
        out("notice:web", "s1", "first"),
        out("notice:web", "s2", "other session"),
        out("notice:telegram", "s1", "other sink"),
        out("notice:web", "s1", "second"),
        out("notice:web", "s1", "third"),
    ];
    let commit = Commit {
        key: &key,
        expected: Expected::Absent,
        state: Some(&state),
        event: None,
        transitions: &[],
        request: None,
        outgoing: &items,
        claim: None,
        now: Timestamp(100),
    };
    store.commit(&commit).await.unwrap();
    let bodies =
        |qs: &[flowbot_core::Queued]| qs.iter().map(|q| q.body.clone()).collect::<Vec<_>>();
    let two = store.pending_in("notice:web", "s1", 2).await.unwrap();
    assert_eq!(bodies(&two), ["first", "second"]);
    assert!(two.iter().all(|q| q.sink == "notice:web" && q.lane == "s1" && q.request.is_none()));
    assert_eq!(store.pending_in("notice:web", "s1", 0).await.unwrap(), []);
    assert_eq!(store.pending_in("notice:web", "nobody", 10).await.unwrap(), []);
    // Read again: nothing was claimed.
    assert_eq!(store.pending_in("notice:web", "s1", 2).await.unwrap(), two);
    store.done(&two.iter().map(|q| q.id).collect::<Vec<_>>(), Timestamp(200)).await.unwrap();
    assert_eq!(bodies(&store.pending_in("notice:web", "s1", 10).await.unwrap()), ["third"]);
    assert_eq!(bodies(&store.pending_in("notice:web", "s2", 10).await.unwrap()), ["other session"]);
    assert_eq!(store.delivery_counts().await.unwrap().replies_pending, 3);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_in_reads_one_lane() {
        let db = flowbot_tests::TestDb::sqlite();
        super::pending_in_reads_one_lane(&db).await;
        db.cleanup().await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pending_in_reads_one_lane() {
        let db = flowbot_tests::TestDb::postgres().await;
        super::pending_in_reads_one_lane(&db).await;
        db.cleanup().await;
    }
}
