//! What each conversation is expected to show: the G-MIS flow's button paths, walked with the
//! real engine, as the node ids the bot's messages must name in order.

use flowbot_core::{Conversation, Flow, Input, NodeKind, Timestamp};

use super::rng::Rng;

/// One path from `/start` to an ending.
#[derive(Debug, Clone)]
pub struct Path {
    /// The node each message names: the first question, then where each answer leads (the
    /// last is the ending).
    pub nodes: Vec<String>,
    /// The choice index answered at each question (`nodes.len() - 1` of them).
    pub choices: Vec<u8>,
}

/// How a user gives one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Press,
    /// The same button pressed twice (two callback queries).
    DoublePress,
    /// The button's label typed as a message.
    Typed,
}

/// A conversation a user will have: its path and how each answer is given.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: Path,
    pub how: Vec<How>,
}

/// Every path of presses through `flow`, with the nodes it shows.
pub fn paths(flow: &Flow) -> Vec<Path> {
    flow.paths()
        .into_iter()
        .map(|choices| {
            let (mut conv, _) = Conversation::start(flow, None, Timestamp(0));
            let mut nodes = vec![flow.node(conv.node()).id().to_owned()];
            for &choice in &choices {
                let NodeKind::Question(q) = flow.node(conv.node()).kind() else {
                    unreachable!("a path answers questions only")
                };
                let label = q.choices()[usize::from(choice)].label().to_owned();
                conv.step(flow, Input::Text(&label), Timestamp(0));
                nodes.push(flow.node(conv.node()).id().to_owned());
            }
            Path { nodes, choices }
        })
        .collect()
}

/// A random script: a path, and per answer a press, a double press or a typed label.
pub fn script(paths: &[Path], rng: &mut Rng, double_press: f64, typed: f64) -> Script {
    let path = paths[rng.below(paths.len())].clone();
    let how = path
        .choices
        .iter()
        .map(|_| {
            let x = rng.unit();
            if x < typed {
                How::Typed
            } else if x < typed + double_press {
                How::DoublePress
            } else {
                How::Press
            }
        })
        .collect();
    Script { path, how }
}
