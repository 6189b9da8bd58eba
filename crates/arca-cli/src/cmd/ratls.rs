//! `arca ratls inspect|verify`: the attestation evidence inside an RA-TLS certificate.

use std::path::{Path, PathBuf};

use anyhow::Context;
use arca_attest::{Evidence, Quote, RaTlsCertificate};
use clap::{Args, Subcommand};
use serde_json::json;

use super::quote::{print_json_as_text, print_verdict, quote_json, verdict_json, PolicyArgs, TrustArgs};
use crate::output::{exit, Ctx};

/// Inspect and verify RA-TLS certificates (Arca, Gramine, Intel SGX SDK, Open Enclave / EGo).
#[derive(Subcommand, Debug)]
pub(crate) enum RatlsCmd {
    /// Show the evidence a certificate carries and check that each is bound to the certificate's key.
    #[command(
        after_help = "Examples:\n  arca ratls inspect server.pem\n  arca ratls inspect cert.der --output json"
    )]
    Inspect(CertArgs),
    /// Verify a certificate: key binding, validity window, and its quote under a policy.
    #[command(
        after_help = "Without collateral the TCB status is unknown, and the certificate is refused.\n\
Exit codes: 0 accepted, 3 refused, 1 error.\n\nExamples:\n  \
arca ratls verify server.pem --pccs https://pccs.example:8081 --mrenclave 0866e7ca…\n  \
arca ratls verify marble.pem --collateral /var/lib/arca/sim --allow-simulation --sim-root /var/lib/arca/sim/root-ca.pem"
    )]
    Verify(Box<VerifyArgs>),
}

/// A certificate argument.
#[derive(Args, Debug)]
pub(crate) struct CertArgs {
    /// The certificate (PEM or DER; the first certificate of a PEM file).
    cert: PathBuf,
}

/// Arguments of `arca ratls verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    cert: CertArgs,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    policy: PolicyArgs,
}

pub(crate) fn run(ctx: Ctx, cmd: RatlsCmd) -> anyhow::Result<i32> {
    match cmd {
        RatlsCmd::Inspect(a) => inspect(ctx, &a),
        RatlsCmd::Verify(a) => verify(ctx, &a),
    }
}

fn read_cert(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let blocks = pem::parse_many(&bytes).with_context(|| format!("parsing PEM {}", path.display()))?;
        let first = blocks
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .with_context(|| format!("{} holds no CERTIFICATE", path.display()))?;
        return Ok(first.into_contents());
    }
    Ok(bytes)
}

fn inspect(ctx: Ctx, a: &CertArgs) -> anyhow::Result<i32> {
    let der = read_cert(&a.cert)?;
    let cert = RaTlsCertificate::parse(&der)
        .with_context(|| format!("reading the evidence in {}", a.cert.display()))?;
    let evidence: Vec<_> = cert
        .evidence
        .iter()
        .map(|e| {
            let quote = Quote::parse(&e.quote)
                .map(|q| quote_json(&q))
                .unwrap_or(serde_json::Value::Null);
            json!({ "format": e.format, "key_bound": true, "quote": quote })
        })
        .collect();
    let doc = json!({
        "spki_sha256": hex::encode(cert.spki_sha256),
        "not_before": cert.validity.0,
        "not_after": cert.validity.1,
        "evidence": evidence,
    });
    ctx.emit(&doc, |out| print_json_as_text(out, &doc, 0))?;
    Ok(exit::OK)
}

fn verify(ctx: Ctx, a: &VerifyArgs) -> anyhow::Result<i32> {
    let der = read_cert(&a.cert.cert)?;
    let policy = a.policy.policy()?;
    let at = a.trust.at()?;
    let verifier = a.trust.verifier(&policy)?;
    let verdict = match RaTlsCertificate::parse(&der) {
        Err(e) => arca_attest::Verdict::refused(e.to_string()),
        Ok(cert) if at < cert.validity.0 || at > cert.validity.1 => {
            arca_attest::Verdict::refused("stale RA-TLS certificate: outside its validity window".to_string())
        }
        Ok(cert) => {
            let collateral = a.trust.collateral(cert.quote(), at)?;
            verifier.verify(&Evidence::new(cert.quote(), collateral.as_ref()), &policy, at)
        }
    };
    let doc = verdict_json(&verdict);
    ctx.emit(&doc, |out| print_verdict(out, &verdict, at))?;
    Ok(if verdict.accepted { exit::OK } else { exit::REFUSED })
}
