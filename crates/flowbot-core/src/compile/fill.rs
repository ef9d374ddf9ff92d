//! Deployment parameters: their values (the deployment's over the declared defaults, one level
//! of parameters built from others), and filling `{{placeholders}}` in a flow's texts.

use std::collections::{BTreeMap, HashMap};

use super::Report;
use crate::problem::ProblemKind;
use crate::raw::{Params, RawParam};

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
pub(super) fn values<'a>(
    declared: &'a BTreeMap<String, RawParam>,
    params: &'a Params,
    r: &mut Report<'_>,
) -> Resolved<'a> {
    let given: Values<'a> = declared
        .iter()
        .map(|(name, p)| (name.as_str(), params.get(name).unwrap_or(&p.default).as_str()))
        .collect();
    let derived = given
        .iter()
        .filter(|(_, v)| v.contains("{{"))
        .map(|(&name, v)| {
            let nested = placeholders(v).find(|n| given.get(n).is_some_and(|v| v.contains("{{")));
            let value = match nested {
                Some(n) => Err(ProblemKind::Param {
                    name: name.to_owned(),
                    message: format!("uses `{{{{{n}}}}}`, which uses parameters itself"),
                }),
                None => fill_template(v, &given).map_err(|kind| ProblemKind::Param {
                    name: name.to_owned(),
                    message: kind.to_string(),
                }),
            };
            (
                name,
                value.unwrap_or_else(|kind| {
                    r.add(None, None, kind);
                    String::new()
                }),
            )
        })
        .collect();
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

/// Substitutes `{{name}}` placeholders. A line that held a placeholder and is left blank is
/// dropped, so an unset parameter leaves no empty line. Trailing line breaks are trimmed.
pub(super) fn fill(text: &str, values: &HashMap<&str, &str>) -> Result<String, ProblemKind> {
    fill_lines(text, values, false)
}

/// [`fill`] for a parameter built from other parameters: there, a line whose placeholders were
/// all empty is dropped, captions and all (`電話：{{desk_phone}}` without a phone number).
fn fill_template(text: &str, values: &HashMap<&str, &str>) -> Result<String, ProblemKind> {
    fill_lines(text, values, true)
}

fn fill_lines(
    text: &str,
    values: &HashMap<&str, &str>,
    drop_captions: bool,
) -> Result<String, ProblemKind> {
    let text = text.trim_end();
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        let mut filled = String::with_capacity(line.len());
        let mut rest = line;
        let had_placeholder = line.contains("{{");
        let mut all_empty = true;
        while let Some(open) = rest.find("{{") {
            filled.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(ProblemKind::UnterminatedPlaceholder)?;
            let name = after[..close].trim();
            let value =
                values.get(name).ok_or_else(|| ProblemKind::UndeclaredParam(name.to_owned()))?;
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
    }
    Ok(out.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(pairs: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
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
}
