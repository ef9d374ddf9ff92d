//! The one module that knows YAML: parses flows and scripts, and maps nodes back to lines.
//!
//! serde_yaml gives a location for syntax and shape errors but no spans on values, so the lines
//! of nodes, choices and entries are found by [`Outline`], a scanner of the file's block layout
//! (the layout `flows/README.md` documents). Where a file uses flow style (`[...]`, `{...}`) for
//! a whole list, problems are still reported, with the enclosing line or none.

use serde::de::DeserializeOwned;

use crate::compile::compile;
use crate::flow::Flow;
use crate::limits::Limits;
use crate::problem::{Problem, ProblemKind, Problems};
use crate::raw::{Deployment, Params, RawFlow, SourceMap};

/// Loads a flow from YAML source text.
///
/// `origin` names the source in problems (usually the file path). `params` are the deployment's
/// values; a declared parameter without a value takes its default. On failure every problem
/// found is returned: first shape errors (which stop parsing), else every graph problem at once.
///
/// No platform's limits are checked: see [`load_flow_for`] and [`Flow::check_limits`].
pub fn load_flow(source: &str, origin: &str, params: &Params) -> Result<Flow, Problems> {
    load_flow_in(source, origin, &Deployment { params, ..Deployment::default() })
}

/// [`load_flow`], also checking the flow against the `limits` of the platforms it will run on,
/// so that one list holds every problem (`flowbot check`).
pub fn load_flow_for(
    source: &str,
    origin: &str,
    params: &Params,
    limits: &[&Limits],
) -> Result<Flow, Problems> {
    load_flow_in(source, origin, &Deployment { params, limits, ..Deployment::default() })
}

/// Loads a flow for a deployment: [`load_flow_for`] with the origins of the parameter values.
/// The source is at most [`MAX_SOURCE_BYTES`](crate::bounds::MAX_SOURCE_BYTES); what its
/// parameters expand to is bounded too ([`crate::bounds`]), so any source loads or is refused
/// in bounded time and memory.
pub fn load_flow_in(
    source: &str,
    origin: &str,
    deployment: &Deployment<'_>,
) -> Result<Flow, Problems> {
    crate::bounds::source_text(source.as_bytes(), origin).map_err(|p| Problems(vec![p]))?;
    let raw: RawFlow = parse(source, origin).map_err(|p| Problems(vec![p]))?;
    let map = source_map(source, &raw);
    compile(raw, &map, source, origin, deployment)
}

/// Parses YAML text into `T`, turning a serde error into a located [`Problem`].
pub(crate) fn parse<T: DeserializeOwned>(source: &str, origin: &str) -> Result<T, Problem> {
    if let Some(line) = crate::bounds::too_deep(source) {
        let message =
            format!("`[` and `{{` nest deeper than {} levels here", crate::bounds::MAX_NESTING);
        let kind = ProblemKind::Syntax(message);
        return Err(Problem { file: origin.to_owned(), line: Some(line), node: None, kind });
    }
    serde_yaml::from_str(source).map_err(|e| {
        let outline = Outline::new(source);
        let line = e
            .location()
            .map(|l| u32::try_from(l.line()).unwrap_or(u32::MAX))
            .or_else(|| outline.second_document().map(line_no))
            .or(Some(1));
        let mut message = e.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        let node = line.and_then(|l| outline.node_id_at(l));
        Problem { file: origin.to_owned(), line, node, kind: ProblemKind::Syntax(message) }
    })
}

fn source_map(source: &str, raw: &RawFlow) -> SourceMap {
    let outline = Outline::new(source);
    let items = outline.top_sequence("nodes");
    let ranges: Vec<(usize, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            (start, items.get(i + 1).copied().unwrap_or(outline.end_of_block(start)))
        })
        .collect();
    let usable = ranges.len() == raw.nodes.len();
    // A list the outline cannot follow (flow style) points at its key's line.
    let nodes_key = outline.top_key("nodes").map(line_no);
    let nodes = (0..raw.nodes.len())
        .map(|i| if usable { Some(line_no(ranges[i].0)) } else { nodes_key })
        .collect();
    let choices = raw
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let want = node.choices.as_ref().map_or(0, Vec::len);
            let found =
                if usable { outline.child_sequence(ranges[i], "choices") } else { Vec::new() };
            if found.len() == want { found.into_iter().map(line_no).collect() } else { Vec::new() }
        })
        .collect();
    let keys = |key: &str| -> std::collections::BTreeMap<String, u32> {
        outline.top_mapping_keys(key).into_iter().map(|(k, l)| (k, line_no(l))).collect()
    };
    SourceMap {
        nodes,
        choices,
        entries: keys("entries"),
        forms: keys("forms"),
        params: keys("params"),
        texts: keys("texts"),
        start: outline.top_key("start").map(line_no),
        flow: outline.top_key("flow").map(line_no),
        nodes_key,
        entries_key: outline.top_key("entries").map(line_no),
        texts_key: outline.top_key("texts").map(line_no),
    }
}

pub(crate) fn line_no(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// The block layout of a YAML file: which lines start which items and keys.
pub(crate) struct Outline<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Outline<'a> {
    pub(crate) fn new(source: &'a str) -> Self {
        Outline { lines: source.lines().collect() }
    }

    /// The 0-based line that starts a second YAML document (`---` after content, or after a
    /// first `---`), where a file holds several.
    fn second_document(&self) -> Option<usize> {
        let is_marker = |l: &str| {
            (l.starts_with("---") || l.starts_with("..."))
                && matches!(l.as_bytes().get(3), None | Some(b' ' | b'\t' | b'\r'))
        };
        let mut content = false;
        for (i, line) in self.lines.iter().enumerate() {
            if is_marker(line) {
                if content {
                    return Some(i);
                }
                content = true;
            } else if !is_insignificant(line) {
                content = true;
            }
        }
        None
    }

    /// The 0-based line of a top-level `key:`.
    pub(crate) fn top_key(&self, key: &str) -> Option<usize> {
        self.lines.iter().position(|l| indent(l) == 0 && key_of(l) == Some(key))
    }

    /// The lines of the items of the block sequence under a top-level `key:`.
    pub(crate) fn top_sequence(&self, key: &str) -> Vec<usize> {
        match self.top_key(key) {
            Some(at) => self.sequence_after(at, 0, self.lines.len()),
            None => Vec::new(),
        }
    }

    /// The lines of the items of the block sequence under `key:` inside the item `range`.
    pub(crate) fn child_sequence(&self, (start, end): (usize, usize), key: &str) -> Vec<usize> {
        let item_key_indent = indent(self.lines[start]) + 2;
        (start..end)
            .find(|&i| {
                let line = self.lines[i];
                let (ind, rest) = strip_item_marker(line);
                ind == item_key_indent && key_of_trimmed(rest) == Some(key)
            })
            .map_or_else(Vec::new, |at| self.sequence_after(at, item_key_indent, end))
    }

    /// The keys (and lines) of the block mapping under a top-level `key:`.
    pub(crate) fn top_mapping_keys(&self, key: &str) -> Vec<(String, usize)> {
        let Some(at) = self.top_key(key) else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        let mut key_indent = None;
        for i in at + 1..self.lines.len() {
            let line = self.lines[i];
            if is_insignificant(line) {
                continue;
            }
            let ind = indent(line);
            if ind == 0 {
                break;
            }
            let want = *key_indent.get_or_insert(ind);
            if let Some(k) = key_of(line).filter(|_| ind == want) {
                keys.push((unquote(k).to_owned(), i));
            }
        }
        keys
    }

    /// Items of a block sequence whose parent key is on line `at` with indent `parent`.
    fn sequence_after(&self, at: usize, parent: usize, end: usize) -> Vec<usize> {
        let mut items = Vec::new();
        let mut item_indent = None;
        for i in at + 1..end {
            let line = self.lines[i];
            if is_insignificant(line) {
                continue;
            }
            let ind = indent(line);
            let is_item = line.trim_start().starts_with('-')
                && matches!(line.trim_start().as_bytes().get(1), None | Some(b' '));
            match item_indent {
                None if is_item && ind >= parent => item_indent = Some(ind),
                None => break,
                Some(want) if ind < want || (ind == want && !is_item) => break,
                Some(_) => {}
            }
            if is_item && Some(ind) == item_indent {
                items.push(i);
            }
        }
        items
    }

    /// The line after the last line of the item starting at `start`.
    pub(crate) fn end_of_block(&self, start: usize) -> usize {
        let ind = indent(self.lines[start]);
        (start + 1..self.lines.len())
            .find(|&i| !is_insignificant(self.lines[i]) && indent(self.lines[i]) <= ind)
            .unwrap_or(self.lines.len())
    }

    /// The id of the node whose item holds the 1-based `line`.
    fn node_id_at(&self, line: u32) -> Option<String> {
        let target = usize::try_from(line).ok()?.checked_sub(1)?;
        let items = self.top_sequence("nodes");
        let start = *items.iter().rev().find(|&&s| s <= target)?;
        let end = self.end_of_block(start);
        if target >= end {
            return None;
        }
        let key_indent = indent(self.lines[start]) + 2;
        (start..end).find_map(|i| {
            let (ind, rest) = strip_item_marker(self.lines[i]);
            if ind != key_indent {
                return None;
            }
            let value = rest.strip_prefix("id:")?;
            Some(unquote(value.trim()).to_owned())
        })
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_insignificant(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The indent at which a line's content starts, after a `- ` sequence marker if any.
fn strip_item_marker(line: &str) -> (usize, &str) {
    let ind = indent(line);
    let rest = &line[ind..];
    match rest.strip_prefix("- ") {
        Some(after) => {
            let extra = after.len() - after.trim_start_matches(' ').len();
            (ind + 2 + extra, after.trim_start_matches(' '))
        }
        None => (ind, rest),
    }
}

/// The key of a `key: value` or `key:` line.
fn key_of(line: &str) -> Option<&str> {
    key_of_trimmed(line.trim_start())
}

fn key_of_trimmed(t: &str) -> Option<&str> {
    if t.starts_with('-') || t.starts_with('#') {
        return None;
    }
    let colon = t.find(':')?;
    let after = &t[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some(t[..colon].trim_end())
}

fn unquote(s: &str) -> &str {
    let s = s.split(" #").next().unwrap_or(s).trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
flow: f
start: a
entries:
  one: a
  'two': b
nodes:
  - id: a
    ask: |
      - not an item
    choices:
      - label: x
        next: b
      - { label: y, next: b }
  # a comment
  - id: \"b\"
    end: done
";

    #[test]
    fn finds_items_keys_and_nodes() {
        let o = Outline::new(SRC);
        assert_eq!(o.top_key("start"), Some(1));
        assert_eq!(o.top_sequence("nodes"), vec![6, 14]);
        assert_eq!(o.child_sequence((6, 14), "choices"), vec![10, 12]);
        assert_eq!(
            o.top_mapping_keys("entries"),
            vec![("one".to_owned(), 3), ("two".to_owned(), 4)]
        );
        assert_eq!(o.node_id_at(12).as_deref(), Some("a"));
        assert_eq!(o.node_id_at(16).as_deref(), Some("b"));
        assert_eq!(o.node_id_at(2), None);
    }

    #[test]
    fn serde_errors_carry_line_and_node() {
        let src = SRC.replace("label: x", "lable: x");
        let err = parse::<RawFlow>(&src, "f.yaml").unwrap_err();
        assert_eq!(err.line, Some(11));
        assert_eq!(err.node.as_deref(), Some("a"));
        let ProblemKind::Syntax(message) = &err.kind else { panic!("{err:?}") };
        assert!(message.contains("unknown field `lable`"), "{message}");
        assert!(!message.contains(" at line "), "{message}");
    }

    #[test]
    fn a_second_document_is_located() {
        let src = format!("{SRC}---\nflow: g\n");
        let err = parse::<serde_yaml::Value>(&src, "f.yaml").unwrap_err();
        assert_eq!(err.line, Some(17), "{err}");
        assert!(err.to_string().contains("more than one document"), "{err}");
        let src = format!("---\n{SRC}...\n");
        assert_eq!(Outline::new(&src).second_document(), Some(17));
    }
}
