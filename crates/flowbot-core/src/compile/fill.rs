//! Deployment parameters: their values (the deployment's over the declared defaults, one level
//! of parameters built from others), and filling `{{placeholders}}` in a flow's texts.

use std::collections::{BTreeMap, HashMap};

use super::Report;
use crate::bounds::{MAX_PARAM_BYTES, MAX_TEXT_BYTES};
use crate::problem::ProblemKind;
use crate::raw::{Params, RawParam, SourceMap};

/// Parameter values by name, as texts are filled with them.
pub(super) type Values<'a> = HashMap<&'a str, &'a str>;

/// The parameters' values before [`as_values`]: the given ones, and those built from others.
pub(super) struct Resolved<'a> {
    given: Values<'a>,
    derived: Vec<(&'a str, String)>,
}

/// The deployment's values over the declared defaults. Values for parameters this flow does not
/// declare are the caller's to judge (one configuration may serve several flows). A value may
/// itself use other parameters (one level: `desk_contact` built from `desk_name` and
/// `desk_phone`), so a deployment sets the parts and the flow lays them out.
///
/// A problem with a value is reported where the value was set: the deployment's settings
/// (`origins`) or the parameter's declaration in the flow.
pub(super) fn values<'a>(
    declared: &'a BTreeMap<String, RawParam>,
    params: &'a Params,
    map: &SourceMap,
    r: &mut Report<'_>,
) -> Resolved<'a> {
    let given: Values<'a> = declared
        .iter()
        .map(|(name, p)| (name.as_str(), params.get(name).unwrap_or(&p.default).as_str()))
        .collect();
    let report = |r: &mut Report<'_>, name: &str, message: String| {
        let kind = ProblemKind::Param { name: name.to_owned(), message };
        match (params.contains_key(name), r.origins.get(name)) {
            (true, Some(origin)) => r.add_at(origin.file.clone(), origin.line, None, kind),
            _ => r.add(map.params.get(name).copied(), None, kind),
        }
    };
    let mut names: Vec<&str> = given.keys().copied().collect();
    names.sort_unstable();
    let mut derived = Vec::new();
    for name in names {
        let v = given[name];
        if v.len() > MAX_PARAM_BYTES {
            let message =
                format!("its value is {} bytes; at most {MAX_PARAM_BYTES} are allowed", v.len());
            report(r, name, message);
            derived.push((name, String::new()));
            continue;
        }
        if !v.contains("{{") {
            continue;
        }
        let nested = placeholders(v).find(|n| given.get(n).is_some_and(|v| v.contains("{{")));
        if let Some(n) = nested.filter(|n| params.contains_key(*n)) {
            // The deployment's value of a part uses parameters: that value is the problem.
            let message = format!("`{name}` is built from it, so it may not use parameters itself");
            report(r, n, message);
            derived.push((name, String::new()));
            continue;
        }
        let value = match nested {
            Some(n) => Err(format!("uses `{{{{{n}}}}}`, which uses parameters itself")),
            None => fill_lines(v, &|n| given.get(n).copied(), true, MAX_PARAM_BYTES)
                .map_err(|kind| kind.to_string()),
        };
        let value = match value {
            Ok(value) if r.spend(value.len(), map.params.get(name).copied(), None) => value,
            Ok(_) => String::new(),
            Err(message) => {
                report(r, name, message);
                String::new()
            }
        };
        derived.push((name, value));
    }
    Resolved { given, derived }
}

/// All values, the built ones over the given ones.
pub(super) fn as_values<'a>(resolved: &'a Resolved<'a>) -> Values<'a> {
    let mut values = resolved.given.clone();
    for (name, value) in &resolved.derived {
        values.insert(name, value);
    }
    values
}

/// The names of the `{{placeholders}}` in a text.
pub(super) fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{").skip(1).filter_map(|s| s.split_once("}}").map(|(n, _)| n.trim()))
}

/// Substitutes `{{name}}` placeholders, `lookup` giving each name's value. A line that held a
/// placeholder and is left blank is dropped, so an unset parameter leaves no empty line.
/// Trailing line breaks are trimmed. A result over [`MAX_TEXT_BYTES`] is refused as soon as it
/// is, so that no text grows without bound.
pub(super) fn fill<'v>(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<&'v str>,
) -> Result<String, ProblemKind> {
    fill_lines(text, lookup, false, MAX_TEXT_BYTES)
}

/// [`fill`] for a parameter built from other parameters (`drop_captions`): there, a line whose
/// placeholders were all empty is dropped, captions and all (`電話：{{desk_phone}}` without a
/// phone number). The result may be at most `cap` bytes.
fn fill_lines<'v>(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<&'v str>,
    drop_captions: bool,
    cap: usize,
) -> Result<String, ProblemKind> {
    let text = text.trim_end();
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let too_large = || ProblemKind::TooLarge {
        what: "the text, once its parameters are filled in,".to_owned(),
        max: cap,
    };
    let mut out = String::with_capacity(text.len().min(cap));
    for line in text.split('\n') {
        let mut filled = String::with_capacity(line.len().min(cap));
        let mut rest = line;
        let had_placeholder = line.contains("{{");
        let mut all_empty = true;
        while let Some(open) = rest.find("{{") {
            filled.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(ProblemKind::UnterminatedPlaceholder)?;
            let name = after[..close].trim();
            let value =
                lookup(name).ok_or_else(|| ProblemKind::UndeclaredParam(name.to_owned()))?;
            if out.len() + filled.len() + value.len() > cap {
                return Err(too_large());
            }
            filled.push_str(value);
            all_empty &= value.trim().is_empty();
            rest = &after[close + 2..];
        }
        filled.push_str(rest);
        let dropped = if drop_captions { all_empty } else { filled.trim().is_empty() };
        if had_placeholder && dropped {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&filled);
        if out.len() > cap {
            return Err(too_large());
        }
    }
    Ok(out.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    fn fill(text: &str, v: &HashMap<&str, &str>) -> Result<String, ProblemKind> {
        super::fill(text, &|n| v.get(n).copied())
    }

    fn fill_template(text: &str, v: &HashMap<&str, &str>) -> Result<String, ProblemKind> {
        fill_lines(text, &|n| v.get(n).copied(), true, MAX_PARAM_BYTES)
    }

    #[test]
    fn fill_substitutes_and_drops_emptied_lines() {
        let v = values(&[("a", "A"), ("empty", "")]);
        assert_eq!(fill("x {{a}} y\n{{ empty }}\nz\n", &v).unwrap(), "x A y\nz");
        assert_eq!(fill("keep\n\nblank", &v).unwrap(), "keep\n\nblank");
        assert_eq!(fill("x{{empty}}", &v).unwrap(), "x");
        assert_eq!(fill("a\n電話：{{empty}}", &v).unwrap(), "a\n電話：");
        assert_eq!(fill_template("a\n電話：{{empty}}\nb {{a}}{{empty}}", &v).unwrap(), "a\nb A");
        assert_eq!(fill("{{nope}}", &v), Err(ProblemKind::UndeclaredParam("nope".into())));
        assert_eq!(fill("{{a", &v), Err(ProblemKind::UnterminatedPlaceholder));
    }

    #[test]
    fn filling_stops_at_the_bound() {
        let big = "x".repeat(MAX_PARAM_BYTES);
        let v = values(&[("big", &big)]);
        let four = "{{big}}".repeat(4);
        assert_eq!(fill(&four, &v).unwrap().len(), 4 * MAX_PARAM_BYTES);
        let many = "{{big}}".repeat(1000);
        let Err(ProblemKind::TooLarge { max, .. }) = fill(&many, &v) else { panic!() };
        assert_eq!(max, MAX_TEXT_BYTES);
        let lines = "{{big}}\n".repeat(5);
        assert!(matches!(fill(&lines, &v), Err(ProblemKind::TooLarge { .. })));
        assert!(matches!(fill_template("{{big}}{{big}}", &v), Err(ProblemKind::TooLarge { .. })));
    }
}
