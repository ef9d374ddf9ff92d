//! `deploy/SETTINGS.md`, the reference of every setting, against what the binary really reads:
//! the flags' variables from `--help`, the variables the settings code reads, and the settings
//! file's keys as the binary's own refusals of an unknown key list them. Both ways: nothing
//! read is undocumented, nothing documented is not read.

use std::collections::BTreeSet;

use flowbot_tests::{flowbot, root};

/// Variables read by a library rather than by flowbot's own code.
const READ_ELSEWHERE: &[&str] = &["RUST_LOG"];

/// The backticked names in one column of the page's tables, per table (in order).
fn columns(page: &str, column: usize) -> Vec<BTreeSet<String>> {
    let mut tables = Vec::new();
    let mut current: Option<BTreeSet<String>> = None;
    for line in page.lines() {
        if !line.starts_with('|') {
            if let Some(table) = current.take() {
                tables.push(table);
            }
            continue;
        }
        let table = current.get_or_insert_with(BTreeSet::new);
        let cell = line.split('|').nth(column + 1).unwrap_or_default().trim();
        if let Some(name) = cell.strip_prefix('`').and_then(|c| c.split('`').next()) {
            table.insert(name.split_whitespace().next().unwrap_or(name).to_owned());
        }
    }
    tables.extend(current);
    tables
}

fn help_variables(args: &[&str]) -> BTreeSet<String> {
    let out = flowbot().args(args).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The `"FLOWBOT_…"` and `"LINEWORKS_…"` names in the binary's code (tests excluded).
fn source_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![root().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.to_string_lossy().contains("/src/")
            {
                if is_test_module(&path) {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                // (`LINEWORKS_…`: the LINE WORKS destination's endpoints.)
                for prefix in ["FLOWBOT_", "LINEWORKS_"] {
                    for piece in code.split(&format!("\"{prefix}")).skip(1) {
                        let name: String = piece
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                            .collect();
                        if piece[name.len()..].starts_with('"') {
                            names.insert(format!("{prefix}{name}"));
                        }
                    }
                }
            }
        }
    }
    names
}

/// Whether the file is a module its parent declares under `#[cfg(test)]`.
fn is_test_module(path: &std::path::Path) -> bool {
    let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let dir = path.parent().expect("a file has a folder");
    ["main.rs", "lib.rs", "mod.rs"].iter().any(|parent| {
        std::fs::read_to_string(dir.join(parent))
            .is_ok_and(|text| text.contains(&format!("#[cfg(test)]\nmod {name};")))
    })
}

/// The keys the binary accepts where `toml` puts an unknown key `zzz_probe`, from its refusal
/// ("expected one of `a`, `b`").
fn accepted(toml: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(&path, toml).unwrap();
    let out = flowbot().arg("--config").arg(&path).arg("check").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let (_, expected) = err.split_once(", expected ").unwrap_or_else(|| panic!("{toml:?}: {err}"));
    expected
        .lines()
        .next()
        .unwrap_or_default()
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_read_is_documented_and_every_documented_one_is_read() {
    let page = std::fs::read_to_string(root().join("deploy/SETTINGS.md")).unwrap();
    let documented: BTreeSet<String> = columns(&page, 1).into_iter().flatten().collect();
    let mut read = BTreeSet::new();
    for command in [&["run"][..], &["link"], &["purge"], &["stats"], &["pipe"], &["chat"]] {
        read.extend(help_variables(command));
    }
    read.extend(source_variables());
    read.extend(READ_ELSEWHERE.iter().map(|s| (*s).to_owned()));
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(undocumented.is_empty(), "read but not in deploy/SETTINGS.md: {undocumented:?}");
    assert!(unread.is_empty(), "in deploy/SETTINGS.md but never read: {unread:?}");
}

#[test]
fn every_settings_key_is_documented_and_every_documented_one_accepted() {
    let page = std::fs::read_to_string(root().join("deploy/SETTINGS.md")).unwrap();
    let tables = columns(&page, 0);
    let documented = tables.last().expect("the settings file's table").clone();
    let mut keys = BTreeSet::new();
    for section in accepted("zzz_probe = 1\n") {
        let fields = match section.as_str() {
            // Free maps: any name.
            "params" | "notes" => BTreeSet::from(["NAME".to_owned()]),
            _ => accepted(&format!("[{section}]\nzzz_probe = 1\n")),
        };
        for field in fields {
            keys.insert(format!("{section}.{field}"));
        }
    }
    // The destinations: every kind's keys.
    keys.insert("handoff.destinations.kind".to_owned());
    for kind in accepted("[[handoff.destinations]]\nkind = \"zzz_probe\"\n") {
        let probe = format!("[[handoff.destinations]]\nkind = \"{kind}\"\nzzz_probe = 1\n");
        for field in accepted(&probe) {
            keys.insert(format!("handoff.destinations.{field}"));
        }
    }
    let undocumented: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(undocumented.is_empty(), "accepted but not in deploy/SETTINGS.md: {undocumented:?}");
    assert!(unknown.is_empty(), "in deploy/SETTINGS.md but refused: {unknown:?}");
}
