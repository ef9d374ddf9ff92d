//! Process-level tests of durability: `flowbot pipe` killed with SIGKILL mid-run and restarted,
//! and two processes on one PostgreSQL racing on the same conversations.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flowbot_core::{Conversation, ConversationKey, ConversationStore, Input, Timestamp};
use flowbot_tests::{TestDb, flowbot_path, gmis};
use serde_json::Value;

/// A running `flowbot pipe` and its answers, read on a thread so reads can time out.
struct Pipe {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: mpsc::Receiver<Value>,
}

impl Pipe {
    fn start(url: &str) -> Self {
        let mut child = Command::new(flowbot_path())
            .args(["pipe", "--database-url", url])
            .env_remove("DATABASE_URL")
            .env_remove("FLOWBOT_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flowbot pipe");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).expect("pipe writes JSON lines");
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Pipe { stdin: child.stdin.take(), child, answers }
    }

    fn send(&mut self, chat: &str, event: &str, text: &str) {
        let line = serde_json::json!({"chat": chat, "user": "u", "event": event, "text": text});
        let stdin = self.stdin.as_mut().expect("open stdin");
        // The process may already be dead (killed): later lines are simply lost, as on a crash.
        let _ = writeln!(stdin, "{line}");
    }

    /// The next answer, waiting at most `limit`.
    fn answer(&self, limit: Duration) -> Option<Value> {
        self.answers.recv_timeout(limit).ok()
    }

    /// Closes stdin and collects every remaining answer until the process exits.
    fn finish(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut all = Vec::new();
        while Instant::now() < deadline {
            match self.answers.recv_timeout(Duration::from_millis(200)) {
                Ok(v) => all.push(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "pipe exited with {status}");
        all
    }
}

/// What a conversation types: the start, then the labels of one root-to-ending path.
fn plans() -> Vec<Vec<String>> {
    let flow = gmis();
    let paths = [
        vec!["届いている", "届いている", "メールを見ることができた", "アクセスできない"],
        vec![
            "届いていない",
            "空き容量は十分にある",
            "迷惑メールフォルダにもメールがない",
            "ない",
            "まだ確認していない",
            "「送信完了」だった",
            "自分で都道府県窓口に連絡する",
        ],
        vec!["担当者が退職等で不在であり、不明", "まだ確認していない", "「不達」だった"],
        vec!["届いている", "届いていない", "空き容量は十分にある", "迷惑メールフォルダにあった"],
    ];
    (0..40)
        .map(|i| {
            let mut plan = vec!["/start".to_owned()];
            plan.extend(paths[i % paths.len()].iter().map(|s| s.to_string()));
            // Sanity: the plan is a real path of the flow.
            let (mut c, _) = Conversation::start(&flow, None, Timestamp(0));
            for label in &plan[1..] {
                assert!(c.step(&flow, Input::Text(label), Timestamp(0)).changed, "{label}");
            }
            assert!(c.is_finished(&flow));
            plan
        })
        .collect()
}

/// The node each conversation is at after typing `plan[..=step]`.
fn expected_node(plan: &[String], steps: usize) -> String {
    let flow = gmis();
    let (mut c, _) = Conversation::start(&flow, None, Timestamp(0));
    for label in &plan[1..steps] {
        c.step(&flow, Input::Text(label), Timestamp(0));
    }
    flow.node(c.node()).id().to_owned()
}

#[test]
fn sigkill_mid_conversations_loses_no_acknowledged_step_and_every_conversation_continues() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bot.sqlite").display());
    let plans = plans();
    // Phase 1: the first three inputs of every conversation, interleaved. Send 60% and wait for
    // half of those to be answered; then write 20% more and kill at once, so that at the moment
    // of the kill some lines are being processed and the last 20% were never sent.
    let phase1 = 3;
    let order: Vec<(usize, usize)> =
        (0..phase1).flat_map(|step| (0..plans.len()).map(move |c| (c, step))).collect();
    let (first, rest) = order.split_at(order.len() * 6 / 10);
    let in_flight = &rest[..order.len() / 5];
    let mut pipe = Pipe::start(&url);
    for &(c, step) in first {
        pipe.send(&format!("c{c}"), &format!("c{c}-{step}"), &plans[c][step]);
    }
    let mut acked: HashMap<String, Value> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.len() < first.len() / 2 && Instant::now() < deadline {
        if let Some(a) = pipe.answer(Duration::from_secs(5)) {
            assert_eq!(a["status"], "done", "{a}");
            acked.insert(a["event"].as_str().unwrap().to_owned(), a);
        }
    }
    assert!(acked.len() >= first.len() / 2, "only {} answers before the deadline", acked.len());
    for &(c, step) in in_flight {
        pipe.send(&format!("c{c}"), &format!("c{c}-{step}"), &plans[c][step]);
    }
    pipe.child.kill().expect("SIGKILL");
    pipe.child.wait().expect("reap");
    // Answers already written before the kill are acknowledgements too.
    while let Some(a) = pipe.answer(Duration::from_millis(100)) {
        acked.insert(a["event"].as_str().unwrap().to_owned(), a);
    }
    assert!(acked.len() < first.len() + in_flight.len(), "the kill came after everything was done");

    // Phase 2: a new process; the platform redelivers every phase-1 event, then the rest.
    let mut pipe = Pipe::start(&url);
    for (c, plan) in plans.iter().enumerate() {
        for (step, text) in plan.iter().enumerate() {
            pipe.send(&format!("c{c}"), &format!("c{c}-{step}"), text);
        }
    }
    let answers = pipe.finish();
    assert_eq!(answers.len(), plans.iter().map(Vec::len).sum::<usize>());
    let mut applied_twice = Vec::new();
    for a in &answers {
        let event = a["event"].as_str().unwrap();
        match a["status"].as_str() {
            Some("duplicate") => {}
            Some("done") if acked.contains_key(event) => applied_twice.push(event.to_owned()),
            Some("done") => {
                // Applied now: it must take the conversation exactly where the plan says.
                let (c, step) = event[1..].split_once('-').unwrap();
                let plan = &plans[c.parse::<usize>().unwrap()];
                let step: usize = step.parse().unwrap();
                assert_eq!(a["node"], expected_node(plan, step + 1).as_str(), "{a}");
            }
            _ => panic!("unexpected answer {a}"),
        }
    }
    assert!(
        applied_twice.is_empty(),
        "acknowledged before the kill, applied again: {applied_twice:?}"
    );

    // Every conversation ended where its plan leads.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(flowbot_store::SqlStore::open(&url)).unwrap();
    for (c, plan) in plans.iter().enumerate() {
        let key = ConversationKey::new("pipe", &format!("c{c}"), "u");
        let stored = rt.block_on(store.load(&key)).unwrap().expect("conversation kept");
        assert_eq!(stored.state.node, expected_node(plan, plan.len()), "c{c}");
        assert_eq!(stored.state.path.len(), plan.len() - 1, "c{c}: each answer applied once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_lose_no_update_and_apply_none_twice() {
    let db = TestDb::postgres().await;
    let url = db.url();
    // Create the schema once, so that the two processes do not race on migrations.
    drop(db.store().await);
    let (mut a, mut b) = (Pipe::start(&url), Pipe::start(&url));
    const CHATS: usize = 12;
    const SHARED: usize = 8; // events both processes receive (a redelivery to another replica)
    const OWN: usize = 8; // events each process alone receives, racing on the same conversation
    for round in 0..SHARED.max(OWN) {
        for c in 0..CHATS {
            let chat = format!("c{c}");
            let text = if round == 0 { "/start" } else { "/restart" };
            if round < SHARED {
                let event = format!("shared-{c}-{round}");
                a.send(&chat, &event, text);
                b.send(&chat, &event, text);
            }
            if round < OWN {
                a.send(&chat, &format!("a-{c}-{round}"), "/restart");
                b.send(&chat, &format!("b-{c}-{round}"), "/restart");
            }
        }
    }
    let (from_a, from_b) = (a.finish(), b.finish());
    let mut status: HashMap<String, Vec<String>> = HashMap::new();
    for answer in from_a.iter().chain(&from_b) {
        assert_ne!(answer["status"], "error", "{answer}");
        status
            .entry(answer["event"].as_str().unwrap().to_owned())
            .or_default()
            .push(answer["status"].as_str().unwrap().to_owned());
    }
    for (event, seen) in &status {
        let done = seen.iter().filter(|s| *s == "done").count();
        assert_eq!(done, 1, "{event}: {seen:?}");
    }
    assert_eq!(status.len(), CHATS * (SHARED + 2 * OWN));

    // Every applied update shows in the revision and in the log: none lost, none doubled.
    let store = db.store().await;
    for c in 0..CHATS {
        let key = ConversationKey::new("pipe", &format!("c{c}"), "u");
        let stored = store.load(&key).await.unwrap().expect("conversation");
        // One revision per applied input: the start, then one per restart.
        assert_eq!(stored.state.revision, (SHARED + 2 * OWN) as u64, "c{c}");
    }
    // And one log entry per applied input.
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let logged: i64 =
        sqlx::query("SELECT COUNT(*) FROM transitions").fetch_one(&mut conn).await.unwrap().get(0);
    assert_eq!(logged, (CHATS * (SHARED + 2 * OWN)) as i64);
    conn.close().await.unwrap();
    db.cleanup().await;
}
