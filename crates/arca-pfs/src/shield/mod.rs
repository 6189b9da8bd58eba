//! The FUSE shield: a plaintext view of a protected directory ([`EncryptedFs`], read-write) and a verified
//! view of a trusted tree ([`TrustedFs`], read-only), for unmodified programs.
//!
//! The shield serves one request at a time (fuser's session loop): profiled, the small-file workloads spend
//! their time in the FUSE round trips and the host syscalls of each request, and a single-threaded program's
//! requests are sequential (only RELEASE and FORGET could overlap another), so the shield keeps the work per
//! request small instead (`docs/protected-files.md`). Each protected file that is open has one
//! [`ProtectedFile`](crate::ProtectedFile) shared by all its handles, flushed on `close` (FUSE flush), made
//! durable on `fsync`, and dropped with the last handle.
//! Every flush is recorded in the volume's rollback state first ([`Volume`](crate::Volume)). Errors reach the
//! program as `EIO` (authentication, rollback) or `EACCES` (a trusted file whose hash does not match) and are
//! logged with their cause.

mod encrypted;
mod inodes;
mod trusted;

pub use encrypted::EncryptedFs;
pub use trusted::TrustedFs;

use std::path::Path;

use crate::Error;

/// How long the kernel may cache attributes and names (the shield is the only writer of its directory).
pub(crate) const TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Mounts `fs` at `mountpoint`, calls `ready` once the mount is in place, and serves requests until the
/// file system is unmounted (`fusermount3 -u`, `arca fs umount`).
pub fn mount<FS: fuser::Filesystem>(
    fs: FS,
    mountpoint: &Path,
    name: &str,
    read_only: bool,
    ready: impl FnOnce(),
) -> Result<(), Error> {
    let options = mount_options(name, read_only);
    let shown = mountpoint.display().to_string();
    let mut session = fuser::Session::new(fs, mountpoint, &options)
        .map_err(|e| Error::io("mounting the FUSE shield", &shown, e))?;
    ready();
    session
        .run()
        .map_err(|e| Error::io("serving the FUSE shield", &shown, e))
}

/// Mounts `fs` at `mountpoint` on a background thread; unmounted when the returned session is dropped (or
/// joined).
pub fn spawn<FS: fuser::Filesystem + Send + 'static>(
    fs: FS,
    mountpoint: &Path,
    name: &str,
    read_only: bool,
) -> Result<fuser::BackgroundSession, Error> {
    let options = mount_options(name, read_only);
    fuser::spawn_mount2(fs, mountpoint, &options)
        .map_err(|e| Error::io("mounting the FUSE shield", &mountpoint.display().to_string(), e))
}

fn mount_options(name: &str, read_only: bool) -> Vec<fuser::MountOption> {
    use fuser::MountOption as M;
    let mut o = vec![
        M::FSName(name.to_string()),
        M::Subtype("arca".into()),
        M::DefaultPermissions,
        M::NoDev,
        M::NoSuid,
    ];
    if nix_is_root() {
        o.push(M::AllowOther);
    }
    o.push(if read_only { M::RO } else { M::RW });
    o
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Maps a library error to the errno a program sees.
pub(crate) fn errno(e: &Error) -> i32 {
    match e {
        Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        Error::TrustedFilesRejected { .. } => libc::EACCES,
        Error::InvalidPath { .. } => libc::ENAMETOOLONG,
        Error::TooLarge { .. } => libc::EFBIG,
        _ => libc::EIO,
    }
}
