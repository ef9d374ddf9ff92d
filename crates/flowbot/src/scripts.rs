//! `flowbot test`: runs conversation scripts and enforces full edge coverage of every flow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use flowbot_core::{Coverage, Deployment, Flow, ScriptFile, load_flow_in, run_script};

use crate::config::Config;
use crate::flows::{DEFAULT_FLOW, DEFAULT_FLOW_ORIGIN, FLOWS_DIR, flow_files, read_source};

/// A flow file by id: its source, where it came from, and what the scripts covered of it.
struct Source {
    origin: String,
    text: String,
    flow: Flow,
    coverage: Coverage,
}

pub fn run(files: &[PathBuf], flows_dir: &Path, config: &Config) -> anyhow::Result<ExitCode> {
    let mut sources = load_sources(flows_dir, config)?;
    // The coverage gate holds for a whole flow's scripts: the default folder, or folders given.
    // Files given one by one are run alone: what they leave out is shown, not failed.
    let whole = files.is_empty() || files.iter().all(|f| f.is_dir());
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
        let parsed = read_source(path)?.and_then(|text| ScriptFile::parse(&text, &origin));
        let file = match parsed {
            Ok(file) => file,
            Err(problem) => {
                println!("FAIL {problem}");
                failed += 1;
                continue;
            }
        };
        let Some(source) = sources.get_mut(&file.flow) else {
            let line = file.flow_line().unwrap_or(1);
            println!("FAIL {origin}:{line}: no flow `{}` in {}", file.flow, flows_dir.display());
            failed += 1;
            continue;
        };
        let unknown = file.unknown_params(&source.flow);
        if !unknown.is_empty() {
            for problem in unknown {
                println!("FAIL {problem}");
            }
            failed += 1;
            continue;
        }
        let mut params = config.params.clone();
        params.extend(file.params.clone());
        let mut origins = config.param_origins().clone();
        origins.extend(file.param_origins());
        let deployment = Deployment { params: &params, origins: &origins, limits: &[] };
        let flow = match load_flow_in(&source.text, &source.origin, &deployment) {
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
                    match failure.line {
                        Some(line) => println!("FAIL {origin}:{line}: {failure}"),
                        None => println!("FAIL {origin}: {failure}"),
                    }
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
    if uncovered > 0 && whole {
        println!("coverage: {uncovered} flow(s) have nodes or edges no script covers");
    } else if uncovered > 0 {
        println!(
            "coverage: not enforced for scripts run alone (the whole folder's scripts must cover every flow)"
        );
        uncovered = 0;
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
            let text = read_source(&file)?.map_err(|problem| anyhow::anyhow!("{problem}"))?;
            texts.push((file.display().to_string(), text));
        }
        texts
    };
    let mut sources = BTreeMap::new();
    for (origin, text) in texts {
        let flow = load_flow_in(&text, &origin, &config.deployment(&[])).map_err(|p| {
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
