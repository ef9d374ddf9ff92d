//! Stage one of loading: serde structs that mirror the YAML file exactly, where their parts are
//! in the file ([`SourceMap`]), and the deployment's parameter values ([`Params`]).
//!
//! Nothing here is checked beyond shape (`deny_unknown_fields` everywhere); `compile` turns a
//! [`RawFlow`] into a [`crate::Flow`] or a list of every problem it has.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::limits::Limits;

/// Deployment values for a flow's declared `params`, by name.
pub type Params = BTreeMap<String, String>;

/// Where a deployment set its parameter values, by name: problems with a value are reported
/// there (the settings file and line), not against the flow.
pub type ParamOrigins = BTreeMap<String, ValueOrigin>;

/// What a deployment brings to loading a flow: its parameter values, where it set them (so
/// that a problem with a value names the settings file and line), and the limits of the
/// platforms the flow will run on.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    pub params: &'a Params,
    pub origins: &'a ParamOrigins,
    pub limits: &'a [&'a Limits],
}

static NO_PARAMS: Params = Params::new();
static NO_ORIGINS: ParamOrigins = ParamOrigins::new();

impl Default for Deployment<'_> {
    fn default() -> Self {
        Deployment { params: &NO_PARAMS, origins: &NO_ORIGINS, limits: &[] }
    }
}

/// A file (or "the environment (NAME)") and, where known, the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOrigin {
    pub file: String,
    pub line: Option<u32>,
}

/// Where things are in the source, as far as the loader could tell. Lines are 1-based.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    pub nodes: Vec<Option<u32>>,
    /// Per node, the line of each choice; empty where unknown.
    pub choices: Vec<Vec<u32>>,
    pub entries: BTreeMap<String, u32>,
    pub forms: BTreeMap<String, u32>,
    /// The lines of the declared parameters and of the engine's texts, by name.
    pub params: BTreeMap<String, u32>,
    pub texts: BTreeMap<String, u32>,
    /// The line of `texts:`.
    pub texts_key: Option<u32>,
    pub start: Option<u32>,
    pub flow: Option<u32>,
    /// The lines of `nodes:` and `entries:`.
    pub nodes_key: Option<u32>,
    pub entries_key: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlow {
    pub flow: String,
    pub title: String,
    pub start: String,
    #[serde(default)]
    pub entries: BTreeMap<String, String>,
    #[serde(default)]
    pub params: BTreeMap<String, RawParam>,
    pub texts: RawTexts,
    #[serde(default)]
    pub forms: BTreeMap<String, RawForm>,
    pub nodes: Vec<RawNode>,
}

/// A form: free-text fields, a confirmation, the hand-off. Every text is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForm {
    pub title: String,
    pub input: String,
    pub confirm: String,
    pub submit: String,
    pub fix: String,
    pub fix_question: String,
    pub required: String,
    pub too_long: String,
    pub email: String,
    pub invalid: String,
    pub answer_line: String,
    pub path_line: String,
    pub handoff: String,
    pub handoff_sent: String,
    pub handoff_copy: String,
    pub mail_subject: String,
    /// The desk's completion notice to the user (`flowbot requests complete`).
    #[serde(default)]
    pub completed: Option<String>,
    pub fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawField {
    pub id: String,
    pub label: String,
    pub ask: String,
    /// The label of the "unknown" button; the field is required without one.
    #[serde(default)]
    pub unknown: Option<String>,
    #[serde(default)]
    pub email: bool,
    #[serde(default)]
    pub pattern: Option<String>,
    /// Why an answer not matching `pattern` is refused.
    #[serde(default)]
    pub invalid: Option<String>,
    #[serde(default)]
    pub max_chars: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParam {
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for people reading the flow and `flowbot check`")]
    pub description: String,
    #[serde(default)]
    pub default: String,
}

/// The engine's own wording. Every field is required: the engine has no built-in text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTexts {
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
    pub resume_question: String,
    pub resume: String,
    pub not_yours: String,
    pub command_start: String,
    pub command_back: String,
    pub command_restart: String,
    pub command_help: String,
    /// The words before `#ENTRY` in a typed start phrase (LINE links, which carry no start
    /// payload). Optional: without it a link's phrase is just `#ENTRY`.
    #[serde(default)]
    pub start_phrase: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub ask: Option<String>,
    #[serde(default)]
    pub say: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub choices: Option<Vec<RawChoice>>,
    /// A form node: the name of a form under `forms:`.
    #[serde(default)]
    pub form: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChoice {
    pub label: String,
    pub next: String,
    #[serde(default)]
    pub means: Option<RawMeans>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawMeans {
    Yes,
    No,
}
