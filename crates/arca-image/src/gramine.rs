//! `arca convert --engine gramine`: a GSC-style build context for Gramine on SGX hardware.
//!
//! **Unverified on SGX**: no machine of the Arca project has SGX, so this generator is tested for what can be
//! tested here — the rootfs, a valid Gramine manifest with the documented keys and values, the Dockerfile —
//! and its output says so. The enclave's MRENCLAVE is the one `gramine-sgx-sign` computes (Gramine's own
//! layout), not Arca's sim-engine identity.
//!
//! Layout of the context (`DIR/`):
//! - `rootfs/` — the converted image's files (protected files already encrypted, `/arca/*` included);
//! - `gramine/arca.manifest.template` — the Gramine manifest (rendered by `gramine-manifest`, signed by
//!   `gramine-sgx-sign`); in the final image the rootfs lives at `/arca/rootfs`, which is Gramine's `fs.root`;
//! - `gramine/argv` — the launcher's argv for `loader.argv_src_file`;
//! - `Dockerfile`, `README.md`.
//!
//! Protected files are bound, as Gramine binds them, to the host path Gramine opens:
//! `/arca/rootfs` + their in-image path.

use std::fs;
use std::io::Read;
use std::path::Path;

use arca_enclave::{paths, EnclaveManifest};
use serde::Serialize;
use toml::Value;

use crate::compress;
use crate::convert::{convert_with_prefix, ConvertOptions, ConvertReport};
use crate::error::{Error, Result};
use crate::layer::Unpacker;
use crate::sink::Staging;
use crate::source::SourceImage;

/// Where the app's rootfs lives in the final Gramine image (Gramine's `fs.root`).
pub const GRAMINE_ROOTFS: &str = "/arca/rootfs";
/// The Gramine base image the Dockerfile defaults to.
pub(crate) const GRAMINE_IMAGE: &str = "gramineproject/gramine:1.9";
/// The warning printed with every Gramine build context.
pub const GRAMINE_WARNING: &str =
    "NOTE: --engine gramine output is UNVERIFIED on SGX hardware (Arca's machines have \
no SGX). Its MRENCLAVE is the one gramine-sgx-sign prints when the Dockerfile is built, not the sim-engine \
MRENCLAVE shown above; use the SignerID-based Packages entry.";

/// What was written.
#[derive(Clone, Debug, Serialize)]
pub struct GramineContext {
    /// The context directory.
    pub dir: String,
    /// The Gramine manifest template.
    pub manifest: String,
    /// The Dockerfile.
    pub dockerfile: String,
    /// Entries in `sgx.trusted_files`.
    pub trusted_files: usize,
    /// The unverified-on-SGX warning.
    pub warning: &'static str,
}

fn size_string(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// The Gramine manifest (as a TOML document) for an Arca enclave manifest and its trusted-file list.
pub fn gramine_manifest(
    manifest: &EnclaveManifest,
    trusted_list: &arca_pfs::TrustedList,
    arca_files: &[(String, String)],
) -> Result<String> {
    use toml::map::Map;
    let mut root = Map::new();
    let table = |pairs: Vec<(&str, Value)>| {
        Value::Table(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    };
    let s = |v: &str| Value::String(v.to_string());

    let mut env = Map::new();
    for e in &manifest.process.env {
        if let Some((k, v)) = e.split_once('=') {
            env.insert(k.to_string(), s(v));
        }
    }
    for name in paths::DEPLOY_ENV
        .iter()
        .map(|s| s.to_string())
        .chain(manifest.host.allow_env.iter().cloned())
    {
        env.insert(name, table(vec![("passthrough", Value::Boolean(true))]));
    }
    root.insert(
        "loader".into(),
        table(vec![
            ("entrypoint", table(vec![("uri", s("file:{{ gramine.libos }}"))])),
            ("log_level", s("error")),
            ("argv_src_file", s("file:/arca/gramine/argv")),
            ("env", Value::Table(env)),
        ]),
    );
    root.insert(
        "libos".into(),
        table(vec![("entrypoint", s(paths::LAUNCHER_PATH))]),
    );

    let mut mounts = vec![
        table(vec![("path", s("/tmp")), ("type", s("tmpfs"))]),
        table(vec![("path", s("/etc/hosts")), ("uri", s("file:/etc/hosts"))]),
        table(vec![
            ("path", s("/etc/resolv.conf")),
            ("uri", s("file:/etc/resolv.conf")),
        ]),
        table(vec![
            ("path", s("/etc/hostname")),
            ("uri", s("file:/etc/hostname")),
        ]),
    ];
    for m in &manifest.files.protected {
        mounts.push(table(vec![
            ("type", s("encrypted")),
            ("path", s(&m.path)),
            ("uri", s(&format!("file:{GRAMINE_ROOTFS}{}", m.path))),
            ("key_name", s(&m.key)),
        ]));
    }
    root.insert(
        "fs".into(),
        table(vec![
            ("root", table(vec![("uri", s(&format!("file:{GRAMINE_ROOTFS}")))])),
            ("mounts", Value::Array(mounts)),
        ]),
    );

    let mut trusted: Vec<Value> = trusted_list
        .iter()
        .map(|(p, h)| {
            table(vec![
                ("uri", s(&format!("file:{GRAMINE_ROOTFS}{p}"))),
                ("sha256", s(&hex::encode(h))),
            ])
        })
        .collect();
    for (p, h) in arca_files {
        trusted.push(table(vec![
            ("uri", s(&format!("file:{GRAMINE_ROOTFS}{p}"))),
            ("sha256", s(h)),
        ]));
    }
    trusted.push(table(vec![("uri", s("file:/arca/gramine/argv"))]));
    let e = &manifest.enclave;
    root.insert(
        "sgx".into(),
        table(vec![
            ("remote_attestation", s("dcap")),
            ("debug", Value::Boolean(e.debug)),
            ("enclave_size", s(&size_string(e.size))),
            ("max_threads", Value::Integer(i64::from(e.threads))),
            ("isvprodid", Value::Integer(i64::from(e.isvprodid))),
            ("isvsvn", Value::Integer(i64::from(e.isvsvn))),
            ("edmm_enable", Value::Boolean(false)),
            (
                "allowed_files",
                Value::Array(vec![
                    s("file:/etc/hosts"),
                    s("file:/etc/resolv.conf"),
                    s("file:/etc/hostname"),
                ]),
            ),
            ("trusted_files", Value::Array(trusted)),
        ]),
    );
    let body = toml::to_string(&Value::Table(root)).map_err(|e| Error::Convert {
        reason: format!("Gramine manifest: {e}"),
    })?;
    Ok(format!(
        "# Gramine manifest generated by `arca convert --engine gramine` (Arca {}).\n\
         # UNVERIFIED on SGX hardware. MRENCLAVE comes from gramine-sgx-sign, not from Arca.\n\
         # The app's rootfs is at {GRAMINE_ROOTFS}; protected files are bound to {GRAMINE_ROOTFS}/<path>.\n{body}",
        env!("CARGO_PKG_VERSION")
    ))
}

fn dockerfile() -> String {
    format!(
        "# syntax=docker/dockerfile:1\n\
         # Generated by `arca convert --engine gramine`. UNVERIFIED on SGX hardware.\n\
         # Build on a host with SGX and Gramine's tools (the base image has them):\n\
         #   docker build --secret id=sgx_signing_key,src=signing.pem -t app-sgx .\n\
         # gramine-sgx-sign prints the enclave's MRENCLAVE (Gramine's, not Arca's sim-engine value).\n\
         ARG GRAMINE_IMAGE={GRAMINE_IMAGE}\n\
         FROM ${{GRAMINE_IMAGE}}\n\
         COPY rootfs/ {GRAMINE_ROOTFS}/\n\
         COPY gramine/ /arca/gramine/\n\
         WORKDIR /arca/gramine\n\
         RUN gramine-manifest -Darch_libdir=/lib/x86_64-linux-gnu arca.manifest.template arca.manifest\n\
         RUN --mount=type=secret,id=sgx_signing_key,required=true \\\n    \
         gramine-sgx-sign --manifest arca.manifest --output arca.manifest.sgx --key /run/secrets/sgx_signing_key\n\
         ENTRYPOINT [\"gramine-sgx\", \"arca\"]\n"
    )
}

/// Converts `src` into a Gramine build context in `dir` (created; must not exist or be empty).
pub fn gramine_context(
    src: &SourceImage,
    opts: &ConvertOptions<'_>,
    dir: &Path,
) -> Result<(ConvertReport, GramineContext)> {
    if dir.exists()
        && fs::read_dir(dir)
            .map_err(|e| Error::io("open", dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::Convert {
            reason: format!("{} exists and is not empty", dir.display()),
        });
    }
    let staging = Staging::new(Some(&dir.join("x")))?;
    let (staged, report) = convert_with_prefix(src, opts, &staging, GRAMINE_ROOTFS)?;
    let manifest = EnclaveManifest::from_toml(&report.manifest)?;
    let trusted = arca_pfs::TrustedList::parse(&report.trusted_list).map_err(|e| Error::Convert {
        reason: format!("trusted-file list: {e}"),
    })?;

    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(|e| Error::io("create", &rootfs, e))?;
    let mut unpacker = Unpacker::new(&rootfs)?;
    for (i, l) in staged.layers.iter().enumerate() {
        let path = staging.blob_path(&l.digest);
        let f = fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let (_, plain) =
            compress::decoder(f).map_err(|e| Error::stream("decompress", format!("layer {}", i + 1), e))?;
        unpacker.apply(plain, &format!("layer {} ({})", i + 1, l.digest))?;
    }
    unpacker.finish()?;

    // The /arca files are trusted too (the launcher reads its manifest and list inside the enclave).
    let mut arca_files = Vec::new();
    for p in [
        paths::LAUNCHER_PATH,
        paths::MANIFEST_PATH,
        paths::TRUSTED_LIST_PATH,
    ] {
        let host = rootfs.join(&p[1..]);
        let mut bytes = Vec::new();
        fs::File::open(&host)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::io("read", &host, e))?;
        arca_files.push((
            p.to_string(),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        ));
    }
    let gdir = dir.join("gramine");
    fs::create_dir_all(&gdir).map_err(|e| Error::io("create", &gdir, e))?;
    let text = gramine_manifest(&manifest, &trusted, &arca_files)?;
    let manifest_path = gdir.join("arca.manifest.template");
    fs::write(&manifest_path, &text).map_err(|e| Error::io("write", &manifest_path, e))?;
    let argv_path = gdir.join("argv");
    fs::write(&argv_path, format!("{}\0", paths::LAUNCHER_PATH))
        .map_err(|e| Error::io("write", &argv_path, e))?;
    let dockerfile_path = dir.join("Dockerfile");
    fs::write(&dockerfile_path, dockerfile()).map_err(|e| Error::io("write", &dockerfile_path, e))?;
    let readme = dir.join("README.md");
    fs::write(
        &readme,
        format!(
            "# Gramine build context (generated by arca convert --engine gramine)\n\n{GRAMINE_WARNING}\n\n\
             Build and sign on an SGX host:\n\n    docker build --secret id=sgx_signing_key,src=signing.pem -t app-sgx .\n\n\
             Run with the SGX devices and the coordinator address:\n\n    \
             docker run --device /dev/sgx_enclave --device /dev/sgx_provision -e ARCA_COORDINATOR_ADDR=coordinator:2001 app-sgx\n"
        ),
    )
    .map_err(|e| Error::io("write", &readme, e))?;
    Ok((
        report,
        GramineContext {
            dir: dir.display().to_string(),
            manifest: manifest_path.display().to_string(),
            dockerfile: dockerfile_path.display().to_string(),
            trusted_files: trusted.len() + arca_files.len() + 1,
            warning: GRAMINE_WARNING,
        },
    ))
}
