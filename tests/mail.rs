//! The mail hand-off destination against an SMTP server on 127.0.0.1 that the test runs.
//!
//! The server speaks SMTP as a real one checks it: a greeting, EHLO, AUTH PLAIN or LOGIN
//! checked against its one account (and required before MAIL), MAIL FROM, RCPT TO refusing
//! unknown recipients with 550, DATA that must be 7-bit (no 8BITMIME is offered), CRLF-ended
//! lines of at most 998 characters, dot-unstuffed, and QUIT. It can refuse a number of
//! transactions first (421 at the greeting, 550 to the recipient, 451 after the data). What it
//! accepts is parsed by a MIME parser (`mailparse`): the subject and body decoded.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flowbot_tests::{ADDRESS_CHANGE, ChatChild, TestDb, flowbot};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The SMTP password: it must never be printed or logged.
const PASSWORD: &str = "smtp-pw-4e1c9a77-never-log";
const USER: &str = "flowbot";
const DESK: &str = "madoguchi@pref.example.jp";
const DESK2: &str = "kakari@pref.example.jp";
const FROM: &str = "flowbot@pref.example.jp";
/// The bound on every wait for something that should happen within a second or two.
const WAIT: Duration = Duration::from_secs(30);
/// The longest line a client may send (RFC 5321: 1000 octets with the CRLF).
const MAX_LINE: u64 = 1000;

// ---- The SMTP server -------------------------------------------------------------------------

/// How the server answers one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `421` instead of the greeting, then the connection is closed.
    Greeting,
    /// `550` to every recipient.
    Recipient,
    /// `451` after the data.
    Data,
}

/// A mail the server accepted.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

/// How the server secures its connections.
#[derive(Default)]
enum Mode {
    /// Never: no STARTTLS is offered.
    #[default]
    Plain,
    /// TLS from the first byte (port 465).
    Implicit(TlsAcceptor),
    /// STARTTLS offered, and required before AUTH and MAIL (port 587).
    StartTls(TlsAcceptor),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Plain => "Plain",
            Mode::Implicit(_) => "Implicit",
            Mode::StartTls(_) => "StartTls",
        })
    }
}

/// Which part of a connection a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    Plain,
    Tls,
    BeforeStartTls,
    AfterStartTls,
}

#[derive(Debug, Default)]
struct Smtp {
    tls: Mode,
    /// The refusals still to make, one per connection, in order.
    refusals: Mutex<Vec<Refusal>>,
    /// Connections accepted, and TLS handshakes that failed.
    connections: Mutex<usize>,
    failed_handshakes: Mutex<usize>,
    /// Every command's verb, in order; `/tls` after those sent over TLS.
    verbs: Mutex<Vec<String>>,
    accepted: Mutex<Vec<Received>>,
    /// Every reply code the server sent, in order.
    codes: Mutex<Vec<u16>>,
    /// What broke the protocol (the test fails on any).
    violations: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Smtp {
    /// Starts the server on 127.0.0.1; it serves until the test ends.
    async fn start(refusals: Vec<Refusal>) -> (Arc<Smtp>, u16) {
        Self::start_with(refusals, Mode::Plain).await
    }

    async fn start_with(refusals: Vec<Refusal>, tls: Mode) -> (Arc<Smtp>, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let smtp = Arc::new(Smtp { tls, refusals: Mutex::new(refusals), ..Smtp::default() });
        let server = smtp.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    // A connection that outlives the test's bound is a failure, not a hang.
                    let served = tokio::time::timeout(WAIT, server.serve(stream)).await;
                    if served.is_err() {
                        lock(&server.violations).push("a connection did not end".into());
                    }
                });
            }
        });
        (smtp, port)
    }

    async fn wait(&self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(mail) = lock(&self.accepted).first() {
                return mail.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no mail in {timeout:?}; codes {:?}",
                lock(&self.codes)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One connection: plain, TLS from the first byte, or plain until STARTTLS.
    /// Waits (at most `WAIT`) until `what` of the server holds.
    async fn until(&self, what: &str, done: impl Fn(&Smtp) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "not {what} in {WAIT:?}: {} connections, verbs {:?}",
                lock(&self.connections),
                lock(&self.verbs)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn serve(&self, stream: TcpStream) {
        *lock(&self.connections) += 1;
        let refusal = {
            let mut refusals = lock(&self.refusals);
            (!refusals.is_empty()).then(|| refusals.remove(0))
        };
        match &self.tls {
            Mode::Plain => {
                self.session(BufReader::new(stream), refusal, Session::Plain).await;
            }
            Mode::Implicit(acceptor) => {
                let Some(tls) = self.handshake(acceptor, stream).await else { return };
                self.session(BufReader::new(tls), refusal, Session::Tls).await;
            }
            Mode::StartTls(acceptor) => {
                let plain = BufReader::new(stream);
                let Some(plain) = self.session(plain, refusal, Session::BeforeStartTls).await
                else {
                    return;
                };
                // What the client sent after STARTTLS before the handshake would be injected.
                if !plain.buffer().is_empty() {
                    lock(&self.violations).push("data after STARTTLS before TLS".into());
                    return;
                }
                let Some(tls) = self.handshake(acceptor, plain.into_inner()).await else { return };
                self.session(BufReader::new(tls), None, Session::AfterStartTls).await;
            }
        }
    }

    /// The server side of a TLS handshake; a failure is counted.
    async fn handshake(
        &self,
        acceptor: &TlsAcceptor,
        stream: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        match acceptor.accept(stream).await {
            Ok(tls) => Some(tls),
            Err(_) => {
                *lock(&self.failed_handshakes) += 1;
                None
            }
        }
    }

    /// A reply of one line or more (`250-…` then `250 …`).
    async fn reply(&self, io: &mut (impl AsyncWrite + Unpin), code: u16, lines: &[&str]) {
        lock(&self.codes).push(code);
        let mut text = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            text += &format!("{code}{sep}{line}\r\n");
        }
        let _ = io.write_all(text.as_bytes()).await;
        let _ = io.flush().await;
    }

    /// The SMTP conversation on one stream; the stream back if the client asked for STARTTLS.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut io: BufReader<S>,
        refusal: Option<Refusal>,
        session: Session,
    ) -> Option<BufReader<S>> {
        let secure = matches!(session, Session::Tls | Session::AfterStartTls);
        let must_start_tls = session == Session::BeforeStartTls;
        if session != Session::AfterStartTls {
            if refusal == Some(Refusal::Greeting) {
                self.reply(&mut io, 421, &["4.3.2 Service not available, try again later"]).await;
                return None;
            }
            self.reply(&mut io, 220, &["127.0.0.1 ESMTP test"]).await;
        }
        let mut hello = false;
        let mut authenticated = false;
        let mut from: Option<String> = None;
        let mut to: Vec<String> = Vec::new();
        loop {
            let line = self.line(&mut io).await?;
            let upper = line.to_ascii_uppercase();
            let verb = upper.split(' ').next().unwrap_or_default().to_owned();
            lock(&self.verbs).push(if secure { format!("{verb}/tls") } else { verb.clone() });
            match verb.as_str() {
                "EHLO" if must_start_tls => {
                    hello = true;
                    self.reply(&mut io, 250, &["127.0.0.1", "STARTTLS", "HELP"]).await;
                }
                "EHLO" => {
                    hello = true;
                    // No 8BITMIME: the data must be 7-bit.
                    self.reply(&mut io, 250, &["127.0.0.1", "AUTH PLAIN LOGIN", "HELP"]).await;
                }
                "STARTTLS" if must_start_tls => {
                    self.reply(&mut io, 220, &["2.0.0 Ready to start TLS"]).await;
                    return Some(io);
                }
                "AUTH" | "MAIL" if must_start_tls => {
                    self.reply(&mut io, 530, &["5.7.0 Must issue a STARTTLS command first"]).await
                }
                "HELO" => {
                    hello = true;
                    self.reply(&mut io, 250, &["127.0.0.1"]).await;
                }
                "AUTH" if !hello => self.reply(&mut io, 503, &["5.5.1 EHLO first"]).await,
                "AUTH" => {
                    let words: Vec<&str> = line.split(' ').collect();
                    let (user, password) =
                        match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
                            Some("PLAIN") => {
                                let token = match words.get(2) {
                                    Some(t) => (*t).to_owned(),
                                    None => {
                                        self.reply(&mut io, 334, &[""]).await;
                                        self.line(&mut io).await?
                                    }
                                };
                                let plain = base64(&token).unwrap_or_default();
                                let parts: Vec<&[u8]> = plain.split(|b| *b == 0).collect();
                                match parts.as_slice() {
                                    [_, user, password] => (user.to_vec(), password.to_vec()),
                                    _ => (Vec::new(), Vec::new()),
                                }
                            }
                            Some("LOGIN") => {
                                self.reply(&mut io, 334, &["VXNlcm5hbWU6"]).await;
                                let user = self.line(&mut io).await?;
                                self.reply(&mut io, 334, &["UGFzc3dvcmQ6"]).await;
                                let password = self.line(&mut io).await?;
                                (
                                    base64(&user).unwrap_or_default(),
                                    base64(&password).unwrap_or_default(),
                                )
                            }
                            _ => {
                                self.reply(&mut io, 504, &["5.5.4 mechanism not supported"]).await;
                                continue;
                            }
                        };
                    if user == USER.as_bytes() && password == PASSWORD.as_bytes() {
                        authenticated = true;
                        self.reply(&mut io, 235, &["2.7.0 Authentication successful"]).await;
                    } else {
                        self.reply(&mut io, 535, &["5.7.8 Authentication credentials invalid"])
                            .await;
                    }
                }
                "MAIL" if !hello => self.reply(&mut io, 503, &["5.5.1 EHLO first"]).await,
                "MAIL" if !authenticated => {
                    self.reply(&mut io, 530, &["5.7.0 Authentication required"]).await
                }
                "MAIL" => match angle(&line, "MAIL FROM:") {
                    Some(address) => {
                        from = Some(address);
                        to.clear();
                        self.reply(&mut io, 250, &["2.1.0 Ok"]).await;
                    }
                    None => self.reply(&mut io, 501, &["5.5.4 Syntax: MAIL FROM:<address>"]).await,
                },
                "RCPT" if from.is_none() => self.reply(&mut io, 503, &["5.5.1 MAIL first"]).await,
                "RCPT" => match angle(&line, "RCPT TO:") {
                    Some(address)
                        if refusal != Some(Refusal::Recipient)
                            && [DESK, DESK2].contains(&address.as_str()) =>
                    {
                        to.push(address);
                        self.reply(&mut io, 250, &["2.1.5 Ok"]).await;
                    }
                    Some(_) => {
                        self.reply(
                            &mut io,
                            550,
                            &["5.1.1 Recipient address rejected: User unknown"],
                        )
                        .await
                    }
                    None => self.reply(&mut io, 501, &["5.5.4 Syntax: RCPT TO:<address>"]).await,
                },
                "DATA" if to.is_empty() => {
                    self.reply(&mut io, 554, &["5.5.1 No valid recipients"]).await
                }
                "DATA" => {
                    self.reply(&mut io, 354, &["End data with <CR><LF>.<CR><LF>"]).await;
                    let data = self.data(&mut io).await?;
                    if refusal == Some(Refusal::Data) {
                        self.reply(&mut io, 451, &["4.3.0 Try again later"]).await;
                    } else {
                        let mail = Received {
                            from: from.take().unwrap_or_default(),
                            to: to.clone(),
                            data,
                        };
                        lock(&self.accepted).push(mail);
                        self.reply(&mut io, 250, &["2.0.0 Ok: queued"]).await;
                    }
                    from = None;
                    to.clear();
                }
                "RSET" => {
                    from = None;
                    to.clear();
                    self.reply(&mut io, 250, &["2.0.0 Ok"]).await;
                }
                "NOOP" => self.reply(&mut io, 250, &["2.0.0 Ok"]).await,
                "QUIT" => {
                    self.reply(&mut io, 221, &["2.0.0 Bye"]).await;
                    return None;
                }
                _ => self.reply(&mut io, 502, &["5.5.2 Command not recognized"]).await,
            }
        }
    }

    /// One command line without its CRLF; `None` at the end of the stream or a broken line.
    async fn line(&self, read: &mut (impl AsyncRead + Unpin + AsyncBufReadExt)) -> Option<String> {
        let mut bytes = Vec::new();
        let n = read.take(MAX_LINE).read_until(b'\n', &mut bytes).await.ok()?;
        if n == 0 {
            return None;
        }
        let Some(line) = bytes.strip_suffix(b"\r\n") else {
            lock(&self.violations)
                .push(format!("a line without CRLF: {:?}", String::from_utf8_lossy(&bytes)));
            return None;
        };
        match String::from_utf8(line.to_vec()) {
            Ok(line) if line.is_ascii() => Some(line),
            _ => {
                lock(&self.violations).push("a command that is not ASCII".into());
                None
            }
        }
    }

    /// The message after DATA, dot-unstuffed, up to the lone dot; each line 7-bit and CRLF-ended.
    async fn data(&self, read: &mut (impl AsyncRead + Unpin + AsyncBufReadExt)) -> Option<Vec<u8>> {
        let mut data = Vec::new();
        for _ in 0..100_000 {
            let line = self.line(read).await?;
            if line == "." {
                return Some(data);
            }
            let line = line.strip_prefix('.').unwrap_or(&line);
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        lock(&self.violations).push("a message without its end".into());
        None
    }
}

/// `<address>` after `prefix` (case-insensitive), parameters after it ignored.
fn angle(line: &str, prefix: &str) -> Option<String> {
    let head = line.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = line[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// Standard base64 (with padding), as SMTP AUTH sends it.
fn base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::new();
    let (mut bits, mut n) = (0u32, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

/// The settings: the mail destination on the test's server, retries after 0.2 s doubling to 1 s.
fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    write_config_with(dir, &format!("smtp://127.0.0.1:{port}?tls=none"), None)
}

/// The settings with this `smtp_url` and, if given, a `ca_file`.
fn write_config_with(dir: &Path, smtp_url: &str, ca_file: Option<&Path>) -> std::path::PathBuf {
    let ca_file = match ca_file {
        Some(path) => format!("ca_file = \"{}\"\n", path.display()),
        None => String::new(),
    };
    let toml = format!(
        "[prefecture]\nname = \"福島県\"\n[desk]\nname = \"地域医療課\"\n\
         [handoff]\nretry_first_seconds = 0.2\nretry_max_seconds = 1.0\nlease_seconds = 2\n\
         [[handoff.destinations]]\nkind = \"mail\"\nto = [\"{DESK}\", \"窓口 <{DESK2}>\"]\n\
         from = \"{FROM}\"\nsmtp_url = \"{smtp_url}\"\n\
         user = \"{USER}\"\npassword_env = \"DESK_SMTP_PASSWORD\"\n{ca_file}"
    );
    let path = dir.join("flowbot.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

// ---- The tests -------------------------------------------------------------------------------

/// A request from `flowbot chat --user` reaches the desk's mailbox after the server refused
/// three attempts (at the greeting, the recipient, the data), with the subject and the body in
/// Japanese decoded by a MIME parser; the password is in no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_mailed_after_the_server_refused_three_attempts() {
    let (smtp, port) =
        Smtp::start(vec![Refusal::Greeting, Refusal::Recipient, Refusal::Data]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), port);
    let db = TestDb::sqlite();
    let mut chat =
        ChatChild::start(&config, "user-mail-1", &db.url(), &[("DESK_SMTP_PASSWORD", PASSWORD)]);
    chat.write_lines(&ADDRESS_CHANGE);
    let mail = smtp.wait(WAIT).await;
    let (out, err) = chat.finish(WAIT).await;

    assert!(lock(&smtp.violations).is_empty(), "{:?}", lock(&smtp.violations));
    let codes = lock(&smtp.codes).clone();
    for refused in [421, 550, 451, 235] {
        assert!(codes.contains(&refused), "no {refused} in {codes:?}");
    }
    assert_eq!(lock(&smtp.accepted).len(), 1, "one mail: {codes:?}");
    assert_eq!(mail.from, FROM);
    assert_eq!(mail.to, [DESK, DESK2]);

    let reference = crate::handoff::reference_in(&out);
    let parsed = mailparse::parse_mail(&mail.data).expect("a MIME message");
    let header =
        |name: &str| parsed.headers.iter().find(|h| h.get_key().eq_ignore_ascii_case(name));
    let subject = header("Subject").expect("a subject").get_value();
    assert_eq!(subject, format!("【メールアドレスの変更依頼】受付番号 {reference}"));
    assert!(header("From").unwrap().get_value().contains(FROM));
    let to = header("To").unwrap().get_value();
    assert!(to.contains(DESK) && to.contains(DESK2) && to.contains("窓口"), "{to}");
    assert!(header("Date").is_some());
    let id = header("Message-ID").expect("a Message-ID").get_value();
    assert_eq!(id, format!("<flowbot.{reference}@pref.example.jp>"));
    assert_eq!(parsed.ctype.mimetype, "text/plain");
    assert_eq!(parsed.ctype.charset.to_ascii_lowercase(), "utf-8");
    let body = parsed.get_body().expect("a decoded body");
    for line in [
        "【メールアドレスの変更依頼】",
        &format!("受付番号：{reference}"),
        "報告機関名：福島中央病院",
        "機関コード：0700123",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
        "該当した対応方法：対応方法3（メールが「送信完了」となっている場合）",
    ] {
        assert!(body.contains(line), "no {line} in the body:\n{body}");
    }
    // What the desk reads is what the user was shown.
    let first_line = body.lines().next().unwrap_or_default();
    assert!(out.contains(first_line), "{out}");
    for text in [&out, &err] {
        assert!(!text.contains(PASSWORD), "the password reached the output:\n{text}");
    }
}

/// With the password's variable unset, or a plain-text server off this machine, `flowbot`
/// refuses to start and names the problem, never the password.
#[test]
fn bad_mail_settings_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2525);
    let check = |config: &Path, env: &[(&str, &str)]| {
        let out = flowbot()
            .arg("--config")
            .arg(config)
            .args(["check", "flows/gmis-mail-trouble.yaml"])
            .envs(env.iter().copied())
            .env_remove("DESK_SMTP_PASSWORD")
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = check(&config, &[]);
    assert!(!ok && err.contains("DESK_SMTP_PASSWORD"), "{err}");
    let (ok, err) = check(
        &config,
        &[
            ("FLOWBOT_HANDOFF_MAIL_TO", DESK),
            ("FLOWBOT_HANDOFF_MAIL_FROM", FROM),
            ("FLOWBOT_SMTP_URL", "smtp://mail.example.org:25?tls=none"),
            ("FLOWBOT_SMTP_USER", USER),
            ("FLOWBOT_SMTP_PASSWORD", PASSWORD),
        ],
    );
    assert!(
        !ok && err.contains("FLOWBOT_HANDOFF_MAIL_TO")
            && err.contains("only for a relay on this machine"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
}

// ---- TLS: a test CA made when the test runs --------------------------------------------------

/// A CA made for one test, and a certificate for `localhost` and 127.0.0.1 it signed.
struct TestCa {
    /// The CA certificate, PEM (what `ca_file` names).
    pem: String,
    /// The server's TLS settings: its certificate and key.
    acceptor: TlsAcceptor,
}

impl TestCa {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "flowbot test CA");
        ca_params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        TestCa { pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
    }

    /// Writes the CA certificate into `dir`; its path.
    fn write(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

/// Runs `flowbot chat --user` to a submitted request with this mail destination.
fn submit(dir: &Path, smtp_url: &str, ca: &TestCa, db: &TestDb) -> ChatChild {
    let config = write_config_with(dir, smtp_url, Some(&ca.write(dir)));
    let mut chat =
        ChatChild::start(&config, "user-mail-1", &db.url(), &[("DESK_SMTP_PASSWORD", PASSWORD)]);
    chat.write_lines(&ADDRESS_CHANGE);
    chat
}

/// The mail's subject, decoded, and that the body holds the reference.
fn check_mail(mail: &Received, out: &str) {
    let reference = crate::handoff::reference_in(out);
    let parsed = mailparse::parse_mail(&mail.data).expect("a MIME message");
    let subject = parsed.headers.iter().find(|h| h.get_key().eq_ignore_ascii_case("Subject"));
    assert_eq!(
        subject.expect("a subject").get_value(),
        format!("【メールアドレスの変更依頼】受付番号 {reference}")
    );
    let body = parsed.get_body().expect("a decoded body");
    assert!(body.contains(&format!("受付番号：{reference}")), "{body}");
    assert_eq!(mail.to, [DESK, DESK2]);
}

/// `smtps://` (TLS from the first byte, port 465 in production) to a server whose certificate
/// the `ca_file` CA signed: the mail arrives, every command over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_mailed_over_implicit_tls_to_a_private_ca_server() {
    let ca = TestCa::new();
    let (smtp, port) = Smtp::start_with(Vec::new(), Mode::Implicit(ca.acceptor.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let mut chat = submit(dir.path(), &format!("smtps://127.0.0.1:{port}"), &ca, &db);
    let mail = smtp.wait(WAIT).await;
    let (out, err) = chat.finish(WAIT).await;

    assert!(lock(&smtp.violations).is_empty(), "{:?}", lock(&smtp.violations));
    check_mail(&mail, &out);
    let verbs = lock(&smtp.verbs).clone();
    assert!(verbs.iter().all(|v| v.ends_with("/tls")), "{verbs:?}");
    assert!(verbs.contains(&"AUTH/tls".to_owned()), "{verbs:?}");
    assert_eq!(*lock(&smtp.failed_handshakes), 0);
    for text in [&out, &err] {
        assert!(!text.contains(PASSWORD), "the password reached the output:\n{text}");
    }
}

/// `smtp://` (port 587 in production): STARTTLS first, then AUTH and the mail over TLS only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_mailed_after_starttls() {
    let ca = TestCa::new();
    let (smtp, port) = Smtp::start_with(Vec::new(), Mode::StartTls(ca.acceptor.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let mut chat = submit(dir.path(), &format!("smtp://127.0.0.1:{port}"), &ca, &db);
    let mail = smtp.wait(WAIT).await;
    let (out, _) = chat.finish(WAIT).await;

    assert!(lock(&smtp.violations).is_empty(), "{:?}", lock(&smtp.violations));
    check_mail(&mail, &out);
    let verbs = lock(&smtp.verbs).clone();
    let plain: Vec<&String> = verbs.iter().filter(|v| !v.ends_with("/tls")).collect();
    assert_eq!(plain, ["EHLO", "STARTTLS"], "only these before TLS: {verbs:?}");
    for verb in ["EHLO/tls", "AUTH/tls", "MAIL/tls", "DATA/tls"] {
        assert!(verbs.contains(&verb.to_owned()), "no {verb} in {verbs:?}");
    }
}

/// `smtp://` to a server that does not offer STARTTLS: nothing is sent in clear (no AUTH, no
/// MAIL FROM), and the delivery is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_starttls_gets_no_mail_in_clear_and_is_retried() {
    let ca = TestCa::new();
    let (smtp, port) = Smtp::start_with(Vec::new(), Mode::Plain).await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let chat = submit(dir.path(), &format!("smtp://127.0.0.1:{port}"), &ca, &db);
    smtp.until("retried", |s| *lock(&s.connections) >= 3).await;
    // The attempt under way when the third connection came is given time to misbehave.
    smtp.until("three greetings answered", |s| {
        lock(&s.verbs).iter().filter(|v| v.starts_with("EHLO")).count() >= 3
    })
    .await;
    drop(chat);

    let verbs = lock(&smtp.verbs).clone();
    assert!(verbs.iter().all(|v| v == "EHLO" || v == "QUIT"), "sent in clear: {verbs:?}");
    assert!(lock(&smtp.accepted).is_empty());
    assert!(lock(&smtp.violations).is_empty(), "{:?}", lock(&smtp.violations));
}

/// A server whose certificate another CA signed is refused at the handshake, and retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_configured_ca_did_not_sign_is_refused() {
    let (trusted, other) = (TestCa::new(), TestCa::new());
    let (smtp, port) = Smtp::start_with(Vec::new(), Mode::Implicit(other.acceptor.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let chat = submit(dir.path(), &format!("smtps://127.0.0.1:{port}"), &trusted, &db);
    smtp.until("refused twice", |s| *lock(&s.failed_handshakes) >= 2).await;
    drop(chat);

    assert!(lock(&smtp.verbs).is_empty(), "{:?}", lock(&smtp.verbs));
    assert!(lock(&smtp.accepted).is_empty());
}
