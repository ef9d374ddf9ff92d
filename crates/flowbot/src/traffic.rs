//! A flow version's event-log counts laid onto that version's graph: conversations per node,
//! per edge, and where they stopped, for the `stats` pictures and JSON.

use flowbot_core::{Flow, NodeKind, VersionStats};
use serde_json::{Value, json};

use crate::diagram::{self, Shape};

/// Counts per node (by `NodeIx` index) and per edge (in `diagram::lines` order). Every count
/// is of conversations (sessions), not of steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Conversations that reached the node. Messages are not logged (a conversation passes
    /// through them): theirs is the sum of the edges into them.
    pub reached: Vec<u64>,
    /// Conversations whose last step (in the time range) left them at the node.
    pub stopped: Vec<u64>,
    /// Conversations that took the edge: an answer chosen, a form submitted, a message passed.
    pub edges: Vec<u64>,
    /// Conversations that started at the flow's start (`/start` edge).
    pub started: u64,
}

impl Traffic {
    pub fn of(flow: &Flow, s: &VersionStats) -> Traffic {
        let count = |list: &[(String, u64)], id: &str| {
            list.iter().find(|(n, _)| n == id).map_or(0, |(_, c)| *c)
        };
        let nodes = flow.nodes();
        let mut reached: Vec<u64> = nodes.iter().map(|n| count(&s.reached, n.id())).collect();
        let stopped = nodes.iter().map(|n| count(&s.stopped_at, n.id())).collect();
        // The start passes through messages to the first node a conversation waits at.
        let mut landing = flow.start();
        for _ in 0..nodes.len() {
            match flow.node(landing).kind() {
                NodeKind::Message { next, .. } => landing = *next,
                _ => break,
            }
        }
        let started = count(&s.started, flow.node(landing).id());
        let lines: Vec<_> = diagram::lines(flow).collect();
        let mut edges: Vec<u64> = lines
            .iter()
            .map(|l| {
                let from = flow.node(l.from).id();
                match (l.choice, flow.node(l.from).kind()) {
                    (Some(c), _) => {
                        s.edges.iter().find(|(f, ch, _)| f == from && *ch == c).map_or(0, |e| e.2)
                    }
                    (None, NodeKind::Form { .. }) => count(&s.submitted, from),
                    _ => 0,
                }
            })
            .collect();
        // A message is reached by the edges into it (and the start); it passes them all on.
        // Messages may follow messages: repeat until settled (a valid flow has no message cycle).
        for _ in 0..nodes.len() {
            let mut changed = false;
            for (i, node) in nodes.iter().enumerate() {
                if Shape::of(node) != Shape::Message {
                    continue;
                }
                let start = if i == flow.start().index() { started } else { 0 };
                let into: u64 = lines
                    .iter()
                    .zip(&edges)
                    .filter(|(l, _)| l.to.index() == i)
                    .map(|(_, n)| *n)
                    .sum::<u64>()
                    + start;
                if reached[i] != into {
                    reached[i] = into;
                    changed = true;
                }
                for (l, n) in lines.iter().zip(edges.iter_mut()) {
                    if l.from.index() == i {
                        *n = into;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        Traffic { reached, stopped, edges, started }
    }

    /// Conversations that stopped at a node that is not an ending: the drop-off.
    pub fn dropped(&self, flow: &Flow, index: usize) -> u64 {
        match flow.nodes().get(index) {
            Some(node) if !node.is_ending() => self.stopped[index],
            _ => 0,
        }
    }
}

/// One version's counts as JSON (the shape README documents). `flow` is that version's flow,
/// where its source is still kept; without it only the logged node ids are known.
pub fn json_version(s: &VersionStats, flow: Option<&Flow>, current: bool) -> Value {
    let (nodes, edges) = match flow {
        Some(flow) => {
            let t = Traffic::of(flow, s);
            let nodes: Vec<Value> = flow
                .nodes()
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    json!({
                        "id": n.id(),
                        "kind": Shape::of(n).name(),
                        "title": n.title(),
                        "reached": t.reached[i],
                        "stopped": t.stopped[i],
                        "dropped": t.dropped(flow, i),
                    })
                })
                .collect();
            let mut edges = vec![json!({
                "from": null,
                "to": flow.node(flow.start()).id(),
                "choice": null,
                "label": null,
                "count": t.started,
            })];
            edges.extend(diagram::lines(flow).zip(&t.edges).map(|(l, n)| {
                json!({
                    "from": flow.node(l.from).id(),
                    "to": flow.node(l.to).id(),
                    "choice": l.choice,
                    "label": l.label,
                    "count": n,
                })
            }));
            (nodes, edges)
        }
        None => {
            let count = |list: &[(String, u64)], id: &str| {
                list.iter().find(|(n, _)| n == id).map_or(0, |(_, c)| *c)
            };
            let nodes = s
                .reached
                .iter()
                .map(|(id, n)| {
                    json!({
                        "id": id, "kind": null, "title": null, "reached": n,
                        "stopped": count(&s.stopped_at, id), "dropped": null,
                    })
                })
                .collect();
            let edges = s
                .edges
                .iter()
                .map(|(from, c, n)| {
                    json!({"from": from, "to": null, "choice": c, "label": null, "count": n})
                })
                .collect();
            (nodes, edges)
        }
    };
    json!({
        "flow_id": s.flow_id,
        "flow_version": s.flow_version,
        "current": current,
        "source_kept": flow.is_some(),
        "conversations": s.conversations,
        "nodes": nodes,
        "edges": edges,
    })
}
