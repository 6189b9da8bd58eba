//! Rollback protection, which Gramine lacks: a per-volume state — every file's root MAC and a version —
//! bound to a monotonic counter.
//!
//! ## Where the state lives
//! - **Two slots**, `.arca-volume` and `.arca-volume.b`: the whole state (version, sequence number, every file's
//!   acceptable root MACs) as a protected file (same key, bound to `<bound prefix>/.arca-volume`), rewritten in
//!   place alternately (no new inode per write). Opening takes the newest slot that authenticates, so a torn
//!   write of one slot leaves the other. The slot's version must equal the counter's value (or exceed it by
//!   one: an unfinished commit); an older version (a copy of the whole volume taken before the counter moved
//!   on) is refused as a rollback.
//! - **A delta log**, `.arca-volume.log`, extending the newest slot: a header naming that slot (its version,
//!   sequence number and the SHA-256 of its plaintext) and a random log id, then one record per change
//!   ({set file → acceptable MACs} / {remove file}). Records are AES-128-GCM sealed under a key derived from the
//!   volume key and the log id (`crypto::log_key`), with the record's index as nonce and the previous record's
//!   tag (the header's tag for the first) as associated data: each record authenticates the whole chain before
//!   it. Appending one record costs O(size of the change); rewriting the whole state for every file flush
//!   (what the slots alone did) cost O(number of files), O(n²) for a program that writes n files.
//!
//! ## Commit protocol (see [`Volume`])
//! Every file flush first computes its new root MAC; the change {file: previous MAC, new MAC} (either is
//! acceptable until the next change, since a crash may leave the file at either) is appended to the log —
//! written before the file's nodes are written; the state in memory then narrows that file to its new MAC, and
//! the next record's replay narrows it the same way (replay rule: narrow every file to its newest MAC, then
//! apply the record). So after a crash (`kill -9`) every file's bytes are accepted by slot + log on disk,
//! exactly as when every flush rewrote a slot. A **durable commit** (`fsync` of any file, unmount) writes the
//! whole state to both slots with `fsync` as version counter + 1, advances the counter to it, and starts a new
//! log (fresh id) on the new slot. When the log outgrows `LOG_SLACK` + 4 × the encoded state, it is compacted
//! without `fsync`: the state goes to the older slot as version counter + 1 (an unfinished commit, as before)
//! and a new log starts on it — amortised O(1) per change.
//!
//! ## Why the guarantees are those of the slots-only protocol
//! The states that slot + log can express are exactly the states the slots-only protocol wrote, one per change:
//! replaying records 1..k over the base slot yields the state it would have written at change k. Opening
//! applies the longest prefix of records that authenticates and chains (a torn tail, a record edited, dropped,
//! reordered or taken from another log is where replay stops, with a warning); a log whose header does not name
//! the newest slot (a log of an older state, or of a slot a crash tore) is ignored. Dropping records can only
//! bring back an *earlier* state of the same interval since the last durable commit — which the slots-only
//! protocol also allowed (the older slot held one, and an attacker could keep any slot written in the
//! interval) — and never accepts a MAC no change recorded: a file written by a dropped record is refused as a
//! rollback. Crash safety: a record is complete in the page cache before the file's nodes are written, so a
//! `kill -9` (no page-cache loss) leaves every file accepted; a power loss without `fsync` may lose the log tail
//! along with the file writes it covered, and a file whose newest record was lost is reported (rollback), never
//! served wrong. The counter advances only on a durable commit, so **rollback protection covers everything up to
//! the last `fsync`**: between two `fsync`s an attacker who replaces the volume can bring back a state from that
//! interval — changes that a power loss could have dropped too. Opening a volume whose slot is counter + 1 or
//! whose log holds records completes the commit (both slots durably, counter advanced); a file left with two
//! acceptable MACs is first narrowed to the one its bytes carry.

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
    /// Files the last change left with more than one acceptable MAC (narrowed by the next change).
    wide: Vec<String>,
    /// The newest slot written or read: what the log extends.
    base: Option<Base>,
    /// Length of the last encoded state (the log is compacted once it grows well past it).
    state_len: u64,
    /// The log being appended to; `None` until the first change after a slot write.
    log: Option<Log>,
    /// Open handle of the log file.
    log_file: Option<std::fs::File>,
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
        let mut inner = Inner::new(dir, prefix, key, counter);
        if SLOTS.iter().any(|s| dir.join(s).exists()) {
            let (version, seq, files, digest) = inner.read_state()?;
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
            inner.wide = files
                .iter()
                .filter(|(_, m)| m.len() > 1)
                .map(|(p, _)| p.clone())
                .collect();
            inner.files = files;
            inner.base = Some(Base { version, seq, digest });
            let replayed = inner.replay_log()?;
            inner.resolve_wide();
            if version == count + 1 || replayed > 0 {
                // Changes since the last durable commit (or an interrupted durable one): complete them, so the
                // state on disk is bound to the counter again.
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
            inner.record(&[], true)?;
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
            let mut macs = vec![];
            if let Some(prev) = ev.previous_root_mac {
                macs.push(prev);
            }
            macs.push(ev.new_root_mac);
            vol.lock().record(&[Op::Set(rel.clone(), macs)], ev.durable)
        })
    }

    /// Records that the file at `from` is now at `to` (after a rename and rebind).
    pub fn renamed(&self, from: &str, to: &str, new_mac: &[u8; KEY_SIZE]) -> Result<(), Error> {
        self.lock().record(
            &[
                Op::Remove(from.to_string()),
                Op::Set(to.to_string(), vec![*new_mac]),
            ],
            false,
        )
    }

    /// Records that the file at `rel` was deleted.
    pub fn removed(&self, rel: &str) -> Result<(), Error> {
        let mut g = self.lock();
        if g.files.contains_key(rel) {
            g.record(&[Op::Remove(rel.to_string())], false)?;
        }
        Ok(())
    }

    /// Commits the state durably, narrowing every file to its newest MAC (call on `fsync` and unmount).
    pub fn sync(&self) -> Result<(), Error> {
        self.lock().record(&[], true)
    }
}

impl Inner {
    /// A volume with an empty state, nothing read or written yet.
    fn new(dir: &Path, prefix: String, key: &Key, counter: Box<dyn MonotonicCounter>) -> Self {
        Inner {
            dir: dir.to_path_buf(),
            prefix,
            key: key.clone(),
            counter,
            version: 0,
            seq: 0,
            slots: [None, None],
            files: BTreeMap::new(),
            wide: Vec::new(),
            base: None,
            state_len: 0,
            log: None,
            log_file: None,
        }
    }

    fn state_bound(&self) -> Result<BoundPath, Error> {
        BoundPath::in_mount(&self.prefix, STATE_FILE)
    }

    /// Reads both state slots and returns the newest that authenticates and parses (version, sequence,
    /// files); when neither does, the error of the newer-looking one.
    fn read_state(&mut self) -> Result<SlotState, Error> {
        let mut best: Option<SlotState> = None;
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

    fn read_slot(&mut self, slot: &str) -> Result<Option<SlotState>, Error> {
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
        let digest = crate::crypto::sha256(&[&bytes]);
        parse_state(&bytes)
            .map(|(version, seq, files)| Some((version, seq, files, digest)))
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

    /// Records one change: applies `ops` to the state and makes it reach the disk before the caller writes
    /// the file(s) it covers — appended to the log, or (when `durable`, or to compact a long log) the whole
    /// state written to the slots. Then narrows the files it widened to their newest MAC (the replay rule).
    fn record(&mut self, ops: &[Op], durable: bool) -> Result<(), Error> {
        for op in ops {
            op.apply(&mut self.files, &mut self.wide);
        }
        let long = self
            .log
            .as_ref()
            .is_some_and(|l| l.len > LOG_SLACK + 4 * self.state_len);
        if durable || long {
            self.persist(durable)?;
        } else if !ops.is_empty() {
            self.append(ops)?;
        }
        // Everything up to here is on disk; the next change may narrow files to their newest MAC.
        self.narrow();
        Ok(())
    }

    fn narrow(&mut self) {
        for rel in self.wide.drain(..) {
            if let Some(macs) = self.files.get_mut(&rel) {
                if macs.len() > 1 {
                    macs.drain(..macs.len() - 1);
                }
            }
        }
    }

    /// Files a crash left with two acceptable MACs: narrowed to the one their bytes carry (after the file's
    /// own journal recovery), so a later change cannot narrow them to a MAC they do not have. A file that
    /// cannot be read stays as it is (opening it reports why).
    fn resolve_wide(&mut self) {
        let wide = std::mem::take(&mut self.wide);
        for rel in wide {
            // Only paths inside the volume are read: a name from the log that is absolute or climbs out
            // (`..`) stays as it is rather than open a host file outside the volume read-write.
            let inside = is_volume_relative(&rel);
            let actual = BoundPath::in_mount(&self.prefix, &rel)
                .ok()
                .filter(|_| inside)
                .and_then(|bound| {
                    let storage = HostFile::open(&self.dir.join(&rel), false).ok()?;
                    ProtectedFile::open(storage, &self.key, &bound, &Options::default())
                        .ok()
                        .map(|f| f.root_mac())
                });
            match (actual, self.files.get_mut(&rel)) {
                (Some(mac), Some(macs)) if macs.contains(&mac) => *macs = vec![mac],
                (_, Some(_)) => self.wide.push(rel),
                (_, None) => {}
            }
        }
    }

    /// Writes the state as version counter + 1 into the older slot (when `durable`: into both slots, synced,
    /// then advances the counter to it); the next change starts a new log on it.
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
        // The log on disk extends an older slot: opening ignores it from now on.
        self.log = None;
        Ok(())
    }

    /// Rewrites the older slot in place (no new inode): a torn write leaves the other slot.
    fn write_slot(&mut self, version: u64, durable: bool) -> Result<(), Error> {
        let seq = self.seq + 1;
        let i = (seq % 2) as usize;
        let slot = SLOTS[i];
        let plain = encode_state(version, seq, &self.files);
        let digest = crate::crypto::sha256(&[&plain]);
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
        self.state_len = plain.len() as u64;
        self.base = Some(Base { version, seq, digest });
        Ok(())
    }

    /// Appends one record to the log (starting a new log on the newest slot first when needed).
    fn append(&mut self, ops: &[Op]) -> Result<(), Error> {
        if self.log.is_none() {
            self.start_log()?;
        }
        let (Some(log), Some(file)) = (self.log.as_mut(), self.log_file.as_ref()) else {
            return Err(Error::io(
                "appending to the volume state log",
                LOG_FILE,
                std::io::Error::other("the log is not open"),
            ));
        };
        let mut body = encode_ops(ops);
        let len = u32::try_from(body.len()).map_err(|_| {
            Error::io(
                "appending to the volume state log",
                LOG_FILE,
                std::io::Error::other("a change larger than 4 GiB"),
            )
        })?;
        let tag =
            crate::crypto::gcm_seal_counter(&log.key, log.next, &record_aad(&log.chain, len), &mut body);
        let mut rec = Vec::with_capacity(4 + body.len() + KEY_SIZE);
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&body);
        rec.extend_from_slice(&tag);
        std::os::unix::fs::FileExt::write_all_at(file, &rec, log.len)
            .map_err(|e| Error::io("appending to the volume state log", LOG_FILE, e))?;
        log.len += rec.len() as u64;
        log.next += 1;
        log.chain = tag;
        Ok(())
    }

    /// Starts a new log (fresh id, hence fresh key) on the newest slot: emptied, then its header written.
    fn start_log(&mut self) -> Result<(), Error> {
        let base = self.base.ok_or_else(|| {
            Error::io(
                "starting the volume state log",
                LOG_FILE,
                std::io::Error::other("no state slot written yet"),
            )
        })?;
        let mut id = [0u8; KEY_SIZE];
        crate::crypto::fill_random(&mut id)?;
        let key = crate::crypto::log_key(&self.key, &id);
        let mut header = log_header_body(&base, &id);
        let tag = crate::crypto::gcm_seal_counter(&key, HEADER_NONCE, &header, &mut []);
        header.extend_from_slice(&tag);
        if self.log_file.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.dir.join(LOG_FILE))
                .map_err(|e| Error::io("opening the volume state log", LOG_FILE, e))?;
            self.log_file = Some(file);
        }
        if let Some(file) = &self.log_file {
            let write = || -> std::io::Result<()> {
                file.set_len(0)?;
                std::os::unix::fs::FileExt::write_all_at(file, &header, 0)
            };
            write().map_err(|e| Error::io("starting the volume state log", LOG_FILE, e))?;
        }
        self.log = Some(Log {
            key,
            len: header.len() as u64,
            next: 0,
            chain: tag,
        });
        Ok(())
    }

    /// Applies the log's records to the state read from the newest slot, up to the first record that does not
    /// authenticate, chain or parse; returns how many were applied. A log that does not extend that slot is
    /// ignored.
    fn replay_log(&mut self) -> Result<u64, Error> {
        let bytes = match std::fs::read(self.dir.join(LOG_FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("reading the volume state log", LOG_FILE, e)),
        };
        Ok(self.replay_bytes(&bytes))
    }

    /// [`Inner::replay_log`] on the log's bytes: the header, the record framing, each record's tag and chain,
    /// its plaintext (`parse_ops`) and the replay rule.
    fn replay_bytes(&mut self, bytes: &[u8]) -> u64 {
        let Some(base) = self.base else {
            return 0;
        };
        let Some((head, rest)) = bytes.split_at_checked(LOG_HEADER_LEN) else {
            if !bytes.is_empty() {
                tracing::warn!("the volume state log has a torn header; ignored");
            }
            return 0;
        };
        let (body, tag) = head.split_at(LOG_HEADER_LEN - KEY_SIZE);
        let (Some(id), Ok(tag)) = (
            body.get(LOG_HEADER_LEN - 2 * KEY_SIZE..)
                .and_then(|b| <[u8; KEY_SIZE]>::try_from(b).ok()),
            <[u8; KEY_SIZE]>::try_from(tag),
        ) else {
            return 0;
        };
        let key = crate::crypto::log_key(&self.key, &id);
        if body.get(..8) != Some(&LOG_MAGIC[..])
            || !crate::crypto::gcm_open_counter(&key, HEADER_NONCE, body, &mut [], &tag)
        {
            tracing::warn!("the volume state log header does not authenticate; ignored");
            return 0;
        }
        if body != log_header_body(&base, &id).as_slice() {
            tracing::debug!("the volume state log extends an older state slot; ignored");
            return 0;
        }
        let mut chain = tag;
        let mut at = 0usize;
        let mut n = 0u64;
        while at < rest.len() {
            let record = rest.get(at..at + 4).and_then(|l| {
                let len = u32::from_le_bytes(l.try_into().ok()?);
                let end = at.checked_add(4 + len as usize + KEY_SIZE)?;
                let ct = rest.get(at + 4..end - KEY_SIZE)?;
                let tag: [u8; KEY_SIZE] = rest.get(end - KEY_SIZE..end)?.try_into().ok()?;
                Some((len, ct, tag, end))
            });
            let Some((len, ct, tag, end)) = record else {
                tracing::warn!(record = n, "the volume state log ends in a torn record; dropped");
                break;
            };
            let mut plain = ct.to_vec();
            if !crate::crypto::gcm_open_counter(&key, n, &record_aad(&chain, len), &mut plain, &tag) {
                tracing::warn!(
                    record = n,
                    "a volume state log record does not authenticate (torn, edited, reordered or from another log); it and every later record are dropped"
                );
                break;
            }
            let Some(ops) = parse_ops(&plain) else {
                tracing::warn!(
                    record = n,
                    "a volume state log record does not parse; it and every later record are dropped"
                );
                break;
            };
            self.narrow();
            for op in &ops {
                op.apply(&mut self.files, &mut self.wide);
            }
            chain = tag;
            at = end;
            n += 1;
        }
        n
    }
}

/// Name of the volume state's delta log (see the module documentation).
pub const STATE_LOG: &str = ".arca-volume.log";
const LOG_FILE: &str = STATE_LOG;
const LOG_MAGIC: &[u8; 8] = b"ARCAVLG1";
/// Header: magic, base version, base sequence number, SHA-256 of the base slot's plaintext, log id, tag.
const LOG_HEADER_LEN: usize = 8 + 8 + 8 + 32 + KEY_SIZE + KEY_SIZE;
/// The header's nonce under the log key (records count up from 0 and never reach it).
const HEADER_NONCE: u64 = u64::MAX;
/// A log longer than this plus four times the encoded state is compacted into a slot.
const LOG_SLACK: u64 = 256 * 1024;

/// The slot a log extends.
#[derive(Clone, Copy)]
struct Base {
    version: u64,
    seq: u64,
    digest: [u8; 32],
}

/// The open log: its key, length, next record index and the tag the next record chains to.
struct Log {
    key: Key,
    len: u64,
    next: u64,
    chain: Mac,
}

/// One change to the state.
enum Op {
    /// The file at this path is acceptable at these root MACs (the last is the newest).
    Set(String, Vec<Mac>),
    /// The file at this path is gone.
    Remove(String),
}

impl Op {
    fn apply(&self, files: &mut State, wide: &mut Vec<String>) {
        match self {
            Op::Set(rel, macs) => {
                if macs.len() > 1 {
                    wide.push(rel.clone());
                }
                files.insert(rel.clone(), macs.clone());
            }
            Op::Remove(rel) => {
                files.remove(rel);
            }
        }
    }
}

fn log_header_body(base: &Base, id: &[u8; KEY_SIZE]) -> Vec<u8> {
    let mut h = Vec::with_capacity(LOG_HEADER_LEN);
    h.extend_from_slice(LOG_MAGIC);
    h.extend_from_slice(&base.version.to_le_bytes());
    h.extend_from_slice(&base.seq.to_le_bytes());
    h.extend_from_slice(&base.digest);
    h.extend_from_slice(id);
    h
}

fn record_aad(chain: &Mac, len: u32) -> [u8; KEY_SIZE + 4] {
    let mut aad = [0u8; KEY_SIZE + 4];
    aad[..KEY_SIZE].copy_from_slice(chain);
    aad[KEY_SIZE..].copy_from_slice(&len.to_le_bytes());
    aad
}

/// A record's plaintext: u32 count, then per change: kind (1 set, 2 remove), u32 path length, path, and for
/// a set: u8 MAC count and the MACs.
fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(ops.len() as u32).to_le_bytes());
    for op in ops {
        let (kind, rel) = match op {
            Op::Set(rel, _) => (1u8, rel),
            Op::Remove(rel) => (2u8, rel),
        };
        out.push(kind);
        out.extend_from_slice(&(rel.len() as u32).to_le_bytes());
        out.extend_from_slice(rel.as_bytes());
        if let Op::Set(_, macs) = op {
            out.push(macs.len() as u8);
            for m in macs {
                out.extend_from_slice(m);
            }
        }
    }
    out
}

fn parse_ops(b: &[u8]) -> Option<Vec<Op>> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = b.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut ops = Vec::new();
    for _ in 0..count {
        let kind = take(1)?[0];
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let rel = String::from_utf8(take(len)?.to_vec()).ok()?;
        ops.push(match kind {
            1 => {
                let n = take(1)?[0] as usize;
                let mut macs = Vec::with_capacity(n);
                for _ in 0..n {
                    macs.push(take(KEY_SIZE)?.try_into().ok()?);
                }
                Op::Set(rel, macs)
            }
            2 => Op::Remove(rel),
            _ => return None,
        });
    }
    (at == b.len()).then_some(ops)
}

/// Names the volume uses for itself (the state file, journals, temporary files): hidden by the shield and
/// skipped by adoption.
pub fn is_internal_name(name: &str) -> bool {
    name == STATE_FILE
        || name.starts_with(".arca-volume")
        || name.ends_with(".arca-journal")
        || name.ends_with(".arca-tmp")
}

/// True when `rel` names a path inside the volume: relative, every component a plain name (no empty, `.` or
/// `..` component, no NUL).
fn is_volume_relative(rel: &str) -> bool {
    !rel.contains('\0') && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// volume-relative path → acceptable root MACs.
type State = BTreeMap<String, Vec<Mac>>;

/// A slot's contents: version, sequence number, files, SHA-256 of its plaintext.
type SlotState = (u64, u64, State, [u8; 32]);

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

/// Entry points for the fuzz target `pfs_state_log` (`fuzz/`), not part of the API: they build what only the
/// holder of the volume key can — a log header naming a given slot, records sealed and chained — so the fuzzer
/// reaches the record framing and `parse_ops` behind the tags, not only a failing tag.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// What one replay did.
    #[derive(Debug)]
    pub struct Replayed {
        /// Records applied.
        pub applied: u64,
        /// Files in the state afterwards.
        pub files: usize,
        /// Whether the state after the replay encodes and parses back to itself (what the next slot write
        /// and the next open do with it).
        pub round_trips: bool,
    }

    /// The log id of the logs built here (fixed: the fuzzer's inputs must replay the same way every time).
    const LOG_ID: [u8; KEY_SIZE] = [0x5a; KEY_SIZE];

    /// A counter for a state that is only replayed in memory (never read or advanced).
    struct Unused;

    impl MonotonicCounter for Unused {
        fn value(&mut self) -> Result<u64, Error> {
            Ok(0)
        }
        fn advance(&mut self, _to: u64, _durable: bool) -> Result<(), Error> {
            Ok(())
        }
    }

    /// The in-memory state [`replay`] starts from: version 3, sequence 5, a file with one MAC and one with two.
    fn fixed_state() -> (State, Base) {
        let mut files = State::new();
        files.insert("a".into(), vec![[1; KEY_SIZE]]);
        files.insert("dir/b".into(), vec![[2; KEY_SIZE], [3; KEY_SIZE]]);
        let digest = crate::crypto::sha256(&[&encode_state(3, 5, &files)]);
        (
            files,
            Base {
                version: 3,
                seq: 5,
                digest,
            },
        )
    }

    /// A log over `base`: its header sealed under the log key of `key`, then `records` (arbitrary plaintexts)
    /// sealed and chained as [`Inner::append`] does, then `tail` as raw bytes.
    fn build(key: &Key, base: &Base, records: &[&[u8]], tail: &[u8]) -> Vec<u8> {
        let log_key = crate::crypto::log_key(key, &LOG_ID);
        let mut out = log_header_body(base, &LOG_ID);
        let mut chain = crate::crypto::gcm_seal_counter(&log_key, HEADER_NONCE, &out, &mut []);
        out.extend_from_slice(&chain);
        for (n, plain) in records.iter().enumerate() {
            let len = u32::try_from(plain.len()).unwrap_or(u32::MAX);
            let mut body = plain.to_vec();
            chain = crate::crypto::gcm_seal_counter(&log_key, n as u64, &record_aad(&chain, len), &mut body);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(&chain);
        }
        out.extend_from_slice(tail);
        out
    }

    /// A log extending the state [`replay`] starts from (see [`build`]).
    pub fn sealed_log(key: &Key, records: &[&[u8]], tail: &[u8]) -> Vec<u8> {
        build(key, &fixed_state().1, records, tail)
    }

    /// Replays `log` under `key` over a fixed in-memory state, exactly as opening a volume replays its log
    /// file, then narrows the state and checks that it encodes and parses back to itself.
    pub fn replay(key: &Key, log: &[u8]) -> Replayed {
        let (files, base) = fixed_state();
        let mut inner = Inner::new(Path::new(""), "/fuzz".into(), key, Box::new(Unused));
        inner.version = base.version;
        inner.seq = base.seq;
        inner.files = files;
        inner.wide = vec!["dir/b".into()];
        inner.base = Some(base);
        let applied = inner.replay_bytes(log);
        inner.narrow();
        let round_trips = parse_state(&encode_state(9, 9, &inner.files))
            .is_some_and(|(v, s, f)| v == 9 && s == 9 && f == inner.files);
        Replayed {
            applied,
            files: inner.files.len(),
            round_trips,
        }
    }

    /// Writes `dir/.arca-volume.log`: a log extending the newest state slot of the volume in `dir` (bound
    /// below `bound_prefix`, key `key`), with `records` sealed and chained and `tail` raw (see [`build`]).
    pub fn write_sealed_log(
        dir: &Path,
        key: &Key,
        bound_prefix: &str,
        records: &[&[u8]],
        tail: &[u8],
    ) -> Result<(), Error> {
        let prefix = BoundPath::new(bound_prefix)?.to_string();
        let mut inner = Inner::new(dir, prefix, key, Box::new(Unused));
        let (version, seq, _, digest) = inner.read_state()?;
        let log = build(key, &Base { version, seq, digest }, records, tail);
        std::fs::write(dir.join(LOG_FILE), log)
            .map_err(|e| Error::io("writing the volume state log", LOG_FILE, e))
    }
}
