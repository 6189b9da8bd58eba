//! Hostile layers: every escape kind is refused with a clear error or neutralised, and nothing is ever
//! written outside the output directory — both when unpacking and when converting.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use arca_image::{ImageRef, ReadOptions, SourceImage, Unpacker};
use sha2::{Digest, Sha256};

/// One ustar header block (hand-made: hostile archives need names a normal writer refuses).
fn header(name: &[u8], typeflag: u8, size: usize, link: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    b[100..108].copy_from_slice(b"0000644\0");
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

enum E<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
    LongName(usize),
}

fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut t = Vec::new();
    for e in entries {
        match e {
            E::File(n, data) => {
                t.extend(header(n, b'0', data.len(), b""));
                t.extend_from_slice(data);
                t.resize(t.len().div_ceil(512) * 512, 0);
            }
            E::Dir(n) => t.extend(header(n, b'5', 0, b"")),
            E::Symlink(n, target) => t.extend(header(n, b'2', 0, target)),
            E::Hardlink(n, target) => t.extend(header(n, b'1', 0, target)),
            E::LongName(size) => {
                t.extend(header(b"././@LongLink", b'L', *size, b""));
                t.extend(vec![b'a'; size.div_ceil(512) * 512]);
                t.extend(header(b"x", b'0', 0, b""));
            }
        }
    }
    t.extend(vec![0u8; 1024]);
    t
}

fn hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Writes an OCI layout with uncompressed `layers` and an entrypoint.
fn oci_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        std::fs::write(blobs.join(hex(b)), b).unwrap();
        format!("sha256:{}", hex(b))
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", hex(l))).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/app"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|l| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(l), "size": l.len()}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len()},
        "layers": layer_descs,
    }))
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(&manifest), "size": manifest.len()}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn static_elf() -> Vec<u8> {
    // Any static x86-64 ELF will do as a launcher for the conversion side: a minimal one by hand.
    let mut e = vec![0u8; 120];
    e[0..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[6] = 1;
    e[16] = 2;
    e[18] = 0x3e;
    e[24..32].copy_from_slice(&0x401000u64.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes());
    e[54] = 56;
    e[56] = 1;
    e[64] = 1;
    e
}

/// Unpacks and converts `layers`; returns the unpack error and the conversion error (if any), and checks
/// that nothing appeared outside the output root.
fn attempt(layers: &[Vec<u8>]) -> (Option<String>, Option<String>) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let mut unpack_err = None;
    let mut u = Unpacker::new(&root).unwrap();
    for (i, l) in layers.iter().enumerate() {
        if let Err(e) = u.apply(&l[..], &format!("layer {}", i + 1)) {
            unpack_err = Some(e.to_string());
            break;
        }
    }
    let names: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(
        names.is_empty(),
        "something was written outside the root: {names:?}"
    );
    for escaped in ["evil", "pwned", "etc-passwd-copy"] {
        assert!(!work.path().join(escaped).exists(), "{escaped} escaped the root");
    }

    let oci = work.path().join("oci");
    oci_layout(&oci, layers);
    let image = SourceImage::open(
        &format!("oci:{}", oci.display()).parse::<ImageRef>().unwrap(),
        &ReadOptions::default(),
    )
    .unwrap();
    let pem =
        std::fs::read_to_string(arca_testkit::testdata().join("../keys/arca-dev-coordinator.pem")).unwrap();
    let key = arca_sgx::SigningKey::from_pem(&pem).unwrap();
    let launcher = static_elf();
    let opts = arca_image::ConvertOptions {
        launcher: &launcher,
        signer: &key,
        encrypt: Vec::new(),
        pf_key: None,
        exclude: Vec::new(),
        allow_env: Vec::new(),
        allow_path: Vec::new(),
        coordinator: arca_enclave::CoordinatorPolicy::development(),
        isvprodid: 1,
        isvsvn: 1,
        debug: false,
        enclave_size: 1 << 24,
        threads: 1,
        date: 0,
        compression: arca_image::Compression::Gzip,
        level: Some(1),
        jobs: 1,
        progress: &arca_image::NoProgress,
    };
    let staging = arca_image::Staging::new(None).unwrap();
    let convert_err = arca_image::convert(&image, &opts, &staging)
        .err()
        .map(|e| e.to_string());
    (unpack_err, convert_err)
}

const APP: E<'static> = E::File(b"bin/app", b"app");

fn assert_refused(layers: &[Vec<u8>], expect: &str) {
    let (u, c) = attempt(layers);
    let u = u.unwrap_or_else(|| panic!("unpack accepted a layer that should be refused ({expect})"));
    let c = c.unwrap_or_else(|| panic!("convert accepted a layer that should be refused ({expect})"));
    assert!(u.contains(expect), "unpack: {u}");
    assert!(c.contains(expect), "convert: {c}");
}

#[test]
fn refuses_absolute_names() {
    assert_refused(&[tar(&[APP, E::File(b"/evil", b"x")])], "absolute name");
}

#[test]
fn refuses_dot_dot_components() {
    assert_refused(&[tar(&[APP, E::File(b"../evil", b"x")])], "`..`");
    assert_refused(&[tar(&[APP, E::File(b"a/../../evil", b"x")])], "`..`");
}

#[test]
fn refuses_hard_links_that_escape_or_dangle() {
    assert_refused(
        &[tar(&[
            APP,
            E::Hardlink(b"etc-passwd-copy", b"../../../../etc/passwd"),
        ])],
        "`..`",
    );
    assert_refused(&[tar(&[APP, E::Hardlink(b"x", b"/etc/passwd")])], "absolute name");
    assert_refused(
        &[tar(&[APP, E::Hardlink(b"x", b"does/not/exist")])],
        "does not exist",
    );
}

#[test]
fn refuses_oversized_extension_headers() {
    assert_refused(&[tar(&[APP, E::LongName(2 << 20)])], "exceeds the limit");
}

#[test]
fn never_follows_a_symlink_out_of_the_root() {
    // Layer 1 plants `escape -> ../outside` and `abs -> /`; layer 2 writes through both names. With overlay
    // semantics the symlinks are replaced by directories inside the root.
    let l1 = tar(&[
        APP,
        E::Symlink(b"escape", b"../outside"),
        E::Symlink(b"abs", b"/"),
    ]);
    let l2 = tar(&[E::File(b"escape/pwned", b"x"), E::File(b"abs/tmp/evil", b"x")]);
    let (u, c) = attempt(&[l1.clone(), l2.clone()]);
    assert_eq!(u, None);
    assert_eq!(c, None);
    // Same in one layer.
    let one = tar(&[
        APP,
        E::Symlink(b"escape", b"../outside"),
        E::File(b"escape/pwned", b"x"),
    ]);
    let (u, _) = attempt(&[one]);
    assert_eq!(u, None);
}

#[test]
fn a_hard_link_to_a_symlink_does_not_write_through_it() {
    let l = tar(&[
        APP,
        E::Symlink(b"s", b"../outside/evil"),
        E::Hardlink(b"h", b"s"),
        E::File(b"h", b"overwrite"),
    ]);
    let (u, c) = attempt(&[l]);
    assert_eq!(u, None);
    assert_eq!(c, None);
}

#[test]
fn refuses_truncated_layers_and_bad_checksums() {
    let mut t = tar(&[APP, E::File(b"big", &[7u8; 5000])]);
    t.truncate(1024 + 2048);
    let (u, _) = attempt(&[t]);
    assert!(u.unwrap().contains("truncated"));
    let mut t = tar(&[APP]);
    t[0] ^= 0x20;
    let (u, c) = attempt(&[t]);
    assert!(u.unwrap().contains("checksum"));
    assert!(c.unwrap().contains("checksum"));
}

#[test]
fn whiteouts_and_opaque_markers_apply_when_unpacking() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut u = Unpacker::new(&root).unwrap();
    u.apply(
        &tar(&[
            E::Dir(b"d"),
            E::File(b"d/old", b"1"),
            E::File(b"gone", b"2"),
            E::File(b"keep", b"3"),
        ])[..],
        "l1",
    )
    .unwrap();
    u.apply(
        &tar(&[
            E::Dir(b"d"),
            E::File(b"d/new", b"4"),
            E::File(b"d/.wh..wh..opq", b""),
            E::File(b".wh.gone", b""),
        ])[..],
        "l2",
    )
    .unwrap();
    let stats = u.finish().unwrap();
    assert_eq!(stats.whiteouts, 2);
    assert!(!root.join("d/old").exists() && root.join("d/new").exists());
    assert!(!root.join("gone").exists() && root.join("keep").exists());
}
