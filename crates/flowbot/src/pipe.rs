//! `flowbot pipe`: the bot over standard input and output, one JSON object per line.
//!
//! A generic adapter for scripts and other systems (and the process-level tests): each input
//! line is an update, each output line the bot's answer, written only after the update was
//! committed to the store — a line on stdout is an acknowledgement. Updates of one conversation
//! are applied in input order; different conversations in parallel.
//!
//! In: `{"chat": "c1", "user": "u1", "event": "e1", "text": "2"}`, with exactly one of `text`,
//! `press` (a button token), `start` (an entry name, or `true`), `back`, `restart`, `help`;
//! `platform` defaults to `pipe`, `event` (for deduplication) is optional.
//! Out: `{"event": "e1", "chat": "c1", "user": "u1", "status": "done", "node": "q2",
//! "replies": [...]}`; `status` is `done`, `duplicate` or `error`.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use flowbot_core::{ConversationKey, Flow, Input, Outcome, Part, View};
use flowbot_store::{Handled, Service, Update};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::flows::FlowSource;

/// Conversations are spread over this many workers; each applies its updates in order.
const WORKERS: usize = 32;
/// Input lines longer than this are refused (and skipped) rather than buffered.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default = "default_platform")]
    platform: String,
    chat: String,
    user: String,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    press: Option<String>,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    back: bool,
    #[serde(default)]
    restart: bool,
    #[serde(default)]
    help: bool,
}

fn default_platform() -> String {
    "pipe".to_owned()
}

impl Line {
    fn input(&self) -> Result<Input<'_>, String> {
        let mut inputs = Vec::new();
        if let Some(text) = &self.text {
            inputs.push(Input::Text(text));
        }
        if let Some(token) = &self.press {
            inputs.push(Input::Press(token));
        }
        match &self.start {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) | Some(Value::Null) => {
                inputs.push(Input::Start { entry: None })
            }
            Some(Value::String(entry)) => inputs.push(Input::Start { entry: Some(entry) }),
            Some(other) => return Err(format!("`start` is an entry name or true, not {other}")),
        }
        for (set, input) in
            [(self.back, Input::Back), (self.restart, Input::Restart), (self.help, Input::Help)]
        {
            if set {
                inputs.push(input);
            }
        }
        match inputs.as_slice() {
            [input] => Ok(*input),
            [] => Err("give one of text, press, start, back, restart, help".to_owned()),
            _ => Err("give only one of text, press, start, back, restart, help".to_owned()),
        }
    }
}

pub async fn run(service: Arc<Service>, flow_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (out_tx, mut out_rx) = mpsc::channel::<String>(1024);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = out_rx.recv().await {
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let mut workers = Vec::with_capacity(WORKERS);
    let mut senders = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let (tx, mut rx) = mpsc::channel::<Line>(256);
        let service = service.clone();
        let out = out_tx.clone();
        workers.push(tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                let answer = apply(&service, &line).await;
                if out.send(answer.to_string() + "\n").await.is_err() {
                    break;
                }
            }
        }));
        senders.push(tx);
    }

    let mut reload = hangup()?;
    let mut stop = Box::pin(crate::shutdown());
    let mut input = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = tokio::select! {
            read = read_line(&mut input, &mut buf) => read?,
            () = &mut stop => break,
            Some(()) = reload.recv() => {
                reload_flow(&service, flow_path, &out_tx).await;
                continue;
            }
        };
        if read == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(&text) {
            Ok(line) => {
                let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one((
                    &line.platform,
                    &line.chat,
                    &line.user,
                ));
                let worker = &senders[(hash % WORKERS as u64) as usize];
                if worker.send(line).await.is_err() {
                    break;
                }
            }
            Err(err) => {
                let answer = json!({"status": "error", "error": format!("bad input line: {err}")});
                let _ = out_tx.send(answer.to_string() + "\n").await;
            }
        }
    }
    // Finish what was read: every accepted line is applied and answered before exiting.
    drop(senders);
    for worker in workers {
        worker.await.context("a worker failed")?;
    }
    drop(out_tx);
    writer.await.context("the writer failed")?;
    Ok(ExitCode::SUCCESS)
}

async fn apply(service: &Service, line: &Line) -> Value {
    let head = json!({"event": line.event, "chat": line.chat, "user": line.user});
    let with = |mut v: Value, extra: Value| {
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    let input = match line.input() {
        Ok(input) => input,
        Err(err) => return with(head, json!({"status": "error", "error": err})),
    };
    let key = ConversationKey::new(&line.platform, &line.chat, &line.user);
    let event = line.event.as_ref().map(|e| format!("{}:{e}", line.platform));
    let update = Update { key: &key, event: event.as_deref(), input, now: service.now() };
    match service.handle(update, render).await {
        Ok(Handled::Done(body)) => with(head, body),
        Ok(Handled::Duplicate) => with(head, json!({"status": "duplicate"})),
        Err(err) => with(head, json!({"status": "error", "error": err.to_string()})),
    }
}

fn render(_: &Flow, outcome: &Outcome<'_>) -> Value {
    let view = View::new(outcome);
    let mut replies: Vec<Value> = Vec::with_capacity(view.paragraphs.len());
    let mut paragraphs = view.paragraphs.iter().peekable();
    while let Some(p) = paragraphs.next() {
        let text = &*p.text;
        replies.push(match p.part {
            Part::Notice(kind) => json!({"kind": "notice", "notice": kind.name(), "text": text}),
            Part::Say(node) => json!({"kind": "say", "node": node.id(), "text": text}),
            Part::Handoff(h) => {
                json!({"kind": "handoff", "reference": h.submission.reference, "text": text})
            }
            Part::Note => continue,
            Part::Prompt(node) => {
                let note = paragraphs.next_if(|n| matches!(n.part, Part::Note)).map(|n| &*n.text);
                let buttons: Vec<Value> = view
                    .prompt
                    .iter()
                    .flat_map(|p| p.buttons())
                    .map(|b| json!({"label": b.label, "token": b.token.to_string()}))
                    .collect();
                let ending = view.prompt.as_ref().is_some_and(|p| p.ending);
                json!({"kind": "prompt", "node": node.id(), "text": text, "note": note,
                       "ending": ending, "buttons": buttons})
            }
        });
    }
    let node = view.prompt.as_ref().map(|p| p.node.id());
    json!({"status": "done", "node": node, "replies": replies})
}

/// Reads one line of at most [`MAX_LINE`] bytes (the rest of a longer line is dropped).
async fn read_line(
    input: &mut BufReader<tokio::io::Stdin>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// SIGHUP: reload the flow file (running conversations finish on their version).
fn hangup() -> anyhow::Result<mpsc::Receiver<()>> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(tx);
    Ok(rx)
}

async fn reload_flow(service: &Service, path: Option<&Path>, out: &mpsc::Sender<String>) {
    let result = match FlowSource::read(path) {
        Ok(source) => service
            .reload(&source.text, &source.origin, service.now())
            .await
            .map(|v| v.to_string())
            .map_err(anyhow::Error::from),
        Err(err) => Err(err),
    };
    let line = match result {
        Ok(version) => json!({"status": "reloaded", "version": version}),
        Err(err) => {
            json!({"status": "error", "error": format!("reload failed, the old flow stays: {err:#}")})
        }
    };
    let _ = out.send(line.to_string() + "\n").await;
}
