//! Test harness shared by the integration tests: the `flowbot` executable, repository paths.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use flowbot_core::{Flow, Params, load_flow};

/// Serves `app` on `listener` (bound to 127.0.0.1 by the caller) until the returned sender is
/// dropped: the HTTP side of every fake platform.
pub fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

pub mod fake_discord;
pub mod fake_slack;
pub mod fake_telegram;
pub mod slack_checks;

/// The repository root (the workspace).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// The `flowbot` executable that `cargo test` built beside this test binary.
pub fn flowbot_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let bin = dir.join(format!("flowbot{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A `flowbot` command run in the repository root.
pub fn flowbot() -> Command {
    let mut cmd = Command::new(flowbot_path());
    cmd.current_dir(root()).env_remove("FLOWBOT_CONFIG").env_remove("DATABASE_URL");
    cmd
}

/// Runs `flowbot ARGS` in the repository root with `stdin` piped in, and returns its output.
pub fn run_with_input(args: &[&str], stdin: &str) -> Output {
    let mut cmd = flowbot();
    cmd.args(args);
    run(cmd, stdin.as_bytes())
}

/// Runs a command with `input` on its standard input (written from a thread, so a child that
/// prints much before reading all of it cannot deadlock), and returns its output.
pub fn run(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flowbot");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may exit without reading everything; that is its business.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("flowbot output");
    writer.join().expect("stdin writer");
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// The G-MIS flow as shipped, with its parameters' defaults.
pub fn gmis() -> Flow {
    gmis_with(&Params::new())
}

/// The G-MIS flow's answer labels along `path` (a choice index per question, from the start)
/// and the title of the node it ends at: what a platform test presses, and where it must land.
pub fn labels_of_path(path: &[u8]) -> (Vec<String>, String) {
    use flowbot_core::{Conversation, Input, NodeKind, Timestamp};
    let flow = gmis();
    let (mut conv, _) = Conversation::start(&flow, None, Timestamp(0));
    let mut labels = Vec::new();
    for &choice in path {
        let NodeKind::Question(q) = flow.node(conv.node()).kind() else {
            panic!("the path passes a node that is not a question")
        };
        let label = q.choices()[usize::from(choice)].label().to_owned();
        conv.step(&flow, Input::Text(&label), Timestamp(0));
        labels.push(label);
    }
    (labels, flow.node(conv.node()).title().to_owned())
}

pub fn gmis_with(params: &Params) -> Flow {
    let path = root().join("flows/gmis-mail-trouble.yaml");
    let source = std::fs::read_to_string(&path).expect("read the G-MIS flow");
    load_flow(&source, "flows/gmis-mail-trouble.yaml", params).expect("the G-MIS flow loads")
}

/// A fresh, empty database for one test: a SQLite file in a temporary folder, or a database of
/// its own on the PostgreSQL server `DATABASE_URL` names (`./test.sh` starts one).
#[derive(Debug)]
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    pub async fn postgres() -> Self {
        use sqlx::{Connection, Executor};
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let admin = std::env::var("DATABASE_URL").unwrap_or_default();
        assert!(
            admin.starts_with("postgres"),
            "DATABASE_URL must name a PostgreSQL server for the store suite: run ./test.sh"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name =
            format!("t_{}_{}_{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to DATABASE_URL");
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        conn.close().await.expect("close");
        TestDb::Postgres { admin, name }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => {
                format!("sqlite://{}", dir.path().join("flowbot.sqlite").display())
            }
            TestDb::Postgres { admin, name } => {
                let base = admin.split('?').next().unwrap_or(admin);
                let base = &base[..base.rfind('/').expect("a database in DATABASE_URL")];
                format!("{base}/{name}")
            }
        }
    }

    pub async fn store(&self) -> flowbot_store::SqlStore {
        flowbot_store::SqlStore::open(&self.url()).await.expect("open the store")
    }

    /// Drops a PostgreSQL test database (a SQLite folder goes with the value).
    pub async fn cleanup(self) {
        use sqlx::{Connection, Executor};
        if let TestDb::Postgres { admin, name } = &self
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = conn.execute(drop.as_str()).await;
        }
    }
}

/// A `flowbot run` process with its log collected; killed (and checked for a leaked secret) on
/// drop.
#[derive(Debug)]
pub struct BotProcess {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The address the shared HTTP listener bound.
    pub address: String,
    /// A string that must never appear in the log (a token).
    secret: String,
}

impl BotProcess {
    /// Starts `flowbot run --listen 127.0.0.1:0 --database-url sqlite://DB ARGS` with `env`,
    /// and waits until the listener is up.
    pub fn start(db: &Path, args: &[&str], env: &[(&str, &str)], secret: &str) -> Self {
        Self::start_url(&format!("sqlite://{}", db.display()), args, env, secret)
    }

    /// [`BotProcess::start`] on any store: `--database-url URL` (SQLite or PostgreSQL).
    pub fn start_url(url: &str, args: &[&str], env: &[(&str, &str)], secret: &str) -> Self {
        let mut cmd = Command::new(flowbot_path());
        cmd.args(["run", "--listen", "127.0.0.1:0", "--database-url", url])
            .args(args)
            .env("RUST_LOG", "info,flowbot_telegram=debug,flowbot_discord=debug")
            .env_remove("DATABASE_URL")
            .env_remove("TELEGRAM_BOT_TOKEN")
            .env_remove("TELEGRAM_WEBHOOK_URL")
            .env_remove("DISCORD_TOKEN")
            .env_remove("DISCORD_PUBLIC_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, secret)
    }

    /// `flowbot run --listen 127.0.0.1:0 --database-url sqlite://DB ARGS` with `env` and no
    /// messenger: for the web chat, which `ARGS` (`--web`, `--web-url URL`) or `env`
    /// (`FLOWBOT_WEB=true`) turn on. No messenger token, web setting, listener or settings file
    /// comes from the test's own environment.
    pub fn start_web(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(flowbot_path());
        let url = format!("sqlite://{}", db.display());
        cmd.args(["run", "--listen", "127.0.0.1:0", "--database-url", &url])
            .args(args)
            .env("RUST_LOG", "info,flowbot_web=debug");
        for var in [
            "DATABASE_URL",
            "FLOWBOT_CONFIG",
            "FLOWBOT_LISTEN",
            "FLOWBOT_WEB",
            "FLOWBOT_WEB_URL",
            "TELEGRAM_BOT_TOKEN",
            "TELEGRAM_WEBHOOK_URL",
            "DISCORD_TOKEN",
            "DISCORD_PUBLIC_KEY",
        ] {
            cmd.env_remove(var);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, "")
    }

    /// Spawns `cmd` (its stderr piped) and waits until the listener is up.
    pub fn spawn(mut cmd: Command, secret: &str) -> Self {
        use std::io::BufRead;
        let mut child = cmd.spawn().expect("spawn flowbot run");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log").push(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let address = loop {
            let found = log
                .lock()
                .expect("log")
                .iter()
                .find_map(|l| l.split("listening on ").nth(1).map(|a| a.trim().to_owned()));
            if let Some(address) = found {
                break address;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("flowbot exited with {status}: {:?}", log.lock().expect("log"));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "flowbot did not start: {:?}",
                log.lock().expect("log")
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        BotProcess { child, log, address, secret: secret.to_owned() }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// SIGTERM, then the exit status (within 20 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "flowbot did not stop on SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log();
        assert!(
            self.secret.is_empty() || !log.contains(&self.secret),
            "a secret reached the log:\n{log}"
        );
    }
}

/// A minimal HTTP/1.1 request on loopback: the status code and the body.
pub async fn http_request(address: &str, line: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream =
        tokio::net::TcpStream::connect(address).await.expect("connect to the listener");
    let head = format!(
        "{line}\r\nHost: {address}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .expect("a response in time")
        .expect("read");
    let split =
        response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
    let status = String::from_utf8_lossy(&response[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response[split..].to_vec())
}

/// An HTTP response: the status, the headers (names in lower case, in order) and the body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// Every value of header `name`.
    pub fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, with the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One HTTP/1.1 exchange on loopback, with the response's headers: `METHOD PATH` with
/// `headers` and `body`, the whole exchange bounded by `limit`. The body is read by its
/// `Content-Length`, chunked, or to the end of the connection (`Connection: close` is sent, but
/// not every server closes).
pub async fn http_exchange(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: std::time::Duration,
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(address).await.expect("connect to the listener");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.expect("write the request head");
        stream.write_all(body).await.expect("write the request body");
        let mut buf = Vec::new();
        // On the heap: an array here would be part of every future awaiting this one, and a
        // debug build gives each await its own stack slot (a long test ran out of stack).
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            if let Some(response) = parse_response(&buf, false) {
                return response;
            }
            let n = stream.read(&mut chunk).await.expect("read the response");
            if n == 0 {
                return parse_response(&buf, true).unwrap_or_else(|| {
                    panic!("a cut response: {}", String::from_utf8_lossy(&buf))
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| panic!("no response to {method} {path} on {address} within {limit:?}"))
}

/// A whole response in `buf`, if it is complete (`closed`: the connection ended after it).
fn parse_response(buf: &[u8], closed: bool) -> Option<HttpResponse> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[split + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..length)?.to_vec()
    } else if closed || status == 204 || status == 304 {
        rest.to_vec()
    } else {
        return None;
    };
    Some(HttpResponse { status, headers, body })
}

/// A chunked body, if all of it (through the last, empty chunk) is in `data`.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..line]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        data = &data[line + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// What a [`ChatChild`] types to submit the address-change form from 対応方法3: the choices to
/// the form, its four answers, and 確定する.
pub const ADDRESS_CHANGE: [&str; 7] = [
    "「送信完了」だった",
    "変更依頼を入力する",
    "福島中央病院",
    "0700123",
    "old.user@example.jp",
    "new-user@hospital.example.jp",
    "確定する",
];

/// A `flowbot chat --user` child at 対応方法3 (`--entry taiou3`) with `--config CONFIG`, standard
/// input kept open and its output collected; killed on drop. For destinations whose tests submit
/// the address-change form and watch what arrives.
#[derive(Debug)]
pub struct ChatChild {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    readers: Vec<std::thread::JoinHandle<Vec<u8>>>,
}

impl ChatChild {
    /// `flowbot --config CONFIG chat --user USER --database-url URL --entry taiou3`, with `env`
    /// and `RUST_LOG=trace` (so a secret that reached any log line would show).
    pub fn start(config: &Path, user: &str, url: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = flowbot();
        cmd.arg("--config").arg(config);
        cmd.args(["chat", "--user", user, "--database-url", url, "--entry", "taiou3"]);
        cmd.envs(env.iter().copied()).env("RUST_LOG", "trace");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flowbot chat");
        let read = |mut from: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut all = Vec::new();
                // Ends when the child closes its end (it exits, or is killed on drop).
                let _ = from.read_to_end(&mut all);
                all
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("stdout")));
        let stderr = read(Box::new(child.stderr.take().expect("stderr")));
        ChatChild { stdin: child.stdin.take(), child, readers: vec![stdout, stderr] }
    }

    /// Types `lines`, one answer each.
    pub fn write_lines(&mut self, lines: &[&str]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for line in lines {
            stdin.write_all(line.as_bytes()).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
        stdin.flush().expect("flush");
    }

    /// Closes standard input, waits (at most `timeout`) for the exit, and returns everything it
    /// wrote to standard output and standard error.
    pub async fn finish(&mut self, timeout: std::time::Duration) -> (String, String) {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + timeout;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(std::time::Instant::now() < deadline, "flowbot did not exit in {timeout:?}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut texts = self
            .readers
            .drain(..)
            .map(|r| String::from_utf8_lossy(&r.join().expect("reader")).into_owned());
        let out = texts.next().unwrap_or_default();
        let err = texts.next().unwrap_or_default();
        (out, err)
    }
}

impl Drop for ChatChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
