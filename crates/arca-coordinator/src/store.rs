//! Durable storage behind one trait, so that a replicated store (etcd) can replace the file store.
//!
//! A commit is: append the new audit lines, then replace the sealed state atomically. The sealed state is the
//! commit point — it records how many audit lines are committed — so a crash between the two steps leaves
//! audit lines beyond the committed count, which [`Store::open_audit`] drops; a log with fewer lines than the
//! state commits was truncated, and is refused.
//!
//! The file store replaces the state without a rename: it keeps **two state slots** (`state.0`, `state.1`)
//! and writes each commit in place over the slot that does *not* hold the newest state, as one record
//! `magic ‖ sequence ‖ length ‖ SHA-256 ‖ sealed state`, then `fdatasync`s it. A reader takes the valid
//! record with the highest sequence. This is as atomic as temp file + rename: a crash during the write can
//! only damage the slot being written, whose record then fails its length or checksum and is skipped,
//! while the other slot still holds the newest state that was answered; a commit is acknowledged only
//! after its `fdatasync`. A commit costs two flushes (audit log, slot) instead of the four of temp file +
//! rename (audit log, temp file, rename, directory), and an overwrite in place changes no directory. Slot
//! files are created the old way (temp file, fsync, rename, fsync directory), so a slot file that exists
//! was once complete: when neither slot holds a valid record the store is damaged and refused, never taken
//! for a new one.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::crypto::sha256;
use crate::Error;

/// Durable storage for the sealed state and the audit log.
pub trait Store: Send + Sync + 'static {
    /// The committed sealed state, or `None` for a new store.
    fn load_state(&self) -> Result<Option<Vec<u8>>, Error>;
    /// Reads the audit log given that `committed` lines are committed: returns exactly those lines (dropping
    /// lines of an interrupted commit) or an error when fewer exist (truncation).
    fn open_audit(&self, committed: u64) -> Result<Vec<String>, Error>;
    /// Appends `lines` (which follow the `committed` lines already stored), then replaces the sealed state.
    /// Both are durable when this returns.
    fn commit(&self, sealed_state: &[u8], committed: u64, lines: &[String]) -> Result<(), Error>;
    /// Audit lines from index `from` (0-based) up to `to` (exclusive).
    fn read_audit(&self, from: u64, to: u64) -> Result<Vec<String>, Error>;
    /// Where the data lives, for logs.
    fn describe(&self) -> String;
}

/// A state slot record's first bytes.
const SLOT_MAGIC: &[u8; 8] = b"ARCASLT1";
/// Magic, sequence (u64 LE), payload length (u64 LE), SHA-256 of magic ‖ sequence ‖ length ‖ payload.
const SLOT_HEADER: usize = 8 + 8 + 8 + 32;

/// One state slot record: its sequence number and the sealed state it holds.
struct SlotRecord {
    seq: u64,
    payload: Vec<u8>,
}

/// Encodes a slot record.
fn slot_record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let seq = seq.to_le_bytes();
    let digest = sha256(&[SLOT_MAGIC, &seq, &len, payload]);
    let mut out = Vec::with_capacity(SLOT_HEADER + payload.len());
    for part in [SLOT_MAGIC.as_slice(), &seq, &len, &digest, payload] {
        out.extend_from_slice(part);
    }
    out
}

/// Decodes a slot file's record; `None` when it is torn or damaged (short, wrong magic, length beyond the
/// file, checksum mismatch). Bytes after the record (left by a longer earlier record) are ignored.
fn parse_slot(bytes: &[u8]) -> Option<SlotRecord> {
    let (header, rest) = bytes.split_at_checked(SLOT_HEADER)?;
    let (magic, header) = header.split_at(8);
    let (seq, header) = header.split_at(8);
    let (len, digest) = header.split_at(8);
    if magic != SLOT_MAGIC {
        return None;
    }
    let payload = rest.get(..usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?)?;
    if sha256(&[magic, seq, len, payload]).as_slice() != digest {
        return None;
    }
    Some(SlotRecord {
        seq: u64::from_le_bytes(seq.try_into().ok()?),
        payload: payload.to_vec(),
    })
}

/// The file store: the sealed state in two slots, `DIR/state.0` and `DIR/state.1` (each commit overwrites
/// the slot not holding the newest state, in place, and `fdatasync`s it; see the module doc), and
/// `DIR/audit.log` (JSON lines, appended and `fdatasync`ed before the state). The `DIR/state.sealed` of
/// earlier versions is read while no slot exists, and removed once the first slot is written.
pub struct FileStore {
    dir: PathBuf,
    /// Byte length of the committed part of the audit log, and its line count.
    audit_end: Mutex<(u64, u64)>,
    /// The sequence number of the newest state record (0: none yet); record `n` lives in slot `n % 2`.
    seq: Mutex<u64>,
}

/// What the slots hold: the newest valid record, and whether any slot file exists.
struct Slots {
    newest: Option<SlotRecord>,
    any_file: bool,
}

impl FileStore {
    /// A store in `dir` (created if needed, mode 0700).
    pub fn open(dir: &Path) -> Result<FileStore, Error> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io("creating the data directory", dir))?;
        let store = FileStore {
            dir: dir.to_path_buf(),
            audit_end: Mutex::new((0, 0)),
            seq: Mutex::new(0),
        };
        let newest = store.read_slots()?.newest.map_or(0, |r| r.seq);
        *store
            .seq
            .lock()
            .map_err(|_| Error::Poisoned("state slot lock".into()))? = newest;
        Ok(store)
    }

    fn slot_path(&self, slot: u64) -> PathBuf {
        self.dir.join(format!("state.{slot}"))
    }

    /// The state file of earlier versions (one file, replaced by rename).
    fn legacy_state_path(&self) -> PathBuf {
        self.dir.join("state.sealed")
    }

    /// The audit log's path.
    pub fn audit_path(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io("syncing the data directory", &self.dir))
    }

    /// Reads both slots and keeps the valid record with the highest sequence.
    fn read_slots(&self) -> Result<Slots, Error> {
        let mut out = Slots {
            newest: None,
            any_file: false,
        };
        for slot in 0..2u64 {
            let path = self.slot_path(slot);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Io {
                        step: "reading a state slot",
                        path,
                        source: e,
                    })
                }
            };
            out.any_file = true;
            match parse_slot(&bytes) {
                Some(r) if r.seq % 2 == slot => {
                    if out.newest.as_ref().is_none_or(|n| r.seq > n.seq) {
                        out.newest = Some(r);
                    }
                }
                _ => tracing::warn!(
                    "state slot {} holds no valid record (a commit was interrupted while writing it); \
                     the other slot holds the newest committed state",
                    path.display()
                ),
            }
        }
        Ok(out)
    }

    /// Writes record `seq` into slot `seq % 2`: in place and `fdatasync`ed when the slot file exists,
    /// otherwise created whole (temp file, fsync, rename, fsync directory).
    fn write_slot(&self, seq: u64, sealed_state: &[u8]) -> Result<(), Error> {
        let path = self.slot_path(seq % 2);
        let record = slot_record(seq, sealed_state);
        match OpenOptions::new().write(true).open(&path) {
            Ok(f) => {
                f.write_all_at(&record, 0)
                    .map_err(Error::io("writing the state slot", &path))?;
                f.sync_data().map_err(Error::io("syncing the state slot", &path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let tmp = self.dir.join("state.tmp");
                {
                    let mut f =
                        File::create(&tmp).map_err(Error::io("creating the temporary state file", &tmp))?;
                    f.write_all(&record)
                        .map_err(Error::io("writing the temporary state file", &tmp))?;
                    f.sync_all()
                        .map_err(Error::io("syncing the temporary state file", &tmp))?;
                }
                std::fs::rename(&tmp, &path).map_err(Error::io("creating the state slot", &path))?;
                let legacy = self.legacy_state_path();
                if legacy.exists() {
                    std::fs::remove_file(&legacy).map_err(Error::io(
                        "removing the state file of an earlier version",
                        &legacy,
                    ))?;
                }
                self.sync_dir()
            }
            Err(e) => Err(Error::Io {
                step: "opening the state slot",
                path,
                source: e,
            }),
        }
    }
}

impl Store for FileStore {
    fn load_state(&self) -> Result<Option<Vec<u8>>, Error> {
        let slots = self.read_slots()?;
        if let Some(r) = slots.newest {
            *self
                .seq
                .lock()
                .map_err(|_| Error::Poisoned("state slot lock".into()))? = r.seq;
            return Ok(Some(r.payload));
        }
        if slots.any_file {
            return Err(Error::Corrupt(format!(
                "neither state slot in {} holds a valid record: the stored state is damaged",
                self.dir.display()
            )));
        }
        let path = self.legacy_state_path();
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                step: "reading the sealed state",
                path,
                source: e,
            }),
        }
    }

    fn open_audit(&self, committed: u64) -> Result<Vec<String>, Error> {
        let path = self.audit_path();
        let file = match File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::Io {
                    step: "opening the audit log",
                    path,
                    source: e,
                })
            }
        };
        let mut lines = Vec::new();
        let mut end = 0u64;
        if let Some(f) = file {
            let mut reader = BufReader::new(f);
            while (lines.len() as u64) < committed {
                let mut line = String::new();
                let n = reader
                    .read_line(&mut line)
                    .map_err(Error::io("reading the audit log", &path))?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                end += n as u64;
                line.pop();
                lines.push(line);
            }
        }
        if (lines.len() as u64) < committed {
            return Err(Error::AuditTampered(format!(
                "{} holds {} complete entries but the sealed state commits {committed}: the log was truncated",
                path.display(),
                lines.len()
            )));
        }
        // Drop what an interrupted commit appended after the committed lines.
        if committed > 0 || path.exists() {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(Error::io("opening the audit log", &path))?;
            if f.metadata()
                .map_err(Error::io("reading the audit log size", &path))?
                .len()
                != end
            {
                f.set_len(end)
                    .map_err(Error::io("dropping uncommitted audit entries", &path))?;
                f.sync_all().map_err(Error::io("syncing the audit log", &path))?;
            }
        }
        *self
            .audit_end
            .lock()
            .map_err(|_| Error::Poisoned("audit lock".into()))? = (end, committed);
        Ok(lines)
    }

    fn commit(&self, sealed_state: &[u8], committed: u64, lines: &[String]) -> Result<(), Error> {
        let mut end = self
            .audit_end
            .lock()
            .map_err(|_| Error::Poisoned("audit lock".into()))?;
        if end.1 != committed {
            return Err(Error::Corrupt(format!(
                "commit after audit entry {committed}, but the store holds {} committed entries",
                end.1
            )));
        }
        let mut new_end = *end;
        if !lines.is_empty() {
            let path = self.audit_path();
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(Error::io("opening the audit log", &path))?;
            // A failed earlier attempt may have left bytes after the committed end.
            f.set_len(end.0)
                .map_err(Error::io("trimming the audit log", &path))?;
            f.seek(SeekFrom::Start(end.0))
                .map_err(Error::io("seeking in the audit log", &path))?;
            let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
            for l in lines {
                buf.extend_from_slice(l.as_bytes());
                buf.push(b'\n');
            }
            f.write_all(&buf)
                .map_err(Error::io("appending to the audit log", &path))?;
            f.sync_data().map_err(Error::io("syncing the audit log", &path))?;
            if end.0 == 0 {
                self.sync_dir()?;
            }
            new_end = (end.0 + buf.len() as u64, end.1 + lines.len() as u64);
        }
        let mut seq = self
            .seq
            .lock()
            .map_err(|_| Error::Poisoned("state slot lock".into()))?;
        self.write_slot(*seq + 1, sealed_state)?;
        *seq += 1;
        *end = new_end;
        Ok(())
    }

    fn read_audit(&self, from: u64, to: u64) -> Result<Vec<String>, Error> {
        let path = self.audit_path();
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::Io {
                    step: "opening the audit log",
                    path,
                    source: e,
                })
            }
        };
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let i = i as u64;
            if i >= to {
                break;
            }
            let line = line.map_err(Error::io("reading the audit log", &path))?;
            if i >= from {
                out.push(line);
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("file store {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert!(s.load_state().unwrap().is_none());
        assert!(s.open_audit(0).unwrap().is_empty());
        s.commit(b"one", 0, &lines(&["a", "b"])).unwrap();
        s.commit(b"two", 2, &lines(&["c"])).unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load_state().unwrap().unwrap(), b"two");
        assert_eq!(s.open_audit(3).unwrap(), lines(&["a", "b", "c"]));
        assert_eq!(s.read_audit(1, 3).unwrap(), lines(&["b", "c"]));
    }

    #[test]
    fn drops_audit_lines_of_an_interrupted_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.commit(b"one", 0, &lines(&["a"])).unwrap();
        // The process died after appending, before replacing the state: a whole line and a partial one.
        let mut f = OpenOptions::new().append(true).open(s.audit_path()).unwrap();
        f.write_all(b"b\nhalf").unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.open_audit(1).unwrap(), lines(&["a"]));
        s.commit(b"two", 1, &lines(&["c"])).unwrap();
        assert_eq!(std::fs::read_to_string(s.audit_path()).unwrap(), "a\nc\n");
    }

    /// The state a store opened afresh on `dir` loads.
    fn reopened_state(dir: &Path) -> Vec<u8> {
        FileStore::open(dir).unwrap().load_state().unwrap().unwrap()
    }

    /// Overwrites the start of slot file `slot` with `bytes`, in place, as an interrupted write would.
    fn overwrite_start(dir: &Path, slot: u64, bytes: &[u8]) {
        let f = OpenOptions::new()
            .write(true)
            .open(dir.join(format!("state.{slot}")))
            .unwrap();
        f.write_all_at(bytes, 0).unwrap();
    }

    #[test]
    fn a_commit_torn_at_any_byte_leaves_the_last_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.commit(b"first state", 0, &[]).unwrap();
        s.commit(b"second state, longer than the first", 0, &[]).unwrap();
        s.commit(b"third", 0, &[]).unwrap();
        // The fourth commit (sequence 4) goes over slot 0, which holds the second state; its payload differs
        // from the old one at every byte, so no cut leaves a complete record by coincidence.
        let next = slot_record(4, b"FOURTH-STATE-4");
        let before = std::fs::read(dir.path().join("state.0")).unwrap();
        for cut in 0..next.len() {
            std::fs::write(dir.path().join("state.0"), &before).unwrap();
            overwrite_start(dir.path(), 0, &next[..cut]);
            assert_eq!(reopened_state(dir.path()), b"third", "cut at byte {cut}");
        }
        overwrite_start(dir.path(), 0, &next);
        assert_eq!(reopened_state(dir.path()), b"FOURTH-STATE-4");
    }

    #[test]
    fn the_next_commit_after_a_torn_write_reuses_the_damaged_slot() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.commit(b"one", 0, &[]).unwrap();
        s.commit(b"two", 0, &[]).unwrap();
        // An interrupted third commit left half a record in slot 1 (which held "one").
        overwrite_start(dir.path(), 1, &slot_record(3, b"three")[..30]);
        let s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load_state().unwrap().unwrap(), b"two");
        s.commit(b"three again", 0, &[]).unwrap();
        s.commit(b"four", 0, &[]).unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load_state().unwrap().unwrap(), b"four");
        // A shorter record over a longer one: the stale tail is not part of the record.
        s.commit(b"5", 0, &[]).unwrap();
        assert_eq!(reopened_state(dir.path()), b"5");
    }

    #[test]
    fn refuses_slots_that_both_fail_their_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.commit(b"one", 0, &[]).unwrap();
        s.commit(b"two", 0, &[]).unwrap();
        for slot in 0..2 {
            let path = dir.path().join(format!("state.{slot}"));
            let mut b = std::fs::read(&path).unwrap();
            *b.last_mut().unwrap() ^= 1;
            std::fs::write(&path, b).unwrap();
        }
        let err = FileStore::open(dir.path()).unwrap().load_state().unwrap_err();
        assert!(matches!(err, Error::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("neither state slot"), "{err}");
    }

    #[test]
    fn reads_the_state_file_of_earlier_versions_until_the_first_commit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.sealed"), b"old format").unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert_eq!(s.load_state().unwrap().unwrap(), b"old format");
        s.commit(b"new", 0, &[]).unwrap();
        assert!(!dir.path().join("state.sealed").exists());
        assert_eq!(reopened_state(dir.path()), b"new");
    }

    #[test]
    fn refuses_a_truncated_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.commit(b"one", 0, &lines(&["a", "b"])).unwrap();
        std::fs::write(s.audit_path(), "a\n").unwrap();
        let err = FileStore::open(dir.path()).unwrap().open_audit(2).unwrap_err();
        assert!(matches!(err, Error::AuditTampered(_)), "{err}");
    }
}
