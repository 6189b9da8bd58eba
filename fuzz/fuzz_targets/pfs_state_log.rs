//! Fuzzes the volume state's delta log (`.arca-volume.log`): the header, the record framing, each record's tag
//! and chain, the record plaintext (`parse_ops`) and the replay rule. Property: never a panic; a replay
//! leaves a state that encodes and parses back to itself; opening a volume succeeds or fails with a typed
//! error.
//!
//! The first input byte (mod 5) picks how the rest becomes a log (the harness holds the key, so it can seal what an
//! attacker cannot — the fuzzer must reach the parsing behind the tags, not only a failing tag):
//! - `0`: the bytes are the whole log (header and all; stopped by the header tag unless it authenticates);
//! - `1`: a valid header, then the bytes raw (record framing, torn records, tags, chain);
//! - `2`, `3`: the bytes split at `SEP!` into record plaintexts, each sealed and chained with the right key
//!   (`parse_ops` and replay see arbitrary plaintext); with `3` the last piece is appended raw instead;
//! - `4`: as `2`, written as the log of a real volume on disk, which is then opened with `Volume::open`
//!   (slot read, replay, narrowing of files left with two MACs, commit) and its one file opened.
//!   Slower (files, fsync): the in-memory modes carry most of the campaign.
#![no_main]

use std::path::{Path, PathBuf};

use arca_pfs::{fuzzing, FileCounter, Key, Options, Volume};
use libfuzzer_sys::fuzz_target;

const SEP: &[u8] = b"SEP!";
const PREFIX: &str = "/fuzz/vol";

fn split(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&b[..i]);
        b = &b[i + SEP.len()..];
    }
    out.push(b);
    out
}

/// A real volume (one protected file `f`, committed durably) made once: its files' bytes by name.
fn template(key: &Key) -> &'static Vec<(PathBuf, Vec<u8>)> {
    static T: std::sync::OnceLock<Vec<(PathBuf, Vec<u8>)>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let tmp = tempdir();
        let dir = tmp.path().join("vol");
        std::fs::create_dir(&dir).unwrap();
        let vol = Volume::open(&dir, key, PREFIX, Box::new(FileCounter::new(tmp.path().join("counter")))).unwrap();
        let mut f = vol.create_file("f", &Options::default()).unwrap();
        f.write_at(0, b"fuzzed volume").unwrap();
        f.flush().unwrap();
        drop(f);
        vol.sync().unwrap();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            out.push((Path::new("vol").join(e.file_name()), std::fs::read(e.path()).unwrap()));
        }
        out.push((PathBuf::from("counter"), std::fs::read(tmp.path().join("counter")).unwrap()));
        out
    })
}

/// A temporary directory in memory when the machine has `/dev/shm` (the volume `fsync`s on every commit).
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

fn open_on_disk(key: &Key, records: &[&[u8]]) {
    let tmp = tempdir();
    std::fs::create_dir(tmp.path().join("vol")).unwrap();
    for (name, bytes) in template(key) {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    let dir = tmp.path().join("vol");
    fuzzing::write_sealed_log(&dir, key, PREFIX, records, &[]).unwrap();
    let counter = Box::new(FileCounter::new(tmp.path().join("counter")));
    if let Ok(vol) = Volume::open(&dir, key, PREFIX, counter) {
        // Opening the file either succeeds or fails typed (e.g. rollback when a record moved its MAC).
        let _ = vol.open_file("f", &Options::default());
        let _ = vol.sync();
    }
}

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([7; 16]);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let log = match mode % 5 {
        0 => rest.to_vec(),
        1 => fuzzing::sealed_log(&key, &[], rest),
        2 => fuzzing::sealed_log(&key, &split(rest), &[]),
        3 => {
            let pieces = split(rest);
            let (tail, records) = pieces.split_last().unwrap();
            fuzzing::sealed_log(&key, records, tail)
        }
        _ => return open_on_disk(&key, &split(rest)),
    };
    let r = fuzzing::replay(&key, &log);
    assert!(r.round_trips, "the replayed state does not round-trip: {r:?}");
});
