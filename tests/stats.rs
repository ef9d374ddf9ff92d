//! `flowbot stats --format json|mermaid|svg`: the picture's counts checked against a known set
//! of conversations, where paths branch and merge, with drop-off and a time range.

use std::sync::Arc;

use flowbot_core::{ConversationKey, Input, Store, Timestamp};
use flowbot_store::{Handled, Service, ServiceOptions, Update};
use flowbot_tests::{TestDb, flowbot, gmis, root, stdout};
use serde_json::Value;

/// 2025-04-01 00:00 in Japan (+09:00), in milliseconds.
const APRIL_1: u64 = 1_743_433_200_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

/// The conversations: the store suite's six (merging into q3 and into m3_change) on April 1st
/// at 10:00, one more started late on April 1st and answered on April 3rd, and two on April 3rd.
async fn converse(db: &TestDb) {
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    let source = std::fs::read_to_string(root().join("flows/gmis-mail-trouble.yaml")).unwrap();
    let service = Service::new(store, &source, "gmis", ServiceOptions::default(), Timestamp(0))
        .await
        .unwrap();
    let day1 = APRIL_1 + 10 * HOUR;
    let day3 = APRIL_1 + 2 * DAY + 10 * HOUR;
    let conversations: [(&str, u64, &[&str]); 8] = [
        ("a", day1, &["届いていない", "空き容量が不足している"]), // q1 -> q3 -> m1
        ("b", day1, &["届いている", "届いていない", "空き容量が不足している"]), // q1 -> q2 -> q3 -> m1
        ("c", day1, &["届いている", "届いていない"]),                           // stops at q3
        ("d", day1, &["担当者が退職等で不在であり、不明", "「送信完了」だった"]), // -> m3_change
        (
            "e",
            day1,
            &[
                "届いていない",
                "空き容量は十分にある",
                "迷惑メールフォルダにもメールがない",
                "ない",
                "「送信完了」だった",
            ],
        ), // -> m5 -> m3_change
        ("f", day1, &["届いている", "/back", "届いていない"]), // back, then stops at q3
        ("g", day3, &["届いていない", "空き容量が不足している"]), // -> m1
        ("h", day3, &["届いている"]),                          // stops at q2
    ];
    for (user, at, lines) in conversations {
        let k = ConversationKey::new("test", "chat", user);
        say(&service, &k, "/start", at).await;
        for (n, line) in lines.iter().enumerate() {
            say(&service, &k, line, at + 1 + n as u64).await;
        }
    }
    // Started at 23:30 on April 1st, answered on April 3rd.
    let k = ConversationKey::new("test", "chat", "i");
    say(&service, &k, "/start", APRIL_1 + 23 * HOUR + HOUR / 2).await;
    say(&service, &k, "届いていない", day3 + HOUR).await;
}

async fn say(service: &Service, k: &ConversationKey, text: &str, at: u64) {
    let update = Update { key: k, event: None, input: Input::Text(text), now: Timestamp(at) };
    let handled = service.handle(update, |_, _| ()).await.unwrap();
    assert_eq!(handled, Handled::Done(()));
}

fn stats(url: &str, extra: &[&str]) -> String {
    let out = flowbot().args(["stats", "--database-url", url]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    stdout(&out)
}

fn database() -> (TestDb, String) {
    let db = TestDb::sqlite();
    tokio::runtime::Runtime::new().unwrap().block_on(converse(&db));
    let url = db.url();
    (db, url)
}

fn node<'a>(version: &'a Value, id: &str) -> &'a Value {
    version["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap()
}

fn edge(version: &Value, from: &str, label: &str) -> u64 {
    let edges = version["edges"].as_array().unwrap();
    let e = edges.iter().find(|e| e["from"] == from && e["label"] == label);
    e.unwrap_or_else(|| panic!("no edge {from} {label}"))["count"].as_u64().unwrap()
}

#[test]
fn json_counts_branches_merges_and_drop_off_within_the_days_asked() {
    let (_db, url) = database();
    let report: Value = serde_json::from_str(&stats(&url, &["--format", "json"])).unwrap();
    let versions = report["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    let v = &versions[0];
    assert_eq!((v["current"].as_bool(), v["source_kept"].as_bool()), (Some(true), Some(true)));
    assert_eq!(v["conversations"], 9);
    assert_eq!(node(v, "q3")["reached"], 7, "a, b, c, e, f, g, i: q3 from q1 and from q2");
    assert_eq!(edge(v, "q1", "届いていない"), 5, "a, e, f, g, i");
    assert_eq!(edge(v, "q2", "届いていない"), 2, "b, c");
    assert_eq!(node(v, "m1")["reached"], 3);
    assert_eq!(node(v, "m1")["dropped"], 0, "an ending is not a drop-off");
    assert_eq!(node(v, "m3_change")["reached"], 2, "from m3_absent and from m5");
    assert_eq!(edge(v, "m3_absent", "「送信完了」だった"), 1);
    assert_eq!(edge(v, "m5", "「送信完了」だった"), 1);
    assert_eq!(node(v, "q3")["dropped"], 3, "c, f and i");
    assert_eq!(node(v, "q2")["dropped"], 1, "h");
    assert_eq!(node(v, "greeting")["reached"], 9, "the start passes the greeting");
    let stopped: u64 =
        v["nodes"].as_array().unwrap().iter().map(|n| n["stopped"].as_u64().unwrap()).sum();
    assert_eq!(stopped, 9, "every conversation stops once");

    // April 1st only: i has only started (it stopped at q1); g and h are not counted.
    let day1: Value =
        serde_json::from_str(&stats(&url, &["--format", "json", "--until", "2025-04-01"])).unwrap();
    let v = &day1["versions"][0];
    assert_eq!((day1["until"].as_str(), day1["since"].as_str()), (Some("2025-04-01"), None));
    assert_eq!(v["conversations"], 7);
    assert_eq!(node(v, "q3")["reached"], 5);
    assert_eq!(edge(v, "q1", "届いていない"), 3, "a, e, f");
    assert_eq!(edge(v, "q1", "届いている"), 3, "b, c, f");
    assert_eq!(node(v, "q1")["dropped"], 1, "i, as of April 1st");
    assert_eq!(node(v, "q2")["dropped"], 0);
    assert_eq!(node(v, "m1")["reached"], 2);

    // From April 2nd: g, h and i's answer.
    let later: Value =
        serde_json::from_str(&stats(&url, &["--format", "json", "--since", "2025-04-02"])).unwrap();
    let v = &later["versions"][0];
    assert_eq!(v["conversations"], 3);
    assert_eq!(edge(v, "q1", "届いていない"), 2, "g, i");
    assert_eq!(node(v, "q3")["dropped"], 1, "i");
    assert_eq!(node(v, "m3_change")["reached"], 0);
    // A day with nothing: no version at all.
    let none: Value = serde_json::from_str(&stats(
        &url,
        &["--format", "json", "--since", "2025-04-02", "--until", "2025-04-02"],
    ))
    .unwrap();
    assert_eq!(none["versions"].as_array().map(Vec::len), Some(0));
}

#[test]
fn mermaid_draws_the_render_diagram_with_the_counts() {
    let (_db, url) = database();
    let diagram = stats(&url, &["--format", "mermaid", "--until", "2025-04-01"]);
    assert!(diagram.contains("version "), "{diagram}");
    assert!(diagram.contains("\nflowchart TD\n"), "{diagram}");
    for line in [
        "start((\"/start\")) -->|\"(7)\"| greeting",
        "greeting -->|\"(7)\"| q1",
        "q1 -->|\"届いていない (3)\"| q3",
        "q2 -->|\"届いていない (2)\"| q3",
        "m3_absent -->|\"「送信完了」だった (1)\"| m3_change",
        "m5 -->|\"「送信完了」だった (1)\"| m3_change",
    ] {
        assert!(diagram.contains(line), "missing {line}:\n{diagram}");
    }
    assert!(diagram.contains("<br/>▶ 5  ■ 2\"}}"), "q3 reached by 5, 2 stopped: {diagram}");
    let class = diagram.lines().find(|l| l.starts_with("  class ")).unwrap();
    let dropped: Vec<&str> =
        class.trim_start_matches("  class ").trim_end_matches(" dropped").split(',').collect();
    assert_eq!(dropped, ["q1", "q3", "m3_change"], "{class}");
    // Every node and edge of `flowbot render` is there, in its order.
    let render = flowbot().args(["render", "--format", "mermaid"]).output().unwrap();
    let render = stdout(&render);
    let ids = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("  class"))
            .map(|l| l.split(['{', '[', '(', ' ', '-']).nth(2).unwrap_or("").to_owned())
            .collect()
    };
    let drawn = ids(&diagram);
    assert_eq!(drawn[..ids(&render).len()], ids(&render)[..]);
}

#[test]
fn svg_is_a_standalone_picture_with_the_japanese_titles_and_the_counts() {
    let (_db, url) = database();
    let picture = stats(&url, &["--format", "svg"]);
    let doc = roxmltree::Document::parse(&picture).expect("well-formed XML");
    let svg = doc.root_element();
    assert_eq!(svg.tag_name().name(), "svg");
    assert_eq!(svg.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
    assert!(svg.attribute("font-family").unwrap().contains("'Noto Sans CJK JP'"));
    assert!(!picture.contains("<image") && !picture.contains("href="), "standalone");
    let flow = gmis();
    let group = |id: &str| {
        svg.descendants()
            .find(|n| n.attribute("id") == Some(&format!("node-{id}")))
            .unwrap_or_else(|| panic!("no node {id}"))
    };
    let texts = |n: roxmltree::Node<'_, '_>| -> Vec<String> {
        n.descendants().filter(|t| t.is_text()).map(|t| t.text().unwrap().to_owned()).collect()
    };
    for node in flow.nodes() {
        let g = group(node.id());
        let all = texts(g).join("\n");
        let title = node.title();
        let shown = title.chars().take(5).collect::<String>();
        assert!(all.contains(&shown), "{}: {all}", node.id());
        assert!(all.contains(node.id()));
    }
    let q3 = texts(group("q3"));
    assert!(q3.contains(&"▶ 7".to_owned()), "{q3:?}");
    assert!(q3.contains(&"3".to_owned()), "the drop-off badge: {q3:?}");
    let m1 = texts(group("m1"));
    assert!(m1.contains(&"▶ 3".to_owned()), "{m1:?}");
    assert!(
        m1.contains(&"対応方法1（メールボックスの空き容量が不足していた場合）".to_owned()),
        "the whole title is the tooltip: {m1:?}"
    );
    let labels: Vec<String> = svg
        .descendants()
        .filter(|n| n.attribute("class") == Some("edge-label"))
        .flat_map(texts)
        .collect();
    assert!(labels.contains(&"届いていない (5)".to_owned()), "{labels:?}");
    assert!(labels.contains(&"(9)".to_owned()), "the start: {labels:?}");
}
