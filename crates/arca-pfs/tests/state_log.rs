//! The volume state's delta log (`.arca-volume.log`): changes flushed between durable commits are replayed
//! after a crash; a torn, edited, reordered, truncated or foreign log never makes a file acceptable that no
//! change recorded — replay stops at the first bad record and the files it would have covered are refused
//! as rollbacks; and rollback of the whole volume is still detected once the counter moved on.

#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::fs;
use std::path::{Path, PathBuf};

use arca_pfs::{Error, FileCounter, MonotonicCounter, Options, Volume, STATE_LOG};

#[path = "support/volume.rs"]
mod support;
use support::{fixture, key, open_volume, read_file, Fixture};

/// Header of the log: magic, base version, base sequence, base digest, log id, tag.
const HEADER: usize = 8 + 8 + 8 + 32 + 16 + 16;

fn counter(f: &Fixture) -> u64 {
    FileCounter::new(&f.counter).value().unwrap()
}

/// Creates or overwrites `rel` from offset 0 with `data` (never shorter than what it replaces: a truncation
/// is a flush of its own), flushed once (as `close` does) but not synced.
fn write_file(vol: &Volume, rel: &str, data: &[u8]) {
    let mut f = match vol.open_file(rel, &Options::default()) {
        Ok(f) => f,
        Err(_) => vol.create_file(rel, &Options::default()).unwrap(),
    };
    f.write_at(0, data).unwrap();
    f.flush().unwrap();
}

fn log_path(f: &Fixture) -> PathBuf {
    f.dir.join(STATE_LOG)
}

/// The byte ranges of the log's records (length prefix, ciphertext, tag).
fn records(path: &Path) -> Vec<std::ops::Range<usize>> {
    let b = fs::read(path).unwrap();
    let mut at = HEADER;
    let mut out = vec![];
    while at < b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        out.push(at..at + 4 + len + 16);
        at += 4 + len + 16;
    }
    out
}

/// A synced volume with `old.bin` ("v1", "v2", "v3" for files 1..=3), then three unsynced rewrites to
/// "new" — one log record each, in the order 1, 2, 3 — and a "crash" (the volume dropped without sync).
fn three_unsynced_rewrites() -> Fixture {
    let f = fixture();
    let vol = open_volume(&f).unwrap();
    for i in 1..=3 {
        write_file(&vol, &format!("f{i}"), format!("v{i}").as_bytes());
    }
    vol.sync().unwrap();
    for i in 1..=3 {
        write_file(&vol, &format!("f{i}"), format!("new{i}").as_bytes());
    }
    drop(vol); // no sync: what a kill -9 leaves
    assert_eq!(records(&log_path(&f)).len(), 3, "one record per flush");
    f
}

fn assert_rollback(r: Result<Vec<u8>, Error>) {
    match r {
        Err(e @ Error::Rollback { .. }) => assert!(e.to_string().contains("rollback"), "{e}"),
        other => panic!("expected a rollback, got {other:?}"),
    }
}

#[test]
fn flushes_between_durable_commits_append_to_the_log_instead_of_rewriting_the_state() {
    let f = fixture();
    let vol = open_volume(&f).unwrap();
    vol.sync().unwrap();
    let slot = fs::read(f.dir.join(arca_pfs::STATE_FILE)).unwrap();
    let slot_b = fs::read(f.dir.join(arca_pfs::STATE_FILE_B)).unwrap();
    for i in 0..20 {
        write_file(&vol, &format!("f{i:02}"), b"data");
    }
    assert_eq!(fs::read(f.dir.join(arca_pfs::STATE_FILE)).unwrap(), slot);
    assert_eq!(fs::read(f.dir.join(arca_pfs::STATE_FILE_B)).unwrap(), slot_b);
    assert_eq!(records(&log_path(&f)).len(), 20);
    let v = vol.version();
    vol.sync().unwrap();
    assert_eq!(vol.version(), v + 1);
    assert!(
        fs::read(f.dir.join(arca_pfs::STATE_FILE)).unwrap() != slot,
        "a durable commit compacts"
    );
}

#[test]
fn the_log_is_replayed_after_a_crash_and_compacted_into_a_durable_commit() {
    let f = three_unsynced_rewrites();
    let before = counter(&f);
    let vol = open_volume(&f).unwrap();
    for i in 1..=3 {
        assert_eq!(
            read_file(&vol, &format!("f{i}")).unwrap(),
            format!("new{i}").as_bytes()
        );
    }
    assert_eq!(counter(&f), before + 1, "opening completes the commit");
    assert_eq!(vol.version(), before + 1);
    drop(vol);
    // The replayed log now extends an older slot and is ignored; everything is in the slots.
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "f3").unwrap(), b"new3");
    assert_eq!(counter(&f), before + 1, "nothing left to complete");
}

#[test]
fn a_torn_last_record_is_dropped_and_its_file_refused_as_a_rollback() {
    let f = three_unsynced_rewrites();
    let log = log_path(&f);
    let len = fs::metadata(&log).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "f1").unwrap(), b"new1");
    assert_eq!(read_file(&vol, "f2").unwrap(), b"new2");
    assert_rollback(read_file(&vol, "f3"));
}

#[test]
fn an_edited_record_stops_the_replay_there() {
    let f = three_unsynced_rewrites();
    let log = log_path(&f);
    let r = records(&log);
    let mut b = fs::read(&log).unwrap();
    b[r[1].start + 6] ^= 0x01; // a ciphertext byte of the second record
    fs::write(&log, b).unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "f1").unwrap(), b"new1");
    assert_rollback(read_file(&vol, "f2"));
    assert_rollback(read_file(&vol, "f3"));
}

#[test]
fn reordered_records_do_not_chain() {
    let f = three_unsynced_rewrites();
    let log = log_path(&f);
    let r = records(&log);
    assert_eq!(r[1].len(), r[2].len());
    let b = fs::read(&log).unwrap();
    let mut swapped = b[..r[1].start].to_vec();
    swapped.extend_from_slice(&b[r[2].clone()]);
    swapped.extend_from_slice(&b[r[1].clone()]);
    fs::write(&log, swapped).unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "f1").unwrap(), b"new1");
    assert_rollback(read_file(&vol, "f2"));
    assert_rollback(read_file(&vol, "f3"));
}

#[test]
fn a_record_cut_out_of_the_middle_breaks_the_chain() {
    let f = three_unsynced_rewrites();
    let log = log_path(&f);
    let r = records(&log);
    let b = fs::read(&log).unwrap();
    let mut cut = b[..r[0].start].to_vec();
    cut.extend_from_slice(&b[r[1].start..]);
    fs::write(&log, cut).unwrap();
    let vol = open_volume(&f).unwrap();
    for i in 1..=3 {
        assert_rollback(read_file(&vol, &format!("f{i}")));
    }
}

#[test]
fn a_deleted_log_brings_back_the_last_durable_state_whose_files_are_refused() {
    let f = three_unsynced_rewrites();
    fs::remove_file(log_path(&f)).unwrap();
    let vol = open_volume(&f).unwrap();
    for i in 1..=3 {
        assert_rollback(read_file(&vol, &format!("f{i}")));
    }
}

#[test]
fn a_log_from_before_the_last_durable_commit_is_ignored() {
    let f = three_unsynced_rewrites();
    let old_log = fs::read(log_path(&f)).unwrap();
    {
        let vol = open_volume(&f).unwrap(); // replays and compacts
        write_file(&vol, "f1", b"newer1");
        vol.sync().unwrap();
    }
    // The old log's records (f1 → "new1", ...) authenticate under their own header, but it names an older slot.
    fs::write(log_path(&f), old_log).unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "f1").unwrap(), b"newer1");
    assert_eq!(read_file(&vol, "f2").unwrap(), b"new2");
}

#[test]
fn a_log_from_another_volume_with_the_same_key_is_ignored() {
    let f = three_unsynced_rewrites();
    let g = three_unsynced_rewrites();
    fs::copy(log_path(&g), log_path(&f)).unwrap();
    let vol = open_volume(&f).unwrap();
    for i in 1..=3 {
        assert_rollback(read_file(&vol, &format!("f{i}")));
    }
}

#[test]
fn a_copy_of_the_volume_with_its_log_is_a_rollback_once_the_counter_moved_on() {
    let f = three_unsynced_rewrites();
    let snapshot = f.dir.with_extension("snapshot");
    fs::create_dir(&snapshot).unwrap();
    for e in fs::read_dir(&f.dir).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), snapshot.join(e.file_name())).unwrap();
    }
    {
        let vol = open_volume(&f).unwrap();
        write_file(&vol, "f2", b"later");
        vol.sync().unwrap();
    }
    fs::remove_dir_all(&f.dir).unwrap();
    fs::rename(&snapshot, &f.dir).unwrap();
    let e = open_volume(&f).unwrap_err();
    assert!(matches!(e, Error::Rollback { .. }), "{e}");
}

#[test]
fn a_file_a_crash_left_at_its_previous_version_stays_readable_after_later_changes() {
    let f = fixture();
    let vol = open_volume(&f).unwrap();
    write_file(&vol, "a", b"old");
    vol.sync().unwrap();
    let old = fs::read(f.dir.join("a")).unwrap();
    write_file(&vol, "a", b"new");
    drop(vol);
    // A crash after the record was appended but before the file's nodes were written.
    fs::write(f.dir.join("a"), old).unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "a").unwrap(), b"old");
    write_file(&vol, "b", b"other");
    drop(vol);
    let vol = open_volume(&f).unwrap();
    assert_eq!(
        read_file(&vol, "a").unwrap(),
        b"old",
        "narrowed to the version on disk"
    );
    assert_eq!(read_file(&vol, "b").unwrap(), b"other");
}

#[test]
fn a_long_log_is_compacted_and_stays_bounded() {
    let f = fixture();
    let vol = open_volume(&f).unwrap();
    vol.sync().unwrap();
    let mut longest = 0;
    for i in 0..5000u32 {
        write_file(&vol, "hot", &i.to_le_bytes());
        longest = longest.max(fs::metadata(log_path(&f)).unwrap().len());
    }
    assert!(longest < 300 * 1024, "the log grew to {longest} bytes");
    drop(vol);
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "hot").unwrap(), 4999u32.to_le_bytes());
}

/// The plaintext of one log record (see `encode_ops` in rollback.rs): one "set" of `rel` to `macs`.
fn set_record(rel: &str, macs: &[[u8; 16]]) -> Vec<u8> {
    let mut r = 1u32.to_le_bytes().to_vec();
    r.push(1);
    r.extend_from_slice(&(rel.len() as u32).to_le_bytes());
    r.extend_from_slice(rel.as_bytes());
    r.push(macs.len() as u8);
    for m in macs {
        r.extend_from_slice(m);
    }
    r
}

#[test]
fn an_authenticated_record_that_does_not_parse_stops_the_replay_and_the_volume_still_opens() {
    let f = fixture();
    let key = key();
    let vol = open_volume(&f).unwrap();
    write_file(&vol, "kept", b"durable");
    vol.sync().unwrap();
    drop(vol);
    let moved = set_record("kept", &[[9; 16]]);
    // Sealed with the right key and chained: only the plaintext is wrong (a count of 7 changes, none there),
    // so the well-formed record after it is dropped too.
    arca_pfs::fuzzing::write_sealed_log(&f.dir, &key, "/srv/vol", &[&7u32.to_le_bytes(), &moved], &[])
        .unwrap();
    let vol = open_volume(&f).unwrap();
    assert_eq!(read_file(&vol, "kept").unwrap(), b"durable");
}

#[test]
fn a_logged_path_that_leaves_the_volume_is_never_opened_to_narrow_it() {
    let f = fixture();
    let key = key();
    let vol = open_volume(&f).unwrap();
    vol.sync().unwrap();
    drop(vol);
    // A protected file beside the volume, bound where "../outside" would bind.
    let outside = f.dir.parent().unwrap().join("outside");
    let bound = arca_pfs::BoundPath::in_mount("/srv/vol", "../outside").unwrap();
    let storage = arca_pfs::HostFile::open(&outside, true).unwrap();
    let mut pf = arca_pfs::ProtectedFile::create(storage, &key, &bound, &Options::default()).unwrap();
    pf.write_at(0, b"not the volume's").unwrap();
    pf.flush().unwrap();
    let actual = pf.root_mac();
    drop(pf);
    let other = [7u8; 16];
    let rec = set_record("../outside", &[actual, other]);
    arca_pfs::fuzzing::write_sealed_log(&f.dir, &key, "/srv/vol", &[&rec], &[]).unwrap();
    let vol = open_volume(&f).unwrap();
    // Narrowing would have read the host file outside the volume and kept only `actual`; it was left alone.
    vol.check("../outside", &other).unwrap();
    vol.check("../outside", &actual).unwrap();
}
