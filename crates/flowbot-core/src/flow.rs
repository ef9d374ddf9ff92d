//! The compiled flow: a checked graph of nodes with every text final.
//!
//! A [`Flow`] only exists if it passed every check in `compile`: every `next` resolves, every
//! node is reachable and can reach an ending, every label fits every platform. The engine relies
//! on that and never re-checks.

use std::fmt;

use crate::form::Form;
use crate::token::{Action, Token};

/// Index of a node in [`Flow::nodes`]. Only meaningful with the flow (and version) it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIx(pub(crate) u16);

impl NodeIx {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The content hash of a flow's source: which version a conversation started on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowVersion(pub [u8; 8]);

impl FlowVersion {
    /// Parses the 16 hex digits `Display` writes.
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 16 || !s.is_ascii() {
            return None;
        }
        let mut v = [0; 8];
        for (i, b) in v.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(FlowVersion(v))
    }
}

impl fmt::Display for FlowVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A loaded, validated flow.
#[derive(Debug, Clone)]
pub struct Flow {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) origin: String,
    pub(crate) version: FlowVersion,
    pub(crate) start: NodeIx,
    /// The first question (or ending) a conversation begins at, after the start's messages.
    pub(crate) first_stop: NodeIx,
    /// Sorted by name.
    pub(crate) entries: Vec<(String, NodeIx)>,
    pub(crate) texts: Texts,
    pub(crate) nodes: Vec<Node>,
    /// The names of the parameters the flow declares, sorted.
    pub(crate) params: Vec<String>,
    /// After this long without a word, a returning user is asked whether to resume.
    pub(crate) resume_after: Option<u64>,
    pub(crate) forms: Vec<Form>,
    /// Whether submitted forms are delivered to a help desk (or only shown to copy).
    pub(crate) delivers: bool,
    /// The lines of the engine's texts (`texts:`), by name, for problems about them.
    pub(crate) text_lines: std::collections::BTreeMap<String, u32>,
}

/// The pause after which a returning user is asked whether to resume (one day, in ms).
pub const DEFAULT_RESUME_AFTER_MS: u64 = 24 * 60 * 60 * 1000;

impl Flow {
    /// The flow's id (`flow:` in the file).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    /// The file (or other origin) the flow was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn version(&self) -> FlowVersion {
        self.version
    }

    pub fn start(&self) -> NodeIx {
        self.start
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, ix: NodeIx) -> &Node {
        &self.nodes[ix.index()]
    }

    /// Finds a node by id.
    pub fn find(&self, id: &str) -> Option<NodeIx> {
        self.nodes.iter().position(|n| n.id == id).map(to_ix)
    }

    /// The named entry points, sorted by name.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&str, NodeIx)> {
        self.entries.iter().map(|(name, ix)| (name.as_str(), *ix))
    }

    /// Resolves an entry name; only names listed under `entries:` resolve, never node ids.
    pub fn entry(&self, name: &str) -> Option<NodeIx> {
        self.entries.binary_search_by(|(n, _)| n.as_str().cmp(name)).ok().map(|i| self.entries[i].1)
    }

    /// Sets the pause (in milliseconds) after which a returning user is asked whether to resume
    /// where they left off or start again; `None` never asks. The default is one day.
    pub fn with_resume_after(mut self, pause_ms: Option<u64>) -> Self {
        self.resume_after = pause_ms;
        self
    }

    pub fn resume_after(&self) -> Option<u64> {
        self.resume_after
    }

    /// Says whether the deployment delivers submitted forms to a help desk, which picks the
    /// wording of the hand-off ("sent" or "please send"). The default is no.
    pub fn with_delivery(mut self, delivers: bool) -> Self {
        self.delivers = delivers;
        self
    }

    pub fn delivers(&self) -> bool {
        self.delivers
    }

    /// The forms (`forms:`), in the file's order.
    pub fn forms(&self) -> &[Form] {
        &self.forms
    }

    /// The form a node asks, if it is a form node.
    pub fn form_of(&self, ix: NodeIx) -> Option<&Form> {
        match self.node(ix).kind {
            NodeKind::Form { form, .. } => self.forms.get(form),
            _ => None,
        }
    }

    /// The form field whose input button `token` is (`Action::Field`).
    pub fn input_field(&self, token: &Token<'_>) -> Option<(&Form, &crate::form::Field)> {
        let Action::Field(i) = token.action else { return None };
        let form = self.form_of(self.find(token.node)?)?;
        Some((form, form.fields.get(usize::from(i))?))
    }

    /// The label of the button a token stands for, if the flow has such a button: for showing
    /// which answer a pressed message got.
    pub fn button_label(&self, token: &Token<'_>) -> Option<&str> {
        let t = &self.texts;
        match token.action {
            Action::Back => return Some(&t.back),
            Action::Restart => return Some(&t.restart),
            Action::Resume => return Some(&t.resume),
            _ => {}
        }
        let ix = self.find(token.node)?;
        match (&self.node(ix).kind, token.action) {
            (NodeKind::Question(q), Action::Choice(i)) => {
                q.choices.get(usize::from(i)).map(|c| c.label.as_str())
            }
            (NodeKind::Form { form, .. }, action) => {
                let form = self.forms.get(*form)?;
                match action {
                    Action::Choice(i) => form.fields.get(usize::from(i)).map(|f| f.label.as_str()),
                    Action::Submit => Some(&form.texts.submit),
                    Action::Fix => Some(&form.texts.fix),
                    Action::Unknown(i) => form.fields.get(usize::from(i))?.unknown.as_deref(),
                    Action::Field(_) => Some(&form.texts.input),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The names of the parameters the flow declares (`params:`), sorted.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    pub fn texts(&self) -> &Texts {
        &self.texts
    }

    /// Every path from the start to an ending by button presses alone, as the choice index
    /// taken at each question. (Paths through a form need typed answers; scripts cover them.)
    ///
    /// A path never visits a node twice, so a flow with loops still has finitely many; the
    /// count grows with the number of branches, so this is for tests and benchmarks.
    pub fn paths(&self) -> Vec<Vec<u8>> {
        fn walk(
            flow: &Flow,
            at: NodeIx,
            on_path: &mut Vec<bool>,
            taken: &mut Vec<u8>,
            out: &mut Vec<Vec<u8>>,
        ) {
            if std::mem::replace(&mut on_path[at.index()], true) {
                return;
            }
            match &flow.node(at).kind {
                NodeKind::Ending { .. } => out.push(taken.clone()),
                NodeKind::Message { next, .. } => walk(flow, *next, on_path, taken, out),
                // A form needs typed answers: not a path of presses.
                NodeKind::Form { .. } => {}
                NodeKind::Question(q) => {
                    for (i, choice) in q.choices.iter().enumerate() {
                        taken.push(i as u8);
                        walk(flow, choice.next, on_path, taken, out);
                        taken.pop();
                    }
                }
            }
            on_path[at.index()] = false;
        }
        let mut out = Vec::new();
        walk(self, self.start, &mut vec![false; self.nodes.len()], &mut Vec::new(), &mut out);
        out
    }

    /// Every edge of the graph: `(from, choice index or None for a message's next, to)`.
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        self.nodes.iter().enumerate().flat_map(|(i, node)| {
            let from = to_ix(i);
            let (choices, next): (&[Choice], Option<NodeIx>) = match &node.kind {
                NodeKind::Question(q) => (&q.choices, None),
                NodeKind::Message { next, .. } | NodeKind::Form { next, .. } => (&[], Some(*next)),
                NodeKind::Ending { .. } => (&[], None),
            };
            let via_choice = choices.iter().enumerate().map(move |(c, ch)| Edge {
                from,
                choice: Some(c as u8),
                to: ch.next,
            });
            via_choice.chain(next.map(|to| Edge { from, choice: None, to }))
        })
    }
}

pub(crate) fn to_ix(i: usize) -> NodeIx {
    // `compile` refuses flows with more nodes than fit.
    NodeIx(u16::try_from(i).unwrap_or(u16::MAX))
}

/// One edge of the flow graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    pub from: NodeIx,
    /// The choice taken at a question; `None` for a message's or a form's `next`.
    pub choice: Option<u8>,
    pub to: NodeIx,
}

/// One node of a flow.
#[derive(Debug, Clone)]
pub struct Node {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) line: Option<u32>,
    pub(crate) kind: NodeKind,
}

impl Node {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its name in diagrams: the `title:`, or the first line of its text.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The line of the flow file the node starts on, where known.
    pub fn line(&self) -> Option<u32> {
        self.line
    }

    pub fn kind(&self) -> &NodeKind {
        &self.kind
    }

    /// The node's main text: the question, the message or the ending; a form's title.
    pub fn text(&self) -> &str {
        match &self.kind {
            NodeKind::Question(q) => &q.text,
            NodeKind::Message { text, .. } | NodeKind::Ending { text } => text,
            NodeKind::Form { .. } => &self.title,
        }
    }

    pub fn is_ending(&self) -> bool {
        matches!(self.kind, NodeKind::Ending { .. })
    }
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Question(Question),
    /// Shown, then the conversation moves straight on to `next`.
    Message {
        text: String,
        next: NodeIx,
    },
    Ending {
        text: String,
    },
    /// A form (`Flow::forms()[form]`): its fields are asked, and its submission leads to `next`.
    Form {
        form: usize,
        next: NodeIx,
    },
}

#[derive(Debug, Clone)]
pub struct Question {
    pub(crate) text: String,
    pub(crate) note: Option<String>,
    pub(crate) choices: Vec<Choice>,
}

impl Question {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    pub fn choices(&self) -> &[Choice] {
        &self.choices
    }
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub(crate) label: String,
    /// The label normalised for typed-answer matching.
    pub(crate) key: String,
    pub(crate) next: NodeIx,
    pub(crate) means: Option<Means>,
    /// The line of the flow file the choice is on, where known.
    pub(crate) line: Option<u32>,
}

impl Choice {
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn next(&self) -> NodeIx {
        self.next
    }

    pub fn means(&self) -> Option<Means> {
        self.means
    }
}

/// A choice marked as the flow's yes or no answer to its question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Means {
    Yes,
    No,
}

/// The engine's own wording, from the flow's `texts:`.
#[derive(Debug, Clone)]
pub struct Texts {
    pub back: String,
    pub restart: String,
    pub stale: String,
    pub no_match: String,
    pub contact: String,
    pub help: String,
    pub cannot_go_back: String,
    pub ended: String,
    pub unknown_entry: String,
    pub unknown_command: String,
    /// Asked when a user comes back after a pause: resume, or start again?
    pub resume_question: String,
    /// The label of the resume button (start again uses `restart`).
    pub resume: String,
    /// A press on a button of someone else's conversation (group chats).
    pub not_yours: String,
    /// The descriptions of `/start`, `/back`, `/restart` and `/help` in the messengers' menus.
    pub command_start: String,
    pub command_back: String,
    pub command_restart: String,
    pub command_help: String,
    /// The words a link types before `#ENTRY` on a platform without start payloads (LINE);
    /// empty when the flow sets none.
    pub start_phrase: String,
    /// `back`, `restart` and `resume` normalised, for typed navigation.
    pub(crate) back_key: String,
    pub(crate) restart_key: String,
    pub(crate) resume_key: String,
}

impl Flow {
    /// Follows message nodes from `ix` to the first question or ending.
    ///
    /// `compile` guarantees every node reaches an ending, so a chain of messages cannot loop;
    /// the walk is still bounded by the node count.
    pub(crate) fn settle(&self, mut ix: NodeIx) -> NodeIx {
        for _ in 0..self.nodes.len() {
            match self.node(ix).kind {
                NodeKind::Message { next, .. } => ix = next,
                _ => break,
            }
        }
        ix
    }
}
