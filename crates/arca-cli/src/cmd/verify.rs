//! `arca verify coordinator ADDR`: check a coordinator's quote under a policy and the manifest a user
//! expects, then save its root certificate so that later commands (`arca status`, `arca manifest …`,
//! `arca secret …`) trust exactly that coordinator over TLS.

use std::path::PathBuf;

use anyhow::Context;
use arca_attest::Evidence;
use arca_coordinator::client::{Client, Trust};
use arca_protocol::api::{paths, ManifestResponse, QuoteResponse};
use base64::Engine as _;
use clap::{Args, Subcommand};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use sha2::Digest as _;

use super::coord_client::{block_on, default_root_path, merge_coordinator_policy};
use super::quote::{PolicyArgs, TrustArgs};
use crate::output::{exit, Ctx};

/// Verify remote parties before trusting them.
#[derive(Subcommand, Debug)]
pub(crate) enum VerifyCmd {
    /// Verify a coordinator: its quote (identity, TCB, simulation), the binding of its root certificate to
    /// that quote, and optionally its manifest; then save the root certificate for later commands.
    #[command(after_help = "\
The quote is requested with a fresh random nonce: its REPORTDATA must be SHA-256(root certificate DER ‖ nonce), \
so the root certificate saved is the one inside the attested enclave. Nothing is saved unless everything \
verifies.

Exit codes: 0 verified and saved, 3 refused (the reasons are printed), 1 error (unreachable, bad input).

Examples:
  arca verify coordinator coordinator.example:4433 --pccs https://pccs.example:8081 \\
      --mrsigner 83d7…9e --isv-prod-id 49153 --min-isv-svn 1 --manifest manifest.json
  arca verify coordinator localhost:4433 --allow-simulation --sim-root DATA/sim-pki/root-ca.pem \\
      --collateral DATA/sim-pki --mrenclave 5ab1…07
  arca verify coordinator coordinator.example:4433 --pccs https://pccs.example:8081 \\
      --coordinator-policy coordinator-policy.toml    # from `arca coordinator identity --production`
  arca --output json verify coordinator localhost:4433 --allow-simulation --sim-root root-ca.pem \\
      --collateral collateral.json --manifest-fingerprint 9f86…08")]
    Coordinator(Box<VerifyCoordinatorArgs>),
}

/// Arguments of `arca verify coordinator`.
#[derive(Args, Debug)]
pub(crate) struct VerifyCoordinatorArgs {
    /// The coordinator's client API, HOST:PORT.
    addr: String,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The coordinator identity to pin: the policy TOML printed by `arca coordinator identity` (the flags
    /// --mrenclave, --mrsigner, --isv-prod-id, --min-isv-svn override it).
    #[arg(long, value_name = "FILE")]
    coordinator_policy: Option<PathBuf>,
    /// The manifest you expect the coordinator to run (its SHA-256 must be the coordinator's fingerprint).
    #[arg(long, value_name = "FILE", conflicts_with = "manifest_fingerprint")]
    manifest: Option<PathBuf>,
    /// The manifest fingerprint you expect (hex SHA-256 of the manifest bytes).
    #[arg(long, value_name = "HEX")]
    manifest_fingerprint: Option<String>,
    /// Where to save the root certificate (default ~/.config/arca/coordinator-root.pem).
    #[arg(long, value_name = "PEM")]
    save: Option<PathBuf>,
}

/// `arca verify coordinator --output json` (schema in docs/cli-json.md).
#[derive(Serialize, Default)]
struct VerifyJson {
    accepted: bool,
    reasons: Vec<String>,
    notes: Vec<String>,
    mrenclave: Option<String>,
    mrsigner: Option<String>,
    isv_prod_id: Option<u16>,
    isv_svn: Option<u16>,
    simulated: bool,
    tcb_status: Option<String>,
    root_fingerprint: Option<String>,
    manifest_fingerprint: Option<String>,
    saved: Option<PathBuf>,
}

pub(crate) fn run(ctx: Ctx, cmd: VerifyCmd) -> anyhow::Result<i32> {
    match cmd {
        VerifyCmd::Coordinator(a) => coordinator(ctx, *a),
    }
}

/// A coordinator signed with the public development key: a note when the policy allows it (simulation, or
/// the user pinned that signer or an exact MRENCLAVE), a refusal otherwise — anyone can sign as that key,
/// so it never passes a production policy unless pinned explicitly.
fn development_signer(
    mrsigner: Option<[u8; 32]>,
    policy: &arca_attest::Policy,
) -> Option<Result<String, String>> {
    let dev = *arca_enclave::DEV_COORDINATOR_MRSIGNER.as_bytes();
    if mrsigner != Some(dev) {
        return None;
    }
    let pinned = policy.mrsigner.map(|m| m.0) == Some(dev) || policy.mrenclave.is_some();
    Some(if policy.allow_simulation || pinned {
        Ok("signed with the PUBLIC development key keys/arca-dev-coordinator.pem: development and simulation only".into())
    } else {
        Err("the coordinator is signed with the PUBLIC development key keys/arca-dev-coordinator.pem (anyone can sign \
as it): refused under a production policy unless you pin it explicitly (--mrsigner or --mrenclave)"
            .into())
    })
}

fn coordinator(ctx: Ctx, a: VerifyCoordinatorArgs) -> anyhow::Result<i32> {
    let mut policy = a.policy.policy()?;
    if let Some(path) = &a.coordinator_policy {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cp = arca_enclave::CoordinatorPolicy::from_toml(&text)
            .with_context(|| format!("parsing the coordinator policy {}", path.display()))?;
        merge_coordinator_policy(&mut policy, &cp);
    }
    let verifier = a.trust.verifier(&policy)?;
    let at = a.trust.at()?;
    let expected_manifest = match (&a.manifest, &a.manifest_fingerprint) {
        (Some(p), _) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Some(hex::encode(sha2::Sha256::digest(&bytes)))
        }
        (None, Some(h)) => Some(h.to_ascii_lowercase()),
        (None, None) => None,
    };

    let mut nonce = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("no random numbers for the nonce"))?;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let anon = Client::new(&a.addr, Trust::VerifiedByQuote, None)?;
    let q: QuoteResponse = block_on(anon.get(&format!("{}?nonce={}", paths::QUOTE, b64url.encode(nonce))))?
        .with_context(|| format!("fetching the quote of {}", a.addr))?;
    let root = CertificateDer::pem_slice_iter(q.cert.as_bytes())
        .next()
        .context("the coordinator sent no certificate with its quote")?
        .context("reading the coordinator's root certificate")?
        .to_vec();
    let quote = base64::engine::general_purpose::STANDARD
        .decode(&q.quote)
        .context("the coordinator's quote is not base64")?;

    let collateral = a.trust.collateral(&quote, at)?;
    let verdict = verifier.verify(&Evidence::new(&quote, collateral.as_ref()), &policy, at);
    let mut doc = VerifyJson {
        accepted: verdict.accepted,
        reasons: verdict.reasons.clone(),
        notes: verdict.notes.clone(),
        root_fingerprint: Some(arca_coordinator::cert_fingerprint(&root)),
        ..VerifyJson::default()
    };
    if let Some(e) = &verdict.evidence {
        doc.mrenclave = e.mrenclave().map(hex::encode);
        doc.mrsigner = e.mrsigner().map(hex::encode);
        doc.isv_prod_id = e.isv_prod_id();
        doc.isv_svn = e.isv_svn();
        doc.simulated = e.is_simulation();
        doc.tcb_status = e.tcb.as_ref().map(|t| t.status.to_string());
        if let Some(reason) = development_signer(e.mrsigner(), &policy) {
            match reason {
                Ok(note) => doc.notes.push(note),
                Err(refusal) => {
                    doc.accepted = false;
                    doc.reasons.push(refusal);
                }
            }
        }
        let expected = sha2::Sha256::new()
            .chain_update(&root)
            .chain_update(nonce)
            .finalize();
        if e.report_data()[..32] != expected[..] {
            doc.accepted = false;
            doc.reasons.push(
                "the quote does not bind the root certificate and our nonce (REPORTDATA[0..32] ≠ SHA-256(root ‖ nonce))"
                    .into(),
            );
        }
    }

    if doc.accepted {
        let trusted = Client::new(&a.addr, Trust::Root(root.clone()), None)?;
        match block_on(trusted.get::<ManifestResponse>(paths::MANIFEST))? {
            Ok(m) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(&m.manifest)
                    .context("the manifest is not base64")?;
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(&m.manifest_signature_root_ecdsa)
                    .context("the manifest signature is not base64")?;
                let fp = hex::encode(sha2::Sha256::digest(&raw));
                if fp != m.manifest_fingerprint {
                    doc.accepted = false;
                    doc.reasons.push(format!(
                        "the manifest's fingerprint {} is not its SHA-256 {fp}",
                        m.manifest_fingerprint
                    ));
                }
                if arca_coordinator::verify_root_signature(&root, &raw, &sig).is_err() {
                    doc.accepted = false;
                    doc.reasons
                        .push("the manifest's signature does not verify under the attested root".into());
                }
                if let Some(exp) = &expected_manifest {
                    if *exp != fp {
                        doc.accepted = false;
                        doc.reasons.push(format!(
                            "the coordinator runs manifest {fp}, not the expected {exp}"
                        ));
                    }
                }
                doc.manifest_fingerprint = Some(fp);
            }
            Err(e) => {
                if let Some(exp) = &expected_manifest {
                    doc.accepted = false;
                    doc.reasons.push(format!(
                        "manifest {exp} expected, but the coordinator has none ({e})"
                    ));
                }
            }
        }
    }

    if doc.accepted {
        let path = a.save.clone().unwrap_or_else(default_root_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE", root.clone()));
        std::fs::write(&path, pem)
            .with_context(|| format!("saving the root certificate to {}", path.display()))?;
        doc.saved = Some(path);
    }

    ctx.emit(&doc, |w| {
        if doc.accepted {
            writeln!(w, "coordinator {} verified", a.addr)?;
        } else {
            writeln!(w, "REFUSED: coordinator {}", a.addr)?;
            for r in &doc.reasons {
                writeln!(w, "  - {r}")?;
            }
        }
        for n in &doc.notes {
            writeln!(w, "  note: {n}")?;
        }
        let show = |w: &mut dyn std::io::Write, k: &str, v: &Option<String>| match v {
            Some(v) => writeln!(w, "  {k:<21}{v}"),
            None => Ok(()),
        };
        show(w, "MRENCLAVE", &doc.mrenclave)?;
        show(w, "MRSIGNER", &doc.mrsigner)?;
        show(w, "ISVPRODID", &doc.isv_prod_id.map(|v| v.to_string()))?;
        show(w, "ISVSVN", &doc.isv_svn.map(|v| v.to_string()))?;
        show(w, "TCB status", &doc.tcb_status)?;
        if doc.simulated {
            writeln!(
                w,
                "  {:<21}yes (signed by the Arca simulation root: no hardware guarantee)",
                "SIMULATED"
            )?;
        }
        show(w, "root fingerprint", &doc.root_fingerprint)?;
        show(w, "manifest fingerprint", &doc.manifest_fingerprint)?;
        show(
            w,
            "root saved to",
            &doc.saved.as_ref().map(|p| p.display().to_string()),
        )
    })?;
    Ok(if doc.accepted { exit::OK } else { exit::REFUSED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_development_signature_passes_only_simulation_or_an_explicit_pin() {
        let dev_bytes = *arca_enclave::DEV_COORDINATOR_MRSIGNER.as_bytes();
        let dev = Some(dev_bytes);
        let production = arca_attest::Policy::default();
        assert!(development_signer(Some([7; 32]), &production).is_none());
        let refused = development_signer(dev, &production).unwrap().unwrap_err();
        assert!(refused.contains("development key"), "{refused}");
        let pinned = arca_attest::Policy {
            mrsigner: Some(arca_attest::HexBytes(dev_bytes)),
            ..arca_attest::Policy::default()
        };
        assert!(development_signer(dev, &pinned).unwrap().is_ok());
        let simulation = arca_attest::Policy {
            allow_simulation: true,
            ..arca_attest::Policy::default()
        };
        assert!(development_signer(dev, &simulation).unwrap().is_ok());
    }
}
