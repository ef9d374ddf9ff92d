//! Deployment settings: the TOML file named by `--config` / `FLOWBOT_CONFIG`.

use std::path::Path;

use anyhow::Context;
use flowbot_core::{Flow, Params};
use serde::Deserialize;

/// The settings of one deployment. Absent file: every flow runs on its parameters' defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Values for the flows' declared `params`, e.g. a prefecture's note.
    #[serde(default)]
    pub params: Params,
}

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }

    /// Refuses parameter values that none of `flows` declares (most likely a misspelt name).
    pub fn check_params<'a>(
        &self,
        flows: impl IntoIterator<Item = &'a Flow> + Clone,
    ) -> anyhow::Result<()> {
        let unknown: Vec<&str> = self
            .params
            .keys()
            .filter(|name| !flows.clone().into_iter().any(|f| f.params().contains(name)))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let declared: Vec<String> =
            flows.into_iter().map(|f| format!("{}: {}", f.id(), f.params().join(", "))).collect();
        anyhow::bail!(
            "the configuration sets parameter{} {} that no flow declares (declared: {})",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            declared.join("; ")
        )
    }
}
