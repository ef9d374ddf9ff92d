//! `flowbot test`: runs conversation scripts and enforces full edge coverage of every flow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use flowbot_core::{Coverage, Flow, ScriptFile, load_flow, run_script};

use crate::config::Config;
use crate::flows::{DEFAULT_FLOW, DEFAULT_FLOW_ORIGIN, FLOWS_DIR, flow_files};

/// A flow file by id: its source, where it came from, and what the scripts covered of it.
struct Source {
    origin: String,
    text: String,
    flow: Flow,
    coverage: Coverage,
}

pub fn run(files: &[PathBuf], flows_dir: &Path, config: &Config) -> anyhow::Result<ExitCode> {
    let mut sources = load_sources(flows_dir, config)?;
    let script_files = if files.is_empty() {
        let dir = flows_dir.join("tests");
        flow_files(&dir)
            .with_context(|| format!("no scripts given and none in {}", dir.display()))?
    } else {
        let mut all = Vec::new();
        for f in files {
            all.extend(flow_files(f)?);
        }
        all
    };

    let (mut passed, mut failed) = (0usize, 0usize);
    for path in &script_files {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {origin}"))?;
        let file = match ScriptFile::parse(&text, &origin) {
            Ok(file) => file,
            Err(problem) => {
                println!("FAIL {problem}");
                failed += 1;
                continue;
            }
        };
        let Some(source) = sources.get_mut(&file.flow) else {
            println!("FAIL {origin}: no flow `{}` in {}", file.flow, flows_dir.display());
            failed += 1;
            continue;
        };
        let mut params = config.params.clone();
        params.extend(file.params.clone());
        let flow = match load_flow(&source.text, &source.origin, &params) {
            Ok(flow) => flow,
            Err(problems) => {
                println!(
                    "FAIL {origin}: flow `{}` does not load with these params: {problems}",
                    file.flow
                );
                failed += 1;
                continue;
            }
        };
        for script in &file.scripts {
            match run_script(&flow, script, &mut source.coverage) {
                Ok(()) => {
                    passed += 1;
                    println!("ok   {origin}: {}", script.name);
                }
                Err(failure) => {
                    failed += 1;
                    println!("FAIL {origin}: {failure}");
                }
            }
        }
    }

    let mut uncovered = 0;
    println!();
    for (id, source) in &sources {
        let report = source.coverage.report(&source.flow);
        println!("coverage {id} ({}): {report}", source.origin);
        for node in &report.missing_nodes {
            println!("  node not visited: {node}");
        }
        for edge in &report.missing_edges {
            println!("  edge not covered: {edge}");
        }
        if !report.is_complete() {
            uncovered += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if uncovered > 0 {
        println!("coverage: {uncovered} flow(s) have nodes or edges no script covers");
    }
    Ok(if failed == 0 && uncovered == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Every flow in `dir` by id; the embedded flow when the default folder does not exist.
fn load_sources(dir: &Path, config: &Config) -> anyhow::Result<BTreeMap<String, Source>> {
    let texts: Vec<(String, String)> = if !dir.exists() && dir == Path::new(FLOWS_DIR) {
        vec![(DEFAULT_FLOW_ORIGIN.to_owned(), DEFAULT_FLOW.to_owned())]
    } else {
        let mut texts = Vec::new();
        for file in flow_files(dir)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            texts.push((file.display().to_string(), text));
        }
        texts
    };
    let mut sources = BTreeMap::new();
    for (origin, text) in texts {
        let flow = load_flow(&text, &origin, &config.params).map_err(|p| {
            anyhow::anyhow!("flow {origin} does not load (run `flowbot check`): {p}")
        })?;
        let coverage = Coverage::new(&flow);
        let id = flow.id().to_owned();
        if let Some(other) =
            sources.insert(id.clone(), Source { origin: origin.clone(), text, flow, coverage })
        {
            anyhow::bail!("{} and {origin} both define flow `{id}`", other.origin);
        }
    }
    Ok(sources)
}
