//! Files written by Gramine's own protected-files code (testdata/vectors/gramine-pf, see VECTORS.md there):
//! every one decrypts to exactly its plaintext, and every tampered variant is refused with its own error.

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use arca_pfs::{
    decrypt_bytes, decrypt_stream, BoundPath, Error, FormatVersion, Key, NodeKind, Options, ProtectedFile,
};

fn vec_file(name: &str) -> Vec<u8> {
    std::fs::read(arca_testkit::vector(&format!("gramine-pf/{name}"))).unwrap()
}

fn kdk() -> Key {
    Key::from_file(&arca_testkit::vector("gramine-pf/kdk.bin")).unwrap()
}

fn bound(size: usize) -> BoundPath {
    BoundPath::new(&format!("/app/data/file_{size}.bin")).unwrap()
}

fn plain(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

#[test]
fn every_gramine_v2_file_decrypts_to_its_plaintext() {
    for size in [0usize, 1, 3072, 3073, 4096, 100_000, 1_048_576] {
        let pf = vec_file(&format!("file_{size}.pf"));
        let out = decrypt_bytes(&pf, &kdk(), &bound(size)).unwrap();
        assert_eq!(out, plain(size), "file_{size}.pf");
        assert_eq!(out, vec_file(&format!("file_{size}.plain")));
    }
}

#[test]
fn every_gramine_v1_file_decrypts_to_its_plaintext() {
    for size in [1usize, 3073, 100_000] {
        let pf = vec_file(&format!("file_{size}.v1.pf"));
        let mut out = Vec::new();
        let info = decrypt_stream(pf, &kdk(), Some(&bound(size)), &mut out).unwrap();
        assert_eq!(info.version, FormatVersion::V1);
        assert_eq!(out, plain(size), "file_{size}.v1.pf");
    }
}

#[test]
fn the_pf_crypt_tool_file_decrypts_to_its_plaintext() {
    let pf = vec_file("file_100000.pfcrypt.pf");
    let mut out = Vec::new();
    let info = decrypt_stream(pf, &kdk(), None, &mut out).unwrap();
    assert_eq!(out, plain(100_000));
    eprintln!("pf-crypt bound path: {}", info.bound_path);
}

#[test]
fn known_answer_root_mht_entry_and_size_of_file_100000() {
    let f = ProtectedFile::open(
        vec_file("file_100000.pf"),
        &kdk(),
        &bound(100_000),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(f.len(), 100_000);
    assert_eq!(
        hex::encode(f.root_mac()),
        hex::encode(&vec_file("file_100000.pf")[42..58])
    );
}

fn open_err(name: &str, path: &BoundPath) -> Error {
    ProtectedFile::open(vec_file(name), &kdk(), path, &Options::default()).unwrap_err()
}

fn read_all(name: &str) -> Result<Vec<u8>, Error> {
    decrypt_bytes(&vec_file(name), &kdk(), &bound(100_000))
}

#[test]
fn rejects_modified_metadata_mac() {
    assert!(matches!(
        open_err("file_100000.tamper_md_mac.pf", &bound(100_000)),
        Error::MetadataAuth { .. }
    ));
}

#[test]
fn rejects_modified_metadata_ciphertext_and_nonce() {
    for v in ["tamper_md_ciphertext", "tamper_nonce"] {
        let e = open_err(&format!("file_100000.{v}.pf"), &bound(100_000));
        assert!(matches!(e, Error::MetadataAuth { .. }), "{v}: {e}");
    }
}

#[test]
fn rejects_the_wrong_key() {
    let e = ProtectedFile::open(
        vec_file("file_100000.pf"),
        &Key::from_bytes([9; 16]),
        &bound(100_000),
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::MetadataAuth { .. }));
}

#[test]
fn rejects_modified_root_mht_node_naming_it() {
    let e = read_all("file_100000.tamper_mht.pf").unwrap_err();
    assert!(
        matches!(
            e,
            Error::NodeAuth {
                kind: NodeKind::Mht,
                logical: 0,
                physical: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn rejects_modified_data_node_only_when_its_range_is_read() {
    let mut f = ProtectedFile::open(
        vec_file("file_100000.tamper_data.pf"),
        &kdk(),
        &bound(100_000),
        &Options::default(),
    )
    .unwrap();
    let mut buf = vec![0u8; 4096];
    assert_eq!(f.read_at(3072, &mut buf).unwrap(), 4096);
    assert_eq!(buf, plain(100_000)[3072..3072 + 4096]);
    let e = f.read_at(35_840, &mut buf).unwrap_err();
    // byte 10·4096 is physical node 10 = logical data node 8 (plaintext 3072 + 8·4096 = 35840).
    assert!(
        matches!(
            e,
            Error::NodeAuth {
                kind: NodeKind::Data,
                logical: 8,
                physical: 10,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn rejects_a_truncated_file_at_open() {
    let e = open_err("file_100000.truncated.pf", &bound(100_000));
    assert!(
        matches!(
            e,
            Error::Truncated {
                needed: 26,
                found: 25,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn rejects_a_file_opened_under_another_path() {
    let e = open_err(
        "file_100000.pf",
        &BoundPath::new("/app/data/file_100001.bin").unwrap(),
    );
    match e {
        Error::PathMismatch { expected, found } => {
            assert_eq!(expected, "/app/data/file_100001.bin");
            assert_eq!(found, "/app/data/file_100000.bin");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn rejects_a_changed_file_id_and_a_size_off_the_node_grid() {
    assert!(matches!(
        open_err("file_100000.tamper_file_id.pf", &bound(100_000)),
        Error::NotProtectedFile { .. }
    ));
    assert!(matches!(
        open_err("file_100000.extra_byte.pf", &bound(100_000)),
        Error::InvalidHostSize { len: 106_497, .. }
    ));
}

#[test]
fn rejects_other_major_versions() {
    assert!(matches!(
        open_err("file_100000.major3.pf", &bound(100_000)),
        Error::UnsupportedVersion {
            major: 3,
            minor: 0,
            ..
        }
    ));
    // major 1 on a v2 body: read as v1, the blob shifts by one byte and fails authentication (as in Gramine).
    assert!(matches!(
        open_err("file_100000.major1.pf", &bound(100_000)),
        Error::MetadataAuth { .. }
    ));
}

#[test]
fn refuses_changed_unauthenticated_header_bytes_as_documented() {
    assert!(matches!(
        open_err("file_100000.minor7.pf", &bound(100_000)),
        Error::UnsupportedVersion {
            major: 2,
            minor: 7,
            ..
        }
    ));
    assert!(matches!(
        open_err("file_100000.flags80.pf", &bound(100_000)),
        Error::UnknownFlags { flags: 0x80, .. }
    ));
    assert!(matches!(
        open_err("file_100000.tamper_md_padding.pf", &bound(100_000)),
        Error::NonZeroPadding { .. }
    ));
}

#[test]
fn opens_a_file_with_the_pending_write_flag_and_reports_it() {
    let pf = vec_file("file_100000.flags01.pf");
    let mut out = Vec::new();
    let info = decrypt_stream(pf, &kdk(), Some(&bound(100_000)), &mut out).unwrap();
    assert!(info.pending_write);
    assert_eq!(out, plain(100_000));
}
