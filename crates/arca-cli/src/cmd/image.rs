//! `arca convert`, `arca inspect`, `arca diff`: confidential images.

use std::fs::{self, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arca_enclave::{CoordinatorPolicy, Engine};
use arca_image::{
    Compression, ConvertReport, Credentials, ImageRef, Platform, ReadOptions, SourceImage, WriteOptions,
};
use clap::Args;
use serde::Serialize;

use crate::output::{exit, Ctx};

/// Convert a container image into a signed confidential (SGX) image.
///
/// Reads SRC, applies its layers safely, hashes every file into the trusted-file list, encrypts the paths
/// named with --encrypt (rewriting every layer that held them, so no plaintext survives), writes the enclave
/// manifest, computes MRENCLAVE with Arca's enclave layout, signs a SIGSTRUCT with --sign-key, adds the
/// launcher layer and writes DST. Nothing is written to DST unless the whole conversion succeeds.
///
/// Transports: docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG], oci-archive:PATH[:TAG],
/// docker://HOST/REPO[:TAG|@DIGEST]. Loopback registries are used over plain HTTP.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca keygen -o signing.pem
  arca convert docker-archive:app.tar oci:out:app --launcher ./arca-launcher --sign-key signing.pem
  arca convert docker://127.0.0.1:5000/app:1 docker://127.0.0.1:5000/app:1-sgx \\
      --launcher ./arca-launcher --sign-key signing.pem \\
      --encrypt /data --pf-key-out pf.key --allow-env LOG_LEVEL
  arca convert oci:app oci:out:app --launcher ./arca-launcher --sign-key signing.pem --output json
  arca convert docker://127.0.0.1:5000/multi:1 oci:out:arm --platform linux/arm64 \\
      --launcher ./arca-launcher --sign-key signing.pem --compression zstd -j 2

Without --coordinator-policy the image pins the DEVELOPMENT coordinator (public key in the repository):
such images work only in simulation. The output prints a ready `Packages` entry for the coordinator
manifest (SignerID-based, which survives launcher rebuilds, and a UniqueID variant).

--engine gramine writes a Gramine build context (rootfs, Gramine manifest, Dockerfile) into the directory
DST instead of an image. It is UNVERIFIED on SGX hardware, and its MRENCLAVE is the one gramine-sgx-sign
computes, not Arca's.")]
pub(crate) struct ConvertArgs {
    /// The image to convert (with its transport prefix).
    src: String,
    /// Where to write the confidential image (or, with --engine gramine, the build context directory).
    dst: String,
    /// The launcher executable (statically linked ELF). Required until the launcher is built into `arca`.
    #[arg(long, value_name = "PATH")]
    launcher: Option<PathBuf>,
    /// Enclave signing key: RSA-3072, public exponent 3, PEM (`arca keygen`).
    #[arg(long, value_name = "PEM")]
    sign_key: PathBuf,
    /// Encrypt this file or directory as protected files (key NAME, default `default`). Repeatable.
    #[arg(long, value_name = "PATH[:KEYNAME]")]
    encrypt: Vec<String>,
    /// The protected-files key: a file of exactly 16 raw bytes.
    #[arg(long, value_name = "FILE", conflicts_with = "pf_key_out")]
    pf_key: Option<PathBuf>,
    /// Generate the protected-files key and write it to FILE (mode 0600, never into the image), for
    /// `arca secret set`.
    #[arg(long, value_name = "FILE")]
    pf_key_out: Option<PathBuf>,
    /// Leave this path (and everything below) out of the trusted-file list. Repeatable.
    #[arg(long, value_name = "PATH")]
    exclude: Vec<String>,
    /// Let the host set this environment variable at run time. Repeatable.
    #[arg(long, value_name = "NAME")]
    allow_env: Vec<String>,
    /// Let the app use this path although it is not in the trusted-file list. Repeatable.
    #[arg(long, value_name = "PATH")]
    allow_path: Vec<String>,
    /// The coordinator identity to pin (TOML, from `arca coordinator identity`). Default: the development
    /// coordinator (simulation only).
    #[arg(long, value_name = "FILE")]
    coordinator_policy: Option<PathBuf>,
    /// ISVPRODID of the enclave.
    #[arg(long, default_value_t = 1)]
    isvprodid: u16,
    /// ISVSVN of the enclave.
    #[arg(long, default_value_t = 1)]
    isvsvn: u16,
    /// Build a DEBUG enclave (its memory is readable by the host: never for production).
    #[arg(long)]
    debug: bool,
    /// Enclave size (power of two): e.g. 256M, 1G, 4G.
    #[arg(long, default_value = "1G", value_name = "SIZE")]
    enclave_size: String,
    /// Enclave threads.
    #[arg(long, default_value_t = 8)]
    threads: u32,
    /// SIGSTRUCT date (YYYY-MM-DD). Default: none (0), so conversions are reproducible.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<String>,
    /// Layer compression: gzip (default; docker-archive outputs default to none), zstd, none.
    #[arg(long, value_name = "CODEC")]
    compression: Option<String>,
    /// Compression level (default: gzip 6, zstd 3).
    #[arg(long)]
    compression_level: Option<i32>,
    /// Compression threads (default: the number of CPUs). Output bytes do not depend on it. gzip: 1 compresses
    /// on the main thread; zstd: N workers beside the main thread (which reads and hashes), as `zstd -TN`.
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Engine: sim (a confidential OCI image) or gramine (a Gramine build context; unverified on SGX).
    #[arg(long, default_value = "sim")]
    engine: String,
    /// Platform to pick from a multi-platform image.
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH[/VARIANT]")]
    platform: String,
    /// Name of the package in the printed `Packages` entry (default: from DST).
    #[arg(long, value_name = "NAME")]
    package: Option<String>,
    /// Credentials for a SRC registry (USER:PASSWORD); default: auth files, then anonymous.
    #[arg(long, value_name = "USER:PASSWORD")]
    src_creds: Option<String>,
    /// Credentials for a DST registry.
    #[arg(long, value_name = "USER:PASSWORD")]
    dest_creds: Option<String>,
    /// Allow plain HTTP to non-loopback registries.
    #[arg(long)]
    insecure_registry: bool,
}

/// `arca convert --output json` (schema in docs/cli-json.md).
#[derive(Serialize)]
struct ConvertJson<'a> {
    source: String,
    destination: String,
    engine: &'static str,
    image_digest: Option<String>,
    #[serde(flatten)]
    report: &'a ConvertReport,
    layers: usize,
    compression: String,
    packages: serde_json::Value,
    packages_unique_id: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pf_key_out: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gramine: Option<arca_image::GramineContext>,
}

struct Bar(indicatif::ProgressBar);

impl arca_image::Progress for Bar {
    fn step(&self, name: &str, total: Option<u64>) {
        self.0.reset();
        self.0.set_message(name.to_string());
        match total {
            Some(t) => self.0.set_length(t),
            None => self.0.unset_length(),
        }
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
}

fn progress_bar() -> Bar {
    // Hidden unless stderr is a terminal (scripts, CI and pipes get no escape codes).
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(None, target);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:24} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {wide_bar}",
    ) {
        bar.set_style(style);
    }
    Bar(bar)
}

/// Parses `256M`, `1G`, `512MiB`, `1073741824`.
pub(crate) fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
    let (num, mul) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("invalid size `{s}` (e.g. 256M, 1G)"))?;
    n.checked_mul(mul)
        .with_context(|| format!("size `{s}` is too large"))
}

fn parse_date(s: &str) -> anyhow::Result<u32> {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        bail!("--date `{s}`: expected YYYY-MM-DD")
    };
    Ok(arca_sgx::SigstructFields::bcd_date(
        y.parse()?,
        m.parse()?,
        d.parse()?,
    )?)
}

fn package_name(dst: &ImageRef, explicit: Option<&str>) -> String {
    if let Some(n) = explicit {
        return n.to_string();
    }
    let raw = match dst {
        ImageRef::Registry(r) => r.repository.rsplit('/').next().unwrap_or("app").to_string(),
        ImageRef::Oci { dir, tag } | ImageRef::OciArchive { path: dir, tag } => {
            tag.clone().unwrap_or_else(|| {
                dir.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
        }
        ImageRef::DockerArchive { path, name } => name
            .as_ref()
            .map(|n| {
                n.split(':')
                    .next()
                    .unwrap_or(n)
                    .rsplit('/')
                    .next()
                    .unwrap_or(n)
                    .to_string()
            })
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
        _ => String::new(),
    };
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "app".into()
    } else {
        cleaned
    }
}

/// Writes a fresh random 16-byte key to `path` with mode 0600; refuses to overwrite an existing file.
fn write_new_key(path: &Path) -> anyhow::Result<arca_pfs::Key> {
    let mut key = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("reading 16 random bytes from /dev/urandom")?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "--pf-key-out {}: creating the key file (it must not exist yet)",
                path.display()
            )
        })?;
    f.write_all(&key)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(arca_pfs::Key::from_bytes(key))
}

pub(crate) fn convert(ctx: Ctx, a: ConvertArgs) -> anyhow::Result<i32> {
    // Check every input before any side effect.
    let src: ImageRef = a.src.parse()?;
    let engine: Engine = a.engine.parse()?;
    let Some(launcher_path) = &a.launcher else {
        bail!(
            "--launcher PATH is required: the Arca launcher is not built into this `arca` yet. Build or give a \
             statically linked launcher executable (check with `file`: \"statically linked\" or \"static-pie linked\")"
        );
    };
    let launcher =
        fs::read(launcher_path).with_context(|| format!("reading --launcher {}", launcher_path.display()))?;
    arca_enclave::inspect_launcher(&launcher)
        .with_context(|| format!("--launcher {}", launcher_path.display()))?;
    let key_pem = fs::read_to_string(&a.sign_key)
        .with_context(|| format!("reading --sign-key {}", a.sign_key.display()))?;
    let signer = arca_sgx::SigningKey::from_pem(&key_pem)
        .with_context(|| format!("--sign-key {}", a.sign_key.display()))?;
    let encrypt: Vec<arca_image::EncryptPath> =
        a.encrypt.iter().map(|e| e.parse()).collect::<Result<_, _>>()?;
    if !encrypt.is_empty() && a.pf_key.is_none() && a.pf_key_out.is_none() {
        bail!("--encrypt needs the protected-files key: --pf-key FILE (16 raw bytes) or --pf-key-out FILE (generated)");
    }
    let coordinator = match &a.coordinator_policy {
        Some(p) => CoordinatorPolicy::from_toml(
            &fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("--coordinator-policy {}", p.display()))?,
        None => CoordinatorPolicy::development(),
    };
    let platform: Platform = a.platform.parse()?;
    let enclave_size = parse_size(&a.enclave_size)?;
    let date = a.date.as_deref().map(parse_date).transpose()?.unwrap_or(0);
    let dst_ref: Option<ImageRef> = match engine {
        Engine::Sim => Some(a.dst.parse()?),
        Engine::Gramine => None,
    };
    let compression = match a.compression.as_deref() {
        Some("gzip") => Compression::Gzip,
        Some("zstd") => Compression::Zstd,
        Some("none") => Compression::None,
        Some(other) => bail!("--compression `{other}`: expected gzip, zstd or none"),
        None if matches!(dst_ref, Some(ImageRef::DockerArchive { .. })) => Compression::None,
        None => Compression::Gzip,
    };
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let src_creds: Option<Credentials> = a.src_creds.as_deref().map(str::parse).transpose()?;
    let dest_creds: Option<Credentials> = a.dest_creds.as_deref().map(str::parse).transpose()?;
    let pf_key = match &a.pf_key {
        Some(p) => Some(arca_pfs::Key::from_file(p).with_context(|| format!("--pf-key {}", p.display()))?),
        None => None,
    };

    let read = ReadOptions {
        platform,
        credentials: src_creds,
        insecure: a.insecure_registry,
    };
    let image = SourceImage::open(&src, &read).with_context(|| format!("reading {src}"))?;
    let (pf_key, key_written) = match (&pf_key, &a.pf_key_out) {
        (Some(_), _) => (pf_key, None),
        (None, Some(out)) if !encrypt.is_empty() => (Some(write_new_key(out)?), Some(out.clone())),
        _ => (None, None),
    };
    let bar = progress_bar();
    let opts = arca_image::ConvertOptions {
        launcher: &launcher,
        signer: &signer,
        encrypt,
        pf_key: pf_key.as_ref(),
        exclude: a.exclude.clone(),
        allow_env: a.allow_env.clone(),
        allow_path: a.allow_path.clone(),
        coordinator,
        isvprodid: a.isvprodid,
        isvsvn: a.isvsvn,
        debug: a.debug,
        enclave_size,
        threads: a.threads,
        date,
        compression,
        level: a.compression_level,
        jobs,
        progress: &bar,
    };
    let result = run_conversion(
        &image,
        &opts,
        engine,
        &a.dst,
        dst_ref.as_ref(),
        dest_creds,
        a.insecure_registry,
    );
    bar.0.finish_and_clear();
    let (report, digest, layers, gramine) = match result {
        Ok(r) => r,
        Err(e) => {
            if let Some(k) = &key_written {
                // The key protects nothing: no image was written.
                let _ = fs::remove_file(k);
            }
            return Err(e);
        }
    };
    let name = match &dst_ref {
        Some(d) => package_name(d, a.package.as_deref()),
        None => a.package.clone().unwrap_or_else(|| "app".into()),
    };
    let packages = serde_json::json!({ name.clone(): {
        "SignerID": report.mrsigner.to_string(),
        "ProductID": report.isvprodid,
        "SecurityVersion": report.isvsvn,
        "Debug": report.debug,
    }});
    let packages_unique = serde_json::json!({ name: {
        "UniqueID": report.mrenclave.to_string(),
        "Debug": report.debug,
    }});
    let json = ConvertJson {
        source: src.to_string(),
        destination: a.dst.clone(),
        engine: engine.as_str(),
        image_digest: digest.map(|d| d.to_string()),
        report: &report,
        layers,
        compression: compression.to_string(),
        packages: packages.clone(),
        packages_unique_id: packages_unique.clone(),
        pf_key_out: key_written.as_ref().map(|p| p.display().to_string()),
        gramine: gramine.clone(),
    };
    if report.development_coordinator {
        eprintln!("{}", CoordinatorPolicy::DEVELOPMENT_WARNING);
    }
    if let Some(g) = &gramine {
        eprintln!("{}", g.warning);
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    ctx.emit(&json, |out| {
        match &json.image_digest {
            Some(d) => writeln!(out, "Converted {} -> {} ({d})", json.source, json.destination)?,
            None => writeln!(
                out,
                "Converted {} -> Gramine build context {}",
                json.source, json.destination
            )?,
        }
        let label = if gramine.is_some() {
            "MRENCLAVE (sim layout; Gramine's comes from gramine-sgx-sign)"
        } else {
            "MRENCLAVE"
        };
        writeln!(out, "  {label:<10} {}", report.mrenclave)?;
        writeln!(out, "  MRSIGNER   {}", report.mrsigner)?;
        writeln!(
            out,
            "  ISVPRODID  {}   ISVSVN {}   DEBUG {}",
            report.isvprodid,
            report.isvsvn,
            if report.debug { "yes" } else { "no" }
        )?;
        writeln!(out, "  exec       {}", report.exec)?;
        writeln!(
            out,
            "  trusted    {} files (list sha256 {})",
            report.trusted_files, report.trusted_list_sha256
        )?;
        for m in &report.protected {
            writeln!(out, "  encrypted  {} (key `{}`)", m.path, m.key)?;
        }
        if !report.protected.is_empty() {
            writeln!(
                out,
                "  {} files encrypted; layers rewritten: {:?}",
                report.encrypted_files, report.rewritten_layers
            )?;
        }
        if let Some(k) = &json.pf_key_out {
            writeln!(
                out,
                "  protected-files key written to {k} (mode 0600; keep it out of the image)"
            )?;
        }
        writeln!(out, "  layers     {} ({} compression)", layers, json.compression)?;
        writeln!(
            out,
            "\nPackages entry for the coordinator manifest (survives launcher rebuilds):"
        )?;
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&packages).unwrap_or_default()
        )?;
        writeln!(out, "Pinned to this exact build instead:")?;
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&packages_unique).unwrap_or_default()
        )?;
        Ok(())
    })?;
    Ok(exit::OK)
}

type Converted = (
    ConvertReport,
    Option<arca_image::Digest>,
    usize,
    Option<arca_image::GramineContext>,
);

fn run_conversion(
    image: &SourceImage,
    opts: &arca_image::ConvertOptions<'_>,
    engine: Engine,
    dst: &str,
    dst_ref: Option<&ImageRef>,
    dest_creds: Option<Credentials>,
    insecure: bool,
) -> anyhow::Result<Converted> {
    match (engine, dst_ref) {
        (Engine::Sim, Some(dst_ref)) => {
            let near = match dst_ref {
                ImageRef::Oci { dir, .. } => Some(dir.join("x")),
                ImageRef::OciArchive { path, .. } | ImageRef::DockerArchive { path, .. } => {
                    Some(path.clone())
                }
                _ => None,
            };
            let staging =
                arca_image::Staging::new(near.as_deref()).context("creating the staging directory")?;
            let (staged, report) = arca_image::convert(image, opts, &staging)
                .with_context(|| format!("converting {}", image.reference))?;
            let written = arca_image::write_image(
                &staging,
                &staged,
                dst_ref,
                &WriteOptions {
                    credentials: dest_creds,
                    insecure,
                },
            )
            .with_context(|| format!("writing {dst_ref}"))?;
            Ok((report, Some(written.manifest_digest), staged.layers.len(), None))
        }
        _ => {
            let ctx = arca_image::gramine_context(image, opts, Path::new(dst))
                .with_context(|| format!("writing the Gramine build context {dst}"))?;
            let report = ctx.0;
            Ok((report, None, image.layers.len() + 1, Some(ctx.1)))
        }
    }
}

/// Show a converted image's enclave identity, manifest and files, and check that they are consistent.
///
/// Recomputes MRENCLAVE from /arca/launcher and /arca/enclave.toml with Arca's enclave layout, checks that
/// /arca/enclave.sig is a valid signature over it, that /arca/trusted.list matches the manifest, and that the
/// image labels agree. Exit code 3 when a check fails.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca inspect oci:out:app
  arca inspect docker://127.0.0.1:5000/app:1-sgx --output json | jq .mrenclave")]
pub(crate) struct InspectArgs {
    /// The converted image.
    image: String,
    /// Registry credentials (USER:PASSWORD).
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    /// Platform to pick from a multi-platform image.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
}

fn open(image: &str, creds: Option<&str>, platform: &str) -> anyhow::Result<SourceImage> {
    let r: ImageRef = image.parse()?;
    let read = ReadOptions {
        platform: platform.parse()?,
        credentials: creds.map(str::parse).transpose()?,
        insecure: false,
    };
    SourceImage::open(&r, &read).with_context(|| format!("reading {r}"))
}

pub(crate) fn inspect(ctx: Ctx, a: InspectArgs) -> anyhow::Result<i32> {
    let image = open(&a.image, a.creds.as_deref(), &a.platform)?;
    let i = arca_image::inspect(&image).with_context(|| format!("inspecting {}", a.image))?;
    if i.development_coordinator {
        eprintln!("{}", CoordinatorPolicy::DEVELOPMENT_WARNING);
    }
    ctx.emit(&i, |out| {
        writeln!(
            out,
            "Image      {}{}",
            i.reference,
            i.image_digest.map(|d| format!(" ({d})")).unwrap_or_default()
        )?;
        match &i.mrenclave {
            Some(m) => writeln!(out, "MRENCLAVE  {m}")?,
            None => writeln!(out, "MRENCLAVE  (cannot be recomputed)")?,
        }
        writeln!(out, "MRSIGNER   {}", i.mrsigner)?;
        writeln!(
            out,
            "ISVPRODID  {}   ISVSVN {}   DEBUG {}",
            i.isvprodid,
            i.isvsvn,
            if i.debug { "yes" } else { "no" }
        )?;
        let m = &i.manifest;
        writeln!(out, "exec       {}", m.process.exec)?;
        writeln!(out, "argv       {:?}", m.process.argv)?;
        writeln!(
            out,
            "workdir    {}   user {}",
            m.process.workdir,
            if m.process.user.is_empty() {
                "root"
            } else {
                &m.process.user
            }
        )?;
        writeln!(
            out,
            "enclave    size {} MiB, {} threads",
            m.enclave.size >> 20,
            m.enclave.threads
        )?;
        writeln!(
            out,
            "launcher   {} bytes, sha256 {}",
            i.launcher_size, i.launcher_sha256
        )?;
        writeln!(out, "trusted    {} files", i.trusted_files)?;
        for p in &m.files.protected {
            writeln!(out, "encrypted  {} (key `{}`)", p.path, p.key)?;
        }
        if !m.host.allow_env.is_empty() {
            writeln!(out, "host env   {}", m.host.allow_env.join(", "))?;
        }
        writeln!(
            out,
            "coordinator {}",
            m.coordinator.to_toml().unwrap_or_default().replace('\n', " ")
        )?;
        writeln!(out, "Checks:")?;
        for c in &i.checks {
            writeln!(
                out,
                "  [{}] {}: {}",
                if c.ok { "ok" } else { "FAILED" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    })?;
    Ok(if i.ok() { exit::OK } else { exit::REFUSED })
}

/// Explain why two converted images have different enclave identities.
///
/// Compares the launchers, every enclave manifest field (argv, env, user, enclave settings, protected
/// mounts, allowed host settings, coordinator policy) and the trusted-file lists file by file, and says
/// which identity (MRENCLAVE or MRSIGNER) each difference changes. Exit code 0 whether or not they differ
/// (`same_identity` in the JSON output says which).
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca diff oci:out:app-v1 oci:out:app-v2
  arca diff docker://127.0.0.1:5000/app:a docker://127.0.0.1:5000/app:b --output json")]
pub(crate) struct DiffArgs {
    /// The first converted image.
    left: String,
    /// The second converted image.
    right: String,
    /// Registry credentials (USER:PASSWORD), used for both.
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    /// Platform to pick from multi-platform images.
    #[arg(long, default_value = "linux/amd64")]
    platform: String,
}

pub(crate) fn diff(ctx: Ctx, a: DiffArgs) -> anyhow::Result<i32> {
    let left = arca_image::inspect(&open(&a.left, a.creds.as_deref(), &a.platform)?)
        .with_context(|| format!("inspecting {}", a.left))?;
    let right = arca_image::inspect(&open(&a.right, a.creds.as_deref(), &a.platform)?)
        .with_context(|| format!("inspecting {}", a.right))?;
    let d = arca_image::diff(&left, &right);
    ctx.emit(&d, |out| {
        let show = |m: &Option<arca_enclave::Mrenclave>| m.map_or("?".to_string(), |m| m.to_string());
        writeln!(
            out,
            "MRENCLAVE  {}  {}",
            show(&d.left_mrenclave),
            show(&d.right_mrenclave)
        )?;
        writeln!(out, "MRSIGNER   {}  {}", d.left_mrsigner, d.right_mrsigner)?;
        if d.same_identity {
            writeln!(out, "Same identity.")?;
        } else {
            writeln!(out, "The identities differ because of:")?;
        }
        for x in &d.differences {
            writeln!(out, "  {} (changes {})", x.what, x.affects)?;
            if !x.left.is_empty() || !x.right.is_empty() {
                writeln!(out, "    - {}", x.left)?;
                writeln!(out, "    + {}", x.right)?;
            }
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_with_units() {
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn package_names_come_from_the_destination() {
        let r: ImageRef = "docker://127.0.0.1:5000/team/web-app:1".parse().unwrap();
        assert_eq!(package_name(&r, None), "web-app");
        let r: ImageRef = "oci:/tmp/out:api".parse().unwrap();
        assert_eq!(package_name(&r, None), "api");
        assert_eq!(package_name(&r, Some("x")), "x");
    }
}
