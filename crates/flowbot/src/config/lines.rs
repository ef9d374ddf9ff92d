//! Where each setting is in the settings file (a line for every key, from the TOML's spans), so
//! that every problem names its line; and the bounds on the file's and each value's size.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};

/// The largest settings file, in bytes.
pub const MAX_SETTINGS_BYTES: usize = 1 << 20;
/// The largest text value of one setting, in bytes (a flow parameter may be no larger either).
pub const MAX_VALUE_BYTES: usize = flowbot_core::bounds::MAX_PARAM_BYTES;

/// The line of every key of a settings file, by its dotted path (`desk.mail`,
/// `handoff.destinations.0.url`).
#[derive(Debug, Default)]
pub struct Lines {
    lines: BTreeMap<String, u32>,
}

impl Lines {
    /// The lines of `text`'s keys, and the text values over [`MAX_VALUE_BYTES`] as
    /// `(key, message)`. A file that does not parse has no lines (its syntax error has one).
    pub fn parse(text: &str) -> (Lines, Vec<(String, String)>) {
        let mut lines = Lines::default();
        let mut too_large = Vec::new();
        if let Ok(root) = DeTable::parse(text) {
            let line_of = |offset: usize| {
                let before = &text.as_bytes()[..offset.min(text.len())];
                u32::try_from(before.iter().filter(|&&b| b == b'\n').count() + 1)
                    .unwrap_or(u32::MAX)
            };
            let mut walk = Walk { lines: &mut lines.lines, too_large: &mut too_large, line_of };
            walk.table("", root.get_ref());
        }
        (lines, too_large)
    }

    /// The line of `key`, or of the nearest enclosing key the file has.
    pub fn of(&self, key: &str) -> Option<u32> {
        let mut key = key;
        loop {
            if let Some(&line) = self.lines.get(key) {
                return Some(line);
            }
            key = &key[..key.rfind('.')?];
        }
    }
}

struct Walk<'a, F> {
    lines: &'a mut BTreeMap<String, u32>,
    too_large: &'a mut Vec<(String, String)>,
    line_of: F,
}

impl<F: Fn(usize) -> u32> Walk<'_, F> {
    fn table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = join(prefix, key.get_ref());
            self.lines.entry(path.clone()).or_insert_with(|| (self.line_of)(key.span().start));
            self.value(&path, value.get_ref());
        }
    }

    fn value(&mut self, path: &str, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.table(path, table),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = join(path, &i.to_string());
                    let line = (self.line_of)(item.span().start);
                    self.lines.entry(item_path.clone()).or_insert(line);
                    self.value(&item_path, item.get_ref());
                }
            }
            DeValue::String(text) if text.len() > MAX_VALUE_BYTES => {
                let message = format!(
                    "`{path}` is {} bytes; a setting may be at most {MAX_VALUE_BYTES}",
                    text.len()
                );
                self.too_large.push((path.to_owned(), message));
            }
            _ => {}
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_line() {
        let text = "[desk]\nname = \"a\"\n\nmail = \"b\"\n[[handoff.destinations]]\nkind = \"webhook\"\n\
                    [[handoff.destinations]]\nkind = \"telegram\"\nchat_id = 5\n[params]\nbig = \"";
        let text = format!("{text}{}\"\n", "x".repeat(MAX_VALUE_BYTES + 1));
        let (lines, too_large) = Lines::parse(&text);
        assert_eq!(lines.of("desk.mail"), Some(4));
        assert_eq!(lines.of("handoff.destinations.1.chat_id"), Some(9));
        assert_eq!(lines.of("handoff.destinations.1.url"), Some(7));
        assert_eq!(lines.of("nowhere.at.all"), None);
        assert_eq!(too_large.len(), 1);
        assert_eq!(too_large[0].0, "params.big");
        assert_eq!(lines.of(&too_large[0].0), Some(11));
    }
}
