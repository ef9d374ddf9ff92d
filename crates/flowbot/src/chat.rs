//! `flowbot chat`: a conversation in the terminal, or a scripted one from standard input.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use flowbot_core::{Action, Conversation, Flow, Input, Outcome, Reply, Timestamp};

/// Typed lines longer than this are cut before they reach the engine (which matches nothing
/// that long anyway); the rest of the line is read and dropped.
const MAX_LINE_BYTES: usize = 64 * 1024;

pub fn run(flow: &Flow, entry: Option<&str>) -> anyhow::Result<ExitCode> {
    match converse(flow, entry) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS).map_err(Into::into),
    }
}

fn converse(flow: &Flow, entry: Option<&str>) -> io::Result<()> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = io::stdout().lock();

    let (mut conv, outcome) = Conversation::start(flow, entry, now());
    write_outcome(&mut out, &outcome)?;
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
        let outcome = conv.step(flow, Input::Text(line), now());
        write_outcome(&mut out, &outcome)?;
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

/// Writes the replies of one step as plain text: choices numbered, navigation with its command.
fn write_outcome(out: &mut impl Write, outcome: &Outcome<'_>) -> io::Result<()> {
    for reply in &outcome.replies {
        match reply {
            Reply::Notice { text, .. } => writeln!(out, "! {}\n", text.replace('\n', "\n  "))?,
            Reply::Say { text, .. } => writeln!(out, "{text}\n")?,
            Reply::Prompt(prompt) => {
                writeln!(out, "{}", prompt.text())?;
                if let Some(note) = prompt.note() {
                    writeln!(out, "{note}")?;
                }
                let mut nav = Vec::new();
                for (i, button) in prompt.buttons().enumerate() {
                    match button.token.action {
                        Action::Choice(_) => writeln!(out, "  {}. {}", i + 1, button.label)?,
                        Action::Back => nav.push(format!("[{}] /back", button.label)),
                        Action::Restart => nav.push(format!("[{}] /restart", button.label)),
                    }
                }
                if !nav.is_empty() {
                    writeln!(out, "  {}", nav.join("  "))?;
                }
                writeln!(out)?;
            }
        }
    }
    Ok(())
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// Prints to standard output; a closed pipe (`flowbot render | head`) is not an error.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}
