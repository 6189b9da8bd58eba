//! Multi-platform images: an image index (OCI) or manifest list names one image per platform. Reading picks
//! linux/amd64 unless told otherwise, picks the platform asked for, and refuses an unknown platform with an
//! error that lists the platforms the index has — from an `oci:` layout (nested index, or platforms listed
//! directly in index.json) and from Debian's `docker-registry` started on 127.0.0.1.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use arca_image::{ImageRef, Platform, ReadOptions, SourceImage, Staging, WriteOptions};
use arca_testkit::Registry;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use support::*;

/// The platforms of the test index: (os, architecture, variant).
const PLATFORMS: [(&str, &str, Option<&str>); 3] = [
    ("linux", "arm64", Some("v8")),
    ("linux", "amd64", None),
    ("linux", "arm", Some("v7")),
];

fn ustar(name: &str, typeflag: u8, size: usize, mode: u32) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..name.len()].copy_from_slice(name.as_bytes());
    b[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = typeflag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

/// An uncompressed layer: /bin/app (the static test program) and /etc/platform naming the platform.
fn layer(app: &[u8], platform: &str) -> Vec<u8> {
    let mut t = Vec::new();
    for d in ["bin/", "etc/"] {
        t.extend(ustar(d, b'5', 0, 0o755));
    }
    for (name, data, mode) in [
        ("bin/app", app, 0o755),
        ("etc/platform", platform.as_bytes(), 0o644),
    ] {
        t.extend(ustar(name, b'0', data.len(), mode));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.extend(vec![0u8; 1024]);
    t
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Stores `bytes` as a blob of the layout in `dir`; returns a descriptor.
fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let d = digest_of(bytes);
    write(&dir.join("blobs/sha256").join(&d[7..]), bytes);
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

fn platform_json(os: &str, arch: &str, variant: Option<&str>) -> Value {
    let mut p = json!({"os": os, "architecture": arch});
    if let Some(v) = variant {
        p["variant"] = json!(v);
    }
    p
}

/// Writes one image per platform into the OCI layout `dir`; returns their manifest descriptors (with their
/// platform).
fn platform_images(dir: &Path, app: &[u8]) -> Vec<Value> {
    write(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#);
    PLATFORMS
        .iter()
        .map(|&(os, arch, variant)| {
            let tar = layer(app, &format!("{arch}\n"));
            let layer = blob(dir, "application/vnd.oci.image.layer.v1.tar", &tar);
            let mut config = json!({
                "architecture": arch,
                "os": os,
                "config": {"Cmd": ["/bin/app"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [digest_of(&tar)]},
            });
            if let Some(v) = variant {
                config["variant"] = json!(v);
            }
            let config = blob(
                dir,
                "application/vnd.oci.image.config.v1+json",
                &serde_json::to_vec(&config).unwrap(),
            );
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer],
            });
            let mut desc = blob(
                dir,
                "application/vnd.oci.image.manifest.v1+json",
                &serde_json::to_vec(&manifest).unwrap(),
            );
            desc["platform"] = platform_json(os, arch, variant);
            desc
        })
        .collect()
}

/// An OCI layout whose index.json names (tag `multi`) an image index of three platforms.
fn nested_layout(dir: &Path, app: &[u8]) -> PathBuf {
    let manifests = platform_images(dir, app);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut desc = blob(
        dir,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    );
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "multi"});
    write(
        &dir.join("index.json"),
        &serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    );
    dir.to_path_buf()
}

/// An OCI layout whose index.json lists the three platform manifests itself, all tagged `flat`.
fn flat_layout(dir: &Path, app: &[u8]) -> PathBuf {
    let mut manifests = platform_images(dir, app);
    for m in &mut manifests {
        m["annotations"] = json!({"org.opencontainers.image.ref.name": "flat"});
    }
    write(
        &dir.join("index.json"),
        &serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
    );
    dir.to_path_buf()
}

fn open(image: &str, platform: Option<&str>) -> arca_image::Result<SourceImage> {
    let r: ImageRef = image.parse().unwrap();
    let mut opts = ReadOptions::default();
    if let Some(p) = platform {
        opts.platform = p.parse::<Platform>().unwrap();
    }
    SourceImage::open(&r, &opts)
}

/// The architecture of the picked image, from its config and from the file in its layer.
fn picked(image: &SourceImage) -> String {
    let arch = image.config.architecture().to_string();
    let mut blob = Vec::new();
    image
        .read_blob(&image.layers[0].digest.unwrap(), &mut blob)
        .unwrap();
    // A registry client may have compressed the layer on push: decompress with the system tools.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &blob).unwrap();
    let layer = decompress(file.path());
    assert!(
        contains(&layer, format!("{arch}\n").as_bytes()),
        "the layer of the {arch} image holds /etc/platform = {arch}"
    );
    arch
}

/// Default, named and unknown platforms, read from `image`.
fn check_platform_choice(image: &str) {
    assert_eq!(
        picked(&open(image, None).unwrap()),
        "amd64",
        "linux/amd64 by default"
    );
    assert_eq!(picked(&open(image, Some("linux/arm64")).unwrap()), "arm64");
    assert_eq!(picked(&open(image, Some("linux/arm64/v8")).unwrap()), "arm64");
    assert_eq!(picked(&open(image, Some("linux/arm/v7")).unwrap()), "arm");
    for unknown in ["linux/s390x", "linux/arm/v6", "windows/amd64"] {
        let err = open(image, Some(unknown)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("no manifest for platform {unknown}")),
            "{err}"
        );
        for have in ["linux/arm64/v8", "linux/amd64", "linux/arm/v7"] {
            assert!(err.contains(have), "the error lists {have}: {err}");
        }
    }
}

fn app(dir: &Path) -> Option<Vec<u8>> {
    static_launcher(dir).map(|p| std::fs::read(p).unwrap())
}

#[test]
fn an_oci_index_gives_linux_amd64_by_default_the_named_platform_or_a_list_of_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let Some(app) = app(dir.path()) else { return };
    let layout = nested_layout(&dir.path().join("nested"), &app);
    check_platform_choice(&format!("oci:{}:multi", layout.display()));
    // The only image of the layout: no tag needed.
    check_platform_choice(&format!("oci:{}", layout.display()));
}

#[test]
fn platforms_listed_directly_in_index_json_are_picked_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let Some(app) = app(dir.path()) else { return };
    let layout = flat_layout(&dir.path().join("flat"), &app);
    check_platform_choice(&format!("oci:{}:flat", layout.display()));
    check_platform_choice(&format!("oci:{}", layout.display()));
}

#[test]
fn the_picked_platform_converts_into_a_valid_image() {
    let dir = tempfile::tempdir().unwrap();
    let Some(app) = app(dir.path()) else { return };
    let layout = nested_layout(&dir.path().join("nested"), &app);
    let key = signing_key();
    let opts = options(&app, &key);
    let image = open(&format!("oci:{}:multi", layout.display()), Some("linux/arm64")).unwrap();
    let staging = Staging::new(None).unwrap();
    let (staged, report) = arca_image::convert(&image, &opts, &staging).unwrap();
    assert_eq!(report.exec, "/bin/app");
    let out = dir.path().join("out");
    let dst: ImageRef = format!("oci:{}:arm", out.display()).parse().unwrap();
    arca_image::write_image(&staging, &staged, &dst, &WriteOptions::default()).unwrap();
    // The uncompressed input layer was recompressed to gzip: its diff_id (checked here against the system
    // gzip's output) is the input's.
    let layers = strict_check_oci(&out);
    assert!(contains(&layers[0], b"arm64\n"));
    let converted = open(&format!("oci:{}:arm", out.display()), None).unwrap();
    assert_eq!(converted.config.architecture().to_string(), "arm64");
    assert_eq!(converted.layers[0].diff_id, image.layers[0].diff_id);
}

#[test]
fn a_registry_index_gives_linux_amd64_by_default_the_named_platform_or_a_list_of_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let Some(app) = app(dir.path()) else { return };
    let Some(skopeo) = arca_testkit::require_tool("skopeo") else {
        return;
    };
    let Some(registry) = Registry::start() else { return };
    let layout = nested_layout(&dir.path().join("nested"), &app);
    // An independent client pushes the index and every platform's image.
    let remote = format!("{}/multi/app:1", registry.addr);
    run(Command::new(&skopeo)
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{remote}")));
    check_platform_choice(&format!("docker://{remote}"));
    // The index's digest names it too.
    let raw = run(Command::new(&skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{remote}")));
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), PLATFORMS.len());
    let by_digest = format!(
        "docker://{}/multi/app@{}",
        registry.addr,
        digest_of(raw.as_bytes())
    );
    assert_eq!(picked(&open(&by_digest, Some("linux/arm64")).unwrap()), "arm64");
}

/// A conversion re-emits a layer it recompresses; when the re-emitted tar is not the input's bytes (a directory
/// header that declared data, non-zero padding), the output's diff_id is the new bytes' hash, not the input's.
#[test]
fn a_recompressed_layer_whose_bytes_change_gets_the_diff_id_of_its_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(app) = app(dir.path()) else { return };
    for quirk in ["nonzero padding", "directory with data"] {
        let layout = dir.path().join(quirk.replace(' ', "-"));
        platform_images(&layout, &app);
        // Replace the amd64 image's layer by a quirky one, then point index.json at that image alone.
        let mut t = Vec::new();
        t.extend(ustar("bin/", b'5', 0, 0o755));
        t.extend(ustar("bin/app", b'0', app.len(), 0o755));
        t.extend_from_slice(&app);
        let padded = t.len().div_ceil(512) * 512;
        if quirk == "nonzero padding" {
            t.resize(padded, 0xaa);
        } else {
            t.resize(padded, 0);
            t.extend(ustar("data/", b'5', 3, 0o755));
            t.extend(b"xyz");
            t.resize(t.len().div_ceil(512) * 512, 0);
        }
        t.extend(vec![0u8; 1024]);
        let layer = blob(&layout, "application/vnd.oci.image.layer.v1.tar", &t);
        let config = blob(
            &layout,
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&json!({
                "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/app"]},
                "rootfs": {"type": "layers", "diff_ids": [digest_of(&t)]},
            }))
            .unwrap(),
        );
        let manifest = blob(
            &layout,
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": [layer],
            }))
            .unwrap(),
        );
        write(
            &layout.join("index.json"),
            &serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [manifest]})).unwrap(),
        );
        let key = signing_key();
        let opts = options(&app, &key);
        let image = open(&format!("oci:{}", layout.display()), None).unwrap();
        let staging = Staging::new(None).unwrap();
        let (staged, _) = arca_image::convert(&image, &opts, &staging).unwrap();
        let out = dir.path().join(format!("out-{}", quirk.replace(' ', "-")));
        let dst: ImageRef = format!("oci:{}:x", out.display()).parse().unwrap();
        arca_image::write_image(&staging, &staged, &dst, &WriteOptions::default()).unwrap();
        let layers = strict_check_oci(&out);
        assert_ne!(
            digest_of(&layers[0]),
            digest_of(&t),
            "{quirk}: the re-emitted tar differs"
        );
        assert!(contains(&layers[0], &app), "{quirk}");
        // Only the blobs the manifest names were written (the discarded first pass left nothing behind).
        assert_eq!(
            std::fs::read_dir(out.join("blobs/sha256")).unwrap().count(),
            1 + 1 + staged.layers.len(),
            "{quirk}: manifest, config and layers"
        );
    }
}
