//! The verdict: each conversation's messages against its path, and the figures of the report.
//!
//! A conversation is *completed* when every message of its path arrived in order (and every
//! pressed question was marked answered); *stuck* when the user still waits and the bot never
//! confirmed the update waited on; *lost* counts expected replies that never came although
//! their update was confirmed (committed), answered questions never marked, and presses never
//! answered with no SIGKILL after them; *wrong* counts messages no path explains; *doubled*
//! counts second copies of a step's message, except the documented at-least-once resend: a copy
//! whose first went out within the resend window before a SIGKILL and itself after it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::observe::Observed;
use super::plan::How;
use super::users::Record;

/// A SIGKILL may land while the fake is still answering a call the killed process made.
const KILL_SLACK: Duration = Duration::from_millis(500);
/// How many examples of each finding are printed.
const EXAMPLES: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub conversations: u64,
    pub completed: u64,
    pub stuck: u64,
    pub wrong: u64,
    pub lost: u64,
    pub lost_messages: u64,
    pub lost_edits: u64,
    pub lost_answers: u64,
    pub doubled: u64,
    pub resent_after_kill: u64,
    pub messages_expected: u64,
    pub edits_expected: u64,
    pub presses: u64,
    pub double_presses: u64,
    pub typed: u64,
    pub answers_missing_after_kill: u64,
    /// The longest time from a resent message's first copy to the SIGKILL that followed it.
    pub longest_resend_gap: Duration,
    pub examples: Vec<String>,
}

impl Tally {
    /// Nothing lost, doubled, wrong or stuck.
    pub fn clean(&self) -> bool {
        self.lost + self.doubled + self.wrong + self.stuck == 0
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 4 * EXAMPLES {
            self.examples.push(text);
        }
    }
}

/// Judges every conversation; `confirmed` is the highest offset the bot confirmed.
pub fn judge(
    records: &[Record],
    seen: &Observed,
    kills: &[Instant],
    confirmed: i64,
    resend_window: Duration,
) -> Tally {
    let mut t = Tally::default();
    let known: std::collections::HashSet<i64> = records.iter().map(|r| r.chat).collect();
    for chat in seen.chats() {
        if !known.contains(&chat) {
            t.wrong += seen.chat(chat).sent.len() as u64;
            t.example(format!("chat {chat}: messages to a chat nobody wrote in"));
        }
    }
    for record in records {
        judge_one(record, seen, kills, confirmed, resend_window, &mut t);
    }
    t
}

fn judge_one(
    r: &Record,
    seen: &Observed,
    kills: &[Instant],
    confirmed: i64,
    resend_window: Duration,
    t: &mut Tally,
) {
    let chat = seen.chat(r.chat);
    let nodes = &r.script.path.nodes;
    let findings = t.examples.len();
    t.conversations += 1;
    t.messages_expected += nodes.len() as u64;
    // The first copy of each of the path's messages, as they arrived.
    let mut first: Vec<Instant> = Vec::new();
    let mut wrong = 0;
    for sent in &chat.sent {
        let Some(node) = sent.node.as_deref() else {
            wrong += 1;
            t.example(format!("chat {}: a message without buttons", r.chat));
            continue;
        };
        if first.len() < nodes.len() && node == nodes[first.len()] {
            first.push(sent.at);
            continue;
        }
        match nodes[..first.len()].iter().position(|n| n == node) {
            Some(step) => {
                let before = first[step];
                let kill = kills.iter().find(|&&k| {
                    before <= k + KILL_SLACK && k <= before + resend_window && sent.at > k
                });
                match kill {
                    Some(&k) => {
                        t.resent_after_kill += 1;
                        let gap = k.saturating_duration_since(before);
                        t.longest_resend_gap = t.longest_resend_gap.max(gap);
                    }
                    None => {
                        t.doubled += 1;
                        t.example(format!(
                            "chat {}: message {} ({node}) sent again {:.0?} after the first \
                             copy, no SIGKILL between",
                            r.chat,
                            sent.message_id,
                            sent.at.saturating_duration_since(before)
                        ));
                    }
                }
            }
            None => {
                wrong += 1;
                let expected = nodes.get(first.len()).map_or("nothing", String::as_str);
                t.example(format!(
                    "chat {}: message {} shows {node}, expected {expected}",
                    r.chat, sent.message_id
                ));
            }
        }
    }
    t.wrong += wrong;
    // The answers given, and what each should have brought.
    let mut lost_edits = 0;
    for (i, answer) in r.answers.iter().enumerate() {
        match answer.how {
            How::Typed => t.typed += 1,
            How::Press => t.presses += 1,
            How::DoublePress => {
                t.presses += 1;
                t.double_presses += 1;
            }
        }
        // A press that moved on marks its question answered (an edit, before the next message).
        if answer.how != How::Typed && first.len() > i + 1 {
            t.edits_expected += 1;
            if !chat.edited.contains(&answer.message_id) {
                lost_edits += 1;
                t.example(format!(
                    "chat {}: question message {} pressed, never marked answered",
                    r.chat, answer.message_id
                ));
            }
        }
        for (callback, at) in &answer.callbacks {
            if seen.answered(callback) {
                continue;
            }
            if kills.iter().any(|k| k >= at) {
                t.answers_missing_after_kill += 1;
            } else {
                t.lost_answers += 1;
                t.example(format!("chat {}: press {callback} never answered", r.chat));
            }
        }
    }
    t.lost_edits += lost_edits;
    let missing = nodes.len() - first.len();
    let finished = missing == 0;
    if !finished {
        // Only the next message can be missing: the user waits for it before going on.
        let committed = r.pending().iter().any(|&u| u < confirmed);
        if committed {
            t.lost_messages += 1;
            t.example(format!(
                "chat {}: the reply showing {} never came (its update was confirmed)",
                r.chat,
                nodes[first.len()]
            ));
        } else {
            t.stuck += 1;
            t.example(format!(
                "chat {}: stuck before {} (its update never confirmed)",
                r.chat,
                nodes[first.len()]
            ));
        }
    }
    t.lost = t.lost_messages + t.lost_edits + t.lost_answers;
    if finished && wrong == 0 && lost_edits == 0 {
        t.completed += 1;
    }
    if t.examples.len() > findings {
        t.example(trace(r, &chat));
    }
}

/// A conversation told in full: the path, the answers given and the bot's messages.
fn trace(r: &Record, chat: &super::observe::Chat) -> String {
    let answers: Vec<String> = r
        .answers
        .iter()
        .zip(&r.script.path.choices)
        .map(|(a, c)| {
            format!("{:?} choice {c} on {} (updates {:?})", a.how, a.message_id, a.updates)
        })
        .collect();
    let sent: Vec<String> = chat
        .sent
        .iter()
        .map(|s| format!("{}={}", s.message_id, s.node.as_deref().unwrap_or("-")))
        .collect();
    format!(
        "chat {}: path {} (/start: update {}); answers: {}; messages: {}; edited: {:?}",
        r.chat,
        r.script.path.nodes.join(">"),
        r.start,
        answers.join(", "),
        sent.join(" "),
        chat.edited
    )
}

/// The figures beside the tally that the report shows.
#[derive(Debug, Clone)]
pub struct Run {
    pub backend: &'static str,
    pub seed: u64,
    pub users: usize,
    pub chaos: Duration,
    pub settled_in: Duration,
    pub kills: usize,
    pub starts: u32,
    pub exits: Vec<String>,
    pub injected_429: u64,
    pub injected_5xx: u64,
    pub replayed_same_id: u64,
    pub replayed_same_callback: u64,
    pub api_calls: usize,
    /// The bot's token was found in its log.
    pub token_in_log: bool,
}

impl Run {
    /// The tally is clean, the bot never exited unasked, and its log holds no token.
    pub fn clean(&self, t: &Tally) -> bool {
        t.clean() && self.exits.is_empty() && !self.token_in_log
    }
}

pub fn table(run: &Run, t: &Tally) -> String {
    let rows: Vec<(&str, String)> = vec![
        ("backend", run.backend.to_owned()),
        ("seed", run.seed.to_string()),
        ("users at once", run.users.to_string()),
        ("chaos phase", format!("{:.0?}", run.chaos)),
        ("calm phase settled in", format!("{:.1?}", run.settled_in)),
        ("SIGKILLs", run.kills.to_string()),
        ("bot starts", run.starts.to_string()),
        ("exits nobody asked for", run.exits.len().to_string()),
        ("token in the bot's log", if run.token_in_log { "yes" } else { "no" }.to_owned()),
        ("Bot API calls", run.api_calls.to_string()),
        ("answered 429 (retry_after 1 s)", run.injected_429.to_string()),
        ("answered 500", run.injected_5xx.to_string()),
        ("updates delivered twice (same id)", run.replayed_same_id.to_string()),
        ("presses delivered twice (same callback)", run.replayed_same_callback.to_string()),
        ("conversations", t.conversations.to_string()),
        ("completed", t.completed.to_string()),
        ("stuck", t.stuck.to_string()),
        ("wrong messages", t.wrong.to_string()),
        (
            "replies expected (messages + edits)",
            (t.messages_expected + t.edits_expected).to_string(),
        ),
        ("replies lost", t.lost.to_string()),
        ("  messages", t.lost_messages.to_string()),
        ("  answered-marks (edits)", t.lost_edits.to_string()),
        ("  press answers, no kill after", t.lost_answers.to_string()),
        ("replies doubled", t.doubled.to_string()),
        ("resent after a SIGKILL (at least once)", t.resent_after_kill.to_string()),
        ("  longest first copy to kill", format!("{:.0?}", t.longest_resend_gap)),
        ("press answers lost to a SIGKILL", t.answers_missing_after_kill.to_string()),
        ("presses (of them double)", format!("{} ({})", t.presses, t.double_presses)),
        ("typed answers", t.typed.to_string()),
    ];
    let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
}

pub fn json(run: &Run, t: &Tally) -> Value {
    json!({
        "soak": "chaos",
        "backend": run.backend,
        "seed": run.seed,
        "users": run.users,
        "chaos_seconds": run.chaos.as_secs_f64(),
        "settled_seconds": run.settled_in.as_secs_f64(),
        "kills": run.kills,
        "starts": run.starts,
        "unasked_exits": run.exits.len(),
        "api_calls": run.api_calls,
        "injected_429": run.injected_429,
        "injected_5xx": run.injected_5xx,
        "duplicated_same_id": run.replayed_same_id,
        "duplicated_same_callback": run.replayed_same_callback,
        "conversations": t.conversations,
        "completed": t.completed,
        "stuck": t.stuck,
        "wrong": t.wrong,
        "replies_expected": t.messages_expected + t.edits_expected,
        "lost": t.lost,
        "lost_messages": t.lost_messages,
        "lost_edits": t.lost_edits,
        "lost_press_answers": t.lost_answers,
        "doubled": t.doubled,
        "resent_after_kill": t.resent_after_kill,
        "press_answers_lost_to_kill": t.answers_missing_after_kill,
        "presses": t.presses,
        "double_presses": t.double_presses,
        "typed": t.typed,
        "token_in_log": run.token_in_log,
        "clean": run.clean(t),
    })
}
