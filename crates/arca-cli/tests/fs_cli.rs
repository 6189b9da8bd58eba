//! `arca fs encrypt|decrypt|check` as a user runs them: round trips through files, Gramine-written vectors,
//! the bound path, and every refusal with its exit code (3) and a message naming what failed — and no
//! plaintext left behind when a file is refused.

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn arca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .env_remove("ARCA_OUTPUT")
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn vector(name: &str) -> PathBuf {
    arca_testkit::vector(&format!("gramine-pf/{name}"))
}

/// 300,001 bytes: the metadata node's 3072, then more than one MHT node's worth of data nodes (96 · 4 KiB)
/// and a partial last node.
fn plaintext() -> Vec<u8> {
    (0..300_001u32).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_file_encrypted_by_arca_decrypts_back_and_is_bound_to_its_path() {
    let t = tempfile::tempdir().unwrap();
    let key = t.path().join("pf.key");
    std::fs::write(&key, [9u8; 16]).unwrap();
    let plain = t.path().join("notes.txt");
    std::fs::write(&plain, plaintext()).unwrap();
    let enc = t.path().join("notes.pf");

    let o = arca(&[
        "fs",
        "encrypt",
        "--key",
        s(&key),
        "--path",
        "/app/data/notes.txt",
        s(&plain),
        s(&enc),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let on_disk = std::fs::read(&enc).unwrap();
    assert_eq!(&on_disk[..8], b"GRAFS_PF");
    let sample = &plaintext()[100_000..100_064];
    assert!(
        !on_disk.windows(64).any(|w| w == sample),
        "plaintext found in the protected file"
    );

    let out = t.path().join("notes.out");
    let o = arca(&[
        "--output",
        "json",
        "fs",
        "decrypt",
        "--key",
        s(&key),
        "--path",
        "/app/data/notes.txt",
        s(&enc),
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&out).unwrap() == plaintext());
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["bound_path"], "/app/data/notes.txt");
    assert_eq!(report["plaintext_bytes"], 300_001);
    assert_eq!(report["format_version"], 2);

    // Another bound path is refused (exit 3), naming both paths, and no plaintext is written.
    let wrong = t.path().join("wrong.out");
    let o = arca(&[
        "fs",
        "decrypt",
        "--key",
        s(&key),
        "--path",
        "/app/other.txt",
        s(&enc),
        s(&wrong),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/app/other.txt") && stderr(&o).contains("/app/data/notes.txt"),
        "{}",
        stderr(&o)
    );
    assert!(!wrong.exists() && !wrong.with_extension("arca-partial").exists());

    // --any-path accepts and reports the bound path.
    let o = arca(&[
        "--output",
        "json",
        "fs",
        "check",
        "--key",
        s(&key),
        "--any-path",
        s(&enc),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let entries: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(entries[0]["ok"], true);
    assert_eq!(entries[0]["bound_path"], "/app/data/notes.txt");
}

#[test]
fn gramine_written_files_decrypt_with_the_path_gramine_bound() {
    let t = tempfile::tempdir().unwrap();
    for (name, size) in [
        ("file_100000.pf", 100_000),
        ("file_100000.v1.pf", 100_000),
        ("file_1048576.pf", 1_048_576),
    ] {
        let out = t.path().join(format!("{name}.out"));
        let bound = format!("/app/data/file_{size}.bin");
        let o = arca(&[
            "fs",
            "decrypt",
            "--key",
            s(&vector("kdk.bin")),
            "--path",
            &bound,
            s(&vector(name)),
            s(&out),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let expect = std::fs::read(vector(&format!("file_{size}.plain"))).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == expect,
            "{name} decrypts to other bytes"
        );
    }
}

#[test]
fn tampered_files_and_wrong_keys_are_refused_with_what_failed() {
    let t = tempfile::tempdir().unwrap();
    let kdk = vector("kdk.bin");
    let bound = "/app/data/file_100000.bin";
    let check = |key: &Path, file: &Path| arca(&["fs", "check", "--key", s(key), "--path", bound, s(file)]);

    let o = check(&kdk, &vector("file_100000.pf"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok "));

    for (name, says) in [
        ("file_100000.tamper_data.pf", "data node"),
        ("file_100000.tamper_mht.pf", "MHT node"),
        ("file_100000.tamper_md_mac.pf", "metadata"),
        ("file_100000.truncated.pf", "node"),
    ] {
        let o = check(&kdk, &vector(name));
        assert_eq!(o.status.code(), Some(3), "{name}: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            text.starts_with("REFUSED") && text.contains(says),
            "{name}: {text}"
        );
    }

    let other_key = t.path().join("other.key");
    std::fs::write(&other_key, [1u8; 16]).unwrap();
    let o = check(&other_key, &vector("file_100000.pf"));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("metadata"));

    // Usage errors, not refusals: a key file of the wrong length, a missing input.
    let short_key = t.path().join("short.key");
    std::fs::write(&short_key, [1u8; 15]).unwrap();
    let o = check(&short_key, &vector("file_100000.pf"));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("15") && stderr(&o).contains("16"),
        "{}",
        stderr(&o)
    );
    let o = check(&kdk, &t.path().join("missing.pf"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.pf"), "{}", stderr(&o));
}
