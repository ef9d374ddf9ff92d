//! `flowbot purge` and `flowbot stats`: maintenance and reports on the conversation store.

use std::process::ExitCode;

use anyhow::Context;
use flowbot_core::{Flow, FlowVersion, NodeKind, Timestamp, VersionStats, load_flow};
use flowbot_store::Service;
use serde_json::json;

use crate::traffic::{self, Traffic};
use crate::{render, svg};

/// The users' zone: dates on the command line are days in Japan (Asia/Tokyo, +09:00, no
/// daylight saving).
const ZONE_OFFSET_MS: i64 = 9 * 3_600_000;
const DAY_MS: u64 = 86_400_000;

/// How `flowbot stats` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// The table of numbers (every flow version) and the outbox counts.
    #[default]
    Text,
    /// Every flow version's nodes and edges with their counts, for other tools.
    Json,
    /// The flowchart with its counts, as Mermaid (one version).
    Mermaid,
    /// The flowchart with its counts, as a standalone SVG picture (one version).
    Svg,
}

/// What `flowbot stats` reports on.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    pub format: StatsFormat,
    /// The first day counted (00:00 in Japan).
    pub since: Option<Day>,
    /// The last day counted (through 24:00 in Japan).
    pub until: Option<Day>,
    /// The version the pictures draw (hex); the current one by default.
    pub version: Option<String>,
}

/// A calendar day in Japan, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    text: [u8; 10],
    /// 00:00 of the day in Japan, in milliseconds since the epoch.
    start: u64,
}

impl Day {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or("")
    }
}

/// Parses `YYYY-MM-DD` (a day from 1970-01-02 on) for clap.
pub fn parse_day(text: &str) -> Result<Day, String> {
    let bad = || format!("expected a date as YYYY-MM-DD, got {text:?}");
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        text.get(r)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return Err(bad());
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let start = u64::try_from(days * 86_400_000 - ZONE_OFFSET_MS).map_err(|_| bad())?;
    let mut out = [0u8; 10];
    out.copy_from_slice(b);
    Ok(Day { text: out, start })
}

pub async fn purge(service: &Service) -> anyhow::Result<ExitCode> {
    let purged = service.purge(service.now()).await?;
    println!(
        "purged {} expired conversations, {} old event ids, {} unused flow versions",
        purged.conversations, purged.events, purged.flow_versions
    );
    println!(
        "purged personal data past its retention: {} hand-off requests, {} form drafts",
        purged.requests, purged.drafts
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn stats(service: &Service, query: &StatsQuery) -> anyhow::Result<ExitCode> {
    let since = query.since.map(|d| Timestamp(d.start));
    let until = query.until.map(|d| Timestamp(d.start + DAY_MS));
    let all = service.store().stats(since, until).await?;
    match query.format {
        StatsFormat::Text => text(service, &all).await,
        StatsFormat::Json => {
            let current = service.flow();
            let mut versions = Vec::new();
            for s in &all {
                let flow = version_flow(service, &s.flow_id, &s.flow_version, &current).await;
                versions.push(traffic::json_version(s, flow.as_ref(), is_current(s, &current)));
            }
            let d = service.store().delivery_counts().await?;
            let day = |d: &Option<Day>| d.map(|d| d.text().to_owned());
            let report = json!({
                "since": day(&query.since),
                "until": day(&query.until),
                "zone": "+09:00",
                "versions": versions,
                "handoff": {
                    "requests": d.requests, "delivered": d.delivered, "pending": d.pending,
                    "gave_up": d.gave_up, "replies_pending": d.replies_pending,
                    "replies_gave_up": d.replies_gave_up,
                },
            });
            crate::chat::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
            Ok(ExitCode::SUCCESS)
        }
        StatsFormat::Mermaid | StatsFormat::Svg => {
            let current = service.flow();
            let (id, version) = match &query.version {
                Some(v) => (current.id().to_owned(), v.to_ascii_lowercase()),
                None => (current.id().to_owned(), current.version().to_string()),
            };
            let flow = version_flow(service, &id, &version, &current)
                .await
                .with_context(|| format!("flow {id} version {version}: its source is not kept"))?;
            let none = VersionStats::default();
            let s =
                all.iter().find(|s| s.flow_id == id && s.flow_version == version).unwrap_or(&none);
            let traffic = Traffic::of(&flow, s);
            let range = match (&query.since, &query.until) {
                (None, None) => String::new(),
                (a, b) => format!(
                    ", {} to {} (Japan time)",
                    a.as_ref().map_or("…", Day::text),
                    b.as_ref().map_or("…", Day::text)
                ),
            };
            let caption =
                format!("flow {id} version {version}{range}: {} conversations", s.conversations);
            let text = match query.format {
                StatsFormat::Svg => svg::svg(&flow, &traffic, &caption),
                _ => {
                    let options = render::Options { full: false, entries: false };
                    format!(
                        "%% {caption}\n{}",
                        render::mermaid_with(&flow, options, Some(&traffic))
                    )
                }
            };
            crate::chat::print_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn is_current(s: &VersionStats, current: &Flow) -> bool {
    s.flow_id == current.id() && s.flow_version == current.version().to_string()
}

async fn text(service: &Service, all: &[VersionStats]) -> anyhow::Result<ExitCode> {
    let current = service.flow();
    if all.is_empty() {
        println!("no conversations yet");
    }
    let d = service.store().delivery_counts().await?;
    println!(
        "hand-off requests: {} kept, deliveries {} done, {} pending, {} given up",
        d.requests, d.delivered, d.pending, d.gave_up
    );
    let oldest = d.oldest_pending.map_or_else(
        || "none".to_owned(),
        |at| format!("{} s old", service.now().0.saturating_sub(at.0) / 1000),
    );
    println!(
        "replies: {} waiting to be sent, {} given up; oldest undelivered item: {oldest}",
        d.replies_pending, d.replies_gave_up
    );
    if d.updates_kept > 0 {
        println!("updates: {} received and kept, not yet handled", d.updates_kept);
    }
    for s in all {
        // Names and labels come from that version's own source, where it is still kept.
        let flow = version_flow(service, &s.flow_id, &s.flow_version, &current).await;
        let mark = if is_current(s, &current) { " (current)" } else { "" };
        println!(
            "flow {} version {}{mark}: {} conversations",
            s.flow_id, s.flow_version, s.conversations
        );
        let title = |id: &str| {
            flow.as_ref()
                .and_then(|f| f.find(id))
                .map(|ix| flow.as_ref().map_or("", |f| f.node(ix).title()))
        };
        let is_ending =
            |id: &str| flow.as_ref().and_then(|f| f.find(id).map(|ix| f.node(ix).is_ending()));
        println!("  endings reached (conversations):");
        for (node, n) in s.reached.iter().filter(|(id, _)| is_ending(id) == Some(true)) {
            println!("    {n:>6}  {node}  {}", title(node).unwrap_or(""));
        }
        println!("  answers (conversations that chose them):");
        for (from, choice, n) in &s.edges {
            let label = flow.as_ref().and_then(|f| {
                let ix = f.find(from)?;
                match f.node(ix).kind() {
                    NodeKind::Question(q) => q
                        .choices()
                        .get(usize::from(*choice))
                        .map(|c| format!("{} -> {}", c.label(), f.node(c.next()).id())),
                    _ => None,
                }
            });
            println!(
                "    {n:>6}  {from} [{}]",
                label.unwrap_or_else(|| format!("choice {choice}"))
            );
        }
        println!("  stopped at (conversations whose last step left them there):");
        for (node, n) in &s.stopped_at {
            let ended = if is_ending(node) == Some(true) { " (ending)" } else { "" };
            println!("    {n:>6}  {node}{ended}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn version_flow(service: &Service, id: &str, version: &str, current: &Flow) -> Option<Flow> {
    if id == current.id() && version == current.version().to_string() {
        return Some(current.clone());
    }
    let version = FlowVersion::parse_hex(version)?;
    let source = service.store().flow_source(id, version).await.ok()??;
    load_flow(&source, id, &Default::default()).ok()
}
