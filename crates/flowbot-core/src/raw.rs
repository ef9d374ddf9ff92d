//! Stage one of loading: serde structs that mirror the YAML file exactly.
//!
//! Nothing here is checked beyond shape (`deny_unknown_fields` everywhere); `compile` turns a
//! [`RawFlow`] into a [`crate::Flow`] or a list of every problem it has.

use std::collections::BTreeMap;

use serde::Deserialize;

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
    pub nodes: Vec<RawNode>,
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
