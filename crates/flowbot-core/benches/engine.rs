//! Engine throughput: steps per second over whole G-MIS conversations, on one core.
//!
//! Each iteration replays all 25 root-to-ending paths of the G-MIS flow as a fresh conversation:
//! `start`, then one button press per answer (token strings prepared beforehand, as an adapter
//! receives them from the platform). Two more type the answers instead: the exact labels (which
//! take the exact-label shortcut) and full-width numbers (`２`: NFKC on every step). `normalize`
//! alone over every G-MIS label gives the cost a non-exact typed label adds.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowbot_core::{
    Conversation, Flow, Input, NodeKind, Params, Reply, Timestamp, load_flow, normalize,
};

const GMIS: &str = include_str!("../../../flows/gmis-mail-trouble.yaml");
const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// The token strings a user's presses carry along each path (conversations are deterministic).
fn press_scripts(flow: &Flow) -> Vec<Vec<String>> {
    flow.paths()
        .into_iter()
        .map(|path| {
            let (mut conv, mut out) = Conversation::start(flow, None, NOW);
            let mut tokens = Vec::new();
            for i in path {
                let token = out
                    .prompt_shown()
                    .unwrap()
                    .buttons()
                    .nth(usize::from(i))
                    .unwrap()
                    .token
                    .to_string();
                out = conv.step(flow, Input::Press(&token), NOW);
                tokens.push(token);
            }
            assert!(conv.is_finished(flow));
            tokens
        })
        .collect()
}

fn label_scripts(flow: &Flow) -> Vec<Vec<String>> {
    flow.paths()
        .into_iter()
        .map(|path| {
            let (mut conv, mut out) = Conversation::start(flow, None, NOW);
            let mut labels = Vec::new();
            for i in path {
                let label = out
                    .prompt_shown()
                    .unwrap()
                    .buttons()
                    .nth(usize::from(i))
                    .unwrap()
                    .label
                    .to_owned();
                out = conv.step(flow, Input::Text(&label), NOW);
                labels.push(label);
            }
            assert!(conv.is_finished(flow));
            labels
        })
        .collect()
}

/// The same paths typed as full-width numbers (`２`): every step needs full NFKC.
fn full_width_number_scripts(flow: &Flow) -> Vec<Vec<String>> {
    flow.paths()
        .into_iter()
        .map(|path| {
            path.into_iter()
                .map(|i| char::from_u32(0xFF11 + u32::from(i)).unwrap().to_string())
                .collect()
        })
        .collect()
}

fn steps(scripts: &[Vec<String>]) -> u64 {
    scripts.iter().map(|s| s.len() as u64 + 1).sum()
}

/// Runs every script as a fresh conversation; returns something derived from every reply.
fn replay(flow: &Flow, scripts: &[Vec<String>], input: fn(&str) -> Input<'_>) -> usize {
    let mut seen = 0;
    for script in scripts {
        let (mut conv, out) = Conversation::start(flow, None, NOW);
        seen += out.replies.len();
        for item in script {
            let out = conv.step(flow, input(black_box(item)), NOW);
            seen += out.replies.iter().filter(|r| matches!(r, Reply::Prompt(_))).count();
        }
        seen += conv.node().index();
    }
    seen
}

fn engine(c: &mut Criterion) {
    let flow = load_flow(GMIS, "gmis", &Params::new()).unwrap();
    let presses = press_scripts(&flow);
    let labels = label_scripts(&flow);
    assert_eq!(presses.len(), 25);

    let mut group = c.benchmark_group("gmis");
    group.throughput(Throughput::Elements(steps(&presses)));
    group.bench_function("presses", |b| b.iter(|| replay(&flow, &presses, |s| Input::Press(s))));
    group.throughput(Throughput::Elements(steps(&labels)));
    group.bench_function("typed_labels", |b| b.iter(|| replay(&flow, &labels, |s| Input::Text(s))));
    let numbers = full_width_number_scripts(&flow);
    group.throughput(Throughput::Elements(steps(&numbers)));
    group.bench_function("typed_full_width_numbers", |b| {
        b.iter(|| replay(&flow, &numbers, |s| Input::Text(s)))
    });
    group.finish();

    // What a typed answer that is not an exact label costs before matching: one `normalize`.
    let all_labels: Vec<&str> = flow
        .nodes()
        .iter()
        .filter_map(|n| match n.kind() {
            NodeKind::Question(q) => Some(q.choices().iter().map(|c| c.label())),
            _ => None,
        })
        .flatten()
        .collect();
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(all_labels.len() as u64));
    group.bench_function("gmis_labels", |b| {
        b.iter(|| all_labels.iter().map(|l| normalize(black_box(l)).len()).sum::<usize>())
    });
    group.finish();

    c.bench_function("load_and_compile_gmis", |b| {
        b.iter(|| load_flow(black_box(GMIS), "gmis", &Params::new()).unwrap().nodes().len())
    });
}

criterion_group!(benches, engine);
criterion_main!(benches);
