//! The desk's inbox: `flowbot requests list|show|export|resend|complete` as processes over the
//! store on SQLite and PostgreSQL, the CSV read back by a CSV parser, and the completion notice
//! reaching the user through `flowbot run` on the fake Telegram.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use flowbot_core::{OutboxStore, Queued, Timestamp};
use flowbot_tests::fake_telegram::FakeTelegram;
use flowbot_tests::{BotProcess, TestDb, flowbot, gmis};
use serde_json::{Value, json};

use crate::telegram::{SECRET_PART, TOKEN};

const WAIT: Duration = Duration::from_secs(30);
const M3_CHANGE: &str = "対応方法3（メールが「送信完了」となっている場合）";
/// An institution whose name needs CSV quoting.
const HOSPITAL_A: &str = "東京中央病院, \"本院\"";
const HOSPITAL_B: &str = "福島県立病院";
const HOOK_SECRET: &str = "requests-hook-secret-never-log-4821";

/// The deployment's settings in `dir`: without destinations, or with a webhook nobody serves.
fn write_config(dir: &Path, webhook: bool) -> PathBuf {
    let mut toml = "[prefecture]\nname = \"福島県\"\n[desk]\nname = \"地域医療課\"\n".to_owned();
    if webhook {
        toml += &format!(
            "[[handoff.destinations]]\nkind = \"webhook\"\nname = \"desk-hook\"\n\
             url = \"http://127.0.0.1:9/hook\"\nsecret = \"{HOOK_SECRET}\"\n"
        );
    }
    let path = dir.join(if webhook { "hook.toml" } else { "plain.toml" });
    std::fs::write(&path, toml).unwrap();
    path
}

/// `flowbot --config CONFIG ARGS --database-url URL`, within [`WAIT`].
fn flowbot_run(config: &Path, url: &str, args: &[&str]) -> Output {
    let mut cmd = flowbot();
    cmd.arg("--config").arg(config).args(args).args(["--database-url", url]);
    let out = flowbot_tests::run(cmd, b"");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(HOOK_SECRET),
        "the webhook's secret was printed"
    );
    out
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

/// Submits one request through `flowbot pipe` for the user in `chat`; its reference.
fn submit(config: &Path, url: &str, chat: &str, answers: &[&str]) -> String {
    let line = |v: Value| v.to_string() + "\n";
    let mut input = line(json!({"chat": chat, "user": chat, "start": "taiou3"}));
    for text in
        ["「送信完了」だった", "変更依頼を入力する"].iter().chain(answers).chain(&["確定する"])
    {
        input += &line(json!({"chat": chat, "user": chat, "text": text}));
    }
    let mut cmd = flowbot();
    cmd.arg("--config").arg(config).args(["pipe", "--database-url", url]);
    let out = ok(&flowbot_tests::run(cmd, input.as_bytes()));
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| find_reference(&v))
        .unwrap_or_else(|| panic!("no reference in the pipe's output: {out}"))
}

fn find_reference(v: &Value) -> Option<String> {
    match v {
        Value::Object(map) => map
            .get("reference")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(find_reference)),
        Value::Array(list) => list.iter().find_map(find_reference),
        _ => None,
    }
}

/// The references `requests list ARGS` prints, in order.
fn listed(config: &Path, url: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["requests", "list"];
    all.extend(args);
    let out = ok(&flowbot_run(config, url, &all));
    out.lines().map(|l| l.split_whitespace().next().unwrap_or_default().to_owned()).collect()
}

/// The pending outbox items of `sink`, claimed for the test.
async fn claim(db: &TestDb, sink: &str) -> Vec<Queued> {
    let store = db.store().await;
    let far = Timestamp(u64::MAX / 2);
    store.claim_of(far, "test", far, 10, Some(&[sink])).await.expect("claim")
}

async fn inbox_on(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let plain = write_config(dir.path(), false);
    let hook = write_config(dir.path(), true);
    let url = db.url();
    let a = submit(
        &plain,
        &url,
        "p1",
        &[HOSPITAL_A, "分からない", "a.old@example.jp", "a.new@example.jp"],
    );
    let b =
        submit(&plain, &url, "p2", &[HOSPITAL_B, "B-2", "b.old@example.jp", "b.new@example.jp"]);

    // list: one line each, oldest first; --since in Japan time; --status.
    let out = ok(&flowbot_run(&plain, &url, &["requests", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for (line, (reference, hospital)) in lines.iter().zip([(&a, HOSPITAL_A), (&b, HOSPITAL_B)]) {
        assert!(line.starts_with(reference.as_str()), "{line}");
        assert!(line.contains(hospital) && line.contains(M3_CHANGE), "{line}");
        assert!(line.ends_with("kept"), "{line}");
    }
    assert_eq!(listed(&plain, &url, &["--since", "2000-01-01"]), [a.clone(), b.clone()]);
    assert!(listed(&plain, &url, &["--since", "2999-01-01"]).is_empty());
    assert_eq!(listed(&plain, &url, &["--status", "pending"]), [a.clone(), b.clone()]);
    assert!(listed(&plain, &url, &["--status", "completed"]).is_empty());
    let bad = flowbot_run(&plain, &url, &["requests", "list", "--since", "2025-02-30"]);
    assert!(!bad.status.success());

    // show: the answers, the path, the deliveries.
    let shown = ok(&flowbot_run(&plain, &url, &["requests", "show", &a]));
    for part in [
        format!("reference: {a}"),
        format!("報告機関名: {HOSPITAL_A}"),
        "変更後メールアドレス: a.new@example.jp".to_owned(),
        "「送信完了」だった".to_owned(),
        format!("ending: {M3_CHANGE}"),
        "state: kept".to_owned(),
        "from: pipe chat p1".to_owned(),
    ] {
        assert!(shown.contains(&part), "no {part:?} in\n{shown}");
    }
    assert!(!flowbot_run(&plain, &url, &["requests", "show", "NOPE0-NOPE0"]).status.success());

    // export csv: BOM, CRLF, one row a request, a column per field, Japanese intact.
    let out = flowbot_run(&plain, &url, &["requests", "export", "--format", "csv"]);
    assert!(out.status.success());
    let bytes = out.stdout;
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "no BOM");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(text.ends_with("\r\n"));
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count(), "a bare LF: {text:?}");
    let mut reader = csv::ReaderBuilder::new().from_reader(&bytes[3..]);
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {headers:?}"))
    };
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][col("reference")], a.as_str());
    assert_eq!(&rows[0][col("報告機関名")], HOSPITAL_A);
    assert_eq!(&rows[0][col("機関コード")], "");
    assert_eq!(&rows[1][col("機関コード")], "B-2");
    assert_eq!(&rows[1][col("変更前メールアドレス")], "b.old@example.jp");
    assert_eq!(&rows[1][col("ending")], M3_CHANGE);
    assert_eq!(&rows[1][col("state")], "kept");
    let since = ok(&flowbot_run(
        &plain,
        &url,
        &["requests", "export", "--format", "csv", "--since", "2999-01-01"],
    ));
    assert_eq!(since.lines().count(), 1, "only the header: {since}");

    // export json.
    let out = ok(&flowbot_run(&plain, &url, &["requests", "export", "--format", "json"]));
    let all: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    assert_eq!(all[0]["answers"]["institution"], HOSPITAL_A);
    assert_eq!(all[1]["reference"], b.as_str());
    assert!(all[0]["submitted_at"].as_str().unwrap().ends_with("+09:00"));

    // resend: nowhere to go without a destination; with one, queued, then failing, given up,
    // queued again and delivered.
    assert!(!flowbot_run(&plain, &url, &["requests", "resend", &a]).status.success());
    let out = ok(&flowbot_run(&hook, &url, &["requests", "resend", &a]));
    assert!(out.contains("1 deliveries queued"), "{out}");
    assert_eq!(listed(&plain, &url, &["--status", "pending"]), [a.clone(), b.clone()]);
    let shown = ok(&flowbot_run(&plain, &url, &["requests", "show", &a]));
    assert!(shown.contains("state: pending") && shown.contains("desk-hook: pending"), "{shown}");
    let store = db.store().await;
    let items = claim(db, "handoff:desk-hook").await;
    assert_eq!(items.len(), 1);
    store.failed(items[0].id, Timestamp(0), "POST …: cannot connect").await.unwrap();
    let shown = ok(&flowbot_run(&plain, &url, &["requests", "show", &a]));
    assert!(shown.contains("attempts 1; last error: POST …: cannot connect"), "{shown}");
    assert_eq!(listed(&plain, &url, &["--status", "failed"]), std::slice::from_ref(&a));
    let items = claim(db, "handoff:desk-hook").await;
    store.gave_up(items[0].id, Timestamp(1), "too old").await.unwrap();
    assert_eq!(listed(&plain, &url, &["--status", "failed"]), std::slice::from_ref(&a));
    ok(&flowbot_run(&hook, &url, &["requests", "resend", &a]));
    let items = claim(db, "handoff:desk-hook").await;
    assert_eq!(items.len(), 1, "given up, then queued again");
    store.done(&[items[0].id], Timestamp(2)).await.unwrap();
    assert_eq!(listed(&plain, &url, &["--status", "delivered"]), std::slice::from_ref(&a));
    assert!(!flowbot_run(&hook, &url, &["requests", "resend", "NOPE0-NOPE0"]).status.success());

    // complete: marked once; the notice written for the user's conversation, with the login
    // id, or without its line.
    let out =
        ok(&flowbot_run(&plain, &url, &["requests", "complete", &b, "--login-id", "gmis-0002"]));
    assert!(out.contains("queued"), "{out}");
    assert!(!out.contains("gmis-0002"), "the login id was printed: {out}");
    assert_eq!(listed(&plain, &url, &["--status", "completed"]), std::slice::from_ref(&b));
    assert!(!flowbot_run(&plain, &url, &["requests", "complete", &b]).status.success());
    assert!(!flowbot_run(&plain, &url, &["requests", "complete", "NOPE0-NOPE0"]).status.success());
    ok(&flowbot_run(&plain, &url, &["requests", "complete", &a]));
    let notices = claim(db, "notice:pipe").await;
    assert_eq!(notices.len(), 2, "{notices:?}");
    let to = |lane: &str| notices.iter().find(|n| n.lane == lane).expect(lane).body.clone();
    assert!(to("p2").contains("ユーザ名（ログインID）：gmis-0002"), "{}", to("p2"));
    assert!(to("p2").contains(&b));
    assert!(!to("p1").contains("ログインID"), "{}", to("p1"));
    assert!(to("p1").contains("メールアドレスの変更が完了"), "{}", to("p1"));
    let shown = ok(&flowbot_run(&plain, &url, &["requests", "show", &b]));
    assert!(shown.contains("state: completed") && shown.contains("completed: "), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_on_sqlite() {
    let db = TestDb::sqlite();
    inbox_on(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_on_postgres() {
    let db = TestDb::postgres().await;
    inbox_on(&db).await;
    db.cleanup().await;
}

#[test]
fn the_notice_drops_the_login_id_line_when_none_is_given() {
    let flow = gmis();
    let form = flow.forms().iter().find(|f| f.id() == "address_change").unwrap();
    let with = form.completion("ABCDE-FGHJK", Some("gmis-user")).unwrap();
    assert!(
        with.contains("受付番号：ABCDE-FGHJK")
            && with.contains("ユーザ名（ログインID）：gmis-user")
    );
    let without = form.completion("ABCDE-FGHJK", None).unwrap();
    assert!(!without.contains("ログインID") && !without.contains("{{"), "{without}");
    assert_eq!(without.lines().count() + 1, with.lines().count());
}

/// A Telegram user submits a request; the desk completes it from the command line; the
/// running bot sends the notice, with the login id, to the user's chat, and deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_reaches_the_user_on_telegram() {
    let fake = FakeTelegram::start(TOKEN).await;
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let url = db.url();
    let bot = BotProcess::start_url(
        &url,
        &["--config", config.to_str().unwrap()],
        &[("TELEGRAM_BOT_TOKEN", TOKEN), ("TELEGRAM_API_URL", &fake.url())],
        SECRET_PART,
    );
    let chat = 4242;
    let answers = [HOSPITAL_B, "T-42", "t.old@example.jp", "t.new@example.jp"];
    let (_, reference) = crate::handoff::telegram_request(&fake, chat, &answers).await;
    // The new request is logged by its reference, never its content.
    let deadline = Instant::now() + WAIT;
    while !bot.log().contains(&reference) {
        assert!(Instant::now() < deadline, "the request was not logged: {}", bot.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = ok(&flowbot_run(
        &config,
        &url,
        &["requests", "complete", &reference, "--login-id", "gmis-user-42"],
    ));
    assert!(out.contains("on telegram"), "{out}");
    let deadline = Instant::now() + WAIT;
    let notice = loop {
        let found = fake
            .bot_messages(chat)
            .into_iter()
            .find(|m| m.text.contains("ユーザ名（ログインID）：gmis-user-42"));
        if let Some(m) = found {
            break m;
        }
        assert!(Instant::now() < deadline, "no notice: {:?}", fake.bot_messages(chat));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(notice.text.contains(&format!("受付番号：{reference}")), "{}", notice.text);
    // Delivered: the item (personal data) is gone from the outbox.
    let store = db.store().await;
    let deadline = Instant::now() + WAIT;
    while store.delivery_counts().await.unwrap().replies_pending > 0 {
        assert!(Instant::now() < deadline, "the notice stayed in the outbox");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = bot.log();
    for private in [HOSPITAL_B, "t.new@example.jp", "gmis-user-42"] {
        assert!(!log.contains(private), "{private} reached the log");
    }
    drop(bot);
    db.cleanup().await;
}
