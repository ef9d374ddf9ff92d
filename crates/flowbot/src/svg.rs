//! `flowbot stats --format svg`: the flowchart with its traffic as a standalone SVG picture,
//! laid out here (no Graphviz at run time): ranks by the longest path from the start (edges
//! that close a cycle set aside), order within a rank by barycenter, edges as curves.

use std::fmt::Write;

use flowbot_core::Flow;

use crate::diagram::{Shape, lines};
use crate::traffic::Traffic;

/// Fonts that carry Japanese on Linux, macOS and Windows, then the browser's default.
const FONTS: &str = "'Noto Sans CJK JP', 'Noto Sans JP', 'Hiragino Sans', 'Hiragino Kaku Gothic ProN', \
     'Yu Gothic', 'Meiryo', sans-serif";
const FONT_SIZE: f64 = 13.0;
/// A title longer than this (in ems) is cut with an ellipsis; the whole text is its tooltip.
const MAX_TITLE_EM: f64 = 20.0;
const MAX_LABEL_EM: f64 = 12.0;
const NODE_H: f64 = 58.0;
const GAP_X: f64 = 36.0;
const GAP_Y: f64 = 96.0;
const MARGIN: f64 = 24.0;
const LEGEND_H: f64 = 92.0;
const DROPPED: &str = "#d00000";

/// The picture of one version's flow with its counts; `caption` says which version and range.
pub fn svg(flow: &Flow, traffic: &Traffic, caption: &str) -> String {
    let n = flow.nodes().len();
    let edges: Vec<(usize, usize)> = lines(flow).map(|l| (l.from.index(), l.to.index())).collect();
    let back = back_edges(n, flow.start().index(), &edges);
    let rank = ranks(n, &edges, &back);
    let rows = order(n, &edges, &rank);

    // Box sizes from their text: the title, the id and the counts.
    let titles: Vec<String> =
        flow.nodes().iter().map(|node| cut(node.title(), MAX_TITLE_EM)).collect();
    let counts: Vec<String> = (0..n).map(|i| format!("▶ {}", traffic.reached[i])).collect();
    let width: Vec<f64> = (0..n)
        .map(|i| {
            let id = flow.nodes()[i].id();
            let em = ems(&titles[i]).max(ems(id) * 0.85).max(ems(&counts[i]) + 4.0);
            em * FONT_SIZE + 40.0
        })
        .collect();
    let row_w: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.iter().map(|&i| width[i]).sum::<f64>() + GAP_X * r.len().saturating_sub(1) as f64
        })
        .collect();
    let inner = row_w.iter().copied().fold(ems(caption) * FONT_SIZE, f64::max).max(560.0);
    // Back edges swing out to the right of the widest row.
    let total_w = inner + 2.0 * MARGIN + 120.0;
    let mut x = vec![0.0; n];
    let mut y = vec![0.0; n];
    for (r, row) in rows.iter().enumerate() {
        let mut left = MARGIN + (inner - row_w[r]) / 2.0;
        for &i in row {
            x[i] = left + width[i] / 2.0;
            y[i] = MARGIN + LEGEND_H + GAP_Y / 2.0 + r as f64 * (NODE_H + GAP_Y);
            left += width[i] + GAP_X;
        }
    }
    let total_h = MARGIN * 2.0 + LEGEND_H + GAP_Y / 2.0 + rows.len() as f64 * (NODE_H + GAP_Y);

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{total_w:.0}\" height=\"{total_h:.0}\" viewBox=\"0 0 {total_w:.0} {total_h:.0}\" \
         font-family=\"{}\" font-size=\"{FONT_SIZE}\">",
        escape(FONTS)
    );
    s.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n",
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    legend(&mut s, caption);

    // Edges first, so boxes and labels sit on top of them.
    let mut labels = String::new();
    let start = flow.start().index();
    let (sx, sy) = (x[start], y[start] - NODE_H / 2.0 - GAP_Y / 2.0 + 8.0);
    let _ = writeln!(
        s,
        "<g class=\"start\"><circle cx=\"{sx:.1}\" cy=\"{sy:.1}\" r=\"8\" fill=\"#555\"/>\
         <path d=\"M{sx:.1},{:.1} L{sx:.1},{:.1}\" stroke=\"#555\" fill=\"none\" \
         marker-end=\"url(#arrow)\"/></g>",
        sy + 8.0,
        y[start] - NODE_H / 2.0
    );
    edge_label(&mut labels, sx + 30.0, sy + 14.0, None, traffic.started);
    for (e, line) in lines(flow).enumerate() {
        let (a, b) = (line.from.index(), line.to.index());
        let count = traffic.edges[e];
        let stroke = 1.0 + (count as f64).ln_1p().min(4.0);
        let (path, lx, ly) = if back[e] || rank[b] <= rank[a] {
            // Out of the right side of the source, round to the right side of the target.
            let (x1, y1) = (x[a] + width[a] / 2.0, y[a]);
            let (x2, y2) = (x[b] + width[b] / 2.0, y[b]);
            let out = x1.max(x2) + 60.0 + 12.0 * (e % 4) as f64;
            let path =
                format!("M{x1:.1},{y1:.1} C{out:.1},{y1:.1} {out:.1},{y2:.1} {x2:.1},{y2:.1}");
            (path, 0.25 * x1 + 0.75 * out, (y1 + y2) / 2.0)
        } else {
            let (x1, y1) = (x[a], y[a] + NODE_H / 2.0);
            let (x2, y2) = (x[b], y[b] - NODE_H / 2.0);
            let dy = (y2 - y1) / 2.0;
            let path = format!(
                "M{x1:.1},{y1:.1} C{x1:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}",
                y1 + dy,
                y2 - dy
            );
            // The curve's midpoint, moved up so labels of one source's answers stack less.
            (path, (x1 + x2) / 2.0, y1 + dy * 0.55)
        };
        let _ = writeln!(
            s,
            "<path d=\"{path}\" stroke=\"#555\" stroke-width=\"{stroke:.1}\" fill=\"none\" \
             marker-end=\"url(#arrow)\"/>"
        );
        let label = line.label.map(|l| cut(l, MAX_LABEL_EM));
        edge_label(&mut labels, lx, ly, label.as_deref(), count);
    }
    for (i, node) in flow.nodes().iter().enumerate() {
        node_box(
            &mut s,
            node,
            (x[i], y[i], width[i]),
            &titles[i],
            &counts[i],
            traffic.dropped(flow, i),
        );
    }
    s.push_str(&labels);
    s.push_str("</svg>\n");
    s
}

fn legend(s: &mut String, caption: &str) {
    let _ = writeln!(
        s,
        "<g class=\"legend\"><text x=\"{MARGIN}\" y=\"{:.0}\" font-size=\"15\" \
         font-weight=\"bold\">{}</text>",
        MARGIN + 14.0,
        escape(caption)
    );
    let items = [
        "▶ n: conversations that reached the node",
        "(n) on an edge: conversations that took it",
        "red badge n: conversations that stopped there, short of an ending",
    ];
    for (k, item) in items.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{MARGIN}\" y=\"{:.0}\" fill=\"#333\">{}</text>",
            MARGIN + 36.0 + 17.0 * k as f64,
            escape(item)
        );
    }
    s.push_str("</g>\n");
}

fn node_box(
    s: &mut String,
    node: &flowbot_core::Node,
    (cx, cy, w): (f64, f64, f64),
    title: &str,
    count: &str,
    dropped: u64,
) {
    let (l, t, h) = (cx - w / 2.0, cy - NODE_H / 2.0, NODE_H);
    let (stroke, sw) = if dropped > 0 { (DROPPED, 3.0) } else { ("#444", 1.2) };
    let paint = format!("stroke=\"{stroke}\" stroke-width=\"{sw}\"");
    let _ = writeln!(s, "<g class=\"node\" id=\"node-{}\">", escape(node.id()));
    let _ = writeln!(s, "<title>{}</title>", escape(&crate::diagram::box_text(node, false)));
    match Shape::of(node) {
        Shape::Question => {
            let k = 14.0;
            let _ = writeln!(
                s,
                "<polygon points=\"{:.1},{cy:.1} {:.1},{t:.1} {:.1},{t:.1} {:.1},{cy:.1} {:.1},{:.1} \
                 {:.1},{:.1}\" fill=\"#fff7e0\" {paint}/>",
                l,
                l + k,
                l + w - k,
                l + w,
                l + w - k,
                t + h,
                l + k,
                t + h
            );
        }
        Shape::Message => {
            let k = 10.0;
            let _ = writeln!(
                s,
                "<polygon points=\"{:.1},{t:.1} {:.1},{t:.1} {:.1},{:.1} {:.1},{:.1}\" \
                 fill=\"#eef4ff\" {paint}/>",
                l + k,
                l + w,
                l + w - k,
                t + h,
                l,
                t + h
            );
        }
        Shape::Ending => {
            let _ = writeln!(
                s,
                "<rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"22\" \
                 fill=\"#e8f7e8\" {paint}/>"
            );
        }
        Shape::Form => {
            let _ = writeln!(
                s,
                "<rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" \
                 fill=\"#f3ecff\" {paint}/><path d=\"M{:.1},{t:.1} v{h:.1} M{:.1},{t:.1} v{h:.1}\" \
                 stroke=\"#444\"/>",
                l + 8.0,
                l + w - 8.0
            );
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>",
        t + 19.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" \
         fill=\"#666\">{}</text>",
        t + 34.0,
        escape(node.id())
    );
    let _ = writeln!(
        s,
        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"reached\">{}</text>",
        t + 50.0,
        escape(count)
    );
    if dropped > 0 {
        let text = dropped.to_string();
        let bw = ems(&text) * FONT_SIZE + 16.0;
        let (bx, by) = (l + w - bw / 2.0, t);
        let _ = writeln!(
            s,
            "<g class=\"dropped\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"20\" \
             rx=\"10\" fill=\"{DROPPED}\"/><text x=\"{bx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
             fill=\"#ffffff\" font-weight=\"bold\">{text}</text></g>",
            bx - bw / 2.0,
            by - 10.0,
            by + 4.5
        );
    }
    s.push_str("</g>\n");
}

fn edge_label(s: &mut String, x: f64, y: f64, label: Option<&str>, count: u64) {
    let text = match label {
        Some(label) => format!("{label} ({count})"),
        None => format!("({count})"),
    };
    let w = ems(&text) * 12.0 + 10.0;
    let _ = writeln!(
        s,
        "<g class=\"edge-label\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" \
         rx=\"4\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#bbb\"/><text x=\"{x:.1}\" \
         y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text></g>",
        x - w / 2.0,
        y - 9.0,
        y + 4.0,
        escape(&text)
    );
}

/// The edges (by index) that close a cycle: those into a node still on the depth-first path.
fn back_edges(n: usize, start: usize, edges: &[(usize, usize)]) -> Vec<bool> {
    let mut back = vec![false; edges.len()];
    // 0: unseen, 1: on the path, 2: done.
    let mut state = vec![0u8; n];
    let out: Vec<Vec<usize>> =
        (0..n).map(|v| (0..edges.len()).filter(|&e| edges[e].0 == v).collect()).collect();
    let roots = std::iter::once(start).chain(0..n);
    for root in roots {
        if state[root] != 0 {
            continue;
        }
        // An explicit stack of (node, next edge to look at): no recursion depth to bound.
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            match out[v].get(*k) {
                Some(&e) => {
                    *k += 1;
                    let w = edges[e].1;
                    match state[w] {
                        0 => {
                            state[w] = 1;
                            stack.push((w, 0));
                        }
                        1 => back[e] = true,
                        _ => {}
                    }
                }
                None => {
                    state[v] = 2;
                    stack.pop();
                }
            }
        }
    }
    back
}

/// Each node's rank: the longest path to it from a source, over the edges that are not back.
fn ranks(n: usize, edges: &[(usize, usize)], back: &[bool]) -> Vec<usize> {
    let forward: Vec<(usize, usize)> =
        edges.iter().zip(back).filter(|(_, b)| !**b).map(|(e, _)| *e).collect();
    let mut indegree = vec![0usize; n];
    for &(_, b) in &forward {
        indegree[b] += 1;
    }
    let mut rank = vec![0usize; n];
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = ready.pop() {
        for &(a, b) in forward.iter().filter(|(a, _)| *a == v) {
            rank[b] = rank[b].max(rank[a] + 1);
            indegree[b] -= 1;
            if indegree[b] == 0 {
                ready.push(b);
            }
        }
    }
    rank
}

/// The nodes of each rank, ordered by the barycenter of their neighbours in the ranks above
/// (sweeping down), then below (sweeping up), a few times.
fn order(n: usize, edges: &[(usize, usize)], rank: &[usize]) -> Vec<Vec<usize>> {
    let depth = rank.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..n {
        rows[rank[v]].push(v);
    }
    let mut pos = vec![0.0f64; n];
    let place = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (k, &v) in row.iter().enumerate() {
                pos[v] = (k as f64 + 0.5) / row.len() as f64;
            }
        }
    };
    place(&rows, &mut pos);
    for sweep in 0..6 {
        let down = sweep % 2 == 0;
        for r in 0..depth {
            let r = if down { r } else { depth - 1 - r };
            let center = |v: usize| {
                let near: Vec<f64> = edges
                    .iter()
                    .filter_map(|&(a, b)| match down {
                        true if b == v && rank[a] < r => Some(pos[a]),
                        false if a == v && rank[b] > r => Some(pos[b]),
                        _ => None,
                    })
                    .collect();
                match near.len() {
                    0 => pos[v],
                    k => near.iter().sum::<f64>() / k as f64,
                }
            };
            let mut keyed: Vec<(f64, usize)> = rows[r].iter().map(|&v| (center(v), v)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[r] = keyed.into_iter().map(|(_, v)| v).collect();
            for (k, &v) in rows[r].iter().enumerate() {
                pos[v] = (k as f64 + 0.5) / rows[r].len() as f64;
            }
        }
    }
    rows
}

/// The width of a text in ems: East Asian wide characters one, others about half.
fn ems(text: &str) -> f64 {
    text.chars().map(|c| if is_wide(c) { 1.0 } else { 0.6 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
}

/// The first line of `text`, cut with `…` to at most `max` ems.
fn cut(text: &str, max: f64) -> String {
    let line = text.lines().next().unwrap_or("");
    if ems(line) <= max {
        return line.to_owned();
    }
    let mut out = String::new();
    let mut used = 0.0;
    for c in line.chars() {
        let w = if is_wide(c) { 1.0 } else { 0.6 };
        if used + w > max - 1.0 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_do_not_break_the_ranks() {
        // 0 -> 1 -> 2 -> 1 (a wait loop), 1 -> 3.
        let edges = [(0, 1), (1, 2), (2, 1), (1, 3)];
        let back = back_edges(4, 0, &edges);
        assert_eq!(back, [false, false, true, false]);
        assert_eq!(ranks(4, &edges, &back), [0, 1, 2, 2]);
    }

    #[test]
    fn merging_paths_rank_by_the_longest() {
        // 0 -> 1 -> 2 and 0 -> 2: 2 is below 1.
        let edges = [(0, 1), (1, 2), (0, 2)];
        assert_eq!(ranks(3, &edges, &back_edges(3, 0, &edges)), [0, 1, 2]);
    }

    #[test]
    fn wide_text_is_measured_and_cut() {
        assert_eq!(ems("ab"), 1.2);
        assert_eq!(ems("対応"), 2.0);
        assert_eq!(cut("対応方法1（メールボックス）", 6.0), "対応方法1…");
        assert_eq!(escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
    }
}
