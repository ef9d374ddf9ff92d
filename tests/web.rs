//! The web chat end to end: the real `flowbot run --web` on 127.0.0.1, its page and JSON API
//! over HTTP, and the page itself in a headless Chromium driven through chromedriver's W3C
//! WebDriver API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowbot_core::{Flow, NodeIx, NodeKind};
use flowbot_tests::{BotProcess, HttpResponse, gmis, http_exchange};
use serde_json::{Value, json};

/// The bound of one HTTP exchange with the bot.
const LIMIT: Duration = Duration::from_secs(20);
/// The bound of one wait for the page to show something.
const WAIT: Duration = Duration::from_secs(30);
/// How often the page is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

const COOKIE: &str = "flowbot_session";

/// `flowbot run` serving the web chat alone, on a SQLite file in `dir`, with limits no
/// functional test reaches.
fn web_bot(dir: &tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> BotProcess {
    let settings = "[web]\nrequests_per_minute = 1000000\nnew_conversations_per_minute = 1000000\n";
    web_bot_with(dir, settings, args, env)
}

/// `flowbot run` serving the web chat alone, with `settings` as its settings file.
fn web_bot_with(
    dir: &tempfile::TempDir,
    settings: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> BotProcess {
    let config = dir.path().join("flowbot.toml");
    std::fs::write(&config, settings).expect("write the settings file");
    let config = config.display().to_string();
    let mut all = vec!["--config", config.as_str()];
    all.extend_from_slice(args);
    BotProcess::start_web(&dir.path().join("flowbot.sqlite"), &all, env)
}

/// The session id a `Set-Cookie` header sets.
fn session_of(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap_or_default().trim();
    let (name, value) = pair.split_once('=').unwrap_or_else(|| panic!("a cookie: {set_cookie}"));
    assert_eq!(name, COOKIE, "{set_cookie}");
    value.to_owned()
}

/// A session cookie's value as the server issues it: `ID.MAC`, 32 lower-case hex digits each.
fn is_issued_shape(value: &str) -> bool {
    let hex = |s: &str| {
        s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    value.split_once('.').is_some_and(|(id, mac)| hex(id) && hex(mac))
}

/// One browser as the API sees it: a cookie jar holding the session cookie, and request ids.
struct Client {
    address: String,
    cookie: Option<String>,
    ids: u32,
    name: &'static str,
}

impl Client {
    fn new(bot: &BotProcess, name: &'static str) -> Self {
        Client { address: bot.address.clone(), cookie: None, ids: 0, name }
    }

    /// A request with the jar's cookie; a cookie set in the answer replaces it.
    async fn request(
        &mut self,
        method: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let cookie = self.cookie.as_ref().map(|c| format!("{COOKIE}={c}"));
        let mut all = headers.to_vec();
        if let Some(cookie) = &cookie {
            all.push(("Cookie", cookie));
        }
        let response = http_exchange(&self.address, method, "/chat/api", &all, body, LIMIT).await;
        if let Some(set) = response.header("set-cookie") {
            self.cookie = Some(session_of(set));
        }
        response
    }

    /// `GET /chat/api`: the title and the current prompt, if any.
    async fn get(&mut self) -> Value {
        let response = self.request("GET", &[], b"").await;
        assert_eq!(response.status, 200, "{}: {}", self.name, response.text());
        response.json()
    }

    /// A POST of raw bytes, with or without the page's `x-flowbot` header.
    async fn post_raw(&mut self, body: &[u8], csrf: bool) -> HttpResponse {
        let mut headers = vec![("Content-Type", "application/json")];
        if csrf {
            headers.push(("x-flowbot", "1"));
        }
        self.request("POST", &headers, body).await
    }

    fn next_id(&mut self) -> String {
        self.ids += 1;
        format!("{}-{}", self.name, self.ids)
    }

    /// One input under the request id `id`; it must be answered with 200.
    async fn post_with_id(&mut self, id: &str, input: Value) -> Value {
        let mut body = input;
        body["id"] = json!(id);
        let response = self.post_raw(body.to_string().as_bytes(), true).await;
        assert_eq!(response.status, 200, "{}: {body} → {}", self.name, response.text());
        response.json()
    }

    /// One input under a new request id.
    async fn post(&mut self, input: Value) -> Value {
        let id = self.next_id();
        self.post_with_id(&id, input).await
    }

    async fn start(&mut self, entry: Option<&str>) -> Value {
        self.post(json!({ "start": entry })).await
    }

    /// Presses the button labelled `label` of the last prompt in `answer`.
    async fn press(&mut self, answer: &Value, label: &str) -> Value {
        let token = token(prompt(answer), label);
        self.post(json!({ "press": token })).await
    }

    async fn say(&mut self, text: &str) -> Value {
        self.post(json!({ "text": text })).await
    }
}

/// The replies of an answer.
fn replies(answer: &Value) -> &Vec<Value> {
    answer["replies"].as_array().unwrap_or_else(|| panic!("replies: {answer}"))
}

/// A reload's history with its texts joined: `{node, text, note, answer}` per question.
fn history(shown: &Value) -> Vec<Value> {
    shown["history"]
        .as_array()
        .unwrap_or_else(|| panic!("history: {shown}"))
        .iter()
        .map(|h| {
            let note = h["note"].as_array().map(|_| joined(&h["note"]));
            json!({"node": h["node"], "text": joined(&h["text"]), "note": note, "answer": h["answer"]})
        })
        .collect()
}

/// The last prompt of an answer (every answer that changes nothing still ends with one).
fn prompt(answer: &Value) -> &Value {
    replies(answer)
        .iter()
        .rev()
        .find(|r| r["kind"] == "prompt")
        .unwrap_or_else(|| panic!("no prompt in {answer}"))
}

/// The kinds of an answer's replies, notices with their names: `["notice:stale", "prompt"]`.
fn kinds(answer: &Value) -> Vec<String> {
    replies(answer)
        .iter()
        .map(|r| match r["kind"].as_str() {
            Some("notice") => format!("notice:{}", r["notice"].as_str().unwrap_or("?")),
            Some(kind) => kind.to_owned(),
            None => panic!("a reply without a kind: {r}"),
        })
        .collect()
}

/// A text's segments joined back into the text.
fn joined(text: &Value) -> String {
    text.as_array()
        .unwrap_or_else(|| panic!("segments: {text}"))
        .iter()
        .map(|s| s["v"].as_str().unwrap_or_else(|| panic!("a segment: {s}")))
        .collect()
}

/// The segments of kind `t` (`url`, `email`) of a text.
fn links(text: &Value, t: &str) -> Vec<String> {
    text.as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["t"] == t)
        .map(|s| s["v"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The labels of a prompt's buttons: its own (`nav == false`), and back/restart.
fn labels(prompt: &Value, nav: bool) -> Vec<String> {
    prompt["buttons"]
        .as_array()
        .unwrap_or_else(|| panic!("buttons: {prompt}"))
        .iter()
        .filter(|b| b["nav"] == nav)
        .map(|b| b["label"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn token(prompt: &Value, label: &str) -> String {
    prompt["buttons"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["label"] == label)
        .and_then(|b| b["token"].as_str())
        .unwrap_or_else(|| panic!("no button {label} in {prompt}"))
        .to_owned()
}

fn node<'f>(flow: &'f Flow, id: &str) -> (NodeIx, &'f flowbot_core::Node) {
    let ix = flow.find(id).unwrap_or_else(|| panic!("no node {id}"));
    (ix, flow.node(ix))
}

/// Checks that `answer` shows arriving at `target`: the texts of the messages on the way, then
/// the prompt of the node it stops at, with the flow's exact texts and labels. Returns the id
/// of that node.
fn arrives(flow: &Flow, answer: &Value, target: NodeIx) -> String {
    let mut expected_says = Vec::new();
    let mut at = target;
    while let NodeKind::Message { text, next } = flow.node(at).kind() {
        expected_says.push(text.clone());
        at = *next;
    }
    let node = flow.node(at);
    let shown: Vec<&Value> = replies(answer)
        .iter()
        .filter(|r| r["kind"] != "notice" && r["kind"] != "handoff")
        .collect();
    let says: Vec<String> =
        shown.iter().filter(|r| r["kind"] == "say").map(|r| joined(&r["text"])).collect();
    assert_eq!(says, expected_says, "the messages on the way to {}", node.id());
    let last = shown.last().unwrap_or_else(|| panic!("nothing shown: {answer}"));
    assert_eq!(last["kind"], "prompt", "{answer}");
    assert_eq!(last["node"], node.id(), "{answer}");
    assert_eq!(joined(&last["text"]), node.text(), "the text of {}", node.id());
    assert_eq!(last["ending"], node.is_ending(), "{last}");
    match node.kind() {
        NodeKind::Question(q) => {
            let expected: Vec<&str> = q.choices().iter().map(|c| c.label()).collect();
            assert_eq!(labels(last, false), expected, "the labels of {}", node.id());
            let note = q.note().map(str::to_owned);
            assert_eq!(last["note"].as_array().map(|_| joined(&last["note"])), note);
        }
        _ => assert!(labels(last, false).is_empty(), "{last}"),
    }
    assert!(last["input"].is_null(), "no text box outside a form: {last}");
    // Every address in a text is a link segment, never plain text.
    for reply in replies(answer) {
        for segment in reply["text"].as_array().into_iter().flatten() {
            let v = segment["v"].as_str().unwrap_or_default();
            if segment["t"] == "text" {
                assert!(!v.contains("https://") && !v.contains("@g-mis"), "a link as text: {v}");
            }
        }
    }
    node.id().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_its_cookie_and_every_path_of_presses() {
    let flow = gmis();
    let texts = flow.texts();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    let secure_dir = tempfile::tempdir().unwrap();
    // FLOWBOT_WEB turns it on as well as --web; an https public address marks the cookie.
    let secure_bot =
        web_bot(&secure_dir, &["--web-url", "https://bot.example.jp"], &[("FLOWBOT_WEB", "true")]);

    // The page, its script and its style.
    let page = http_exchange(&bot.address, "GET", "/chat", &[], b"", LIMIT).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let csp = page.header("content-security-policy").expect("a Content-Security-Policy");
    for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = page.text();
    // The flow's title, for a crawler and a tab before the script runs.
    assert!(html.contains(&format!("<title>{}</title>", flow.title())), "{html}");
    assert!(html.contains(&format!(r#"<h1 id="title">{}</h1>"#, flow.title())), "{html}");
    assert!(html.contains(r#"<script src="/chat/app.js" defer></script>"#), "{html}");
    assert!(html.contains(r#"href="/chat/app.css""#), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");
    for (path, kind, needle) in [
        ("/chat/app.js", "text/javascript; charset=utf-8", "x-flowbot"),
        ("/chat/app.css", "text/css; charset=utf-8", ".bubble"),
    ] {
        let asset = http_exchange(&bot.address, "GET", path, &[], b"", LIMIT).await;
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("content-type"), Some(kind), "{path}");
        assert_eq!(asset.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert!(asset.text().contains(needle), "{path}");
    }
    let missing = http_exchange(&bot.address, "GET", "/chat/nothing", &[], b"", LIMIT).await;
    assert_eq!(missing.status, 404);

    // The first GET of the API sets the session cookie: HttpOnly, SameSite=Strict, for /chat
    // only, and not Secure on plain http.
    let first = http_exchange(&bot.address, "GET", "/chat/api", &[], b"", LIMIT).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let set = first.header("set-cookie").expect("a session cookie").to_owned();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/chat"] {
        assert!(attributes.contains(&attribute), "{set}");
    }
    assert!(!attributes.iter().any(|a| a.eq_ignore_ascii_case("secure")), "{set}");
    let id = session_of(&set);
    assert!(is_issued_shape(&id), "{id}");
    // No conversation yet: a preview of the start (greeting and first question), stored nowhere.
    let shown = first.json();
    assert_eq!(shown["title"], flow.title());
    assert_eq!(shown["preview"], true, "{shown}");
    assert_eq!(shown["history"], json!([]), "{shown}");
    assert_eq!(kinds(&shown), ["say", "prompt"], "{shown}");
    assert_eq!(arrives(&flow, &shown, flow.start()), "q1");
    let other = http_exchange(&bot.address, "GET", "/chat/api", &[], b"", LIMIT).await;
    assert_ne!(session_of(other.header("set-cookie").expect("a cookie")), id, "random sessions");

    let secure = http_exchange(&secure_bot.address, "GET", "/chat/api", &[], b"", LIMIT).await;
    let set = secure.header("set-cookie").expect("a session cookie");
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/chat"] {
        assert!(attributes.contains(&attribute), "{set}");
    }
    let page = http_exchange(&secure_bot.address, "GET", "/chat", &[], b"", LIMIT).await;
    assert_eq!(page.status, 200);

    // Every path of presses, from the start to its ending, with the flow's exact texts.
    let mut client = Client::new(&bot, "paths");
    let paths = flow.paths();
    assert!(paths.len() >= 10, "{}", paths.len());
    let (_, q1) = node(&flow, "q1");
    for path in &paths {
        let mut answer = client.start(None).await;
        assert_eq!(answer["changed"], true);
        assert_eq!(kinds(&answer), ["say", "prompt"], "{answer}");
        let mut at = arrives(&flow, &answer, flow.start());
        assert_eq!(at, "q1");
        assert_eq!(labels(prompt(&answer), true), Vec::<String>::new(), "no back at q1");
        let mut asked = Vec::new();
        for &choice in path {
            let (_, here) = node(&flow, &at);
            let NodeKind::Question(q) = here.kind() else { panic!("{at} is no question") };
            let picked = &q.choices()[usize::from(choice)];
            asked.push(json!({
                "node": at,
                "text": q.text(),
                "note": q.note(),
                "answer": picked.label(),
            }));
            answer = client.press(&answer, picked.label()).await;
            assert_eq!(answer["changed"], true, "{answer}");
            at = arrives(&flow, &answer, picked.next());
            assert_eq!(
                labels(prompt(&answer), true),
                [texts.back.as_str(), texts.restart.as_str()],
                "back and restart after the first question"
            );
        }
        assert_eq!(prompt(&answer)["ending"], true, "{path:?} ends at {at}: {answer}");
        // A reload shows the ending again, after every question answered on the way.
        let reload = client.get().await;
        assert_eq!(reload["title"], flow.title());
        assert_eq!(reload["preview"], false);
        assert_eq!(replies(&reload).as_slice(), [prompt(&answer).clone()]);
        assert_eq!(history(&reload), asked, "{reload}");
    }

    // The exact wording, against the flow file itself (not only the compiled flow).
    let source =
        std::fs::read_to_string(flowbot_tests::root().join("flows/gmis-mail-trouble.yaml"))
            .expect("the flow file");
    let answer = client.start(None).await;
    let greeting = joined(&replies(&answer)[0]["text"]);
    assert!(greeting.starts_with("アカウント発行通知に係るトラブル対処方法について\n\n"));
    assert_eq!(links(&replies(&answer)[0]["text"], "email"), ["info@g-mis.net"]);
    let q = prompt(&answer);
    assert_eq!(joined(&q["text"]), "「事前確認メール（★）」は届いていますか？");
    assert_eq!(
        labels(q, false),
        ["届いていない", "届いている", "担当者が退職等で不在であり、不明"]
    );
    for label in labels(q, false) {
        assert!(source.contains(&format!("label: {label}\n")), "{label} is in the flow file");
    }
    assert_eq!(q1.text(), "「事前確認メール（★）」は届いていますか？");
    let answer = client.press(&answer, "届いていない").await;
    assert_eq!(joined(&prompt(&answer)["text"]), "メールボックスの空き容量は不足していませんか？");
    let answer = client.press(&answer, "空き容量は十分にある").await;
    let answer = client.press(&answer, "迷惑メールフォルダにもメールがない").await;
    let q5 = prompt(&answer);
    assert_eq!(joined(&q5["text"]), "同じ病院等内でG-MISを既に利用している部署がありますか");
    assert_eq!(joined(&q5["note"]), "※歯科診療所、助産所は全て「ない」に該当します");
    assert_eq!(labels(q5, false), ["ある", "ない"]);
    let answer = client.press(&answer, "ない").await;
    assert_eq!(prompt(&answer)["node"], "m5");
    assert_eq!(
        links(&prompt(&answer)["text"], "url"),
        ["https://www.g-mis.mhlw.go.jp/user-Registration-Form"]
    );
    let answer = client.press(&answer, "「不達」だった").await;
    let ending = prompt(&answer);
    assert_eq!(
        (ending["node"].as_str(), ending["ending"].as_bool()),
        (Some("m5_reapply"), Some(true))
    );
    assert!(joined(&ending["text"]).starts_with("対応方法5（「新規ユーザ登録申請」の再実施）\n\n"));
    assert_eq!(
        links(&ending["text"], "url"),
        ["https://www.g-mis.mhlw.go.jp/user-Registration-Form"]
    );
    assert_eq!(labels(ending, false), Vec::<String>::new());

    // An entry starts there (no greeting); q7's "can't access" leads to 対応方法4 and its link.
    let answer = client.start(Some("q7")).await;
    assert_eq!(kinds(&answer), ["prompt"]);
    assert_eq!(joined(&prompt(&answer)["text"]), "メールに記載のURLにアクセスできましたか？");
    let answer = client.press(&answer, "アクセスできない").await;
    assert_eq!(prompt(&answer)["node"], "m4");
    assert_eq!(links(&prompt(&answer)["text"], "url"), ["https://www.g-mis.mhlw.go.jp/"]);
    assert!(!bot.log().contains(&id), "no session id in the log");
}

/// taiou3 → 「送信完了」だった → 変更依頼を入力する: the form's first field.
async fn to_the_form(client: &mut Client) -> Value {
    let answer = client.start(Some("taiou3")).await;
    assert_eq!(prompt(&answer)["node"], "m3_absent");
    let answer = client.press(&answer, "「送信完了」だった").await;
    assert_eq!(prompt(&answer)["node"], "m3_change");
    client.press(&answer, "変更依頼を入力する").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_change_form_over_the_web() {
    let flow = gmis();
    let texts = flow.texts();
    let form = &flow.forms()[0];
    let fields = form.fields();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    let mut client = Client::new(&bot, "form");

    let answer = to_the_form(&mut client).await;
    assert_eq!(kinds(&answer), ["prompt"]);
    let field = prompt(&answer);
    assert_eq!(field["node"], "m3_change_form");
    assert_eq!(joined(&field["text"]), "報告機関名を入力してください。");
    assert_eq!(joined(&field["text"]), fields[0].ask());
    assert_eq!(field["input"], json!({"label": "報告機関名"}), "the text box is the answer box");
    assert_eq!(labels(field, false), Vec::<String>::new());
    assert_eq!(labels(field, true), [texts.back.as_str(), texts.restart.as_str()]);
    assert_eq!(field["ending"], false);

    // A full-width, padded name is normalised.
    let answer = client.say("　福島　中央病院　").await;
    assert_eq!(kinds(&answer), ["prompt"]);
    let field = prompt(&answer);
    assert_eq!(joined(&field["text"]), fields[1].ask());
    assert_eq!(field["input"], json!({"label": "機関コード"}));
    assert_eq!(labels(field, false), ["分からない"]);

    // 分からない is a button.
    let answer = client.press(&answer, "分からない").await;
    let field = prompt(&answer);
    assert_eq!(
        joined(&field["text"]),
        "変更前メールアドレス（申請時のメールアドレス）を入力してください。"
    );
    assert_eq!(field["input"], json!({"label": "変更前メールアドレス"}));
    let asked = field.clone();

    // An invalid address is asked again, with the reason; the field's buttons still work.
    let answer = client.say("old@example").await;
    assert_eq!(kinds(&answer), ["notice:invalid", "prompt"]);
    assert_eq!(
        joined(&replies(&answer)[0]["text"]),
        "メールアドレスの形式になっていません（例：taro@example.jp）。もう一度入力してください。"
    );
    assert_eq!(joined(&prompt(&answer)["text"]), joined(&asked["text"]));
    assert_eq!(prompt(&answer)["input"], asked["input"]);

    // A full-width address.
    let answer = client.say("ｏｌｄ．ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｊｐ").await;
    let field = prompt(&answer);
    assert_eq!(joined(&field["text"]), fields[3].ask());
    assert_eq!(field["input"], json!({"label": "変更後メールアドレス"}));
    let answer = client.say("new-user@hospital.example.jp").await;

    // The confirmation lists the normalised answers.
    let confirm = prompt(&answer);
    assert_eq!(confirm["node"], "m3_change_form");
    assert!(confirm["input"].is_null(), "no text box at the confirmation: {confirm}");
    let text = joined(&confirm["text"]);
    for line in [
        "以下の内容でよろしいですか？",
        "報告機関名：福島 中央病院",
        "機関コード：分からない",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert_eq!(labels(confirm, false), ["確定する", "修正する"]);
    let submit = token(confirm, "確定する");

    // Submitted: the hand-off with its reference and the answers, then the ending.
    let answer = client.press(&answer, "確定する").await;
    assert_eq!(kinds(&answer), ["handoff", "prompt"], "{answer}");
    let handoff = &replies(&answer)[0]["text"];
    let message = joined(handoff);
    assert!(message.starts_with(form.texts().handoff_copy.trim_end()), "{message}");
    let reference = message
        .lines()
        .find_map(|l| l.strip_prefix("受付番号："))
        .unwrap_or_else(|| panic!("a reference: {message}"));
    assert!(
        reference.len() == 11
            && reference.chars().enumerate().all(|(i, c)| if i == 5 {
                c == '-'
            } else {
                c.is_ascii_digit() || c.is_ascii_uppercase()
            }),
        "{reference}"
    );
    for line in [
        "【メールアドレスの変更依頼】",
        "報告機関名：福島 中央病院",
        "機関コード：分からない",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
        "該当した対応方法：対応方法3（メールが「送信完了」となっている場合）",
        "・対応方法3（担当者が退職等で不在のため、メールが確認できない場合）：「送信完了」だった",
        "・対応方法3（メールが「送信完了」となっている場合）：変更依頼を入力する",
    ] {
        assert!(message.lines().any(|l| l == line), "{line} in {message}");
    }
    assert_eq!(
        links(handoff, "email"),
        ["old.user@example.jp", "new-user@hospital.example.jp"],
        "addresses are e-mail segments"
    );
    let (target, _) = node(&flow, "m3_change_sent");
    assert_eq!(arrives(&flow, &answer, target), "m3_change_sent");
    assert_eq!(prompt(&answer)["ending"], true);
    let ending = prompt(&answer).clone();
    assert!(
        links(&ending["text"], "url").contains(&"https://www.med-login.mhlw.go.jp/".to_owned()),
        "{ending}"
    );

    // The submit button again: stale, no second hand-off.
    let again = client.post(json!({ "press": submit })).await;
    assert_eq!(kinds(&again), ["notice:stale", "prompt"]);
    assert_eq!(joined(&replies(&again)[0]["text"]), texts.stale);
    assert_eq!(again["changed"], false);
    assert_eq!(client.get().await["replies"], json!([ending]), "a reload shows the ending");
    // The log names the reference, never the answers.
    let log = bot.log();
    assert!(!log.contains("old.user@example.jp") && !log.contains("福島"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_change_nothing() {
    let flow = gmis();
    let texts = flow.texts();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    let mut a = Client::new(&bot, "a");
    let answer = a.start(None).await;
    let at_q1 = a.get().await;
    assert_eq!(replies(&at_q1).as_slice(), [prompt(&answer).clone()], "a reload shows q1");
    let yes = token(prompt(&answer), "届いている");

    // Refused requests; each would have answered q1 if taken.
    let press = json!({"id": "r-1", "press": yes}).to_string();
    let response = a.post_raw(press.as_bytes(), false).await;
    assert_eq!(response.status, 403, "no x-flowbot header: {}", response.text());
    let response = a
        .request(
            "POST",
            &[("Content-Type", "application/json"), ("x-flowbot", "0")],
            press.as_bytes(),
        )
        .await;
    assert_eq!(response.status, 403, "x-flowbot must be 1");
    let big = json!({"id": "big", "text": "1".repeat(17 * 1024)}).to_string();
    let refused: Vec<(String, u16)> = vec![
        (r#"{"id": "r-2", "text": "1""#.to_owned(), 400),
        ("not json".to_owned(), 400),
        (String::new(), 400),
        (json!({"id": "r-3", "text": "1", "extra": true}).to_string(), 400),
        (json!({"id": "r-4", "text": "1", "press": yes}).to_string(), 400),
        (json!({"id": "r-5", "start": null, "command": "back"}).to_string(), 400),
        (json!({"id": "r-6"}).to_string(), 400),
        (json!({"text": "1"}).to_string(), 400),
        (json!({"id": "", "text": "1"}).to_string(), 400),
        (json!({"id": "a b", "text": "1"}).to_string(), 400),
        (json!({"id": "x".repeat(65), "text": "1"}).to_string(), 400),
        (json!({"id": 7, "text": "1"}).to_string(), 400),
        (json!({"id": "r-7", "text": 1}).to_string(), 400),
        (json!({"id": "r-8", "command": "jump"}).to_string(), 400),
        (big, 413),
    ];
    for (body, status) in &refused {
        let response = a.post_raw(body.as_bytes(), true).await;
        let shown: String = body.chars().take(80).collect();
        assert_eq!(response.status, *status, "{shown} → {}", response.text());
        assert!(response.header("set-cookie").is_none(), "{shown}");
        if *status == 400 {
            assert!(response.json()["error"].is_string(), "{}", response.text());
        }
        assert_eq!(a.get().await, at_q1, "unchanged after {shown}");
    }

    // A request id is applied once: the second time it is a duplicate.
    let answer = a.post_with_id("twice-1", json!({"press": yes})).await;
    assert_eq!(prompt(&answer)["node"], "q2");
    let at_q2 = a.get().await;
    let again = a.post_with_id("twice-1", json!({"press": yes})).await;
    assert_eq!(again["duplicate"], true, "{again}");
    // A retry whose first answer was lost: it shows where the conversation stands (q2).
    assert_eq!(replies(&again), replies(&at_q2), "{again}");
    let again = a.post_with_id("twice-1", json!({"text": "1"})).await;
    assert_eq!(again["duplicate"], true, "the id decides, not the body");
    assert_eq!(a.get().await, at_q2, "applied once");

    // Old, forged and garbage tokens: the stale notice and the current prompt.
    for forged in [
        yes.clone(),
        "1:q2:0".to_owned(),
        "99:q2:0".to_owned(),
        "2:q2:9".to_owned(),
        "zzz".to_owned(),
    ] {
        let answer = a.post(json!({ "press": forged })).await;
        assert_eq!(kinds(&answer), ["notice:stale", "prompt"], "{forged}: {answer}");
        assert_eq!(joined(&replies(&answer)[0]["text"]), texts.stale);
        assert_eq!(answer["changed"], false);
        assert_eq!(replies(&at_q2).as_slice(), [prompt(&answer).clone()], "{forged}");
    }
    assert_eq!(a.get().await, at_q2);

    // A second browser is a second conversation; a request id is per session.
    let mut b = Client::new(&bot, "b");
    let answer = b.start(Some("taiou3")).await;
    assert_eq!(prompt(&answer)["node"], "m3_absent");
    assert_ne!(a.cookie, b.cookie);
    let answer =
        b.post_with_id("twice-1", json!({"press": token(prompt(&answer), "「不達」だった")})).await;
    assert_eq!(prompt(&answer)["node"], "m3_reapply", "another session's request id: {answer}");
    // A's token does nothing in B's conversation.
    let q2_token = token(&replies(&at_q2)[0], "届いている");
    let answer = b.post(json!({ "press": q2_token })).await;
    assert_eq!(kinds(&answer), ["notice:stale", "prompt"]);
    assert_eq!(prompt(&answer)["node"], "m3_reapply");
    assert_eq!(a.get().await, at_q2, "A is where it was");

    // A garbage or forged cookie gets a fresh session (and no one else's conversation).
    let a_session = a.cookie.clone().expect("a session");
    let upper = a_session.to_uppercase();
    for garbage in ["garbage", "../../etc/passwd", upper.as_str(), &a_session[..31]] {
        if garbage == a_session {
            continue; // no letter to raise
        }
        let mut c = Client::new(&bot, "c");
        c.cookie = Some(garbage.to_owned());
        let now = c.get().await;
        assert_eq!(now["preview"], true, "{garbage}: {now}");
        let fresh = c.cookie.clone().expect("a new cookie");
        assert!(fresh != garbage && fresh != a_session, "{garbage}");
    }
    // The session cookie beside other cookies.
    let with_others = format!("theme=dark; {COOKIE}=; {COOKIE}={a_session}; x=y");
    let response =
        http_exchange(&bot.address, "GET", "/chat/api", &[("Cookie", &with_others)], b"", LIMIT)
            .await;
    assert!(response.header("set-cookie").is_none(), "{with_others}");
    assert_eq!(response.json(), at_q2);

    // Commands; an unknown entry starts at the beginning with a notice.
    let answer = a.post(json!({"command": "back"})).await;
    assert_eq!(prompt(&answer)["node"], "q1");
    let answer = a.post(json!({"command": "help"})).await;
    assert_eq!(kinds(&answer), ["notice:help", "notice:contact", "prompt"]);
    let answer = a.start(Some("nosuch")).await;
    assert_eq!(kinds(&answer), ["notice:unknown_entry", "say", "prompt"]);
    assert_eq!(joined(&replies(&answer)[0]["text"]), texts.unknown_entry);
    assert_eq!(arrives(&flow, &answer, flow.start()), "q1");
    let answer = a.start(Some("")).await;
    assert_eq!(kinds(&answer), ["say", "prompt"], "an empty entry is no entry");
    let answer = a.post(json!({"command": "restart"})).await;
    assert_eq!(prompt(&answer)["node"], "q1");
    // A reload returns the current prompt as the last answer showed it.
    assert_eq!(a.get().await["replies"], json!([prompt(&answer)]));
}

/// How many conversations the bot in `dir` has stored (read beside the running bot).
async fn stored_conversations(dir: &tempfile::TempDir) -> i64 {
    count(dir, "SELECT COUNT(*) FROM conversations").await
}

/// The number a counting query answers on the bot's SQLite file in `dir`.
async fn count(dir: &tempfile::TempDir, sql: &str) -> i64 {
    use sqlx::{ConnectOptions, Row};
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("flowbot.sqlite"))
        .read_only(true);
    let mut conn = options.connect().await.expect("open the bot's database");
    let row = sqlx::query(sql).fetch_one(&mut conn).await.expect("count");
    row.try_get::<i64, _>(0).expect("a count")
}

/// One HTTP/1.1 exchange with the bot from the local address `source` (another loopback
/// address: another client as the bot sees it). Bounded by [`LIMIT`].
async fn exchange_from(
    source: &str,
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind(format!("{source}:0").parse().expect("an address")).expect("bind the source");
        let mut stream =
            socket.connect(address.parse().expect("the bot's address")).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a response: {text}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers)
    };
    tokio::time::timeout(LIMIT, exchange).await.expect("a response in time")
}

/// A 429's `Retry-After` seconds, checked against its JSON body.
fn retry_after(response: &HttpResponse) -> u64 {
    assert_eq!(response.status, 429, "{}", response.text());
    let seconds: u64 = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("a Retry-After: {:?}", response.headers))
        .parse()
        .expect("whole seconds");
    let body = response.json();
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(body["retry_after"], seconds, "{body}");
    seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_session_id_gets_a_server_issued_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut bot = web_bot(&dir, &["--web"], &[]);
    let mut real = Client::new(&bot, "real");
    real.get().await;
    let issued = real.cookie.clone().expect("an issued session");
    assert!(is_issued_shape(&issued), "{issued}");
    let (issued_id, mac) = issued.split_once('.').expect("ID.MAC");
    let zeros = "0".repeat(32);
    let flipped = if mac.ends_with('0') { "1" } else { "0" };
    let altered = format!("{issued_id}.{}{flipped}", &mac[..31]);
    let other_mac = format!("{issued_id}.{zeros}");
    let made_up = [zeros.clone(), format!("{zeros}.{zeros}"), altered, other_mac, issued_id.into()];
    for made_up in &made_up {
        // A page load with it: a new, issued id, and the preview of a start.
        let mut c = Client::new(&bot, "fixed");
        c.cookie = Some(made_up.clone());
        let shown = c.get().await;
        assert_eq!(shown["preview"], true, "{made_up}: {shown}");
        let fresh = c.cookie.clone().expect("a cookie");
        assert!(is_issued_shape(&fresh) && !fresh.starts_with(made_up.as_str()), "{made_up}");
        assert!(!fresh.starts_with(issued_id), "{made_up}: not the real session");
        // An input with it: applied under a new issued id, never the made-up one.
        let mut d = Client::new(&bot, "fixed");
        d.cookie = Some(made_up.clone());
        let answer = d.start(None).await;
        assert_eq!(prompt(&answer)["node"], "q1");
        let fresh = d.cookie.clone().expect("a cookie");
        assert!(is_issued_shape(&fresh) && !fresh.starts_with(made_up.as_str()), "{made_up}");
        assert!(!fresh.starts_with(issued_id), "{made_up}: not the real session");
    }
    let chats: Vec<String> =
        made_up.iter().map(|m| m.split('.').next().unwrap().to_owned()).collect();
    let stored = count(
        &dir,
        &format!("SELECT COUNT(*) FROM conversations WHERE chat IN ('{}')", chats.join("', '")),
    )
    .await;
    assert_eq!(stored, 0, "nothing under a made-up id");
    assert_eq!(stored_conversations(&dir).await, 5, "one per input, each under its issued id");

    // The key is kept in the store: an issued cookie stays valid across a restart.
    let answer = real.start(Some("taiou3")).await;
    real.press(&answer, "「送信完了」だった").await;
    let before = real.get().await;
    assert!(bot.terminate().success());
    drop(bot);
    let bot = web_bot(&dir, &["--web"], &[]);
    real.address = bot.address.clone();
    let cookie = format!("{COOKIE}={issued}");
    let response =
        http_exchange(&bot.address, "GET", "/chat/api", &[("Cookie", &cookie)], b"", LIMIT).await;
    assert_eq!(response.status, 200);
    assert!(response.header("set-cookie").is_none(), "the cookie was kept");
    assert_eq!(response.json(), before, "the same conversation after the restart");
    assert_eq!(history(&before).len(), 1, "{before}");
    assert!(!bot.log().contains(issued_id), "no session id in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_gets_429_while_another_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot_with(&dir, "[web]\nrequests_per_minute = 5\n", &["--web"], &[]);
    let mut a = Client::new(&bot, "a");
    for _ in 0..5 {
        a.get().await;
    }
    let refused = a.request("GET", &[], b"").await;
    let wait = retry_after(&refused);
    assert!((1..=12).contains(&wait), "5 a minute: one every 12 s, not {wait}");
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    // A POST too, before anything is looked at: no conversation.
    let start = json!({"id": "flood-1", "start": null}).to_string();
    let refused = a.post_raw(start.as_bytes(), true).await;
    retry_after(&refused);
    assert!(refused.header("set-cookie").is_none());
    // Without client_address_header, a forwarding header a client sends is not read.
    for header in ["X-Forwarded-For", "X-Real-IP", "Forwarded"] {
        let refused = a.request("GET", &[(header, "192.0.2.77")], b"").await;
        assert_eq!(refused.status, 429, "{header} is not trusted");
    }
    // Another client, from another address, is answered all along.
    for _ in 0..3 {
        let (status, headers) =
            exchange_from("127.0.0.2", &bot.address, "GET", "/chat/api", &[]).await;
        assert_eq!(status, 200, "{headers:?}");
    }
    // The page itself is not limited (only the API is).
    let page = http_exchange(&bot.address, "GET", "/chat", &[], b"", LIMIT).await;
    assert_eq!(page.status, 200);
    assert_eq!(stored_conversations(&dir).await, 0, "the refused start opened nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trusted_header_is_honoured_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let settings = "[web]\nrequests_per_minute = 3\nclient_address_header = \"X-Forwarded-For\"\n";
    let bot = web_bot_with(&dir, settings, &["--web"], &[]);
    let get = |forwarded: &'static str| {
        let address = bot.address.clone();
        async move {
            let headers = [("X-Forwarded-For", forwarded)];
            http_exchange(&address, "GET", "/chat/api", &headers, b"", LIMIT).await
        }
    };
    for _ in 0..3 {
        assert_eq!(get("192.0.2.1").await.status, 200);
    }
    retry_after(&get("192.0.2.1").await);
    // The proxy appends the address it saw: the last one counts, whatever the client put first.
    retry_after(&get("198.51.100.7, 192.0.2.1").await);
    assert_eq!(get("192.0.2.1, 192.0.2.2").await.status, 200, "192.0.2.2 is another client");
    // All of these came from 127.0.0.1, which is not the client: its own allowance is whole.
    for _ in 0..3 {
        let plain = http_exchange(&bot.address, "GET", "/chat/api", &[], b"", LIMIT).await;
        assert_eq!(plain.status, 200, "no header: the peer's address");
    }
    let plain = http_exchange(&bot.address, "GET", "/chat/api", &[], b"", LIMIT).await;
    retry_after(&plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_on_new_conversations_leaves_existing_ones_going() {
    let dir = tempfile::tempdir().unwrap();
    let settings = "[web]\nrequests_per_minute = 1000\nnew_conversations_per_minute = 2\n";
    let bot = web_bot_with(&dir, settings, &["--web"], &[]);
    let mut a = Client::new(&bot, "a");
    let at_a = a.start(None).await;
    let mut b = Client::new(&bot, "b");
    b.get().await;
    b.start(Some("taiou3")).await;

    // A third conversation waits; looking at the page is not opening one.
    let mut c = Client::new(&bot, "c");
    assert_eq!(c.get().await["preview"], true);
    let start = json!({"id": "c-1", "start": null}).to_string();
    let refused = c.post_raw(start.as_bytes(), true).await;
    let wait = retry_after(&refused);
    assert!((1..=30).contains(&wait), "2 a minute: one every 30 s, not {wait}");
    let mut d = Client::new(&bot, "d");
    let text = json!({"id": "d-1", "text": "1"}).to_string();
    retry_after(&d.post_raw(text.as_bytes(), true).await);
    assert_eq!(c.get().await["preview"], true, "nothing opened for c");
    assert_eq!(stored_conversations(&dir).await, 2);

    // The open ones go on: a press, and a start again of an existing conversation.
    let answer = a.press(&at_a, "届いている").await;
    assert_eq!(answer["changed"], true);
    assert_eq!(prompt(&answer)["node"], "q2");
    let again = b.start(None).await;
    assert_eq!(prompt(&again)["node"], "q1");
    assert_eq!(stored_conversations(&dir).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_and_change_nothing() {
    let flow = gmis();
    let fields = flow.forms()[0].fields();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    let mut a = Client::new(&bot, "ctl");
    let at_field = to_the_form(&mut a).await;
    let before = a.get().await;
    assert_eq!(replies(&before).as_slice(), [prompt(&at_field).clone()]);
    let token = token(prompt(&at_field), flow.texts().back.as_str());
    for bad in ["〇〇病院\u{0}", "\u{0}", "a\u{7}b", "\u{1b}[31m赤", "a\rb", "\u{7f}", "\u{85}x"]
    {
        for input in [
            json!({ "text": bad }),
            json!({ "start": bad }),
            json!({ "press": format!("{token}{bad}") }),
        ] {
            let mut body = input.clone();
            body["id"] = json!(a.next_id());
            let response = a.post_raw(body.to_string().as_bytes(), true).await;
            assert_eq!(response.status, 422, "{body}: {}", response.text());
            let error = response.json()["error"].as_str().unwrap_or_default().to_owned();
            assert!(error.contains("control character U+"), "{error}");
            assert!(response.header("set-cookie").is_none(), "{body}");
            assert_eq!(a.get().await, before, "unchanged after {body}");
        }
    }
    // A NUL written as a JSON escape is the same character.
    let raw = format!(r#"{{"id": "{}", "text": "x\u0000y"}}"#, a.next_id());
    assert_eq!(a.post_raw(raw.as_bytes(), true).await.status, 422);
    assert_eq!(a.get().await, before);
    // A tab is typed text (folded into a space): the name is taken.
    let answer = a.say("福島\t中央病院").await;
    assert_eq!(joined(&prompt(&answer)["text"]), fields[1].ask());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_view_stores_nothing_and_the_root_redirects() {
    let flow = gmis();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    for (path, location) in [("/", "/chat"), ("/?start=taiou3", "/chat?start=taiou3")] {
        let response = http_exchange(&bot.address, "GET", path, &[], b"", LIMIT).await;
        assert_eq!(response.status, 303, "{path}");
        assert_eq!(response.header("location"), Some(location), "{path}");
    }
    // Page views: the page, and its API with and without a session, at an entry or not.
    let page = http_exchange(&bot.address, "GET", "/chat", &[], b"", LIMIT).await;
    assert_eq!(page.status, 200);
    let mut visitor = Client::new(&bot, "visitor");
    for _ in 0..3 {
        let shown = visitor.get().await;
        assert_eq!(shown["preview"], true);
        assert_eq!(arrives(&flow, &shown, flow.start()), "q1");
    }
    for _ in 0..3 {
        let crawler = http_exchange(&bot.address, "GET", "/chat/api", &[], b"", LIMIT).await;
        assert_eq!(crawler.status, 200);
    }
    let path = "/chat/api?utm_source=x&start=taiou3";
    let entry = http_exchange(&bot.address, "GET", path, &[], b"", LIMIT).await;
    assert_eq!(prompt(&entry.json())["node"], "m3_absent", "{}", entry.text());
    assert_eq!(kinds(&entry.json()), ["prompt"]);
    assert_eq!(stored_conversations(&dir).await, 0, "page views store nothing");

    // The first input opens the conversation; the preview's buttons are the real ones.
    let preview = visitor.get().await;
    visitor.start(None).await;
    assert_eq!(stored_conversations(&dir).await, 1);
    let answer = visitor.press(&preview, "届いている").await;
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(prompt(&answer)["node"], "q2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_shows_the_conversation_so_far() {
    let flow = gmis();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    let mut a = Client::new(&bot, "reload");
    let q1 = a.start(None).await;
    let q2 = a.press(&q1, "届いていない").await;
    let q3 = a.press(&q2, "空き容量は十分にある").await;
    let (_, q1_node) = node(&flow, "q1");
    let shown = a.get().await;
    assert_eq!(shown["preview"], false);
    assert_eq!(replies(&shown).as_slice(), [prompt(&q3).clone()]);
    assert_eq!(
        history(&shown),
        [
            json!({"node": "q1", "text": q1_node.text(), "note": null, "answer": "届いていない"}),
            json!({
                "node": prompt(&q2)["node"],
                "text": joined(&prompt(&q2)["text"]),
                "note": null,
                "answer": "空き容量は十分にある",
            }),
        ]
    );
    // Back takes the last answer off; restart all of them.
    a.post(json!({"command": "back"})).await;
    let shown = a.get().await;
    assert_eq!(history(&shown).len(), 1, "{shown}");
    assert_eq!(history(&shown)[0]["answer"], "届いていない");
    assert_eq!(prompt(&shown)["node"], prompt(&q2)["node"]);
    a.post(json!({"command": "restart"})).await;
    let shown = a.get().await;
    assert_eq!(shown["history"], json!([]), "{shown}");
    assert_eq!(prompt(&shown)["node"], "q1");
}

// ---------------------------------------------------------------------------------------------
// The page in a real browser.

/// chromedriver's element key in W3C answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMIUM: &str = "/usr/bin/chromium";

/// `name` on PATH, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A chromedriver process on 127.0.0.1, killed on drop.
struct ChromeDriver {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> Self {
        let exe = on_path("chromedriver").unwrap_or_else(|| {
            panic!(
                "chromedriver is not on PATH: the web chat's browser test needs Chromium and its \
                 driver. ./test.sh installs them (apt-get install chromium chromium-driver \
                 fonts-noto-cjk)"
            )
        });
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: ./test.sh installs Chromium (apt-get install chromium \
             chromium-driver fonts-noto-cjk)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        // The port is picked here and bound by chromedriver: another process may take it in
        // between, so a driver that exits early is started again on another one.
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("chromedriver.log")).expect("log");
            let mut child = Command::new(&exe)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn chromedriver");
            let address = format!("127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            let up = loop {
                if std::net::TcpStream::connect(&address).is_ok() {
                    break true;
                }
                if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if up {
                return ChromeDriver { child, address, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver did not start: {}", Self::log_of(&dir))
    }

    fn log_of(dir: &tempfile::TempDir) -> String {
        std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// One WebDriver command: its `value`, or a panic with the driver's error.
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json; charset=utf-8")];
        let limit = Duration::from_secs(90);
        let response =
            http_exchange(&self.address, method, path, &headers, body.as_bytes(), limit).await;
        let mut answer = response.json();
        if response.status != 200 {
            let log = Self::log_of(&self.dir);
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!("WebDriver {method} {path} {body}: {answer}\nchromedriver: {tail:#?}");
        }
        answer["value"].take()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session: one headless Chromium with a fresh profile. Deleted (the browser
/// closed) by [`Browser::close`], or on drop after a failure.
struct Browser {
    driver: ChromeDriver,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open() -> Self {
        let driver = ChromeDriver::start();
        let profile = tempfile::tempdir().expect("temp dir");
        let capabilities = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1000,1400",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }}}});
        let value = driver.command("POST", "/session", Some(capabilities)).await;
        let session = value["sessionId"].as_str().unwrap_or_else(|| panic!("{value}")).to_owned();
        Browser { driver, session: Some(session), _profile: profile }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let session = self.session.as_deref().expect("an open session");
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        self.driver.command(method, &format!("/session/{session}{path}"), body).await
    }

    async fn close(mut self) {
        let session = self.session.take().expect("an open session");
        self.driver.command("DELETE", &format!("/session/{session}"), None).await;
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let found =
            self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        element_ids(&found.await)
    }

    async fn find_in(&self, element: &str, css: &str) -> Vec<String> {
        let body = json!({"using": "css selector", "value": css});
        element_ids(&self.call("POST", &format!("/element/{element}/elements"), Some(body)).await)
    }

    async fn find(&self, css: &str) -> String {
        let mut found = self.find_all(css).await;
        assert_eq!(found.len(), 1, "one {css}");
        found.remove(0)
    }

    async fn text(&self, element: &str) -> String {
        let text = self.call("GET", &format!("/element/{element}/text"), None).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        let value = self.call("GET", &format!("/element/{element}/attribute/{name}"), None).await;
        value.as_str().map(str::to_owned)
    }

    async fn property(&self, element: &str, name: &str) -> Value {
        self.call("GET", &format!("/element/{element}/property/{name}"), None).await
    }

    async fn enabled(&self, element: &str) -> bool {
        self.call("GET", &format!("/element/{element}/enabled"), None).await == json!(true)
    }

    async fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), None).await;
    }

    /// Types `text` into the text box and presses the send button.
    async fn send(&self, text: &str) {
        let input = self.find("#text").await;
        self.call("POST", &format!("/element/{input}/value"), Some(json!({ "text": text }))).await;
        let send = self.find("#send").await;
        self.click(&send).await;
    }

    /// The bubbles shown now: their classes and texts.
    async fn bubbles(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for element in self.find_all("#log .bubble").await {
            let class = self.attribute(&element, "class").await.unwrap_or_default();
            out.push((class, self.text(&element).await));
        }
        out
    }

    /// Waits until a bubble after the first `from`, of class `kind`, shows `needle`; returns
    /// its index and text. Bounded by [`WAIT`].
    async fn wait_bubble(&self, from: usize, kind: &str, needle: &str) -> (usize, String) {
        let deadline = Instant::now() + WAIT;
        let mut checked = from;
        let polls = WAIT.as_millis() / POLL.as_millis();
        for _ in 0..polls {
            if Instant::now() > deadline {
                break;
            }
            let elements = self.find_all("#log .bubble").await;
            for (i, element) in elements.iter().enumerate().skip(checked) {
                let class = self.attribute(element, "class").await.unwrap_or_default();
                let text = self.text(element).await;
                if class.split(' ').any(|c| c == kind) && text.contains(needle) {
                    return (i, text);
                }
                // A bubble's text is final once a later one exists (the page only appends).
                if i + 1 < elements.len() {
                    checked = i + 1;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("no {kind} bubble with {needle:?} after {from}: {:#?}", self.bubbles().await)
    }

    /// Clicks the one enabled button labelled `label`.
    async fn click_button(&self, label: &str) {
        let mut matching = Vec::new();
        for button in self.find_all("#log button").await {
            if self.text(&button).await == label && self.enabled(&button).await {
                matching.push(button);
            }
        }
        assert_eq!(matching.len(), 1, "one enabled button {label}: {:#?}", self.bubbles().await);
        self.click(&matching[0]).await;
    }

    async fn count(&self) -> usize {
        self.find_all("#log .bubble").await.len()
    }
}

impl Drop for Browser {
    /// After a failure: close the browser (best effort, bounded) before the driver is killed.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Some(session) = self.session.take() else { return };
        let Ok(mut stream) = std::net::TcpStream::connect(&self.driver.address) else { return };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.driver.address
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read(&mut [0u8; 1024]);
        }
    }
}

fn element_ids(found: &Value) -> Vec<String> {
    found
        .as_array()
        .unwrap_or_else(|| panic!("elements: {found}"))
        .iter()
        .map(|e| e[ELEMENT].as_str().unwrap_or_else(|| panic!("an element: {e}")).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_browser() {
    let began = Instant::now();
    let flow = gmis();
    let dir = tempfile::tempdir().unwrap();
    let bot = web_bot(&dir, &["--web"], &[]);
    let browser = Browser::open().await;
    let opened = began.elapsed();
    let base = format!("http://{}/chat", bot.address);

    // A help desk's link: a preview of the entry's question. Nothing is stored until the first
    // input, and until then the address keeps ?start= (a reload previews the same entry).
    browser.goto(&format!("{base}?start=taiou3")).await;
    let (_, text) = browser.wait_bubble(0, "prompt", "どちらでしたか？").await;
    assert!(text.starts_with("対応方法3（担当者が退職等で不在のため、メールが確認できない場合）"));
    assert_eq!(browser.url().await, format!("{base}?start=taiou3"));
    assert_eq!(stored_conversations(&dir).await, 0, "a page view stores nothing");
    assert_eq!(browser.text(&browser.find("#title").await).await, flow.title());
    assert_eq!(browser.call("GET", "/title", None).await, json!(flow.title()));
    let cookie = browser.call(
        "POST",
        "/execute/sync",
        Some(json!({"script": "return document.cookie", "args": []})),
    );
    assert_eq!(cookie.await, json!(""), "the session cookie is HttpOnly");

    let seen = browser.count().await;
    browser.click_button("「送信完了」だった").await;
    let (mine, text) = browser.wait_bubble(seen, "mine", "").await;
    assert_eq!(text, "「送信完了」だった", "the pressed answer is shown");
    let (_, text) = browser.wait_bubble(mine, "prompt", "上の4項目は").await;
    assert!(text.starts_with("対応方法3（メールが「送信完了」となっている場合）"), "{text}");
    // The first press opened the conversation at the entry and answered it; the address lost
    // ?start= (a reload must continue, not start again).
    assert_eq!(stored_conversations(&dir).await, 1);
    assert_eq!(browser.url().await, base);

    let seen = browser.count().await;
    browser.click_button("変更依頼を入力する").await;
    browser.wait_bubble(seen, "prompt", "報告機関名を入力してください。").await;
    let input = browser.find("#text").await;
    assert_eq!(browser.attribute(&input, "placeholder").await.as_deref(), Some("報告機関名"));
    let form = browser.find("#say").await;
    assert_eq!(browser.attribute(&form, "class").await.as_deref(), Some("field"));

    // Markup typed as a name is text: shown as typed, no element made of it.
    let name = "〇〇病院<b>x</b>";
    let seen = browser.count().await;
    browser.send(name).await;
    let (mine, text) = browser.wait_bubble(seen, "mine", "").await;
    assert_eq!(text, name);
    browser.wait_bubble(mine, "prompt", "機関コードを入力してください。").await;
    assert_eq!(browser.property(&input, "value").await, json!(""), "the box is emptied");
    assert_eq!(browser.attribute(&input, "placeholder").await.as_deref(), Some("機関コード"));

    let seen = browser.count().await;
    browser.click_button("分からない").await;
    browser.wait_bubble(seen, "prompt", "変更前メールアドレス（申請時のメールアドレス）").await;

    let seen = browser.count().await;
    browser.send("old@example").await;
    let (notice, text) =
        browser.wait_bubble(seen, "notice", "メールアドレスの形式になっていません").await;
    assert!(text.contains("もう一度入力してください。"), "{text}");
    browser.wait_bubble(notice, "prompt", "変更前メールアドレス（申請時のメールアドレス）").await;

    let seen = browser.count().await;
    browser.send("ｏｌｄ．ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｊｐ").await;
    browser.wait_bubble(seen, "prompt", "変更後メールアドレス（これから使うメールアドレス）").await;

    let seen = browser.count().await;
    browser.send("new-user@hospital.example.jp").await;
    let (_, text) = browser.wait_bubble(seen, "prompt", "以下の内容でよろしいですか？").await;
    for line in [
        "報告機関名：〇〇病院<b>x</b>",
        "機関コード：分からない",
        "変更前メールアドレス：old.user@example.jp",
        "変更後メールアドレス：new-user@hospital.example.jp",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
    assert_eq!(browser.attribute(&form, "class").await.as_deref(), Some(""), "no field now");

    let seen = browser.count().await;
    browser.click_button("確定する").await;
    let (handoff, text) = browser.wait_bubble(seen, "handoff", "受付番号：").await;
    let reference = text
        .lines()
        .find_map(|l| l.strip_prefix("受付番号："))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert_eq!(reference.len(), 11, "{reference}");
    assert!(text.lines().any(|l| l == "報告機関名：〇〇病院<b>x</b>"), "{text}");
    let (_, ending) = browser.wait_bubble(handoff, "prompt", "パスワードリセット").await;
    let (_, sent) = node(&flow, "m3_change_sent");
    let first_line = sent.text().lines().next().unwrap_or_default();
    assert!(ending.starts_with(first_line), "{ending}");
    assert!(ending.contains("都道府県からG-MIS事務局へ変更依頼後"), "{ending}");

    assert!(browser.find_all("#log b").await.is_empty(), "no <b> made of typed text");
    // Links only from the server's segments: the addresses in the hand-off, the URL in the end.
    let mut hrefs = Vec::new();
    for a in browser.find_all("#log a").await {
        hrefs.push(browser.attribute(&a, "href").await.unwrap_or_default());
    }
    for href in [
        "mailto:old.user@example.jp",
        "mailto:new-user@hospital.example.jp",
        "https://www.med-login.mhlw.go.jp/",
    ] {
        assert!(hrefs.iter().any(|h| h == href), "{href} in {hrefs:?}");
    }
    assert!(
        hrefs.iter().all(|h| h.starts_with("mailto:") || h.starts_with("https://")),
        "{hrefs:?}"
    );

    // Only the ending's buttons are live; every earlier one is greyed.
    let prompts = browser.find_all("#log .bubble.prompt").await;
    let last = prompts.last().expect("prompts").clone();
    let live = browser.find_in(&last, "button").await;
    let mut live_labels = Vec::new();
    for button in &live {
        assert!(browser.enabled(button).await);
        live_labels.push(browser.text(button).await);
    }
    assert_eq!(live_labels, [flow.texts().back.as_str(), flow.texts().restart.as_str()]);
    let mut disabled = 0;
    for button in browser.find_all("#log button").await {
        if !live.contains(&button) {
            assert!(!browser.enabled(&button).await, "{}", browser.text(&button).await);
            disabled += 1;
        }
    }
    assert!(disabled >= 10, "{disabled} earlier buttons");

    // A reload continues at the ending, after the questions answered on the way (greyed, each
    // with its answer): no new start.
    browser.call("POST", "/refresh", None).await;
    let (at, text) = browser.wait_bubble(0, "prompt", "パスワードリセット").await;
    assert_eq!(text, ending);
    let shown = browser.bubbles().await;
    assert_eq!(at + 1, shown.len(), "the ending is the last: {shown:#?}");
    let classes: Vec<&str> = shown.iter().map(|(class, _)| class.as_str()).collect();
    assert_eq!(
        classes,
        ["bubble asked", "bubble mine", "bubble asked", "bubble mine", "bubble prompt"],
        "{shown:#?}"
    );
    assert!(shown[0].1.contains("どちらでしたか？"), "{shown:#?}");
    assert_eq!(shown[1].1, "「送信完了」だった");
    assert!(shown[2].1.contains("上の4項目は"), "{shown:#?}");
    assert_eq!(shown[3].1, "変更依頼を入力する");
    assert_eq!(browser.url().await, base);
    assert_eq!(stored_conversations(&dir).await, 1, "one conversation");
    let live: Vec<String> = {
        let mut live = Vec::new();
        for button in browser.find_all("#log button").await {
            if browser.enabled(&button).await {
                live.push(browser.text(&button).await);
            }
        }
        live
    };
    assert_eq!(live, [flow.texts().back.as_str(), flow.texts().restart.as_str()]);

    // The page's own behaviour around the server (its functions and state are the script's
    // globals). A refused request fails at once: only network and server errors are retried.
    let asked = Instant::now();
    let script = "const done = arguments[arguments.length - 1];
        call('POST', {id: 'not an id', text: 'x'}).then(() => done('ok'), (e) => done(e.message));";
    let failed =
        browser.call("POST", "/execute/async", Some(json!({"script": script, "args": []})));
    assert_eq!(failed.await, json!("400"));
    assert!(asked.elapsed() < Duration::from_secs(3), "a 400 retried: {:?}", asked.elapsed());
    // Enter while an answer is on its way keeps the text in the box.
    let script = "busy = true; text.value = 'still here'; form.requestSubmit();
        const kept = text.value; busy = false; text.value = ''; return kept;";
    let kept = browser.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})));
    assert_eq!(kept.await, json!("still here"));
    assert_eq!(browser.count().await, shown.len(), "nothing sent");

    browser.close().await;
    assert!(!bot.log().contains("old.user@example.jp"), "no answers in the log");
    eprintln!(
        "the_page_in_a_browser: browser up in {:.1?}, whole test {:.1?}",
        opened,
        began.elapsed()
    );
}
