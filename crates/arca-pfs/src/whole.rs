//! Whole-file operations: encrypt a plaintext stream into a protected file and decrypt one back. This is the
//! API the converter and the `arca fs encrypt|decrypt` commands call.

use std::io::{Read, Write};
use std::path::Path;

use crate::file::{FileInfo, NodeKeys, Options, ProtectedFile};
use crate::format::NODE_SIZE;
use crate::{BoundPath, Error, Key, Storage};

const CHUNK: usize = 256 * NODE_SIZE;

impl Key {
    /// Reads a key file holding exactly the 16 raw key bytes (as Gramine's `gramine-sgx-pf-crypt` expects).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io("reading the key file", &path.display().to_string(), e))?;
        let arr: [u8; 16] = bytes.as_slice().try_into().map_err(|_| Error::InvalidKeyFile {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        })?;
        Ok(Self::from_bytes(arr))
    }
}

/// Encrypts everything `plaintext` yields into `out` (emptied first) as a protected file bound to `path`,
/// streaming with bounded memory. Returns the plaintext length.
///
/// With [`NodeKeys::Deterministic`] equal (key, path, plaintext) give equal bytes, for reproducible images.
///
/// ```
/// use arca_pfs::{decrypt_bytes, encrypt_bytes, BoundPath, Key, NodeKeys};
/// let key = Key::from_bytes([7; 16]);
/// let path = BoundPath::new("/app/data/notes.txt")?;
/// let a = encrypt_bytes(b"secret notes", &key, &path, NodeKeys::Deterministic)?;
/// assert_eq!(a, encrypt_bytes(b"secret notes", &key, &path, NodeKeys::Deterministic)?);
/// assert_eq!(decrypt_bytes(&a, &key, &path)?, b"secret notes");
/// # Ok::<(), arca_pfs::Error>(())
/// ```
pub fn encrypt_stream<R: Read, S: Storage>(
    mut plaintext: R,
    out: S,
    key: &Key,
    path: &BoundPath,
    node_keys: NodeKeys,
) -> Result<u64, Error> {
    let options = Options {
        node_keys,
        ..Options::default()
    };
    let mut file = ProtectedFile::create(out, key, path, &options)?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut plaintext, &mut buf)
            .map_err(|e| Error::io(format!("reading plaintext at byte {offset}"), path.as_str(), e))?;
        if n == 0 {
            break;
        }
        file.write_at(offset, &buf[..n])?;
        offset += n as u64;
    }
    file.flush()?;
    Ok(offset)
}

/// Encrypts `plaintext` into the bytes of a protected file bound to `path`.
pub fn encrypt_bytes(
    plaintext: &[u8],
    key: &Key,
    path: &BoundPath,
    node_keys: NodeKeys,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(crate::protected_size(plaintext.len() as u64) as usize);
    encrypt_stream(plaintext, &mut out, key, path, node_keys)?;
    Ok(out)
}

/// Decrypts the protected file in `storage`, which must be bound to `path` (or to any path when `None`), into
/// `out`, verifying every node. Returns what the file's header and metadata say.
pub fn decrypt_stream<S: Storage, W: Write>(
    storage: S,
    key: &Key,
    path: Option<&BoundPath>,
    mut out: W,
) -> Result<FileInfo, Error> {
    let options = Options::default();
    let mut file = match path {
        Some(p) => ProtectedFile::open(storage, key, p, &options)?,
        None => ProtectedFile::open_any_path(storage, key, &options)?,
    };
    let info = file.opened_info().clone();
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(offset, &mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| {
            Error::io(
                format!("writing plaintext at byte {offset}"),
                info.bound_path.as_str(),
                e,
            )
        })?;
        offset += n as u64;
    }
    Ok(info)
}

/// Decrypts protected-file bytes bound to `path` into the plaintext.
pub fn decrypt_bytes(protected: &[u8], key: &Key, path: &BoundPath) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    decrypt_stream(protected.to_vec(), key, Some(path), &mut out)?;
    Ok(out)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
