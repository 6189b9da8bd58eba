//! The enclave-identity commands, run as a user would: `arca demo`, `arca keygen`, `arca sgx …`.
#![allow(clippy::unwrap_used)] // test helpers, outside #[test] functions

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ENCLAVE: &str = "rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sgxs";
const SIG: &str = "rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sig";
const MRENCLAVE: &str = "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc";
const MRSIGNER: &str = "fb4bab3d6036ac1d730fa83d7366df1dd2dfeac194ef335d6854d8a6c6475542";

fn arca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .env_remove("ARCA_OUTPUT")
        .output()
        .unwrap()
}

fn vector(rel: &str) -> String {
    arca_testkit::vector(rel).display().to_string()
}

fn dev_key() -> String {
    arca_testkit::testdata()
        .join("../keys/arca-dev-coordinator.pem")
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{}{}",
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn demo_measures_verifies_and_signs_the_embedded_enclave() {
    let out = arca(&["demo"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.contains(&format!("MRENCLAVE  {MRENCLAVE}")), "{text}");
    assert!(text.contains(&format!("MRSIGNER   {MRSIGNER}")), "{text}");
    assert!(text.contains("no SGX CPU is used"), "{text}");

    let j = json(&arca(&["--output", "json", "demo"]));
    assert_eq!(j["measured"]["mrenclave"], MRENCLAVE);
    assert_eq!(j["published_sigstruct"]["mrsigner"], MRSIGNER);
    assert_eq!(j["tampered"]["refused"], true);
    assert_ne!(j["tampered"]["mrenclave"], MRENCLAVE);
    // The development-key SIGSTRUCT is reproducible: the same on every run.
    let again = json(&arca(&["--output", "json", "demo"]));
    assert_eq!(j["arca_sigstruct"]["sha256"], again["arca_sigstruct"]["sha256"]);
}

#[test]
fn demo_keep_writes_files_the_other_commands_accept() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("demo");
    assert!(arca(&["demo", "--keep", path_str(&keep)]).status.success());
    let j = json(&arca(&[
        "--output",
        "json",
        "sgx",
        "verify",
        path_str(&keep.join("arca-dev.sig")),
        "--sgxs",
        path_str(&keep.join("test_enclave.sgxs")),
    ]));
    assert_eq!(j["verified"], true);
    assert_eq!(j["mrenclave"], MRENCLAVE);
}

#[test]
fn measure_prints_mrenclave_and_refuses_a_non_sgxs_file() {
    let j = json(&arca(&["--output", "json", "sgx", "measure", &vector(ENCLAVE)]));
    assert_eq!(j["mrenclave"], MRENCLAVE);
    assert_eq!(j["pages"], 9);
    assert_eq!(j["measured_chunks"], 144);
    let bad = arca(&["sgx", "measure", &vector(SIG)]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown record tag"));
}

#[test]
fn inspect_shows_every_field_the_signer_and_the_debug_bit_in_words() {
    let text = stdout(&arca(&["sgx", "inspect", &vector(SIG)]));
    for needle in [
        MRENCLAVE,
        MRSIGNER,
        "ISVPRODID      65535",
        "DATE           2016-12-14",
        "EITHER",
        "valid",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let j = json(&arca(&["--output", "json", "sgx", "inspect", &vector(SIG)]));
    assert_eq!(j["mrsigner"], MRSIGNER);
    assert_eq!(j["signature_valid"], true);
    assert_eq!(j["attributes"]["flags"], "0x0000000000000004");
    assert_eq!(j["attributes"]["flag_names"][0], "MODE64BIT");
    assert_eq!(j["debug"], "either");
}

#[test]
fn sign_then_verify_round_trips_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sig");
    let b = dir.path().join("b.sig");
    let args = |out: &PathBuf| {
        vec![
            "sgx".to_string(),
            "sign".into(),
            "--key".into(),
            dev_key(),
            "--sgxs".into(),
            vector(ENCLAVE),
            "--date".into(),
            "2026-11-28".into(),
            "--isvprodid".into(),
            "7".into(),
            "--isvsvn".into(),
            "0x3".into(),
            "-o".into(),
            out.display().to_string(),
        ]
    };
    let run = |v: Vec<String>| arca(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args(&a));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run(args(&b)).status.success());
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same inputs, same SIGSTRUCT"
    );

    let j = json(&arca(&["--output", "json", "sgx", "inspect", path_str(&a)]));
    assert_eq!(
        (j["isvprodid"].as_u64(), j["isvsvn"].as_u64()),
        (Some(7), Some(3))
    );
    assert_eq!(j["date"], "2026-11-28");
    assert_eq!(j["debug"], "production");
    let signer = j["mrsigner"].as_str().unwrap().to_string();

    let ok = arca(&[
        "sgx",
        "verify",
        path_str(&a),
        "--sgxs",
        &vector(ENCLAVE),
        "--mrsigner",
        &signer,
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let wrong_enclave = arca(&["sgx", "verify", path_str(&a), "--enclave-hash", &"00".repeat(32)]);
    assert_eq!(wrong_enclave.status.code(), Some(3));
    assert!(stdout(&wrong_enclave).contains("REFUSED"));
    let wrong_signer = arca(&[
        "--output",
        "json",
        "sgx",
        "verify",
        path_str(&a),
        "--mrsigner",
        MRSIGNER,
    ]);
    assert_eq!(wrong_signer.status.code(), Some(3));
    let j: serde_json::Value = serde_json::from_slice(&wrong_signer.stdout).unwrap();
    assert_eq!(j["verified"], false);
    assert!(j["error"].as_str().unwrap().contains("expected fb4bab3d"));

    // A flipped signed byte: refused with exit code 3.
    let mut bytes = std::fs::read(&a).unwrap();
    bytes[1026] ^= 1; // ISVSVN
    std::fs::write(&a, bytes).unwrap();
    assert_eq!(arca(&["sgx", "verify", path_str(&a)]).status.code(), Some(3));
}

#[test]
fn sign_with_debug_marks_the_enclave_as_debug() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("debug.sig");
    let o = arca(&[
        "sgx",
        "sign",
        "--key",
        &dev_key(),
        "--enclave-hash",
        MRENCLAVE,
        "--date",
        "0x20161399",
        "--debug",
        "-o",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("YES — debug enclave"));
    let j = json(&arca(&["--output", "json", "sgx", "inspect", path_str(&out)]));
    assert_eq!(j["debug"], "debug");
    assert_eq!(j["date_raw"], "0x20161399");
    assert_eq!(j["signature_valid"], true);
}

#[test]
fn keygen_writes_a_private_key_that_signs_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signer.pem");
    let j = json(&arca(&["--output", "json", "keygen", "-o", path_str(&key)]));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let mrsigner = j["mrsigner"].as_str().unwrap().to_string();

    let before = std::fs::read(&key).unwrap();
    let again = arca(&["keygen", "-o", path_str(&key)]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read(&key).unwrap(), before);

    let sig = dir.path().join("e.sig");
    let signed = json(&arca(&[
        "--output",
        "json",
        "sgx",
        "sign",
        "--key",
        path_str(&key),
        "--enclave-hash",
        MRENCLAVE,
        "--date",
        "today",
        "-o",
        path_str(&sig),
    ]));
    assert_eq!(signed["mrsigner"], mrsigner.as_str());
    let v = arca(&[
        "sgx",
        "verify",
        path_str(&sig),
        "--enclave-hash",
        MRENCLAVE,
        "--mrsigner",
        &mrsigner,
    ]);
    assert_eq!(v.status.code(), Some(0));
}

#[test]
fn sign_help_says_the_masks_are_the_values_stored_in_sigstruct() {
    let help = stdout(&arca(&["sgx", "sign", "--help"]));
    assert!(help.contains("values stored in SIGSTRUCT"), "{help}");
    assert!(help.contains("--attributes-mask"));
    assert!(help.contains("Examples:"));
}

#[test]
fn sign_refuses_a_key_sgx_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bad.pem");
    std::fs::write(&key, "not a key").unwrap();
    let out = dir.path().join("x.sig");
    let o = arca(&[
        "sgx",
        "sign",
        "--key",
        path_str(&key),
        "--enclave-hash",
        MRENCLAVE,
        "--date",
        "2026-01-01",
        "-o",
        path_str(&out),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no PEM private key"));
    assert!(!out.exists());
}
