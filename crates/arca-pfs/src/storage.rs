//! Where a protected file's bytes live: the [`Storage`] trait and its implementations (a host file with a
//! recovery journal, a byte vector, any `Read + Write + Seek` stream).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::format::{FILE_ID, FLAG_PENDING_WRITE, NODE_SIZE, OFF_FLAGS_V2, OFF_MAJOR};

/// The byte storage under a protected file. Offsets are in the protected (ciphertext) file.
///
/// The journal hooks let a storage make multi-node updates crash-safe: the engine calls
/// [`begin_update`](Storage::begin_update) with the current bytes of every node it is about to overwrite
/// before writing anything, and [`end_update`](Storage::end_update) once the new metadata node is written.
#[allow(clippy::len_without_is_empty)] // a storage is never asked whether it is empty
pub trait Storage {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the storage if needed.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&mut self) -> io::Result<u64>;
    /// Sets the length (truncating or zero-extending).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// Makes written bytes durable.
    fn sync(&mut self) -> io::Result<()>;
    /// True when the engine should pass old node contents to [`begin_update`](Storage::begin_update).
    fn journaled(&self) -> bool {
        false
    }
    /// Records how to undo the coming update: the old length and the old bytes of each node to be overwritten.
    fn begin_update(
        &mut self,
        _old_len: u64,
        _old_nodes: &[(u64, Vec<u8>)],
        _durable: bool,
    ) -> io::Result<()> {
        Ok(())
    }
    /// The update is complete (the new metadata node is written): the undo record may go.
    fn end_update(&mut self, _durable: bool) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for Vec<u8> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut bytes: &[u8] = self;
        bytes.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| too_big())?;
        start.checked_add(buf.len()).ok_or_else(too_big)?;
        // Bytes past the end are appended, not zero-filled and then overwritten (an encrypted file is
        // written front to back).
        if start > Vec::len(self) {
            self.resize(start, 0);
        }
        let overlap = (Vec::len(self) - start).min(buf.len());
        self[start..start + overlap].copy_from_slice(&buf[..overlap]);
        self.extend_from_slice(&buf[overlap..]);
        Ok(())
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.resize(usize::try_from(len).map_err(|_| too_big())?, 0);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Read-only storage over bytes already in memory (decrypting without a copy); writes fail.
impl Storage for &[u8] {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(self.get(start..end).ok_or_else(eof)?);
        Ok(())
    }
    fn write_at(&mut self, _offset: u64, _buf: &[u8]) -> io::Result<()> {
        Err(read_only())
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
    fn set_len(&mut self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Storage + ?Sized> Storage for &mut S {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        (**self).write_at(offset, buf)
    }
    fn len(&mut self) -> io::Result<u64> {
        (**self).len()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
    fn journaled(&self) -> bool {
        (**self).journaled()
    }
    fn begin_update(&mut self, old_len: u64, old_nodes: &[(u64, Vec<u8>)], durable: bool) -> io::Result<()> {
        (**self).begin_update(old_len, old_nodes, durable)
    }
    fn end_update(&mut self, durable: bool) -> io::Result<()> {
        (**self).end_update(durable)
    }
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read past the end of the protected file",
    )
}

fn read_only() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "the protected file is read-only here (bytes in memory)",
    )
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        "protected file too large for an in-memory buffer",
    )
}

/// A storage over any `Read + Write + Seek` stream (e.g. a `Cursor<Vec<u8>>` or a temporary file).
/// It can grow but not shrink, and has no journal.
#[derive(Debug)]
pub struct StreamStorage<T>(pub T);

impl<T: Read + Write + Seek> Storage for StreamStorage<T> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.read_exact(buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let len = self.len()?;
        if offset > len {
            self.set_len(offset)?;
        }
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.write_all(buf)
    }
    fn len(&mut self) -> io::Result<u64> {
        self.0.seek(SeekFrom::End(0))
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let cur = self.len()?;
        if len < cur {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a stream storage cannot shrink",
            ));
        }
        io::copy(&mut io::repeat(0).take(len - cur), &mut self.0)?;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A protected file on the host file system, with a crash-recovery journal beside it
/// (`<file>.arca-journal`).
///
/// Update protocol (see `docs/protected-files.md`): (1) write the journal — the old length and the old
/// ciphertext of every node about to be overwritten, then a SHA-256 over it; (2) set the pending-write flag
/// (header byte 58); (3) write the new nodes, the metadata node last (flag cleared); (4) delete the journal.
/// When `durable`, each step is followed by `fsync`. On open, a complete journal is replayed (the file returns
/// to its state before the interrupted update) and an incomplete one is discarded (nothing had been written).
#[derive(Debug)]
pub struct HostFile {
    file: File,
    journal: Option<PathBuf>,
    /// A journal was written by `begin_update` and not yet removed (so `end_update` skips the unlink when
    /// there is none — the common case of a new file).
    journal_written: bool,
    recovered: bool,
}

const JOURNAL_MAGIC: &[u8; 8] = b"ARCAPFJ1";

impl HostFile {
    /// The journal path for a protected file at `path`.
    pub fn journal_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".arca-journal");
        PathBuf::from(name)
    }

    /// Wraps an open file (read-write for writing) whose path is `path`, replaying or discarding a journal
    /// left by an interrupted update.
    pub fn new(file: File, path: &Path) -> io::Result<Self> {
        let mut me = Self {
            file,
            journal: Some(Self::journal_path(path)),
            journal_written: false,
            recovered: false,
        };
        me.recover()?;
        Ok(me)
    }

    /// Opens `path` read-write (creating it when `create`), recovering from an interrupted update.
    pub fn open(path: &Path, create: bool) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Self::new(file, path)
    }

    /// Opens `path` read-only. An unfinished journal is reported as an error (recovery needs write access).
    pub fn open_read_only(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let journal = Self::journal_path(path);
        if journal.exists() {
            return Err(io::Error::other(format!(
                "an interrupted update must be recovered first (journal {} exists; open the file read-write)",
                journal.display()
            )));
        }
        Ok(Self {
            file,
            journal: Some(journal),
            journal_written: false,
            recovered: false,
        })
    }

    /// The file was renamed to `path`: keep its journal beside it.
    pub fn set_path(&mut self, path: &Path) {
        if self.journal.is_some() {
            self.journal = Some(Self::journal_path(path));
        }
    }

    /// The file was unlinked while open: later flushes go to the orphaned inode, without a journal (a journal
    /// under the old name could be replayed onto a new file of that name).
    pub fn detach(&mut self) {
        self.journal = None;
    }

    /// True when opening replayed a journal (the file went back to its state before an interrupted update).
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn recover(&mut self) -> io::Result<()> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        let bytes = match std::fs::read(&journal) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if let Some((old_len, nodes)) = parse_journal(&bytes) {
            for (node, data) in nodes {
                self.file.write_all_at(data, node * NODE_SIZE as u64)?;
            }
            self.file.set_len(old_len)?;
            self.file.sync_all()?;
            self.recovered = true;
        }
        // A journal that does not parse was interrupted while being written: nothing had been changed yet.
        std::fs::remove_file(&journal)?;
        sync_parent(&journal);
        Ok(())
    }
}

/// A parsed journal: the old length and the old bytes of each node.
type Journal<'a> = (u64, Vec<(u64, &'a [u8])>);

fn parse_journal(bytes: &[u8]) -> Option<Journal<'_>> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, digest) = bytes.split_at(body_len);
    if crate::crypto::sha256(&[body]) != digest || body.get(..8)? != JOURNAL_MAGIC {
        return None;
    }
    let u64_at =
        |at: usize| -> Option<u64> { Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?)) };
    let old_len = u64_at(8)?;
    let count = usize::try_from(u64_at(16)?).ok()?;
    let mut nodes = Vec::with_capacity(count.min(1024));
    let mut at = 24usize;
    for _ in 0..count {
        let node = u64_at(at)?;
        let data = body.get(at + 8..at + 8 + NODE_SIZE)?;
        nodes.push((node, data));
        at += 8 + NODE_SIZE;
    }
    (at == body.len()).then_some((old_len, nodes))
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().and_then(|p| {
        File::open(if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        })
        .ok()
    }) {
        let _ = dir.sync_all();
    }
}

impl Storage for HostFile {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn journaled(&self) -> bool {
        self.journal.is_some()
    }
    fn begin_update(&mut self, old_len: u64, old_nodes: &[(u64, Vec<u8>)], durable: bool) -> io::Result<()> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        if old_len == 0 {
            // A new file: nothing to undo. Recovery cannot restore "no file", and an empty file is not a
            // protected file, so a crash here leaves an unreadable new file — never a wrong one.
            return Ok(());
        }
        let mut j = Vec::with_capacity(24 + old_nodes.len() * (8 + NODE_SIZE) + 32);
        j.extend_from_slice(JOURNAL_MAGIC);
        j.extend_from_slice(&old_len.to_le_bytes());
        j.extend_from_slice(&(old_nodes.len() as u64).to_le_bytes());
        for (node, data) in old_nodes {
            j.extend_from_slice(&node.to_le_bytes());
            j.extend_from_slice(data);
        }
        let digest = crate::crypto::sha256(&[&j]);
        j.extend_from_slice(&digest);
        self.journal_written = true;
        let mut f = File::create(&journal)?;
        f.write_all(&j)?;
        if durable {
            f.sync_all()?;
            sync_parent(&journal);
        }
        // Pending-write flag, v2 files only (in a v1 file byte 58 belongs to the encrypted blob).
        let mut head = [0u8; 9];
        self.file.read_exact_at(&mut head, 0)?;
        if &head[..8] == FILE_ID && head[OFF_MAJOR] == 2 {
            let mut flags = [0u8; 1];
            self.file.read_exact_at(&mut flags, OFF_FLAGS_V2 as u64)?;
            self.file
                .write_all_at(&[flags[0] | FLAG_PENDING_WRITE], OFF_FLAGS_V2 as u64)?;
            if durable {
                self.file.sync_data()?;
            }
        }
        Ok(())
    }
    fn end_update(&mut self, durable: bool) -> io::Result<()> {
        if durable {
            self.file.sync_data()?;
        }
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        if !self.journal_written {
            return Ok(());
        }
        self.journal_written = false;
        match std::fs::remove_file(journal) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
