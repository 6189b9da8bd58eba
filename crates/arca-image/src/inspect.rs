//! `arca inspect` and `arca diff`: read the enclave files of a converted image, recompute and check its
//! identity, and explain why two identities differ.

use std::collections::BTreeMap;
use std::io;

use arca_enclave::{paths, EnclaveManifest, Mrenclave, Mrsigner};
use arca_pfs::TrustedList;
use arca_sgx::Sigstruct;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::compress;
use crate::digest::{self, Digest, HashingReader};
use crate::error::{Error, Result};
use crate::layer::{classify, Op};
use crate::source::SourceImage;
use crate::tar::{Kind, TarReader};

/// The four files Arca adds to an image, as found in its top layer.
#[derive(Clone, Debug, Default)]
pub struct EnclaveFiles {
    /// `/arca/launcher`.
    pub launcher: Vec<u8>,
    /// `/arca/enclave.toml`.
    pub manifest: Vec<u8>,
    /// `/arca/trusted.list`.
    pub trusted_list: Vec<u8>,
    /// `/arca/enclave.sig`.
    pub sigstruct: Vec<u8>,
}

/// Reads the `/arca` files from the image's top layer (verifying the layer's digests on the way).
pub fn read_enclave_files(src: &SourceImage) -> Result<EnclaveFiles> {
    let i = src
        .layers
        .len()
        .checked_sub(1)
        .ok_or_else(|| Error::image(src.reference.to_string(), "no layers"))?;
    let layer = &src.layers[i];
    let what = src.layer_name(i);
    let mut raw = HashingReader::new(src.open_blob(layer)?);
    let (_, plain) = compress::decoder(&mut raw).map_err(|e| Error::stream("decompress", &what, e))?;
    let mut reader = TarReader::new(HashingReader::new(plain), &what);
    let mut files = EnclaveFiles::default();
    let limit = arca_enclave::MAX_LAUNCHER as u64;
    while let Some(h) = reader.next_header()? {
        let Op::Put(p) = classify(&h, &what)? else {
            continue;
        };
        let target = match format!("/{p}").as_str() {
            paths::LAUNCHER_PATH => &mut files.launcher,
            paths::MANIFEST_PATH => &mut files.manifest,
            paths::TRUSTED_LIST_PATH => &mut files.trusted_list,
            paths::SIGNATURE_PATH => &mut files.sigstruct,
            _ => continue,
        };
        if h.kind != Kind::File || h.size > limit {
            return Err(Error::image(
                &what,
                format!("/{p} is not a regular file of at most {limit} bytes"),
            ));
        }
        target.clear();
        reader.copy_data(target)?;
    }
    let mut rest = reader.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| Error::stream("read", &what, e))?;
    let (diff_id, n) = rest.finish();
    digest::check(&format!("{what} (diff_id)"), &layer.diff_id, None, &diff_id, n)?;
    io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::stream("read", &what, e))?;
    let (d, size) = raw.finish();
    if let Some(expected) = &layer.digest {
        digest::check(&what, expected, layer.size, &d, size)?;
    }
    if files.launcher.is_empty() || files.manifest.is_empty() || files.sigstruct.is_empty() {
        return Err(Error::image(
            src.reference.to_string(),
            "not an Arca image: its top layer has no /arca/launcher, /arca/enclave.toml and /arca/enclave.sig",
        ));
    }
    Ok(files)
}

/// One check `arca inspect` makes.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Details (the values compared).
    pub detail: String,
}

/// What `arca inspect` reports about a converted image.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The image reference.
    pub reference: String,
    /// The image's manifest digest.
    pub image_digest: Option<Digest>,
    /// MRENCLAVE recomputed from the launcher and manifest with the identity function.
    pub mrenclave: Option<Mrenclave>,
    /// MRSIGNER of the SIGSTRUCT's key.
    pub mrsigner: Mrsigner,
    /// ISVPRODID (SIGSTRUCT).
    pub isvprodid: u16,
    /// ISVSVN (SIGSTRUCT).
    pub isvsvn: u16,
    /// DEBUG attribute (SIGSTRUCT).
    pub debug: bool,
    /// The launcher's size and SHA-256.
    pub launcher_size: u64,
    /// SHA-256 of the launcher.
    pub launcher_sha256: String,
    /// Files in the trusted-file list.
    pub trusted_files: usize,
    /// The enclave manifest.
    pub manifest: EnclaveManifest,
    /// True when the image pins the development coordinator (simulation only).
    pub development_coordinator: bool,
    /// The checks made; the image is consistent when all hold.
    pub checks: Vec<Check>,
    #[serde(skip)]
    trusted: BTreeMap<String, String>,
    #[serde(skip)]
    manifest_bytes: Vec<u8>,
}

impl Inspection {
    /// True when every check held.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Reads and checks a converted image: the SIGSTRUCT's signature, that it signs the MRENCLAVE recomputed
/// from the launcher and manifest, that the trusted-file list matches the manifest, and the labels.
pub fn inspect(src: &SourceImage) -> Result<Inspection> {
    let files = read_enclave_files(src)?;
    let manifest = EnclaveManifest::from_toml(&files.manifest)?;
    let sig =
        Sigstruct::parse(&files.sigstruct).map_err(|e| Error::image("/arca/enclave.sig", e.to_string()))?;
    let mut checks = Vec::new();
    let mrenclave = arca_enclave::mrenclave(&files.launcher, &files.manifest);
    let sig_ok = sig.verify();
    checks.push(Check {
        name: "SIGSTRUCT signature".into(),
        ok: sig_ok.is_ok(),
        detail: sig_ok
            .err()
            .map_or("valid RSA-3072 signature".into(), |e| e.to_string()),
    });
    match &mrenclave {
        Ok(m) => checks.push(Check {
            name: "SIGSTRUCT signs the recomputed MRENCLAVE".into(),
            ok: *m == sig.fields.enclavehash,
            detail: format!("recomputed {m}, ENCLAVEHASH {}", sig.fields.enclavehash),
        }),
        Err(e) => checks.push(Check {
            name: "recompute MRENCLAVE".into(),
            ok: false,
            detail: e.to_string(),
        }),
    }
    let list_hash = hex::encode(Sha256::digest(&files.trusted_list));
    checks.push(Check {
        name: "trusted.list matches the manifest".into(),
        ok: list_hash == manifest.files.trusted_list_sha256,
        detail: format!(
            "sha256 {list_hash}, manifest {}",
            manifest.files.trusted_list_sha256
        ),
    });
    let trusted = TrustedList::parse(&files.trusted_list);
    checks.push(Check {
        name: "trusted.list is well-formed".into(),
        ok: trusted.is_ok(),
        detail: trusted
            .as_ref()
            .map_or_else(|e| e.to_string(), |t| format!("{} files", t.len())),
    });
    let fields_ok = sig.fields.isvprodid == manifest.enclave.isvprodid
        && sig.fields.isvsvn == manifest.enclave.isvsvn
        && sig.fields.attributes.is_debug() == manifest.enclave.debug;
    checks.push(Check {
        name: "SIGSTRUCT ISVPRODID/ISVSVN/DEBUG match the manifest".into(),
        ok: fields_ok,
        detail: format!(
            "SIGSTRUCT {}/{}/{}, manifest {}/{}/{}",
            sig.fields.isvprodid,
            sig.fields.isvsvn,
            sig.fields.attributes.is_debug(),
            manifest.enclave.isvprodid,
            manifest.enclave.isvsvn,
            manifest.enclave.debug
        ),
    });
    let labels = src.labels();
    if let (Some(label), Ok(m)) = (labels.get(paths::labels::MRENCLAVE), &mrenclave) {
        checks.push(Check {
            name: "label dev.arca.mrenclave".into(),
            ok: *label == m.to_string(),
            detail: format!("label {label}"),
        });
    }
    let trusted_map: BTreeMap<String, String> = trusted
        .as_ref()
        .map(|t| t.iter().map(|(p, h)| (p.to_string(), hex::encode(h))).collect())
        .unwrap_or_default();
    Ok(Inspection {
        reference: src.reference.to_string(),
        image_digest: src.manifest_digest,
        mrenclave: mrenclave.ok(),
        mrsigner: sig.mrsigner(),
        isvprodid: sig.fields.isvprodid,
        isvsvn: sig.fields.isvsvn,
        debug: sig.fields.attributes.is_debug(),
        launcher_size: files.launcher.len() as u64,
        launcher_sha256: hex::encode(Sha256::digest(&files.launcher)),
        trusted_files: trusted_map.len(),
        development_coordinator: manifest.coordinator.is_development(),
        manifest,
        checks,
        trusted: trusted_map,
        manifest_bytes: files.manifest,
    })
}

/// One difference between two images' enclaves.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Difference {
    /// What differs (`launcher`, `process.argv`, `file /app/main.py`, ...).
    pub what: String,
    /// Which identity it changes: `mrenclave`, `mrsigner`, or `both`.
    pub affects: &'static str,
    /// The first image's value.
    pub left: String,
    /// The second image's value.
    pub right: String,
}

/// Why two identities differ.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    /// The first image's MRENCLAVE.
    pub left_mrenclave: Option<Mrenclave>,
    /// The second image's MRENCLAVE.
    pub right_mrenclave: Option<Mrenclave>,
    /// The first image's MRSIGNER.
    pub left_mrsigner: Mrsigner,
    /// The second image's MRSIGNER.
    pub right_mrsigner: Mrsigner,
    /// True when both MRENCLAVE and MRSIGNER are equal.
    pub same_identity: bool,
    /// Every difference found, launcher and manifest fields first, then files.
    pub differences: Vec<Difference>,
}

fn show<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Compares two inspected images and lists what makes their identities differ.
pub fn diff(a: &Inspection, b: &Inspection) -> DiffReport {
    let mut d = Vec::new();
    fn push(d: &mut Vec<Difference>, what: String, affects: &'static str, left: String, right: String) {
        d.push(Difference {
            what,
            affects,
            left,
            right,
        });
    }
    if a.launcher_sha256 != b.launcher_sha256 {
        push(
            &mut d,
            "launcher".into(),
            "mrenclave",
            format!("{} bytes, sha256 {}", a.launcher_size, a.launcher_sha256),
            format!("{} bytes, sha256 {}", b.launcher_size, b.launcher_sha256),
        );
    }
    let (ma, mb) = (&a.manifest, &b.manifest);
    macro_rules! field {
        ($name:literal, $($f:tt)+) => {
            if ma.$($f)+ != mb.$($f)+ {
                push(&mut d, $name.into(), "mrenclave", show(&ma.$($f)+), show(&mb.$($f)+));
            }
        };
    }
    field!("process.exec", process.exec);
    field!("process.argv", process.argv);
    if ma.process.env != mb.process.env {
        let only =
            |x: &[String], y: &[String]| x.iter().filter(|e| !y.contains(e)).cloned().collect::<Vec<_>>();
        push(
            &mut d,
            "process.env".into(),
            "mrenclave",
            show(&only(&ma.process.env, &mb.process.env)),
            show(&only(&mb.process.env, &ma.process.env)),
        );
    }
    field!("process.workdir", process.workdir);
    field!("process.user", process.user);
    field!("enclave.isvprodid", enclave.isvprodid);
    field!("enclave.isvsvn", enclave.isvsvn);
    field!("enclave.debug", enclave.debug);
    field!("enclave.size", enclave.size);
    field!("enclave.threads", enclave.threads);
    field!("files.allow_paths", files.allow_paths);
    field!("files.protected", files.protected);
    field!("host.allow_env", host.allow_env);
    field!("host.allow_argv", host.allow_argv);
    field!("coordinator", coordinator);
    if ma.files.trusted_list_sha256 != mb.files.trusted_list_sha256 {
        push(
            &mut d,
            "files.trusted_list_sha256".into(),
            "mrenclave",
            ma.files.trusted_list_sha256.clone(),
            mb.files.trusted_list_sha256.clone(),
        );
        for (path, h) in &a.trusted {
            match b.trusted.get(path) {
                None => push(
                    &mut d,
                    format!("file {path}"),
                    "mrenclave",
                    format!("sha256 {h}"),
                    "absent".into(),
                ),
                Some(h2) if h2 != h => push(
                    &mut d,
                    format!("file {path}"),
                    "mrenclave",
                    format!("sha256 {h}"),
                    format!("sha256 {h2}"),
                ),
                _ => {}
            }
        }
        for (path, h) in &b.trusted {
            if !a.trusted.contains_key(path) {
                push(
                    &mut d,
                    format!("file {path}"),
                    "mrenclave",
                    "absent".into(),
                    format!("sha256 {h}"),
                );
            }
        }
    }
    let manifest_fields_differ = d.iter().any(|x| x.what != "launcher");
    if a.manifest_bytes != b.manifest_bytes && !manifest_fields_differ {
        push(
            &mut d,
            "manifest bytes (same values, different serialisation)".into(),
            "mrenclave",
            String::new(),
            String::new(),
        );
    }
    if a.mrsigner != b.mrsigner {
        push(
            &mut d,
            "signing key (MRSIGNER)".into(),
            "mrsigner",
            a.mrsigner.to_string(),
            b.mrsigner.to_string(),
        );
    }
    DiffReport {
        left_mrenclave: a.mrenclave,
        right_mrenclave: b.mrenclave,
        left_mrsigner: a.mrsigner,
        right_mrsigner: b.mrsigner,
        same_identity: a.mrenclave.is_some() && a.mrenclave == b.mrenclave && a.mrsigner == b.mrsigner,
        differences: d,
    }
}
