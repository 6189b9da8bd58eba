//! `arca manifest`: check a manifest offline, and set, get, verify, log and update it on a coordinator.

use std::path::PathBuf;

use anyhow::Context;
use arca_protocol::api::{
    paths, ManifestRequest, ManifestResponse, ManifestSetResponse, PendingUpdateResponse, UpdateLogResponse,
};
use arca_protocol::{fingerprint, Manifest};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::coord_client::{block_on, ConnArgs};
use crate::output::{exit, Ctx};

/// Check MarbleRun manifests offline, and manage the manifest of a running coordinator.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  arca manifest check manifest.json            # offline: full validation and template dry run
  arca manifest set manifest.json              # on a fresh coordinator (after arca verify coordinator)
  arca manifest get --output json
  arca manifest verify manifest.json           # is this exactly the coordinator's manifest?
  arca manifest update apply update.json --cert alice.crt --key alice.key
  arca manifest log

Client commands reach the coordinator at --coordinator (default localhost:4433, env ARCA_COORDINATOR) and
trust the root certificate `arca verify coordinator` saved.")]
pub(crate) struct ManifestArgs {
    #[command(subcommand)]
    command: ManifestCommand,
}

#[derive(Subcommand, Debug)]
enum ManifestCommand {
    /// Validate a manifest offline: every field, every reference, every template (dry run). Exit 3 if invalid.
    #[command(after_help = "Example:\n  arca manifest check manifest.json --output json")]
    Check {
        /// The manifest (JSON).
        file: PathBuf,
    },
    /// Set the manifest of a coordinator that has none; saves the encrypted recovery secrets if any.
    #[command(after_help = "Example:\n  arca manifest set manifest.json --recovery-out recovery.json")]
    Set {
        /// The manifest (JSON).
        file: PathBuf,
        /// Where to write the recovery secrets (JSON: key name → base64 ciphertext).
        #[arg(long, value_name = "FILE")]
        recovery_out: Option<PathBuf>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the coordinator's manifest (or write it with --out), its fingerprint and signature.
    Get {
        /// Write the manifest bytes here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Check that FILE is byte for byte the coordinator's manifest, signed by its root key. Exit 3 if not.
    Verify {
        /// The manifest you expect.
        file: PathBuf,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the update log.
    Log {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Updates: package SecurityVersion bumps and multi-party manifest updates.
    Update {
        #[command(subcommand)]
        command: UpdateCommand,
    },
}

#[derive(Subcommand, Debug)]
enum UpdateCommand {
    /// Apply an update: a package update ({"Packages": {"p": {"SecurityVersion": N}}}) is applied at once; a
    /// full manifest (with --manifest) is proposed and needs the other users' acknowledgements.
    #[command(
        after_help = "Examples:\n  arca manifest update apply bump.json --cert alice.crt --key alice.key\n  arca manifest update apply --manifest new.json --cert alice.crt --key alice.key"
    )]
    Apply {
        /// The update document, or the full new manifest with --manifest.
        file: PathBuf,
        /// FILE is a full manifest (multi-party update), not a package update.
        #[arg(long)]
        manifest: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Acknowledge the pending manifest update by uploading the same manifest.
    Acknowledge {
        /// The pending manifest (as `arca manifest update show` prints it).
        file: PathBuf,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Cancel the pending manifest update.
    Cancel {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show the pending manifest update and who has not acknowledged it.
    Show {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Serialize)]
struct CheckOutput {
    file: String,
    valid: bool,
    fingerprint: String,
    problems: Vec<ProblemOut>,
    packages: usize,
    marbles: usize,
    secrets: usize,
    users: usize,
    templates: usize,
}

#[derive(Serialize)]
struct ProblemOut {
    path: String,
    problem: String,
}

pub(crate) fn run(ctx: Ctx, args: ManifestArgs) -> anyhow::Result<i32> {
    match args.command {
        ManifestCommand::Check { file } => check(ctx, file),
        ManifestCommand::Set {
            file,
            recovery_out,
            conn,
        } => {
            let raw = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            Manifest::parse(&raw).with_context(|| format!("{} is not a valid manifest", file.display()))?;
            let client = conn.client()?;
            let resp: ManifestSetResponse = block_on(client.post(
                paths::MANIFEST,
                &ManifestRequest {
                    manifest: base64::engine::general_purpose::STANDARD.encode(&raw),
                },
            ))??;
            if let (Some(out), Some(keys)) = (&recovery_out, &resp.recovery_keys) {
                std::fs::write(out, serde_json::to_vec_pretty(keys)?)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            ctx.emit(
                &serde_json::json!({"fingerprint": fingerprint(&raw), "recovery_keys": resp.recovery_keys}),
                |w| {
                    writeln!(w, "manifest set: {}", fingerprint(&raw))?;
                    match (&resp.recovery_keys, &recovery_out) {
                        (Some(k), Some(out)) => {
                            writeln!(w, "{} recovery secret(s) written to {}", k.len(), out.display())
                        }
                        (Some(k), None) => {
                            writeln!(
                                w,
                                "recovery secrets (keep them; decrypt with the recovery key to recover):"
                            )?;
                            for (name, v) in k {
                                writeln!(w, "  {name}: {v}")?;
                            }
                            Ok(())
                        }
                        _ => Ok(()),
                    }
                },
            )?;
            Ok(exit::OK)
        }
        ManifestCommand::Get { out, conn } => {
            let m: ManifestResponse = block_on(conn.client()?.get(paths::MANIFEST))??;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&m.manifest)
                .context("manifest is not base64")?;
            if let Some(out) = &out {
                std::fs::write(out, &raw).with_context(|| format!("writing {}", out.display()))?;
            }
            ctx.emit(&m, |w| {
                if out.is_none() {
                    w.write_all(&raw)?;
                    writeln!(w)?;
                }
                writeln!(w, "fingerprint: {}", m.manifest_fingerprint)
            })?;
            Ok(exit::OK)
        }
        ManifestCommand::Verify { file, conn } => verify(ctx, file, conn),
        ManifestCommand::Log { conn } => {
            let log: UpdateLogResponse = block_on(conn.client()?.get(paths::UPDATE))??;
            ctx.emit(&log, |w| {
                for l in &log.update_log {
                    writeln!(w, "{l}")?;
                }
                Ok(())
            })?;
            Ok(exit::OK)
        }
        ManifestCommand::Update { command } => update(ctx, command),
    }
}

fn check(ctx: Ctx, file: PathBuf) -> anyhow::Result<i32> {
    let raw = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let result = Manifest::parse(&raw);
    let mut out = CheckOutput {
        file: file.display().to_string(),
        valid: result.is_ok(),
        fingerprint: fingerprint(&raw),
        problems: Vec::new(),
        packages: 0,
        marbles: 0,
        secrets: 0,
        users: 0,
        templates: 0,
    };
    match &result {
        Ok(m) => {
            out.packages = m.packages.len();
            out.marbles = m.marbles.len();
            out.secrets = m.secrets.len();
            out.users = m.users.len();
            out.templates = m
                .marbles
                .values()
                .flat_map(|mb| mb.parameters.files.values().chain(mb.parameters.env.values()))
                .filter(|e| e.template.is_some())
                .count();
        }
        Err(arca_protocol::Error::Invalid(problems)) => {
            out.problems = problems
                .iter()
                .map(|p| ProblemOut {
                    path: p.path.clone(),
                    problem: p.problem.clone(),
                })
                .collect();
        }
        Err(e) => out.problems.push(ProblemOut {
            path: "(manifest)".into(),
            problem: e.to_string(),
        }),
    }
    ctx.emit(&out, |w| {
        if out.valid {
            writeln!(
                w,
                "{}: valid ({} packages, {} marbles, {} secrets, {} users; {} templates checked by dry run)",
                out.file, out.packages, out.marbles, out.secrets, out.users, out.templates
            )?;
            writeln!(w, "fingerprint: {}", out.fingerprint)
        } else {
            writeln!(w, "{}: invalid ({} problem(s))", out.file, out.problems.len())?;
            for p in &out.problems {
                writeln!(w, "  {}: {}", p.path, p.problem)?;
            }
            Ok(())
        }
    })?;
    Ok(if out.valid { exit::OK } else { exit::REFUSED })
}

fn verify(ctx: Ctx, file: PathBuf, conn: ConnArgs) -> anyhow::Result<i32> {
    let raw = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let m: ManifestResponse = block_on(conn.client()?.get(paths::MANIFEST))??;
    let b64 = base64::engine::general_purpose::STANDARD;
    let theirs = b64.decode(&m.manifest).context("manifest is not base64")?;
    let sig = b64
        .decode(&m.manifest_signature_root_ecdsa)
        .context("signature is not base64")?;
    let root_path = conn
        .root
        .clone()
        .unwrap_or_else(super::coord_client::default_root_path);
    let root = super::coord_client::pem_certs(&root_path)?.remove(0);
    let signed = arca_coordinator::verify_root_signature(&root, &theirs, &sig).is_ok();
    let same = theirs == raw && m.manifest_fingerprint == fingerprint(&raw);
    let ok = same && signed;
    ctx.emit(
        &serde_json::json!({"matches": same, "signature_valid": signed, "fingerprint": m.manifest_fingerprint, "expected": fingerprint(&raw)}),
        |w| {
            if ok {
                writeln!(w, "the coordinator's manifest is {} ({}), signed by its root key", file.display(), m.manifest_fingerprint)
            } else if !same {
                writeln!(w, "REFUSED: the coordinator's manifest {} differs from {} ({})", m.manifest_fingerprint, file.display(), fingerprint(&raw))
            } else {
                writeln!(w, "REFUSED: the manifest's signature does not verify under the saved root certificate")
            }
        },
    )?;
    Ok(if ok { exit::OK } else { exit::REFUSED })
}

fn update(ctx: Ctx, command: UpdateCommand) -> anyhow::Result<i32> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let read = |f: &PathBuf| std::fs::read(f).with_context(|| format!("reading {}", f.display()));
    match command {
        UpdateCommand::Apply {
            file,
            manifest: false,
            conn,
        } => {
            let raw = read(&file)?;
            arca_protocol::PackageUpdate::parse(&raw)
                .with_context(|| format!("{} is not a package update", file.display()))?;
            let _: serde_json::Value = block_on(conn.client()?.post(
                paths::UPDATE,
                &ManifestRequest {
                    manifest: b64.encode(&raw),
                },
            ))??;
            ctx.emit(&serde_json::json!({"applied": true}), |w| {
                writeln!(w, "package update applied")
            })?;
        }
        UpdateCommand::Apply {
            file,
            manifest: true,
            conn,
        }
        | UpdateCommand::Acknowledge { file, conn } => {
            let raw = read(&file)?;
            Manifest::parse(&raw).with_context(|| format!("{} is not a valid manifest", file.display()))?;
            let r: PendingUpdateResponse = block_on(conn.client()?.post(
                paths::UPDATE_MANIFEST,
                &ManifestRequest {
                    manifest: b64.encode(&raw),
                },
            ))??;
            ctx.emit(&r, |w| {
                writeln!(w, "{}", r.message)?;
                if !r.missing_users.is_empty() {
                    writeln!(w, "waiting for: {}", r.missing_users.join(", "))?;
                }
                Ok(())
            })?;
        }
        UpdateCommand::Cancel { conn } => {
            let _: serde_json::Value =
                block_on(conn.client()?.post(paths::UPDATE_CANCEL, &serde_json::json!({})))??;
            ctx.emit(&serde_json::json!({"cancelled": true}), |w| {
                writeln!(w, "pending update cancelled")
            })?;
        }
        UpdateCommand::Show { conn } => {
            let r: PendingUpdateResponse = block_on(conn.client()?.get(paths::UPDATE_MANIFEST))??;
            ctx.emit(&r, |w| {
                if let Some(m) = &r.manifest {
                    if let Ok(raw) = b64.decode(m) {
                        w.write_all(&raw)?;
                        writeln!(w)?;
                        writeln!(w, "fingerprint: {}", fingerprint(&raw))?;
                    }
                }
                writeln!(w, "{}", r.message)?;
                writeln!(w, "waiting for: {}", r.missing_users.join(", "))
            })?;
        }
    }
    Ok(exit::OK)
}
