//! The binary's command-line surface. (Its presence also makes `cargo test` build the
//! `flowbot` executable that the workspace's `tests/` member drives.)

use std::process::Command;

fn flowbot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowbot"))
}

#[test]
fn help_lists_every_command() {
    let out = flowbot().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["check", "chat", "render", "test"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

#[test]
fn unknown_command_is_refused() {
    let out = flowbot().arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}
