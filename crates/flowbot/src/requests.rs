//! `flowbot requests`: the help desk's inbox over the store — list, show, export (CSV for
//! Excel, JSON), resend, and complete (with the flow's completion notice to the user).
//!
//! Times are Japan Standard Time (UTC+09:00, no daylight saving): `--since 2025-04-01` is that
//! day's midnight in Japan, and every time printed is in that zone.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use flowbot_core::{Completion, NewOutgoing, RequestRecord, RequestState, RequestStore, Timestamp};
use serde_json::{Value, json};

use crate::config::{Config, Destination};
use crate::store::StoreArgs;

/// The offset of Japan Standard Time from UTC.
const JST_MS: i64 = 9 * 60 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// The longest login id `complete` takes.
const MAX_LOGIN_ID_CHARS: usize = 128;

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// One line a request: reference, time (JST), institution, ending, state.
    List {
        /// Only requests made on or after this day (YYYY-MM-DD, Japan time).
        #[arg(long, value_name = "DATE")]
        since: Option<Day>,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The whole request: answers, the path taken, and each destination's delivery.
    Show {
        #[arg(value_name = "REF")]
        reference: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every request: CSV for Excel (UTF-8 with a BOM, CRLF; a column per form field) or JSON.
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only requests made on or after this day (YYYY-MM-DD, Japan time).
        #[arg(long, value_name = "DATE")]
        since: Option<Day>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Queue the request's deliveries again (to the destinations configured now, too).
    Resend {
        #[arg(value_name = "REF")]
        reference: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Mark the request done and send its user the form's completion notice, in the
    /// conversation the request came from (delivered by `flowbot run`).
    Complete {
        #[arg(value_name = "REF")]
        reference: String,
        /// The user's login id, filled into the notice.
        #[arg(long, value_name = "ID")]
        login_id: Option<String>,
        /// The flow whose form has the notice (default: the embedded G-MIS flow).
        #[arg(long, value_name = "FILE")]
        flow: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A delivery state to list.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    /// Kept with no destination, or a delivery still to be made.
    Pending,
    Delivered,
    Failed,
    Completed,
}

impl Status {
    fn matches(self, state: RequestState) -> bool {
        match self {
            Status::Pending => matches!(state, RequestState::Pending | RequestState::Kept),
            Status::Delivered => state == RequestState::Delivered,
            Status::Failed => state == RequestState::Failed,
            Status::Completed => state == RequestState::Completed,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// A day's start in Japan time, from `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct Day(Timestamp);

impl std::str::FromStr for Day {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a date YYYY-MM-DD");
        let mut parts = s.trim().splitn(3, '-');
        let mut next = |len: usize| {
            parts
                .next()
                .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<i64>().ok())
                .ok_or_else(bad)
        };
        let (year, month, day) = (next(4)?, next(2)?, next(2)?);
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad());
        }
        let ms = days_from_civil(year, month, day) * DAY_MS - JST_MS;
        Ok(Day(Timestamp(u64::try_from(ms).map_err(|_| bad())?)))
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DD HH:MM:SS` in Japan time.
pub fn jst(at: Timestamp) -> String {
    let ms = i64::try_from(at.0).unwrap_or(i64::MAX - JST_MS) + JST_MS;
    let (days, rest) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS) / 1000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60)
}

/// `YYYY-MM-DDTHH:MM:SS+09:00`.
fn rfc3339(at: Timestamp) -> String {
    format!("{}+09:00", jst(at).replace(' ', "T"))
}

pub async fn run(command: RequestsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        RequestsCommand::List { since, status, store } => {
            let store = store.open(config).await?;
            let all = store.requests(since.map(|d| d.0)).await?;
            let mut out = String::new();
            for r in all.iter().filter(|r| status.is_none_or(|s| s.matches(r.state()))) {
                let p = Payload::of(r);
                let institution = p.answers().first().map_or(String::new(), |a| a.2.clone());
                out.push_str(&format!(
                    "{}  {}  {}  {}  {}\n",
                    r.reference,
                    jst(r.created_at),
                    one_line(&institution),
                    one_line(&p.ending()),
                    r.state().as_str()
                ));
            }
            crate::chat::print_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        RequestsCommand::Show { reference, store } => {
            let store = store.open(config).await?;
            let Some(r) = store.request(&reference).await? else { return unknown(&reference) };
            crate::chat::print_stdout(&show(&r))?;
            Ok(ExitCode::SUCCESS)
        }
        RequestsCommand::Export { format, since, store } => {
            let store = store.open(config).await?;
            let all = store.requests(since.map(|d| d.0)).await?;
            let text = match format {
                ExportFormat::Csv => csv(&all),
                ExportFormat::Json => {
                    let rows: Vec<Value> = all.iter().map(json_of).collect();
                    serde_json::to_string_pretty(&rows)? + "\n"
                }
            };
            crate::chat::print_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        RequestsCommand::Resend { reference, store } => {
            let store = store.open(config).await?;
            let destinations: Vec<String> =
                config.handoff.destinations.iter().map(Destination::sink).collect();
            match store.resend(&reference, &destinations, crate::store::now()).await? {
                None => unknown(&reference),
                Some(0) => {
                    eprintln!(
                        "flowbot: request {reference} has no destination to go to: configure one \
                         under [handoff]"
                    );
                    Ok(ExitCode::FAILURE)
                }
                Some(n) => {
                    println!("{reference}: {n} deliveries queued; `flowbot run` sends them");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        RequestsCommand::Complete { reference, login_id, flow, store } => {
            complete(&reference, login_id.as_deref(), flow, &store, config).await
        }
    }
}

fn unknown(reference: &str) -> anyhow::Result<ExitCode> {
    eprintln!("flowbot: no request has the reference {reference}");
    Ok(ExitCode::FAILURE)
}

async fn complete(
    reference: &str,
    login_id: Option<&str>,
    flow: Option<PathBuf>,
    store: &StoreArgs,
    config: &Config,
) -> anyhow::Result<ExitCode> {
    let login_id = login_id.map(str::trim);
    if let Some(id) = login_id
        && (id.is_empty()
            || id.chars().count() > MAX_LOGIN_ID_CHARS
            || id.chars().any(char::is_control))
    {
        anyhow::bail!("--login-id: give 1 to {MAX_LOGIN_ID_CHARS} characters on one line");
    }
    let flow = crate::flows::load_or_default(flow.as_deref(), config)?;
    let store = store.open(config).await?;
    let Some(r) = store.request(reference).await? else { return unknown(reference) };
    let text = flow
        .forms()
        .iter()
        .find(|f| f.id() == r.form)
        .and_then(|f| f.completion(reference, login_id));
    // Where the notice goes: the chat the request came from, on a platform that can write
    // first (the terminal cannot; the web chat shows it at the user's next visit).
    let target = r.key.as_ref().filter(|k| k.platform != "cli");
    let sink = target.map(|k| crate::notice::sink(&k.platform));
    let notice = match (&text, target, &sink) {
        (Some(body), Some(key), Some(sink)) => {
            Some(NewOutgoing { sink, lane: &key.conversation, body })
        }
        _ => None,
    };
    match store.complete(reference, crate::store::now(), notice).await? {
        Completion::Unknown => return unknown(reference),
        Completion::Already => {
            eprintln!("flowbot: request {reference} was completed before; nothing sent");
            return Ok(ExitCode::FAILURE);
        }
        Completion::Completed { .. } => {}
    }
    match (text, target) {
        (None, _) => println!(
            "{reference}: completed; no notice sent (the flow's form `{}` has no `completed` text)",
            r.form
        ),
        (Some(_), None) => println!(
            "{reference}: completed; its conversation cannot be written to, so tell the user \
             yourself"
        ),
        (Some(_), Some(key)) if key.platform == "web" => println!(
            "{reference}: completed; the notice waits for the user's next visit to the web chat"
        ),
        (Some(_), Some(key)) => println!(
            "{reference}: completed; the notice to the user on {} is queued (`flowbot run` \
             delivers it)",
            key.platform
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// What the desk reads of a request's JSON.
struct Payload(Value);

impl Payload {
    fn of(r: &RequestRecord) -> Self {
        Payload(serde_json::from_str(&r.payload).unwrap_or(Value::Null))
    }

    fn str(v: &Value) -> String {
        v.as_str().unwrap_or_default().to_owned()
    }

    /// `(field id, label, value)`; an "unknown" answer is empty.
    fn answers(&self) -> Vec<(String, String, String)> {
        let list = self.0["answers"].as_array().map(Vec::as_slice).unwrap_or_default();
        list.iter()
            .map(|a| (Self::str(&a["field"]), Self::str(&a["label"]), Self::str(&a["value"])))
            .collect()
    }

    fn ending(&self) -> String {
        Self::str(&self.0["ending"]["title"])
    }

    fn path(&self) -> Vec<(String, String)> {
        let list = self.0["path"].as_array().map(Vec::as_slice).unwrap_or_default();
        list.iter().map(|p| (Self::str(&p["question"]), Self::str(&p["answer"]))).collect()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn show(r: &RequestRecord) -> String {
    let p = Payload::of(r);
    let mut out = format!("reference: {}\n", r.reference);
    out.push_str(&format!("submitted: {} JST\n", jst(r.created_at)));
    out.push_str(&format!("state: {}\n", r.state().as_str()));
    if let Some(at) = r.completed_at {
        out.push_str(&format!("completed: {} JST\n", jst(at)));
    }
    out.push_str(&format!("flow: {}, form: {}\n", r.flow_id, r.form));
    if let Some(key) = &r.key {
        out.push_str(&format!("from: {} chat {}\n", key.platform, key.conversation));
    }
    out.push_str(&format!("ending: {}\n", p.ending()));
    out.push_str("answers:\n");
    for (_, label, value) in p.answers() {
        out.push_str(&format!("  {label}: {value}\n"));
    }
    out.push_str("path:\n");
    for (question, answer) in p.path() {
        out.push_str(&format!("  {question} -> {answer}\n"));
    }
    out.push_str("deliveries:\n");
    if r.deliveries.is_empty() {
        out.push_str("  none (no destination was configured)\n");
    }
    for d in &r.deliveries {
        let name = d.sink.strip_prefix("handoff:").unwrap_or(&d.sink);
        let state = match (d.delivered_at, d.gave_up_at) {
            (Some(at), _) => format!("delivered {} JST", jst(at)),
            (None, Some(at)) => format!("given up {} JST", jst(at)),
            (None, None) => {
                format!("{}, next attempt {} JST", d.state().as_str(), jst(d.next_attempt_at))
            }
        };
        out.push_str(&format!("  {name}: {state}; attempts {}", d.attempts));
        if let Some(error) = &d.last_error {
            out.push_str(&format!("; last error: {error}"));
        }
        out.push('\n');
    }
    out
}

fn json_of(r: &RequestRecord) -> Value {
    let p = Payload::of(r);
    let answers: serde_json::Map<String, Value> =
        p.answers().into_iter().map(|(field, _, value)| (field, Value::String(value))).collect();
    json!({
        "reference": r.reference,
        "submitted_at": rfc3339(r.created_at),
        "state": r.state().as_str(),
        "completed_at": r.completed_at.map(rfc3339),
        "platform": r.key.as_ref().map(|k| k.platform.clone()),
        "flow": r.flow_id,
        "form": r.form,
        "ending": p.ending(),
        "answers": answers,
        "request": p.0,
        "deliveries": r.deliveries.iter().map(|d| json!({
            "destination": d.sink.strip_prefix("handoff:").unwrap_or(&d.sink),
            "state": d.state().as_str(),
            "attempts": d.attempts,
            "delivered_at": d.delivered_at.map(rfc3339),
            "last_error": d.last_error,
        })).collect::<Vec<_>>(),
    })
}

/// The requests as CSV for Excel: UTF-8 with a BOM, CRLF, every field quoted; the fixed
/// columns, then one per form field (its label as the header), in the order first seen.
fn csv(all: &[RequestRecord]) -> String {
    let payloads: Vec<Payload> = all.iter().map(Payload::of).collect();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    for p in &payloads {
        for (id, label, _) in p.answers() {
            if seen.insert(id.clone()) {
                fields.push((id, label));
            }
        }
    }
    let mut out = String::from("\u{feff}");
    let mut header: Vec<String> =
        ["reference", "submitted_at_jst", "ending", "state"].map(str::to_owned).to_vec();
    header.extend(fields.iter().map(|(_, label)| label.clone()));
    push_row(&mut out, &header);
    for (r, p) in all.iter().zip(&payloads) {
        let answers = p.answers();
        let mut row =
            vec![r.reference.clone(), jst(r.created_at), p.ending(), r.state().as_str().to_owned()];
        row.extend(fields.iter().map(|(id, _)| {
            answers.iter().find(|(f, _, _)| f == id).map_or(String::new(), |a| a.2.clone())
        }));
        push_row(&mut out, &row);
    }
    out
}

/// One CSV row: every cell quoted. A cell a spreadsheet would read as a formula (one typed by a
/// user that starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, so
/// that opening the export runs nothing (OWASP's advice on CSV injection); Excel shows the text.
fn push_row(out: &mut String, cells: &[String]) {
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            let formula = c.starts_with(['=', '+', '-', '@', '\t', '\r']);
            let guard = if formula { "'" } else { "" };
            format!("\"{guard}{}\"", c.replace('"', "\"\""))
        })
        .collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_japan_midnights() {
        let day: Day = "2025-04-01".parse().unwrap();
        // 2025-03-31T15:00:00Z.
        assert_eq!(day.0, Timestamp(1_743_433_200_000));
        assert_eq!(jst(day.0), "2025-04-01 00:00:00");
        assert_eq!(jst(Timestamp(0)), "1970-01-01 09:00:00");
        assert_eq!(jst(Timestamp(951_782_400_000 + 3_723_000)), "2000-02-29 10:02:03");
        for bad in ["2025-02-29", "2025-13-01", "25-01-01", "2025-1-01", "2025/01/01", ""] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
        assert!("2024-02-29".parse::<Day>().is_ok());
    }

    #[test]
    fn csv_cells_are_quoted_and_rows_end_in_crlf() {
        let mut out = String::new();
        push_row(&mut out, &["a\"b".to_owned(), "c,d\r\ne".to_owned(), "報告".to_owned()]);
        assert_eq!(out, "\"a\"\"b\",\"c,d\r\ne\",\"報告\"\r\n");
    }

    #[test]
    fn csv_cells_that_read_as_formulas_are_defused() {
        let mut out = String::new();
        let cells = ["=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "a=b"].map(str::to_owned);
        push_row(&mut out, &cells);
        let want = "\"'=HYPERLINK(\"\"x\"\")\",\"'+1\",\"'-1\",\"'@SUM(A1)\",\"a=b\"\r\n";
        assert_eq!(out, want);
    }
}
