//! `flowbot check`: validates flow files against every known platform's limits and lists every
//! problem.

use std::path::PathBuf;
use std::process::ExitCode;

use flowbot_core::{Flow, Problems, load_flow_in};

use crate::config::Config;
use crate::flows::{flow_files, read_source};

pub fn run(paths: &[PathBuf], config: &Config) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        files.extend(flow_files(path)?);
    }
    if files.is_empty() {
        anyhow::bail!("no flow files (*.yaml) in {}", display_paths(paths));
    }
    // Every platform's limits: a flow that passes runs on any of them.
    let limits = crate::platforms::known_limits();
    let mut flows: Vec<Flow> = Vec::new();
    let mut broken = 0;
    for file in &files {
        let loaded = match read_source(file)? {
            Ok(source) => {
                load_flow_in(&source, &file.display().to_string(), &config.deployment(&limits))
            }
            Err(problem) => Err(Problems(vec![problem])),
        };
        match loaded {
            Ok(flow) => {
                let endings = flow.nodes().iter().filter(|n| n.is_ending()).count();
                println!(
                    "ok {}: flow `{}`, {} nodes, {} endings, {} entry points, version {}",
                    file.display(),
                    flow.id(),
                    flow.nodes().len(),
                    endings,
                    flow.entries().len(),
                    flow.version()
                );
                flows.push(flow);
            }
            Err(problems) => {
                broken += 1;
                println!("FAILED {}: {problems}", file.display());
            }
        }
    }
    if let Some(duplicate) = duplicate_id(&flows) {
        broken += 1;
        println!("FAILED: two files define flow `{duplicate}`");
    }
    if let Some(err) = config.check_params(&flows).err().filter(|_| broken == 0) {
        println!("FAILED configuration: {err}");
        broken += 1;
    }
    Ok(if broken == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn duplicate_id(flows: &[Flow]) -> Option<&str> {
    flows
        .iter()
        .enumerate()
        .find(|(i, f)| flows[..*i].iter().any(|g| g.id() == f.id()))
        .map(|(_, f)| f.id())
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
