//! Hostile flows, settings and scripts: refused with file, line and bound, in bounded time and
//! memory, by `flowbot check` and `flowbot test`, and by a running bot's reload (SIGHUP), which
//! keeps serving the old flow.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flowbot_tests::{BotProcess, flowbot, flowbot_path, http_request, root, stdout};

/// The address space a hostile load may use (the machine this was found on aborted at 2 GB).
const MEMORY_LIMIT_KB: u64 = 2 * 1024 * 1024;

/// `flowbot ARGS` under the memory limit, killed if it runs longer than 60 s.
fn flowbot_limited(args: &[&str]) -> (Output, Duration) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KB} && exec \"$0\" \"$@\""))
        .arg(flowbot_path())
        .args(args)
        .current_dir(root())
        .env_remove("FLOWBOT_CONFIG")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn flowbot");
    let deadline = started + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("flowbot {args:?} ran longer than 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().expect("output"), started.elapsed())
}

/// The G-MIS flow with a parameter `big` of 100 KB and a parameter `rep` repeating it 400
/// times, used 20 times: 800 MB of text if expansion had no bound.
fn exploding_flow() -> String {
    let flow = std::fs::read_to_string(root().join("flows/gmis-mail-trouble.yaml")).unwrap();
    let big = "x".repeat(100 * 1024);
    let rep = "{{big}}".repeat(400);
    let params =
        format!("params:\n  big:\n    default: \"{big}\"\n  rep:\n    default: \"{rep}\"\n");
    flow.replacen("params:\n", &params, 1).replacen("{{prefecture}}", &"{{rep}}".repeat(20), 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("the needle is in the text") + 1
}

#[test]
fn parameter_expansion_is_bounded_and_refused_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("explode.yaml");
    let flow = exploding_flow();
    std::fs::write(&path, &flow).unwrap();
    let file = path.display().to_string();
    let (out, _) = flowbot_limited(&["check", &file]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let big = line_of(&flow, "  big:");
    let rep = line_of(&flow, "  rep:");
    for want in [
        format!(
            "{file}:{big}: parameter `big`: its value is 102400 bytes; at most 16384 are allowed"
        ),
        format!(
            "{file}:{rep}: parameter `rep`: the text, once its parameters are filled in, is larger than the 16384 bytes allowed"
        ),
    ] {
        assert!(text.contains(&want), "missing `{want}` in:\n{text}");
    }
}

#[test]
fn a_huge_settings_value_is_refused_against_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    // A 1.4 MB settings file is over the file bound…
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, format!("[prefecture]\nname = \"{}\"\n", "県".repeat(470_000))).unwrap();
    let (out, _) = flowbot_limited(&["--config", &huge.display().to_string(), "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}:1: the settings file is larger than the 1048576 bytes allowed",
            huge.display()
        )),
        "{err}"
    );
    // …and a 100 KB value over the value bound, on its line.
    let big = dir.path().join("big.toml");
    std::fs::write(
        &big,
        format!("[desk]\nname = \"窓口\"\n[prefecture]\nname = \"{}\"\n", "x".repeat(100_000)),
    )
    .unwrap();
    let (out, _) = flowbot_limited(&["--config", &big.display().to_string(), "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "{}:4: `prefecture.name` is 100000 bytes; a setting may be at most 16384",
        big.display()
    );
    assert!(err.contains(&want), "missing `{want}` in {err}");
}

#[test]
fn a_bad_placeholder_in_a_setting_is_reported_against_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("flowbot.toml");
    std::fs::write(
        &settings,
        "[prefecture]\nname = \"福島県\"\n\n[desk]\nname = \"窓口 {{nope\"\n",
    )
    .unwrap();
    let out =
        flowbot().args(["--config", &settings.display().to_string(), "check"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let want = format!(
        "{}:5: parameter `desk_name`: text has an unterminated `{{{{` placeholder",
        settings.display()
    );
    assert!(text.contains(&want), "missing `{want}` in:\n{text}");
    assert!(!text.contains("  flows/gmis-mail-trouble.yaml:"), "blamed on the flow:\n{text}");
}

#[test]
fn every_settings_problem_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("flowbot.toml");
    std::fs::write(
        &settings,
        "[desk]\nname = \"窓口\"\nmail = \"not-a-mail\"\n\n[retention]\npersonal_data_days = 0\n\n\
         [store]\nsqlite_synchronous = \"sometimes\"\n\n[web]\nrequests_per_minute = 0\n",
    )
    .unwrap();
    let out =
        flowbot().args(["--config", &settings.display().to_string(), "check"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let s = settings.display();
    for want in [
        format!("{s}:3: [desk] mail `not-a-mail` is not an e-mail address"),
        format!("{s}:6: [retention] personal_data_days = 0"),
        format!("{s}:9: [store] sqlite_synchronous `sometimes` is not \"normal\" or \"full\""),
        format!("{s}:12: [web] requests_per_minute = 0"),
    ] {
        assert!(err.contains(&want), "missing `{want}` in {err}");
    }
    assert!(err.contains("(4 problems)"), "{err}");
    // A bad value in the environment names the variable.
    let out = flowbot()
        .args(["check"])
        .env("FLOWBOT_SQLITE_SYNCHRONOUS", "off")
        .env("FLOWBOT_RETENTION_DAYS", "many")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "environment variable FLOWBOT_SQLITE_SYNCHRONOUS: [store] sqlite_synchronous `off`"
        ),
        "{err}"
    );
    assert!(err.contains("environment variable FLOWBOT_RETENTION_DAYS:"), "{err}");
}

#[test]
fn refusals_without_a_line_before_now_have_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("flows/gmis-mail-trouble.yaml")).unwrap();
    let check = |name: &str, bytes: &[u8]| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = flowbot().args(["check", &path.display().to_string()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        stdout(&out).replace(&path.display().to_string(), name)
    };
    // Invalid UTF-8 on line 3, at its second byte.
    let mut bytes = b"flow: f\ntitle: t\nx\xff\n".to_vec();
    bytes.extend_from_slice(good.as_bytes());
    let text = check("utf8.yaml", &bytes);
    assert!(text.contains("utf8.yaml:3: the file is not UTF-8: byte 19 (column 2)"), "{text}");
    // Two YAML documents: the second one's line.
    let text = check("docs.yaml", format!("{good}---\nflow: again\n").as_bytes());
    let line = good.lines().count() + 1;
    assert!(text.contains(&format!("docs.yaml:{line}: ")), "{text}");
    assert!(text.contains("more than one document"), "{text}");
    // More nodes than a flow may have: the line of `nodes:`.
    let mut many = String::from("flow: many\ntitle: t\nstart: n0\ntexts:\n");
    let texts = good.split("\ntexts:\n").nth(1).unwrap().split("\nnodes:\n").next().unwrap();
    many.push_str(texts.split("\nforms:\n").next().unwrap());
    many.push_str("\nnodes:\n");
    for i in 0..65_536 {
        many.push_str(&format!("  - {{id: n{i}, end: e}}\n"));
    }
    let nodes_line = line_of(&many, "nodes:");
    let text = check("many.yaml", many.as_bytes());
    assert!(
        text.contains(&format!("many.yaml:{nodes_line}: 65536 nodes; at most 65535 are allowed")),
        "{text}"
    );
    // A file over the size bound: line 1.
    let text = check("big.yaml", &vec![b'#'; 5 << 20]);
    assert!(
        text.contains("big.yaml:1: the file is larger than the 4194304 bytes allowed"),
        "{text}"
    );
}

#[test]
fn scripts_refuse_unknown_parameters_and_run_alone() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("typo.yaml");
    std::fs::write(
        &script,
        "flow: gmis-mail-trouble\nparams:\n  prefecture: 福島県\n  desk_phon: \"024\"\nscripts:\n  - name: s\n    steps:\n      - at: q1\n",
    )
    .unwrap();
    let out = flowbot().args(["test", &script.display().to_string()]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL {}:4: parameter `desk_phon`: flow `gmis-mail-trouble` declares no such parameter",
            script.display()
        )),
        "{text}"
    );

    // One shipped script file alone passes: its coverage is shown, not enforced.
    let out = flowbot().args(["test", "flows/tests/gmis-prefecture-note.yaml"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("edge not covered"), "{text}");
    assert!(text.contains("coverage: not enforced for scripts run alone"), "{text}");
    // The folder is the whole set: the gate holds (and passes for the shipped scripts).
    let out = flowbot().args(["test", "flows/tests"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A failing step names its line.
    let failing = dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        "flow: gmis-mail-trouble\nscripts:\n  - name: s\n    steps:\n      - at: q1\n\n      - press: そんなボタンはない\n",
    )
    .unwrap();
    let out = flowbot().args(["test", &failing.display().to_string()]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains(&format!("FAIL {}:7: script `s`, step 2: no button", failing.display())),
        "{text}"
    );
}

/// Waits (bounded) until the bot's log holds `needle`.
fn wait_for_log(bot: &BotProcess, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bot.log().contains(needle) {
        assert!(Instant::now() < deadline, "no `{needle}` in the log:\n{}", bot.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hangup(bot: &BotProcess) {
    let pid = bot.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_hits_a_bound_keeps_the_old_flow_serving() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.yaml");
    let good = std::fs::read_to_string(root().join("flows/gmis-mail-trouble.yaml")).unwrap();
    std::fs::write(&flow, &good).unwrap();
    let db = dir.path().join("bot.sqlite");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KB} && exec \"$0\" \"$@\""))
        .arg(flowbot_path())
        .args(["run", "--listen", "127.0.0.1:0", "--web", "--flow"])
        .arg(&flow)
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "info");
    for var in
        ["DATABASE_URL", "FLOWBOT_CONFIG", "FLOWBOT_LISTEN", "TELEGRAM_BOT_TOKEN", "DISCORD_TOKEN"]
    {
        cmd.env_remove(var);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut bot = BotProcess::spawn(cmd, "");

    // The exploding flow over the running one: refused with its problems, the bot serves on.
    std::fs::write(&flow, exploding_flow()).unwrap();
    hangup(&bot);
    wait_for_log(&bot, "flow not reloaded");
    assert!(bot.log().contains("parameter `rep`"), "{}", bot.log());
    let (status, _) = http_request(&bot.address, "GET /healthz HTTP/1.1", "", b"").await;
    assert_eq!(status, 200);
    let (status, page) = http_request(&bot.address, "GET /chat HTTP/1.1", "", b"").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&page));

    // A broken file too; then a good, changed flow is taken.
    std::fs::write(&flow, "flow: [unclosed\n").unwrap();
    hangup(&bot);
    wait_for_log(&bot, "flow.yaml:1");
    std::fs::write(&flow, good.replacen("title:", "title: 改", 1)).unwrap();
    hangup(&bot);
    wait_for_log(&bot, "flow reloaded");
    assert!(bot.child.try_wait().unwrap().is_none(), "the bot stopped:\n{}", bot.log());
    assert!(bot.terminate().success());
}
