//! `flowbot render`: diagrams carry the exact texts of questions, answers and endings.

use flowbot_core::NodeKind;
use flowbot_tests::{flowbot, gmis, stdout};

fn render(format: &str, extra: &[&str]) -> String {
    let out = flowbot().args(["render", "--format", format]).args(extra).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    stdout(&out)
}

#[test]
fn mermaid_carries_every_question_answer_and_ending() {
    let flow = gmis();
    let diagram = render("mermaid", &[]);
    assert!(diagram.starts_with("flowchart TD\n"));
    for node in flow.nodes() {
        match node.kind() {
            NodeKind::Question(q) => {
                assert!(
                    diagram.contains(&format!(
                        "{}{{{{\"{}",
                        node.id(),
                        q.text().replace('\n', "<br/>")
                    )),
                    "{}",
                    node.id()
                );
                for c in q.choices() {
                    let edge = format!(
                        "{} -->|\"{}\"| {}",
                        node.id(),
                        c.label(),
                        flow.node(c.next()).id()
                    );
                    assert!(diagram.contains(&edge), "missing {edge}");
                }
            }
            NodeKind::Ending { .. } => {
                assert!(
                    diagram.contains(&format!("{}([\"{}\"])", node.id(), node.title())),
                    "{}",
                    node.id()
                );
            }
            NodeKind::Message { next, .. } => {
                assert!(diagram.contains(&format!("{} --> {}", node.id(), flow.node(*next).id())));
            }
            NodeKind::Form { next, .. } => {
                assert!(
                    diagram.contains(&format!("{}[[\"{}\"]]", node.id(), node.title())),
                    "{}",
                    node.id()
                );
                assert!(diagram.contains(&format!("{} --> {}", node.id(), flow.node(*next).id())));
            }
        }
    }
    assert!(diagram.contains("q5{{\"同じ病院等内でG-MISを既に利用している部署がありますか<br/>※歯科診療所、助産所は全て「ない」に該当します\"}}"));
    assert!(!diagram.contains("?start="), "entry points only on request");
    let with_entries = render("mermaid", &["--entries"]);
    assert!(with_entries.contains("entry_taiou3_view>\"?start=taiou3-view\"] -.-> m3_noperm"));
}

#[test]
fn full_mermaid_has_the_ending_texts_and_dot_is_escaped() {
    let full = render("mermaid", &["--full"]);
    assert!(full.contains("約２週間程度"));
    let dot = render("dot", &[]);
    assert!(dot.starts_with("digraph \"gmis-mail-trouble\" {"));
    assert!(dot.contains("\"q1\" -> \"q2\" [label=\"届いている\"];"));
    assert!(dot.contains("\"q5\" [shape=diamond, label=\"同じ病院等内でG-MISを既に利用している部署がありますか\\n※歯科診療所"));
    assert!(dot.trim_end().ends_with('}'));
    let dot = render("dot", &["--entries"]);
    assert!(dot.contains("\"?start=taiou5\" -> \"m5\" [style=dotted];"), "{dot}");
}

/// The README's diagram is what `flowbot render` draws of the shipped flow.
#[test]
fn readme_diagram_is_current() {
    let readme = std::fs::read_to_string(flowbot_tests::root().join("README.md")).unwrap();
    let start = readme.find("```mermaid\n").expect("a mermaid block") + "```mermaid\n".len();
    let end = start + readme[start..].find("```").unwrap();
    assert_eq!(
        &readme[start..end],
        render("mermaid", &[]),
        "regenerate with `flowbot render --format mermaid`"
    );
}
