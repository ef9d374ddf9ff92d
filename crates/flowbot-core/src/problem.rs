//! What can be wrong with a flow, reported with file, line and node id.

use std::fmt;

/// One problem found while loading or compiling a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or other origin) the flow came from, as given to the loader.
    pub file: String,
    /// The 1-based line the problem is on, where it can be located.
    pub line: Option<u32>,
    /// The node the problem is about, if any.
    pub node: Option<String>,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// The kinds of problem. Messages are lowercase and carry the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    #[error("{0}")]
    Syntax(String),
    #[error("invalid flow id `{0}`: use 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidFlowId(String),
    #[error("invalid node id `{0}`: use A-Z a-z 0-9 _ - only")]
    InvalidNodeId(String),
    #[error("duplicate node id (first defined on line {first_line})")]
    DuplicateId { first_line: u32 },
    #[error("{field} names unknown node `{target}`")]
    UnknownTarget { field: String, target: String },
    #[error("no entry point reaches this node")]
    Unreachable,
    #[error("no ending can be reached from this node")]
    NoEndingReachable,
    #[error("a node needs exactly one of `ask`, `say`, `end` or `form`, found {0}")]
    NodeKind(String),
    #[error("{0}")]
    Shape(String),
    #[error("choice {choice} has an empty label")]
    EmptyLabel { choice: usize },
    #[error(
        "choices {first} and {second} have equal labels `{label}` (compared after NFKC and whitespace folding)"
    )]
    EqualLabels { first: usize, second: usize, label: String },
    #[error(
        "choice {choice}'s label `{label}` is the {button} button's label; typing it would be ambiguous"
    )]
    LabelIsNavigation { choice: usize, label: String, button: &'static str },
    #[error("choice {choice}'s label `{label}` reads as a choice number when typed")]
    LabelIsNumber { choice: usize, label: String },
    #[error("two choices are marked `means: {0}`")]
    DuplicateMeans(&'static str),
    #[error("entry name `{0}` is not valid: use 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidEntryName(String),
    /// Over a limit of a platform the flow is checked for ("choice 4's label `…` is 82
    /// characters; Chat allows 80").
    #[error("{0}")]
    OverLimit(Box<OverLimit>),
    #[error("text uses parameter `{{{{{0}}}}}`, which `params` does not declare")]
    UndeclaredParam(String),
    #[error("text has an unterminated `{{{{` placeholder")]
    UnterminatedPlaceholder,
    #[error("form `{form}`: {message}")]
    Form { form: String, message: String },
    #[error("parameter `{name}`: {message}")]
    Param { name: String, message: String },
    /// Over one of the loader's own bounds ([`crate::bounds`]).
    #[error("{what} is larger than the {max} bytes allowed")]
    TooLarge { what: String, max: usize },
    #[error("the file is not UTF-8: byte {byte} (column {column}) is not part of a character")]
    NotUtf8 { byte: usize, column: usize },
}

/// A platform's limit broken: "choice 4's label `…` is 82 characters; Chat allows 80".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {len} {unit}; {platform} allows {max}")]
pub struct OverLimit {
    /// What is too long (or too many), as the message names it.
    pub what: String,
    pub len: usize,
    /// The unit of `len` and `max` ("characters", "bytes", "buttons").
    pub unit: &'static str,
    /// The platform whose limit it is ([`Limits::platform`](crate::Limits::platform)).
    pub platform: &'static str,
    pub max: usize,
}

/// Every problem of one load, in file order. A flow with any problem does not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{}:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
