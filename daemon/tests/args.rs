//! The `llmpmd` binary's own arguments (also makes `cargo test` build the binary the end-to-end tests run).
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn version_and_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_llmpmd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("llmpmd "));
    let out = Command::new(env!("CARGO_BIN_EXE_llmpmd"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
