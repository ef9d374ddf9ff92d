//! `flowbot chat`: a conversation in the terminal, or a scripted one from standard input.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use flowbot_core::{Action, Conversation, ConversationKey, Flow, Input, Outcome, Part, View};
use flowbot_store::{Handled, Service, Update};

use crate::store::now;

/// Typed lines longer than this are cut before they reach the engine (which matches nothing
/// that long anyway); the rest of the line is read and dropped.
const MAX_LINE_BYTES: usize = 64 * 1024;

pub fn run(flow: &Flow, entry: Option<&str>) -> anyhow::Result<ExitCode> {
    let (mut conv, outcome) = Conversation::start(flow, entry, now());
    let mut step = |line: &str, out: &mut dyn Write| -> io::Result<()> {
        let mut outcome = conv.step(flow, Input::Text(line), now());
        // Kept nowhere (no store): a reference no desk could look up is not shown.
        if let Some(handoff) = outcome.handoff.as_mut() {
            handoff.submission.reference.clear();
        }
        write_view(out, &View::new(&outcome))
    };
    converse(Some(&View::new(&outcome)), &mut step)
}

/// A conversation kept in the store under `--user`: it continues across runs.
pub fn run_stored(
    service: &Service,
    user: &str,
    entry: Option<&str>,
    rt: &tokio::runtime::Runtime,
    config: &crate::config::Config,
) -> anyhow::Result<ExitCode> {
    // Requests submitted here are delivered from here too (webhooks; chats need `flowbot run`).
    let stop = tokio_util::sync::CancellationToken::new();
    let delivery = {
        let _runtime = rt.enter();
        match crate::handoff::start_handoff(service, config, stop.clone()) {
            Ok(started) => started,
            Err(err) => {
                eprintln!("flowbot: requests are kept for `flowbot run` to deliver: {err:#}");
                None
            }
        }
    };
    let result = chat_stored(service, user, entry, rt);
    if let Some(started) = delivery {
        // What is in flight finishes (briefly); anything that fails stays in the store for the
        // next run.
        stop.cancel();
        let _ = rt.block_on(started.task);
    }
    result
}

fn chat_stored(
    service: &Service,
    user: &str,
    entry: Option<&str>,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let key = ConversationKey::new("cli", "terminal", user);
    let render = |_: &Flow, outcome: &Outcome<'_>| {
        let mut buf = Vec::new();
        let _ = write_view(&mut buf, &View::new(outcome));
        buf
    };
    let handle = |input: Input<'_>| -> anyhow::Result<Vec<u8>> {
        let update = Update { key: &key, event: None, input, now: service.now() };
        match rt.block_on(service.handle(update, render))? {
            Handled::Done(bytes) => Ok(bytes),
            Handled::Duplicate => Ok(Vec::new()),
        }
    };
    // Continue where the conversation is, unless told to start at an entry.
    let current = match entry {
        Some(_) => None,
        None => rt.block_on(service.current(&key, service.now(), |_, prompt| {
            let mut buf = Vec::new();
            let _ = write_view(&mut buf, &View::of_prompt(&prompt));
            buf
        }))?,
    };
    let first = match current {
        Some(bytes) => bytes,
        None => handle(Input::Start { entry })?,
    };
    let mut step = |line: &str, out: &mut dyn Write| -> io::Result<()> {
        let bytes = handle(Input::Text(line)).map_err(io::Error::other)?;
        out.write_all(&bytes)
    };
    let mut out = io::stdout().lock();
    out.write_all(&first)?;
    drop(out);
    converse(None, &mut step)
}

/// Shows `first`, then feeds standard input line by line to `step`.
fn converse(
    first: Option<&View<'_>>,
    step: &mut dyn FnMut(&str, &mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<ExitCode> {
    match talk(first, step) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS).map_err(Into::into),
    }
}

fn talk(
    first: Option<&View<'_>>,
    step: &mut dyn FnMut(&str, &mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = io::stdout().lock();
    if let Some(view) = first {
        write_view(&mut out, view)?;
    }
    let mut buf = Vec::new();
    loop {
        if interactive {
            write!(out, "> ")?;
            out.flush()?;
        }
        buf.clear();
        if read_line(&mut input, &mut buf)? == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if !interactive {
            writeln!(out, "> {line}")?;
        }
        if line.trim().is_empty() {
            continue;
        }
        step(line, &mut out)?;
    }
    out.flush()
}

/// Reads one line, keeping at most [`MAX_LINE_BYTES`] of it. Returns the bytes consumed.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// Writes the view of one step as plain text: choices numbered, navigation with its command.
fn write_view(out: &mut dyn Write, view: &View<'_>) -> io::Result<()> {
    let mut paragraphs = view.paragraphs.iter().peekable();
    while let Some(paragraph) = paragraphs.next() {
        let text = &*paragraph.text;
        match paragraph.part {
            Part::Notice(_) => writeln!(out, "! {}\n", text.replace('\n', "\n  "))?,
            Part::Say(_) | Part::Handoff(_) => writeln!(out, "{text}\n")?,
            Part::Note => writeln!(out, "{text}")?,
            Part::Prompt(_) => {
                writeln!(out, "{text}")?;
                if let Some(note) = paragraphs.next_if(|p| matches!(p.part, Part::Note)) {
                    writeln!(out, "{}", note.text)?;
                }
                if let Some(prompt) = &view.prompt {
                    write_buttons(out, prompt)?;
                }
            }
        }
    }
    Ok(())
}

fn write_buttons(out: &mut dyn Write, prompt: &flowbot_core::PromptView<'_>) -> io::Result<()> {
    let mut nav = Vec::new();
    for (i, button) in prompt.choices.iter().chain(&prompt.nav).enumerate() {
        // The resume question's two buttons are its choices: 1 resumes, 2 restarts.
        match button.token.action {
            _ if prompt.resume => writeln!(out, "  {}. {}", i + 1, button.label)?,
            Action::Choice(_) | Action::Submit | Action::Fix => {
                writeln!(out, "  {}. {}", i + 1, button.label)?
            }
            Action::Back => nav.push(format!("[{}] /back", button.label)),
            Action::Restart => nav.push(format!("[{}] /restart", button.label)),
            // At a form field a number is an answer: the button is typed as is.
            Action::Resume | Action::Unknown(_) | Action::Field(_) => {
                nav.push(format!("[{}]", button.label))
            }
        }
    }
    if !nav.is_empty() {
        writeln!(out, "  {}", nav.join("  "))?;
    }
    writeln!(out)
}

/// Prints to standard output; a closed pipe (`flowbot render | head`) is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}
