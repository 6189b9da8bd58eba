//! Protected files: the Gramine-compatible encrypted file format, rollback protection, trusted-file lists and
//! verification, and the FUSE shield.
//!
//! **One job:** protect the files of an unmodified app — its data (encrypted, integrity- and
//! freshness-protected files) and its code (trusted, hash-checked files) — in formats that Gramine's own
//! `encrypted` mounts and trusted files use, so an image converted once runs under both Arca engines.
//!
//! Main types:
//! - [`ProtectedFile`]: random-access read/write/extend/truncate of one file in Gramine's protected-files
//!   format v2 (v1 read too) over a [`Storage`] ([`HostFile`] with a crash-recovery journal, `Vec<u8>`,
//!   [`StreamStorage`]). [`encrypt_stream`] / [`decrypt_stream`] handle whole files (the converter's API);
//!   [`NodeKeys::Deterministic`] makes conversion reproducible.
//! - [`BoundPath`]: the normalised path authenticated inside each file (a renamed or swapped file is refused).
//! - [`TrustedList`]: the sorted `sha256  path` list, its measured hash, eager and lazy verification.
//!
//! Design reasons: the byte layout is Gramine's, down to the node numbering, so files move between engines;
//! every deliberate difference (unauthenticated header bytes are refused, v1 files are rewritten as v2,
//! a truncated file is refused at open rather than at the first read past the cut) is documented in
//! `docs/protected-files.md`. All cryptography sits in one private module (`crypto`, the provider). Errors are
//! one enum, [`Error`], whose variants name what failed (metadata authentication, a node by number, the bound
//! path, the version, truncation) rather than Gramine's single "callback failed".
//!
//! ```
//! use arca_pfs::{BoundPath, Key, Options, ProtectedFile};
//! let key = Key::from_bytes([1; 16]);
//! let path = BoundPath::new("/data/db.sqlite")?;
//! let mut file = ProtectedFile::create(Vec::new(), &key, &path, &Options::default())?;
//! file.write_at(10_000, b"hello")?;
//! let bytes = file.into_storage()?; // ciphertext: 1 metadata + 1 MHT + 2 data nodes
//! assert_eq!(bytes.len(), 4 * 4096);
//! let mut file = ProtectedFile::open(bytes, &key, &path, &Options::default())?;
//! let mut buf = [0u8; 5];
//! file.read_at(10_000, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! # Ok::<(), arca_pfs::Error>(())
//! ```
#![forbid(unsafe_code)]

mod crypto;
mod error;

pub use crypto::Key;
pub use error::Error;
mod file;
mod format;
mod path;
mod rollback;
pub mod shield;
mod storage;
mod trusted;
mod whole;

pub use error::NodeKind;
pub use file::{FileInfo, FlushEvent, FlushHook, NodeKeys, Options, ProtectedFile};
pub use format::{
    protected_size, FormatVersion, CHILDREN_PER_MHT, DATA_PER_MHT, MAX_PATH_LEN, MD_DATA_SIZE, NODE_SIZE,
};
pub use path::BoundPath;
#[doc(hidden)]
pub use rollback::fuzzing;
pub use rollback::{
    is_internal_name, FileCounter, MonotonicCounter, Volume, STATE_FILE, STATE_FILE_B, STATE_LOG,
};
pub use storage::{HostFile, Storage, StreamStorage};
pub use trusted::{hash_file, AllowList, Sha256Digest, TrustedList, VerifyReport, Violation};
pub use whole::{decrypt_bytes, decrypt_stream, encrypt_bytes, encrypt_stream};
