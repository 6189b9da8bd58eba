//! Collateral: the signed data a verifier needs besides the quote — CRLs, TCB info, QE identity and the
//! issuer chains of each — kept as the **exact bytes received**, so signatures are checked over what was
//! signed and the warm cache can key on a fingerprint of those bytes.
//!
//! Two inputs are understood: the JSON layout used by dcap-qvl (`QuoteCollateralV3`: PEM chains, hex CRLs,
//! raw `tcb_info` / `qe_identity` text and hex signatures), and raw PCS / PCCS v4 responses (the
//! `{"tcbInfo":…,"signature":…}` bodies, the issuer-chain headers, CRLs as DER, PEM or hex).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::crypto::sha256;
use crate::error::Error;

/// A complete set of collateral for one platform (FMSPC) and TEE type.
#[derive(Clone, PartialEq, Eq)]
pub struct Collateral {
    pck_crl_issuer_chain: String,
    root_ca_crl: Vec<u8>,
    pck_crl: Vec<u8>,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: Vec<u8>,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: Vec<u8>,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for Collateral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collateral")
            .field("fingerprint", &hex::encode(self.fingerprint))
            .finish_non_exhaustive()
    }
}

/// The JSON layout of dcap-qvl's `QuoteCollateralV3` (also what `arca` writes).
#[derive(Serialize, Deserialize)]
struct CollateralJson {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: String,
}

/// Raw PCS / PCCS v4 responses, as received (bodies and issuer-chain header values).
#[derive(Clone, Debug, Default)]
pub struct PcsResponses {
    /// Body of `GET /sgx|tdx/certification/v4/tcb?fmspc=…`: `{"tcbInfo":{…},"signature":"…"}`.
    pub tcb_info: Vec<u8>,
    /// Its `TCB-Info-Issuer-Chain` header (URL-encoded or plain PEM).
    pub tcb_info_issuer_chain: String,
    /// Body of `GET …/v4/qe/identity`: `{"enclaveIdentity":{…},"signature":"…"}`.
    pub qe_identity: Vec<u8>,
    /// Its `SGX-Enclave-Identity-Issuer-Chain` header.
    pub qe_identity_issuer_chain: String,
    /// Body of `GET /sgx/certification/v4/pckcrl?ca=processor|platform` (DER, PEM or hex).
    pub pck_crl: Vec<u8>,
    /// Its `SGX-PCK-CRL-Issuer-Chain` header.
    pub pck_crl_issuer_chain: String,
    /// The Intel SGX Root CA CRL (DER, PEM or hex).
    pub root_ca_crl: Vec<u8>,
}

#[derive(Deserialize)]
struct SignedTcbInfo<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: String,
}

#[derive(Deserialize)]
struct SignedIdentity<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    identity: &'a RawValue,
    signature: String,
}

/// File names of a collateral directory in raw-response form (what the PCCS client caches).
pub(crate) mod files {
    pub(crate) const JSON: &str = "collateral.json";
    pub(crate) const TCB_INFO: &str = "tcbinfo.json";
    pub(crate) const TCB_INFO_CHAIN: &str = "tcbinfo-issuer-chain.pem";
    pub(crate) const QE_IDENTITY: &str = "qeidentity.json";
    pub(crate) const QE_IDENTITY_CHAIN: &str = "qeidentity-issuer-chain.pem";
    pub(crate) const PCK_CRL: &str = "pckcrl.der";
    pub(crate) const PCK_CRL_CHAIN: &str = "pckcrl-issuer-chain.pem";
    pub(crate) const ROOT_CRL: &str = "rootcacrl.der";
}

impl Collateral {
    /// Collateral from its parts (chains PEM; CRLs DER, PEM or hex; TCB info and QE identity as the exact
    /// signed JSON text; signatures as 64 raw bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        pck_crl_issuer_chain: String,
        root_ca_crl: &[u8],
        pck_crl: &[u8],
        tcb_info_issuer_chain: String,
        tcb_info: String,
        tcb_info_signature: Vec<u8>,
        qe_identity_issuer_chain: String,
        qe_identity: String,
        qe_identity_signature: Vec<u8>,
    ) -> Result<Self, Error> {
        let root_ca_crl = crate::pki::crl_der(root_ca_crl, "root CA CRL")?;
        let pck_crl = crate::pki::crl_der(pck_crl, "PCK CRL")?;
        for (sig, item) in [
            (&tcb_info_signature, "tcb_info_signature"),
            (&qe_identity_signature, "qe_identity_signature"),
        ] {
            if sig.len() != 64 {
                return Err(Error::collateral(
                    item,
                    format!("{} bytes, expected 64 (r ‖ s)", sig.len()),
                ));
            }
        }
        let mut c = Collateral {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            fingerprint: [0; 32],
        };
        c.fingerprint = c.compute_fingerprint();
        Ok(c)
    }

    /// Parses the JSON layout (dcap-qvl's `QuoteCollateralV3`).
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let j: CollateralJson =
            serde_json::from_slice(json).map_err(|e| Error::collateral("collateral JSON", e))?;
        let sig = |s: &str, item: &'static str| hex::decode(s.trim()).map_err(|e| Error::collateral(item, e));
        Self::from_parts(
            j.pck_crl_issuer_chain,
            j.root_ca_crl.as_bytes(),
            j.pck_crl.as_bytes(),
            j.tcb_info_issuer_chain,
            j.tcb_info,
            sig(&j.tcb_info_signature, "tcb_info_signature")?,
            j.qe_identity_issuer_chain,
            j.qe_identity,
            sig(&j.qe_identity_signature, "qe_identity_signature")?,
        )
    }

    /// Writes the JSON layout.
    pub fn to_json(&self) -> String {
        let j = CollateralJson {
            pck_crl_issuer_chain: self.pck_crl_issuer_chain.clone(),
            root_ca_crl: hex::encode(&self.root_ca_crl),
            pck_crl: hex::encode(&self.pck_crl),
            tcb_info_issuer_chain: self.tcb_info_issuer_chain.clone(),
            tcb_info: self.tcb_info.clone(),
            tcb_info_signature: hex::encode(&self.tcb_info_signature),
            qe_identity_issuer_chain: self.qe_identity_issuer_chain.clone(),
            qe_identity: self.qe_identity.clone(),
            qe_identity_signature: hex::encode(&self.qe_identity_signature),
        };
        // Serialising plain strings cannot fail.
        serde_json::to_string_pretty(&j).unwrap_or_default()
    }

    /// Collateral from raw PCS / PCCS responses. The signed inner objects are cut out of the bodies byte for
    /// byte (never re-serialised).
    pub fn from_pcs(r: &PcsResponses) -> Result<Self, Error> {
        let tcb: SignedTcbInfo<'_> =
            serde_json::from_slice(&r.tcb_info).map_err(|e| Error::collateral("TCB info response", e))?;
        let qe: SignedIdentity<'_> = serde_json::from_slice(&r.qe_identity)
            .map_err(|e| Error::collateral("QE identity response", e))?;
        Self::from_parts(
            url_decode(&r.pck_crl_issuer_chain),
            &r.root_ca_crl,
            &r.pck_crl,
            url_decode(&r.tcb_info_issuer_chain),
            tcb.tcb_info.get().to_string(),
            hex::decode(tcb.signature.trim()).map_err(|e| Error::collateral("TCB info signature", e))?,
            url_decode(&r.qe_identity_issuer_chain),
            qe.identity.get().to_string(),
            hex::decode(qe.signature.trim()).map_err(|e| Error::collateral("QE identity signature", e))?,
        )
    }

    /// Loads collateral from a JSON-layout file, or from a directory holding either `collateral.json` or the
    /// raw responses (`tcbinfo.json`, `tcbinfo-issuer-chain.pem`, `qeidentity.json`,
    /// `qeidentity-issuer-chain.pem`, `pckcrl.der`, `pckcrl-issuer-chain.pem`, `rootcacrl.der`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        if !path.is_dir() {
            return Self::from_json(&read(path)?);
        }
        let json = path.join(files::JSON);
        if json.exists() {
            return Self::from_json(&read(&json)?);
        }
        let text = |name: &str| -> Result<String, Error> {
            let p = path.join(name);
            String::from_utf8(read(&p)?).map_err(|e| Error::collateral(p.display().to_string(), e))
        };
        Self::from_pcs(&PcsResponses {
            tcb_info: read(&path.join(files::TCB_INFO))?,
            tcb_info_issuer_chain: text(files::TCB_INFO_CHAIN)?,
            qe_identity: read(&path.join(files::QE_IDENTITY))?,
            qe_identity_issuer_chain: text(files::QE_IDENTITY_CHAIN)?,
            pck_crl: read(&path.join(files::PCK_CRL))?,
            pck_crl_issuer_chain: text(files::PCK_CRL_CHAIN)?,
            root_ca_crl: read(&path.join(files::ROOT_CRL))?,
        })
    }

    /// SHA-256 over every item (length-prefixed): the warm cache's key for this collateral.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    fn compute_fingerprint(&self) -> [u8; 32] {
        let mut buf = Vec::new();
        for part in [
            self.pck_crl_issuer_chain.as_bytes(),
            &self.root_ca_crl,
            &self.pck_crl,
            self.tcb_info_issuer_chain.as_bytes(),
            self.tcb_info.as_bytes(),
            &self.tcb_info_signature,
            self.qe_identity_issuer_chain.as_bytes(),
            self.qe_identity.as_bytes(),
            &self.qe_identity_signature,
        ] {
            buf.extend_from_slice(&(part.len() as u64).to_le_bytes());
            buf.extend_from_slice(part);
        }
        sha256(&buf)
    }

    /// The PCK CRL issuer chain (PEM).
    pub fn pck_crl_issuer_chain(&self) -> &str {
        &self.pck_crl_issuer_chain
    }
    /// The root CA CRL (DER).
    pub fn root_ca_crl(&self) -> &[u8] {
        &self.root_ca_crl
    }
    /// The PCK CRL (DER).
    pub fn pck_crl(&self) -> &[u8] {
        &self.pck_crl
    }
    /// The TCB info issuer chain (PEM).
    pub fn tcb_info_issuer_chain(&self) -> &str {
        &self.tcb_info_issuer_chain
    }
    /// The signed TCB info JSON text, exactly as received.
    pub fn tcb_info(&self) -> &str {
        &self.tcb_info
    }
    /// The TCB info signature (r ‖ s).
    pub fn tcb_info_signature(&self) -> &[u8] {
        &self.tcb_info_signature
    }
    /// The QE identity issuer chain (PEM).
    pub fn qe_identity_issuer_chain(&self) -> &str {
        &self.qe_identity_issuer_chain
    }
    /// The signed QE identity JSON text, exactly as received.
    pub fn qe_identity(&self) -> &str {
        &self.qe_identity
    }
    /// The QE identity signature (r ‖ s).
    pub fn qe_identity_signature(&self) -> &[u8] {
        &self.qe_identity_signature
    }

    /// A copy with one item replaced (for tests of tampered collateral and for re-signing simulations).
    pub fn with_tcb_info(&self, tcb_info: String) -> Self {
        let mut c = self.clone();
        c.tcb_info = tcb_info;
        c.fingerprint = c.compute_fingerprint();
        c
    }

    /// A copy with the TCB info issuer chain replaced.
    pub fn with_tcb_info_issuer_chain(&self, chain: String) -> Self {
        let mut c = self.clone();
        c.tcb_info_issuer_chain = chain;
        c.fingerprint = c.compute_fingerprint();
        c
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

/// Decodes `%XX` escapes (PCS issuer-chain headers are URL-encoded PEM); plain PEM passes unchanged.
pub(crate) fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_digit(b[i + 1]), hex_digit(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding_restores_pem() {
        assert_eq!(
            url_decode("-----BEGIN%20CERTIFICATE-----%0AMII%2B%0A"),
            "-----BEGIN CERTIFICATE-----\nMII+\n"
        );
        assert_eq!(url_decode("plain%"), "plain%");
        assert_eq!(url_decode("a%zz"), "a%zz");
    }

    #[test]
    fn json_layout_round_trips_with_the_same_fingerprint() {
        let json = std::fs::read(arca_testkit::vector("dcap-qvl/sample_sgx_quote_collateral.json")).unwrap();
        let c = Collateral::from_json(&json).unwrap();
        let again = Collateral::from_json(c.to_json().as_bytes()).unwrap();
        assert_eq!(c.fingerprint(), again.fingerprint());
        assert_ne!(
            c.fingerprint(),
            c.with_tcb_info(c.tcb_info().replace('1', "2")).fingerprint()
        );
    }

    #[test]
    fn raw_pcs_bodies_keep_the_exact_signed_bytes() {
        let dir = arca_testkit::vector("intel-qvl-sampledata");
        let chain = std::fs::read_to_string(dir.join("tcbSignChain.pem")).unwrap();
        let r = PcsResponses {
            tcb_info: std::fs::read(dir.join("tcbInfo.json")).unwrap(),
            tcb_info_issuer_chain: chain.clone(),
            qe_identity: std::fs::read(dir.join("qeIdentity.json")).unwrap(),
            qe_identity_issuer_chain: chain,
            pck_crl: std::fs::read(dir.join("intermediateCaCrl.der")).unwrap(),
            pck_crl_issuer_chain: std::fs::read_to_string(dir.join("pckSignChain.pem")).unwrap(),
            root_ca_crl: std::fs::read(dir.join("rootCaCrl.der")).unwrap(),
        };
        let c = Collateral::from_pcs(&r).unwrap();
        assert!(c.tcb_info().starts_with("{\"version\":2,"));
        let body = String::from_utf8(r.tcb_info).unwrap();
        assert!(body.contains(c.tcb_info()));
    }
}
