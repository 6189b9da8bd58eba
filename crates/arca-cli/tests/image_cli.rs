//! `arca convert`, `arca inspect`, `arca diff` as a user runs them: exit codes, JSON output, messages, and
//! no progress-bar escape codes when stderr is not a terminal.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

fn arca(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arca"))
        .args(args)
        .output()
        .unwrap()
}

fn key() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../keys/arca-dev-coordinator.pem")
        .display()
        .to_string()
}

#[path = "support/launcher.rs"]
mod support;
use support::launcher;

/// A one-layer OCI layout holding `/bin/app`, written by hand.
fn source_image(dir: &Path, app: &[u8]) -> PathBuf {
    let mut layer = Vec::new();
    let mut h = vec![0u8; 512];
    h[..7].copy_from_slice(b"bin/app");
    h[100..108].copy_from_slice(b"0000755\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", app.len()).as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    layer.extend(h);
    layer.extend_from_slice(app);
    layer.resize(layer.len().div_ceil(512) * 512 + 1024, 0);
    let oci = dir.join("src");
    let blobs = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = hex::encode(Sha256::digest(b));
        std::fs::write(blobs.join(&d), b).unwrap();
        format!("sha256:{d}")
    };
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&serde_json::json!({"architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/app"]}, "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]})).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(&manifest), "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(oci.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(oci.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    oci
}

#[test]
fn convert_without_a_launcher_is_refused_with_a_clear_message() {
    let out = arca(&[
        "convert",
        "oci:/nonexistent:v1",
        "oci:/tmp/x:y",
        "--sign-key",
        &key(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--launcher PATH is required"), "{err}");
}

#[test]
fn convert_refuses_a_dynamically_linked_launcher() {
    let out = arca(&[
        "convert",
        "oci:/nonexistent:v1",
        "oci:/tmp/x:y",
        "--sign-key",
        &key(),
        "--launcher",
        "/bin/ls",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("statically linked"), "{err}");
}

#[test]
fn convert_inspect_and_diff_print_json_and_no_progress_bar_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let Some(l) = launcher() else { return };
    let launcher_bytes = std::fs::read(&l).unwrap();
    let src = source_image(dir.path(), &launcher_bytes);
    let dst = dir.path().join("dst");
    let (s, d) = (
        format!("oci:{}:v1", src.display()),
        format!("oci:{}:app", dst.display()),
    );
    let out = arca(&[
        "convert",
        &s,
        &d,
        "--launcher",
        l.to_str().unwrap(),
        "--sign-key",
        &key(),
        "--output",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains("\x1b["),
        "progress bar drawn off a terminal: {stderr:?}"
    );
    assert!(stderr.contains("DEVELOPMENT coordinator"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["engine"], "sim");
    assert_eq!(json["exec"], "/bin/app");
    assert_eq!(json["development_coordinator"], true);
    let mrenclave = json["mrenclave"].as_str().unwrap().to_string();
    assert_eq!(mrenclave.len(), 64);
    assert_eq!(json["packages"]["app"]["SignerID"], json["mrsigner"]);
    assert_eq!(json["packages_unique_id"]["app"]["UniqueID"], json["mrenclave"]);

    let out = arca(&["inspect", &d, "--output", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["mrenclave"], mrenclave.as_str());
    assert!(
        inspect["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{inspect}"
    );

    // A second conversion with another ISVSVN: diff names it.
    let d2 = format!("oci:{}:app2", dst.display());
    let out = arca(&[
        "convert",
        &s,
        &d2,
        "--launcher",
        l.to_str().unwrap(),
        "--sign-key",
        &key(),
        "--isvsvn",
        "7",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human.contains("MRENCLAVE") && human.contains("\"SecurityVersion\": 7"),
        "{human}"
    );
    let out = arca(&["diff", &d, &d2]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("enclave.isvsvn"), "{text}");
    let out = arca(&["diff", &d, &d, "--output", "json"]);
    let same: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(same["same_identity"], true);
}

#[test]
fn encrypt_needs_a_key_and_pf_key_out_writes_one_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let Some(l) = launcher() else { return };
    let src = source_image(dir.path(), &std::fs::read(&l).unwrap());
    let (s, d) = (
        format!("oci:{}:v1", src.display()),
        format!("oci:{}:app", dir.path().join("dst").display()),
    );
    let out = arca(&[
        "convert",
        &s,
        &d,
        "--launcher",
        l.to_str().unwrap(),
        "--sign-key",
        &key(),
        "--encrypt",
        "/bin",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pf-key"));
    let keyfile = dir.path().join("pf.key");
    let out = arca(&[
        "convert",
        &s,
        &d,
        "--launcher",
        l.to_str().unwrap(),
        "--sign-key",
        &key(),
        "--encrypt",
        "/bin",
        "--pf-key-out",
        keyfile.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta = std::fs::metadata(&keyfile).unwrap();
    assert_eq!(meta.len(), 16);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
