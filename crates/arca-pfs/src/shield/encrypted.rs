//! The read-write plaintext view of a protected directory.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};

use super::inodes::Inodes;
use super::{errno, TTL};
use crate::rollback::is_internal_name;
use crate::{Error, HostFile, Options, ProtectedFile, Volume};

struct OpenFile {
    file: ProtectedFile<HostFile>,
    handles: u32,
}

/// The plaintext read-write view of the protected files in a [`Volume`]'s directory.
pub struct EncryptedFs {
    dir: PathBuf,
    volume: Volume,
    options: Options,
    inodes: Inodes,
    open: HashMap<u64, OpenFile>,
    /// Open files whose name is gone (unlinked, or replaced by a rename): they live on, nameless, until their
    /// last release, served from their open host descriptor (whose host name is deleted too).
    orphans: HashSet<u64>,
    sizes: HashMap<u64, u64>,
    /// Reused for every read reply (no per-read allocation and zeroing of up to 1 MiB).
    read_buf: Vec<u8>,
}

impl std::fmt::Debug for EncryptedFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedFs")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Largest read or write request the shield asks the kernel for.
const MAX_REQUEST: u32 = 1 << 20;

fn name_str(name: &OsStr) -> Result<&str, i32> {
    let n = name.to_str().ok_or(libc::EINVAL)?;
    if is_internal_name(n) {
        // The volume's own files (state, journals) are not part of the view.
        return Err(libc::EPERM);
    }
    Ok(n)
}

fn log_err(op: &str, path: &str, e: &Error) -> i32 {
    tracing::error!(op, path, error = %e, "protected-files shield refused the operation");
    errno(e)
}

fn io_errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn to_time(t: Option<TimeOrNow>) -> Option<SystemTime> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(s) => s,
        TimeOrNow::Now => SystemTime::now(),
    })
}

impl EncryptedFs {
    /// A view of the protected files in `dir` (the volume's directory).
    pub fn new(dir: impl Into<PathBuf>, volume: Volume, options: Options) -> Self {
        Self {
            dir: dir.into(),
            volume,
            options,
            inodes: Inodes::new(),
            open: HashMap::new(),
            orphans: HashSet::new(),
            sizes: HashMap::new(),
            read_buf: Vec::new(),
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(rel)
        }
    }

    fn plaintext_size(&mut self, ino: u64, rel: &str) -> Result<u64, i32> {
        if let Some(f) = self.open.get(&ino) {
            return Ok(f.file.len());
        }
        if let Some(&s) = self.sizes.get(&ino) {
            return Ok(s);
        }
        let f = self
            .volume
            .open_file(rel, &self.options)
            .map_err(|e| log_err("stat", rel, &e))?;
        let s = f.len();
        self.sizes.insert(ino, s);
        Ok(s)
    }

    /// The path of `ino` for messages: its name, or a placeholder for an orphan.
    fn label(&self, ino: u64) -> String {
        match self.inodes.path(ino) {
            Some(p) => p.to_string(),
            None if self.orphans.contains(&ino) => "(unlinked while open)".into(),
            None => "?".into(),
        }
    }

    /// The attributes of `ino`: from its open host descriptor when it is open (orphans included), else from
    /// its host path.
    fn attr(&mut self, ino: u64) -> Result<FileAttr, i32> {
        if let Some(f) = self.open.get_mut(&ino) {
            // An open file: `fstat` on its host descriptor (no path walk; for an orphan, whose host name is
            // gone too, the only way).
            let m = f.file.storage_mut().file().metadata().map_err(|e| io_errno(&e))?;
            let nlink = if self.orphans.contains(&ino) { 0 } else { 1 };
            return Ok(Self::file_attr(
                ino,
                FileType::RegularFile,
                f.file.len(),
                nlink,
                &m,
            ));
        }
        let rel = self.inodes.path(ino).ok_or(libc::ENOENT)?.to_string();
        let m = std::fs::symlink_metadata(self.host(&rel)).map_err(|e| io_errno(&e))?;
        let kind = if m.is_dir() {
            FileType::Directory
        } else if m.is_file() {
            FileType::RegularFile
        } else if m.file_type().is_symlink() {
            FileType::Symlink
        } else {
            return Err(libc::EPERM);
        };
        let size = if kind == FileType::RegularFile {
            self.plaintext_size(ino, &rel)?
        } else {
            m.len()
        };
        let nlink = if kind == FileType::Directory { 2 } else { 1 };
        Ok(Self::file_attr(ino, kind, size, nlink, &m))
    }

    fn file_attr(ino: u64, kind: FileType, size: u64, nlink: u32, m: &std::fs::Metadata) -> FileAttr {
        let t =
            |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: t(m.atime(), m.atime_nsec()),
            mtime: t(m.mtime(), m.mtime_nsec()),
            ctime: t(m.ctime(), m.ctime_nsec()),
            crtime: t(m.ctime(), m.ctime_nsec()),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink,
            uid: m.uid(),
            gid: m.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The open file `ino` lost its name (unlinked, or replaced by a rename): it stays open, nameless, until
    /// its last release. Its later flushes are not recorded in the volume state (nobody can open it again)
    /// and have no journal (a journal under the old name could be replayed onto a new file of that name).
    fn orphan(&mut self, ino: u64) {
        if let Some(f) = self.open.get_mut(&ino) {
            f.file.set_flush_hook(Box::new(|_| Ok(())));
            f.file.storage_mut().detach();
            self.orphans.insert(ino);
        }
        self.sizes.remove(&ino);
    }

    fn entry(&mut self, rel: &str, reply: ReplyEntry) {
        let ino = self.inodes.ino(rel);
        match self.attr(ino) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn open_file(&mut self, ino: u64) -> Result<&mut OpenFile, i32> {
        if !self.open.contains_key(&ino) {
            let rel = self.inodes.path(ino).ok_or(libc::ENOENT)?.to_string();
            let file = self
                .volume
                .open_file(&rel, &self.options)
                .map_err(|e| log_err("open", &rel, &e))?;
            self.open.insert(ino, OpenFile { file, handles: 0 });
        }
        self.open.get_mut(&ino).ok_or(libc::EIO)
    }

    /// Rebinds every protected file at or below `to` (just renamed from `from`) to its new path.
    fn rebind_tree(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let host = self.host(to);
        let meta = std::fs::symlink_metadata(&host).map_err(|e| Error::io("stat after rename", to, e))?;
        if meta.is_file() {
            return self.rebind_one(from, to);
        }
        if meta.is_dir() {
            let rd = std::fs::read_dir(&host).map_err(|e| Error::io("listing", to, e))?;
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("listing", to, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if is_internal_name(&name) {
                    continue;
                }
                self.rebind_tree(&format!("{from}/{name}"), &format!("{to}/{name}"))?;
            }
        }
        Ok(())
    }

    fn rebind_one(&mut self, from: &str, to: &str) -> Result<(), Error> {
        let bound = self.volume.bound_path(to)?;
        let ino = self.inodes.lookup(to);
        let hook = self.volume.hook(to);
        let host = self.host(to);
        if let Some(f) = ino.and_then(|i| self.open.get_mut(&i)) {
            f.file.storage_mut().set_path(&host);
            f.file.set_flush_hook(hook);
            f.file.rebind(&bound)?;
        } else {
            // Open under the old binding (at its new host name), check it, then rebind.
            let storage = HostFile::open(&host, false).map_err(|e| Error::io("opening", to, e))?;
            let key_bound = self.volume.bound_path(from)?;
            let mut f = self
                .volume
                .open_storage(storage, from, &key_bound, &self.options)?;
            f.set_flush_hook(hook);
            f.rebind(&bound)?;
        }
        self.volume.removed(from)
    }
}

impl Filesystem for EncryptedFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // 1 MiB requests (the kernel accepts more than 32 pages per request once `max_pages` is negotiated).
        let _ = config.set_max_write(MAX_REQUEST);
        let _ = config.set_max_readahead(MAX_REQUEST);
        // The kernel's writeback cache: `write` returns once the page cache holds the data. `close` and `fsync`
        // still write every dirty page back before they reach the shield (FUSE flush / fsync), so what they
        // promise is unchanged. It costs one request per written file (the kernel's SETATTR of `mtime` before
        // the flush), but reads are faster with it: measured without it, small-file creation gained ~10 % and
        // sequential reads lost ~20 % (docs/protected-files.md), so it stays on. The kernel asks for
        // attributes before writes: files unlinked while open answer them from their open descriptor (`orphan`).
        if config
            .add_capabilities(fuser::consts::FUSE_WRITEBACK_CACHE)
            .is_err()
        {
            tracing::debug!("the kernel offers no FUSE writeback cache; writes go through");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        for (ino, mut f) in self.open.drain() {
            if self.orphans.remove(&ino) {
                f.file.discard();
                continue;
            }
            if let Err(e) = f.file.flush() {
                tracing::error!(error = %e, "flushing a protected file at unmount failed");
            }
        }
        if let Err(e) = self.volume.sync() {
            tracing::error!(error = %e, "committing the volume state at unmount failed");
        }
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let rel = match name_str(name).and_then(|n| self.inodes.child(parent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(_) => return reply.error(libc::ENOENT),
        };
        // One `stat` of the host path: a name that does not exist gets no inode number.
        let m = match std::fs::symlink_metadata(self.host(&rel)) {
            Ok(m) => m,
            Err(_) => return reply.error(libc::ENOENT),
        };
        let ino = self.inodes.ino(&rel);
        let attr = if m.is_file() && !self.open.contains_key(&ino) {
            self.plaintext_size(ino, &rel)
                .map(|size| Self::file_attr(ino, FileType::RegularFile, size, 1, &m))
        } else {
            self.attr(ino)
        };
        match attr {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        // An open file's metadata changes go to its open host descriptor (no path walk; for an orphan, the
        // only way to reach it).
        let rel = self.label(ino);
        if !self.open.contains_key(&ino) && self.inodes.path(ino).is_none() {
            return reply.error(libc::ENOENT);
        }
        let host = self.host(&rel);
        if let Some(len) = size {
            let was_open = self.open.contains_key(&ino);
            let r = self
                .open_file(ino)
                .and_then(|f| f.file.set_len(len).map_err(|e| log_err("truncate", &rel, &e)));
            if !was_open {
                self.open.remove(&ino);
            }
            self.sizes.remove(&ino);
            if let Err(e) = r {
                return reply.error(e);
            }
        }
        if let Some(m) = mode {
            let perm = std::fs::Permissions::from_mode(m & 0o7777);
            let r = match self.open.get_mut(&ino) {
                Some(f) => f.file.storage_mut().file().set_permissions(perm),
                None => std::fs::set_permissions(&host, perm),
            };
            if let Err(e) = r {
                return reply.error(io_errno(&e));
            }
        }
        if uid.is_some() || gid.is_some() {
            let r = match self.open.get_mut(&ino) {
                Some(f) => std::os::unix::fs::fchown(f.file.storage_mut().file(), uid, gid),
                None => std::os::unix::fs::lchown(&host, uid, gid),
            };
            if let Err(e) = r {
                return reply.error(io_errno(&e));
            }
        }
        if atime.is_some() || mtime.is_some() {
            let mut t = std::fs::FileTimes::new();
            if let Some(a) = to_time(atime) {
                t = t.set_accessed(a);
            }
            if let Some(m) = to_time(mtime) {
                t = t.set_modified(m);
            }
            let r = match self.open.get_mut(&ino) {
                Some(f) => f.file.storage_mut().file().set_times(t),
                None => std::fs::File::options()
                    .write(true)
                    .open(&host)
                    .and_then(|f| f.set_times(t)),
            };
            if let Err(e) = r {
                return reply.error(io_errno(&e));
            }
        }
        match self.attr(ino) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let rel = match name_str(name).and_then(|n| self.inodes.child(parent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let host = self.host(&rel);
        if let Err(e) = std::fs::create_dir(&host) {
            return reply.error(io_errno(&e));
        }
        let _ = std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode & !umask & 0o7777));
        self.entry(&rel, reply);
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let rel = match name_str(name).and_then(|n| self.inodes.child(parent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let host = self.host(&rel);
        if let Err(e) = std::fs::remove_file(&host) {
            return reply.error(io_errno(&e));
        }
        let _ = std::fs::remove_file(HostFile::journal_path(&host));
        if let Some(ino) = self.inodes.lookup(&rel) {
            self.orphan(ino);
        }
        self.inodes.remove(&rel);
        match self.volume.removed(&rel) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("unlink", &rel, &e)),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let rel = match name_str(name).and_then(|n| self.inodes.child(parent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        match std::fs::remove_dir(self.host(&rel)) {
            Ok(()) => {
                self.inodes.remove(&rel);
                reply.ok()
            }
            Err(e) => reply.error(io_errno(&e)),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags != 0 {
            return reply.error(libc::EINVAL);
        }
        let from = match name_str(name).and_then(|n| self.inodes.child(parent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let to = match name_str(newname).and_then(|n| self.inodes.child(newparent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let (hf, ht) = (self.host(&from), self.host(&to));
        if from == to {
            // Renaming a name onto itself changes nothing (and must not orphan the file).
            return match std::fs::symlink_metadata(&hf) {
                Ok(_) => reply.ok(),
                Err(e) => reply.error(io_errno(&e)),
            };
        }
        let replaced = self.inodes.lookup(&to);
        if let Err(e) = std::fs::rename(&hf, &ht) {
            return reply.error(io_errno(&e));
        }
        // A file replaced by the rename lives on, nameless, while it is open.
        if let Some(old) = replaced {
            self.orphan(old);
        }
        // The journal follows its file; a journal of the replaced file must not be replayed onto this one.
        let (jf, jt) = (HostFile::journal_path(&hf), HostFile::journal_path(&ht));
        if std::fs::rename(&jf, &jt).is_err() {
            let _ = std::fs::remove_file(&jt);
        }
        self.inodes.rename(&from, &to);
        match self.rebind_tree(&from, &to) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(log_err("rename", &to, &e)),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.open_file(ino) {
            Ok(f) => {
                f.handles += 1;
                // The shield is the only writer of its files and every change passes through the kernel's
                // page cache, so what the kernel has cached is current: keep it across opens.
                reply.opened(ino, fuser::consts::FOPEN_KEEP_CACHE)
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let rel = match name_str(name).and_then(|n| self.inodes.child(parent, n).ok_or(libc::ENOENT)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        // The host file stays empty until the first flush (at the latest on close): one volume commit per new
        // file instead of two. An empty host file is never served as plaintext: opening it fails
        // (`InvalidHostSize`), which is what a crash before that first flush leaves.
        let file = match self.volume.create_file(&rel, &self.options) {
            Ok(f) => f,
            Err(e) => return reply.error(log_err("create", &rel, &e)),
        };
        let ino = self.inodes.ino(&rel);
        self.sizes.remove(&ino);
        self.open.insert(ino, OpenFile { file, handles: 1 });
        let perm = (mode & !umask & 0o7777) as u16;
        let mut attr = self.attr(ino);
        if matches!(&attr, Ok(a) if a.perm != perm) {
            // The host file got the shield's umask, not the program's: `chmod` it (and `stat` again).
            if let Some(f) = self.open.get_mut(&ino) {
                let _ = f
                    .file
                    .storage_mut()
                    .file()
                    .set_permissions(std::fs::Permissions::from_mode(u32::from(perm)));
            }
            attr = self.attr(ino);
        }
        match attr {
            Ok(a) => reply.created(&TTL, &a, 0, ino, fuser::consts::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let rel = self.label(ino);
        let mut buf = std::mem::take(&mut self.read_buf);
        if buf.len() < size as usize {
            buf.resize(size as usize, 0);
        }
        let f = match self.open_file(ino) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        match f.file.read_at(offset.max(0) as u64, &mut buf[..size as usize]) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(log_err("read", &rel, &e)),
        }
        self.read_buf = buf;
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let rel = self.label(ino);
        let f = match self.open_file(ino) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        match f.file.write_at(offset.max(0) as u64, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(log_err("write", &rel, &e)),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        if self.orphans.contains(&ino) {
            // Nobody can open it again and its data goes at the last release: nothing to write.
            return reply.ok();
        }
        let rel = self.label(ino);
        match self.open.get_mut(&ino).map(|f| f.file.flush()) {
            Some(Err(e)) => reply.error(log_err("flush", &rel, &e)),
            _ => reply.ok(),
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let rel = self.label(ino);
        let last = match self.open.get_mut(&ino) {
            Some(f) => {
                f.handles = f.handles.saturating_sub(1);
                f.handles == 0
            }
            None => false,
        };
        if last && self.orphans.remove(&ino) {
            // The last descriptor of a nameless file: dropping it closes the host descriptor, and the host
            // kernel frees the (already unlinked) ciphertext.
            if let Some(f) = self.open.remove(&ino) {
                f.file.discard();
            }
        } else if last {
            if let Some(mut f) = self.open.remove(&ino) {
                let size = f.file.len();
                if let Err(e) = f.file.flush() {
                    return reply.error(log_err("close", &rel, &e));
                }
                self.sizes.insert(ino, size);
            }
        }
        reply.ok()
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        let rel = self.label(ino);
        match self.open.get_mut(&ino).map(|f| f.file.sync()) {
            Some(Err(e)) => reply.error(log_err("fsync", &rel, &e)),
            _ => match self.volume.sync() {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(log_err("fsync", &rel, &e)),
            },
        }
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        reply.ok()
    }

    fn ioctl(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: u32,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // No ioctls on protected files: the kernel answers ENOTTY to the program.
        reply.error(libc::ENOSYS)
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // No extended attributes: ENOSYS once makes the kernel answer EOPNOTSUPP itself from then on, instead
        // of asking for `security.capability` before every write (one request per written file).
        reply.error(libc::ENOSYS)
    }

    fn listxattr(&mut self, _req: &Request<'_>, _ino: u64, size: u32, reply: fuser::ReplyXattr) {
        if size == 0 {
            reply.size(0)
        } else {
            reply.data(&[])
        }
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let Some(rel) = self.inodes.path(ino).map(str::to_string) else {
            return reply.error(libc::ENOENT);
        };
        let rd = match std::fs::read_dir(self.host(&rel)) {
            Ok(r) => r,
            Err(e) => return reply.error(io_errno(&e)),
        };
        let mut entries: Vec<(u64, FileType, String)> = vec![
            (ino, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if is_internal_name(&name) {
                continue;
            }
            let kind = match e.file_type() {
                Ok(t) if t.is_dir() => FileType::Directory,
                Ok(t) if t.is_symlink() => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            entries.push((self.inodes.ino(&child), kind, name));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(ino, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok()
    }
}
