//! `arca keygen`: create an SGX enclave signing key.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context};
use arca_sgx::{Mrsigner, SigningKey};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::output::{exit, Ctx};

/// Generate an SGX enclave signing key: RSA-3072 with public exponent 3, written as PEM (mode 0600).
///
/// The key's MRSIGNER (SHA-256 of its modulus) is printed: it is the identity every enclave signed with this
/// key will carry, and what a MarbleRun manifest's `SignerID` names. Keep the key secret; anyone holding it
/// can sign enclaves with your MRSIGNER. An existing file is never overwritten unless `--force` is given.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca keygen -o signer.pem
  arca keygen -o signer.pem --format pkcs1      # 'BEGIN RSA PRIVATE KEY', like `openssl genrsa -3 3072`
  arca --output json keygen -o signer.pem | jq -r .mrsigner

Keys made by `openssl genrsa -3 3072` (PKCS#1 or PKCS#8 PEM) work as well.")]
pub(crate) struct KeygenArgs {
    /// Where to write the private key.
    #[arg(short = 'o', long = "out", value_name = "KEY.pem")]
    out: PathBuf,

    /// PEM encoding of the key.
    #[arg(long, value_enum, default_value_t = KeyFormat::Pkcs8)]
    format: KeyFormat,

    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum KeyFormat {
    /// `BEGIN PRIVATE KEY` (PKCS#8).
    Pkcs8,
    /// `BEGIN RSA PRIVATE KEY` (PKCS#1).
    Pkcs1,
}

/// `arca keygen --output json`.
#[derive(Serialize)]
struct KeygenJson {
    file: String,
    format: KeyFormat,
    mrsigner: Mrsigner,
}

pub(crate) fn run(ctx: Ctx, args: KeygenArgs) -> anyhow::Result<i32> {
    if !args.force && args.out.exists() {
        bail!(
            "{} exists; not overwriting a key (pass --force to replace it)",
            args.out.display()
        );
    }
    let key = SigningKey::generate().context("generating the key")?;
    let pem = match args.format {
        KeyFormat::Pkcs8 => key.to_pkcs8_pem()?,
        KeyFormat::Pkcs1 => key.to_pkcs1_pem()?,
    };
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&args.out).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => anyhow::anyhow!("{} exists; not overwriting a key", args.out.display()),
        _ => anyhow::Error::new(e).context(format!("creating {}", args.out.display())),
    })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let json = KeygenJson {
        file: args.out.display().to_string(),
        format: args.format,
        mrsigner: key.mrsigner(),
    };
    ctx.emit(&json, |out| {
        writeln!(
            out,
            "wrote {} (RSA-3072, exponent 3, {:?} PEM, mode 0600)",
            args.out.display(),
            args.format
        )?;
        writeln!(out, "MRSIGNER  {}", key.mrsigner())
    })?;
    Ok(exit::OK)
}
