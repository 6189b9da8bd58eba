//! The crate's error type.

use std::path::PathBuf;

/// Which kind of node failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeKind {
    /// A Merkle-hash-tree node (keys and tags of its children).
    Mht,
    /// A data node (4096 plaintext bytes).
    Data,
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mht => "MHT",
            Self::Data => "data",
        })
    }
}

/// Everything that can go wrong in `arca-pfs`. Each variant names the step and the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OS random source failed.
    #[error("reading the OS random source failed: {reason}")]
    Random {
        /// What the random source reported.
        reason: String,
    },
    /// An I/O operation on the file's storage failed.
    #[error("{step} of protected file {file} failed")]
    Io {
        /// The step (e.g. "reading node 7").
        step: String,
        /// The bound path or host path of the file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A path cannot be bound into a protected file.
    #[error("invalid bound path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A key file does not hold exactly 16 bytes.
    #[error("key file {path}: expected exactly 16 raw bytes, found {len}")]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The storage does not start with the "GRAFS_PF" file id: not a protected file.
    #[error("{file}: not a protected file (header does not start with \"GRAFS_PF\")")]
    NotProtectedFile {
        /// The file.
        file: String,
    },
    /// The storage size is not a positive multiple of 4096 bytes.
    #[error("{file}: invalid protected file size {len} (must be a non-zero multiple of 4096)")]
    InvalidHostSize {
        /// The file.
        file: String,
        /// The storage length.
        len: u64,
    },
    /// The major (or minor) version is not one Arca reads.
    #[error("{file}: unsupported protected-file version {major}.{minor} (Arca reads 2.0 and 1.0)")]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// Unknown flag bits are set in the (unauthenticated) flags byte.
    #[error(
        "{file}: unknown flags {flags:#04x} in the unauthenticated header byte 58 (only bit 0 is defined)"
    )]
    UnknownFlags {
        /// The file.
        file: String,
        /// The flags byte.
        flags: u8,
    },
    /// The unauthenticated padding after the metadata blob is not zero.
    #[error("{file}: non-zero bytes in the unauthenticated metadata padding at offset {offset}")]
    NonZeroPadding {
        /// The file.
        file: String,
        /// Offset of the first non-zero byte.
        offset: usize,
    },
    /// The metadata blob failed authentication: wrong key, or the header or blob was modified.
    #[error("{file}: metadata authentication failed (wrong key, or the header was modified)")]
    MetadataAuth {
        /// The file.
        file: String,
    },
    /// The file is bound to another path (renamed or swapped file).
    #[error("path mismatch: the file opened as {expected} is bound to {found} (renamed or swapped file)")]
    PathMismatch {
        /// The path the caller opened.
        expected: String,
        /// The path stored in the metadata.
        found: String,
    },
    /// The authenticated metadata holds an impossible value.
    #[error("{file}: corrupt metadata: {reason}")]
    CorruptMetadata {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The storage holds fewer nodes than the authenticated size needs.
    #[error("{file}: truncated: the metadata needs {needed} nodes but the file holds {found}")]
    Truncated {
        /// The file.
        file: String,
        /// Nodes the size needs.
        needed: u64,
        /// Nodes present.
        found: u64,
    },
    /// A node failed authentication (modified, swapped within the file, or from another version of the file).
    #[error(
        "{file}: {kind} node {logical} (physical node {physical}, at byte {}) failed authentication \
         (modified, moved, or from another version of the file)", physical * 4096
    )]
    NodeAuth {
        /// The file.
        file: String,
        /// MHT or data.
        kind: NodeKind,
        /// Logical node number.
        logical: u64,
        /// Physical node number.
        physical: u64,
    },
    /// An offset or size beyond what the format can address.
    #[error("{file}: offset {offset} is beyond the largest supported file size")]
    TooLarge {
        /// The file.
        file: String,
        /// The offset.
        offset: u64,
    },
    /// The storage cannot do what was asked (e.g. shrink a stream).
    #[error("{file}: the storage cannot {what}")]
    Unsupported {
        /// The file.
        file: String,
        /// The operation.
        what: &'static str,
    },
    /// The recovery journal of a file is unreadable although the file is marked as being written.
    #[error(
        "{file}: recovery needed: the pending-write flag is set but the recovery journal {journal} {reason}"
    )]
    RecoveryNeeded {
        /// The file.
        file: String,
        /// The journal path.
        journal: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A trusted-file list is malformed.
    #[error("trusted-file list, line {line}: {reason}")]
    TrustedList {
        /// 1-based line number (0: not about one line).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Trusted-file verification found files that do not match the list.
    #[error("trusted files rejected: {} problem(s); first: {}", violations.len(), violations.first().map(|v| v.to_string()).unwrap_or_default())]
    TrustedFilesRejected {
        /// Every problem found.
        violations: Vec<crate::trusted::Violation>,
    },
    /// An older version of a volume or of a file was presented (rollback).
    #[error("rollback detected: {what}")]
    Rollback {
        /// What is older than it should be.
        what: String,
    },
    /// A file is not recorded in its volume's state (injected, or copied from another volume).
    #[error("file {file} is not recorded in the volume state (injected or copied from elsewhere)")]
    UnrecordedFile {
        /// Volume-relative path.
        file: String,
    },
    /// The volume state is newer than the counter by more than one commit: the counter was reset or replaced.
    #[error("volume {}: state version {version} is ahead of the counter ({counter}): the counter was reset or replaced", volume.display())]
    CounterBehind {
        /// The volume directory.
        volume: PathBuf,
        /// State version.
        version: u64,
        /// Counter value.
        counter: u64,
    },
    /// The local counter file is unusable.
    #[error("rollback counter {}: {reason}", path.display())]
    CounterFile {
        /// The counter file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// True when the error means "the checked file was refused" (authentication, binding, version, rollback,
    /// trusted-file mismatch) rather than an operational failure (I/O, bad arguments). The CLI maps it to
    /// exit code 3.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::NotProtectedFile { .. }
                | Self::InvalidHostSize { .. }
                | Self::UnsupportedVersion { .. }
                | Self::UnknownFlags { .. }
                | Self::NonZeroPadding { .. }
                | Self::MetadataAuth { .. }
                | Self::PathMismatch { .. }
                | Self::CorruptMetadata { .. }
                | Self::Truncated { .. }
                | Self::NodeAuth { .. }
                | Self::TrustedFilesRejected { .. }
                | Self::Rollback { .. }
                | Self::UnrecordedFile { .. }
                | Self::CounterBehind { .. }
        )
    }

    pub(crate) fn io(step: impl Into<String>, file: &str, source: std::io::Error) -> Self {
        Self::Io {
            step: step.into(),
            file: file.to_string(),
            source,
        }
    }
}
