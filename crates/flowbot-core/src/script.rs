//! Conversation scripts: YAML transcripts that drive the engine and assert what it says.
//!
//! `flowbot test` runs them and measures node and edge coverage of each flow; see
//! `flows/README.md` for the format.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;

use crate::engine::{Conversation, Input, NoticeKind, Outcome, Reply, Timestamp};
use crate::flow::{Flow, NodeIx, NodeKind};
use crate::loader::{Outline, line_no, parse};
use crate::problem::{Problem, ProblemKind};
use crate::raw::Params;

/// A file of scripts for one flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptFile {
    /// The id of the flow the scripts talk to.
    pub flow: String,
    /// Parameter values the flow is compiled with for these scripts.
    #[serde(default)]
    pub params: Params,
    pub scripts: Vec<Script>,
    /// Where the file came from, and the lines of its `params:` keys.
    #[serde(skip)]
    origin: String,
    #[serde(skip)]
    param_lines: BTreeMap<String, u32>,
    #[serde(skip)]
    flow_line: Option<u32>,
}

impl ScriptFile {
    /// Parses a script file, noting the lines of its scripts and steps for failures.
    pub fn parse(source: &str, origin: &str) -> Result<Self, Problem> {
        crate::bounds::source_text(source.as_bytes(), origin)?;
        let mut file: ScriptFile = parse(source, origin)?;
        let outline = Outline::new(source);
        file.origin = origin.to_owned();
        file.flow_line = outline.top_key("flow").map(line_no);
        file.param_lines =
            outline.top_mapping_keys("params").into_iter().map(|(k, l)| (k, line_no(l))).collect();
        let items = outline.top_sequence("scripts");
        if items.len() == file.scripts.len() {
            for (i, script) in file.scripts.iter_mut().enumerate() {
                let end = items.get(i + 1).copied().unwrap_or(outline.end_of_block(items[i]));
                script.line = Some(line_no(items[i]));
                let steps = outline.child_sequence((items[i], end), "steps");
                if steps.len() == script.steps.len() {
                    script.step_lines = steps.into_iter().map(line_no).collect();
                }
            }
        }
        Ok(file)
    }

    /// The line of the file's `flow:`.
    pub fn flow_line(&self) -> Option<u32> {
        self.flow_line
    }

    /// Where the file sets its parameter values, for problems with them.
    pub fn param_origins(&self) -> crate::raw::ParamOrigins {
        self.params
            .keys()
            .map(|name| {
                let line = self.param_lines.get(name).copied();
                (name.clone(), crate::raw::ValueOrigin { file: self.origin.clone(), line })
            })
            .collect()
    }

    /// The file's parameters that `flow` does not declare (most likely misspelt), each with
    /// its line.
    pub fn unknown_params(&self, flow: &Flow) -> Vec<Problem> {
        self.params
            .keys()
            .filter(|name| !flow.params().contains(name))
            .map(|name| Problem {
                file: self.origin.clone(),
                line: self.param_lines.get(name).copied(),
                node: None,
                kind: ProblemKind::Param {
                    name: name.clone(),
                    message: format!(
                        "flow `{}` declares no such parameter (it has: {})",
                        flow.id(),
                        flow.params().join(", ")
                    ),
                },
            })
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub name: String,
    /// The entry point to start at; the flow's start when absent.
    #[serde(default)]
    pub entry: Option<String>,
    pub steps: Vec<ScriptStep>,
    /// The line the script starts on, and each step's, where the file's layout tells.
    #[serde(skip)]
    line: Option<u32>,
    #[serde(skip)]
    step_lines: Vec<u32>,
}

/// One step: an input to give, or an assertion about the last input's outcome.
///
/// Written as a bare word (`back`) or a one-key map (`press: 届いている`); see `flows/README.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptStep {
    Press(String),
    PressStale(String),
    PressAgain,
    PressToken(String),
    Type(String),
    /// A form field's answer typed into the box its input button opens (a modal dialog).
    Answer(String),
    Back,
    Restart,
    Help,
    Start(String),
    /// Let this many hours pass before the next input.
    WaitHours(String),
    At(String),
    Says(String),
    NotSays(String),
    Notice(String),
}

const WORD_STEPS: &[&str] = &["press_again", "back", "restart", "help"];
const VALUE_STEPS: &[&str] = &[
    "press",
    "press_stale",
    "press_token",
    "type",
    "answer",
    "start",
    "wait_hours",
    "at",
    "says",
    "not_says",
    "notice",
];

impl ScriptStep {
    fn word(word: &str) -> Option<Self> {
        Some(match word {
            "press_again" => ScriptStep::PressAgain,
            "back" => ScriptStep::Back,
            "restart" => ScriptStep::Restart,
            "help" => ScriptStep::Help,
            _ => return None,
        })
    }

    fn with_value(key: &str, v: String) -> Option<Self> {
        Some(match key {
            "press" => ScriptStep::Press(v),
            "press_stale" => ScriptStep::PressStale(v),
            "press_token" => ScriptStep::PressToken(v),
            "type" => ScriptStep::Type(v),
            "answer" => ScriptStep::Answer(v),
            "start" => ScriptStep::Start(v),
            "wait_hours" => ScriptStep::WaitHours(v),
            "at" => ScriptStep::At(v),
            "says" => ScriptStep::Says(v),
            "not_says" => ScriptStep::NotSays(v),
            "notice" => ScriptStep::Notice(v),
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for ScriptStep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};

        struct StepVisitor;
        impl<'de> Visitor<'de> for StepVisitor {
            type Value = ScriptStep;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a step: one of `back`, `restart`, `help`, `press_again`, or a one-key map such as `press: LABEL`")
            }

            fn visit_str<E: Error>(self, word: &str) -> Result<ScriptStep, E> {
                ScriptStep::word(word).ok_or_else(|| E::unknown_variant(word, WORD_STEPS))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScriptStep, A::Error> {
                let key: String =
                    map.next_key()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let Scalar(value) = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(A::Error::custom("a step is a map with exactly one key"));
                }
                ScriptStep::with_value(&key, value)
                    .ok_or_else(|| A::Error::unknown_variant(&key, VALUE_STEPS))
            }
        }
        d.deserialize_any(StepVisitor)
    }
}

/// A scalar taken as text, so that `type: 1` and `type: "1"` mean the same.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, Visitor};

        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }

            fn visit_i64<E: Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_u64<E: Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_f64<E: Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_bool<E: Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// Why a script failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("script `{script}`, step {step}: {message}")]
pub struct ScriptFailure {
    pub script: String,
    /// 1-based index of the failing step.
    pub step: usize,
    /// The line of the failing step in the script file (of the script, where the step's is
    /// not known).
    pub line: Option<u32>,
    pub message: String,
}

/// Which nodes and edges of one flow the scripts visited.
#[derive(Debug, Clone)]
pub struct Coverage {
    nodes: Vec<bool>,
    edges: HashSet<(NodeIx, Option<u8>)>,
}

impl Coverage {
    pub fn new(flow: &Flow) -> Self {
        Coverage { nodes: vec![false; flow.nodes().len()], edges: HashSet::new() }
    }

    /// Records what one outcome shows and which edge it took.
    pub fn record(&mut self, flow: &Flow, outcome: &Outcome<'_>) {
        for reply in &outcome.replies {
            let node = match reply {
                Reply::Say { node, .. } => node,
                Reply::Prompt(p) => &p.node,
                Reply::Notice { .. } | Reply::Handoff => continue,
            };
            if let Some(ix) = flow.find(node.id()) {
                self.nodes[ix.index()] = true;
                if let NodeKind::Message { .. } = node.kind() {
                    self.edges.insert((ix, None));
                }
            }
        }
        match outcome.event {
            Some(crate::engine::Event::Answered { from, choice, .. }) => {
                self.edges.insert((from, Some(choice)));
            }
            Some(crate::engine::Event::Submitted { from, .. }) => {
                self.edges.insert((from, None));
            }
            _ => {}
        }
    }

    /// Adds another run's coverage of the same flow.
    pub fn merge(&mut self, other: &Coverage) {
        for (mine, theirs) in self.nodes.iter_mut().zip(&other.nodes) {
            *mine |= theirs;
        }
        self.edges.extend(other.edges.iter().copied());
    }

    pub fn report(&self, flow: &Flow) -> CoverageReport {
        let all: Vec<_> = flow.edges().collect();
        let missing_edges = all
            .iter()
            .filter(|e| !self.edges.contains(&(e.from, e.choice)))
            .map(|e| {
                let from = flow.node(e.from);
                let to = flow.node(e.to).id();
                match (e.choice, from.kind()) {
                    (Some(c), NodeKind::Question(q)) => {
                        format!("{} --[{}]--> {to}", from.id(), q.choices()[usize::from(c)].label())
                    }
                    _ => format!("{} --> {to}", from.id()),
                }
            })
            .collect();
        let missing_nodes = flow
            .nodes()
            .iter()
            .zip(&self.nodes)
            .filter(|(_, hit)| !**hit)
            .map(|(n, _)| n.id().to_owned())
            .collect();
        CoverageReport {
            nodes_total: self.nodes.len(),
            nodes_hit: self.nodes.iter().filter(|h| **h).count(),
            edges_total: all.len(),
            edges_hit: all.len() - self.edges_missing(&all),
            missing_nodes,
            missing_edges,
        }
    }

    fn edges_missing(&self, all: &[crate::flow::Edge]) -> usize {
        all.iter().filter(|e| !self.edges.contains(&(e.from, e.choice))).count()
    }
}

/// Coverage figures of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageReport {
    pub nodes_total: usize,
    pub nodes_hit: usize,
    pub edges_total: usize,
    pub edges_hit: usize,
    pub missing_nodes: Vec<String>,
    pub missing_edges: Vec<String>,
}

impl CoverageReport {
    pub fn is_complete(&self) -> bool {
        self.edges_hit == self.edges_total && self.nodes_hit == self.nodes_total
    }
}

impl fmt::Display for CoverageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nodes {}/{} ({:.0}%), edges {}/{} ({:.0}%)",
            self.nodes_hit,
            self.nodes_total,
            percent(self.nodes_hit, self.nodes_total),
            self.edges_hit,
            self.edges_total,
            percent(self.edges_hit, self.edges_total),
        )
    }
}

fn percent(hit: usize, total: usize) -> f64 {
    if total == 0 { 100.0 } else { hit as f64 * 100.0 / total as f64 }
}

/// Runs one script against `flow`, adding what it visits to `coverage`.
///
/// The script's clock starts at zero and moves only with `wait_hours` steps.
pub fn run_script(
    flow: &Flow,
    script: &Script,
    coverage: &mut Coverage,
) -> Result<(), ScriptFailure> {
    let mut now = Timestamp(0);
    let fail = |step: usize, message: String| ScriptFailure {
        script: script.name.clone(),
        step,
        line: script.step_lines.get(step.wrapping_sub(1)).copied().or(script.line),
        message,
    };
    let (mut conv, first) = Conversation::start(flow, script.entry.as_deref(), now);
    coverage.record(flow, &first);
    let mut last = Shown::from(&first);
    // Every prompt shown so far, as (label, token) lists, oldest first.
    let mut prompts: Vec<Vec<(String, String)>> = last.buttons.iter().cloned().collect();
    let mut last_press: Option<String> = None;

    for (i, step) in script.steps.iter().enumerate() {
        let n = i + 1;
        let input_token;
        let input = match step {
            ScriptStep::Press(label) => {
                let current = prompts.last().map(Vec::as_slice).unwrap_or(&[]);
                input_token =
                    current.iter().find(|(l, _)| l == label).map(|(_, t)| t.clone()).ok_or_else(
                        || {
                            fail(
                                n,
                                format!(
                                    "no button `{label}` on the current prompt ({})",
                                    last.describe(&conv, flow)
                                ),
                            )
                        },
                    )?;
                last_press = Some(input_token.clone());
                Input::Press(&input_token)
            }
            ScriptStep::PressStale(label) => {
                // A button of an earlier message that is no longer current (a re-shown question
                // carries the same, still valid, tokens as the message it repeats).
                let current = prompts.last().map(Vec::as_slice).unwrap_or(&[]);
                input_token = prompts
                    .iter()
                    .rev()
                    .flat_map(|p| p.iter())
                    .find(|(l, t)| l == label && !current.iter().any(|(_, c)| c == t))
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| {
                        fail(n, format!("no earlier button `{label}` that is no longer current"))
                    })?;
                Input::Press(&input_token)
            }
            ScriptStep::PressAgain => {
                input_token = last_press
                    .clone()
                    .ok_or_else(|| fail(n, "nothing was pressed before".into()))?;
                Input::Press(&input_token)
            }
            ScriptStep::PressToken(token) => Input::Press(token),
            ScriptStep::Type(text) => Input::Text(text),
            ScriptStep::Answer(text) => {
                input_token = last
                    .input
                    .clone()
                    .ok_or_else(|| fail(n, "the current prompt asks no form field".into()))?;
                Input::Answer { token: &input_token, text }
            }
            ScriptStep::Back => Input::Back,
            ScriptStep::Restart => Input::Restart,
            ScriptStep::Help => Input::Help,
            ScriptStep::Start(entry) => Input::Start { entry: Some(entry) },
            ScriptStep::WaitHours(hours) => {
                let hours: u64 = hours
                    .parse()
                    .map_err(|_| fail(n, format!("`{hours}` is not a number of hours")))?;
                // Checked: a script may ask for more hours than the clock can count.
                now = hours
                    .checked_mul(3_600_000)
                    .and_then(|ms| now.0.checked_add(ms))
                    .map(Timestamp)
                    .ok_or_else(|| fail(n, format!("{hours} hours is too long a wait")))?;
                continue;
            }
            ScriptStep::At(id) => {
                let at = flow.node(conv.node()).id();
                if at != id {
                    return Err(fail(n, format!("expected to be at `{id}`, but at `{at}`")));
                }
                continue;
            }
            ScriptStep::Says(text) => {
                if !last.text.contains(text.as_str()) {
                    return Err(fail(
                        n,
                        format!(
                            "expected the bot to say `{text}`; it said:\n{}",
                            indent(&last.text)
                        ),
                    ));
                }
                continue;
            }
            ScriptStep::NotSays(text) => {
                if last.text.contains(text.as_str()) {
                    return Err(fail(
                        n,
                        format!(
                            "expected the bot not to say `{text}`; it said:\n{}",
                            indent(&last.text)
                        ),
                    ));
                }
                continue;
            }
            ScriptStep::Notice(name) => {
                if !NoticeKind::ALL.iter().any(|k| k.name() == name) {
                    return Err(fail(n, format!("unknown notice kind `{name}`")));
                }
                if !last.notices.iter().any(|k| k.name() == name) {
                    let got: Vec<_> = last.notices.iter().map(|k| k.name()).collect();
                    return Err(fail(n, format!("expected notice `{name}`, got {got:?}")));
                }
                continue;
            }
        };
        let outcome = conv.step(flow, input, now);
        coverage.record(flow, &outcome);
        let input = last.input.take();
        last = Shown::from(&outcome);
        if last.buttons.is_none() {
            // Nothing new on screen (a refused press): the box stays the one open before.
            last.input = input;
        }
        if let Some(buttons) = last.buttons.clone() {
            prompts.push(buttons);
        }
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    | {l}\n")).collect()
}

/// What one outcome showed, flattened for assertions.
struct Shown {
    text: String,
    notices: Vec<NoticeKind>,
    buttons: Option<Vec<(String, String)>>,
    /// The token of the current prompt's input button (a form field).
    input: Option<String>,
}

impl Shown {
    fn from(outcome: &Outcome<'_>) -> Self {
        let mut text = String::new();
        let mut buttons = None;
        let mut input = None;
        for reply in &outcome.replies {
            match reply {
                Reply::Notice { text: t, .. } | Reply::Say { text: t, .. } => {
                    text.push_str(t);
                    text.push('\n');
                }
                Reply::Handoff => {
                    if let Some(h) = &outcome.handoff {
                        text.push_str(&h.message());
                        text.push('\n');
                    }
                }
                Reply::Prompt(p) => {
                    text.push_str(p.text());
                    text.push('\n');
                    if let Some(note) = p.note() {
                        text.push_str(note);
                        text.push('\n');
                    }
                    let b: Vec<_> =
                        p.buttons().map(|b| (b.label.to_owned(), b.token.to_string())).collect();
                    for (label, _) in &b {
                        text.push_str(&format!("[{label}] "));
                    }
                    buttons = Some(b);
                    input = p.input().map(|(b, _)| b.token.to_string());
                }
            }
        }
        Shown { text, notices: outcome.notices().collect(), buttons, input }
    }

    fn describe(&self, conv: &Conversation, flow: &Flow) -> String {
        let labels: Vec<_> = self.buttons.iter().flatten().map(|(l, _)| l.as_str()).collect();
        format!("at `{}`, buttons {labels:?}", flow.node(conv.node()).id())
    }
}
