//! Rollback protection, which Gramine lacks: a per-volume state — every file's root MAC and a version —
//! bound to a monotonic counter.
//!
//! The state lives in the volume as a protected file itself (same key, bound to `<bound prefix>/.arca-volume`),
//! so it is encrypted, authenticated and crash-safe like any file. It is kept in two slots, `.arca-volume`
//! and `.arca-volume.b`, rewritten in place alternately (no new inode per commit); each holds a sequence
//! number and opening takes the newest slot that authenticates, so a torn write of one slot leaves the other.
//! Its version must equal the counter's value (or exceed it by one: an unfinished commit): an older version (a
//! copy of the whole volume taken before the counter moved on) is refused as a rollback. Each file's root MAC
//! must be one the state records: an older copy of one file is refused as a rollback.
//!
//! Commit protocol (see [`Volume`]): every file flush first computes its new root MAC; the state records
//! {previous MAC, new MAC} for that file (either is acceptable until the next commit, since a crash may leave
//! the file at either), narrows every other file to its current MAC and is written, as version counter + 1, to
//! the older slot; only then are the file's nodes written. So after a crash (`kill -9`) every file's bytes are
//! accepted by the state on disk. The counter itself advances only on a durable commit (`fsync` of any file,
//! unmount): the state is written to both slots durably, then the counter moves to its version. Rollback
//! protection therefore covers everything up to the last `fsync`: between two `fsync`s an attacker who
//! replaces the volume can bring back a state from that interval — changes that a power loss could have
//! dropped too. Opening a volume whose state is counter + 1 completes the commit (advances the counter).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::crypto::KEY_SIZE;
use crate::file::{FlushEvent, FlushHook, NodeKeys, Options, ProtectedFile};
use crate::{BoundPath, Error, HostFile, Key};

/// A monotonic counter that rollback protection binds a volume's state to.
///
/// Implementations: [`FileCounter`] (a local file, for standalone use — it protects against replacing the
/// volume, not against replacing the volume *and* the counter file together) and, in the launcher, the
/// coordinator's counter keyed by (marble type, volume name) (contract 9), which survives pod recreation.
pub trait MonotonicCounter: Send {
    /// The current value (0 for a counter never advanced).
    fn value(&mut self) -> Result<u64, Error>;
    /// Advances the counter to `to`. Must refuse to move backwards (`to` ≤ current value) with an error.
    /// `durable` asks for the new value to survive a power loss before returning.
    fn advance(&mut self, to: u64, durable: bool) -> Result<(), Error>;
}

/// A monotonic counter kept in a local file (8 bytes, little-endian), replaced atomically.
#[derive(Debug)]
pub struct FileCounter {
    path: PathBuf,
}

impl FileCounter {
    /// A counter stored at `path` (created at 0 on first advance).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl MonotonicCounter for FileCounter {
    fn value(&mut self) -> Result<u64, Error> {
        let shown = self.path.display().to_string();
        match std::fs::read(&self.path) {
            Ok(b) => {
                let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| Error::CounterFile {
                    path: self.path.clone(),
                    reason: format!("expected 8 bytes, found {}", b.len()),
                })?;
                Ok(u64::from_le_bytes(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("reading the rollback counter", &shown, e)),
        }
    }

    fn advance(&mut self, to: u64, durable: bool) -> Result<(), Error> {
        let cur = self.value()?;
        if to <= cur {
            return Err(Error::CounterFile {
                path: self.path.clone(),
                reason: format!("refusing to move the counter from {cur} back to {to}"),
            });
        }
        let shown = self.path.display().to_string();
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&to.to_le_bytes())?;
            if durable {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &self.path)?;
            if durable {
                if let Some(dir) = self.path.parent() {
                    std::fs::File::open(if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    })?
                    .sync_all()?;
                }
            }
            Ok(())
        };
        write().map_err(|e| Error::io("advancing the rollback counter", &shown, e))
    }
}

/// Name of the state file at a volume's root (hidden by the shield); the second slot is
/// [`STATE_FILE_B`].
pub const STATE_FILE: &str = ".arca-volume";
/// Name of the volume state's second slot.
pub const STATE_FILE_B: &str = ".arca-volume.b";
const SLOTS: [&str; 2] = [STATE_FILE, STATE_FILE_B];

/// A plain host file as storage, without a journal (the state is replaced by rename instead).
struct StreamlessFile(std::fs::File);

impl crate::Storage for StreamlessFile {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }
    fn len(&mut self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }
}
const STATE_MAGIC: &[u8; 8] = b"ARCAVOL2";

type Mac = [u8; KEY_SIZE];

struct Inner {
    dir: PathBuf,
    prefix: String,
    key: Key,
    counter: Box<dyn MonotonicCounter>,
    /// The counter's value: the version of the last durable commit.
    version: u64,
    /// Sequence number of the newest state slot written (slot `seq % 2`).
    seq: u64,
    /// Open handles of the two state slots.
    slots: [Option<std::fs::File>; 2],
    /// volume-relative path → acceptable root MACs (the last is the newest).
    files: BTreeMap<String, Vec<Mac>>,
}

/// A directory of protected files under rollback protection. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Volume {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume").finish_non_exhaustive()
    }
}

impl Volume {
    /// Opens the volume in `dir` whose files are bound below `bound_prefix` (see `docs/protected-files.md`),
    /// checking its state against `counter`.
    ///
    /// A volume without a state file is adopted when the counter is still 0 (first use: every protected file
    /// present is recorded as it is — trust on first use, e.g. files the converter wrote); with the counter
    /// above 0 a missing state is a rollback.
    pub fn open(
        dir: &Path,
        key: &Key,
        bound_prefix: &str,
        mut counter: Box<dyn MonotonicCounter>,
    ) -> Result<Self, Error> {
        let prefix = BoundPath::new(bound_prefix)?.to_string();
        let count = counter.value()?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            prefix,
            key: key.clone(),
            counter,
            version: 0,
            seq: 0,
            slots: [None, None],
            files: BTreeMap::new(),
        };
        if SLOTS.iter().any(|s| dir.join(s).exists()) {
            let (version, seq, files) = inner.read_state()?;
            inner.seq = seq;
            if version < count {
                return Err(Error::Rollback {
                    what: format!(
                        "volume {}: its state is version {version} but the counter is at {count} (an older copy of the volume)",
                        dir.display()
                    ),
                });
            }
            if version > count + 1 {
                return Err(Error::CounterBehind {
                    volume: dir.to_path_buf(),
                    version,
                    counter: count,
                });
            }
            inner.version = count;
            inner.files = files;
            if version == count + 1 {
                // Commits since the last durable one (or an interrupted durable one): complete them, so the
                // state on disk is bound to the counter again. No narrowing: a file may be at either MAC.
                inner.persist(true)?;
            }
        } else {
            if count > 0 {
                return Err(Error::Rollback {
                    what: format!(
                        "volume {}: the state file is missing but the counter is at {count} (state deleted or volume replaced)",
                        dir.display()
                    ),
                });
            }
            inner.adopt()?;
            inner.commit(true)?;
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a panic elsewhere while holding it; the state is still consistent (every
        // change is committed before the guard drops), so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bound path of the file at volume-relative path `rel`.
    pub fn bound_path(&self, rel: &str) -> Result<BoundPath, Error> {
        BoundPath::in_mount(&self.lock().prefix, rel)
    }

    /// The state's version as of the last durable commit (equal to the counter).
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Checks that `root_mac` is the (or, during an update, a) recorded version of the file at `rel`.
    pub fn check(&self, rel: &str, root_mac: &[u8; KEY_SIZE]) -> Result<(), Error> {
        match self.lock().files.get(rel) {
            Some(macs) if macs.contains(root_mac) => Ok(()),
            Some(_) => Err(Error::Rollback {
                what: format!(
                    "file {rel} is not the latest version recorded in the volume state (an older copy)"
                ),
            }),
            None => Err(Error::UnrecordedFile {
                file: rel.to_string(),
            }),
        }
    }

    /// Opens the protected file at `rel` (host file `dir/rel`), checking its binding and its version, and
    /// attaches the hook that records every later flush in the state.
    pub fn open_file(&self, rel: &str, options: &Options) -> Result<ProtectedFile<HostFile>, Error> {
        let (host, bound, _) = self.file_parts(rel)?;
        let storage = HostFile::open(&host, false).map_err(|e| Error::io("opening", rel, e))?;
        self.open_storage(storage, rel, &bound, options)
    }

    /// Opens a protected file from `storage`, bound to `bound`, recorded in the state as `rel`; checks its
    /// version and attaches the recording hook.
    pub fn open_storage(
        &self,
        storage: HostFile,
        rel: &str,
        bound: &BoundPath,
        options: &Options,
    ) -> Result<ProtectedFile<HostFile>, Error> {
        let key = self.lock().key.clone();
        let mut file = ProtectedFile::open(storage, &key, bound, options)?;
        self.check(rel, &file.root_mac())?;
        file.set_flush_hook(self.hook(rel));
        Ok(file)
    }

    /// Creates (or replaces) the protected file at `rel`; it is recorded by its first flush.
    pub fn create_file(&self, rel: &str, options: &Options) -> Result<ProtectedFile<HostFile>, Error> {
        let (host, bound, key) = self.file_parts(rel)?;
        let storage = HostFile::open(&host, true).map_err(|e| Error::io("creating", rel, e))?;
        let mut file = ProtectedFile::create(storage, &key, &bound, options)?;
        file.set_flush_hook(self.hook(rel));
        Ok(file)
    }

    fn file_parts(&self, rel: &str) -> Result<(PathBuf, BoundPath, Key), Error> {
        let g = self.lock();
        Ok((
            g.dir.join(rel),
            BoundPath::in_mount(&g.prefix, rel)?,
            g.key.clone(),
        ))
    }

    /// The hook for a file at `rel`: records each flush's new root MAC before the flush writes.
    pub fn hook(&self, rel: &str) -> FlushHook {
        let vol = self.clone();
        let rel = rel.to_string();
        Box::new(move |ev: &FlushEvent<'_>| {
            let mut g = vol.lock();
            let mut macs = vec![];
            if let Some(prev) = ev.previous_root_mac {
                macs.push(prev);
            }
            macs.push(ev.new_root_mac);
            g.files.insert(rel.clone(), macs);
            g.commit(ev.durable)
        })
    }

    /// Records that the file at `from` is now at `to` (after a rename and rebind).
    pub fn renamed(&self, from: &str, to: &str, new_mac: &[u8; KEY_SIZE]) -> Result<(), Error> {
        let mut g = self.lock();
        g.files.remove(from);
        g.files.insert(to.to_string(), vec![*new_mac]);
        g.commit(false)
    }

    /// Records that the file at `rel` was deleted.
    pub fn removed(&self, rel: &str) -> Result<(), Error> {
        let mut g = self.lock();
        if g.files.remove(rel).is_some() {
            g.commit(false)?;
        }
        Ok(())
    }

    /// Commits the state durably, narrowing every file to its newest MAC (call on `fsync` and unmount).
    pub fn sync(&self) -> Result<(), Error> {
        self.lock().commit(true)
    }
}

impl Inner {
    fn state_bound(&self) -> Result<BoundPath, Error> {
        BoundPath::in_mount(&self.prefix, STATE_FILE)
    }

    /// Reads both state slots and returns the newest that authenticates and parses (version, sequence,
    /// files); when neither does, the error of the newer-looking one.
    fn read_state(&mut self) -> Result<(u64, u64, State), Error> {
        let mut best: Option<(u64, u64, State)> = None;
        let mut first_err = None;
        for slot in SLOTS {
            match self.read_slot(slot) {
                Ok(Some(s)) => {
                    if best.as_ref().is_none_or(|b| s.1 > b.1) {
                        best = Some(s);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(slot, error = %e, "a volume state slot is unreadable (a torn write?); using the other");
                    first_err.get_or_insert(e);
                }
            }
        }
        match (best, first_err) {
            (Some(b), _) => Ok(b),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::CorruptMetadata {
                file: self.dir.join(STATE_FILE).display().to_string(),
                reason: "the volume state is missing".into(),
            }),
        }
    }

    fn read_slot(&mut self, slot: &str) -> Result<Option<(u64, u64, State)>, Error> {
        let path = self.dir.join(slot);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("opening the volume state", slot, e)),
        };
        let mut bytes = Vec::new();
        crate::decrypt_stream(
            StreamlessFile(file),
            &self.key,
            Some(&self.state_bound()?),
            &mut bytes,
        )?;
        parse_state(&bytes)
            .map(Some)
            .ok_or_else(|| Error::CorruptMetadata {
                file: path.display().to_string(),
                reason: "the volume state does not parse".into(),
            })
    }

    /// Records every protected file found in the directory tree as it is.
    fn adopt(&mut self) -> Result<(), Error> {
        let mut stack = vec![String::new()];
        while let Some(rel_dir) = stack.pop() {
            let dir = self.dir.join(&rel_dir);
            let rd =
                std::fs::read_dir(&dir).map_err(|e| Error::io("listing", &dir.display().to_string(), e))?;
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("listing", &dir.display().to_string(), e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let rel = if rel_dir.is_empty() {
                    name.clone()
                } else {
                    format!("{rel_dir}/{name}")
                };
                if is_internal_name(&name) {
                    continue;
                }
                let ft = entry.file_type().map_err(|e| Error::io("listing", &rel, e))?;
                if ft.is_dir() {
                    stack.push(rel);
                } else if ft.is_file() {
                    let bound = BoundPath::in_mount(&self.prefix, &rel)?;
                    let storage =
                        HostFile::open(&entry.path(), false).map_err(|e| Error::io("opening", &rel, e))?;
                    let file = ProtectedFile::open(storage, &self.key, &bound, &Options::default())?;
                    self.files.insert(rel, vec![file.root_mac()]);
                }
            }
        }
        Ok(())
    }

    /// Writes the state as version counter + 1 into the older slot (when `durable`: into both slots, synced,
    /// then advances the counter to it), then narrows every file to its newest MAC.
    fn commit(&mut self, durable: bool) -> Result<(), Error> {
        self.persist(durable)?;
        // Everything up to here is on disk; the next commit may narrow files to their newest MAC.
        for macs in self.files.values_mut() {
            if macs.len() > 1 {
                macs.drain(..macs.len() - 1);
            }
        }
        Ok(())
    }

    /// Writes the state (see [`commit`](Self::commit)) without narrowing.
    fn persist(&mut self, durable: bool) -> Result<(), Error> {
        let next = self.version + 1;
        self.write_slot(next, durable)?;
        if durable {
            // Both slots, one after the other: at every moment one of them is whole, and once the counter
            // moves no slot holds an older state at the counter's version.
            self.write_slot(next, durable)?;
            self.counter.advance(next, durable)?;
            self.version = next;
        }
        Ok(())
    }

    /// Rewrites the older slot in place (no new inode): a torn write leaves the other slot.
    fn write_slot(&mut self, version: u64, durable: bool) -> Result<(), Error> {
        let seq = self.seq + 1;
        let i = (seq % 2) as usize;
        let slot = SLOTS[i];
        let plain = encode_state(version, seq, &self.files);
        let bytes = crate::encrypt_bytes(&plain, &self.key, &self.state_bound()?, NodeKeys::Random)?;
        if self.slots[i].is_none() {
            let path = self.dir.join(slot);
            let existed = path.exists();
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("opening the volume state", slot, e))?;
            if !existed {
                if let Ok(d) = std::fs::File::open(&self.dir) {
                    let _ = d.sync_all();
                }
            }
            self.slots[i] = Some(file);
        }
        if let Some(file) = &self.slots[i] {
            let write = || -> std::io::Result<()> {
                std::os::unix::fs::FileExt::write_all_at(file, &bytes, 0)?;
                if file.metadata()?.len() != bytes.len() as u64 {
                    file.set_len(bytes.len() as u64)?;
                }
                if durable {
                    file.sync_data()?;
                }
                Ok(())
            };
            write().map_err(|e| Error::io("writing the volume state", slot, e))?;
        }
        self.seq = seq;
        Ok(())
    }
}

/// Names the volume uses for itself (the state file, journals, temporary files): hidden by the shield and
/// skipped by adoption.
pub fn is_internal_name(name: &str) -> bool {
    name == STATE_FILE
        || name.starts_with(".arca-volume")
        || name.ends_with(".arca-journal")
        || name.ends_with(".arca-tmp")
}

/// volume-relative path → acceptable root MACs.
type State = BTreeMap<String, Vec<Mac>>;

fn encode_state(version: u64, seq: u64, files: &State) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(STATE_MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(files.len() as u64).to_le_bytes());
    for (path, macs) in files {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.push(macs.len() as u8);
        for m in macs {
            out.extend_from_slice(m);
        }
    }
    out
}

fn parse_state(b: &[u8]) -> Option<(u64, u64, State)> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(at..at + n)?;
        at += n;
        Some(s)
    };
    if take(8)? != STATE_MAGIC {
        return None;
    }
    let version = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let count = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let mut files = BTreeMap::new();
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let path = String::from_utf8(take(len)?.to_vec()).ok()?;
        let n = take(1)?[0] as usize;
        let mut macs = Vec::with_capacity(n);
        for _ in 0..n {
            macs.push(take(KEY_SIZE)?.try_into().ok()?);
        }
        files.insert(path, macs);
    }
    (at == b.len()).then_some((version, seq, files))
}
