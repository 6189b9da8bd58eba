//! Durable storage behind one trait, so that a replicated store (etcd) can replace the file store.
//!
//! A commit is: append the new audit lines, then replace the sealed state atomically. The sealed state is the
//! commit point — it records how many audit lines are committed — so a crash between the two steps leaves
//! audit lines beyond the committed count, which [`Store::open_audit`] drops; a log with fewer lines than the
//! state commits was truncated, and is refused.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// The file store: `DIR/state.sealed` (replaced atomically: temp file, fsync, rename, fsync directory) and
/// `DIR/audit.log` (JSON lines, appended and fsynced).
pub struct FileStore {
    dir: PathBuf,
    /// Byte length of the committed part of the audit log, and its line count.
    audit_end: Mutex<(u64, u64)>,
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
        Ok(FileStore {
            dir: dir.to_path_buf(),
            audit_end: Mutex::new((0, 0)),
        })
    }

    fn state_path(&self) -> PathBuf {
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
}

impl Store for FileStore {
    fn load_state(&self) -> Result<Option<Vec<u8>>, Error> {
        let path = self.state_path();
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
        let path = self.state_path();
        let tmp = self.dir.join("state.sealed.tmp");
        {
            let mut f = File::create(&tmp).map_err(Error::io("creating the temporary state file", &tmp))?;
            f.write_all(sealed_state)
                .map_err(Error::io("writing the temporary state file", &tmp))?;
            f.sync_all()
                .map_err(Error::io("syncing the temporary state file", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(Error::io("replacing the sealed state", &path))?;
        self.sync_dir()?;
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
