//! `flowbot stats --format svg`: the flowchart with its traffic as a standalone SVG picture,
//! laid out here (no Graphviz at run time): ranks by the longest path from the start (edges
//! that close a cycle set aside), order within a rank by barycenter, edges as curves, each
//! edge's label on its own segment just below its source, no two labels overlapping.

use std::fmt::Write;

use flowbot_adapter::escape_markup;
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
const GAP_Y: f64 = 110.0;
const MARGIN: f64 = 24.0;
const LEGEND_H: f64 = 92.0;
const DROPPED: &str = "#d00000";
const LABEL_H: f64 = 18.0;
/// How far below its source's box an edge's label starts.
const LABEL_DROP: f64 = 30.0;
/// The space between two labels side by side, within one node's labels and between nodes'.
const LABEL_GAP: f64 = 8.0;
const GROUP_GAP: f64 = 20.0;
/// How far right of the boxes the edges that go up or sideways swing out.
const SWING: f64 = 60.0;

/// An axis-aligned box in picture coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    l: f64,
    t: f64,
    w: f64,
    h: f64,
}

impl Rect {
    #[cfg(test)]
    fn intersects(&self, o: &Rect) -> bool {
        self.l < o.l + o.w && o.l < self.l + self.w && self.t < o.t + o.h && o.t < self.t + self.h
    }

    fn right(&self) -> f64 {
        self.l + self.w
    }
}

/// A count (with the answer, if any) in its white box on an edge.
#[derive(Debug, Clone)]
struct Label {
    text: String,
    rect: Rect,
}

impl Label {
    fn new(label: Option<&str>, count: u64) -> Label {
        let text = match label {
            Some(label) => format!("{} ({count})", cut(label, MAX_LABEL_EM)),
            None => format!("({count})"),
        };
        let w = ems(&text) * 12.0 + 10.0;
        Label { text, rect: Rect { l: 0.0, t: 0.0, w, h: LABEL_H } }
    }
}

/// Where everything goes: nodes by index, edges in `diagram::lines` order.
#[derive(Debug)]
struct Layout {
    x: Vec<f64>,
    y: Vec<f64>,
    width: Vec<f64>,
    total_w: f64,
    total_h: f64,
    /// The start's dot and the label of the `/start` edge.
    start: (f64, f64),
    start_label: Label,
    /// Each edge's SVG path and label.
    edges: Vec<(String, Label)>,
}

impl Layout {
    #[cfg(test)]
    fn node_rect(&self, i: usize) -> Rect {
        Rect {
            l: self.x[i] - self.width[i] / 2.0,
            t: self.y[i] - NODE_H / 2.0,
            w: self.width[i],
            h: NODE_H,
        }
    }

    fn labels(&self) -> impl Iterator<Item = &Label> {
        std::iter::once(&self.start_label).chain(self.edges.iter().map(|(_, l)| l))
    }
}

/// The picture of one version's flow with its counts; `caption` says which version and range.
pub fn svg(flow: &Flow, traffic: &Traffic, caption: &str) -> String {
    let titles: Vec<String> =
        flow.nodes().iter().map(|node| cut(node.title(), MAX_TITLE_EM)).collect();
    let counts: Vec<String> =
        (0..flow.nodes().len()).map(|i| format!("▶ {}", traffic.reached[i])).collect();
    let lay = layout(flow, traffic, caption, &titles, &counts);
    let (total_w, total_h) = (lay.total_w, lay.total_h);

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{total_w:.0}\" height=\"{total_h:.0}\" viewBox=\"0 0 {total_w:.0} {total_h:.0}\" \
         font-family=\"{}\" font-size=\"{FONT_SIZE}\">",
        escape_markup(FONTS)
    );
    s.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n",
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    legend(&mut s, caption);

    // Edges first, so boxes and labels sit on top of them.
    let start = flow.start().index();
    let (sx, sy) = lay.start;
    let _ = writeln!(
        s,
        "<g class=\"start\"><circle cx=\"{sx:.1}\" cy=\"{sy:.1}\" r=\"8\" fill=\"#555\"/>\
         <path d=\"M{sx:.1},{:.1} L{sx:.1},{:.1}\" stroke=\"#555\" fill=\"none\" \
         marker-end=\"url(#arrow)\"/></g>",
        sy + 8.0,
        lay.y[start] - NODE_H / 2.0
    );
    for ((path, _), count) in lay.edges.iter().zip(&traffic.edges) {
        let stroke = 1.0 + (*count as f64).ln_1p().min(4.0);
        let _ = writeln!(
            s,
            "<path d=\"{path}\" stroke=\"#555\" stroke-width=\"{stroke:.1}\" fill=\"none\" \
             marker-end=\"url(#arrow)\"/>"
        );
    }
    for (i, node) in flow.nodes().iter().enumerate() {
        node_box(
            &mut s,
            node,
            (lay.x[i], lay.y[i], lay.width[i]),
            &titles[i],
            &counts[i],
            traffic.dropped(flow, i),
        );
    }
    for label in lay.labels() {
        edge_label(&mut s, label);
    }
    s.push_str("</svg>\n");
    s
}

/// Places the nodes by rank and order, then each edge's label: the labels of one node's edges
/// side by side (in the order of their targets) just below it, the rows of the nodes of one
/// rank pushed apart where they would overlap, each edge drawn through its label.
fn layout(
    flow: &Flow,
    traffic: &Traffic,
    caption: &str,
    titles: &[String],
    counts: &[String],
) -> Layout {
    let n = flow.nodes().len();
    let all: Vec<_> = lines(flow).collect();
    let edges: Vec<(usize, usize)> = all.iter().map(|l| (l.from.index(), l.to.index())).collect();
    let back = back_edges(n, flow.start().index(), &edges);
    let rank = ranks(n, &edges, &back);
    let rows = order(n, &edges, &rank);

    // Box sizes from their text: the title, the id and the counts.
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

    let mut labels: Vec<Label> =
        all.iter().zip(&traffic.edges).map(|(l, &c)| Label::new(l.label, c)).collect();
    let down = |e: usize| !back[e] && rank[edges[e].1] > rank[edges[e].0];
    // Each source's downward edges, by where their targets are; one row of labels per source.
    let mut groups: Vec<Vec<Vec<usize>>> = vec![Vec::new(); rows.len()];
    for (r, row) in rows.iter().enumerate() {
        for &a in row {
            let mut out: Vec<usize> =
                (0..edges.len()).filter(|&e| edges[e].0 == a && down(e)).collect();
            out.sort_by(|&e, &f| x[edges[e].1].total_cmp(&x[edges[f].1]).then(e.cmp(&f)));
            if !out.is_empty() {
                groups[r].push(out);
            }
        }
    }
    for (r, row_groups) in groups.iter().enumerate() {
        let span = |g: &[usize]| {
            g.iter().map(|&e| labels[e].rect.w).sum::<f64>()
                + LABEL_GAP * g.len().saturating_sub(1) as f64
        };
        let wanted: Vec<(f64, f64)> = row_groups
            .iter()
            .map(|g| {
                let w = span(g);
                (x[edges[g[0]].0] - w / 2.0, w)
            })
            .collect();
        let top = MARGIN
            + LEGEND_H
            + GAP_Y / 2.0
            + r as f64 * (NODE_H + GAP_Y)
            + NODE_H / 2.0
            + LABEL_DROP;
        for (g, left) in row_groups.iter().zip(pack(&wanted, GROUP_GAP)) {
            let mut l = left;
            for &e in g {
                labels[e].rect.l = l;
                labels[e].rect.t = top;
                l += labels[e].rect.w + LABEL_GAP;
            }
        }
    }

    // Labels pushed past the left margin move the whole picture right.
    let leftmost =
        (0..edges.len()).filter(|&e| down(e)).map(|e| labels[e].rect.l).fold(MARGIN, f64::min);
    let shift = MARGIN - leftmost;
    for v in &mut x {
        *v += shift;
    }
    for (e, label) in labels.iter_mut().enumerate() {
        if down(e) {
            label.rect.l += shift;
        }
    }
    let mut right = (0..n).map(|i| x[i] + width[i] / 2.0).fold(inner + MARGIN + shift, f64::max);
    for (e, label) in labels.iter().enumerate() {
        if down(e) {
            right = right.max(label.rect.right());
        }
    }

    let mut paths = Vec::with_capacity(edges.len());
    for (e, &(a, b)) in edges.iter().enumerate() {
        if down(e) {
            // From a port on the source's bottom (spread out by the label order), down through
            // the label, on to the target's top.
            let group = groups[rank[a]].iter().find(|g| g.contains(&e)).expect("grouped");
            let k = group.iter().position(|&f| f == e).expect("in its group") as f64;
            let m = group.len() as f64;
            let step = (width[a] * 0.5 / m).min(24.0);
            let px = x[a] + (k - (m - 1.0) / 2.0) * step;
            let y1 = y[a] + NODE_H / 2.0;
            let r = labels[e].rect;
            let lx = r.l + r.w / 2.0;
            let (lt, lb) = (r.t, r.t + r.h);
            let (x2, y2) = (x[b], y[b] - NODE_H / 2.0);
            let mid = (y1 + lt) / 2.0;
            let d = (y2 - lb) / 2.0;
            paths.push(format!(
                "M{px:.1},{y1:.1} C{px:.1},{mid:.1} {lx:.1},{mid:.1} {lx:.1},{lt:.1} \
                 L{lx:.1},{lb:.1} C{lx:.1},{:.1} {x2:.1},{:.1} {x2:.1},{y2:.1}",
                lb + d,
                y2 - d
            ));
        } else {
            // Out of the right side of the source, round to the right side of the target; the
            // label where the curve turns, right of every box and label.
            let (x1, y1) = (x[a] + width[a] / 2.0, y[a]);
            let (x2, y2) = (x[b] + width[b] / 2.0, y[b]);
            let out = x1.max(x2) + SWING + 12.0 * (e % 4) as f64;
            paths.push(format!(
                "M{x1:.1},{y1:.1} C{out:.1},{y1:.1} {out:.1},{y2:.1} {x2:.1},{y2:.1}"
            ));
            let r = &mut labels[e].rect;
            r.l = 0.25 * x1 + 0.75 * out - r.w / 2.0;
            r.t = (y1 + y2) / 2.0 - r.h / 2.0;
        }
    }
    for (e, label) in labels.iter().enumerate() {
        if !down(e) {
            right = right.max(label.rect.right()).max(label.rect.l + SWING + 36.0);
        }
    }

    let start = flow.start().index();
    let (sx, sy) = (x[start], y[start] - NODE_H / 2.0 - GAP_Y / 2.0 + 8.0);
    let mut start_label = Label::new(None, traffic.started);
    start_label.rect.l = sx + 16.0;
    start_label.rect.t = sy + 14.0 - LABEL_H / 2.0;
    right = right.max(start_label.rect.right());

    Layout {
        x,
        y,
        width,
        total_w: right + MARGIN,
        total_h,
        start: (sx, sy),
        start_label,
        edges: paths.into_iter().zip(labels).collect(),
    }
}

/// Left ends for intervals `(wanted left, width)` given in left-to-right order, at least `gap`
/// apart: a run of intervals that would overlap is moved as one block, centred on where its
/// members wanted to be (the least squared displacement).
fn pack(wanted: &[(f64, f64)], gap: f64) -> Vec<f64> {
    // Blocks of consecutive intervals: (first, past the last, left end).
    let mut blocks: Vec<(usize, usize, f64)> = Vec::new();
    let span = |from: usize, to: usize| {
        wanted[from..to].iter().map(|w| w.1).sum::<f64>() + gap * (to - from - 1) as f64
    };
    for i in 0..wanted.len() {
        blocks.push((i, i + 1, wanted[i].0));
        while blocks.len() >= 2 {
            let (b, c) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
            if b.2 + span(b.0, b.1) + gap <= c.2 {
                break;
            }
            let mut offset = 0.0;
            let mut sum = 0.0;
            for (w_left, w) in &wanted[b.0..c.1] {
                sum += w_left - offset;
                offset += w + gap;
            }
            let left = sum / (c.1 - b.0) as f64;
            blocks.pop();
            blocks.pop();
            blocks.push((b.0, c.1, left));
        }
    }
    let mut lefts = Vec::with_capacity(wanted.len());
    for (from, to, left) in blocks {
        let mut l = left;
        for (_, w) in &wanted[from..to] {
            lefts.push(l);
            l += w + gap;
        }
    }
    lefts
}

fn legend(s: &mut String, caption: &str) {
    let _ = writeln!(
        s,
        "<g class=\"legend\"><text x=\"{MARGIN}\" y=\"{:.0}\" font-size=\"15\" \
         font-weight=\"bold\">{}</text>",
        MARGIN + 14.0,
        escape_markup(caption)
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
            escape_markup(item)
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
    let _ = writeln!(s, "<g class=\"node\" id=\"node-{}\">", escape_markup(node.id()));
    let _ = writeln!(s, "<title>{}</title>", escape_markup(&crate::diagram::box_text(node, false)));
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
        escape_markup(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" \
         fill=\"#666\">{}</text>",
        t + 34.0,
        escape_markup(node.id())
    );
    let _ = writeln!(
        s,
        "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"reached\">{}</text>",
        t + 50.0,
        escape_markup(count)
    );
    if dropped > 0 {
        let text = dropped.to_string();
        let Rect { l: bl, t: bt, w: bw, h: bh } = badge(l, t, w, &text);
        let _ = writeln!(
            s,
            "<g class=\"dropped\"><rect x=\"{bl:.1}\" y=\"{bt:.1}\" width=\"{bw:.1}\" \
             height=\"{bh:.1}\" rx=\"10\" fill=\"{DROPPED}\"/><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"middle\" fill=\"#ffffff\" font-weight=\"bold\">{text}</text></g>",
            bl + bw / 2.0,
            bt + 14.5
        );
    }
    s.push_str("</g>\n");
}

/// The red drop-off badge of a box with its left, top and width: centred on the top right corner.
fn badge(l: f64, t: f64, w: f64, text: &str) -> Rect {
    let bw = ems(text) * FONT_SIZE + 16.0;
    Rect { l: l + w - bw, t: t - 10.0, w: bw, h: 20.0 }
}

fn edge_label(s: &mut String, label: &Label) {
    let Rect { l, t, w, h } = label.rect;
    let _ = writeln!(
        s,
        "<g class=\"edge-label\"><rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" \
         rx=\"4\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#bbb\"/><text x=\"{:.1}\" \
         y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text></g>",
        l + w / 2.0,
        t + h / 2.0 + 4.0,
        escape_markup(&label.text)
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

    /// The G-MIS flow as shipped, with every count `count` (so every node has a badge).
    fn gmis(count: u64) -> (Flow, Traffic) {
        let flow = flowbot_core::load_flow(crate::flows::DEFAULT_FLOW, "gmis", &Default::default())
            .expect("the G-MIS flow loads");
        let n = flow.nodes().len();
        let traffic = Traffic {
            reached: vec![count; n],
            stopped: vec![count; n],
            edges: vec![count; lines(&flow).count()],
            started: count,
        };
        (flow, traffic)
    }

    /// Boxes with what they show (a label's text, a node's id).
    type Named = Vec<(String, Rect)>;

    /// Every label box and every node box (with its badge) of the G-MIS picture, named.
    fn boxes(flow: &Flow, traffic: &Traffic) -> (Layout, Named, Named) {
        let titles: Vec<String> =
            flow.nodes().iter().map(|n| cut(n.title(), MAX_TITLE_EM)).collect();
        let counts: Vec<String> = traffic.reached.iter().map(|c| format!("▶ {c}")).collect();
        let lay = layout(flow, traffic, "caption", &titles, &counts);
        let labels: Named = lay.labels().map(|l| (l.text.clone(), l.rect)).collect();
        let mut nodes = Vec::new();
        for (i, node) in flow.nodes().iter().enumerate() {
            let r = lay.node_rect(i);
            nodes.push((node.id().to_owned(), r));
            if traffic.dropped(flow, i) > 0 {
                let b = badge(r.l, r.t, r.w, &traffic.dropped(flow, i).to_string());
                nodes.push((format!("{} badge", node.id()), b));
            }
        }
        (lay, labels, nodes)
    }

    #[test]
    fn gmis_labels_overlap_neither_each_other_nor_boxes() {
        for count in [0, 7, 123_456] {
            let (flow, traffic) = gmis(count);
            let (lay, labels, nodes) = boxes(&flow, &traffic);
            assert_eq!(labels.len(), lines(&flow).count() + 1, "one label per edge and the start");
            for (k, (a, ra)) in labels.iter().enumerate() {
                for (b, rb) in &labels[k + 1..] {
                    assert!(!ra.intersects(rb), "labels {a:?} {ra:?} and {b:?} {rb:?} overlap");
                }
                for (id, rn) in &nodes {
                    assert!(!ra.intersects(rn), "label {a:?} {ra:?} overlaps {id} {rn:?}");
                }
                assert!(ra.l >= 0.0 && ra.right() <= lay.total_w, "{a:?} {ra:?} off the picture");
                assert!(ra.t >= 0.0 && ra.t + ra.h <= lay.total_h, "{a:?} {ra:?} off the picture");
            }
            for (id, rn) in &nodes {
                assert!(rn.l >= 0.0 && rn.right() <= lay.total_w, "{id} {rn:?} off the picture");
            }
        }
    }

    #[test]
    fn each_downward_edge_runs_through_its_label_below_its_source() {
        let (flow, traffic) = gmis(12);
        let (lay, _, _) = boxes(&flow, &traffic);
        let mut checked = 0;
        for (line, (path, label)) in lines(&flow).zip(&lay.edges) {
            let (a, b) = (line.from.index(), line.to.index());
            if lay.y[b] <= lay.y[a] {
                continue;
            }
            let r = label.rect;
            let cx = r.l + r.w / 2.0;
            // The straight segment through the label, in the gap just below the source.
            let segment = format!("L{cx:.1},{:.1}", r.t + r.h);
            assert!(path.contains(&segment), "{path} misses {segment}");
            assert!(r.t > lay.y[a] + NODE_H / 2.0 && r.t + r.h < lay.y[a] + NODE_H / 2.0 + GAP_Y);
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} downward edges");
    }

    #[test]
    fn labels_that_would_overlap_are_pushed_apart_around_where_they_wanted_to_be() {
        // Two of width 10 both wanting 0: they split around it; a far third stays put.
        assert_eq!(pack(&[(0.0, 10.0), (0.0, 10.0), (100.0, 5.0)], 2.0), [-6.0, 6.0, 100.0]);
        // A third pushed into the block joins it; the block moves as one.
        let lefts = pack(&[(0.0, 10.0), (0.0, 10.0), (12.0, 10.0)], 2.0);
        assert_eq!(lefts, [-8.0, 4.0, 16.0]);
        assert_eq!(pack(&[], 2.0), Vec::<f64>::new());
    }

    #[test]
    fn wide_text_is_measured_and_cut() {
        assert_eq!(ems("ab"), 1.2);
        assert_eq!(ems("対応"), 2.0);
        assert_eq!(cut("対応方法1（メールボックス）", 6.0), "対応方法1…");
        assert_eq!(escape_markup("<a&'\">"), "&lt;a&amp;&#39;&quot;&gt;");
    }
}
