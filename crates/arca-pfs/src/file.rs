//! The protected-file engine: random-access reads and writes over a [`Storage`], with a node cache and
//! Gramine's flush order (data nodes, then MHT nodes bottom-up, then the metadata node last).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{self, Key, KEY_SIZE};
use crate::error::NodeKind;
use crate::format::*;
use crate::path::BoundPath;
use crate::storage::Storage;
use crate::Error;

/// Largest plaintext size Arca accepts (2^50 bytes: far beyond any real file, small enough that no node
/// arithmetic can overflow).
const MAX_SIZE: u64 = 1 << 50;
/// A new file whose data is at most this many bytes is written with one `pwrite` (all nodes at once).
const SMALL_NEW_FILE: usize = 256 * 1024;

/// How node keys (and the metadata KDF nonce) are chosen when writing. Readers are unaffected: both modes
/// write ordinary Gramine files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeKeys {
    /// A fresh random key per node per flush, as Gramine does. The default for files written at run time.
    #[default]
    Random,
    /// Keys and nonce derived from (key, bound path, node number, node plaintext) with AES-CMAC, so equal
    /// inputs give equal bytes and no node key is ever used for two different plaintexts. For reproducible
    /// image conversion (`arca convert`); equal files in equal places are visibly equal, which is acceptable
    /// for build outputs but not the default for run-time data.
    Deterministic,
}

/// Options for opening or creating a protected file.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How node keys are chosen for writes.
    pub node_keys: NodeKeys,
    /// Nodes (4 KiB plaintext each) kept in memory; dirty ones are flushed when the cache is full.
    pub cache_nodes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            node_keys: NodeKeys::Random,
            cache_nodes: 1024,
        }
    }
}

/// What the header and authenticated metadata of an open file say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Format version as found on storage (v1 files become v2 on their first flush).
    pub version: FormatVersion,
    /// Plaintext size.
    pub size: u64,
    /// The bound path stored in the metadata.
    pub bound_path: BoundPath,
    /// The pending-write flag was set when the file was opened (an update was interrupted and not recovered).
    pub pending_write: bool,
    /// The GCM tag of the metadata blob (header bytes 42..58): the file's root MAC.
    pub root_mac: [u8; KEY_SIZE],
}

/// A heap page of plaintext, zeroized on drop.
struct Page<const N: usize>(Box<[u8; N]>);

impl<const N: usize> Page<N> {
    fn zero() -> Self {
        Self(Box::new([0u8; N]))
    }
}

impl<const N: usize> Drop for Page<N> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0[..]);
    }
}

impl<const N: usize> std::ops::Deref for Page<N> {
    type Target = [u8; N];
    fn deref(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> std::ops::DerefMut for Page<N> {
    fn deref_mut(&mut self) -> &mut [u8; N] {
        &mut self.0
    }
}

struct Node {
    buf: Page<NODE_SIZE>,
    dirty: bool,
    used: u64,
}

impl Node {
    fn zero(used: u64) -> Self {
        Self {
            buf: Page::zero(),
            dirty: false,
            used,
        }
    }
}

/// An open protected file: random-access read, write, extend and truncate over a [`Storage`].
///
/// Changes stay in memory until [`flush`](Self::flush) (ordered writes, crash-recoverable with a journaled
/// storage), [`sync`](Self::sync) (the same, durable), a full cache, or drop (best effort; errors are
/// logged — call `flush` to see them).
pub struct ProtectedFile<S: Storage> {
    storage: Option<S>,
    kdk: Key,
    det_key: Option<Key>,
    path: BoundPath,
    path_hash: [u8; 32],
    opened: FileInfo,
    size: u64,
    md_data: Page<MD_DATA_SIZE>,
    root: Entry,
    md_dirty: bool,
    root_mac: [u8; KEY_SIZE],
    disk_data: u64,
    /// Data nodes at or past `disk_data` already encrypted and written to storage by a whole-node append
    /// (beyond what the last committed metadata references, so writing them early is crash-safe); their
    /// entries are in the cached (dirty) MHT nodes and the next flush commits them.
    appended: BTreeSet<u64>,
    /// Reused buffer in which appended nodes are encrypted.
    ct_buf: Vec<u8>,
    disk_mht: u64,
    disk_len: u64,
    data: HashMap<u64, Node>,
    mht: HashMap<u64, Node>,
    clock: u64,
    cache_nodes: usize,
    rand_pool: Zeroizing<Vec<u8>>,
    flush_hook: Option<FlushHook>,
}

/// MHT nodes kept in memory per data node of the cache budget: an MHT node covers 384 KiB of data, so the
/// default budget (1024 data nodes, 4096 MHT nodes) keeps the whole tree of a 1.5 GiB file (16 MiB) and
/// random reads do not re-read and re-decrypt the tree.
const MHT_CACHE_FACTOR: usize = 4;

/// What a flush is about to commit, given to a [`FlushHook`] before any node of the flush is written.
#[derive(Debug)]
pub struct FlushEvent<'a> {
    /// The file's bound path.
    pub bound_path: &'a BoundPath,
    /// The root MAC the storage holds now (`None`: the file has never been written).
    pub previous_root_mac: Option<[u8; KEY_SIZE]>,
    /// The root MAC the storage will hold when the flush completes.
    pub new_root_mac: [u8; KEY_SIZE],
    /// The flush was asked to be durable (`sync`).
    pub durable: bool,
}

/// Called by every flush once the new root MAC is known and before anything is written; an error aborts the
/// flush. The rollback store ([`crate::Volume`]) records the new MAC here.
pub type FlushHook = Box<dyn FnMut(&FlushEvent<'_>) -> Result<(), Error> + Send>;

impl<S: Storage> std::fmt::Debug for ProtectedFile<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtectedFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

fn det_key(kdk: &Key) -> Key {
    Key::from_bytes(crypto::cmac(kdk, &[b"arca-pf deterministic node keys v1"]))
}

/// The deterministic key of the node at `physical` holding `plaintext` (see [`NodeKeys::Deterministic`]).
fn det_node_key(dk: &Key, physical: u64, path_hash: &[u8; 32], plaintext: &[u8]) -> Key {
    let digest = crypto::sha256(&[plaintext]);
    Key::from_bytes(crypto::cmac(
        dk,
        &[b"node", &physical.to_le_bytes(), path_hash, &digest],
    ))
}

impl<S: Storage> ProtectedFile<S> {
    /// Creates an empty protected file bound to `path`, discarding whatever `storage` held. The metadata node
    /// is written by the first flush (at the latest on drop).
    pub fn create(mut storage: S, key: &Key, path: &BoundPath, options: &Options) -> Result<Self, Error> {
        // Only a non-empty storage is truncated: on ext4 truncating a file to 0 (even an empty one) arms
        // "auto_da_alloc", which starts writeback of the file at its close — one disk I/O per new file.
        let len = storage
            .len()
            .map_err(|e| Error::io("reading the storage length", path.as_str(), e))?;
        if len != 0 {
            storage
                .set_len(0)
                .map_err(|e| Error::io("emptying the storage", path.as_str(), e))?;
        }
        let mut me = Self::blank(storage, key, path, options);
        // Nothing is written until the first flush, so a flush hook set right after `create` sees it.
        me.md_dirty = true;
        Ok(me)
    }

    /// Opens a protected file, checking that it is bound to `path` (a renamed or swapped file is refused).
    pub fn open(storage: S, key: &Key, path: &BoundPath, options: &Options) -> Result<Self, Error> {
        Self::open_inner(storage, key, Some(path), options)
    }

    /// Opens a protected file bound to whatever path its metadata holds (for inspection tools: the bound path
    /// is then only as trustworthy as the file's key).
    pub fn open_any_path(storage: S, key: &Key, options: &Options) -> Result<Self, Error> {
        Self::open_inner(storage, key, None, options)
    }

    fn blank(storage: S, key: &Key, path: &BoundPath, options: &Options) -> Self {
        let det = (options.node_keys == NodeKeys::Deterministic).then(|| det_key(key));
        Self {
            storage: Some(storage),
            kdk: key.clone(),
            det_key: det,
            path: path.clone(),
            path_hash: crypto::sha256(&[path.as_str().as_bytes()]),
            opened: FileInfo {
                version: FormatVersion::V2,
                size: 0,
                bound_path: path.clone(),
                pending_write: false,
                root_mac: [0; KEY_SIZE],
            },
            size: 0,
            md_data: Page::zero(),
            root: Entry::default(),
            md_dirty: false,
            root_mac: [0; KEY_SIZE],
            disk_data: 0,
            appended: BTreeSet::new(),
            ct_buf: Vec::new(),
            disk_mht: 0,
            disk_len: 0,
            data: HashMap::new(),
            mht: HashMap::new(),
            clock: 0,
            cache_nodes: options.cache_nodes.max(8),
            rand_pool: Zeroizing::new(Vec::new()),
            flush_hook: None,
        }
    }

    fn open_inner(
        mut storage: S,
        key: &Key,
        expected: Option<&BoundPath>,
        options: &Options,
    ) -> Result<Self, Error> {
        let name = expected
            .map_or("(file opened for any bound path)", |p| p.as_str())
            .to_string();
        let len = storage
            .len()
            .map_err(|e| Error::io("reading the length", &name, e))?;
        if len == 0 || len % NODE_SIZE as u64 != 0 {
            return Err(Error::InvalidHostSize { file: name, len });
        }
        let mut node = Zeroizing::new([0u8; NODE_SIZE]);
        storage
            .read_at(0, &mut node[..])
            .map_err(|e| Error::io("reading the metadata node", &name, e))?;
        let header = parse_header(&node[..], &name)?;
        let md_key = crypto::metadata_key(key, &header.nonce);
        let off = header.version.blob_offset();
        let mut blob = Zeroizing::new([0u8; BLOB_SIZE]);
        blob.copy_from_slice(&node[off..off + BLOB_SIZE]);
        if !crypto::gcm_open(&md_key, &mut blob[..], &header.tag) {
            return Err(Error::MetadataAuth { file: name });
        }
        // Checked after authentication, so that a wrong major version reports the authentication failure.
        let pad_from = off + BLOB_SIZE;
        if let Some(i) = node[pad_from..].iter().position(|&b| b != 0) {
            return Err(Error::NonZeroPadding {
                file: name,
                offset: pad_from + i,
            });
        }
        let path_field = &blob[..PATH_FIELD_SIZE];
        let nul = path_field
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Error::CorruptMetadata {
                file: name.clone(),
                reason: "the bound path has no terminating NUL".into(),
            })?;
        let stored = String::from_utf8(path_field[..nul].to_vec()).map_err(|_| Error::CorruptMetadata {
            file: name.clone(),
            reason: "the bound path is not UTF-8 (Arca binds UTF-8 paths only)".into(),
        })?;
        let stored = BoundPath::from_stored(stored);
        if let Some(exp) = expected {
            if exp != &stored {
                return Err(Error::PathMismatch {
                    expected: exp.to_string(),
                    found: stored.to_string(),
                });
            }
        }
        let name = stored.to_string();
        let size = u64::from_le_bytes(
            blob[BLOB_OFF_SIZE..BLOB_OFF_SIZE + 8]
                .try_into()
                .unwrap_or([0xff; 8]),
        );
        if size > MAX_SIZE {
            return Err(Error::CorruptMetadata {
                file: name,
                reason: format!("plaintext size {size} is too large"),
            });
        }
        let needed = protected_size(size) / NODE_SIZE as u64;
        let found = len / NODE_SIZE as u64;
        if found < needed {
            return Err(Error::Truncated {
                file: name,
                needed,
                found,
            });
        }
        let mut me = Self::blank(storage, key, &stored, options);
        me.size = size;
        me.root = Entry::read(&blob[BLOB_OFF_ROOT_KEY..BLOB_OFF_ROOT_TAG + KEY_SIZE], 0);
        me.md_data.copy_from_slice(&blob[BLOB_OFF_DATA..]);
        me.root_mac = header.tag;
        me.disk_data = data_nodes(size);
        me.disk_mht = mht_nodes(me.disk_data);
        me.disk_len = len;
        me.opened = FileInfo {
            version: header.version,
            size,
            bound_path: stored,
            pending_write: header.flags & FLAG_PENDING_WRITE != 0,
            root_mac: header.tag,
        };
        Ok(me)
    }

    /// Sets the hook every later flush calls before writing (see [`FlushHook`]).
    pub fn set_flush_hook(&mut self, hook: FlushHook) {
        self.flush_hook = Some(hook);
    }

    /// The plaintext size.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// True when the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The bound path.
    pub fn bound_path(&self) -> &BoundPath {
        &self.path
    }

    /// The header and metadata as found when the file was opened (or created).
    pub fn opened_info(&self) -> &FileInfo {
        &self.opened
    }

    /// The current state: version, size, and the root MAC of the last flush.
    pub fn info(&self) -> FileInfo {
        FileInfo {
            version: if self.disk_len == 0 {
                FormatVersion::V2
            } else {
                self.opened.version
            },
            size: self.size,
            bound_path: self.path.clone(),
            pending_write: false,
            root_mac: self.root_mac,
        }
    }

    /// The root MAC (metadata GCM tag) written by the last flush: it changes with every flushed change, so a
    /// rollback store can pin a file's exact version with it.
    pub fn root_mac(&self) -> [u8; KEY_SIZE] {
        self.root_mac
    }

    /// True when changes are waiting for a flush.
    pub fn is_dirty(&self) -> bool {
        self.md_dirty
            || !self.appended.is_empty()
            || self.data.values().any(|n| n.dirty)
            || self.mht.values().any(|n| n.dirty)
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at or past the end).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        if offset >= self.size {
            return Ok(0);
        }
        let n = usize::try_from((self.size - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            if pos < MD_DATA_SIZE as u64 {
                let at = pos as usize;
                let take = (MD_DATA_SIZE - at).min(n - done);
                buf[done..done + take].copy_from_slice(&self.md_data[at..at + take]);
                done += take;
                continue;
            }
            let d = (pos - MD_DATA_SIZE as u64) / NODE_SIZE as u64;
            let at = ((pos - MD_DATA_SIZE as u64) % NODE_SIZE as u64) as usize;
            let take = (NODE_SIZE - at).min(n - done);
            if take == NODE_SIZE && self.stored(d) && !self.data.contains_key(&d) {
                // Whole nodes that are on storage and not cached (hence clean): read the ciphertext straight
                // into the caller's buffer and decrypt it there, without caching (no copy, no eviction).
                done += self.read_direct(d, &mut buf[done..n])?;
                continue;
            }
            let rest = n - done - take;
            if rest > 0
                && rest < NODE_SIZE
                && self.uncached_on_storage(d)
                && self.uncached_on_storage(d + 1)
                && data_parent(d).0 == data_parent(d + 1).0
            {
                // A small read across two uncached, physically adjacent nodes (a 4 KiB read at a 4 KiB offset
                // always is one — the typical random read): one storage read, decrypted in the scratch buffer,
                // not cached (no node allocation, no eviction; random reads rarely come back).
                self.read_pair_direct(d, at, &mut buf[done..n])?;
                done = n;
                continue;
            }
            self.make_room()?;
            self.load_data(d)?;
            let clock = self.tick();
            if let Some(node) = self.data.get_mut(&d) {
                node.used = clock;
                buf[done..done + take].copy_from_slice(&node.buf[at..at + take]);
            }
            done += take;
        }
        Ok(n)
    }

    /// Writes all of `data` at `offset`, extending the file (with zeros in any gap) as needed.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_SIZE)
            .ok_or_else(|| Error::TooLarge {
                file: self.path.to_string(),
                offset,
            })?;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            if pos < MD_DATA_SIZE as u64 {
                let at = pos as usize;
                let take = (MD_DATA_SIZE - at).min(data.len() - done);
                self.md_data[at..at + take].copy_from_slice(&data[done..done + take]);
                self.md_dirty = true;
                done += take;
                self.size = self.size.max(pos + take as u64);
                continue;
            }
            let d = (pos - MD_DATA_SIZE as u64) / NODE_SIZE as u64;
            let at = ((pos - MD_DATA_SIZE as u64) % NODE_SIZE as u64) as usize;
            let take = (NODE_SIZE - at).min(data.len() - done);
            self.make_room()?;
            if take == NODE_SIZE && d >= self.disk_data && !self.data.contains_key(&d) {
                // Whole nodes past the committed end: encrypt them from `data` and write them now (no
                // plaintext copy in the cache; only their MHT entries wait for the flush).
                done += self.append_direct(d, &data[done..])?;
                let reached = offset + done as u64;
                if reached > self.size {
                    self.size = reached;
                    self.md_dirty = true;
                }
                continue;
            }
            if take == NODE_SIZE && !self.data.contains_key(&d) {
                // A whole-node overwrite needs no decryption of the old node; the parent must still be loaded
                // for the flush, which loads it then.
                let clock = self.tick();
                let mut node = Node::zero(clock);
                node.dirty = true;
                self.data.insert(d, node);
            } else {
                self.load_data(d)?;
            }
            let clock = self.tick();
            if let Some(node) = self.data.get_mut(&d) {
                node.buf[at..at + take].copy_from_slice(&data[done..done + take]);
                node.dirty = true;
                node.used = clock;
            }
            done += take;
            // Grow chunk by chunk: a flush in the middle of this write must see every node written so far.
            let reached = pos + take as u64;
            if reached > self.size {
                self.size = reached;
                self.md_dirty = true;
            }
        }
        if end > self.size {
            self.size = end;
            self.md_dirty = true;
        }
        Ok(())
    }

    /// Sets the plaintext size: extends with zeros or truncates. A truncation is flushed at once.
    pub fn set_len(&mut self, len: u64) -> Result<(), Error> {
        if len > MAX_SIZE {
            return Err(Error::TooLarge {
                file: self.path.to_string(),
                offset: len,
            });
        }
        if len >= self.size {
            if len > self.size {
                self.size = len;
                self.md_dirty = true;
            }
            return Ok(());
        }
        // Keep the invariant "plaintext bytes past the size are zero" in the metadata and the last node.
        if len < MD_DATA_SIZE as u64 {
            self.md_data[len as usize..].fill(0);
        }
        let keep = data_nodes(len);
        self.data.retain(|&d, _| d < keep);
        self.mht.retain(|&l, _| l < mht_nodes(keep));
        if len > MD_DATA_SIZE as u64 {
            let tail = ((len - MD_DATA_SIZE as u64) % NODE_SIZE as u64) as usize;
            if tail != 0 {
                let last = keep - 1;
                self.load_data(last)?;
                if let Some(node) = self.data.get_mut(&last) {
                    node.buf[tail..].fill(0);
                    node.dirty = true;
                }
            }
        }
        self.disk_data = self.disk_data.min(keep);
        self.appended.retain(|&d| d < keep);
        self.disk_mht = self.disk_mht.min(mht_nodes(keep));
        self.size = len;
        self.md_dirty = true;
        // Commit the truncation now, so that later writes past the new end never overwrite nodes that the
        // last committed metadata still references (the journal only covers nodes inside the file).
        self.flush()
    }

    /// Writes every change to storage in crash-recoverable order (not necessarily durable).
    pub fn flush(&mut self) -> Result<(), Error> {
        self.flush_inner(false)
    }

    /// Like [`flush`](Self::flush), then makes the storage durable (`fsync`).
    pub fn sync(&mut self) -> Result<(), Error> {
        self.flush_inner(true)?;
        let name = self.path.to_string();
        self.st().sync().map_err(|e| Error::io("syncing", &name, e))
    }

    /// Binds the file to another path (for a rename) and flushes the new metadata.
    pub fn rebind(&mut self, path: &BoundPath) -> Result<(), Error> {
        self.path = path.clone();
        self.path_hash = crypto::sha256(&[path.as_str().as_bytes()]);
        self.md_dirty = true;
        self.flush()
    }

    /// Flushes and returns the storage.
    pub fn into_storage(mut self) -> Result<S, Error> {
        self.flush()?;
        Ok(self
            .storage
            .take()
            .expect("the storage is present until into_storage"))
    }

    /// Drops the file without flushing its pending changes (a file nobody can open again, e.g. unlinked).
    pub fn discard(mut self) {
        self.storage = None;
    }

    /// Mutable access to the storage (e.g. to sync a directory); do not write through it.
    pub fn storage_mut(&mut self) -> &mut S {
        self.st()
    }

    fn st(&mut self) -> &mut S {
        // `storage` is `None` only inside `into_storage` and `drop`, after the last use.
        self.storage
            .as_mut()
            .expect("the storage is present until into_storage")
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn name(&self) -> String {
        self.path.to_string()
    }

    fn mht_entry(&mut self, l: u64) -> Result<Entry, Error> {
        if l == 0 {
            return Ok(self.root);
        }
        let (p, idx) = mht_parent(l);
        self.load_mht(p)?;
        Ok(self
            .mht
            .get(&p)
            .map(|n| Entry::read(&n.buf[..], idx))
            .unwrap_or_default())
    }

    fn load_mht(&mut self, l: u64) -> Result<(), Error> {
        if self.mht.contains_key(&l) {
            return Ok(());
        }
        let clock = self.tick();
        let mut node = Node::zero(clock);
        if l < self.disk_mht {
            let entry = self.mht_entry(l)?;
            self.read_node(mht_physical(l), &entry, &mut node.buf, NodeKind::Mht, l)?;
        } else {
            // A node the file has never written: it must be written by the next flush.
            node.dirty = true;
        }
        self.mht.insert(l, node);
        Ok(())
    }

    fn load_data(&mut self, d: u64) -> Result<(), Error> {
        if self.data.contains_key(&d) {
            return Ok(());
        }
        let clock = self.tick();
        let mut node = Node::zero(clock);
        if self.stored(d) {
            let entry = self.data_entry(d)?;
            self.read_node(data_physical(d), &entry, &mut node.buf, NodeKind::Data, d)?;
        } else {
            node.dirty = true;
        }
        self.data.insert(d, node);
        Ok(())
    }

    /// True when data node `d` has ciphertext on storage: committed, or appended since the last flush.
    fn stored(&self, d: u64) -> bool {
        d < self.disk_data || self.appended.contains(&d)
    }

    /// Encrypts data node `d` (at or past `disk_data`, not cached) and the following whole nodes of `data`
    /// that are children of the same MHT node (hence physically contiguous) and not cached, writes them with
    /// one storage write and records their entries in the (dirty) MHT node. Returns the bytes consumed (a
    /// multiple of the node size, at least one node).
    fn append_direct(&mut self, d: u64, data: &[u8]) -> Result<usize, Error> {
        let (p, _) = data_parent(d);
        let limit = ((p + 1) * DATA_PER_MHT).min(d + (data.len() / NODE_SIZE) as u64);
        let mut end = d + 1;
        while end < limit && !self.data.contains_key(&end) {
            end += 1;
        }
        self.load_mht(p)?;
        let count = (end - d) as usize;
        let mut keys = Vec::with_capacity(count);
        for (i, plain) in data[..count * NODE_SIZE].chunks_exact(NODE_SIZE).enumerate() {
            keys.push(self.new_key(data_physical(d + i as u64), plain)?);
        }
        let mut ct = std::mem::take(&mut self.ct_buf);
        ct.clear();
        ct.extend_from_slice(&data[..count * NODE_SIZE]);
        let mut entries = Vec::with_capacity(count);
        for (chunk, key) in ct.chunks_exact_mut(NODE_SIZE).zip(&keys) {
            let tag = crypto::gcm_seal(key, chunk);
            entries.push(Entry {
                key: *key.as_bytes(),
                tag,
            });
        }
        drop(keys);
        let physical = data_physical(d);
        let name = self.name();
        let written = self.st().write_at(physical * NODE_SIZE as u64, &ct);
        self.ct_buf = ct;
        written.map_err(|e| {
            Error::io(
                format!("writing data nodes {d}..{end} (physical {physical})"),
                &name,
                e,
            )
        })?;
        let clock = self.tick();
        if let Some(n) = self.mht.get_mut(&p) {
            for (i, entry) in entries.iter().enumerate() {
                entry.write(&mut n.buf[..], data_parent(d + i as u64).1);
            }
            n.dirty = true;
            n.used = clock;
        }
        self.appended.extend(d..end);
        Ok(count * NODE_SIZE)
    }

    fn uncached_on_storage(&self, d: u64) -> bool {
        self.stored(d) && !self.data.contains_key(&d)
    }

    /// Reads `out` from offset `at` of data node `d` on, across into node `d + 1` (both on storage, uncached,
    /// children of the same MHT node): both read and authenticated by [`read_direct`](Self::read_direct) in the
    /// scratch buffer, which is zeroized afterwards.
    fn read_pair_direct(&mut self, d: u64, at: usize, out: &mut [u8]) -> Result<(), Error> {
        let mut ct = std::mem::take(&mut self.ct_buf);
        ct.resize(2 * NODE_SIZE, 0);
        let result = self
            .read_direct(d, &mut ct)
            .and_then(|n| match ct[..n].get(at..at + out.len()) {
                Some(plain) => {
                    out.copy_from_slice(plain);
                    Ok(())
                }
                None => Err(Error::CorruptMetadata {
                    file: self.name(),
                    reason: format!("a read of {} bytes at {at} does not fit two nodes", out.len()),
                }),
            });
        // The plaintext goes; the buffer keeps its length (no second zeroing at the next resize).
        ct.as_mut_slice().zeroize();
        self.ct_buf = ct;
        result
    }

    fn data_entry(&mut self, d: u64) -> Result<Entry, Error> {
        let (p, idx) = data_parent(d);
        self.load_mht(p)?;
        let clock = self.tick();
        Ok(self
            .mht
            .get_mut(&p)
            .map(|n| {
                n.used = clock;
                Entry::read(&n.buf[..], idx)
            })
            .unwrap_or_default())
    }

    /// Reads data node `d` and the following whole nodes that fit in `out` (all on storage, uncached and
    /// children of the same MHT node, hence physically contiguous) with one read into `out`, and decrypts
    /// them in place. Returns the bytes filled (a multiple of the node size, at least one node).
    fn read_direct(&mut self, d: u64, out: &mut [u8]) -> Result<usize, Error> {
        let (p, _) = data_parent(d);
        let limit = ((p + 1) * DATA_PER_MHT).min(d + (out.len() / NODE_SIZE) as u64);
        let mut end = d + 1;
        while end < limit && self.stored(end) && !self.data.contains_key(&end) {
            end += 1;
        }
        if self.mht.len() >= self.cache_nodes * MHT_CACHE_FACTOR {
            self.make_room()?;
        }
        self.load_mht(p)?;
        let len = (end - d) as usize * NODE_SIZE;
        let out = &mut out[..len];
        let physical = data_physical(d);
        let name = self.name();
        self.st().read_at(physical * NODE_SIZE as u64, out).map_err(|e| {
            Error::io(
                format!("reading data nodes {d}..{end} (physical {physical})"),
                &name,
                e,
            )
        })?;
        let clock = self.tick();
        let Some(parent) = self.mht.get_mut(&p) else {
            return Err(Error::CorruptMetadata {
                file: name,
                reason: format!("MHT node {p} vanished from the cache"),
            });
        };
        parent.used = clock;
        for (i, node) in out.chunks_exact_mut(NODE_SIZE).enumerate() {
            let dd = d + i as u64;
            let entry = Entry::read(&parent.buf[..], data_parent(dd).1);
            if !crypto::gcm_open(&Key::from_bytes(entry.key), node, &entry.tag) {
                out.fill(0);
                return Err(Error::NodeAuth {
                    file: name,
                    kind: NodeKind::Data,
                    logical: dd,
                    physical: physical + i as u64,
                });
            }
        }
        Ok(len)
    }

    fn read_node(
        &mut self,
        physical: u64,
        entry: &Entry,
        buf: &mut [u8; NODE_SIZE],
        kind: NodeKind,
        logical: u64,
    ) -> Result<(), Error> {
        let name = self.name();
        self.st()
            .read_at(physical * NODE_SIZE as u64, &mut buf[..])
            .map_err(|e| {
                Error::io(
                    format!("reading {kind} node {logical} (physical {physical})"),
                    &name,
                    e,
                )
            })?;
        let key = Key::from_bytes(entry.key);
        if !crypto::gcm_open(&key, &mut buf[..], &entry.tag) {
            buf.fill(0);
            return Err(Error::NodeAuth {
                file: name,
                kind,
                logical,
                physical,
            });
        }
        Ok(())
    }

    fn make_room(&mut self) -> Result<(), Error> {
        let mht_budget = self.cache_nodes * MHT_CACHE_FACTOR;
        if self.data.len() < self.cache_nodes && self.mht.len() < mht_budget {
            return Ok(());
        }
        if self.data.values().any(|n| n.dirty) || self.mht.values().any(|n| n.dirty) {
            self.flush_inner(false)?;
        }
        let keep_data = self.cache_nodes / 2;
        if self.data.len() > keep_data {
            let mut uses: Vec<u64> = self.data.values().map(|n| n.used).collect();
            uses.sort_unstable();
            let cut = uses[uses.len() - keep_data];
            self.data.retain(|_, n| n.used >= cut);
        }
        let keep_mht = mht_budget / 2;
        if self.mht.len() > keep_mht {
            let mut uses: Vec<u64> = self.mht.values().map(|n| n.used).collect();
            uses.sort_unstable();
            let cut = uses[uses.len() - keep_mht];
            self.mht.retain(|&l, n| l == 0 || n.used >= cut);
        }
        Ok(())
    }

    fn new_key(&mut self, physical: u64, plaintext: &[u8]) -> Result<Key, Error> {
        if let Some(dk) = &self.det_key {
            return Ok(det_node_key(dk, physical, &self.path_hash, plaintext));
        }
        self.random_key()
    }

    fn random_key(&mut self) -> Result<Key, Error> {
        if self.rand_pool.len() < KEY_SIZE {
            let mut pool = Zeroizing::new(vec![0u8; 64 * KEY_SIZE]);
            crypto::fill_random(&mut pool)?;
            self.rand_pool = pool;
        }
        let at = self.rand_pool.len() - KEY_SIZE;
        let mut k = [0u8; KEY_SIZE];
        k.copy_from_slice(&self.rand_pool[at..]);
        self.rand_pool.truncate(at);
        let key = Key::from_bytes(k);
        if key.is_zero() {
            // Probability 2^-128, but an all-zero entry means "no node": draw again.
            return self.random_key();
        }
        Ok(key)
    }

    fn encrypt_node(
        &mut self,
        physical: u64,
        plain: &[u8; NODE_SIZE],
    ) -> Result<(Entry, Box<[u8; NODE_SIZE]>), Error> {
        let key = self.new_key(physical, plain)?;
        let mut ct = Box::new(*plain);
        let tag = crypto::gcm_seal(&key, &mut ct[..]);
        Ok((
            Entry {
                key: *key.as_bytes(),
                tag,
            },
            ct,
        ))
    }

    fn set_data_entry(&mut self, d: u64, entry: Entry) -> Result<(), Error> {
        let (p, idx) = data_parent(d);
        self.load_mht(p)?;
        if let Some(n) = self.mht.get_mut(&p) {
            entry.write(&mut n.buf[..], idx);
            n.dirty = true;
        }
        Ok(())
    }

    fn flush_inner(&mut self, durable: bool) -> Result<(), Error> {
        let n_data = data_nodes(self.size);
        let n_mht = mht_nodes(n_data);
        let holes: Vec<u64> = (self.disk_data..n_data)
            .filter(|d| !self.data.contains_key(d) && !self.appended.contains(d))
            .collect();
        if !self.is_dirty() && holes.is_empty() && self.disk_len != 0 {
            return Ok(());
        }
        let name = self.name();

        // 1. Journal: the old bytes of every existing node this flush overwrites (data, MHT, metadata).
        if self.storage.as_ref().is_some_and(|s| s.journaled()) && self.disk_len > 0 {
            let mut mht_touched = BTreeSet::new();
            let mut physical = BTreeSet::from([0u64]);
            let dirty_data: Vec<u64> = self
                .data
                .iter()
                .filter(|(_, n)| n.dirty)
                .map(|(&d, _)| d)
                .collect();
            let mut starts: Vec<u64> = self
                .mht
                .iter()
                .filter(|(_, n)| n.dirty)
                .map(|(&l, _)| l)
                .collect();
            for &d in dirty_data.iter().chain(holes.first()) {
                if d < self.disk_data {
                    physical.insert(data_physical(d));
                }
                starts.push(data_parent(d).0);
            }
            for mut l in starts {
                loop {
                    if !mht_touched.insert(l) || l == 0 {
                        break;
                    }
                    l = mht_parent(l).0;
                }
            }
            physical.extend(
                mht_touched
                    .iter()
                    .filter(|&&l| l < self.disk_mht)
                    .map(|&l| mht_physical(l)),
            );
            let mut old = Vec::with_capacity(physical.len());
            for p in physical {
                let mut buf = vec![0u8; NODE_SIZE];
                self.st()
                    .read_at(p * NODE_SIZE as u64, &mut buf)
                    .map_err(|e| Error::io(format!("reading node {p} for the journal"), &name, e))?;
                old.push((p, buf));
            }
            let disk_len = self.disk_len;
            self.st()
                .begin_update(disk_len, &old, durable)
                .map_err(|e| Error::io("writing the recovery journal", &name, e))?;
        }

        // 2. Data nodes: holes (never-written nodes inside the size) and dirty nodes.
        let mut writes: BTreeMap<u64, Box<[u8; NODE_SIZE]>> = BTreeMap::new();
        for d in holes {
            let (entry, ct) = self.encrypt_node(data_physical(d), &[0u8; NODE_SIZE])?;
            self.set_data_entry(d, entry)?;
            writes.insert(data_physical(d), ct);
            if writes.len() >= 256 {
                self.write_runs(&mut writes)?;
            }
        }
        self.data.retain(|&d, _| d < n_data);
        let mut dirty_data: Vec<u64> = self
            .data
            .iter()
            .filter(|(_, n)| n.dirty)
            .map(|(&d, _)| d)
            .collect();
        dirty_data.sort_unstable();
        // Dirty data nodes are encrypted straight into runs of physically contiguous ciphertext (one copy of
        // the plaintext, one write per run).
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for d in dirty_data {
            let physical = data_physical(d);
            let key = match (&self.det_key, self.data.get(&d)) {
                (_, None) => continue,
                (Some(dk), Some(n)) => det_node_key(dk, physical, &self.path_hash, &n.buf[..]),
                (None, Some(_)) => self.random_key()?,
            };
            let contiguous = runs
                .last()
                .is_some_and(|(start, buf)| start + (Vec::len(buf) / NODE_SIZE) as u64 == physical);
            if !contiguous {
                runs.push((physical, Vec::with_capacity(DATA_PER_MHT as usize * NODE_SIZE)));
            }
            let Some((_, buf)) = runs.last_mut() else {
                continue;
            };
            let at = Vec::len(buf);
            match self.data.get_mut(&d) {
                Some(n) => {
                    buf.extend_from_slice(&n.buf[..]);
                    n.dirty = false;
                }
                None => continue,
            }
            let tag = crypto::gcm_seal(&key, &mut buf[at..]);
            self.set_data_entry(
                d,
                Entry {
                    key: *key.as_bytes(),
                    tag,
                },
            )?;
        }

        // 3. MHT nodes, children before parents (a child's logical number is always larger).
        let mut pending: BTreeSet<u64> = self
            .mht
            .iter()
            .filter(|(_, n)| n.dirty)
            .map(|(&l, _)| l)
            .collect();
        while let Some(l) = pending.pop_last() {
            if l >= n_mht {
                self.mht.remove(&l);
                continue;
            }
            let plain = match self.mht.get_mut(&l) {
                Some(n) => {
                    clear_stale_entries(&mut n.buf, l, n_data, n_mht);
                    n.dirty = false;
                    Zeroizing::new(*n.buf.0)
                }
                None => continue,
            };
            let (entry, ct) = self.encrypt_node(mht_physical(l), &plain)?;
            writes.insert(mht_physical(l), ct);
            if l == 0 {
                self.root = entry;
            } else {
                let (p, idx) = mht_parent(l);
                self.load_mht(p)?;
                if let Some(n) = self.mht.get_mut(&p) {
                    entry.write(&mut n.buf[..], idx);
                    n.dirty = true;
                }
                pending.insert(p);
            }
        }
        if n_mht == 0 {
            self.root = Entry::default();
        }

        // 4. Seal the metadata, let the hook record the new root MAC, then write the nodes and the metadata
        //    node last.
        let previous = (self.disk_len > 0).then_some(self.root_mac);
        let (node, new_mac) = self.seal_metadata()?;
        if let Some(hook) = self.flush_hook.as_mut() {
            hook(&FlushEvent {
                bound_path: &self.path,
                previous_root_mac: previous,
                new_root_mac: new_mac,
                durable,
            })?;
        }
        self.root_mac = new_mac;
        let small = runs.iter().map(|(_, r)| Vec::len(r)).sum::<usize>() <= SMALL_NEW_FILE;
        if self.disk_len == 0 && small {
            // A new small file: nothing on disk to keep consistent, so all its nodes go out in one write (a
            // crash in the middle leaves an unreadable new file — every node is authenticated — never a wrong
            // one, as with separate writes).
            for (start, run) in runs {
                for (i, chunk) in run.chunks_exact(NODE_SIZE).enumerate() {
                    let mut ct = Box::new([0u8; NODE_SIZE]);
                    ct.copy_from_slice(chunk);
                    writes.insert(start + i as u64, ct);
                }
            }
            let mut md = Box::new([0u8; NODE_SIZE]);
            md.copy_from_slice(&node[..]);
            writes.insert(0, md);
            self.write_runs(&mut writes)?;
        } else {
            for (start, run) in runs {
                self.st()
                    .write_at(start * NODE_SIZE as u64, &run)
                    .map_err(|e| Error::io(format!("writing data nodes from {start}"), &name, e))?;
            }
            self.write_runs(&mut writes)?;
            self.st()
                .write_at(0, &node[..])
                .map_err(|e| Error::io("writing the metadata node", &name, e))?;
        }
        let new_len = protected_size(self.size);
        let cur_len = self
            .st()
            .len()
            .map_err(|e| Error::io("reading the length", &name, e))?;
        if cur_len != new_len {
            self.st()
                .set_len(new_len)
                .map_err(|e| Error::io("setting the length", &name, e))?;
        }
        self.st()
            .end_update(durable)
            .map_err(|e| Error::io("completing the update", &name, e))?;
        self.md_dirty = false;
        self.disk_data = n_data;
        self.appended.clear();
        self.disk_mht = n_mht;
        self.disk_len = new_len;
        Ok(())
    }

    fn write_runs(&mut self, writes: &mut BTreeMap<u64, Box<[u8; NODE_SIZE]>>) -> Result<(), Error> {
        let name = self.name();
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        let mut next = u64::MAX;
        let all = std::mem::take(writes);
        for (p, ct) in all {
            if p != next && !run.is_empty() {
                self.st()
                    .write_at(run_start * NODE_SIZE as u64, &run)
                    .map_err(|e| Error::io(format!("writing nodes from {run_start}"), &name, e))?;
                run.clear();
            }
            if run.is_empty() {
                run_start = p;
            }
            run.extend_from_slice(&ct[..]);
            next = p + 1;
        }
        if !run.is_empty() {
            self.st()
                .write_at(run_start * NODE_SIZE as u64, &run)
                .map_err(|e| Error::io(format!("writing nodes from {run_start}"), &name, e))?;
        }
        Ok(())
    }

    fn seal_metadata(&mut self) -> Result<(Zeroizing<[u8; NODE_SIZE]>, [u8; KEY_SIZE]), Error> {
        let mut blob = Zeroizing::new([0u8; BLOB_SIZE]);
        blob[..self.path.as_str().len()].copy_from_slice(self.path.as_str().as_bytes());
        blob[BLOB_OFF_SIZE..BLOB_OFF_SIZE + 8].copy_from_slice(&self.size.to_le_bytes());
        self.root
            .write(&mut blob[BLOB_OFF_ROOT_KEY..BLOB_OFF_ROOT_TAG + KEY_SIZE], 0);
        blob[BLOB_OFF_DATA..].copy_from_slice(&self.md_data[..]);
        let mut nonce = [0u8; 32];
        match &self.det_key {
            Some(dk) => {
                let digest = crypto::sha256(&[&blob[..]]);
                nonce[..16].copy_from_slice(&crypto::cmac(dk, &[b"metadata nonce 1", &digest]));
                nonce[16..].copy_from_slice(&crypto::cmac(dk, &[b"metadata nonce 2", &digest]));
            }
            None => crypto::fill_random(&mut nonce)?,
        }
        let md_key = crypto::metadata_key(&self.kdk, &nonce);
        let tag = crypto::gcm_seal(&md_key, &mut blob[..]);
        let mut node = Zeroizing::new([0u8; NODE_SIZE]);
        node[..8].copy_from_slice(FILE_ID);
        node[OFF_MAJOR] = 2;
        node[OFF_MINOR] = 0;
        node[OFF_NONCE..OFF_NONCE + 32].copy_from_slice(&nonce);
        node[OFF_TAG..OFF_TAG + KEY_SIZE].copy_from_slice(&tag);
        node[OFF_FLAGS_V2] = 0;
        node[OFF_BLOB_V2..OFF_BLOB_V2 + BLOB_SIZE].copy_from_slice(&blob[..]);
        Ok((node, tag))
    }
}

/// Zeroes the entries of MHT node `l` that point past the end of the file (left by a truncation), so what
/// is written depends only on the current contents.
fn clear_stale_entries(buf: &mut [u8; NODE_SIZE], l: u64, n_data: u64, n_mht: u64) {
    for i in 0..DATA_PER_MHT {
        if l * DATA_PER_MHT + i >= n_data {
            Entry::default().write(&mut buf[..], i as usize);
        }
    }
    for i in 0..CHILDREN_PER_MHT {
        if l * CHILDREN_PER_MHT + i + 1 >= n_mht {
            Entry::default().write(&mut buf[..], (DATA_PER_MHT + i) as usize);
        }
    }
}

struct Header {
    version: FormatVersion,
    nonce: [u8; 32],
    tag: [u8; KEY_SIZE],
    flags: u8,
}

fn parse_header(node: &[u8], name: &str) -> Result<Header, Error> {
    if &node[..8] != FILE_ID {
        return Err(Error::NotProtectedFile { file: name.into() });
    }
    let (major, minor) = (node[OFF_MAJOR], node[OFF_MINOR]);
    let version = match (major, minor) {
        (2, 0) => FormatVersion::V2,
        (1, 0) => FormatVersion::V1,
        _ => {
            return Err(Error::UnsupportedVersion {
                file: name.into(),
                major,
                minor,
            })
        }
    };
    let flags = if version == FormatVersion::V2 {
        node[OFF_FLAGS_V2]
    } else {
        0
    };
    if flags & !FLAG_PENDING_WRITE != 0 {
        return Err(Error::UnknownFlags {
            file: name.into(),
            flags,
        });
    }
    let mut nonce = [0u8; 32];
    nonce.copy_from_slice(&node[OFF_NONCE..OFF_NONCE + 32]);
    let mut tag = [0u8; KEY_SIZE];
    tag.copy_from_slice(&node[OFF_TAG..OFF_TAG + KEY_SIZE]);
    Ok(Header {
        version,
        nonce,
        tag,
        flags,
    })
}

impl<S: Storage> Drop for ProtectedFile<S> {
    fn drop(&mut self) {
        if self.storage.is_none() {
            return;
        }
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "flushing a protected file on close failed; its last changes are lost");
        }
    }
}
