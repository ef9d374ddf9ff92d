//! `flowbot check` and the loader: a good flow passes, a broken one lists every problem.

use flowbot_core::{Params, ProblemKind, load_flow};
use flowbot_tests::{flowbot, stdout};

#[test]
fn shipped_flows_pass() {
    let out = flowbot().arg("check").output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("ok flows/gmis-mail-trouble.yaml: flow `gmis-mail-trouble`"));
}

/// Every problem kind of the core issue, each reported once with its line and node.
#[test]
fn broken_flow_lists_every_problem() {
    let out = flowbot().args(["check", "tests/data/broken-flow.yaml"]).output().unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    let f = "tests/data/broken-flow.yaml";
    let expected = [
        format!("{f}:7: entry name `bad entry!` is not valid: use 1 to 64 of A-Z a-z 0-9 _ -"),
        format!("{f}:8: entry `ghost` names unknown node `nowhere`"),
        format!("{f}:14: node `q1`: choice 1 has an empty label"),
        format!("{f}:18: node `q1`: choices 2 and 3 have equal labels"),
        format!(
            "{f}:20: node `q1`: choice 4's label `{}` is 82 characters; Discord allows 80",
            "とても長いボタンの文言".repeat(7) + "とても長い"
        ),
        format!(
            "{f}:20: node `q1`: choice 4's label `{}` is 82 characters; Slack allows 75",
            "とても長いボタンの文言".repeat(7) + "とても長い"
        ),
        format!("{f}:22: node `q1`: choice 5's `next` names unknown node `missing`"),
        format!("{f}:31: node `loop`: no ending can be reached from this node"),
        format!("{f}:36: node `loop_again`: no ending can be reached from this node"),
        format!("{f}:39: node `q1`: duplicate node id (first defined on line 11)"),
        format!("{f}:41: node `orphan`: no entry point reaches this node"),
        format!(
            "{f}:45: node `a_node_id_long_enough_that_its_tokens_overflow`: the longest button token of this node is 70 bytes; Telegram allows 64"
        ),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains(&format!("{} problems:", expected.len())), "{text}");
}

/// Every problem a form can have, each reported once with the form's (or the node's) line.
#[test]
fn broken_form_lists_every_problem() {
    let out = flowbot().args(["check", "tests/data/broken-form.yaml"]).output().unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    let f = "tests/data/broken-form.yaml";
    let form = format!("{f}:26: form `request`:");
    let expected = [
        format!("{f}:16: node `g`: `form: nowhere` names no form under `forms:`"),
        format!("{f}:16: node `g`: no entry point reaches this node"),
        format!("{f}:19: node `h`: a form node has `form` and `next` only, not ask"),
        format!("{f}:19: node `h`: no entry point reaches this node"),
        format!(
            "{form} `handoff`: text uses parameter `{{{{nonsense}}}}`, which `params` does not declare"
        ),
        format!("{form} `handoff` must show `{{{{answers}}}}` and `{{{{reference}}}}`"),
        format!("{form} `fix` `確定する` equals `submit` (compared after NFKC)"),
        format!("{form} field 1: `pattern` is not a regular expression"),
        format!("{form} field 2: duplicate id `code`"),
        format!("{form} field 2's label `戻る` is a navigation button's label"),
        format!("{form} field 2: `email` and `pattern` exclude each other"),
        format!("{form} field 2: `max_chars` must be 1 to 4096"),
        format!("{form} field 3: `invalid` explains a `pattern`, and there is none"),
        format!("{f}:58: form `unused`: no node asks this form (`form:`)"),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains(&format!("{} problems:", expected.len())), "{text}");
}

/// A broken file among good ones fails the run, and the good ones are still reported.
#[test]
fn one_broken_file_fails_the_whole_check() {
    let out = flowbot().args(["check", "flows", "tests/data/broken-flow.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("ok flows/gmis-mail-trouble.yaml"), "{text}");
    assert!(text.contains("FAILED tests/data/broken-flow.yaml"), "{text}");
}

fn problems_of(yaml: &str) -> Vec<flowbot_core::Problem> {
    load_flow(yaml, "t.yaml", &Params::new()).expect_err("the flow must not load").0
}

const TEXTS: &str = "texts: { back: 戻る, restart: 最初から, stale: s, no_match: n, contact: c, help: h, \
                     cannot_go_back: g, ended: e, unknown_entry: u, unknown_command: x, \
                     resume_question: r, resume: 続きから, not_yours: y, command_start: cs, \
                     command_back: cb, command_restart: cr, command_help: ch }\n";

#[test]
fn syntax_and_shape_errors_carry_a_line() {
    let yaml = format!(
        "flow: f\ntitle: t\nstart: a\n{TEXTS}nodes:\n  - id: a\n    end: x\n    colour: red\n"
    );
    let problems = problems_of(&yaml);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, Some(8));
    assert_eq!(problems[0].node.as_deref(), Some("a"));
    assert!(problems[0].to_string().contains("unknown field `colour`"), "{}", problems[0]);

    let problems = problems_of("flow: f\ntitle: [unclosed\n");
    assert!(problems[0].line.is_some(), "{problems:?}");
}

#[test]
fn node_shape_problems() {
    let yaml = format!(
        "flow: f\ntitle: t\nstart: a\n{TEXTS}params: {{}}\nnodes:
  - id: a
    ask: q
    next: b
    choices:
      - {{ label: x, next: b, means: \"yes\" }}
      - {{ label: y, next: b, means: \"yes\" }}
      - {{ label: 戻る, next: b }}
      - {{ label: \"２\", next: b }}
  - id: b
    say: no next
  - id: c
    end: e
    say: both
  - id: d
    end: \"{{{{nope}}}}\"
"
    );
    let kinds: Vec<ProblemKind> = problems_of(&yaml).into_iter().map(|p| p.kind).collect();
    assert!(
        kinds.contains(&ProblemKind::Shape("a question has `choices`, not `next`".into())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&ProblemKind::DuplicateMeans("yes")), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| matches!(k, ProblemKind::LabelIsNavigation { button: "back", .. })),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| matches!(k, ProblemKind::LabelIsNumber { choice: 4, .. })),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&ProblemKind::Shape("a message (`say`) needs `next`".into())),
        "{kinds:?}"
    );
    assert!(kinds.contains(&ProblemKind::NodeKind("say and end".into())), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::UndeclaredParam("nope".into())), "{kinds:?}");
}

#[test]
fn unknown_parameter_in_the_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(&config, "[params]\ncause3_notes = \"typo\"\n").unwrap();
    let out = flowbot().arg("--config").arg(&config).arg("check").output().unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("cause3_notes") && text.contains("cause3_note, desk_contact"), "{text}");

    std::fs::write(&config, "[params]\ncause3_note = \"ok\"\n").unwrap();
    let out = flowbot().arg("--config").arg(&config).arg("check").output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));

    std::fs::write(&config, "[parms]\n").unwrap();
    let out = flowbot().arg("--config").arg(&config).arg("check").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid configuration file"));
}

/// The shipped deployment example stays valid.
#[test]
fn the_fukushima_example_configuration_checks() {
    let out =
        flowbot().args(["--config", "deploy/flowbot.fukushima.toml", "check"]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
}

/// The core checks no platform's limits; `load_flow_for` and `Flow::check_limits` check the ones
/// given, and say which platform's limit is broken.
#[test]
fn limits_are_the_platforms_own() {
    let label = "あ".repeat(81);
    let yaml = format!(
        "flow: f\ntitle: t\nstart: a\n{TEXTS}nodes:\n  - id: a\n    ask: q\n    choices:\n      - {{ label: {label}, next: b }}\n  - id: b\n    end: e\n"
    );
    let flow = load_flow(&yaml, "t.yaml", &Params::new()).expect("no platform limit in the core");
    let discord =
        flowbot_core::Limits { platform: "Discord", label: 80, ..flowbot_core::Limits::NONE };
    let web = flowbot_core::Limits { platform: "the web chat", ..flowbot_core::Limits::NONE };
    assert!(flow.check_limits(&[&web]).is_ok());
    let problems = flow.check_limits(&[&web, &discord]).unwrap_err().0;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].line, Some(9));
    assert_eq!(problems[0].node.as_deref(), Some("a"));
    assert_eq!(
        problems[0].kind.to_string(),
        format!("choice 1's label `{label}` is 81 characters; Discord allows 80")
    );
    let loaded = flowbot_core::load_flow_for(&yaml, "t.yaml", &Params::new(), &[&discord]);
    assert_eq!(loaded.unwrap_err().0, problems);
}
