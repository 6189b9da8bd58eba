//! Files written by Arca: the header fields sit exactly where VECTORS.md puts them, the reader decrypts
//! them, deterministic mode is deterministic, and random operation sequences match an in-memory model.

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use arca_pfs::{
    decrypt_bytes, encrypt_bytes, protected_size, BoundPath, Key, NodeKeys, Options, ProtectedFile,
    CHILDREN_PER_MHT, DATA_PER_MHT, MD_DATA_SIZE, NODE_SIZE,
};
use proptest::prelude::*;

fn key() -> Key {
    Key::from_bytes(std::array::from_fn(|i| i as u8))
}

fn path() -> BoundPath {
    BoundPath::new("/app/data/file.bin").unwrap()
}

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

#[test]
fn arca_written_header_has_the_documented_layout() {
    for size in [0usize, 1, 3072, 3073, 100_000, 1_048_576] {
        let pf = encrypt_bytes(&pattern(size), &key(), &path(), NodeKeys::Random).unwrap();
        assert_eq!(pf.len() as u64, protected_size(size as u64));
        assert_eq!(&pf[0..8], b"GRAFS_PF");
        assert_eq!(
            u64::from_le_bytes(pf[0..8].try_into().unwrap()),
            0x46505f5346415247
        );
        assert_eq!(pf[8], 2, "major");
        assert_eq!(pf[9], 0, "minor");
        assert_eq!(pf[58], 0, "flags: no pending write");
        assert!(pf[3943..4096].iter().all(|&b| b == 0), "padding");
        assert_ne!(&pf[10..42], &[0u8; 32], "nonce");
        assert_eq!(decrypt_bytes(&pf, &key(), &path()).unwrap(), pattern(size));
    }
}

#[test]
fn streamed_decryption_of_files_larger_than_its_buffer_matches_the_bytes_path() {
    // decrypt_stream works in 1 MiB steps aligned to nodes after the metadata node's 3072 bytes; these sizes
    // end just before, on and after those step boundaries and cross several MHT nodes.
    let step = 1 << 20;
    for size in [
        step + MD_DATA_SIZE - NODE_SIZE,
        step + MD_DATA_SIZE,
        3 * step + 12_345,
    ] {
        let plain = pattern(size);
        let pf = encrypt_bytes(&plain, &key(), &path(), NodeKeys::Random).unwrap();
        let mut out = Vec::new();
        let info = arca_pfs::decrypt_stream(&pf[..], &key(), Some(&path()), &mut out).unwrap();
        assert_eq!(info.size, size as u64);
        assert!(out == plain, "streamed plaintext of {size} bytes differs");
        assert!(decrypt_bytes(&pf, &key(), &path()).unwrap() == plain);
        // A flipped bit in the last data node is found by both paths.
        let mut bad = pf.clone();
        let at = bad.len() - NODE_SIZE / 2;
        bad[at] ^= 1;
        let err = arca_pfs::decrypt_stream(&bad[..], &key(), Some(&path()), std::io::sink()).unwrap_err();
        assert!(matches!(err, arca_pfs::Error::NodeAuth { .. }), "{err}");
        assert!(matches!(
            decrypt_bytes(&bad, &key(), &path()).unwrap_err(),
            arca_pfs::Error::NodeAuth { .. }
        ));
    }
}

#[test]
fn a_small_read_across_two_uncached_nodes_is_authenticated_in_both() {
    // A 4 KiB read at a 4 KiB offset spans two data nodes (the random-read path: one storage read of both).
    let plain = pattern(200_000);
    let pf = encrypt_bytes(&plain, &key(), &path(), NodeKeys::Random).unwrap();
    let offset = MD_DATA_SIZE + 10 * NODE_SIZE + 100;
    let read = |bytes: Vec<u8>| {
        let mut f = ProtectedFile::open(bytes, &key(), &path(), &Options::default()).unwrap();
        let mut buf = vec![0u8; NODE_SIZE];
        f.read_at(offset as u64, &mut buf).map(|n| buf[..n].to_vec())
    };
    assert!(read(pf.clone()).unwrap() == plain[offset..offset + NODE_SIZE]);
    // Data nodes 10 and 11 sit at physical nodes 12 and 13 (after the metadata and the first MHT node).
    for (logical, physical) in [(10u64, 12usize), (11, 13)] {
        let mut bad = pf.clone();
        bad[physical * NODE_SIZE + 50] ^= 1;
        match read(bad).unwrap_err() {
            arca_pfs::Error::NodeAuth { logical: l, .. } => assert_eq!(l, logical),
            e => panic!("node {logical}: {e}"),
        }
    }
}

#[test]
fn deterministic_mode_gives_equal_bytes_for_equal_inputs_only() {
    let a = encrypt_bytes(&pattern(200_000), &key(), &path(), NodeKeys::Deterministic).unwrap();
    let b = encrypt_bytes(&pattern(200_000), &key(), &path(), NodeKeys::Deterministic).unwrap();
    assert_eq!(a, b);
    let other_path = BoundPath::new("/app/data/other.bin").unwrap();
    let c = encrypt_bytes(&pattern(200_000), &key(), &other_path, NodeKeys::Deterministic).unwrap();
    assert_ne!(a[4096..8192], c[4096..8192], "the path enters every node key");
    let mut changed = pattern(200_000);
    changed[150_000] ^= 1;
    let d = encrypt_bytes(&changed, &key(), &path(), NodeKeys::Deterministic).unwrap();
    let differing = (0..a.len() / NODE_SIZE)
        .filter(|n| a[n * NODE_SIZE..][..NODE_SIZE] != d[n * NODE_SIZE..][..NODE_SIZE]);
    // metadata, root MHT, and the one data node: nothing else changes.
    assert_eq!(differing.count(), 3);
    let r1 = encrypt_bytes(&pattern(10_000), &key(), &path(), NodeKeys::Random).unwrap();
    let r2 = encrypt_bytes(&pattern(10_000), &key(), &path(), NodeKeys::Random).unwrap();
    assert_ne!(r1, r2, "random node keys by default");
}

#[test]
fn reopened_file_keeps_writes_across_flushes_and_a_v1_file_becomes_v2() {
    let v1 = std::fs::read(arca_testkit::vector("gramine-pf/file_100000.v1.pf")).unwrap();
    let kdk = Key::from_file(&arca_testkit::vector("gramine-pf/kdk.bin")).unwrap();
    let p = BoundPath::new("/app/data/file_100000.bin").unwrap();
    let mut f = ProtectedFile::open(v1, &kdk, &p, &Options::default()).unwrap();
    f.write_at(50_000, b"changed by arca").unwrap();
    let bytes = f.into_storage().unwrap();
    assert_eq!(bytes[8], 2);
    let mut expect = pattern(100_000);
    expect[50_000..50_015].copy_from_slice(b"changed by arca");
    assert_eq!(decrypt_bytes(&bytes, &kdk, &p).unwrap(), expect);
}

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, len: usize, seed: u8 },
    Read { offset: u64, len: usize },
    SetLen(u64),
    Flush,
    Reopen,
}

/// Sizes around the format's boundaries: 3072 (metadata only), 96 data nodes (one MHT node), 96·32 data
/// nodes (a second MHT level).
fn boundary_offset() -> impl Strategy<Value = u64> {
    let md = MD_DATA_SIZE as u64;
    let one_mht = md + DATA_PER_MHT * NODE_SIZE as u64;
    let two_level = md + DATA_PER_MHT * CHILDREN_PER_MHT * NODE_SIZE as u64;
    prop_oneof![
        0u64..8192,
        (md - 64)..(md + 64),
        (one_mht - 8192)..(one_mht + 8192),
        (two_level - 8192)..(two_level + 8192),
        0u64..(two_level + 200_000),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (boundary_offset(), 0usize..20_000, any::<u8>()).prop_map(|(offset, len, seed)| Op::Write { offset, len, seed }),
        3 => (boundary_offset(), 0usize..20_000).prop_map(|(offset, len)| Op::Read { offset, len }),
        1 => boundary_offset().prop_map(Op::SetLen),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_an_in_memory_model(ops in proptest::collection::vec(op(), 1..24), cache in 8usize..64) {
        let options = Options { cache_nodes: cache, ..Options::default() };
        let mut model: Vec<u8> = Vec::new();
        let mut f = ProtectedFile::create(Vec::new(), &key(), &path(), &options).unwrap();
        for op in ops {
            match op {
                Op::Write { offset, len, seed } => {
                    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
                    f.write_at(offset, &data).unwrap();
                    let end = offset as usize + len;
                    if model.len() < end { model.resize(end, 0); }
                    model[offset as usize..end].copy_from_slice(&data);
                }
                Op::Read { offset, len } => {
                    let mut buf = vec![0u8; len];
                    let n = f.read_at(offset, &mut buf).unwrap();
                    let want = model.get(offset as usize..).map_or(&[][..], |s| &s[..s.len().min(len)]);
                    prop_assert_eq!(&buf[..n], want);
                }
                Op::SetLen(len) => {
                    f.set_len(len).unwrap();
                    model.resize(len as usize, 0);
                }
                Op::Flush => f.flush().unwrap(),
                Op::Reopen => {
                    let bytes = f.into_storage().unwrap();
                    prop_assert_eq!(bytes.len() as u64, protected_size(model.len() as u64));
                    f = ProtectedFile::open(bytes, &key(), &path(), &options).unwrap();
                }
            }
            prop_assert_eq!(f.len(), model.len() as u64);
        }
        let bytes = f.into_storage().unwrap();
        prop_assert_eq!(decrypt_bytes(&bytes, &key(), &path()).unwrap(), model);
    }
}

/// Whole nodes appended past the committed end are encrypted and written at once, but only the flush commits
/// them: a file abandoned before its flush (a crash) still reads back exactly its last flushed content, and
/// after the flush the appended data reads back, in large and in small reads, before and after reopening.
#[test]
fn appended_nodes_are_unreferenced_until_the_flush_commits_them() {
    let first = pattern(100_000);
    let more: Vec<u8> = (0..1_500_000usize).map(|i| (i % 239) as u8).collect();
    let mut bytes = Vec::new();
    {
        let mut f = ProtectedFile::create(&mut bytes, &key(), &path(), &Options::default()).unwrap();
        f.write_at(0, &first).unwrap();
        f.flush().unwrap();
        f.write_at(100_000, &more).unwrap();
        // Readable before the flush, from storage (the appended nodes are not cached).
        let mut back = vec![0u8; more.len()];
        assert_eq!(f.read_at(100_000, &mut back).unwrap(), more.len());
        assert!(back == more);
        std::mem::forget(f); // a crash: no flush, no drop
    }
    assert!(
        bytes.len() as u64 > protected_size(100_000),
        "the appended nodes were written early"
    );
    assert_eq!(
        decrypt_bytes(&bytes, &key(), &path()).unwrap(),
        first,
        "the committed content only"
    );

    let mut f = ProtectedFile::open(bytes, &key(), &path(), &Options::default()).unwrap();
    f.write_at(100_000, &more).unwrap();
    let bytes = f.into_storage().unwrap();
    let mut all = first.clone();
    all.extend_from_slice(&more);
    assert_eq!(bytes.len() as u64, protected_size(all.len() as u64));
    let mut f = ProtectedFile::open(bytes, &key(), &path(), &Options::default()).unwrap();
    for (off, len) in [
        (0usize, 4096usize),
        (4096, 4096),
        (99_000, 5000),
        (500_000, 1 << 20),
        (1_599_000, 1000),
    ] {
        let mut buf = vec![0u8; len];
        assert_eq!(f.read_at(off as u64, &mut buf).unwrap(), len);
        assert!(buf == all[off..off + len], "read at {off}+{len}");
    }
}
