//! The LINE WORKS hand-off destination against a fake of LINE WORKS on 127.0.0.1 that the test
//! runs: its authorization server and its Bot API.
//!
//! The token endpoint checks the form as LINE WORKS documents it (grant type, client id and
//! secret, scope) and verifies the assertion: an RS256 JWT whose signature the test's public key
//! (`tests/data/lineworks-test-key.pub.der`, a test-only key) verifies, with `iss`, `sub`, `iat`
//! and `exp` as they must be. It issues tokens that live one second. The send endpoint checks the
//! bearer token, the bot and channel, and the JSON body; it answers the first token it issued
//! with 403 `UNAUTHORIZED` (a token it has "expired") and the first send with a good token with
//! a 429 and its rate-limit headers, then 201.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flowbot_tests::{ADDRESS_CHANGE, ChatChild, TestDb, flowbot, root};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

/// The app's Client Secret: it must never be printed or logged.
const SECRET: &str = "lw-client-secret-7f3a91-never-log";
const CLIENT_ID: &str = "flowbot-test-client";
const SERVICE_ACCOUNT: &str = "abcde.serviceaccount@pref.example";
const BOT: &str = "2000001";
const CHANNEL: &str = "ch-desk-0001";
/// The bound on every wait for something that should happen within a few seconds.
const WAIT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

// ---- The fake ----------------------------------------------------------------------------------

/// What the fake saw and answered, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A token issued (its number, from 1).
    Issued(usize),
    /// A send with token number `n` answered `status`.
    Sent { token: usize, status: u16 },
}

#[derive(Debug, Default)]
struct Fake {
    /// Every token issued, in order.
    tokens: Mutex<Vec<String>>,
    events: Mutex<Vec<(Event, Instant)>>,
    /// The texts of the messages taken.
    messages: Mutex<Vec<String>>,
    /// Whether the one 429 was answered.
    limited: Mutex<bool>,
    /// What broke the API's rules (the test fails on any).
    violations: Mutex<Vec<String>>,
}

impl Fake {
    async fn start() -> (Arc<Fake>, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Arc::new(Fake::default());
        let app = Router::new()
            .route("/oauth2/v2.0/token", axum::routing::post(token))
            .route(
                &format!("/v1.0/bots/{BOT}/channels/{CHANNEL}/messages"),
                axum::routing::post(send),
            )
            .fallback(unknown)
            .with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (fake, url)
    }

    fn violation(&self, what: impl Into<String>) {
        lock(&self.violations).push(what.into());
    }

    fn event(&self, event: Event) {
        lock(&self.events).push((event, Instant::now()));
    }

    async fn wait_message(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(text) = lock(&self.messages).first() {
                return text.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no message in {timeout:?}; events {:?}; violations {:?}",
                lock(&self.events),
                lock(&self.violations)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn unknown(State(fake): State<Arc<Fake>>, uri: axum::http::Uri) -> StatusCode {
    fake.violation(format!("a call to {uri}"));
    StatusCode::NOT_FOUND
}

/// `POST /oauth2/v2.0/token`: the form checked, the JWT verified, a one-second token issued.
async fn token(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let refuse = |what: String| {
        fake.violation(format!("token: {what}"));
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_request"}))).into_response()
    };
    let form_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if form_type != "application/x-www-form-urlencoded" {
        return refuse(format!("content-type {form_type:?}"));
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default()
    };
    for (name, want) in [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("client_id", CLIENT_ID),
        ("scope", "bot"),
    ] {
        if field(name) != want {
            return refuse(format!("{name} is {:?}", field(name)));
        }
    }
    if field("client_secret") != SECRET {
        fake.violation("token: a wrong client secret");
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"})))
            .into_response();
    }
    if let Err(what) = verify_jwt(field("assertion")) {
        return refuse(format!("the assertion: {what}"));
    }
    let n = {
        let mut tokens = lock(&fake.tokens);
        let n = tokens.len() + 1;
        tokens.push(format!("lw-access-token-{n}-{}", unix_now()));
        tokens.len()
    };
    fake.event(Event::Issued(n));
    let access = lock(&fake.tokens)[n - 1].clone();
    // `expires_in` as a string, as some of LINE WORKS' samples read it.
    let answer = json!({
        "access_token": access,
        "refresh_token": "lw-refresh-token",
        "scope": "bot",
        "token_type": "Bearer",
        "expires_in": "1",
    });
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// The assertion: three base64url parts, RS256 under the test's public key, the claims right.
fn verify_jwt(jwt: &str) -> Result<(), String> {
    let public = std::fs::read(root().join("tests/data/lineworks-test-key.pub.der")).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(format!("{} parts", parts.len()));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("base64url: {e}"));
    let signed = format!("{header}.{claims}");
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| "the signature does not verify".to_owned())?;
    let json = |part: &str| -> Result<Value, String> {
        serde_json::from_slice(&decode(part)?).map_err(|e| format!("JSON: {e}"))
    };
    let header = json(header)?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let claims = json(claims)?;
    if claims["iss"] != CLIENT_ID || claims["sub"] != SERVICE_ACCOUNT {
        return Err(format!("iss {} sub {}", claims["iss"], claims["sub"]));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("no iat or exp".to_owned());
    };
    let now = unix_now();
    if iat.abs_diff(now) > 60 || exp <= now || exp - iat > 3600 {
        return Err(format!("iat {iat} exp {exp} at {now}"));
    }
    Ok(())
}

/// `POST /v1.0/bots/{BOT}/channels/{CHANNEL}/messages`.
async fn send(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let token = header("authorization").strip_prefix("Bearer ").unwrap_or_default();
    let Some(n) = lock(&fake.tokens).iter().position(|t| t == token).map(|i| i + 1) else {
        fake.violation("send: a token that was never issued");
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"code": "UNAUTHORIZED"})))
            .into_response();
    };
    let answer = |status: u16| fake.event(Event::Sent { token: n, status });
    if n == 1 {
        answer(403);
        let body = json!({"code": "UNAUTHORIZED", "description": "Authentication failed"});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    if header("content-type") != "application/json" {
        fake.violation(format!("send: content-type {:?}", header("content-type")));
    }
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    let Some(text) = body["content"]["text"].as_str().filter(|_| body["content"]["type"] == "text")
    else {
        fake.violation(format!("send: not a text message: {body}"));
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"code": "INVALID_PARAMETER"})))
            .into_response();
    };
    if text.chars().count() > 2000 {
        fake.violation("send: a text over 2000 characters");
    }
    let first = !std::mem::replace(&mut *lock(&fake.limited), true);
    if first {
        answer(429);
        let headers =
            [("ratelimit-limit", "240"), ("ratelimit-remaining", "0"), ("ratelimit-reset", "1")];
        let body = json!({"code": "TOO_MANY_REQUESTS", "description": "Too many requests"});
        return (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(body)).into_response();
    }
    answer(201);
    lock(&fake.messages).push(text.to_owned());
    StatusCode::CREATED.into_response()
}

/// The settings: the LINE WORKS destination with the test's key.
fn write_config(dir: &Path, key: &Path) -> PathBuf {
    let toml = format!(
        "[prefecture]\nname = \"福島県\"\n[desk]\nname = \"地域医療課\"\n\
         [handoff]\nretry_first_seconds = 0.2\nretry_max_seconds = 1.0\nlease_seconds = 2\n\
         [[handoff.destinations]]\nkind = \"lineworks\"\nname = \"窓口LW\"\nbot_id = {BOT}\n\
         channel_id = \"{CHANNEL}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret_env = \"DESK_LW_SECRET\"\nservice_account = \"{SERVICE_ACCOUNT}\"\n\
         private_key_file = \"{}\"\n",
        key.display()
    );
    let path = dir.join("flowbot.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn test_key() -> PathBuf {
    root().join("tests/data/lineworks-test-key.pem")
}

// ---- The tests ---------------------------------------------------------------------------------

/// A request from `flowbot chat --user` reaches the desk's LINE WORKS channel: the JWT verifies
/// with the test's public key, the token the API calls expired is issued again and the send
/// repeated, the 429 is waited out (and the one-second token renewed after it), and the message
/// holds the request's four items in Japanese. Neither the secret, the tokens nor the key reaches
/// the bot's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reaches_the_channel_after_an_expired_token_and_a_429() {
    let (fake, url) = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &test_key());
    let db = TestDb::sqlite();
    let env = [
        ("DESK_LW_SECRET", SECRET),
        ("LINEWORKS_API_URL", url.as_str()),
        ("LINEWORKS_AUTH_URL", url.as_str()),
    ];
    let mut chat = ChatChild::start(&config, "user-lw-1", &db.url(), &env);
    chat.write_lines(&ADDRESS_CHANGE);
    let text = fake.wait_message(WAIT).await;
    let (out, err) = chat.finish(WAIT).await;

    assert!(lock(&fake.violations).is_empty(), "{:?}", lock(&fake.violations));
    let events = lock(&fake.events).clone();
    let kinds: Vec<Event> = events.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(
        kinds,
        [
            Event::Issued(1),
            Event::Sent { token: 1, status: 403 },
            // The expired token is replaced at once…
            Event::Issued(2),
            Event::Sent { token: 2, status: 429 },
            // …the 429's second is waited out, by when the one-second token is due for renewal.
            Event::Issued(3),
            Event::Sent { token: 3, status: 201 },
        ],
        "{err}"
    );
    let waited = events[5].1 - events[3].1;
    assert!(waited >= Duration::from_secs(1), "the 429 was not waited out: {waited:?}");
    assert_eq!(lock(&fake.messages).len(), 1);

    let reference = crate::handoff::reference_in(&out);
    for line in [
        "【メールアドレスの変更依頼】",
        &format!("受付番号：{reference}"),
        "報告機関名：福島中央病院",
        "機関コード：0700123",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
    ] {
        assert!(text.contains(line), "no {line} in the message:\n{text}");
    }
    // What the desk reads is what the user was shown.
    let first_line = text.lines().next().unwrap_or_default();
    assert!(out.contains(first_line), "{out}");

    // (`chat --user` keeps its log off the terminal: what it prints is the conversation.)
    let key = std::fs::read_to_string(test_key()).unwrap();
    let key_line = key.lines().find(|l| l.len() == 64).expect("a line of the key");
    let tokens = lock(&fake.tokens).clone();
    for text in [&out, &err] {
        assert!(!text.contains(SECRET), "the client secret reached the output:\n{text}");
        assert!(!text.contains(key_line), "the private key reached the output:\n{text}");
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "a token reached the output:\n{text}");
        }
    }
}

/// A key file that is not a key, or the secret's variable unset: `flowbot` refuses to start and
/// names the settings line, never the secret or the key.
#[test]
fn bad_lineworks_settings_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let check = |config: &Path, env: &[(&str, &str)]| {
        let out = flowbot()
            .arg("--config")
            .arg(config)
            .args(["check", "flows/gmis-mail-trouble.yaml"])
            .current_dir(root())
            .env_remove("DESK_LW_SECRET")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let good = write_config(dir.path(), &test_key());
    let (ok, err) = check(&good, &[("DESK_LW_SECRET", SECRET)]);
    assert!(ok, "{err}");

    let (ok, err) = check(&good, &[]);
    assert!(!ok && err.contains("flowbot.toml:15:") && err.contains("DESK_LW_SECRET"), "{err}");

    let public = root().join("tests/data/lineworks-test-key.pub.der");
    let (ok, err) = check(&write_config(dir.path(), &public), &[("DESK_LW_SECRET", SECRET)]);
    assert!(!ok && err.contains("flowbot.toml:17:") && err.contains("no PEM block"), "{err}");
    assert!(!err.contains(SECRET), "{err}");

    let (ok, err) = check(
        &good,
        &[("DESK_LW_SECRET", SECRET), ("LINEWORKS_AUTH_URL", "http://auth.example.jp")],
    );
    assert!(!ok && err.contains("environment variable LINEWORKS_AUTH_URL"), "{err}");
}
