//! The simulated users: each walks one conversation after another, on a new chat each time,
//! answering by the script drawn for it (presses, double presses, typed labels) and waiting for
//! the message its path shows next, however late or often it comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flowbot_tests::fake_telegram::FakeTelegram;

use super::args::Options;
use super::observe::{Observed, Sent};
use super::plan::{self, How, Path, Script};
use super::rng::Rng;

/// What the users share.
#[derive(Debug)]
pub struct World {
    pub fake: Arc<FakeTelegram>,
    pub seen: Observed,
    pub paths: Vec<Path>,
    pub options: Options,
    /// New conversations start only before this.
    pub chaos_until: Instant,
    /// Nobody waits past this.
    pub deadline: Instant,
    started: AtomicU64,
}

impl World {
    pub fn new(
        fake: Arc<FakeTelegram>,
        seen: Observed,
        paths: Vec<Path>,
        options: Options,
        chaos_until: Instant,
        deadline: Instant,
    ) -> Self {
        World { fake, seen, paths, options, chaos_until, deadline, started: AtomicU64::new(0) }
    }

    /// Takes one conversation from the budget, if there is one left.
    fn take_conversation(&self) -> bool {
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        self.options.conversations.is_none_or(|limit| n < limit)
    }
}

/// One answer given: on which message, how, and the updates it made.
#[derive(Debug, Clone)]
pub struct Answer {
    pub message_id: i64,
    pub how: How,
    pub updates: Vec<i64>,
    /// The callback queries of its presses, with when they were queued.
    pub callbacks: Vec<(String, Instant)>,
}

/// One conversation as the user had it.
#[derive(Debug, Clone)]
pub struct Record {
    pub chat: i64,
    pub script: Script,
    /// The update of `/start`.
    pub start: i64,
    pub answers: Vec<Answer>,
    /// How many of the path's messages the user saw (all of them: it reached the ending).
    pub shown: usize,
}

impl Record {
    pub fn finished(&self) -> bool {
        self.shown == self.script.path.nodes.len()
    }

    /// The updates whose reply the user still waits for (empty when finished).
    pub fn pending(&self) -> Vec<i64> {
        match self.shown {
            0 => vec![self.start],
            _ if self.finished() => Vec::new(),
            n => self.answers.get(n - 1).map(|a| a.updates.clone()).unwrap_or_default(),
        }
    }
}

/// User `u`: conversations until the chaos phase ends or the budget is spent; stops at the
/// first conversation that does not finish by the deadline.
pub async fn run(world: Arc<World>, u: usize) -> Vec<Record> {
    let mut rng = Rng::new(world.options.seed ^ (u as u64 + 1).wrapping_mul(0x0100_0000_01b3));
    let mut records = Vec::new();
    for n in 0.. {
        if Instant::now() >= world.chaos_until || !world.take_conversation() {
            break;
        }
        let chat = (u as i64 + 1) * 1_000_000 + n;
        let o = &world.options;
        let script = plan::script(&world.paths, &mut rng, o.double_press_share, o.typed_share);
        let record = converse(&world, chat, script, &mut rng).await;
        let finished = record.finished();
        records.push(record);
        if !finished {
            break;
        }
    }
    records
}

async fn converse(world: &World, chat: i64, script: Script, rng: &mut Rng) -> Record {
    let fake = &world.fake;
    let (start, _) = fake.user_message(chat, chat, "/start");
    let mut record = Record { chat, script, start, answers: Vec::new(), shown: 0 };
    let Some(mut current) = wait(world, chat, &record.script.path.nodes[0], 0).await else {
        return record;
    };
    record.shown = 1;
    let steps: Vec<(u8, How)> =
        record.script.path.choices.iter().copied().zip(record.script.how.iter().copied()).collect();
    for (i, (choice, how)) in steps.into_iter().enumerate() {
        let (lo, hi) = world.options.think_ms;
        tokio::time::sleep(Duration::from_millis(rng.range(lo, hi))).await;
        let Some((label, data)) = current.choice(choice).cloned() else {
            // The judge reports the message; the user cannot go on.
            return record;
        };
        let mut answer = Answer {
            message_id: current.message_id,
            how,
            updates: Vec::new(),
            callbacks: Vec::new(),
        };
        let presses = match how {
            How::Typed => 0,
            How::Press => 1,
            How::DoublePress => 2,
        };
        if how == How::Typed {
            let (update, _) = fake.user_message(chat, chat, &label);
            answer.updates.push(update);
        }
        for p in 0..presses {
            if p > 0 {
                tokio::time::sleep(Duration::from_millis(rng.range(0, 50))).await;
            }
            let (update, callback) = fake.press(chat, chat, current.message_id, &data);
            answer.updates.push(update);
            answer.callbacks.push((callback, Instant::now()));
        }
        record.answers.push(answer);
        let next = &record.script.path.nodes[i + 1];
        let Some(sent) = wait(world, chat, next, current.message_id).await else {
            return record;
        };
        record.shown += 1;
        current = sent;
    }
    record
}

/// The newest message in `chat` naming `node` after message `after`, once there is one (polled
/// every 20 ms until the world's deadline).
async fn wait(world: &World, chat: i64, node: &str, after: i64) -> Option<Sent> {
    loop {
        if let Some(sent) = world.seen.newest(chat, node, after) {
            return Some(sent);
        }
        if Instant::now() >= world.deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
