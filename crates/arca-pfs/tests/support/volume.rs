//! What the volume tests share: a volume directory with its counter file in a temporary directory, opened
//! under one fixed key and bound prefix, and reading a whole file back.

use std::fs;
use std::path::PathBuf;

use arca_pfs::{Error, FileCounter, Key, Options, Volume};

/// A volume directory (`vol`) and its counter file, removed with the temporary directory.
pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) counter: PathBuf,
}

/// The key every test volume is encrypted with.
pub(crate) fn key() -> Key {
    Key::from_bytes([0x42; 16])
}

/// A new, empty volume directory.
pub(crate) fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    fs::create_dir(&dir).unwrap();
    let counter = tmp.path().join("vol.counter");
    Fixture {
        dir,
        counter,
        _tmp: tmp,
    }
}

/// Opens the volume bound to `/srv/vol`, with its file counter.
pub(crate) fn open_volume(f: &Fixture) -> Result<Volume, Error> {
    Volume::open(&f.dir, &key(), "/srv/vol", Box::new(FileCounter::new(&f.counter)))
}

/// The whole plaintext of `rel`, or the error opening or reading it gave.
pub(crate) fn read_file(vol: &Volume, rel: &str) -> Result<Vec<u8>, Error> {
    let mut f = vol.open_file(rel, &Options::default())?;
    let mut buf = vec![0u8; f.len() as usize];
    let n = f.read_at(0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}
