//! The conversion pipeline behind `arca convert` (sim engine output: a confidential OCI image).
//!
//! One straight line of steps, each named in its errors: check the options (before any side effect) → stream
//! every layer once (verify its digests, hash every file into the merged tree, encrypt the files under
//! `--encrypt` paths and rewrite the layers that hold them, recompress when the codec changes) → resolve the
//! program → write the trusted-file list and the enclave manifest → compute MRENCLAVE with the shared identity
//! function → sign → add the `/arca` layer → write the config (entrypoint = launcher, identity labels) → stage
//! the manifest. Nothing reaches the destination until [`crate::write_image`] commits the staged image.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use arca_enclave::{
    paths, CoordinatorPolicy, EnclaveLayout, EnclaveManifest, EnclaveSettings, Files, HostSettings,
    Mrenclave, Mrsigner, Process, ProtectedMount, MANIFEST_FORMAT,
};
use arca_sgx::{Sigstruct, SigstructSigner};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::compress::{self, ChunkedEncoder, Compression};
use crate::digest::{self, Digest, HashingReader, HashingWriter};
use crate::error::{Error, Result};
use crate::layer::{classify, normalize, Node, NodeKind, Op, Tree};
use crate::sink::{BlobWriter, Descriptor, StagedImage, Staging, OCI_CONFIG};
use crate::source::SourceImage;
use crate::tar::{self, Header, Kind, TarReader};

/// A path to encrypt (`--encrypt PATH[:KEYNAME]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptPath {
    /// Absolute path of a directory or file in the image.
    pub path: String,
    /// The key name (default `default`).
    pub key: String,
}

impl std::str::FromStr for EncryptPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (path, key) = match s.rsplit_once(':') {
            Some((p, k)) => (p, k),
            None => (s, "default"),
        };
        let path = path.trim_end_matches('/');
        let path = if path.is_empty() { "/" } else { path };
        if !arca_enclave::is_clean_absolute_path(path) || path == "/" {
            return Err(Error::Convert {
                reason: format!("--encrypt `{s}`: expected an absolute path below / (PATH[:KEYNAME])"),
            });
        }
        if !arca_enclave::is_key_name(key) {
            return Err(Error::Convert {
                reason: format!("--encrypt `{s}`: key name `{key}` must match [A-Za-z0-9_.-]{{1,64}}"),
            });
        }
        Ok(EncryptPath {
            path: path.to_string(),
            key: key.to_string(),
        })
    }
}

/// Receives progress events (the CLI draws a progress bar when stderr is a terminal).
pub trait Progress: Sync {
    /// A new step begins; `total` is the number of bytes it will read, when known.
    fn step(&self, name: &str, total: Option<u64>);
    /// `n` more bytes were read in the current step.
    fn advance(&self, n: u64);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
}

/// Everything `arca convert` needs besides the source image.
pub struct ConvertOptions<'a> {
    /// The launcher executable's bytes (statically linked ELF).
    pub launcher: &'a [u8],
    /// The enclave signing key.
    pub signer: &'a dyn SigstructSigner,
    /// Paths to encrypt.
    pub encrypt: Vec<EncryptPath>,
    /// The protected-files key (required when `encrypt` is not empty).
    pub pf_key: Option<&'a arca_pfs::Key>,
    /// Paths (absolute; directories include everything below) left out of the trusted-file list.
    pub exclude: Vec<String>,
    /// Host environment names the launcher lets through.
    pub allow_env: Vec<String>,
    /// Extra run-time paths allowed without being listed.
    pub allow_path: Vec<String>,
    /// The pinned coordinator.
    pub coordinator: CoordinatorPolicy,
    /// ISVPRODID.
    pub isvprodid: u16,
    /// ISVSVN.
    pub isvsvn: u16,
    /// DEBUG enclave.
    pub debug: bool,
    /// Enclave size in bytes (power of two).
    pub enclave_size: u64,
    /// Enclave threads.
    pub threads: u32,
    /// SIGSTRUCT DATE (BCD `0xYYYYMMDD`; 0 unless the user asks: no wall clock in signed data).
    pub date: u32,
    /// Codec of layers Arca writes.
    pub compression: Compression,
    /// Compression level (`None`: the codec's default).
    pub level: Option<i32>,
    /// Worker threads for compression.
    pub jobs: usize,
    /// Progress events.
    pub progress: &'a dyn Progress,
}

/// What a conversion produced.
#[derive(Clone, Debug, Serialize)]
pub struct ConvertReport {
    /// MRENCLAVE (sim engine layout).
    pub mrenclave: Mrenclave,
    /// MRSIGNER of the signing key.
    pub mrsigner: Mrsigner,
    /// ISVPRODID.
    pub isvprodid: u16,
    /// ISVSVN.
    pub isvsvn: u16,
    /// DEBUG enclave.
    pub debug: bool,
    /// The program the launcher executes.
    pub exec: String,
    /// Files in the trusted-file list.
    pub trusted_files: u64,
    /// SHA-256 of the trusted-file list.
    pub trusted_list_sha256: String,
    /// Files encrypted (every copy in every layer counts).
    pub encrypted_files: u64,
    /// Indexes (0 = base) of input layers that were rewritten because they held encrypted paths.
    pub rewritten_layers: Vec<usize>,
    /// Indexes of input layers that were recompressed (codec change) without other changes.
    pub recompressed_layers: Vec<usize>,
    /// Protected mounts.
    pub protected: Vec<ProtectedMount>,
    /// Warnings for the user (e.g. an encrypted path with no file).
    pub warnings: Vec<String>,
    /// True when the image pins the development coordinator (works only in simulation).
    pub development_coordinator: bool,
    /// The enclave manifest bytes as stored in `/arca/enclave.toml`.
    #[serde(skip)]
    pub manifest: Vec<u8>,
    /// The trusted-file list bytes as stored in `/arca/trusted.list`.
    #[serde(skip)]
    pub trusted_list: Vec<u8>,
}

struct Plan<'a> {
    encrypt: &'a [EncryptPath],
    key: Option<&'a arca_pfs::Key>,
    /// Prepended to in-image paths to form the bound path of encrypted files ("" for the sim engine).
    bound_prefix: &'a str,
}

impl Plan<'_> {
    /// The protected mount `rel` (normalised, no leading slash) lies in, if any.
    fn mount_of(&self, rel: &str) -> Option<&EncryptPath> {
        self.encrypt.iter().find(|e| {
            let p = &e.path[1..];
            rel == p || rel.starts_with(&format!("{p}/"))
        })
    }
}

/// A writer that hashes a file's bytes and forwards them.
struct EntrySink<'w> {
    hasher: Sha256,
    out: Option<&'w mut dyn Write>,
}

impl Write for EntrySink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        if let Some(o) = self.out.as_mut() {
            o.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that copies what it reads into a blob writer (to keep an input blob byte for byte).
struct Tee<'w, R> {
    inner: R,
    copy: Option<&'w mut BlobWriter>,
    progress: &'w dyn Progress,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(c) = self.copy.as_mut() {
            c.write_all(&buf[..n])?;
        }
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// The output side of a rewritten layer: tar bytes → diff_id hash → compressor → staged blob.
enum LayerOut {
    Plain(HashingWriter<BlobWriter>),
    Compressed(HashingWriter<ChunkedEncoder<BlobWriter>>),
}

impl Write for LayerOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LayerOut::Plain(w) => w.write(buf),
            LayerOut::Compressed(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LayerOut {
    /// `hash`: compute the diff_id of the written tar (false when it will be the input's, see
    /// [`Streamed::identical`]).
    fn new(staging: &Staging, codec: Compression, level: i32, jobs: usize, hash: bool) -> Result<Self> {
        let blob = staging.writer()?;
        Ok(match codec {
            Compression::None => LayerOut::Plain(HashingWriter::hashing_if(blob, hash)),
            c => LayerOut::Compressed(HashingWriter::hashing_if(
                ChunkedEncoder::new(blob, c, level, jobs)
                    .map_err(|e| Error::stream("start compressor", c.to_string(), e))?,
                hash,
            )),
        })
    }

    /// Returns (diff_id when hashed, blob digest, blob size).
    fn finish(self, what: &str) -> Result<(Option<Digest>, Digest, u64)> {
        let (diff_id, blob) = match self {
            LayerOut::Plain(w) => {
                let (d, _, blob) = w.finish_opt();
                (d, blob)
            }
            LayerOut::Compressed(w) => {
                let (d, _, enc) = w.finish_opt();
                (d, enc.finish().map_err(|e| Error::stream("compress", what, e))?)
            }
        };
        let (digest, size) = blob.finish()?;
        Ok((diff_id, digest, size))
    }
}

/// What one pass over a layer found.
struct Streamed {
    /// Files encrypted.
    encrypted: u64,
    /// The layer holds an entry under an `--encrypt` path.
    met_encrypted: bool,
    /// The entries re-emitted to `out` reproduce the input tar byte for byte (nothing encrypted, no header
    /// cleaned, every skipped byte zero): the output's diff_id is the input's, already verified.
    identical: bool,
}

struct LayerResult {
    descriptor: Descriptor,
    diff_id: Digest,
    encrypted: u64,
    /// Set when a pass in copy mode met an encrypted path: the layer must be rewritten.
    needs_rewrite: bool,
}

/// Streams layer `i` once. With `out`, every entry is re-emitted there (encrypted entries rewritten);
/// without it, the raw blob is copied as-is into `copy`. With `tree`, the merged tree is updated.
#[allow(clippy::too_many_arguments)]
fn stream_layer(
    src: &SourceImage,
    i: usize,
    plan: &Plan<'_>,
    mut tree: Option<&mut Tree>,
    mut out: Option<&mut LayerOut>,
    copy: Option<&mut BlobWriter>,
    progress: &dyn Progress,
) -> Result<Streamed> {
    let layer = &src.layers[i];
    let what = src.layer_name(i);
    let mut blob = src.open_blob(layer)?;
    let mut head = [0u8; 4];
    let n = read_head(&mut blob, &mut head).map_err(|e| Error::stream("read", &what, e))?;
    let in_codec = Compression::sniff(&head[..n]);
    // One hash per distinct byte stream: an uncompressed blob is its own tar, whose hash (the diff_id, below)
    // is also the blob digest; a blob with no expected digest (docker-archive) needs no blob hash.
    let raw = HashingReader::hashing_if(
        io::Read::chain(io::Cursor::new(head[..n].to_vec()), blob),
        layer.digest.is_some() && in_codec != Compression::None,
    );
    let mut raw = Tee {
        inner: raw,
        copy,
        progress,
    };
    let (_, plain) = compress::decoder(&mut raw).map_err(|e| Error::stream("decompress", &what, e))?;
    let plain = HashingReader::new(plain);
    let mut reader = TarReader::new(plain, &what);
    let mut encrypted = 0u64;
    let mut met_encrypted = false;
    let mut cleaned_header = false;
    let stream_err = |e: io::Error| Error::stream("write layer", what.clone(), e);
    while let Some(h) = reader.next_header()? {
        let op = classify(&h, &what)?;
        let path = match &op {
            Op::Put(p) => Some(p.clone()),
            _ => None,
        };
        let mount = path.as_deref().and_then(|p| plan.mount_of(p));
        if h.kind == Kind::HardLink {
            let target = normalize(&h.link).unwrap_or_default();
            let target_mount = plan.mount_of(&target);
            if mount.is_some() || target_mount.is_some() {
                return Err(Error::UnsafeEntry {
                    what: what.clone(),
                    entry: String::from_utf8_lossy(&h.name).into_owned(),
                    reason: format!(
                        "hard link to `/{target}` touches an encrypted path: hard links in or into --encrypt paths \
                         are not supported (copy the file instead)"
                    ),
                });
            }
        }
        let encrypt = h.kind == Kind::File && mount.is_some();
        if encrypt {
            met_encrypted = true;
        }
        // Emit the entry (rewrite mode).
        let mut file_hash = None;
        match out.as_deref_mut() {
            Some(o) if encrypt => {
                let (m, key) = match (mount, plan.key) {
                    (Some(m), Some(k)) => (m, k),
                    _ => {
                        return Err(Error::Convert {
                            reason: "--encrypt needs --pf-key or --pf-key-out".into(),
                        })
                    }
                };
                let rel = path.clone().unwrap_or_default();
                let bound =
                    arca_pfs::BoundPath::new(&format!("{}/{rel}", plan.bound_prefix)).map_err(|e| {
                        Error::Convert {
                            reason: format!("encrypt /{rel}: {e}"),
                        }
                    })?;
                let hash = encrypt_entry(&mut reader, &h, key, &bound, o).map_err(|e| Error::Convert {
                    reason: format!("encrypt /{rel} (mount {} key {}): {e}", m.path, m.key),
                })?;
                encrypted += 1;
                file_hash = Some(hash);
            }
            Some(o) => {
                if h.kind != Kind::File && h.stored_size != 0 {
                    // A non-file entry that declared data (which readers skip): write a clean header.
                    tar::write_header(o, &h, 0).map_err(stream_err)?;
                    cleaned_header = true;
                } else {
                    o.write_all(&h.raw).map_err(stream_err)?;
                }
                if h.kind == Kind::File {
                    let mut sink = EntrySink {
                        hasher: Sha256::new(),
                        out: Some(o),
                    };
                    reader.copy_data(&mut sink)?;
                    let EntrySink { hasher, .. } = sink;
                    tar::write_padding(o, h.size).map_err(stream_err)?;
                    file_hash = Some(hasher.finalize().into());
                }
            }
            None => {
                if h.kind == Kind::File && tree.is_some() {
                    let mut sink = EntrySink {
                        hasher: Sha256::new(),
                        out: None,
                    };
                    reader.copy_data(&mut sink)?;
                    file_hash = Some(sink.hasher.finalize().into());
                }
            }
        }
        // Update the merged tree.
        if let Some(t) = tree.as_deref_mut() {
            match &op {
                Op::Put(p) => {
                    let kind = match h.kind {
                        Kind::File => NodeKind::File {
                            sha256: file_hash.unwrap_or([0; 32]),
                            size: h.size,
                        },
                        Kind::Directory => NodeKind::Dir,
                        Kind::Symlink => NodeKind::Symlink(String::from_utf8_lossy(&h.link).into_owned()),
                        Kind::HardLink => {
                            let target = normalize(&h.link).unwrap_or_default();
                            match t.link_target(&target) {
                                Some(n) => n.kind.clone(),
                                None => {
                                    return Err(Error::UnsafeEntry {
                                        what: what.clone(),
                                        entry: String::from_utf8_lossy(&h.name).into_owned(),
                                        reason: format!(
                                            "hard-link target `{target}` does not exist or is a directory"
                                        ),
                                    })
                                }
                            }
                        }
                        _ => NodeKind::Special,
                    };
                    t.put(
                        p,
                        Node {
                            kind,
                            mode: h.mode,
                            uid: h.uid,
                            gid: h.gid,
                            layer: i,
                        },
                    );
                }
                Op::Whiteout(_) | Op::Opaque(_) => t.apply_op(&op, i),
                Op::Root | Op::Ignore => {}
            }
        }
    }
    // End of archive: keep whatever followed (zero blocks, record padding) byte for byte.
    let identical = out.is_some() && !met_encrypted && !cleaned_header && !reader.skipped_nonzero();
    let plain = if let Some(o) = out {
        if reader.ended_with_zero_block() {
            o.write_all(&[0u8; tar::BLOCK]).map_err(stream_err)?;
        }
        let mut rest = reader.into_inner();
        io::copy(&mut rest, o).map_err(|e| Error::stream("copy layer trailer", &what, e))?;
        check_plain(rest, layer, &what)?
    } else {
        let mut rest = reader.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::stream("read layer", &what, e))?;
        check_plain(rest, layer, &what)?
    };
    // Read what the decoder left (a compressed stream's trailer) and check the blob's digest and size.
    io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::stream("read layer", &what, e))?;
    let Tee { inner, .. } = raw;
    let (d, n) = match inner.finish_opt() {
        (Some(d), n) => (d, n),
        // Not hashed: the blob is uncompressed (its bytes are the tar's) or has no digest to check.
        (None, _) => plain,
    };
    if let Some(expected) = &layer.digest {
        digest::check(&what, expected, layer.size, &d, n)?;
    }
    Ok(Streamed {
        encrypted,
        met_encrypted,
        identical,
    })
}

/// Checks the uncompressed stream's digest against the config's diff_id; returns the digest and length.
fn check_plain<R: Read>(
    rest: HashingReader<R>,
    layer: &crate::source::Layer,
    what: &str,
) -> Result<(Digest, u64)> {
    let (diff_id, n) = rest.finish();
    digest::check(
        &format!("{what} uncompressed content (diff_id)"),
        &layer.diff_id,
        None,
        &diff_id,
        n,
    )?;
    Ok((diff_id, n))
}

/// Plaintext files up to this size are encrypted in memory; larger ones through a temporary file.
const IN_MEMORY_ENCRYPT: u64 = 256 << 20;

/// Encrypts the current tar entry's data as a protected file bound to `bound` and writes it, with its header,
/// to `out`. Returns the SHA-256 of the plaintext.
fn encrypt_entry<R: Read>(
    reader: &mut TarReader<R>,
    h: &Header,
    key: &arca_pfs::Key,
    bound: &arca_pfs::BoundPath,
    out: &mut dyn Write,
) -> std::result::Result<[u8; 32], String> {
    struct Hashing<'a, R: Read> {
        inner: tar::EntryData<'a, R>,
        hasher: Sha256,
    }
    impl<R: Read> Read for Hashing<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hasher.update(&buf[..n]);
            Ok(n)
        }
    }
    let expected = arca_pfs::protected_size(h.size);
    let mut plain = Hashing {
        inner: reader.data(),
        hasher: Sha256::new(),
    };
    let written = if h.size <= IN_MEMORY_ENCRYPT {
        let mut buf = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        arca_pfs::encrypt_stream(
            &mut plain,
            &mut buf,
            key,
            bound,
            arca_pfs::NodeKeys::Deterministic,
        )
        .map_err(|e| e.to_string())?;
        tar::write_header(out, h, buf.len() as u64).map_err(|e| e.to_string())?;
        out.write_all(&buf).map_err(|e| e.to_string())?;
        buf.len() as u64
    } else {
        let file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        let mut storage = arca_pfs::StreamStorage(file);
        arca_pfs::encrypt_stream(
            &mut plain,
            &mut storage,
            key,
            bound,
            arca_pfs::NodeKeys::Deterministic,
        )
        .map_err(|e| e.to_string())?;
        let mut file = storage.0;
        let len = io::Seek::seek(&mut file, io::SeekFrom::End(0)).map_err(|e| e.to_string())?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        tar::write_header(out, h, len).map_err(|e| e.to_string())?;
        let copied = io::copy(&mut (&mut file).take(len), out).map_err(|e| e.to_string())?;
        if copied != len {
            return Err("temporary file shrank".into());
        }
        len
    };
    if written != expected {
        return Err(format!("protected file has {written} bytes, expected {expected}"));
    }
    tar::write_padding(out, written).map_err(|e| e.to_string())?;
    Ok(plain.hasher.finalize().into())
}

fn ensure_options(opts: &ConvertOptions<'_>) -> Result<()> {
    arca_enclave::inspect_launcher(opts.launcher).map_err(|e| Error::Convert {
        reason: format!("--launcher: {e}"),
    })?;
    if !opts.encrypt.is_empty() && opts.pf_key.is_none() {
        return Err(Error::Convert {
            reason: "--encrypt needs a key: --pf-key FILE (16 raw bytes) or --pf-key-out FILE".into(),
        });
    }
    for (i, e) in opts.encrypt.iter().enumerate() {
        for other in &opts.encrypt[i + 1..] {
            let nested = |a: &str, b: &str| a == b || b.starts_with(&format!("{a}/"));
            if nested(&e.path, &other.path) || nested(&other.path, &e.path) {
                return Err(Error::Convert {
                    reason: format!("--encrypt {} and {} overlap", e.path, other.path),
                });
            }
        }
        if e.path == paths::ARCA_DIR || e.path.starts_with("/arca/") {
            return Err(Error::Convert {
                reason: format!("--encrypt {}: /arca belongs to Arca", e.path),
            });
        }
    }
    for p in opts.exclude.iter().chain(&opts.allow_path) {
        if !arca_enclave::is_clean_absolute_path(p) {
            return Err(Error::Convert {
                reason: format!("`{p}` is not a clean absolute path"),
            });
        }
    }
    Ok(())
}

/// Resolves a symlink chain inside the tree (never outside it); `None` if it dangles or loops.
fn resolve_in_tree<'t>(tree: &'t Tree, rel: &str) -> Option<(String, &'t Node)> {
    let mut cur = rel.to_string();
    for _ in 0..40 {
        let node = tree.nodes.get(&cur)?;
        match &node.kind {
            NodeKind::Symlink(target) => {
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    cur.rsplit_once('/')
                        .map(|(d, _)| d.to_string())
                        .unwrap_or_default()
                };
                let mut parts: Vec<&str> = if base.is_empty() {
                    Vec::new()
                } else {
                    base.split('/').collect()
                };
                for c in target.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            parts.pop();
                        }
                        c => parts.push(c),
                    }
                }
                cur = parts.join("/");
            }
            _ => return Some((cur, node)),
        }
    }
    None
}

fn resolve_exec(tree: &Tree, argv0: &str, env: &[String], workdir: &str) -> Result<String> {
    let is_file =
        |rel: &str| resolve_in_tree(tree, rel).is_some_and(|(_, n)| matches!(n.kind, NodeKind::File { .. }));
    let clean = |p: &str| -> String {
        let mut parts: Vec<&str> = Vec::new();
        for c in p.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        parts.join("/")
    };
    if argv0.contains('/') {
        let abs = if argv0.starts_with('/') {
            clean(argv0)
        } else {
            clean(&format!("{workdir}/{argv0}"))
        };
        if is_file(&abs) {
            return Ok(format!("/{abs}"));
        }
        return Err(Error::Convert {
            reason: format!("the entrypoint `{argv0}` is not a file in the image"),
        });
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let cand = clean(&format!("{dir}/{argv0}"));
        if is_file(&cand) {
            return Ok(format!("/{cand}"));
        }
    }
    Err(Error::Convert {
        reason: format!("the entrypoint `{argv0}` is not found in the image's PATH ({path})"),
    })
}

fn under(rel_path: &str, abs_prefix: &str) -> bool {
    let p = abs_prefix.trim_start_matches('/');
    p.is_empty() || rel_path == p || rel_path.starts_with(&format!("{p}/"))
}

/// Builds the `/arca` layer: directory, then the four files in name order, root-owned, time 0.
fn arca_layer(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let w = |e: io::Error| Error::stream("write /arca layer", "arca", e);
    tar::write_header(&mut out, &Header::new("arca/", Kind::Directory, 0o755), 0).map_err(w)?;
    let mut sorted: Vec<_> = files.to_vec();
    sorted.sort_by_key(|(n, _, _)| *n);
    for (name, bytes, mode) in sorted {
        let rel = name.trim_start_matches('/');
        tar::write_header(&mut out, &Header::new(rel, Kind::File, mode), bytes.len() as u64).map_err(w)?;
        out.extend_from_slice(bytes);
        tar::write_padding(&mut out, bytes.len() as u64).map_err(w)?;
    }
    tar::write_end(&mut out).map_err(w)?;
    Ok(out)
}

fn compress_bytes(data: &[u8], codec: Compression, level: i32, jobs: usize) -> Result<Vec<u8>> {
    if codec == Compression::None {
        return Ok(data.to_vec());
    }
    let mut enc = ChunkedEncoder::new(Vec::new(), codec, level, jobs)
        .map_err(|e| Error::stream("compress", "arca layer", e))?;
    enc.write_all(data)
        .map_err(|e| Error::stream("compress", "arca layer", e))?;
    enc.finish()
        .map_err(|e| Error::stream("compress", "arca layer", e))
}

/// Converts `src` into a confidential image staged in `staging`. Returns the staged image and the report.
pub fn convert(
    src: &SourceImage,
    opts: &ConvertOptions<'_>,
    staging: &Staging,
) -> Result<(StagedImage, ConvertReport)> {
    convert_with_prefix(src, opts, staging, "")
}

/// [`convert`] with encrypted files bound to `bound_prefix` + their in-image path (the Gramine build context
/// binds them to the host path Gramine will see).
pub(crate) fn convert_with_prefix(
    src: &SourceImage,
    opts: &ConvertOptions<'_>,
    staging: &Staging,
    bound_prefix: &str,
) -> Result<(StagedImage, ConvertReport)> {
    ensure_options(opts)?;
    let level = opts.level.unwrap_or(opts.compression.default_level());
    let plan = Plan {
        encrypt: &opts.encrypt,
        key: opts.pf_key,
        bound_prefix,
    };
    let mut tree = Tree::default();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut report_rewritten = Vec::new();
    let mut report_recompressed = Vec::new();
    let mut encrypted_total = 0u64;

    for i in 0..src.layers.len() {
        let layer = &src.layers[i];
        let what = src.layer_name(i);
        opts.progress
            .step(&format!("layer {}/{}", i + 1, src.layers.len()), layer.size);
        // Sniff the codec of the stored blob to choose between copying it and re-emitting it.
        let mut head = [0u8; 4];
        let n = read_head(src.open_blob(layer)?, &mut head).map_err(|e| Error::stream("read", &what, e))?;
        let in_codec = Compression::sniff(&head[..n]);
        let result = if in_codec == opts.compression {
            let mut copy = staging.writer()?;
            let met = stream_layer(
                src,
                i,
                &plan,
                Some(&mut tree),
                None,
                Some(&mut copy),
                opts.progress,
            )?
            .met_encrypted;
            if met {
                drop(copy);
                opts.progress.step(
                    &format!("layer {}/{} (encrypting)", i + 1, src.layers.len()),
                    layer.size,
                );
                let (enc, diff_id, digest, size) = rewrite_layer(src, i, &plan, None, opts, level, staging)?;
                LayerResult {
                    descriptor: desc(opts.compression, digest, size),
                    diff_id,
                    encrypted: enc.encrypted,
                    needs_rewrite: true,
                }
            } else {
                let (digest, size) = copy.finish()?;
                LayerResult {
                    descriptor: desc(in_codec, digest, size),
                    diff_id: layer.diff_id,
                    encrypted: 0,
                    needs_rewrite: false,
                }
            }
        } else {
            let (streamed, diff_id, digest, size) =
                rewrite_layer(src, i, &plan, Some(&mut tree), opts, level, staging)?;
            if !streamed.met_encrypted {
                report_recompressed.push(i);
            }
            LayerResult {
                descriptor: desc(opts.compression, digest, size),
                diff_id,
                encrypted: streamed.encrypted,
                needs_rewrite: streamed.met_encrypted,
            }
        };
        if result.needs_rewrite {
            report_rewritten.push(i);
        }
        encrypted_total += result.encrypted;
        layers.push(result.descriptor);
        diff_ids.push(result.diff_id);
    }
    opts.progress.step("identity", None);

    // The program and its settings, from the image config.
    let cfg = src.runtime_config();
    let mut argv: Vec<String> = cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
    argv.extend(cfg.and_then(|c| c.cmd().clone()).unwrap_or_default());
    let argv0 = argv.first().cloned().ok_or_else(|| Error::Convert {
        reason: "the image has neither Entrypoint nor Cmd: nothing to run".into(),
    })?;
    let env: Vec<String> = cfg.and_then(|c| c.env().clone()).unwrap_or_default();
    let workdir = cfg
        .and_then(|c| c.working_dir().clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let workdir = if workdir.starts_with('/') {
        workdir
    } else {
        format!("/{workdir}")
    };
    let workdir = normalize(workdir.trim_start_matches('/').as_bytes())
        .map(|w| format!("/{w}"))
        .map_err(|r| Error::Convert {
            reason: format!("the image's WorkingDir `{workdir}`: {r}"),
        })?;
    let user = cfg.and_then(|c| c.user().clone()).unwrap_or_default();
    if tree.nodes.contains_key("arca") {
        return Err(Error::Convert {
            reason: "the image already has /arca: it was converted before (convert the original image)"
                .into(),
        });
    }
    let exec = resolve_exec(&tree, &argv0, &env, &workdir)?;

    // Encrypted paths must be real directories or files in the final tree (never behind a symlink).
    let mut warnings = Vec::new();
    for e in &opts.encrypt {
        let rel = &e.path[1..];
        let mut prefix = String::new();
        for c in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            if let Some(Node {
                kind: NodeKind::Symlink(t),
                ..
            }) = tree.nodes.get(&prefix)
            {
                return Err(Error::Convert {
                    reason: format!(
                        "--encrypt {}: /{prefix} is a symlink to `{t}`; name the real path",
                        e.path
                    ),
                });
            }
        }
        if !tree.nodes.keys().any(|k| under(k, &e.path)) {
            warnings.push(format!(
                "--encrypt {}: no such path in the image; the protected mount starts empty",
                e.path
            ));
        }
    }

    // The trusted-file list: every regular file, less the excluded, the protected, /proc /sys /dev.
    let mut excluded: Vec<String> = vec!["/proc".into(), "/sys".into(), "/dev".into()];
    excluded.extend(opts.exclude.iter().cloned());
    excluded.extend(opts.encrypt.iter().map(|e| e.path.clone()));
    let entries = tree
        .files()
        .filter(|(p, _)| !excluded.iter().any(|x| under(p, x)))
        .filter_map(|(p, n)| match n.kind {
            NodeKind::File { sha256, .. } => Some((format!("/{p}"), sha256)),
            _ => None,
        });
    let trusted = arca_pfs::TrustedList::from_entries(entries).map_err(|e| Error::Convert {
        reason: format!("trusted-file list: {e}"),
    })?;
    let trusted_bytes = trusted.to_bytes();
    let trusted_sha = hex::encode(trusted.digest());

    let mut protected: Vec<ProtectedMount> = opts
        .encrypt
        .iter()
        .map(|e| ProtectedMount {
            path: e.path.clone(),
            key: e.key.clone(),
        })
        .collect();
    protected.sort();
    let manifest = EnclaveManifest {
        format: MANIFEST_FORMAT,
        process: Process {
            exec: exec.clone(),
            argv,
            env,
            workdir,
            user,
        },
        enclave: EnclaveSettings {
            isvprodid: opts.isvprodid,
            isvsvn: opts.isvsvn,
            debug: opts.debug,
            size: opts.enclave_size,
            threads: opts.threads,
        },
        files: Files {
            trusted_list_sha256: trusted_sha.clone(),
            trusted_files: trusted.len() as u64,
            allow_paths: opts.allow_path.clone(),
            protected: protected.clone(),
        },
        host: HostSettings {
            allow_env: opts.allow_env.clone(),
            allow_argv: false,
        },
        coordinator: opts.coordinator,
    };
    let manifest_bytes = manifest.to_toml()?.into_bytes();
    let layout = EnclaveLayout::new(opts.launcher, &manifest_bytes)?;
    let mrenclave = layout.mrenclave()?;
    let fields = arca_enclave::sigstruct_fields(&manifest, mrenclave, opts.date);
    let sigstruct = Sigstruct::sign(&fields, opts.signer).map_err(|e| Error::Convert {
        reason: format!("sign: {e}"),
    })?;
    let mrsigner = sigstruct.mrsigner();
    let sig_bytes = sigstruct.to_bytes();

    // The /arca layer.
    let tar_bytes = arca_layer(&[
        (paths::LAUNCHER_PATH, opts.launcher, 0o755),
        (paths::MANIFEST_PATH, &manifest_bytes, 0o644),
        (paths::TRUSTED_LIST_PATH, &trusted_bytes, 0o644),
        (paths::SIGNATURE_PATH, &sig_bytes, 0o644),
    ])?;
    let arca_diff_id = Digest::of(&tar_bytes);
    let compressed = compress_bytes(&tar_bytes, opts.compression, level, opts.jobs)?;
    let (arca_digest, arca_size) = staging.put(&compressed)?;
    layers.push(desc(opts.compression, arca_digest, arca_size));
    diff_ids.push(arca_diff_id);

    // The config.
    let config_bytes = rewrite_config(src, &diff_ids, &mrenclave, &mrsigner, opts)?;
    let (config_digest, config_size) = staging.put(&config_bytes)?;
    let config = Descriptor {
        media_type: OCI_CONFIG.into(),
        digest: config_digest,
        size: config_size,
        annotations: BTreeMap::new(),
    };
    let staged = StagedImage::new(staging, config, layers, diff_ids)?;
    let report = ConvertReport {
        mrenclave,
        mrsigner,
        isvprodid: opts.isvprodid,
        isvsvn: opts.isvsvn,
        debug: opts.debug,
        exec,
        trusted_files: trusted.len() as u64,
        trusted_list_sha256: trusted_sha,
        encrypted_files: encrypted_total,
        rewritten_layers: report_rewritten,
        recompressed_layers: report_recompressed,
        protected,
        warnings,
        development_coordinator: opts.coordinator.is_development(),
        manifest: manifest_bytes,
        trusted_list: trusted_bytes,
    };
    Ok((staged, report))
}

/// Re-emits layer `i` through the output codec (encrypting what the plan names); returns what the pass found,
/// the new diff_id, blob digest and size.
///
/// With nothing to encrypt, the re-emitted tar is almost always the input's bytes, whose diff_id the pass
/// verifies anyway: the output is then not hashed a second time. If the pass finds it changed something (a
/// header cleaned, non-zero padding), it discards its output and streams the layer again, hashing.
fn rewrite_layer(
    src: &SourceImage,
    i: usize,
    plan: &Plan<'_>,
    tree: Option<&mut Tree>,
    opts: &ConvertOptions<'_>,
    level: i32,
    staging: &Staging,
) -> Result<(Streamed, Digest, Digest, u64)> {
    let what = src.layer_name(i);
    let hash = !plan.encrypt.is_empty();
    let mut out = LayerOut::new(staging, opts.compression, level, opts.jobs, hash)?;
    let streamed = stream_layer(src, i, plan, tree, Some(&mut out), None, opts.progress)?;
    if !hash && !streamed.identical {
        drop(out);
        let mut out = LayerOut::new(staging, opts.compression, level, opts.jobs, true)?;
        let again = stream_layer(src, i, plan, None, Some(&mut out), None, opts.progress)?;
        let (diff_id, digest, size) = out.finish(&what)?;
        let diff_id = diff_id.ok_or_else(|| Error::image(&what, "rewritten layer was not hashed"))?;
        return Ok((again, diff_id, digest, size));
    }
    let (diff_id, digest, size) = out.finish(&what)?;
    let diff_id = match diff_id {
        Some(d) => d,
        None => src.layers[i].diff_id,
    };
    Ok((streamed, diff_id, digest, size))
}

fn read_head(mut r: impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn desc(codec: Compression, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: crate::sink::layer_media_type(codec),
        digest,
        size,
        annotations: BTreeMap::new(),
    }
}

fn rewrite_config(
    src: &SourceImage,
    diff_ids: &[Digest],
    mrenclave: &Mrenclave,
    mrsigner: &Mrsigner,
    opts: &ConvertOptions<'_>,
) -> Result<Vec<u8>> {
    use serde_json::{json, Value};
    let what = "image config";
    let mut cfg: Value =
        serde_json::from_slice(&src.config_bytes).map_err(|e| Error::json("rewrite config", what, e))?;
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| Error::image(what, "not a JSON object"))?;
    let c = obj.entry("config").or_insert_with(|| json!({}));
    let c = c
        .as_object_mut()
        .ok_or_else(|| Error::image(what, "`config` is not an object"))?;
    c.insert("Entrypoint".into(), json!([paths::LAUNCHER_PATH]));
    c.remove("Cmd");
    // The launcher starts as root and drops to the image's user itself (recorded in the manifest).
    c.remove("User");
    let labels = c.entry("Labels").or_insert_with(|| json!({}));
    if labels.is_null() {
        *labels = json!({});
    }
    let labels = labels
        .as_object_mut()
        .ok_or_else(|| Error::image(what, "`config.Labels` is not an object"))?;
    labels.insert(paths::labels::MRENCLAVE.into(), json!(mrenclave.to_string()));
    labels.insert(paths::labels::MRSIGNER.into(), json!(mrsigner.to_string()));
    labels.insert(paths::labels::ISVPRODID.into(), json!(opts.isvprodid.to_string()));
    labels.insert(paths::labels::ISVSVN.into(), json!(opts.isvsvn.to_string()));
    labels.insert(
        paths::labels::LAYOUT_VERSION.into(),
        json!(arca_enclave::LAYOUT_VERSION.to_string()),
    );
    labels.insert(
        paths::labels::ENGINE.into(),
        json!(arca_enclave::Engine::Sim.as_str()),
    );
    if let Some(d) = src.manifest_digest {
        labels.insert(paths::labels::SOURCE_DIGEST.into(), json!(d.to_string()));
    }
    obj.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()}),
    );
    if let Some(history) = obj.get_mut("history").and_then(|h| h.as_array_mut()) {
        let mut entry = serde_json::Map::new();
        if let Some(created) = src.config.created() {
            entry.insert("created".into(), json!(created));
        }
        entry.insert("created_by".into(), json!("arca convert"));
        entry.insert(
            "comment".into(),
            json!("Arca launcher, enclave manifest, trusted-file list and SIGSTRUCT"),
        );
        history.push(Value::Object(entry));
    }
    serde_json::to_vec(&cfg).map_err(|e| Error::json("rewrite config", what, e))
}
