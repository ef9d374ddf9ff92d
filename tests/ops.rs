//! Operations: liveness and readiness (a database stopped under a running bot), and JSON logs.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowbot_tests::{BotProcess, flowbot_path, http_request};

/// A PostgreSQL server of this test's own, which it may stop and start again.
struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("postgres").exists())
            .max()
            .expect(
                "PostgreSQL's server binaries under /usr/lib/postgresql (./test.sh installs them)",
            );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = OwnPostgres { bin, dir, port };
        if is_root() {
            let status =
                Command::new("chown").arg("postgres:").arg(pg.dir.path()).status().unwrap();
            assert!(status.success());
        }
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-U", "flowbot", "-A", "trust", "--no-sync"]);
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a server program, as the postgres user when this test runs as root.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&path);
            cmd
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).current_dir("/").stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn up(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-s", "-o", &options, "start"]);
    }

    fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "-s", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://flowbot@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.down());
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Polls `path` until it answers `want` (bounded), and returns the last body.
async fn wait_status(address: &str, path: &str, want: u16, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = http_request(address, &format!("GET {path} HTTP/1.1"), "", b"").await;
        if status == want {
            return serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        }
        assert!(
            Instant::now() < deadline,
            "{path} stayed {status}: {}",
            String::from_utf8_lossy(&body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_and_livez_the_process() {
    let pg = OwnPostgres::start();
    let mut bot = BotProcess::start_url(&pg.url(), &["--web"], &[], "");
    let address = bot.address.clone();
    for path in ["/livez", "/healthz"] {
        let (status, body) = http_request(&address, &format!("GET {path} HTTP/1.1"), "", b"").await;
        assert_eq!((status, body.as_slice()), (200, b"ok".as_slice()), "{path}");
    }
    let ready = wait_status(&address, "/readyz", 200, Duration::from_secs(10)).await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["flow"]["id"], "gmis-mail-trouble");
    assert_eq!(ready["platforms"], serde_json::json!(["web"]));

    pg.down();
    let not_ready = wait_status(&address, "/readyz", 503, Duration::from_secs(30)).await;
    assert_eq!(not_ready["ready"], false);
    let failed = not_ready["failed"].as_array().expect("a list of what failed");
    assert!(
        failed.iter().any(|f| f.as_str().is_some_and(|f| f.starts_with("database: "))),
        "{failed:?}"
    );
    let (status, _) = http_request(&address, "GET /livez HTTP/1.1", "", b"").await;
    assert_eq!(status, 200, "the process still answers");

    pg.up();
    let ready = wait_status(&address, "/readyz", 200, Duration::from_secs(60)).await;
    assert_eq!(ready["ready"], true);
    assert!(bot.terminate().success());
}

#[test]
fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bot.sqlite");
    let mut child = Command::new(flowbot_path())
        .args(["run", "--listen", "127.0.0.1:0", "--web", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .env("FLOWBOT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("FLOWBOT_CONFIG")
        .env_remove("DATABASE_URL")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("DISCORD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut listening = false;
    // Bounded: the process logs a handful of lines before it listens, and ends on kill.
    for line in stderr.lines().map_while(Result::ok).take(200) {
        let object: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["timestamp"].is_string() && object["level"].is_string(), "{line}");
        let message = object["fields"]["message"].as_str().unwrap_or_default();
        if message.contains("listening on") {
            listening = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening, "no JSON line said the listener is up");

    let out = Command::new(flowbot_path())
        .args(["run", "--web", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .env("FLOWBOT_LOG_FORMAT", "xml")
        .env_remove("FLOWBOT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("FLOWBOT_LOG_FORMAT `xml` is not `text` or `json`")
    );
}

/// The number a metric line `name{labels} N` shows, if the line is there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_updates_steps_refusals_and_calls_without_user_data() {
    use crate::telegram::{Bot, WAIT, press, say};
    use flowbot_tests::fake_telegram::FakeTelegram;

    let fake = FakeTelegram::start(crate::telegram::TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &["--admin-listen", "127.0.0.1:0"]);
    let deadline = Instant::now() + WAIT;
    let admin = loop {
        let found = bot
            .log()
            .lines()
            .find_map(|l| l.split("metrics and health on ").nth(1).map(|a| a.trim().to_owned()));
        if let Some(admin) = found {
            break admin;
        }
        assert!(Instant::now() < deadline, "no admin listener: {}", bot.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (chat, user) = (987_654_321, 123_456_789);
    let q1 = say(&fake, chat, user, "/start").await;
    let q2 = press(&fake, chat, user, &q1, "届いている").await;
    let since = fake.call_count();
    // An old button, then a token no button ever carried.
    fake.press(chat, user, q1.message_id, &crate::telegram::data_of(&q1, "届いていない"));
    fake.wait_for(since, WAIT, |c| c.method == "answercallbackquery").await.unwrap();
    let since = fake.call_count();
    fake.press(chat, user, q2.message_id, "9:nowhere:0");
    fake.wait_for(since, WAIT, |c| c.method == "answercallbackquery").await.unwrap();

    // The counters are written before the answer goes out; the reply latency when the
    // platform took it: wait (bounded) for what the steps above must have counted.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let (status, body) = http_request(&admin, "GET /metrics HTTP/1.1", "", b"").await;
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        let refused = |reason: &str| {
            sample(
                &text,
                &format!(
                    "flowbot_presses_refused_total{{platform=\"telegram\",reason=\"{reason}\"}}"
                ),
            )
        };
        if refused("stale") == Some(1.0) && refused("forged") == Some(1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "the refusals were not counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let updates = "flowbot_updates_total{platform=\"telegram\",kind=\"press\"}";
    assert_eq!(sample(&text, updates), Some(3.0), "{text}");
    assert!(
        sample(&text, "flowbot_steps_total{platform=\"telegram\"}").is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "flowbot_conversations_started_total{platform=\"telegram\"}"),
        Some(1.0),
        "{text}"
    );
    let sent =
        "flowbot_api_calls_total{platform=\"telegram\",method=\"sendMessage\",status=\"2xx\"}";
    assert!(sample(&text, sent).is_some_and(|n| n >= 2.0), "{text}");
    let latency = "flowbot_step_duration_seconds_count{platform=\"telegram\"}";
    assert!(sample(&text, latency).is_some_and(|n| n >= 1.0), "{text}");
    assert!(text.contains("flowbot_build_info{version=\""), "{text}");
    assert!(text.contains("# TYPE flowbot_deliveries_pending gauge"), "{text}");
    // Read from the store at the scrape: a handful at most, the updates of a poll or two.
    assert!(sample(&text, "flowbot_updates_kept").is_some_and(|n| n < 10.0), "{text}");
    for private in [
        chat.to_string(),
        user.to_string(),
        "届いている".to_owned(),
        crate::telegram::SECRET_PART.to_owned(),
    ] {
        assert!(!text.contains(&private), "{private} in the metrics:\n{text}");
    }
    // With --admin-listen, the public listener does not serve them.
    let (status, _) = http_request(&bot.address, "GET /metrics HTTP/1.1", "", b"").await;
    assert_eq!(status, 404);
    let (status, _) = http_request(&admin, "GET /readyz HTTP/1.1", "", b"").await;
    assert_eq!(status, 200);
}

/// Long polling that fails makes the bot not ready, with the reason; it is ready again once
/// updates come in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_telegram_polling_fails() {
    use crate::telegram::{Bot, WAIT, say};
    use flowbot_tests::fake_telegram::{Failure, FakeTelegram};

    let fake = FakeTelegram::start(crate::telegram::TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let bot = Bot::start(&fake, &dir.path().join("db.sqlite"), &[]);
    let ready = wait_status(&bot.address, "/readyz", 200, WAIT).await;
    assert_eq!(ready["platforms"], serde_json::json!(["telegram"]));

    // The next getUpdates calls are refused; a message ends the long poll in flight.
    fake.fail_next("getUpdates", 4, Failure::Refused);
    fake.user_message(5, 5, "/start");
    let not_ready = wait_status(&bot.address, "/readyz", 503, WAIT).await;
    let failed = not_ready["failed"].to_string();
    assert!(failed.contains("telegram: getUpdates failed"), "{failed}");
    assert!(!failed.contains(crate::telegram::SECRET_PART), "{failed}");

    // Polling recovers: the message is answered and the bot is ready again.
    let q1 = say(&fake, 5, 5, "/help").await;
    assert!(!q1.buttons.is_empty());
    wait_status(&bot.address, "/readyz", 200, WAIT).await;
}
