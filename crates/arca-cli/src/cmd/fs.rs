//! `arca fs`: protected files (Gramine-compatible encrypted files) from the command line.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::Context;
use arca_pfs::{BoundPath, HostFile, Key, NodeKeys, StreamStorage};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::{exit, Ctx};

/// Encrypt, decrypt, check and mount protected files (Gramine's format v2; v1 is read too).
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  head -c 16 /dev/urandom > pf.key
  arca fs encrypt --key pf.key notes.txt /srv/enc/notes.txt
  arca fs decrypt --key pf.key /srv/enc/notes.txt notes.out
  arca fs check --key pf.key /srv/enc/notes.txt

The key file holds the 16 raw key bytes, as Gramine's gramine-sgx-pf-crypt expects. Each file is bound to
a path (authenticated inside it): by default the output path for `encrypt` and the input path for
`decrypt`/`check`, normalised. To make files that a Gramine `encrypted` mount opens, bind the path Gramine
will see on the host: the mount's uri without `file:`, `/`, then the path below the mount
(see docs/protected-files.md).")]
pub(crate) struct FsArgs {
    #[command(subcommand)]
    command: FsCommand,
}

#[derive(Subcommand, Debug)]
enum FsCommand {
    /// Encrypt a plaintext file into a protected file.
    #[command(
        after_help = "Example:\n  arca fs encrypt --key pf.key --path /app/data/db.bin db.bin out/db.bin"
    )]
    Encrypt(EncryptArgs),
    /// Decrypt a protected file, verifying every node.
    #[command(
        after_help = "Example:\n  arca fs decrypt --key pf.key --path /app/data/db.bin out/db.bin db.bin"
    )]
    Decrypt(DecryptArgs),
    /// Verify protected files (every node) without writing the plaintext; exit code 3 if one is refused.
    #[command(after_help = "Example:\n  arca fs check --key pf.key --any-path enc/*.bin")]
    Check(CheckArgs),
    /// Mount the FUSE shield: a plaintext read-write view of a protected directory (with rollback
    /// protection), or with --trusted-list a read-only view that refuses files whose hash does not match.
    /// Runs in the foreground until unmounted.
    #[command(after_help = "\
Examples:
  arca fs mount --key pf.key /srv/enc /mnt/plain &
  sqlite3 /mnt/plain/app.db 'create table t(x)'
  arca fs umount /mnt/plain

  arca fs mount --trusted-list rootfs/arca/trusted.list rootfs/app /mnt/app --image-prefix /app

The volume's rollback state is bound to a counter file (default: DIR.arca-counter beside the directory; keep
it outside the volume). Needs /dev/fuse and CAP_SYS_ADMIN (or fusermount3).")]
    Mount(MountArgs),
    /// Unmount a shield mounted with `arca fs mount` (fusermount3 -u).
    #[command(after_help = "Example:\n  arca fs umount /mnt/plain")]
    Umount(UmountArgs),
}

#[derive(Args, Debug)]
struct MountArgs {
    /// File holding the 16 raw key bytes (encrypted view).
    #[arg(long, value_name = "KEYFILE", required_unless_present = "trusted_list")]
    key: Option<PathBuf>,
    /// Prefix of the bound paths (default: DIR's absolute path, which is what a Gramine `encrypted` mount
    /// with uri \"file:DIR\" binds).
    #[arg(long, value_name = "PATH", conflicts_with = "trusted_list")]
    bound_prefix: Option<String>,
    /// Rollback counter file (default: DIR.arca-counter).
    #[arg(long, value_name = "FILE", conflicts_with = "trusted_list")]
    counter: Option<PathBuf>,
    /// Serve a read-only trusted view checked against this list instead of an encrypted view.
    #[arg(long, value_name = "LIST", conflicts_with = "key")]
    trusted_list: Option<PathBuf>,
    /// Image path of DIR in the trusted list (default: DIR is the image root).
    #[arg(long, value_name = "PATH", default_value = "", requires = "trusted_list")]
    image_prefix: String,
    /// Also allow (serve unverified) files below this image path; repeatable.
    #[arg(long, value_name = "PATH", requires = "trusted_list")]
    allow: Vec<String>,
    /// Host directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Where to mount the view.
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
}

#[derive(Args, Debug)]
struct UmountArgs {
    /// Detach even if busy (fusermount3 -uz).
    #[arg(long)]
    lazy: bool,
    /// The mount point.
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
}

#[derive(Args, Debug)]
struct KeyArgs {
    /// File holding the 16 raw key bytes.
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,
}

#[derive(Args, Debug)]
struct EncryptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Path to bind into the file (default: OUT as given, normalised).
    #[arg(long, value_name = "BOUND_PATH")]
    path: Option<String>,
    /// Derive node keys from (key, path, node, plaintext): equal inputs give equal bytes (for reproducible
    /// builds). Default: fresh random keys, as Gramine.
    #[arg(long)]
    deterministic: bool,
    /// Plaintext input file.
    #[arg(value_name = "IN")]
    src: PathBuf,
    /// Protected output file (overwritten).
    #[arg(value_name = "OUT")]
    dst: PathBuf,
}

#[derive(Args, Debug)]
struct DecryptArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Path the file must be bound to (default: IN as given, normalised).
    #[arg(long, value_name = "BOUND_PATH", conflicts_with = "any_path")]
    path: Option<String>,
    /// Accept whatever path the file is bound to (and print it).
    #[arg(long)]
    any_path: bool,
    /// Protected input file.
    #[arg(value_name = "IN")]
    src: PathBuf,
    /// Plaintext output file (overwritten).
    #[arg(value_name = "OUT")]
    dst: PathBuf,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Path the file must be bound to (only with one FILE; default: each FILE as given, normalised).
    #[arg(long, value_name = "BOUND_PATH", conflicts_with = "any_path")]
    path: Option<String>,
    /// Accept whatever path each file is bound to.
    #[arg(long)]
    any_path: bool,
    /// Protected files to verify.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `--output json` of `arca fs encrypt` and `arca fs decrypt` (docs/cli-json.md).
#[derive(Serialize)]
struct CryptReport {
    input: PathBuf,
    output: PathBuf,
    bound_path: String,
    plaintext_bytes: u64,
    format_version: u8,
    node_keys: &'static str,
}

/// `--output json` of `arca fs check`: one entry per file.
#[derive(Serialize)]
struct CheckEntry {
    file: PathBuf,
    ok: bool,
    bound_path: Option<String>,
    plaintext_bytes: Option<u64>,
    format_version: Option<u8>,
    pending_write: Option<bool>,
    error: Option<String>,
}

pub(crate) fn run(ctx: Ctx, args: FsArgs) -> anyhow::Result<i32> {
    match args.command {
        FsCommand::Encrypt(a) => encrypt(ctx, a),
        FsCommand::Decrypt(a) => decrypt(ctx, a),
        FsCommand::Check(a) => check(ctx, a),
        FsCommand::Mount(a) => mount(a),
        FsCommand::Umount(a) => umount(a),
    }
}

fn load_key(args: &KeyArgs) -> anyhow::Result<Key> {
    Ok(Key::from_file(&args.key)?)
}

fn bound(explicit: Option<&str>, file: &Path) -> anyhow::Result<BoundPath> {
    let text = match explicit {
        Some(p) => p.to_string(),
        None => file
            .to_str()
            .with_context(|| format!("{} is not UTF-8; pass --path", file.display()))?
            .to_string(),
    };
    Ok(BoundPath::new(&text)?)
}

/// Maps a library refusal to exit code 3 after printing it; other errors propagate (exit 1).
fn refused_or(err: arca_pfs::Error) -> anyhow::Result<i32> {
    if err.is_refusal() {
        eprintln!("refused: {err}");
        Ok(exit::REFUSED)
    } else {
        Err(err.into())
    }
}

fn encrypt(ctx: Ctx, a: EncryptArgs) -> anyhow::Result<i32> {
    let key = load_key(&a.key)?;
    let path = bound(a.path.as_deref(), &a.dst)?;
    let input = File::open(&a.src).with_context(|| format!("opening {}", a.src.display()))?;
    let out = File::create(&a.dst).with_context(|| format!("creating {}", a.dst.display()))?;
    let node_keys = if a.deterministic {
        NodeKeys::Deterministic
    } else {
        NodeKeys::Random
    };
    let n = arca_pfs::encrypt_stream(BufReader::new(input), StreamStorage(out), &key, &path, node_keys)
        .with_context(|| format!("encrypting {} into {}", a.src.display(), a.dst.display()))?;
    let report = CryptReport {
        input: a.src,
        output: a.dst,
        bound_path: path.to_string(),
        plaintext_bytes: n,
        format_version: 2,
        node_keys: if a.deterministic {
            "deterministic"
        } else {
            "random"
        },
    };
    ctx.emit(&report, |w| {
        writeln!(
            w,
            "encrypted {} bytes: {} -> {} (bound to {})",
            report.plaintext_bytes,
            report.input.display(),
            report.output.display(),
            report.bound_path
        )
    })?;
    Ok(exit::OK)
}

fn decrypt(ctx: Ctx, a: DecryptArgs) -> anyhow::Result<i32> {
    let key = load_key(&a.key)?;
    let path = if a.any_path {
        None
    } else {
        Some(bound(a.path.as_deref(), &a.src)?)
    };
    let storage = HostFile::open_read_only(&a.src).with_context(|| format!("opening {}", a.src.display()))?;
    let tmp = a.dst.with_extension("arca-partial");
    let out = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let info = match arca_pfs::decrypt_stream(storage, &key, path.as_ref(), BufWriter::new(out)) {
        Ok(info) => info,
        Err(e) => {
            // Never leave partial plaintext of a refused file behind.
            let _ = std::fs::remove_file(&tmp);
            return refused_or(e);
        }
    };
    std::fs::rename(&tmp, &a.dst).with_context(|| format!("moving the plaintext to {}", a.dst.display()))?;
    let report = CryptReport {
        input: a.src,
        output: a.dst,
        bound_path: info.bound_path.to_string(),
        plaintext_bytes: info.size,
        format_version: info.version.major(),
        node_keys: "n/a",
    };
    ctx.emit(&report, |w| {
        writeln!(
            w,
            "decrypted {} bytes: {} -> {} (bound to {}, format v{})",
            report.plaintext_bytes,
            report.input.display(),
            report.output.display(),
            report.bound_path,
            report.format_version
        )
    })?;
    Ok(exit::OK)
}

fn check(ctx: Ctx, a: CheckArgs) -> anyhow::Result<i32> {
    if a.path.is_some() && a.files.len() != 1 {
        anyhow::bail!("--path names the bound path of one file; with several files use --any-path or none");
    }
    let key = load_key(&a.key)?;
    let mut entries = Vec::new();
    let mut refused = false;
    for file in &a.files {
        let path = if a.any_path {
            None
        } else {
            Some(bound(a.path.as_deref(), file)?)
        };
        let storage =
            HostFile::open_read_only(file).with_context(|| format!("opening {}", file.display()))?;
        match arca_pfs::decrypt_stream(storage, &key, path.as_ref(), std::io::sink()) {
            Ok(info) => entries.push(CheckEntry {
                file: file.clone(),
                ok: true,
                bound_path: Some(info.bound_path.to_string()),
                plaintext_bytes: Some(info.size),
                format_version: Some(info.version.major()),
                pending_write: Some(info.pending_write),
                error: None,
            }),
            Err(e) if e.is_refusal() => {
                refused = true;
                entries.push(CheckEntry {
                    file: file.clone(),
                    ok: false,
                    bound_path: None,
                    plaintext_bytes: None,
                    format_version: None,
                    pending_write: None,
                    error: Some(e.to_string()),
                });
            }
            Err(e) => return Err(e).with_context(|| format!("checking {}", file.display())),
        }
    }
    ctx.emit(&entries, |w| {
        for e in &entries {
            match (&e.error, &e.bound_path) {
                (Some(err), _) => writeln!(w, "REFUSED {}: {err}", e.file.display())?,
                (None, Some(bp)) => writeln!(
                    w,
                    "ok      {}: {} bytes, format v{}, bound to {}{}",
                    e.file.display(),
                    e.plaintext_bytes.unwrap_or(0),
                    e.format_version.unwrap_or(0),
                    bp,
                    if e.pending_write == Some(true) {
                        " (pending-write flag set)"
                    } else {
                        ""
                    }
                )?,
                (None, None) => {}
            }
        }
        Ok(())
    })?;
    Ok(if refused { exit::REFUSED } else { exit::OK })
}

fn mount(a: MountArgs) -> anyhow::Result<i32> {
    use arca_pfs::shield;
    let dir = std::fs::canonicalize(&a.dir).with_context(|| format!("opening {}", a.dir.display()))?;
    let name = format!("arca-pfs:{}", dir.display());
    let ready = || {
        eprintln!(
            "mounted {} on {} (stop with: arca fs umount {})",
            dir.display(),
            a.mountpoint.display(),
            a.mountpoint.display()
        )
    };
    if let Some(list_path) = &a.trusted_list {
        let bytes = std::fs::read(list_path).with_context(|| format!("reading {}", list_path.display()))?;
        let list = arca_pfs::TrustedList::parse(&bytes)?;
        let allow = a.allow.iter().fold(arca_pfs::AllowList::none(), |l, p| l.with(p));
        let fs = shield::TrustedFs::new(&dir, list, allow, &a.image_prefix);
        shield::mount(fs, &a.mountpoint, &name, true, ready)?;
    } else {
        let key = Key::from_file(a.key.as_deref().context("--key is required")?)?;
        let prefix = match &a.bound_prefix {
            Some(p) => p.clone(),
            None => dir
                .to_str()
                .context("the directory path is not UTF-8; pass --bound-prefix")?
                .to_string(),
        };
        let counter_path = a.counter.clone().unwrap_or_else(|| {
            let mut p = dir.as_os_str().to_owned();
            p.push(".arca-counter");
            PathBuf::from(p)
        });
        let volume = match arca_pfs::Volume::open(
            &dir,
            &key,
            &prefix,
            Box::new(arca_pfs::FileCounter::new(counter_path)),
        ) {
            Ok(v) => v,
            Err(e) => return refused_or(e),
        };
        let fs = shield::EncryptedFs::new(&dir, volume, arca_pfs::Options::default());
        shield::mount(fs, &a.mountpoint, &name, false, ready)?;
    }
    Ok(exit::OK)
}

fn umount(a: UmountArgs) -> anyhow::Result<i32> {
    let flag = if a.lazy { "-uz" } else { "-u" };
    let status = std::process::Command::new("fusermount3")
        .arg(flag)
        .arg(&a.mountpoint)
        .status()
        .context("running fusermount3 (install the fuse3 package)")?;
    if !status.success() {
        anyhow::bail!("fusermount3 {flag} {} failed ({status})", a.mountpoint.display());
    }
    Ok(exit::OK)
}
