//! What every command that talks to a coordinator shares: the address, the trusted root certificate, the
//! user's certificate, and a Tokio runtime.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{bail, Context};
use arca_attest::{HexBytes, Policy, RaTlsVerifier};
use arca_coordinator::client::{Client, Trust, UserIdentity};
use arca_enclave::{CoordinatorIdentity, CoordinatorPolicy};
use clap::Args;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::quote::{PolicyArgs, TrustArgs};

/// Connection settings of client commands.
#[derive(Args, Debug, Clone)]
pub(crate) struct ConnArgs {
    /// The coordinator's client API, HOST:PORT.
    #[arg(
        long = "coordinator",
        short = 'c',
        env = "ARCA_COORDINATOR",
        default_value = "localhost:4433"
    )]
    pub(crate) addr: String,
    /// The coordinator's root certificate (PEM), as saved by `arca verify coordinator` (default: the one it
    /// saved, ~/.config/arca/coordinator-root.pem).
    #[arg(long, env = "ARCA_COORDINATOR_ROOT", value_name = "PEM")]
    pub(crate) root: Option<PathBuf>,
    /// User certificate (PEM) for calls a user must make (secrets, updates).
    #[arg(long, value_name = "PEM", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// The user certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
}

/// Where `arca verify coordinator` saves the root certificate by default.
pub(crate) fn default_root_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("arca").join("coordinator-root.pem")
}

/// The DER certificates of a PEM file.
pub(crate) fn pem_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

impl ConnArgs {
    /// A client trusting the coordinator by the RA-TLS evidence of its certificate (`--attest`).
    pub(crate) fn attested_client(&self, attest: &AttestArgs) -> anyhow::Result<Client> {
        Ok(Client::new(&self.addr, attest.trust()?, self.user()?)?)
    }

    /// A client trusting the saved root certificate.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let root_path = self.root.clone().unwrap_or_else(default_root_path);
        if !root_path.exists() {
            bail!(
                "no root certificate at {}: verify the coordinator first (arca verify coordinator {}), or pass --root",
                root_path.display(),
                self.addr
            );
        }
        let root = pem_certs(&root_path)?.remove(0);
        Ok(Client::new(&self.addr, Trust::Root(root), self.user()?)?)
    }

    fn user(&self) -> anyhow::Result<Option<UserIdentity>> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let chain = pem_certs(cert)?;
        let path = key;
        let key = PrivateKeyDer::from_pem_file(path)
            .with_context(|| format!("reading the key {}", path.display()))?;
        let key = match key {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            PrivateKeyDer::Sec1(k) => k.secret_sec1_der().to_vec(),
            PrivateKeyDer::Pkcs1(k) => k.secret_pkcs1_der().to_vec(),
            _ => bail!("unsupported private key format in {}", path.display()),
        };
        Ok(Some((chain, key)))
    }
}

/// Runs a future on a fresh current-thread runtime.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(rt.block_on(f))
}

/// How to trust a coordinator by the RA-TLS evidence in its TLS certificate instead of a saved root
/// certificate: the only way in recovery mode, where the coordinator's CA keys are sealed away and it
/// serves a temporary self-issued certificate.
#[derive(Args, Debug)]
pub(crate) struct AttestArgs {
    /// The coordinator identity to pin: the policy TOML printed by `arca coordinator identity` (the flags
    /// --mrenclave, --mrsigner, --isv-prod-id, --min-isv-svn override it).
    #[arg(long, value_name = "FILE")]
    pub(crate) coordinator_policy: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
}

impl AttestArgs {
    /// The quote policy: the flags, completed by `--coordinator-policy`.
    pub(crate) fn policy(&self) -> anyhow::Result<Policy> {
        let mut p = self.policy.policy()?;
        if let Some(path) = &self.coordinator_policy {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let cp = CoordinatorPolicy::from_toml(&text)
                .with_context(|| format!("parsing the coordinator policy {}", path.display()))?;
            merge_coordinator_policy(&mut p, &cp);
        }
        Ok(p)
    }

    /// A TLS trust that verifies the server certificate's RA-TLS evidence under [`AttestArgs::policy`],
    /// which must pin an identity (MRENCLAVE or MRSIGNER): any genuine enclave would do otherwise.
    pub(crate) fn trust(&self) -> anyhow::Result<Trust> {
        let policy = self.policy()?;
        if policy.mrenclave.is_none() && policy.mrsigner.is_none() {
            bail!(
                "pin the coordinator's identity: --coordinator-policy FILE (from `arca coordinator identity`), \
--mrenclave HEX, or --mrsigner HEX --isv-prod-id N --min-isv-svn N"
            );
        }
        let verifier = self.trust.verifier(&policy)?;
        let collateral = self.trust.collateral_source()?;
        let mut v = RaTlsVerifier::new(Arc::new(verifier), collateral, policy);
        if let Some(at) = self.trust.at_given()? {
            v = v.at_time(at);
        }
        Ok(Trust::Attested(Arc::new(v)))
    }
}

/// Fills the identity fields of `p` that the flags left empty from a coordinator identity policy.
pub(crate) fn merge_coordinator_policy(p: &mut Policy, cp: &CoordinatorPolicy) {
    match cp.identity {
        CoordinatorIdentity::Enclave(m) => {
            p.mrenclave = p.mrenclave.or(Some(HexBytes(*m.as_bytes())));
        }
        CoordinatorIdentity::Signer {
            mrsigner,
            isvprodid,
            min_isvsvn,
        } => {
            p.mrsigner = p.mrsigner.or(Some(HexBytes(*mrsigner.as_bytes())));
            p.isv_prod_id = p.isv_prod_id.or(Some(isvprodid));
            p.min_isv_svn = p.min_isv_svn.or(Some(min_isvsvn));
        }
    }
    p.allow_simulation |= cp.allow_simulation;
    p.allow_debug |= cp.allow_debug;
}
