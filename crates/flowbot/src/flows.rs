//! Finding and loading flow files, and the embedded default flow.

use std::path::{Path, PathBuf};

use anyhow::Context;
use flowbot_core::bounds::MAX_SOURCE_BYTES;
use flowbot_core::{Flow, Problem, Problems, load_flow_in, source_text};

use crate::config::Config;

/// Where flows live by default, relative to the working directory.
pub const FLOWS_DIR: &str = "flows";

/// The G-MIS flow, built into the binary so that `flowbot` runs with no files at all.
pub const DEFAULT_FLOW: &str = include_str!("../../../flows/gmis-mail-trouble.yaml");
pub const DEFAULT_FLOW_ORIGIN: &str = "flows/gmis-mail-trouble.yaml (embedded)";

/// A flow's source text and where it came from.
#[derive(Debug, Clone)]
pub struct FlowSource {
    pub origin: String,
    pub text: String,
}

impl FlowSource {
    /// The file at `path`, or the embedded default flow.
    pub fn read(path: Option<&Path>) -> anyhow::Result<Self> {
        Ok(match path {
            Some(path) => FlowSource {
                origin: path.display().to_string(),
                text: read_source(path)?.map_err(|problem| anyhow::anyhow!("{problem}"))?,
            },
            None => {
                FlowSource { origin: DEFAULT_FLOW_ORIGIN.to_owned(), text: DEFAULT_FLOW.to_owned() }
            }
        })
    }
}

/// Loads `path`, or the embedded default flow, with the configuration's parameters.
pub fn load_or_default(path: Option<&Path>, config: &Config) -> anyhow::Result<Flow> {
    let source = FlowSource::read(path)?;
    let flow =
        load_flow_in(&source.text, &source.origin, &config.deployment(&[])).map_err(report)?;
    config.check_params([&flow])?;
    Ok(flow)
}

/// Reads a flow or script file: `Err` for I/O, `Ok(Err)` for a file too large or not UTF-8
/// (with its line). No more than the largest allowed file is read.
pub fn read_source(path: &Path) -> anyhow::Result<Result<String, Problem>> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_SOURCE_BYTES).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let origin = path.display().to_string();
    Ok(source_text(&bytes, &origin).map(str::to_owned))
}

/// The flow files a path names: the file itself, or a folder's `*.yaml` / `*.yml` files, sorted.
pub fn flow_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        if !path.exists() {
            anyhow::bail!("{} does not exist", path.display());
        }
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let file = entry?.path();
        let is_yaml = matches!(file.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if is_yaml && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

fn report(problems: Problems) -> anyhow::Error {
    anyhow::anyhow!("the flow does not load: {problems}")
}
