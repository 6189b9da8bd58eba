//! Whole-file operations: encrypt a plaintext stream into a protected file and decrypt one back. This is the
//! API the converter and the `arca fs encrypt|decrypt` commands call.

use std::io::{Read, Write};
use std::path::Path;

use crate::file::{FileInfo, NodeKeys, Options, ProtectedFile};
use zeroize::Zeroize;

use crate::format::{MD_DATA_SIZE, NODE_SIZE};
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
    let options = Options {
        node_keys,
        ..Options::default()
    };
    // Straight from `plaintext` (no copy through a read buffer, unlike `encrypt_stream`).
    let mut file = ProtectedFile::create(&mut out, key, path, &options)?;
    file.write_at(0, plaintext)?;
    file.flush()?;
    drop(file);
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
    // The first read ends on a node boundary (the metadata node's 3072 bytes, then whole nodes), so every
    // read after it covers whole data nodes: decrypted in `buf` itself, with no node cached or copied.
    let mut want = MD_DATA_SIZE + CHUNK - NODE_SIZE;
    let mut offset = 0u64;
    loop {
        let n = file.read_at(offset, &mut buf[..want])?;
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
        want = CHUNK;
    }
    buf.zeroize();
    Ok(info)
}

/// Decrypts protected-file bytes bound to `path` into the plaintext, verifying every node. The plaintext is
/// decrypted in place in the returned buffer (sized once from the authenticated metadata), with no copy of
/// the input.
pub fn decrypt_bytes(protected: &[u8], key: &Key, path: &BoundPath) -> Result<Vec<u8>, Error> {
    let mut file = ProtectedFile::open(protected, key, path, &Options::default())?;
    // The size is authenticated and `open` checked that `protected` holds every node it needs, so the
    // allocation is bounded by the input's length.
    let size = usize::try_from(file.len()).map_err(|_| Error::TooLarge {
        file: path.to_string(),
        offset: file.len(),
    })?;
    let mut out = vec![0u8; size];
    let mut done = 0;
    while done < size {
        match file.read_at(done as u64, &mut out[done..])? {
            0 => break,
            n => done += n,
        }
    }
    out.truncate(done);
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
