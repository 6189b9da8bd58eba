//! The read-only view of a trusted tree: each file is hashed at its first open and refused (`EACCES`) when
//! its hash differs from the trusted-file list, or when it is not listed and not allowed.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    Request,
};

use super::inodes::Inodes;
use super::{errno, TTL};
use crate::{AllowList, TrustedList};

/// Identity of a host file version: (inode, mtime s, mtime ns, size).
type Stamp = (u64, i64, i64, u64);

/// A read-only view of `root` in which every file must match the trusted-file list (lazy verification).
pub struct TrustedFs {
    root: PathBuf,
    list: TrustedList,
    allow: AllowList,
    prefix: String,
    inodes: Inodes,
    /// ino → (host stamp at verification, open file)
    verified: HashMap<u64, (Stamp, File)>,
}

impl std::fmt::Debug for TrustedFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedFs")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl TrustedFs {
    /// A view of `root`, whose files appear in the list under `image_prefix` + their path below `root`
    /// (`""` when `root` is the image root).
    pub fn new(root: impl Into<PathBuf>, list: TrustedList, allow: AllowList, image_prefix: &str) -> Self {
        Self {
            root: root.into(),
            list,
            allow,
            prefix: image_prefix.trim_end_matches('/').to_string(),
            inodes: Inodes::new(),
            verified: HashMap::new(),
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn image_path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.prefix)
    }

    fn attr(&self, ino: u64, rel: &str) -> Result<FileAttr, i32> {
        let m =
            std::fs::symlink_metadata(self.host(rel)).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let kind = if m.is_dir() {
            FileType::Directory
        } else if m.is_file() {
            FileType::RegularFile
        } else if m.file_type().is_symlink() {
            FileType::Symlink
        } else {
            return Err(libc::EPERM);
        };
        let t =
            |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
        Ok(FileAttr {
            ino,
            size: m.len(),
            blocks: m.blocks(),
            atime: t(m.atime(), m.atime_nsec()),
            mtime: t(m.mtime(), m.mtime_nsec()),
            ctime: t(m.ctime(), m.ctime_nsec()),
            crtime: t(m.ctime(), m.ctime_nsec()),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Verifies the file (once per host version) and keeps it open for reads.
    fn verify(&mut self, ino: u64) -> Result<&File, i32> {
        let rel = self.inodes.path(ino).ok_or(libc::ENOENT)?.to_string();
        let host = self.host(&rel);
        let file = File::open(&host).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let m = file
            .metadata()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        let stamp = (m.ino(), m.mtime(), m.mtime_nsec(), m.len());
        if self.verified.get(&ino).is_some_and(|(s, _)| *s == stamp) {
            return self.verified.get(&ino).map(|(_, f)| f).ok_or(libc::EIO);
        }
        let image = self.image_path(&rel);
        if !(self.list.get(&image).is_none() && self.allow.allows(&image)) {
            if let Err(e) = self.list.verify_host_file(&image, &host) {
                tracing::error!(path = image, error = %e, "trusted-files shield refused a file");
                return Err(errno(&e));
            }
        }
        self.verified.insert(ino, (stamp, file));
        self.verified.get(&ino).map(|(_, f)| f).ok_or(libc::EIO)
    }
}

impl Filesystem for TrustedFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let Some(rel) = name.to_str().and_then(|n| self.inodes.child(parent, n)) else {
            return reply.error(libc::ENOENT);
        };
        let ino = self.inodes.ino(&rel);
        match self.attr(ino, &rel) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => {
                self.inodes.remove(&rel);
                reply.error(e)
            }
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        let Some(rel) = self.inodes.path(ino).map(str::to_string) else {
            return reply.error(libc::ENOENT);
        };
        match self.attr(ino, &rel) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        let Some(rel) = self.inodes.path(ino).map(str::to_string) else {
            return reply.error(libc::ENOENT);
        };
        match std::fs::read_link(self.host(&rel)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(libc::EROFS);
        }
        match self.verify(ino) {
            Ok(_) => reply.opened(ino, fuser::consts::FOPEN_KEEP_CACHE),
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
        let Some((_, f)) = self.verified.get(&ino) else {
            return reply.error(libc::EACCES);
        };
        let mut buf = vec![0u8; size as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset.max(0) as u64 + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return reply.error(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
        reply.data(&buf[..n])
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok()
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
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
        reply.error(libc::ENOTTY)
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(libc::ENODATA)
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
            Err(e) => return reply.error(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        let mut entries = vec![
            (ino, FileType::Directory, ".".to_string()),
            (1, FileType::Directory, "..".to_string()),
        ];
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
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
