//! Reading images from every transport into one shape: a config, and layers that can be opened as streams.
//!
//! Nothing read here is trusted: manifests and configs are checked against their digests when a digest names
//! them, and layer streams are checked by whoever reads them (`verify_layer` below, or the conversion) against
//! the descriptor's digest and size and the config's `diff_ids`, before anything derived from them is
//! committed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::compress;
use crate::digest::{self, Digest, HashingReader};
use crate::error::{Error, Result};
use crate::reference::{ImageRef, RegistryRef};
use crate::registry::{Credentials, RegistryClient};
use crate::tar::TarReader;

/// Largest manifest, index or config accepted (they are JSON documents of a few KiB in practice).
pub(crate) const MAX_DOCUMENT: u64 = 16 << 20;

/// Media types of single-image manifests Arca reads.
pub(crate) const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Media types of indexes (multi-platform lists).
pub(crate) const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The platform to pick from a multi-platform index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// CPU variant, if any (`v8`).
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl std::str::FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::Reference {
                input: s.to_string(),
                reason: "expected OS/ARCH[/VARIANT]".into(),
            }),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        self.variant.as_ref().map_or(Ok(()), |v| write!(f, "/{v}"))
    }
}

/// How to read images.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// The platform to select from an index.
    pub platform: Platform,
    /// Registry credentials (`None`: anonymous, or found in the auth files).
    pub credentials: Option<Credentials>,
    /// Allow plain HTTP to a non-loopback registry.
    pub insecure: bool,
}

/// One layer of a source image.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The media type in the manifest (docker-archive layers: the Docker tar type).
    pub media_type: String,
    /// The blob digest from the manifest (`None` for docker-archive layers, which have no manifest digest).
    pub digest: Option<Digest>,
    /// The blob size from the manifest.
    pub size: Option<u64>,
    /// The uncompressed digest from the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    pub(crate) location: BlobLoc,
}

#[derive(Clone, Debug)]
pub(crate) enum BlobLoc {
    Digest(Digest),
    Member(String),
}

pub(crate) trait Blobs: Send + Sync {
    fn open(&self, loc: &BlobLoc) -> Result<Box<dyn Read + Send + '_>>;
}

/// An image opened for reading.
pub struct SourceImage {
    /// The reference it was read from.
    pub reference: ImageRef,
    /// The manifest digest, when the source has a manifest (OCI, registry).
    pub manifest_digest: Option<Digest>,
    /// The config blob, exactly as stored.
    pub config_bytes: Vec<u8>,
    /// The config, parsed.
    pub config: ImageConfiguration,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    pub(crate) blobs: Arc<dyn Blobs>,
}

impl std::fmt::Debug for SourceImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceImage")
            .field("reference", &self.reference)
            .field("manifest_digest", &self.manifest_digest)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl SourceImage {
    /// Opens the image `reference` names.
    pub fn open(reference: &ImageRef, opts: &ReadOptions) -> Result<SourceImage> {
        match reference {
            ImageRef::Oci { dir, tag } => {
                let blobs = Arc::new(DirBlobs { dir: dir.clone() });
                let index = read_file_limited(&dir.join("index.json"))?;
                open_from_index(reference.clone(), &index, tag.as_deref(), blobs, opts)
            }
            ImageRef::OciArchive { path, tag } => {
                let blobs = Arc::new(ArchiveBlobs::index(path)?);
                let index = blobs.read_member("index.json")?;
                open_from_index(reference.clone(), &index, tag.as_deref(), blobs, opts)
            }
            ImageRef::DockerArchive { path, name } => {
                open_docker_archive(reference.clone(), path, name.as_deref())
            }
            ImageRef::Registry(r) => open_registry(reference.clone(), r, opts),
        }
    }

    /// Opens a layer's blob as stored (compressed or not).
    pub(crate) fn open_blob(&self, layer: &Layer) -> Result<Box<dyn Read + Send + '_>> {
        self.blobs.open(&layer.location)
    }

    /// A short name for layer `i` in messages.
    pub fn layer_name(&self, i: usize) -> String {
        let l = &self.layers[i];
        match &l.digest {
            Some(d) => format!("layer {} ({d})", i + 1),
            None => format!("layer {} (diff_id {})", i + 1, l.diff_id),
        }
    }

    /// Reads every layer completely and checks its blob digest and size, and its uncompressed digest against
    /// `diff_ids` (what `skopeo` does not check).
    pub fn verify(&self) -> Result<()> {
        for (i, l) in self.layers.iter().enumerate() {
            let what = self.layer_name(i);
            let mut raw = HashingReader::new(self.open_blob(l)?);
            let (_, plain) =
                compress::decoder(&mut raw).map_err(|e| Error::stream("decompress", &what, e))?;
            let mut plain = HashingReader::new(plain);
            io::copy(&mut plain, &mut io::sink()).map_err(|e| Error::stream("decompress", &what, e))?;
            let (diff_id, n) = plain.finish();
            digest::check(
                &format!("{what} uncompressed (diff_id)"),
                &l.diff_id,
                None,
                &diff_id,
                n,
            )?;
            io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::stream("read", &what, e))?;
            let (d, size) = raw.finish();
            if let Some(expected) = &l.digest {
                digest::check(&what, expected, l.size, &d, size)?;
            }
        }
        Ok(())
    }

    /// Copies the blob `digest` of this image, as stored, to `out`, checking its digest; returns its size.
    pub fn read_blob(&self, digest: &Digest, out: &mut impl io::Write) -> Result<u64> {
        let what = format!("blob {digest}");
        let mut r = HashingReader::new(self.blobs.open(&BlobLoc::Digest(*digest))?);
        io::copy(&mut r, out).map_err(|e| Error::stream("copy", &what, e))?;
        let (d, n) = r.finish();
        digest::check(&what, digest, None, &d, n)?;
        Ok(n)
    }

    /// The image's `config` section (entrypoint, cmd, env, ...), if any.
    pub fn runtime_config(&self) -> Option<&oci_spec::image::Config> {
        self.config.config().as_ref()
    }

    /// The labels of the image config (sorted).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.runtime_config()
            .and_then(|c| c.labels().as_ref())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

fn read_file_limited(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut buf = Vec::new();
    f.take(MAX_DOCUMENT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path, e))?;
    if buf.len() as u64 > MAX_DOCUMENT {
        return Err(Error::image(
            path.display().to_string(),
            "document larger than 16 MiB",
        ));
    }
    Ok(buf)
}

pub(crate) fn read_blob_verified(
    blobs: &dyn Blobs,
    d: &Digest,
    size: Option<u64>,
    what: &str,
) -> Result<Vec<u8>> {
    if size.is_some_and(|s| s > MAX_DOCUMENT) {
        return Err(Error::image(what, "document larger than 16 MiB"));
    }
    let mut buf = Vec::new();
    blobs
        .open(&BlobLoc::Digest(*d))?
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::stream("read", what, e))?;
    let actual = Digest::of(&buf);
    digest::check(what, d, size, &actual, buf.len() as u64)?;
    Ok(buf)
}

fn media_type_of(doc: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(doc).ok()?;
    p.media_type
        .or_else(|| p.manifests.map(|_| INDEX_TYPES[0].to_string()))
}

/// Chooses the manifest for `platform` from an index.
pub(crate) fn pick_platform(
    index: &ImageIndex,
    platform: &Platform,
    what: &str,
) -> Result<(Digest, u64, String)> {
    pick_platform_in(index.manifests(), platform, what)
}

/// True if an index entry's platform variant satisfies the requested one: any variant when none is asked;
/// otherwise the same, or none for `arm64` asked as `v8` (its only variant, which indexes often omit).
fn variant_matches(arch: &str, entry: Option<&str>, wanted: Option<&str>) -> bool {
    match (entry, wanted) {
        (_, None) => true,
        (Some(e), Some(w)) => e == w,
        (None, Some(w)) => arch == "arm64" && w == "v8",
    }
}

/// [`pick_platform`] over a list of descriptors (an index's, or the entries of an OCI layout's index.json).
fn pick_platform_in(
    manifests: &[oci_spec::image::Descriptor],
    platform: &Platform,
    what: &str,
) -> Result<(Digest, u64, String)> {
    let mut seen = Vec::new();
    for m in manifests {
        let mt = m.media_type().to_string();
        let Some(p) = m.platform() else {
            // A single untagged entry without platform is taken as-is.
            if manifests.len() == 1 {
                return Ok((m.digest().to_string().parse()?, m.size(), mt));
            }
            continue;
        };
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        seen.push(format!(
            "{os}/{arch}{}",
            p.variant().as_ref().map(|v| format!("/{v}")).unwrap_or_default()
        ));
        if os == platform.os
            && arch == platform.architecture
            && variant_matches(&arch, p.variant().as_deref(), platform.variant.as_deref())
        {
            return Ok((m.digest().to_string().parse()?, m.size(), mt));
        }
    }
    Err(Error::image(
        what,
        format!(
            "no manifest for platform {platform}; the index has: {} (pick one with --platform OS/ARCH[/VARIANT])",
            if seen.is_empty() { "no platform-tagged manifest".to_string() } else { seen.join(", ") }
        ),
    ))
}

fn open_from_index(
    reference: ImageRef,
    index_bytes: &[u8],
    tag: Option<&str>,
    blobs: Arc<dyn Blobs>,
    opts: &ReadOptions,
) -> Result<SourceImage> {
    let what = format!("{reference} index.json");
    let index: ImageIndex =
        serde_json::from_slice(index_bytes).map_err(|e| Error::json("read index", &what, e))?;
    const REF_NAME: &str = "org.opencontainers.image.ref.name";
    let chosen: Vec<_> = index
        .manifests()
        .iter()
        .filter(|m| match tag {
            None => true,
            Some(t) => m
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|n| n == t),
        })
        .collect();
    let (mut digest, mut size, mut mt) = match chosen.as_slice() {
        [one] => (
            one.digest().to_string().parse()?,
            one.size(),
            one.media_type().to_string(),
        ),
        // One image for several platforms, listed directly in index.json (no nested index).
        many if many.iter().all(|m| m.platform().is_some()) => {
            let entries: Vec<_> = many.iter().map(|m| (*m).clone()).collect();
            pick_platform_in(&entries, &opts.platform, &what)?
        }
        [] => {
            return Err(Error::image(
                &what,
                match tag {
                    Some(t) => format!("no manifest tagged `{t}`"),
                    None => "no manifest".to_string(),
                },
            ))
        }
        _ => {
            let tags: Vec<String> = chosen
                .iter()
                .filter_map(|m| m.annotations().as_ref().and_then(|a| a.get(REF_NAME)).cloned())
                .collect();
            return Err(Error::image(
                &what,
                format!("holds several images; name one with `:TAG` ({})", tags.join(", ")),
            ));
        }
    };
    // Follow nested indexes (a tag may name a multi-platform index) down to one manifest.
    for _ in 0..4 {
        if !INDEX_TYPES.contains(&mt.as_str()) {
            break;
        }
        let doc = read_blob_verified(blobs.as_ref(), &digest, Some(size), &format!("index {digest}"))?;
        let nested: ImageIndex =
            serde_json::from_slice(&doc).map_err(|e| Error::json("read index", digest.to_string(), e))?;
        (digest, size, mt) = pick_platform(&nested, &opts.platform, &format!("index {digest}"))?;
    }
    let manifest_bytes =
        read_blob_verified(blobs.as_ref(), &digest, Some(size), &format!("manifest {digest}"))?;
    image_from_manifest(reference, digest, &manifest_bytes, blobs)
}

pub(crate) fn image_from_manifest(
    reference: ImageRef,
    manifest_digest: Digest,
    manifest_bytes: &[u8],
    blobs: Arc<dyn Blobs>,
) -> Result<SourceImage> {
    let what = format!("manifest {manifest_digest}");
    if let Some(mt) = media_type_of(manifest_bytes) {
        if !MANIFEST_TYPES.contains(&mt.as_str()) {
            return Err(Error::Unsupported {
                what: format!("{what}: media type `{mt}`"),
            });
        }
    }
    let manifest: ImageManifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| Error::json("read manifest", &what, e))?;
    let cfg_digest: Digest = manifest.config().digest().to_string().parse()?;
    let config_bytes = read_blob_verified(
        blobs.as_ref(),
        &cfg_digest,
        Some(manifest.config().size()),
        &format!("config {cfg_digest}"),
    )?;
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::json("read config", cfg_digest.to_string(), e))?;
    let diff_ids = diff_ids(&config, &what)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::image(
            &what,
            format!(
                "{} layers but the config lists {} diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (l, diff_id) in manifest.layers().iter().zip(diff_ids) {
        let digest: Digest = l.digest().to_string().parse()?;
        let media_type = l.media_type().to_string();
        if compress::Compression::from_media_type(&media_type).is_none() {
            return Err(Error::Unsupported {
                what: format!("{what}: layer media type `{media_type}`"),
            });
        }
        layers.push(Layer {
            media_type,
            digest: Some(digest),
            size: Some(l.size()),
            diff_id,
            location: BlobLoc::Digest(digest),
        });
    }
    Ok(SourceImage {
        reference,
        manifest_digest: Some(manifest_digest),
        config_bytes,
        config,
        layers,
        blobs,
    })
}

fn diff_ids(config: &ImageConfiguration, what: &str) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse::<Digest>().map_err(|e| Error::image(what, e.to_string())))
        .collect()
}

struct DirBlobs {
    dir: PathBuf,
}

impl Blobs for DirBlobs {
    fn open(&self, loc: &BlobLoc) -> Result<Box<dyn Read + Send + '_>> {
        let path = match loc {
            BlobLoc::Digest(d) => self.dir.join("blobs/sha256").join(d.hex()),
            BlobLoc::Member(m) => self.dir.join(m),
        };
        let f = File::open(&path).map_err(|e| Error::io("open blob", &path, e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 20, f)))
    }
}

/// A tar archive read in place: members are found by one pass over the headers (data is skipped with
/// seeks), then opened as slices of the file.
pub(crate) struct ArchiveBlobs {
    path: PathBuf,
    members: BTreeMap<String, (u64, u64)>,
}

impl ArchiveBlobs {
    pub(crate) fn index(path: &Path) -> Result<Self> {
        let mut f = File::open(path).map_err(|e| Error::io("open archive", path, e))?;
        let mut head = [0u8; 4];
        let n = f
            .read(&mut head)
            .map_err(|e| Error::io("read archive", path, e))?;
        if compress::Compression::sniff(&head[..n]) != compress::Compression::None {
            return Err(Error::Unsupported {
                what: format!(
                    "{} is a compressed archive; decompress it first (gunzip / unzstd)",
                    path.display()
                ),
            });
        }
        f.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("read archive", path, e))?;
        let what = path.display().to_string();
        let mut reader = TarReader::with_seek(BufReader::with_capacity(64 * 1024, f), &what);
        let mut members = BTreeMap::new();
        while let Some(h) = reader.next_header()? {
            if h.kind != crate::tar::Kind::File {
                continue;
            }
            let name = crate::layer::normalize(&h.name).map_err(|r| Error::UnsafeEntry {
                what: what.clone(),
                entry: String::from_utf8_lossy(&h.name).into_owned(),
                reason: r,
            })?;
            members.insert(name, (reader.position(), h.size));
        }
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io("read archive", path, e))?
            .len();
        if let Some((name, _)) = members.iter().find(|(_, (o, s))| o + s > len) {
            return Err(Error::Tar {
                what,
                offset: len,
                reason: format!("member `{name}` is truncated"),
            });
        }
        Ok(ArchiveBlobs {
            path: path.to_path_buf(),
            members,
        })
    }

    pub(crate) fn read_member(&self, name: &str) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open(&BlobLoc::Member(name.to_string()))?
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read archive member", self.path.join(name), e))?;
        if buf.len() as u64 > MAX_DOCUMENT {
            return Err(Error::image(name, "document larger than 16 MiB"));
        }
        Ok(buf)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }
}

impl Blobs for ArchiveBlobs {
    fn open(&self, loc: &BlobLoc) -> Result<Box<dyn Read + Send + '_>> {
        let name = match loc {
            BlobLoc::Digest(d) => format!("blobs/sha256/{}", d.hex()),
            BlobLoc::Member(m) => crate::layer::normalize(m.as_bytes()).unwrap_or_default(),
        };
        let &(offset, size) = self.members.get(&name).ok_or_else(|| {
            Error::image(
                self.path.display().to_string(),
                format!("archive has no member `{name}`"),
            )
        })?;
        let mut f = File::open(&self.path).map_err(|e| Error::io("open archive", &self.path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seek archive", &self.path, e))?;
        Ok(Box::new(BufReader::with_capacity(1 << 20, f.take(size))))
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn open_docker_archive(reference: ImageRef, path: &Path, name: Option<&str>) -> Result<SourceImage> {
    let blobs = Arc::new(ArchiveBlobs::index(path)?);
    let what = format!("{} manifest.json", path.display());
    if !blobs.has("manifest.json") {
        return Err(Error::image(&what, "missing: not a `docker save` archive"));
    }
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(&blobs.read_member("manifest.json")?)
        .map_err(|e| Error::json("read", &what, e))?;
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| e.repo_tags.as_ref().is_some_and(|t| t.iter().any(|t| t == n))),
        None if entries.len() == 1 => entries.first(),
        None => {
            return Err(Error::image(
                &what,
                "holds several images; name one with `docker-archive:PATH:REPO:TAG`",
            ));
        }
    }
    .ok_or_else(|| Error::image(&what, format!("no image named `{}`", name.unwrap_or(""))))?;
    let config_bytes = blobs.read_member(&entry.config)?;
    // The config's file name is its digest (`<hex>.json` or `blobs/sha256/<hex>`): check it when it is.
    let stem = entry
        .config
        .rsplit('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".json");
    if let Ok(named) = format!("sha256:{stem}").parse::<Digest>() {
        let actual = Digest::of(&config_bytes);
        digest::check(
            &format!("config {}", entry.config),
            &named,
            None,
            &actual,
            config_bytes.len() as u64,
        )?;
    }
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::json("read config", &entry.config, e))?;
    let diff_ids = diff_ids(&config, &what)?;
    if diff_ids.len() != entry.layers.len() {
        return Err(Error::image(
            &what,
            format!(
                "{} layers but the config lists {} diff_ids",
                entry.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let layers = entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(m, diff_id)| Layer {
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            digest: None,
            size: None,
            diff_id,
            location: BlobLoc::Member(m.clone()),
        })
        .collect();
    Ok(SourceImage {
        reference,
        manifest_digest: None,
        config_bytes,
        config,
        layers,
        blobs,
    })
}

fn open_registry(reference: ImageRef, r: &RegistryRef, opts: &ReadOptions) -> Result<SourceImage> {
    let client = Arc::new(RegistryClient::new(r, opts.credentials.clone(), opts.insecure)?);
    let (digest, manifest_bytes) = client.fetch_manifest(&r.reference, &opts.platform)?;
    let blobs: Arc<dyn Blobs> = client;
    image_from_manifest(reference, digest, &manifest_bytes, blobs)
}
