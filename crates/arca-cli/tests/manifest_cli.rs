//! `arca manifest check` from the command line: exit codes and JSON output on the MarbleRun samples.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn arca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arca"))
}

fn sample(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/marblerun")
        .join(name)
}

#[test]
fn manifest_check_refuses_the_sample_with_placeholders_with_exit_3_naming_each_field() {
    let out = arca()
        .args(["--output", "json", "manifest", "check"])
        .arg(sample("sample-manifest.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let mut paths: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable(); // the order follows the JSON object's key order, which is not part of the contract
    assert_eq!(
        paths,
        [
            "Users.Admin.Certificate",
            "Users.Alice.Certificate",
            "Users.Bob.Certificate"
        ]
    );
}

#[test]
fn manifest_check_accepts_a_valid_manifest_with_exit_0() {
    let out = arca()
        .args(["manifest", "check"])
        .arg(sample("gramine-redis_manifest.json"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("valid (1 packages, 2 marbles"), "{text}");
}

#[test]
fn manifest_check_of_a_missing_file_is_an_error_not_a_refusal() {
    let out = arca()
        .args(["manifest", "check", "/nonexistent/m.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
