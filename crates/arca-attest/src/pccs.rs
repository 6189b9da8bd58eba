//! Fetching collateral from a PCCS or Intel PCS v4-compatible service (Azure's THIM cache has the same API),
//! with an on-disk cache of the raw responses that is reused until the earliest `nextUpdate` among them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::collateral::{files, Collateral, PcsResponses};
use crate::error::Error;
use crate::quote::{Quote, TeeType};
use crate::ratls::CollateralSource;

/// Which Intel CA issued a PCK certificate (selects the PCK CRL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PckCa {
    /// "Intel SGX PCK Processor CA".
    Processor,
    /// "Intel SGX PCK Platform CA".
    Platform,
}

impl PckCa {
    fn as_str(self) -> &'static str {
        match self {
            PckCa::Processor => "processor",
            PckCa::Platform => "platform",
        }
    }
}

/// The platform a quote comes from, as needed to fetch its collateral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformId {
    /// FMSPC from the PCK certificate.
    pub fmspc: [u8; 6],
    /// SGX or TDX.
    pub tee: TeeType,
    /// The PCK certificate's issuing CA.
    pub ca: PckCa,
}

impl PlatformId {
    /// Reads FMSPC and issuing CA from the PCK certificate embedded in a quote.
    pub fn of_quote(quote: &[u8]) -> Result<Self, Error> {
        let q = Quote::parse(quote)?;
        let ders = q.signature.certification.pck_chain_der()?;
        for der in &ders {
            let cert = crate::pki::parse_cert(der, "PCK certificate chain")?;
            if let Ok(ext) = crate::pki::pck_extensions(&cert) {
                let issuer = cert.issuer().to_string();
                let ca = if issuer.contains("Processor") {
                    PckCa::Processor
                } else {
                    PckCa::Platform
                };
                return Ok(PlatformId {
                    fmspc: ext.fmspc,
                    tee: q.header.tee_type,
                    ca,
                });
            }
        }
        Err(Error::PckExtensions(
            "no PCK certificate in the quote's chain".into(),
        ))
    }
}

/// A PCCS / PCS v4 client with an optional on-disk cache.
pub struct PccsClient {
    base: String,
    root_crl_url: Option<String>,
    cache_dir: Option<PathBuf>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for PccsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PccsClient")
            .field("base", &self.base)
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

/// Largest response body accepted (collateral is a few KiB).
const BODY_LIMIT: u64 = 4 << 20;

impl PccsClient {
    /// A client for the service at `base` (e.g. `https://pccs.example:8081` or Intel's
    /// `https://api.trustedservices.intel.com`); paths `/sgx|tdx/certification/v4/…` are appended.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        PccsClient {
            base: base.trim_end_matches('/').to_string(),
            root_crl_url: None,
            cache_dir: None,
            agent,
        }
    }

    /// Caches raw responses under `dir` and reuses them until their earliest `nextUpdate`.
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Self {
        self.cache_dir = Some(dir);
        self
    }

    /// Where to fetch the root CA CRL (default: the PCCS path `/sgx/certification/v4/rootcacrl`; Intel's
    /// PCS publishes it at `https://certificates.trustedservices.intel.com/IntelSGXRootCA.der`).
    pub fn with_root_crl_url(mut self, url: &str) -> Self {
        self.root_crl_url = Some(url.to_string());
        self
    }

    /// Collateral for `platform`, valid at `now` (Unix seconds): from the cache if every item in it is still
    /// before its `nextUpdate`, else fetched (and cached).
    pub fn collateral(&self, platform: &PlatformId, now: i64) -> Result<Collateral, Error> {
        let dir = self.cache_dir.as_ref().map(|d| {
            let tee = if platform.tee == TeeType::TDX {
                "tdx"
            } else {
                "sgx"
            };
            d.join(format!(
                "{tee}-{}-{}",
                hex::encode_upper(platform.fmspc),
                platform.ca.as_str()
            ))
        });
        if let Some(dir) = &dir {
            if let Ok(c) = Collateral::load(dir) {
                if next_update(&c).is_ok_and(|next| now < next) {
                    tracing::debug!(dir = %dir.display(), "collateral from cache");
                    return Ok(c);
                }
            }
        }
        let r = self.fetch(platform)?;
        let c = Collateral::from_pcs(&r)?;
        if let Some(dir) = &dir {
            store(dir, &r)?;
        }
        Ok(c)
    }

    fn fetch(&self, p: &PlatformId) -> Result<PcsResponses, Error> {
        let tee = if p.tee == TeeType::TDX { "tdx" } else { "sgx" };
        let fmspc = hex::encode_upper(p.fmspc);
        let (tcb_info, tcb_h) = self.get(
            &format!("{}/{tee}/certification/v4/tcb?fmspc={fmspc}", self.base),
            &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
        )?;
        let (qe_identity, qe_h) = self.get(
            &format!("{}/{tee}/certification/v4/qe/identity", self.base),
            &["SGX-Enclave-Identity-Issuer-Chain"],
        )?;
        let (pck_crl, crl_h) = self.get(
            &format!(
                "{}/sgx/certification/v4/pckcrl?ca={}&encoding=der",
                self.base,
                p.ca.as_str()
            ),
            &["SGX-PCK-CRL-Issuer-Chain"],
        )?;
        let root_url = self
            .root_crl_url
            .clone()
            .unwrap_or_else(|| format!("{}/sgx/certification/v4/rootcacrl", self.base));
        let (root_ca_crl, _) = self.get(&root_url, &[])?;
        Ok(PcsResponses {
            tcb_info,
            tcb_info_issuer_chain: tcb_h,
            qe_identity,
            qe_identity_issuer_chain: qe_h,
            pck_crl,
            pck_crl_issuer_chain: crl_h,
            root_ca_crl,
        })
    }

    fn get(&self, url: &str, headers: &[&str]) -> Result<(Vec<u8>, String), Error> {
        let err = |reason: String| Error::Http {
            url: url.to_string(),
            reason,
        };
        let mut resp = self.agent.get(url).call().map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(format!("HTTP status {status}")));
        }
        let header = if headers.is_empty() {
            String::new()
        } else {
            headers
                .iter()
                .find_map(|h| {
                    resp.headers()
                        .get(*h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
                .ok_or_else(|| err(format!("the response has no {} header", headers[0])))?
        };
        let body = resp
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| err(e.to_string()))?;
        Ok((body, header))
    }
}

/// The earliest nextUpdate of the TCB info, the QE identity and the two CRLs.
fn next_update(c: &Collateral) -> Result<i64, Error> {
    let tcb = crate::tcb::TcbInfo::parse(c.tcb_info())?;
    let qe = crate::tcb::QeIdentity::parse(c.qe_identity())?;
    let mut next = tcb.next_update.min(qe.next_update);
    for (der, name) in [(c.root_ca_crl(), "root CA CRL"), (c.pck_crl(), "PCK CRL")] {
        use x509_parser::prelude::FromDer;
        let (_, crl) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(der).map_err(|e| {
                Error::Crl {
                    crl: name,
                    reason: e.to_string(),
                }
            })?;
        if let Some(n) = crl.next_update() {
            next = next.min(n.timestamp());
        }
    }
    Ok(next)
}

fn store(dir: &std::path::Path, r: &PcsResponses) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let pck_crl = crate::pki::crl_der(&r.pck_crl, "PCK CRL")?;
    let root_crl = crate::pki::crl_der(&r.root_ca_crl, "root CA CRL")?;
    for (name, data) in [
        (files::TCB_INFO, r.tcb_info.as_slice()),
        (
            files::TCB_INFO_CHAIN,
            crate::collateral::url_decode(&r.tcb_info_issuer_chain).as_bytes(),
        ),
        (files::QE_IDENTITY, r.qe_identity.as_slice()),
        (
            files::QE_IDENTITY_CHAIN,
            crate::collateral::url_decode(&r.qe_identity_issuer_chain).as_bytes(),
        ),
        (files::PCK_CRL, pck_crl.as_slice()),
        (
            files::PCK_CRL_CHAIN,
            crate::collateral::url_decode(&r.pck_crl_issuer_chain).as_bytes(),
        ),
        (files::ROOT_CRL, root_crl.as_slice()),
    ] {
        let p = dir.join(name);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, data).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| Error::io("rename into place", &p, e))?;
    }
    Ok(())
}

impl CollateralSource for PccsClient {
    fn collateral_for(&self, quote: &[u8]) -> Result<Option<Arc<Collateral>>, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let platform = PlatformId::of_quote(quote)?;
        Ok(Some(Arc::new(self.collateral(&platform, now)?)))
    }
}
