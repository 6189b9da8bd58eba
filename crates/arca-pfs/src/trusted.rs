//! Trusted files: the SHA-256 of every file an app may read, as a sorted list whose own hash is measured
//! (`/arca/trusted.list`, contract 1), and its verification — eager (every file, in parallel, plus refusal of
//! unlisted files outside an allow-list; contract 11) or lazy (one file at first open, through the shield).
//!
//! List format: one line per file, `<64 lowercase hex digits><two spaces><absolute path>\n` (the format of
//! `sha256sum`), sorted by the path's bytes, no duplicates. Paths are absolute paths inside the image, UTF-8,
//! without newlines. Only regular files are listed; symbolic links are not followed (the file a link points
//! to is listed under its own path when it is inside the tree).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::Error;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// The trusted-file list: image path → SHA-256 of the file's bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedList {
    entries: BTreeMap<String, Sha256Digest>,
}

/// Paths that eager verification does not require to be listed (contract 11). A path is allowed when it
/// equals an entry or lies below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    prefixes: Vec<String>,
}

impl AllowList {
    /// The sim engine's default: `/arca`, `/tmp`, `/proc`, `/sys`, `/dev`, `/etc/hosts`, `/etc/resolv.conf`,
    /// `/etc/hostname`, `/run/secrets/kubernetes.io`. Protected mounts and `--allow-path` entries are added
    /// with [`with`](Self::with).
    pub fn sim_default() -> Self {
        Self {
            prefixes: [
                "/arca",
                "/tmp",
                "/proc",
                "/sys",
                "/dev",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/run/secrets/kubernetes.io",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }

    /// An empty allow-list (every file must be listed).
    pub fn none() -> Self {
        Self { prefixes: Vec::new() }
    }

    /// Adds a path (and everything below it).
    pub fn with(mut self, path: &str) -> Self {
        let p = path.trim_end_matches('/');
        self.prefixes
            .push(if p.is_empty() { "/".into() } else { p.into() });
        self
    }

    /// True when `path` (absolute, inside the image) is allowed without being listed.
    pub fn allows(&self, path: &str) -> bool {
        self.prefixes.iter().any(|p| {
            p == "/"
                || path == p
                || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
        })
    }
}

/// One reason eager verification refused the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A listed file's bytes do not hash to the listed value.
    Modified {
        /// Image path.
        path: String,
        /// Listed hash (hex).
        expected: String,
        /// Hash found (hex).
        found: String,
    },
    /// A listed file is missing or not a regular file.
    Missing {
        /// Image path.
        path: String,
    },
    /// A regular file exists that is not listed and not allowed.
    Unlisted {
        /// Image path.
        path: String,
    },
    /// A file could not be read.
    Unreadable {
        /// Image path.
        path: String,
        /// The I/O error.
        reason: String,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Modified {
                path,
                expected,
                found,
            } => {
                write!(f, "{path} was modified (listed sha256 {expected}, found {found})")
            }
            Self::Missing { path } => write!(f, "{path} is listed but missing (or not a regular file)"),
            Self::Unlisted { path } => write!(
                f,
                "{path} is not in the trusted-file list and not in the allow-list"
            ),
            Self::Unreadable { path, reason } => write!(f, "{path} could not be read: {reason}"),
        }
    }
}

/// What a successful eager verification checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Listed files hashed and matched.
    pub files: usize,
    /// Bytes hashed.
    pub bytes: u64,
}

/// SHA-256 of a file's bytes, streaming.
pub fn hash_file(path: &Path) -> std::io::Result<(Sha256Digest, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.finalize().into(), total))
}

/// Turns `rel` (relative to the image root) into the image path `/rel`, refusing names the list cannot hold.
fn image_path(rel: &Path) -> Result<String, Error> {
    let s = rel.to_str().ok_or_else(|| Error::TrustedList {
        line: 0,
        reason: format!("file name {} is not UTF-8", rel.display()),
    })?;
    if s.contains('\n') {
        return Err(Error::TrustedList {
            line: 0,
            reason: format!("file name {s:?} contains a newline"),
        });
    }
    Ok(format!("/{s}"))
}

/// Every regular file below `root` (not following symbolic links), as (image path, host path), skipping
/// subtrees the `skip` predicate names.
fn walk(root: &Path, skip: &dyn Fn(&str) -> bool) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| Error::io("listing a directory", &dir.display().to_string(), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("listing a directory", &dir.display().to_string(), e))?;
            let rel_child = rel.join(entry.file_name());
            let ipath = image_path(&rel_child)?;
            if skip(&ipath) {
                continue;
            }
            let ft = entry
                .file_type()
                .map_err(|e| Error::io("reading a file type", &ipath, e))?;
            if ft.is_dir() {
                stack.push(rel_child);
            } else if ft.is_file() {
                out.push((ipath, root.join(&rel_child)));
            }
        }
    }
    Ok(out)
}

impl TrustedList {
    /// Hashes every regular file below `root` (an unpacked image), in parallel, except paths `exclude`
    /// allows (e.g. the protected mounts, which the protected-files format guards instead).
    pub fn hash_tree(root: &Path, exclude: &AllowList) -> Result<Self, Error> {
        let files = walk(root, &|p| exclude.allows(p))?;
        let hashed: Result<Vec<(String, Sha256Digest)>, Error> = files
            .into_par_iter()
            .map(|(ipath, host)| {
                hash_file(&host)
                    .map(|(d, _)| (ipath.clone(), d))
                    .map_err(|e| Error::io("hashing", &ipath, e))
            })
            .collect();
        Ok(Self {
            entries: hashed?.into_iter().collect(),
        })
    }

    /// Builds a list from (image path, digest) pairs.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Sha256Digest)>) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (path, digest) in entries {
            check_list_path(&path, 0)?;
            if map.insert(path.clone(), digest).is_some() {
                return Err(Error::TrustedList {
                    line: 0,
                    reason: format!("{path} is listed twice"),
                });
            }
        }
        Ok(Self { entries: map })
    }

    /// The list's bytes: sorted `sha256  path` lines, what `/arca/trusted.list` holds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 100);
        for (path, digest) in &self.entries {
            out.extend_from_slice(hex::encode(digest).as_bytes());
            out.extend_from_slice(b"  ");
            out.extend_from_slice(path.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// SHA-256 of [`to_bytes`](Self::to_bytes): the value the enclave manifest carries (and so is measured).
    pub fn digest(&self) -> Sha256Digest {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Parses list bytes strictly: every line well formed, paths sorted by bytes and unique, a final newline.
    /// (Strict so that one list has exactly one byte form, and so one measured hash.)
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::TrustedList {
            line: 0,
            reason: format!("the list is not UTF-8: {e}"),
        })?;
        if !text.is_empty() && !text.ends_with('\n') {
            return Err(Error::TrustedList {
                line: text.lines().count(),
                reason: "missing final newline".into(),
            });
        }
        let mut entries = BTreeMap::new();
        let mut last: Option<&str> = None;
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            let (hexd, path) = line.split_once("  ").ok_or_else(|| Error::TrustedList {
                line: no,
                reason: "expected `<sha256>  <path>`".into(),
            })?;
            if hexd.len() != 64
                || !hexd
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(Error::TrustedList {
                    line: no,
                    reason: "the digest is not 64 lowercase hex digits".into(),
                });
            }
            check_list_path(path, no)?;
            if last.is_some_and(|l| l >= path) {
                return Err(Error::TrustedList {
                    line: no,
                    reason: format!("{path} is out of order or repeated"),
                });
            }
            last = Some(path);
            let mut d = [0u8; 32];
            hex::decode_to_slice(hexd, &mut d).map_err(|e| Error::TrustedList {
                line: no,
                reason: format!("bad digest: {e}"),
            })?;
            entries.insert(path.to_string(), d);
        }
        Ok(Self { entries })
    }

    /// The listed digest of `path`.
    pub fn get(&self, path: &str) -> Option<&Sha256Digest> {
        self.entries.get(path)
    }

    /// Number of listed files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in list order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sha256Digest)> {
        self.entries.iter().map(|(p, d)| (p.as_str(), d))
    }

    /// Eager verification of the tree at `root` (the image root, `/` inside the launcher): hashes every listed
    /// file in parallel and walks the tree for regular files that are neither listed nor allowed. Returns
    /// every violation found (not only the first) in [`Error::TrustedFilesRejected`].
    pub fn verify_eager(&self, root: &Path, allow: &AllowList) -> Result<VerifyReport, Error> {
        let results: Vec<Result<u64, Violation>> = self
            .entries
            .par_iter()
            .map(|(path, expected)| check_one(root, path, expected))
            .collect();
        let mut violations = Vec::new();
        let mut bytes = 0u64;
        for r in results {
            match r {
                Ok(n) => bytes += n,
                Err(v) => violations.push(v),
            }
        }
        for (ipath, _) in walk(root, &|p| allow.allows(p))? {
            if !self.entries.contains_key(&ipath) {
                violations.push(Violation::Unlisted { path: ipath });
            }
        }
        if violations.is_empty() {
            Ok(VerifyReport {
                files: self.entries.len(),
                bytes,
            })
        } else {
            Err(Error::TrustedFilesRejected { violations })
        }
    }

    /// Lazy verification of one file at image path `path` under `root`: it must be listed and hash to its
    /// listed value.
    pub fn verify_file(&self, root: &Path, path: &str) -> Result<(), Error> {
        self.verify_host_file(path, &root.join(path.trim_start_matches('/')))
    }

    /// Lazy verification of the file listed as `path`, read from `host`.
    pub fn verify_host_file(&self, path: &str, host: &Path) -> Result<(), Error> {
        let expected = self
            .entries
            .get(path)
            .ok_or_else(|| Error::TrustedFilesRejected {
                violations: vec![Violation::Unlisted { path: path.into() }],
            })?;
        check_host(host, path, expected)
            .map(|_| ())
            .map_err(|v| Error::TrustedFilesRejected { violations: vec![v] })
    }
}

fn check_list_path(path: &str, line: usize) -> Result<(), Error> {
    if !path.starts_with('/') || path.contains('\n') || path.contains('\0') {
        return Err(Error::TrustedList {
            line,
            reason: format!("{path:?} is not an absolute path without newlines"),
        });
    }
    Ok(())
}

fn check_one(root: &Path, path: &str, expected: &Sha256Digest) -> Result<u64, Violation> {
    check_host(&root.join(path.trim_start_matches('/')), path, expected)
}

fn check_host(host: &Path, path: &str, expected: &Sha256Digest) -> Result<u64, Violation> {
    match std::fs::symlink_metadata(host) {
        Ok(m) if m.is_file() => {}
        _ => return Err(Violation::Missing { path: path.into() }),
    }
    let (found, n) = hash_file(host).map_err(|e| Violation::Unreadable {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if &found != expected {
        return Err(Violation::Modified {
            path: path.into(),
            expected: hex::encode(expected),
            found: hex::encode(found),
        });
    }
    Ok(n)
}
