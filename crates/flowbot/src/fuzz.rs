//! Fuzzing the settings loader on stable Rust: arbitrary and mostly-valid TOML, huge values and
//! environment overrides with any values. Each case loads or is refused within a deadline,
//! without a panic, and neither a refusal nor a loaded configuration's `Debug` quotes a signing
//! secret.
//!
//! Cases per property: `PROPTEST_CASES` when set, else the modest number each property names.
//! A longer run: `PROPTEST_CASES=20000 cargo test --release -p flowbot fuzz::`.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as Budget, TestCaseError};

use crate::config::Config;

/// How long one load may take.
const DEADLINE: Duration =
    if cfg!(debug_assertions) { Duration::from_secs(5) } else { Duration::from_secs(2) };

/// The shipped example settings.
const FUKUSHIMA: &str = include_str!("../../../deploy/flowbot.fukushima.toml");

/// The variables `Config::load` reads, and one it does not.
const VARIABLES: &[&str] = &[
    "FLOWBOT_PREFECTURE",
    "FLOWBOT_DESK_NAME",
    "FLOWBOT_DESK_PHONE",
    "FLOWBOT_DESK_MAIL",
    "FLOWBOT_DESK_HOURS",
    "FLOWBOT_RETENTION_DAYS",
    "FLOWBOT_HANDOFF_RETRY_SECONDS",
    "FLOWBOT_HANDOFF_WEBHOOK_URL",
    "FLOWBOT_HANDOFF_TELEGRAM_CHAT",
    "FLOWBOT_HANDOFF_DISCORD_CHANNEL",
    "FLOWBOT_HANDOFF_SLACK_CHANNEL",
    "FLOWBOT_HANDOFF_LINE_TO",
    "FLOWBOT_UNKNOWN",
];

fn budget(cases: u32) -> Budget {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    Budget { cases, max_shrink_iters: 1024, max_shrink_time: 60_000, ..Budget::default() }
}

/// One case: a settings file, the environment, and the secret both may hold.
#[derive(Debug, Clone)]
struct Case {
    text: String,
    env: BTreeMap<String, String>,
    secret: String,
}

/// Loads a case on its own thread: it must end within [`DEADLINE`] without a panic, and what it
/// says must not quote the secret.
fn check(case: Case) -> Result<(), TestCaseError> {
    let (tx, rx) = mpsc::sync_channel(1);
    let thread = std::thread::spawn(move || {
        let _ = tx.send(load(&case));
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(result) => {
            let _ = thread.join();
            result.map_err(TestCaseError::fail)
        }
        // The thread cannot be stopped; the test fails and the process ends it.
        Err(RecvTimeoutError::Timeout) => {
            Err(TestCaseError::fail(format!("loading took more than {DEADLINE:?}")))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let panic = thread.join().err().map_or_else(String::new, |p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            });
            Err(TestCaseError::fail(format!("loading panicked: {panic}")))
        }
    }
}

fn load(case: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("flowbot.toml");
    std::fs::write(&path, &case.text).map_err(|e| e.to_string())?;
    let said = match Config::load_with(Some(&path), |name| case.env.get(name).cloned()) {
        Ok(config) => format!("{config:?}"),
        Err(err) => {
            let said = format!("{err:#}\n{err:?}");
            if said.trim().is_empty() {
                return Err("a refusal that says nothing".into());
            }
            said
        }
    };
    if said.contains(&case.secret) {
        return Err(format!("the secret {:?} is quoted:\n{said}", case.secret));
    }
    Ok(())
}

// ------------------------------------------------------------------------------- generators

/// A signing secret: long enough to be accepted, and unlike anything else in a case.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{16,40}".prop_map(|s| format!("Zq9{s}"))
}

/// Any text: any Unicode, bytes read as lossy UTF-8, and a soup of TOML pieces.
fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..2048)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::collection::vec(prop::sample::select(TOML_BITS), 0..120).prop_map(|v| v.concat()),
    ]
}

/// Pieces of TOML and of the settings' keys, for token soup and inserted lines.
const TOML_BITS: &[&str] = &[
    "[prefecture]\n",
    "[desk]\n",
    "[notes]\n",
    "[retention]\n",
    "[handoff]\n",
    "[delivery]\n",
    "[web]\n",
    "[params]\n",
    "[[handoff.destinations]]\n",
    "name = ",
    "phone = ",
    "mail = ",
    "hours = ",
    "cause3 = ",
    "personal_data_days = ",
    "retry_first_seconds = ",
    "retry_max_seconds = ",
    "lease_seconds = ",
    "give_up_after_seconds = ",
    "requests_per_minute = ",
    "new_conversations_per_minute = ",
    "client_address_header = ",
    "kind = \"webhook\"\n",
    "kind = \"telegram\"\n",
    "kind = \"discord\"\n",
    "url = ",
    "secret_env = ",
    "chat_id = ",
    "channel_id = ",
    "desk_contact = ",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "=",
    "\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "#",
    "\\",
    "\\u0000",
    "\\U0010FFFF",
    "0",
    "-1",
    "1e308",
    "1e999",
    "inf",
    "-inf",
    "nan",
    "18446744073709551616",
    "9223372036854775808",
    "0x7f",
    "0o7",
    "0b1",
    "1979-05-27T07:32:00Z",
    "true",
    "\"a\"",
    "\"https://a.example/\"",
    "\"ftp://x\"",
    "\"desk@pref.example.jp\"",
    "\u{3000}",
    "福島県",
    "\r\n",
    "\t",
];

/// Values for keys: numbers of every kind and strings.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "0",
                "1",
                "-1",
                "90",
                "3650",
                "3651",
                "0.5",
                "86400",
                "86400.1",
                "1e308",
                "inf",
                "-inf",
                "nan",
                "18446744073709551616",
                "-9223372036854775809",
                "\"\"",
                "\"x\"",
                "\"a\\nb\"",
                "\"https://desk.example.jp/flowbot\"",
                "\"ftp://x\"",
                "\"http://\"",
                "\"desk@pref.example.jp\"",
                "\"desk\"",
                "\"X-Forwarded-For\"",
                "\"bad header\"",
                "[]",
                "{}",
                "true",
                "\"webhook\"",
                "\"{{desk_name}}\"",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        ".{0,40}".prop_map(|s| format!("{s:?}")),
        (1..200_000usize, prop::sample::select(&['x', 'あ', '\n', '"'][..]))
            .prop_map(|(n, c)| format!("{:?}", c.to_string().repeat(n))),
    ]
}

/// The example settings with everything commented out turned on.
fn fukushima_full() -> String {
    FUKUSHIMA
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lines of a settings file, edited.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    Truncate(Index, Index),
    Insert(Index, String),
    /// A line's value replaced.
    Value(Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = any::<Index>;
    prop_oneof![
        3 => i().prop_map(Edit::Delete),
        2 => i().prop_map(Edit::Duplicate),
        2 => (i(), i()).prop_map(|(a, b)| Edit::Swap(a, b)),
        2 => (i(), i()).prop_map(|(a, b)| Edit::Truncate(a, b)),
        3 => (i(), prop_oneof![
            prop::sample::select(TOML_BITS).prop_map(str::to_owned),
            (prop::sample::select(TOML_BITS), value()).prop_map(|(k, v)| format!("{k}{v}")),
            arbitrary_text(),
        ]).prop_map(|(a, s)| Edit::Insert(a, s)),
        4 => (i(), value()).prop_map(|(a, v)| Edit::Value(a, v)),
    ]
}

fn edited(base: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match e {
            Edit::Delete(i) => {
                lines.remove(i.index(n));
            }
            Edit::Duplicate(i) => {
                let line = lines[i.index(n)].clone();
                lines.insert(i.index(n), line);
            }
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Truncate(i, at) => {
                let line = &mut lines[i.index(n)];
                let chars = line.chars().count();
                if chars > 0 {
                    *line = line.chars().take(at.index(chars)).collect();
                }
            }
            Edit::Insert(i, s) => lines.insert(i.index(n + 1), s.trim_end_matches('\n').to_owned()),
            Edit::Value(i, v) => {
                let line = &mut lines[i.index(n)];
                if let Some(eq) = line.find(" = ") {
                    line.truncate(eq + 3);
                    line.push_str(v);
                }
            }
        }
    }
    lines.join("\n")
}

/// A webhook destination signed with `secret`, appended after everything else so that no edit
/// moves the secret out of its place (an unclosed string before it is a syntax error).
fn webhook(url: &str, secret: &str) -> String {
    format!(
        "\n[[handoff.destinations]]\nkind = \"webhook\"\nurl = {url:?}\nsecret = \"{secret}\"\n"
    )
}

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https://desk.example.jp/flowbot".to_owned()),
        Just("ftp://x".to_owned()),
        Just(String::new()),
        "[a-z:/.]{0,30}",
    ]
}

/// The environment: any of the variables, with values of any kind, and sometimes the webhook
/// secret.
fn environment(secret: String) -> impl Strategy<Value = BTreeMap<String, String>> {
    let value = prop_oneof![
        prop::sample::select(
            &[
                "",
                " ",
                "7",
                " 7 ",
                "-1",
                "0",
                "1e3",
                "inf",
                "nan",
                "NaN",
                "1.5",
                "-1001",
                "18446744073709551616",
                "http://127.0.0.1:9/hook",
                "ftp://x",
                "desk@pref.example.jp",
                "a\nb",
                "福島県",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>(),
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    (prop::collection::btree_map(prop::sample::select(VARIABLES), value, 0..6), any::<bool>())
        .prop_map(move |(vars, with_secret)| {
            let mut env: BTreeMap<String, String> =
                vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if with_secret {
                env.insert("FLOWBOT_HANDOFF_WEBHOOK_SECRET".into(), secret.clone());
            }
            env
        })
}

/// A case: `text` (given the secret) and an environment that may hold the secret too.
fn case(text: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = Case> {
    (text, secret(), url()).prop_flat_map(|(text, secret, url)| {
        let text = format!("{text}{}", webhook(&url, &secret));
        environment(secret.clone()).prop_map(move |env| Case {
            text: text.clone(),
            env,
            secret: secret.clone(),
        })
    })
}

// ------------------------------------------------------------------------------------ tests

proptest! {
    #![proptest_config(budget(128))]

    /// Anything at all as a settings file.
    #[test]
    fn any_text_loads_or_is_refused(c in case(arbitrary_text())) {
        check(c)?;
    }

    /// The shipped example, with its commented settings turned on, edited line by line: lines
    /// deleted, doubled, swapped, cut, inserted, values replaced by odd and huge ones.
    #[test]
    fn edited_settings_load_or_are_refused(
        c in case(prop_oneof![Just(FUKUSHIMA.to_owned()), Just(fukushima_full())]
            .prop_flat_map(|base| prop::collection::vec(edit(), 1..8)
                .prop_map(move |edits| edited(&base, &edits))))
    ) {
        check(c)?;
    }
}

/// The check itself: a secret in its place is not quoted by a refusal, and the same value as a
/// setting that a refusal does quote is seen.
#[test]
fn the_check_sees_a_quoted_secret() {
    let secret = "Zq9abcdefghijklmnop";
    let text = format!("[desk]\nmail = \"nope\"\n{}", webhook("ftp://x", secret));
    let env = BTreeMap::from([("FLOWBOT_HANDOFF_WEBHOOK_SECRET".to_owned(), secret.to_owned())]);
    assert_eq!(load(&Case { text, env, secret: secret.to_owned() }), Ok(()));
    let quoted = Case {
        text: format!("[desk]\nmail = \"{secret}\"\n"),
        env: BTreeMap::new(),
        secret: secret.to_owned(),
    };
    assert!(load(&quoted).is_err_and(|e| e.contains("is quoted")));
}
