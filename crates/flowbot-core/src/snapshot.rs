//! A conversation in the form a store keeps it: [`Snapshot`] (node ids, not indices, so it
//! outlives a flow's compilation) and the two conversions, [`Conversation::snapshot`] and
//! [`Conversation::restore`]; and [`Transition`], an engine event as an event-log entry.
//!
//! The layers: `engine.rs` (the state machine) knows nothing of stores; this module reads the
//! engine; `store.rs` (the persistence contract) uses these types and names no engine type
//! but `Timestamp`.

use crate::engine::{Conversation, Event, Parts, Step, Timestamp};
use crate::flow::{Flow, NodeIx};

/// A conversation's state in a form that outlives a flow's indices: node ids, not positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub node: String,
    pub revision: u64,
    pub entered: u64,
    /// `(question id, choice index)`, oldest first.
    pub path: Vec<(String, u8)>,
    pub misses: u8,
    pub awaiting_resume: bool,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    /// A form being filled in (its stage and answers so far), encoded by the core; `None`
    /// outside a form. Personal data: kept no longer than the conversation, and cleared by
    /// `purge` once older than the retention period.
    pub form: Option<String>,
}

/// Why a snapshot does not fit the flow it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("the flow has no node `{0}`")]
    UnknownNode(String),
    #[error("node `{node}` has no choice {choice}")]
    UnknownChoice { node: String, choice: u8 },
    #[error("malformed path `{0}`")]
    MalformedPath(String),
}

impl Snapshot {
    /// The path as stored: `q1:1 q2:0`.
    pub fn path_text(&self) -> String {
        let mut s = String::with_capacity(self.path.len() * 6);
        for (i, (node, choice)) in self.path.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(node);
            s.push(':');
            s.push_str(&choice.to_string());
        }
        s
    }

    /// Parses [`Snapshot::path_text`]'s form.
    pub fn parse_path(text: &str) -> Result<Vec<(String, u8)>, RestoreError> {
        text.split_whitespace()
            .map(|step| {
                let (node, choice) = step
                    .rsplit_once(':')
                    .ok_or_else(|| RestoreError::MalformedPath(text.to_owned()))?;
                let choice =
                    choice.parse().map_err(|_| RestoreError::MalformedPath(text.to_owned()))?;
                Ok((node.to_owned(), choice))
            })
            .collect()
    }
}

impl Conversation {
    /// The conversation as a [`Snapshot`] of `flow` (the flow it runs on).
    pub fn snapshot(&self, flow: &Flow) -> Snapshot {
        Snapshot {
            node: flow.node(self.node()).id().to_owned(),
            revision: self.revision(),
            entered: self.entered(),
            path: self
                .path()
                .iter()
                .map(|s| (flow.node(s.node).id().to_owned(), s.choice))
                .collect(),
            misses: self.misses(),
            awaiting_resume: self.is_awaiting_resume(),
            started_at: self.started_at(),
            updated_at: self.updated_at(),
            form: self.draft().map(crate::form::Draft::encode),
        }
    }

    /// Rebuilds a conversation from a snapshot taken on the same flow version.
    pub fn restore(flow: &Flow, snapshot: &Snapshot) -> Result<Self, RestoreError> {
        let node = find(flow, &snapshot.node)?;
        let path = snapshot
            .path
            .iter()
            .map(|(id, choice)| {
                let ix = find(flow, id)?;
                match flow.node(ix).kind() {
                    crate::NodeKind::Question(q) if usize::from(*choice) < q.choices().len() => {
                        Ok(Step { node: ix, choice: *choice })
                    }
                    _ => Err(RestoreError::UnknownChoice { node: id.clone(), choice: *choice }),
                }
            })
            .collect::<Result<_, _>>()?;
        // A draft that no longer fits (or was cleared by `purge`) starts the form again.
        let form = flow.form_of(node).map(|form| {
            snapshot
                .form
                .as_deref()
                .and_then(|s| crate::form::Draft::decode(form, s))
                .unwrap_or_else(|| crate::form::Draft::new(form))
        });
        Ok(Conversation::from_parts(Parts {
            node,
            revision: snapshot.revision,
            entered: snapshot.entered,
            path,
            misses: snapshot.misses,
            awaiting_resume: snapshot.awaiting_resume,
            form,
            started_at: snapshot.started_at,
            updated_at: snapshot.updated_at,
        }))
    }
}

fn find(flow: &Flow, id: &str) -> Result<NodeIx, RestoreError> {
    flow.find(id).ok_or_else(|| RestoreError::UnknownNode(id.to_owned()))
}

/// One transition for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    /// The node left (none for a start).
    pub from: Option<String>,
    /// The choice taken (answers only).
    pub choice: Option<u8>,
    /// The node reached (a question or an ending).
    pub to: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Start,
    Answer,
    Back,
    Restart,
    Resume,
    Submit,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Start => "start",
            TransitionKind::Answer => "answer",
            TransitionKind::Back => "back",
            TransitionKind::Restart => "restart",
            TransitionKind::Resume => "resume",
            TransitionKind::Submit => "submit",
        }
    }
}

impl Transition {
    /// The log entry for an engine event.
    pub fn of(flow: &Flow, event: Event, at: Timestamp) -> Self {
        let id = |ix: NodeIx| flow.node(ix).id().to_owned();
        let (kind, from, choice, to) = match event {
            Event::Started { at } => (TransitionKind::Start, None, None, at),
            Event::Answered { from, choice, to } => {
                (TransitionKind::Answer, Some(id(from)), Some(choice), to)
            }
            Event::Back { from, to } => (TransitionKind::Back, Some(id(from)), None, to),
            Event::Restarted { from, to } => (TransitionKind::Restart, Some(id(from)), None, to),
            Event::Resumed { at } => (TransitionKind::Resume, Some(id(at)), None, at),
            Event::Submitted { from, to } => (TransitionKind::Submit, Some(id(from)), None, to),
        };
        Transition { kind, from, choice, to: id(to), at }
    }
}
