//! Writing images: a staging area where output blobs are produced first, and the transports that receive a
//! finished image (OCI layout, OCI archive, docker archive, registry).
//!
//! Every document Arca writes (manifest, index, docker `manifest.json`) is serialised from structs with a fixed
//! field order, and archives are written with fixed header metadata, so equal inputs give equal bytes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compress::Compression;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::reference::{ImageRef, Reference};
use crate::registry::{Credentials, RegistryClient};
use crate::tar::{self, Header, Kind};

/// The OCI image manifest media type.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image config media type.
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A directory where blobs are written before an image is committed to its destination. Removed on drop.
pub struct Staging {
    dir: tempfile::TempDir,
}

/// A blob being written into the staging area. Dropped unfinished, its temporary file is removed.
pub(crate) struct BlobWriter {
    inner: Option<HashingWriter<BufWriter<File>>>,
    tmp: PathBuf,
    blobs: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

impl BlobWriter {
    /// Closes the blob and files it under its digest.
    pub(crate) fn finish(mut self) -> Result<(Digest, u64)> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| Error::image("blob", "finished twice"))?;
        let (d, n, w) = inner.finish();
        let f = w
            .into_inner()
            .map_err(|e| Error::io("write blob", &self.tmp, e.into_error()))?;
        drop(f);
        let dest = self.blobs.join(d.hex());
        fs::rename(&self.tmp, &dest).map_err(|e| Error::io("store blob", &dest, e))?;
        Ok((d, n))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Staging {
    /// A new staging area; `near` puts it in the same directory as the destination when possible (so blobs
    /// can be hard-linked rather than copied).
    pub fn new(near: Option<&Path>) -> Result<Staging> {
        let parent = near
            .and_then(|p| p.parent())
            .filter(|p| !p.as_os_str().is_empty() && p.is_dir());
        let dir = match parent {
            Some(p) => tempfile::Builder::new().prefix(".arca-staging-").tempdir_in(p),
            None => tempfile::Builder::new().prefix("arca-staging-").tempdir(),
        }
        .map_err(|e| Error::io("create staging directory", near.unwrap_or(Path::new("/tmp")), e))?;
        let blobs = dir.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create staging directory", &blobs, e))?;
        Ok(Staging { dir })
    }

    fn blobs(&self) -> PathBuf {
        self.dir.path().join("blobs/sha256")
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The file of a staged blob.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs().join(d.hex())
    }

    pub(crate) fn writer(&self) -> Result<BlobWriter> {
        let tmp = self.dir.path().join(format!("tmp-{}", rand_suffix()));
        let f = File::create(&tmp).map_err(|e| Error::io("create blob", &tmp, e))?;
        Ok(BlobWriter {
            inner: Some(HashingWriter::new(BufWriter::with_capacity(1 << 20, f))),
            tmp,
            blobs: self.blobs(),
        })
    }

    /// Stores `bytes` as a blob.
    pub fn put(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        w.write_all(bytes)
            .map_err(|e| Error::io("write blob", self.dir.path(), e))?;
        w.finish()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A descriptor as Arca writes it (fixed field order).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The content digest.
    pub digest: Digest,
    /// The content size.
    pub size: u64,
    /// Annotations (sorted).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct ManifestDoc<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize, serde::Deserialize)]
struct IndexDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default = "oci_index_type")]
    media_type: String,
    manifests: Vec<serde_json::Value>,
}

fn oci_index_type() -> String {
    OCI_INDEX.to_string()
}

/// A finished image in the staging area: its config and layers are staged blobs.
#[derive(Clone, Debug)]
pub struct StagedImage {
    /// The config descriptor.
    pub config: Descriptor,
    /// The layer descriptors, base first.
    pub layers: Vec<Descriptor>,
    /// The layers' uncompressed digests (the config's `diff_ids`).
    pub diff_ids: Vec<Digest>,
    /// The manifest bytes (OCI).
    pub manifest: Vec<u8>,
    /// The manifest's digest.
    pub manifest_digest: Digest,
}

impl StagedImage {
    /// Builds and stages the OCI manifest for a staged config and layers.
    pub fn new(
        staging: &Staging,
        config: Descriptor,
        layers: Vec<Descriptor>,
        diff_ids: Vec<Digest>,
    ) -> Result<Self> {
        let doc = ManifestDoc {
            schema_version: 2,
            media_type: OCI_MANIFEST,
            config: &config,
            layers: &layers,
            annotations: &BTreeMap::new(),
        };
        let manifest = serde_json::to_vec(&doc).map_err(|e| Error::json("write manifest", "manifest", e))?;
        let (manifest_digest, _) = staging.put(&manifest)?;
        Ok(StagedImage {
            config,
            layers,
            diff_ids,
            manifest,
            manifest_digest,
        })
    }

    fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// How to write an image.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Registry credentials.
    pub credentials: Option<Credentials>,
    /// Allow plain HTTP to a non-loopback registry.
    pub insecure: bool,
}

/// Where a written image ended up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The manifest digest at the destination (for docker archives: the OCI manifest's digest Arca computed).
    pub manifest_digest: Digest,
    /// Blobs uploaded (registry) or written.
    pub blobs_written: usize,
    /// Blobs the destination already had (registry existence checks, OCI layout reuse).
    pub blobs_existing: usize,
}

/// Commits a staged image to `dst`.
pub fn write_image(
    staging: &Staging,
    image: &StagedImage,
    dst: &ImageRef,
    opts: &WriteOptions,
) -> Result<Written> {
    match dst {
        ImageRef::Oci { dir, tag } => write_oci_dir(staging, image, dir, tag.as_deref()),
        ImageRef::OciArchive { path, tag } => write_oci_archive(staging, image, path, tag.as_deref()),
        ImageRef::DockerArchive { path, name } => write_docker_archive(staging, image, path, name.as_deref()),
        ImageRef::Registry(r) => {
            let client = RegistryClient::new(r, opts.credentials.clone(), opts.insecure)?.for_push();
            let mut written = Written {
                manifest_digest: image.manifest_digest,
                blobs_written: 0,
                blobs_existing: 0,
            };
            for d in image.blobs() {
                if client.push_blob(&d.digest, &staging.blob_path(&d.digest))? {
                    written.blobs_written += 1;
                } else {
                    written.blobs_existing += 1;
                }
            }
            let reference = match &r.reference {
                Reference::Tag(t) => t.clone(),
                Reference::Digest(d) => {
                    if *d != image.manifest_digest {
                        return Err(Error::Reference {
                            input: dst.to_string(),
                            reason: format!(
                                "the converted image's digest is {}, not {d}",
                                image.manifest_digest
                            ),
                        });
                    }
                    d.to_string()
                }
            };
            written.manifest_digest = client.put_manifest(&reference, &image.manifest, OCI_MANIFEST)?;
            Ok(written)
        }
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let tmp = to.with_extension("arca-tmp");
    fs::copy(from, &tmp).map_err(|e| Error::io("copy blob", to, e))?;
    fs::rename(&tmp, to).map_err(|e| Error::io("store blob", to, e))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("arca-tmp-{}", rand_suffix()));
    fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("write", path, e))
}

fn manifest_entry(image: &StagedImage, tag: Option<&str>) -> serde_json::Value {
    let mut annotations = BTreeMap::new();
    if let Some(t) = tag {
        annotations.insert(REF_NAME.to_string(), t.to_string());
    }
    let d = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: image.manifest_digest,
        size: image.manifest.len() as u64,
        annotations,
    };
    serde_json::to_value(d).unwrap_or(serde_json::Value::Null)
}

fn write_oci_dir(staging: &Staging, image: &StagedImage, dir: &Path, tag: Option<&str>) -> Result<Written> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io("create OCI layout", &blobs, e))?;
    write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = Written {
        manifest_digest: image.manifest_digest,
        blobs_written: 0,
        blobs_existing: 0,
    };
    for d in image
        .blobs()
        .map(|d| d.digest)
        .chain(std::iter::once(image.manifest_digest))
    {
        let dest = blobs.join(d.hex());
        if dest.exists() {
            written.blobs_existing += 1;
        } else {
            link_or_copy(&staging.blob_path(&d), &dest)?;
            written.blobs_written += 1;
        }
    }
    let index_path = dir.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(b) => serde_json::from_slice::<IndexDoc>(&b)
            .map_err(|e| Error::json("update", index_path.display().to_string(), e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => IndexDoc {
            schema_version: 2,
            media_type: OCI_INDEX.into(),
            manifests: Vec::new(),
        },
        Err(e) => return Err(Error::io("read", &index_path, e)),
    };
    // The new image replaces an entry with the same tag (or, untagged, the previous untagged entries).
    index.manifests.retain(|m| {
        let name = m
            .get("annotations")
            .and_then(|a| a.get(REF_NAME))
            .and_then(|n| n.as_str());
        name != tag
    });
    index.manifests.push(manifest_entry(image, tag));
    let bytes = serde_json::to_vec(&index).map_err(|e| Error::json("write", "index.json", e))?;
    write_atomic(&index_path, &bytes)?;
    Ok(written)
}

/// Writes a tar archive file from (name, source) members with fixed metadata; directories end with `/`.
fn write_archive(path: &Path, members: &[(String, Member<'_>)]) -> Result<()> {
    let tmp = path.with_extension(format!("arca-tmp-{}", rand_suffix()));
    let result = (|| -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        for (name, m) in members {
            match m {
                Member::Dir => tar::write_header(&mut out, &Header::new(name, Kind::Directory, 0o755), 0)?,
                Member::Bytes(b) => {
                    tar::write_header(&mut out, &Header::new(name, Kind::File, 0o644), b.len() as u64)?;
                    out.write_all(b)?;
                    tar::write_padding(&mut out, b.len() as u64)?;
                }
                Member::File(p) => {
                    let mut f = File::open(p)?;
                    let len = f.metadata()?.len();
                    tar::write_header(&mut out, &Header::new(name, Kind::File, 0o644), len)?;
                    let copied = io::copy(&mut (&mut f).take(len), &mut out)?;
                    if copied != len {
                        return Err(io::Error::other(format!(
                            "{} changed while being archived",
                            p.display()
                        )));
                    }
                    tar::write_padding(&mut out, len)?;
                }
            }
        }
        tar::write_end(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write archive", path, e));
    }
    fs::rename(&tmp, path).map_err(|e| Error::io("write archive", path, e))
}

enum Member<'a> {
    Dir,
    Bytes(Vec<u8>),
    File(&'a Path),
}

fn write_oci_archive(
    staging: &Staging,
    image: &StagedImage,
    path: &Path,
    tag: Option<&str>,
) -> Result<Written> {
    let index = IndexDoc {
        schema_version: 2,
        media_type: OCI_INDEX.into(),
        manifests: vec![manifest_entry(image, tag)],
    };
    let index = serde_json::to_vec(&index).map_err(|e| Error::json("write", "index.json", e))?;
    let mut blob_digests: Vec<Digest> = image
        .blobs()
        .map(|d| d.digest)
        .chain(std::iter::once(image.manifest_digest))
        .collect();
    blob_digests.sort();
    blob_digests.dedup();
    let paths: Vec<(String, PathBuf)> = blob_digests
        .iter()
        .map(|d| (format!("blobs/sha256/{}", d.hex()), staging.blob_path(d)))
        .collect();
    let mut members = vec![
        (
            "oci-layout".to_string(),
            Member::Bytes(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ),
        ("index.json".to_string(), Member::Bytes(index)),
        ("blobs/".to_string(), Member::Dir),
        ("blobs/sha256/".to_string(), Member::Dir),
    ];
    members.extend(paths.iter().map(|(n, p)| (n.clone(), Member::File(p))));
    write_archive(path, &members)?;
    Ok(Written {
        manifest_digest: image.manifest_digest,
        blobs_written: blob_digests.len(),
        blobs_existing: 0,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn write_docker_archive(
    staging: &Staging,
    image: &StagedImage,
    path: &Path,
    name: Option<&str>,
) -> Result<Written> {
    let config_name = format!("{}.json", image.config.digest.hex());
    let layer_names: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("{}.tar", l.digest.hex()))
        .collect();
    let entry = DockerManifestEntry {
        config: config_name.clone(),
        repo_tags: name
            .map(|n| {
                vec![if n.contains(':') {
                    n.to_string()
                } else {
                    format!("{n}:latest")
                }]
            })
            .unwrap_or_default(),
        layers: layer_names.clone(),
    };
    let manifest = serde_json::to_vec(&[entry]).map_err(|e| Error::json("write", "manifest.json", e))?;
    let config_path = staging.blob_path(&image.config.digest);
    let layer_paths: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| staging.blob_path(&l.digest))
        .collect();
    let mut members = vec![(config_name, Member::File(&config_path))];
    let mut seen = std::collections::BTreeSet::new();
    for (n, p) in layer_names.iter().zip(&layer_paths) {
        if seen.insert(n.clone()) {
            members.push((n.clone(), Member::File(p)));
        }
    }
    members.push(("manifest.json".to_string(), Member::Bytes(manifest)));
    write_archive(path, &members)?;
    Ok(Written {
        manifest_digest: image.manifest_digest,
        blobs_written: members.len() - 1,
        blobs_existing: 0,
    })
}

/// The layer media type for a codec in the OCI format.
pub(crate) fn layer_media_type(c: Compression) -> String {
    c.oci_layer_media_type().to_string()
}

/// Copies an image unchanged into `staging` (blobs byte for byte, checked against their digests and the
/// config's `diff_ids`), with an OCI manifest: what `skopeo copy` does, for tests and tools.
pub fn copy_image(src: &crate::source::SourceImage, staging: &Staging) -> Result<StagedImage> {
    src.verify()?;
    let mut layers = Vec::new();
    for (i, l) in src.layers.iter().enumerate() {
        let mut w = staging.writer()?;
        let mut r = src.open_blob(l)?;
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < 4 {
            match r
                .read(&mut head[n..])
                .map_err(|e| Error::stream("copy", src.layer_name(i), e))?
            {
                0 => break,
                k => n += k,
            }
        }
        w.write_all(&head[..n])
            .map_err(|e| Error::stream("copy", src.layer_name(i), e))?;
        io::copy(&mut r, &mut w).map_err(|e| Error::stream("copy", src.layer_name(i), e))?;
        let (digest, size) = w.finish()?;
        let codec = Compression::sniff(&head[..n]);
        layers.push(Descriptor {
            media_type: layer_media_type(codec),
            digest,
            size,
            annotations: BTreeMap::new(),
        });
    }
    let (cd, cs) = staging.put(&src.config_bytes)?;
    let config = Descriptor {
        media_type: OCI_CONFIG.into(),
        digest: cd,
        size: cs,
        annotations: BTreeMap::new(),
    };
    StagedImage::new(
        staging,
        config,
        layers,
        src.layers.iter().map(|l| l.diff_id).collect(),
    )
}
