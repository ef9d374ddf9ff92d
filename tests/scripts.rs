//! `flowbot test`: the shipped scripts pass with full coverage, and the gate catches gaps.

use flowbot_tests::{flowbot, root, stdout};

#[test]
fn shipped_scripts_pass_and_cover_every_edge() {
    let out = flowbot().arg("test").output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("coverage gmis-mail-trouble"), "{text}");
    assert!(text.contains("nodes 27/27 (100%), edges 33/33 (100%)"), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

/// A flow folder with the G-MIS flow and only one script: the gate fails and names the gaps.
#[test]
fn an_uncovered_edge_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("flows/gmis-mail-trouble.yaml"), dir.path().join("gmis.yaml"))
        .unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("tests/one.yaml"),
        "flow: gmis-mail-trouble\nscripts:\n  - name: one path\n    steps:\n      - press: 届いている\n      - at: q2\n",
    )
    .unwrap();
    let out = flowbot().arg("test").arg("--flows").arg(dir.path()).output().unwrap();
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("1 passed, 0 failed"), "{text}");
    assert!(text.contains("edge not covered: q5 --[ない]--> m5"), "{text}");
    assert!(text.contains("node not visited: existing"), "{text}");
}

#[test]
fn a_failing_script_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.yaml");
    std::fs::write(
        &script,
        "flow: gmis-mail-trouble\nscripts:\n  - name: wrong node\n    steps:\n      - press: 届いている\n      - at: q3\n  - name: no such button\n    steps:\n      - press: たぶん\n",
    )
    .unwrap();
    let out = flowbot().arg("test").arg(&script).output().unwrap();
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("script `wrong node`, step 2: expected to be at `q3`, but at `q2`"),
        "{text}"
    );
    assert!(text.contains("script `no such button`, step 1: no button `たぶん`"), "{text}");
    assert!(text.contains("0 passed, 2 failed"), "{text}");
}

#[test]
fn a_malformed_script_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.yaml");
    std::fs::write(
        &script,
        "flow: gmis-mail-trouble\nscripts:\n  - name: x\n    steps:\n      - presss: 届いている\n",
    )
    .unwrap();
    let out = flowbot().arg("test").arg(&script).output().unwrap();
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(text.contains("bad.yaml:5:") && text.contains("unknown variant `presss`"), "{text}");
}
