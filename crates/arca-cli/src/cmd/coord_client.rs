//! What every command that talks to a coordinator shares: the address, the trusted root certificate, the
//! user's certificate, and a Tokio runtime.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use arca_coordinator::client::{Client, Trust, UserIdentity};
use clap::Args;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
