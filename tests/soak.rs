//! The short chaos soak (CI): `chaos-soak` drives the real `flowbot run` through SIGKILLs,
//! 429s and 500s on every Bot API method and updates delivered twice, on SQLite and on
//! PostgreSQL, and must lose, double, misplace and strand nothing.

use std::process::Command;

use serde_json::Value;

/// Runs `chaos-soak` on `backend` for a short budget (about 15 s of chaos, a few seconds to
/// settle) and returns its JSON line, failing with its whole report if it did not pass.
fn short_soak(backend: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-soak"))
        .args(["--backend", backend, "--users", "8", "--seconds", "15"])
        .args(["--kill-every-ms", "300..1500", "--settle-seconds", "60"])
        .arg("--flowbot")
        .arg(flowbot_tests::flowbot_path())
        .output()
        .expect("run chaos-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the soak found something:\n{report}");
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).expect("a JSON line");
    let figures: Value = serde_json::from_str(line).expect("the JSON line parses");
    let n = |key: &str| figures[key].as_u64().unwrap_or_else(|| panic!("{key} in {line}"));
    for key in ["lost", "doubled", "wrong", "stuck", "unasked_exits"] {
        assert_eq!(n(key), 0, "{key}:\n{report}");
    }
    // The chaos happened, and conversations went through it.
    assert!(n("kills") >= 3, "too few SIGKILLs:\n{report}");
    assert!(n("injected_429") > 0 && n("injected_5xx") > 0, "no faults:\n{report}");
    assert!(
        n("duplicated_same_id") + n("duplicated_same_callback") > 0,
        "no duplicates:\n{report}"
    );
    assert!(n("completed") >= 5, "too few conversations:\n{report}");
    assert_eq!(n("completed"), n("conversations"), "{report}");
    assert_eq!(figures["backend"], backend);
    figures
}

#[test]
fn short_chaos_soak_loses_nothing_on_sqlite() {
    short_soak("sqlite");
}

/// Needs `DATABASE_URL` (`./test.sh` starts a server), like the store suite.
#[test]
fn short_chaos_soak_loses_nothing_on_postgres() {
    short_soak("postgres");
}
