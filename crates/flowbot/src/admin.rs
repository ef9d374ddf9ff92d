//! `flowbot purge` and `flowbot stats`: maintenance and reports on the conversation store.

use std::process::ExitCode;

use flowbot_core::{Flow, FlowVersion, NodeKind, load_flow};
use flowbot_store::Service;

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

pub async fn stats(service: &Service) -> anyhow::Result<ExitCode> {
    let current = service.flow();
    let all = service.store().stats().await?;
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
    for s in &all {
        // Names and labels come from that version's own source, where it is still kept.
        let flow = version_flow(service, &s.flow_id, &s.flow_version, &current).await;
        let mark = if s.flow_id == current.id() && s.flow_version == current.version().to_string() {
            " (current)"
        } else {
            ""
        };
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
        println!("  answers (times chosen):");
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
