//! Fuzzes the protected-file parser: arbitrary bytes opened as a protected file (header, metadata, node
//! reads), then read in full, then (if it opened) written and truncated. Also opens mutations of a real
//! Arca-written file, whose metadata authenticates, so the fuzzer reaches the MHT and data-node paths.
#![no_main]

use arca_pfs::{BoundPath, Key, NodeKeys, Options, ProtectedFile};
use libfuzzer_sys::fuzz_target;

fn exercise(bytes: Vec<u8>, key: &Key, path: &BoundPath) {
    let options = Options { cache_nodes: 16, ..Options::default() };
    let opened = ProtectedFile::open(bytes.clone(), key, path, &options);
    let _ = ProtectedFile::open_any_path(bytes, key, &options);
    if let Ok(mut f) = opened {
        let mut buf = vec![0u8; 8192];
        let mut off = 0u64;
        while let Ok(n) = f.read_at(off, &mut buf) {
            if n == 0 {
                break;
            }
            off += n as u64;
        }
        let _ = f.write_at(5000, b"fuzz");
        let _ = f.set_len(off / 2);
        let _ = f.flush();
    }
}

/// A valid Arca-written file (1 metadata + 1 MHT + 3 data nodes), made once.
fn valid_file(key: &Key, path: &BoundPath) -> &'static Vec<u8> {
    static FILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let plain: Vec<u8> = (0..(3072 + 3 * 4096) as u32).map(|i| i as u8).collect();
        arca_pfs::encrypt_bytes(&plain, key, path, NodeKeys::Deterministic).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let key = Key::from_bytes([7; 16]);
    let path = BoundPath::new("/fuzz/file").unwrap();
    // 1. The input as a whole file.
    exercise(data.to_vec(), &key, &path);
    // 2. A valid 3-data-node file with the input XORed in (at an offset chosen by the first two bytes), so
    //    the metadata often authenticates only when untouched and nodes deeper in the file get mutated.
    if data.len() > 2 {
        let mut pf = valid_file(&key, &path).clone();
        let at = (u16::from_le_bytes([data[0], data[1]]) as usize * 7) % pf.len();
        for (i, b) in data[2..].iter().enumerate() {
            if let Some(x) = pf.get_mut(at + i) {
                *x ^= b;
            }
        }
        exercise(pf, &key, &path);
    }
});
