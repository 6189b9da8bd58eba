//! Tamper matrix on Arca-written volumes: every attack is detected, each with its own error, and rollback
//! protection catches older copies of a file or of the whole volume once the counter has moved on.

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::fs;
use std::path::Path;

use arca_pfs::{Error, FileCounter, NodeKind, Options, Volume};

#[path = "support/volume.rs"]
mod support;
use support::{fixture, open_volume, read_file, Fixture};

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn write_file(vol: &Volume, rel: &str, data: &[u8]) {
    let mut f = vol.create_file(rel, &Options::default()).unwrap();
    f.write_at(0, data).unwrap();
    f.flush().unwrap();
}

/// A volume with two 500 kB files (1 + 2 + 123 nodes each: more than one MHT node).
fn populated() -> Fixture {
    let f = fixture();
    let vol = open_volume(&f).unwrap();
    write_file(&vol, "a.bin", &content(500_000, 1));
    write_file(&vol, "b.bin", &content(500_000, 2));
    f
}

fn flip(path: &Path, offset: u64) {
    let mut b = fs::read(path).unwrap();
    b[offset as usize] ^= 0x01;
    fs::write(path, b).unwrap();
}

#[test]
fn an_untouched_volume_reads_back() {
    let f = populated();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "a.bin").unwrap(), content(500_000, 1));
    assert_eq!(read_file(&vol, "b.bin").unwrap(), content(500_000, 2));
}

#[test]
fn a_bit_flip_in_any_node_is_detected() {
    let f = populated();
    let nodes = fs::metadata(f.dir.join("a.bin")).unwrap().len() / 4096;
    let original = fs::read(f.dir.join("a.bin")).unwrap();
    for node in 0..nodes {
        fs::write(f.dir.join("a.bin"), &original).unwrap();
        flip(&f.dir.join("a.bin"), node * 4096 + 1000);
        let vol = open_volume(&f).unwrap();
        let e = read_file(&vol, "a.bin").unwrap_err();
        match node {
            0 => assert!(matches!(e, Error::MetadataAuth { .. }), "node 0: {e}"),
            1 | 98 => assert!(
                matches!(e, Error::NodeAuth { kind: NodeKind::Mht, physical, .. } if physical == node),
                "node {node}: {e}"
            ),
            _ => assert!(
                matches!(e, Error::NodeAuth { kind: NodeKind::Data, physical, .. } if physical == node),
                "node {node}: {e}"
            ),
        }
    }
}

#[test]
fn a_truncated_file_is_detected() {
    let f = populated();
    let p = f.dir.join("a.bin");
    let len = fs::metadata(&p).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 4096)
        .unwrap();
    let vol = open_volume(&f).unwrap();
    assert!(matches!(
        read_file(&vol, "a.bin").unwrap_err(),
        Error::Truncated { .. }
    ));
}

#[test]
fn a_node_swapped_within_a_file_is_detected() {
    let f = populated();
    let p = f.dir.join("a.bin");
    let mut b = fs::read(&p).unwrap();
    let (x, y) = (5 * 4096, 6 * 4096);
    let nx = b[x..x + 4096].to_vec();
    let ny = b[y..y + 4096].to_vec();
    b[x..x + 4096].copy_from_slice(&ny);
    b[y..y + 4096].copy_from_slice(&nx);
    fs::write(&p, b).unwrap();
    let vol = open_volume(&f).unwrap();
    let e = read_file(&vol, "a.bin").unwrap_err();
    assert!(
        matches!(
            e,
            Error::NodeAuth {
                kind: NodeKind::Data,
                physical: 5,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_file_swapped_with_another_of_the_same_key_is_detected() {
    let f = populated();
    let a = fs::read(f.dir.join("a.bin")).unwrap();
    let b = fs::read(f.dir.join("b.bin")).unwrap();
    fs::write(f.dir.join("a.bin"), b).unwrap();
    fs::write(f.dir.join("b.bin"), a).unwrap();
    let vol = open_volume(&f).unwrap();
    match read_file(&vol, "a.bin").unwrap_err() {
        Error::PathMismatch { expected, found } => {
            assert_eq!(expected, "/srv/vol/a.bin");
            assert_eq!(found, "/srv/vol/b.bin");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn a_renamed_file_is_detected() {
    let f = populated();
    fs::rename(f.dir.join("a.bin"), f.dir.join("c.bin")).unwrap();
    let vol = open_volume(&f).unwrap();
    assert!(matches!(
        read_file(&vol, "c.bin").unwrap_err(),
        Error::PathMismatch { .. }
    ));
}

#[test]
fn an_older_copy_of_a_file_is_a_rollback() {
    let f = populated();
    let old = fs::read(f.dir.join("a.bin")).unwrap();
    {
        let vol = open_volume(&f).unwrap();
        let mut file = vol.open_file("a.bin", &Options::default()).unwrap();
        file.write_at(1000, b"new version").unwrap();
        file.sync().unwrap();
        drop(file);
        vol.sync().unwrap();
    }
    fs::write(f.dir.join("a.bin"), old).unwrap();
    let vol = open_volume(&f).unwrap();
    let e = read_file(&vol, "a.bin").unwrap_err();
    assert!(matches!(e, Error::Rollback { .. }), "{e}");
    assert!(e.to_string().contains("rollback"), "{e}");
    assert_eq!(
        read_file(&vol, "b.bin").unwrap(),
        content(500_000, 2),
        "other files unaffected"
    );
}

#[test]
fn an_older_copy_of_the_whole_volume_is_a_rollback() {
    let f = populated();
    let snapshot = f.dir.with_extension("snapshot");
    copy_dir(&f.dir, &snapshot);
    {
        let vol = open_volume(&f).unwrap();
        write_file(&vol, "a.bin", b"newer");
        vol.sync().unwrap();
    }
    fs::remove_dir_all(&f.dir).unwrap();
    copy_dir(&snapshot, &f.dir);
    let e = open_volume(&f).unwrap_err();
    assert!(matches!(e, Error::Rollback { .. }), "{e}");
    assert!(e.to_string().contains("rollback"), "{e}");
}

#[test]
fn a_deleted_state_is_a_rollback_once_the_counter_moved() {
    let f = populated();
    for slot in [arca_pfs::STATE_FILE, arca_pfs::STATE_FILE_B] {
        let _ = fs::remove_file(f.dir.join(slot));
    }
    assert!(matches!(open_volume(&f).unwrap_err(), Error::Rollback { .. }));
}

#[test]
fn a_file_copied_in_from_elsewhere_is_not_recorded() {
    let f = populated();
    let g = fixture();
    // Same key, same bound prefix, but another volume: this volume's state does not know the file.
    let other = open_volume(&g).unwrap();
    write_file(&other, "c.bin", b"injected");
    fs::copy(g.dir.join("c.bin"), f.dir.join("c.bin")).unwrap();
    let vol = open_volume(&f).unwrap();
    assert!(matches!(
        read_file(&vol, "c.bin").unwrap_err(),
        Error::UnrecordedFile { .. }
    ));
}

#[test]
fn an_interrupted_commit_is_completed_on_open() {
    let f = populated();
    open_volume(&f).unwrap().sync().unwrap();
    let before = FileCounter::new(&f.counter);
    let mut c = before;
    let v = arca_pfs::MonotonicCounter::value(&mut c).unwrap();
    // Simulate a crash after the state was written but before the counter advanced.
    fs::write(&f.counter, (v - 1).to_le_bytes()).unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(vol.version(), v);
    assert_eq!(arca_pfs::MonotonicCounter::value(&mut c).unwrap(), v);
}

#[test]
fn a_torn_state_slot_falls_back_to_the_other_slot() {
    let f = populated();
    open_volume(&f).unwrap().sync().unwrap();
    // Both slots hold the synced state; a write torn in one of them must not lose the volume.
    flip(&f.dir.join(arca_pfs::STATE_FILE), 100);
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "a.bin").unwrap(), content(500_000, 1));
    assert_eq!(read_file(&vol, "b.bin").unwrap(), content(500_000, 2));
}

#[test]
fn changes_flushed_but_not_synced_survive_a_crash_and_the_counter_moves_on_sync_only() {
    let f = fixture();
    let vol = open_volume(&f).unwrap();
    let synced = vol.version();
    write_file(&vol, "a.bin", &content(10_000, 3));
    assert_eq!(vol.version(), synced, "a flush does not advance the counter");
    drop(vol); // no sync: what a kill -9 leaves
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "a.bin").unwrap(), content(10_000, 3));
    assert_eq!(vol.version(), synced + 1, "opening completes the pending commit");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn small_reads_across_two_uncached_nodes_read_right_and_detect_a_flipped_bit() {
    let f = populated();
    let vol = open_volume(&f).unwrap();
    let want = content(500_000, 1);
    let mut file = vol.open_file("a.bin", &Options::default()).unwrap();
    // 4 KiB reads at 4 KiB offsets: each spans two data nodes (the metadata node holds the first 3072 bytes).
    for k in [1u64, 7, 50, 96, 97, 120] {
        let mut buf = vec![0u8; 4096];
        let n = file.read_at(k * 4096, &mut buf).unwrap();
        let end = ((k * 4096) as usize + n).min(want.len());
        assert_eq!(&buf[..n], &want[(k * 4096) as usize..end], "read at {}", k * 4096);
    }
    drop(file);
    // Data node 10 is physical node 12 (metadata, MHT root before it); a read at 11·4096 spans nodes 10 and 11.
    flip(&f.dir.join("a.bin"), 12 * 4096 + 7);
    let vol = open_volume(&f).unwrap();
    let mut file = vol.open_file("a.bin", &Options::default()).unwrap();
    let mut buf = vec![0u8; 4096];
    let e = file.read_at(11 * 4096, &mut buf).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NodeAuth {
                kind: NodeKind::Data,
                logical: 10,
                physical: 12,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(buf, vec![0u8; 4096], "no plaintext handed out on failure");
}
