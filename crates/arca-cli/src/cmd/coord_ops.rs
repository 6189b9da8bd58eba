//! `arca status`, `arca certificate`, `arca secret`, `arca recover`, `arca audit`: client commands of a
//! running coordinator.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use arca_coordinator::{verify_log, SignedHead};
use arca_protocol::api::{
    paths, AuditResponse, QuoteResponse, RecoverRequest, RecoverResponse, SecretsRequest, SecretsResponse,
    StatusResponse, UserSecret,
};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::coord_client::{block_on, default_root_path, pem_certs, AttestArgs, ConnArgs};
use crate::output::{exit, Ctx};

/// Show the coordinator's state (1 recovery, 2 accepting a manifest, 3 accepting marbles).
#[derive(Args, Debug)]
#[command(after_help = "\
By default the coordinator is trusted through the root certificate `arca verify coordinator` saved. In recovery \
mode its CA keys are sealed away and it serves a temporary self-issued certificate: trust it with --attest, which \
verifies the RA-TLS evidence of that certificate under the policy flags instead.

Examples:
  arca status --coordinator coordinator.example:4433 --output json
  arca status --attest --coordinator-policy coordinator-policy.toml --pccs https://pccs.example:8081
  arca status --attest --allow-simulation --sim-root DATA/sim-pki/root-ca.pem --collateral DATA/sim-pki \\
      --coordinator-policy coordinator-policy.toml")]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Trust the coordinator by its RA-TLS evidence under the policy flags, not the saved root.
    #[arg(long)]
    attest: bool,
    #[command(flatten)]
    attestation: AttestArgs,
}

/// Explains a TLS failure against the saved root: a coordinator in recovery mode cannot chain to it.
fn hint_recovery(e: arca_coordinator::Error) -> anyhow::Error {
    let text = e.to_string();
    let err = anyhow::Error::from(e);
    if text.contains("TLS handshake") && text.to_lowercase().contains("certificate") {
        err.context(
            "the coordinator's certificate does not chain to the saved root certificate: a coordinator in \
recovery mode serves a temporary self-issued certificate (its CA keys are sealed away); check it with --attest and \
the policy flags",
        )
    } else {
        err
    }
}

pub(crate) fn status(ctx: Ctx, args: StatusArgs) -> anyhow::Result<i32> {
    let client = if args.attest {
        args.conn.attested_client(&args.attestation)?
    } else {
        args.conn.client()?
    };
    let s: StatusResponse = block_on(client.get(paths::STATUS))?.map_err(hint_recovery)?;
    ctx.emit(&s, |w| writeln!(w, "{} ({})", s.message, s.status))?;
    Ok(exit::OK)
}

/// Which certificate `arca certificate` prints.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Which {
    /// The root CA certificate (what clients and marbles trust).
    Root,
    /// The current intermediate CA certificate (issues marble certificates; rotated on updates).
    Intermediate,
    /// Root, then intermediate.
    Chain,
}

/// Print the coordinator's CA certificates (PEM), as the coordinator serves them with its quote.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  arca certificate root > root.pem\n  arca certificate chain --out chain.pem"
)]
pub(crate) struct CertificateArgs {
    /// root, intermediate or chain.
    #[arg(value_enum)]
    which: Which,
    /// Write the PEM here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    conn: ConnArgs,
}

fn split_pem(chain: &str) -> Vec<String> {
    chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|s| s.contains("BEGIN CERTIFICATE"))
        .map(str::to_owned)
        .collect()
}

pub(crate) fn certificate(ctx: Ctx, args: CertificateArgs) -> anyhow::Result<i32> {
    let q: QuoteResponse = block_on(args.conn.client()?.get(paths::QUOTE))??;
    let certs = split_pem(&q.cert);
    let pem = match (args.which, certs.as_slice()) {
        (Which::Root, [root, ..]) => root.clone(),
        (Which::Intermediate, [_, inter, ..]) => inter.clone(),
        (Which::Chain, _) => certs.concat(),
        _ => bail!("the coordinator returned {} certificate(s)", certs.len()),
    };
    if let Some(out) = &args.out {
        std::fs::write(out, &pem).with_context(|| format!("writing {}", out.display()))?;
    }
    ctx.emit(&serde_json::json!({ "pem": pem }), |w| {
        if args.out.is_none() {
            w.write_all(pem.as_bytes())
        } else {
            Ok(())
        }
    })?;
    Ok(exit::OK)
}

/// Read and write the manifest's secrets (needs a user certificate with ReadSecret / WriteSecret).
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca secret get symmetricKeyShared certShared --cert admin.crt --key admin.key --output json
  arca secret set apiKey --from-file api.key --cert admin.crt --key admin.key
  arca secret set userCert --cert-file user.crt --private-key-file user.key --cert admin.crt --key admin.key")]
pub(crate) struct SecretArgs {
    #[command(subcommand)]
    command: SecretCommand,
}

#[derive(Subcommand, Debug)]
enum SecretCommand {
    /// Print secrets (MarbleRun's secret objects; binary values base64).
    Get {
        /// Secret names.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Set a user-defined secret from a file (the raw key or data), or a certificate and its key (PEM).
    Set {
        /// The secret's name in the manifest.
        name: String,
        /// File holding the key or plain data (raw bytes).
        #[arg(long, value_name = "FILE", conflicts_with = "cert_file")]
        from_file: Option<PathBuf>,
        /// Certificate (PEM) of a user-defined certificate secret.
        #[arg(long, value_name = "PEM")]
        cert_file: Option<PathBuf>,
        /// Its private key (PEM, PKCS#8).
        #[arg(long, value_name = "PEM", requires = "cert_file")]
        private_key_file: Option<PathBuf>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

pub(crate) fn secret(ctx: Ctx, args: SecretArgs) -> anyhow::Result<i32> {
    let b64 = base64::engine::general_purpose::STANDARD;
    match args.command {
        SecretCommand::Get { names, conn } => {
            let q: String = names
                .iter()
                .map(|n| format!("s={}", urlencode(n)))
                .collect::<Vec<_>>()
                .join("&");
            let r: SecretsResponse = block_on(conn.client()?.get(&format!("{}?{q}", paths::SECRETS)))??;
            ctx.emit(&r, |w| {
                for (name, s) in &r.secrets {
                    writeln!(
                        w,
                        "{name} ({}{}):",
                        s.r#type,
                        if s.size > 0 {
                            format!(", {} bits", s.size)
                        } else {
                            String::new()
                        }
                    )?;
                    if let Some(c) = &s.cert {
                        writeln!(w, "  cert (base64 DER): {c}")?;
                    }
                    if let Some(p) = &s.private {
                        writeln!(w, "  private (base64): {p}")?;
                    }
                    if let Some(p) = &s.public {
                        writeln!(w, "  public (base64): {p}")?;
                    }
                }
                Ok(())
            })?;
        }
        SecretCommand::Set {
            name,
            from_file,
            cert_file,
            private_key_file,
            conn,
        } => {
            let value = match (from_file, cert_file) {
                (Some(f), None) => UserSecret {
                    key: Some(
                        b64.encode(std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?),
                    ),
                    ..Default::default()
                },
                (None, Some(c)) => {
                    let cert = pem_certs(&c)?.remove(0);
                    let private = match private_key_file {
                        Some(k) => {
                            use rustls::pki_types::pem::PemObject as _;
                            let key = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(&k)
                                .with_context(|| format!("reading a PKCS#8 key from {}", k.display()))?;
                            Some(b64.encode(key.secret_pkcs8_der()))
                        }
                        None => None,
                    };
                    UserSecret {
                        cert: Some(b64.encode(cert)),
                        private,
                        ..Default::default()
                    }
                }
                _ => bail!("give --from-file, or --cert-file (and --private-key-file)"),
            };
            let req = SecretsRequest {
                secrets: BTreeMap::from([(name.clone(), value)]),
            };
            let _: serde_json::Value = block_on(conn.client()?.post(paths::SECRETS, &req))??;
            ctx.emit(&serde_json::json!({ "set": [name] }), |w| {
                writeln!(w, "secret {name} set")
            })?;
        }
    }
    Ok(exit::OK)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Recover a coordinator in recovery mode: decrypt your recovery secret with your recovery key and upload it.
#[derive(Args, Debug)]
#[command(after_help = "\
In recovery mode the coordinator cannot use its CA keys (they are in the state it cannot open), so it serves a \
temporary self-issued certificate carrying its quote (RA-TLS). Your secret is sent only after that quote verifies \
under the policy you give: pin the coordinator's identity (--coordinator-policy from `arca coordinator identity`, \
--mrenclave, or --mrsigner with --isv-prod-id and --min-isv-svn).

Examples:
  arca recover --key recovery.key --secrets recovery.json --name key1 \\
      --coordinator-policy coordinator-policy.toml --pccs https://pccs.example:8081
  arca recover --key recovery.key --secret-file key1.bin --coordinator-policy coordinator-policy.toml \\
      --allow-simulation --sim-root DATA/sim-pki/root-ca.pem --collateral DATA/sim-pki

`arca manifest set --recovery-out recovery.json` saved the encrypted secrets. With several recovery keys, each
holder runs this command; the output says how many secrets are still needed.")]
pub(crate) struct RecoverArgs {
    /// Your recovery private key (PEM, RSA).
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// The recovery secrets JSON written by `arca manifest set --recovery-out` …
    #[arg(long, value_name = "FILE", requires = "name", conflicts_with = "secret_file")]
    secrets: Option<PathBuf>,
    /// … and the name of your key in it.
    #[arg(long)]
    name: Option<String>,
    /// Or: a file with your encrypted secret (raw bytes or base64).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The coordinator's client API, HOST:PORT.
    #[arg(
        long = "coordinator",
        short = 'c',
        env = "ARCA_COORDINATOR",
        default_value = "localhost:4433"
    )]
    addr: String,
    #[command(flatten)]
    attestation: AttestArgs,
}

pub(crate) fn recover(ctx: Ctx, args: RecoverArgs) -> anyhow::Result<i32> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let ciphertext = match (&args.secrets, &args.name, &args.secret_file) {
        (Some(f), Some(name), None) => {
            let m: BTreeMap<String, String> = serde_json::from_slice(
                &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
            )
            .with_context(|| format!("{} is not a recovery secrets file", f.display()))?;
            let v = m
                .get(name)
                .with_context(|| format!("no secret for key {name:?} in {}", f.display()))?;
            b64.decode(v).context("the secret is not base64")?
        }
        (None, None, Some(f)) => {
            let raw = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            b64.decode(String::from_utf8_lossy(&raw).trim()).unwrap_or(raw)
        }
        _ => bail!("give --secrets FILE --name NAME, or --secret-file FILE"),
    };
    let key =
        std::fs::read_to_string(&args.key).with_context(|| format!("reading {}", args.key.display()))?;
    let secret = arca_coordinator::rsa_oaep_decrypt(&key, &ciphertext)?;
    let signature = arca_coordinator::rsa_pss_sign(&key, &secret)?;
    // The secret goes only to a coordinator whose certificate's RA-TLS evidence verifies under the policy.
    let client = arca_coordinator::client::Client::new(&args.addr, args.attestation.trust()?, None)?;
    let req = RecoverRequest {
        recovery_secret: b64.encode(&secret),
        recovery_secret_signature: Some(b64.encode(signature)),
    };
    let r: RecoverResponse = block_on(client.post(paths::RECOVER, &req))??;
    ctx.emit(&r, |w| writeln!(w, "{}", r.message))?;
    Ok(exit::OK)
}

/// Fetch and verify the coordinator's audit log (hash chain and signed head).
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca audit verify --save audit.json              # fetch from the coordinator, verify, keep a copy
  arca audit verify audit.json --root root.pem     # offline: chain and signed head of a saved copy
  arca audit verify audit.json                     # the copy against the live coordinator's head too

Exit code 3 when the log does not verify (edited, reordered, dropped or truncated entries).")]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify a saved copy (offline with --offline, else also against the live coordinator) or the live log.
    Verify {
        /// A copy saved with --save (JSON: entries and signed head). Without it, the live log is fetched.
        file: Option<PathBuf>,
        /// Do not contact the coordinator (needs FILE and the root certificate).
        #[arg(long, requires = "file")]
        offline: bool,
        /// Save the fetched log and head here.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Serialize)]
struct AuditOut {
    valid: bool,
    entries: u64,
    covered: u64,
    head: String,
    live_entries: Option<u64>,
    problem: Option<String>,
}

pub(crate) fn audit(ctx: Ctx, args: AuditArgs) -> anyhow::Result<i32> {
    let AuditCommand::Verify {
        file,
        offline,
        save,
        conn,
    } = args.command;
    let root_path = conn.root.clone().unwrap_or_else(default_root_path);
    let root = pem_certs(&root_path)?.remove(0);
    let live: Option<AuditResponse> = if offline {
        None
    } else {
        Some(block_on(conn.client()?.get(paths::AUDIT))??)
    };
    let copy: AuditResponse = match &file {
        Some(f) => {
            serde_json::from_slice(&std::fs::read(f).with_context(|| format!("reading {}", f.display()))?)
                .with_context(|| format!("{} is not a saved audit log", f.display()))?
        }
        None => live.clone().context("nothing to verify")?,
    };
    if let Some(out) = &save {
        std::fs::write(out, serde_json::to_vec_pretty(&copy)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let mut out = AuditOut {
        valid: false,
        entries: copy.entries.len() as u64,
        covered: 0,
        head: String::new(),
        live_entries: None,
        problem: None,
    };
    let result = (|| -> Result<(), String> {
        let head: SignedHead =
            serde_json::from_str(&copy.head).map_err(|e| format!("the saved head is not valid: {e}"))?;
        let r = verify_log(&copy.entries, Some((&head, &root))).map_err(|e| e.to_string())?;
        out.covered = r.covered;
        out.head = r.head;
        if let Some(live) = &live {
            let lhead: SignedHead =
                serde_json::from_str(&live.head).map_err(|e| format!("the live head is not valid: {e}"))?;
            out.live_entries = Some(lhead.entries);
            // The copy must be a prefix of the live log (or the live log a prefix of the copy: truncation).
            if lhead.entries < copy.entries.len() as u64 {
                return Err(format!(
                    "the coordinator's log holds {} entries, fewer than this copy's {}: the live log was truncated or replaced",
                    lhead.entries,
                    copy.entries.len()
                ));
            }
            let lr =
                verify_log(&live.entries, Some((&lhead, &root))).map_err(|e| format!("the live log: {e}"))?;
            let _ = lr;
            if live.entries.get(..copy.entries.len()) != Some(&copy.entries[..]) {
                return Err("this copy differs from the coordinator's log".into());
            }
        }
        Ok(())
    })();
    if let Err(p) = result {
        out.problem = Some(p);
    } else {
        out.valid = true;
    }
    ctx.emit(&out, |w| match &out.problem {
        None => writeln!(
            w,
            "audit log verifies: {} entries, {} covered by the signed head{}",
            out.entries,
            out.covered,
            out.live_entries
                .map(|n| format!("; consistent with the live log ({n} entries)"))
                .unwrap_or_default()
        ),
        Some(p) => writeln!(w, "REFUSED: {p}"),
    })?;
    Ok(if out.valid { exit::OK } else { exit::REFUSED })
}
