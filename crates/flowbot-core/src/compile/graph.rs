//! The graph checks: node ids valid and unique, entry points that name nodes, every node
//! reachable from an entry point and able to reach an ending.

use std::collections::HashMap;

use super::Report;
use crate::problem::ProblemKind;
use crate::raw::{RawFlow, RawNode, SourceMap};

/// The index of every node by id (the first, where an id is duplicated), reporting invalid and
/// duplicate ids.
pub(super) fn ids<'a>(
    nodes: &'a [RawNode],
    map: &SourceMap,
    r: &mut Report<'_>,
) -> HashMap<&'a str, usize> {
    let node_line = |i: usize| map.nodes.get(i).copied().flatten();
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        if !is_node_id(&node.id) {
            r.add(node_line(i), Some(&node.id), ProblemKind::InvalidNodeId(node.id.clone()));
        }
        match ids.get(node.id.as_str()) {
            Some(&first) => r.add(
                node_line(i),
                Some(&node.id),
                ProblemKind::DuplicateId { first_line: node_line(first).unwrap_or(0) },
            ),
            None => {
                ids.insert(&node.id, i);
            }
        }
    }
    ids
}

/// The start node and the named entry points, reporting bad names and unknown targets.
pub(super) fn entries(
    raw: &RawFlow,
    map: &SourceMap,
    resolve: &dyn Fn(&str) -> Option<usize>,
    r: &mut Report<'_>,
) -> (Option<usize>, Vec<(String, usize)>) {
    let start = resolve(&raw.start);
    if start.is_none() {
        r.add(
            map.start,
            None,
            ProblemKind::UnknownTarget { field: "`start`".into(), target: raw.start.clone() },
        );
    }
    let mut entries = Vec::new();
    for (name, target) in &raw.entries {
        let line = map.entries.get(name).copied().or(map.entries_key);
        if !is_payload(name) {
            r.add(line, None, ProblemKind::InvalidEntryName(name.clone()));
        }
        match resolve(target) {
            Some(ix) => entries.push((name.clone(), ix)),
            None => r.add(
                line,
                None,
                ProblemKind::UnknownTarget {
                    field: format!("entry `{name}`"),
                    target: target.clone(),
                },
            ),
        }
    }
    (start, entries)
}

/// Every node reachable from an entry point, and able to reach an ending.
pub(super) fn check_reach(
    nodes: &[RawNode],
    ids: &HashMap<&str, usize>,
    start: Option<usize>,
    entries: &[(String, usize)],
    edges: &[Vec<usize>],
    map: &SourceMap,
    r: &mut Report<'_>,
) {
    let node_line = |i: usize| map.nodes.get(i).copied().flatten();
    let roots: Vec<usize> = start.into_iter().chain(entries.iter().map(|(_, ix)| *ix)).collect();
    let reached = reach(&roots, edges);
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (from, tos) in edges.iter().enumerate() {
        for &to in tos {
            reverse[to].push(from);
        }
    }
    let endings: Vec<usize> =
        nodes.iter().enumerate().filter(|(_, n)| n.end.is_some()).map(|(i, _)| i).collect();
    let finishes = reach(&endings, &reverse);
    for (i, node) in nodes.iter().enumerate() {
        if ids.get(node.id.as_str()) != Some(&i) {
            continue; // a duplicate: already reported
        }
        if !roots.is_empty() && !reached[i] {
            r.add(node_line(i), Some(&node.id), ProblemKind::Unreachable);
        }
        if !finishes[i] {
            r.add(node_line(i), Some(&node.id), ProblemKind::NoEndingReachable);
        }
    }
}

/// Breadth-first reach over `edges` from `roots`.
fn reach(roots: &[usize], edges: &[Vec<usize>]) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut queue: Vec<usize> = roots.to_vec();
    while let Some(i) = queue.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        queue.extend(edges[i].iter().copied().filter(|&j| !seen[j]));
    }
    seen
}

/// 1 to 64 of `A-Z a-z 0-9 _ -`: entry names (deep-link payloads), flow, form and field ids.
pub(crate) fn is_payload(s: &str) -> bool {
    (1..=64).contains(&s.len()) && is_node_id(s)
}

pub(super) fn is_node_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert!(is_payload("taiou3-view"));
        assert!(is_payload(&"a".repeat(64)));
        assert!(!is_payload(&"a".repeat(65)));
        assert!(!is_payload(""));
        assert!(!is_payload("対応方法3"));
        assert!(!is_payload("a b"));
    }
}
