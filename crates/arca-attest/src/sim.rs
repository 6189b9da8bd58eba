//! The simulation PKI of the `sim` engine, and quote generation over a REPORT body it is given.
//!
//! `SimPki::create` makes an **Arca Simulation Root CA** → **PCK Platform CA** → **PCK certificate** carrying
//! the SGX extensions (PPID, TCB components, PCESVN, CPUSVN, PCE-ID, FMSPC, SGX type), a **TCB signing**
//! certificate, a quoting-enclave attestation key, and collateral signed the way Intel signs its own: TCB
//! info and QE identity JSON (signature over the exact text), root CA CRL and PCK CRL. Quotes it signs are
//! real DCAP v3 quotes, verified by the same [`crate::Verifier`] as hardware quotes; they pass only when the
//! verifier knows the simulation root and the policy allows simulation, and are otherwise refused with an
//! error saying "simulation quote". This module measures nothing: the caller supplies the REPORT body.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use zeroize::Zeroizing;

use crate::collateral::Collateral;
use crate::crypto::sha256;
use crate::error::Error;
use crate::pki::{AnchorKind, TrustAnchor, SIMULATION_ROOT_CN};
use crate::quote::INTEL_QE_VENDOR_ID;
use arca_sgx::ReportBody;

/// FMSPC of the simulated platform.
pub const SIM_FMSPC: [u8; 6] = [0x0a, 0x7c, 0xa0, 0x00, 0x00, 0x00];
/// TCB component SVNs of the simulated platform (its PCK certificate).
const SIM_TCB: [u8; 16] = [3; 16];
/// PCESVN of the simulated platform.
const SIM_PCESVN: u16 = 13;
/// ISVPRODID and ISVSVN of the simulated quoting enclave.
const SIM_QE_PRODID: u16 = 1;
const SIM_QE_SVN: u16 = 8;
/// Validity of the simulation PKI and its collateral, from creation.
const DEFAULT_VALIDITY_DAYS: i64 = 3650;

const ROOT_CERT: &str = "root-ca.pem";
const ROOT_KEY: &str = "root-ca.key.pem";
const PLATFORM_CERT: &str = "pck-platform-ca.pem";
const PLATFORM_KEY: &str = "pck-platform-ca.key.pem";
const TCB_CERT: &str = "tcb-signing.pem";
const TCB_KEY: &str = "tcb-signing.key.pem";
const PCK_CERT: &str = "pck.pem";
const PCK_KEY: &str = "pck.key.pem";
const QE_KEY: &str = "qe-attestation.key.pem";
const COLLATERAL: &str = "collateral.json";

/// The quoting enclave's MRSIGNER in the simulation (SHA-256 of a fixed label).
pub fn sim_qe_mrsigner() -> [u8; 32] {
    sha256(b"Arca simulation quoting enclave signer")
}

/// Creation options.
#[derive(Clone, Copy, Debug)]
pub struct SimPkiOptions {
    /// The creation time (Unix seconds): certificates and collateral are valid from one day before it.
    pub at: i64,
    /// How long certificates and collateral stay valid, in days.
    pub validity_days: i64,
}

impl SimPkiOptions {
    /// Options for a PKI created at `at` and valid for ten years.
    pub fn at(at: i64) -> Self {
        SimPkiOptions {
            at,
            validity_days: DEFAULT_VALIDITY_DAYS,
        }
    }
}

struct Key {
    pem: Zeroizing<String>,
    rcgen: KeyPair,
}

impl Key {
    fn generate(step: &'static str) -> Result<Self, Error> {
        let rcgen =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| Error::crypto(step, e))?;
        Ok(Key {
            pem: Zeroizing::new(rcgen.serialize_pem()),
            rcgen,
        })
    }

    fn from_pem(pem: String, step: &'static str) -> Result<Self, Error> {
        let rcgen = KeyPair::from_pem(&pem).map_err(|e| Error::crypto(step, e))?;
        Ok(Key {
            pem: Zeroizing::new(pem),
            rcgen,
        })
    }

    fn ring(&self, step: &'static str) -> Result<EcdsaKeyPair, Error> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            self.rcgen.serialized_der(),
            &SystemRandom::new(),
        )
        .map_err(|e| Error::crypto(step, e))
    }
}

/// The simulation PKI: keys, certificates and collateral, kept in memory and in a directory.
pub struct SimPki {
    root_pem: String,
    root: Key,
    platform_pem: String,
    platform: Key,
    tcb_pem: String,
    tcb: Key,
    pck_pem: String,
    pck: Key,
    pck_serial: Vec<u8>,
    qe: Key,
    qe_ring: EcdsaKeyPair,
    window: (i64, i64),
    collateral: Collateral,
    /// The quote bytes after the signed region and ISV signature: attestation key, signed QE report,
    /// auth data and certification data (the same for every quote of this PKI).
    tail: Vec<u8>,
}

impl std::fmt::Debug for SimPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPki")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

fn odt(t: i64) -> Result<time::OffsetDateTime, Error> {
    time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| Error::crypto("convert a simulation date", e))
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d.push(DnType::OrganizationName, "Arca Simulation");
    d
}

fn random_serial() -> Result<Vec<u8>, Error> {
    let mut s = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut s)
        .map_err(|_| Error::crypto("draw a serial", "rng"))?;
    s[0] = (s[0] & 0x7f) | 0x40;
    Ok(s.to_vec())
}

fn ca_params(cn: &str, window: (i64, i64), serial: Option<Vec<u8>>) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = odt(window.0)?;
    p.not_after = odt(window.1)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.serial_number = serial.map(|s| SerialNumber::from_slice(&s));
    Ok(p)
}

fn leaf_params(cn: &str, window: (i64, i64), serial: Vec<u8>) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.not_before = odt(window.0)?;
    p.not_after = odt(window.1)?;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

const ROOT_CN: &str = SIMULATION_ROOT_CN;
const PLATFORM_CN: &str = "Arca Simulation PCK Platform CA";
const TCB_CN: &str = "Arca Simulation TCB Signing";
const PCK_CN: &str = "Arca Simulation PCK Certificate";

// ── DER for the SGX extension (an exact byte layout, written by hand) ──

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn uint(tag: u8, v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(3);
    let mut c = bytes[start..].to_vec();
    if c[0] & 0x80 != 0 {
        c.insert(0, 0);
    }
    tlv(tag, &c)
}

fn sgx_oid(sub: &[u8]) -> Vec<u8> {
    tlv(0x06, &[crate::pki::SGX_EXTENSION_OID, sub].concat())
}

fn pair(sub: &[u8], value: Vec<u8>) -> Vec<u8> {
    tlv(0x30, &[sgx_oid(sub), value].concat())
}

fn sgx_extension(ppid: [u8; 16]) -> Vec<u8> {
    let mut tcb = Vec::new();
    for (i, svn) in SIM_TCB.iter().enumerate() {
        tcb.extend(pair(&[2, i as u8 + 1], uint(0x02, u32::from(*svn))));
    }
    tcb.extend(pair(&[2, 17], uint(0x02, u32::from(SIM_PCESVN))));
    tcb.extend(pair(&[2, 18], tlv(0x04, &SIM_TCB)));
    let items = [
        pair(&[1], tlv(0x04, &ppid)),
        pair(&[2], tlv(0x30, &tcb)),
        pair(&[3], tlv(0x04, &[0, 0])),
        pair(&[4], tlv(0x04, &SIM_FMSPC)),
        pair(&[5], uint(0x0a, 0)),
    ];
    tlv(0x30, &items.concat())
}

// ── collateral JSON (signed over these exact bytes) ──

fn sgx_components(svn: u8) -> String {
    let one = format!("{{\"svn\":{svn}}}");
    format!("[{}]", vec![one; 16].join(","))
}

fn tcb_info_json(window: (i64, i64)) -> String {
    format!(
        concat!(
            "{{\"id\":\"SGX\",\"version\":3,\"issueDate\":\"{issue}\",\"nextUpdate\":\"{next}\",",
            "\"fmspc\":\"{fmspc}\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":1,\"tcbLevels\":[",
            "{{\"tcb\":{{\"sgxtcbcomponents\":{up},\"pcesvn\":{pcesvn}}},\"tcbDate\":\"{issue}\",\"tcbStatus\":\"UpToDate\"}},",
            "{{\"tcb\":{{\"sgxtcbcomponents\":{old},\"pcesvn\":1}},\"tcbDate\":\"{issue}\",\"tcbStatus\":\"OutOfDate\",",
            "\"advisoryIDs\":[\"ARCA-SIM-0001\"]}}]}}"
        ),
        issue = crate::pki::rfc3339(window.0),
        next = crate::pki::rfc3339(window.1),
        fmspc = hex::encode_upper(SIM_FMSPC),
        up = sgx_components(SIM_TCB[0]),
        pcesvn = SIM_PCESVN,
        old = sgx_components(1),
    )
}

fn qe_identity_json(window: (i64, i64)) -> String {
    format!(
        concat!(
            "{{\"id\":\"QE\",\"version\":2,\"issueDate\":\"{issue}\",\"nextUpdate\":\"{next}\",",
            "\"tcbEvaluationDataNumber\":1,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\",",
            "\"attributes\":\"11000000000000000000000000000000\",\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",",
            "\"mrsigner\":\"{mrsigner}\",\"isvprodid\":{prodid},\"tcbLevels\":[",
            "{{\"tcb\":{{\"isvsvn\":{svn}}},\"tcbDate\":\"{issue}\",\"tcbStatus\":\"UpToDate\"}}]}}"
        ),
        issue = crate::pki::rfc3339(window.0),
        next = crate::pki::rfc3339(window.1),
        mrsigner = hex::encode_upper(sim_qe_mrsigner()),
        prodid = SIM_QE_PRODID,
        svn = SIM_QE_SVN,
    )
}

fn sign_raw(key: &EcdsaKeyPair, msg: &[u8], step: &'static str) -> Result<Vec<u8>, Error> {
    Ok(key
        .sign(&SystemRandom::new(), msg)
        .map_err(|e| Error::crypto(step, e))?
        .as_ref()
        .to_vec())
}

impl SimPki {
    /// Creates a new simulation PKI (fresh keys) valid from one day before `opts.at`.
    pub fn create(opts: SimPkiOptions) -> Result<Self, Error> {
        let window = (opts.at - 86_400, opts.at + opts.validity_days * 86_400);
        let root = Key::generate("generate the simulation root CA key")?;
        let root_params = ca_params(ROOT_CN, window, Some(random_serial()?))?;
        let root_cert = root_params
            .self_signed(&root.rcgen)
            .map_err(|e| Error::crypto("self-sign the simulation root CA", e))?;
        let platform = Key::generate("generate the PCK platform CA key")?;
        let root_issuer = Issuer::new(ca_params(ROOT_CN, window, None)?, &root.rcgen);
        let mut platform_params = ca_params(PLATFORM_CN, window, Some(random_serial()?))?;
        platform_params.use_authority_key_identifier_extension = true;
        let platform_cert = platform_params
            .signed_by(&platform.rcgen, &root_issuer)
            .map_err(|e| Error::crypto("sign the PCK platform CA", e))?;
        let tcb = Key::generate("generate the TCB signing key")?;
        let tcb_cert = leaf_params(TCB_CN, window, random_serial()?)?
            .signed_by(&tcb.rcgen, &root_issuer)
            .map_err(|e| Error::crypto("sign the TCB signing certificate", e))?;
        let pck = Key::generate("generate the PCK key")?;
        let pck_serial = random_serial()?;
        let mut pck_params = leaf_params(PCK_CN, window, pck_serial.clone())?;
        let ppid: [u8; 16] = sha256(&pck_serial)[..16].try_into().unwrap_or_default();
        pck_params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 2, 840, 113741, 1, 13, 1],
                sgx_extension(ppid),
            ));
        let platform_issuer = Issuer::new(ca_params(PLATFORM_CN, window, None)?, &platform.rcgen);
        let pck_cert = pck_params
            .signed_by(&pck.rcgen, &platform_issuer)
            .map_err(|e| Error::crypto("sign the PCK certificate", e))?;
        let qe = Key::generate("generate the QE attestation key")?;
        Self::assemble(
            root_cert.pem(),
            root,
            platform_cert.pem(),
            platform,
            tcb_cert.pem(),
            tcb,
            pck_cert.pem(),
            pck,
            qe,
            window,
            None,
            false,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        root_pem: String,
        root: Key,
        platform_pem: String,
        platform: Key,
        tcb_pem: String,
        tcb: Key,
        pck_pem: String,
        pck: Key,
        qe: Key,
        window: (i64, i64),
        collateral: Option<Collateral>,
        revoke_pck: bool,
    ) -> Result<Self, Error> {
        let pck_der = pem::parse(&pck_pem).map_err(|e| Error::crypto("read the PCK certificate", e))?;
        let pck_serial = crate::pki::parse_cert(pck_der.contents(), "simulation PCK certificate")?
            .raw_serial()
            .to_vec();
        let qe_ring = qe.ring("load the QE attestation key")?;
        let mut pki = SimPki {
            root_pem,
            root,
            platform_pem,
            platform,
            tcb_pem,
            tcb,
            pck_pem,
            pck,
            pck_serial,
            qe,
            qe_ring,
            window,
            collateral: Collateral::from_parts(
                String::new(),
                &[0x30, 0],
                &[0x30, 0],
                String::new(),
                String::new(),
                vec![0; 64],
                String::new(),
                String::new(),
                vec![0; 64],
            )?,
            tail: Vec::new(),
        };
        pki.collateral = match collateral {
            Some(c) => c,
            None => pki.make_collateral(revoke_pck)?,
        };
        pki.tail = pki.make_tail()?;
        Ok(pki)
    }

    fn make_collateral(&self, revoke_pck: bool) -> Result<Collateral, Error> {
        let window = self.window;
        let tcb_key = self.tcb.ring("load the TCB signing key")?;
        let tcb_info = tcb_info_json(window);
        let qe_identity = qe_identity_json(window);
        let tcb_sig = sign_raw(&tcb_key, tcb_info.as_bytes(), "sign the simulation TCB info")?;
        let qe_sig = sign_raw(
            &tcb_key,
            qe_identity.as_bytes(),
            "sign the simulation QE identity",
        )?;
        let crl = |issuer_cn: &str, key: &KeyPair, revoked: Vec<Vec<u8>>| -> Result<Vec<u8>, Error> {
            let params = CertificateRevocationListParams {
                this_update: odt(window.0)?,
                next_update: odt(window.1)?,
                crl_number: SerialNumber::from_slice(&[1]),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .into_iter()
                    .map(|s| {
                        Ok(RevokedCertParams {
                            serial_number: SerialNumber::from_slice(&s),
                            revocation_time: odt(window.0)?,
                            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                            invalidity_date: None,
                        })
                    })
                    .collect::<Result<_, Error>>()?,
                key_identifier_method: KeyIdMethod::Sha256,
            };
            let issuer = Issuer::new(ca_params(issuer_cn, window, None)?, key);
            Ok(params
                .signed_by(&issuer)
                .map_err(|e| Error::crypto("sign a simulation CRL", e))?
                .der()
                .to_vec())
        };
        let root_crl = crl(ROOT_CN, &self.root.rcgen, Vec::new())?;
        let pck_crl = crl(
            PLATFORM_CN,
            &self.platform.rcgen,
            if revoke_pck {
                vec![self.pck_serial.clone()]
            } else {
                Vec::new()
            },
        )?;
        let tcb_chain = format!("{}{}", self.tcb_pem, self.root_pem);
        Collateral::from_parts(
            format!("{}{}", self.platform_pem, self.root_pem),
            &root_crl,
            &pck_crl,
            tcb_chain.clone(),
            tcb_info,
            tcb_sig,
            tcb_chain,
            qe_identity,
            qe_sig,
        )
    }

    /// The QE report signed by the PCK key, auth data and certification data: everything after the
    /// attestation key.
    fn make_tail(&self) -> Result<Vec<u8>, Error> {
        let att_key = &self.qe_ring.public_key().as_ref()[1..];
        let auth: Vec<u8> = (0u8..32).collect();
        let mut qe = [0u8; ReportBody::SIZE];
        qe[0..16].copy_from_slice(&SIM_TCB);
        qe[48] = 0x11;
        qe[64..96].copy_from_slice(&sha256(b"Arca simulation quoting enclave"));
        qe[128..160].copy_from_slice(&sim_qe_mrsigner());
        qe[256..258].copy_from_slice(&SIM_QE_PRODID.to_le_bytes());
        qe[258..260].copy_from_slice(&SIM_QE_SVN.to_le_bytes());
        qe[320..352].copy_from_slice(&(crate::crypto::provider().sha256)(&[att_key, &auth]));
        let pck_key = self.pck.ring("load the PCK key")?;
        let qe_sig = sign_raw(&pck_key, &qe, "sign the simulated QE report")?;
        let chain = format!("{}{}{}", self.pck_pem, self.platform_pem, self.root_pem);
        let mut t = Vec::new();
        t.extend_from_slice(att_key);
        t.extend_from_slice(&qe);
        t.extend_from_slice(&qe_sig);
        t.extend_from_slice(&(auth.len() as u16).to_le_bytes());
        t.extend_from_slice(&auth);
        t.extend_from_slice(&5u16.to_le_bytes());
        t.extend_from_slice(&(chain.len() as u32).to_le_bytes());
        t.extend_from_slice(chain.as_bytes());
        Ok(t)
    }

    /// Signs a DCAP v3 SGX quote over `report` (the caller's REPORT body, taken as is).
    pub fn quote(&self, report: &ReportBody) -> Result<Vec<u8>, Error> {
        let mut q = Vec::with_capacity(48 + ReportBody::SIZE + 4 + 64 + self.tail.len());
        q.extend_from_slice(&3u16.to_le_bytes());
        q.extend_from_slice(&2u16.to_le_bytes());
        q.extend_from_slice(&0u32.to_le_bytes());
        q.extend_from_slice(&SIM_QE_SVN.to_le_bytes());
        q.extend_from_slice(&SIM_PCESVN.to_le_bytes());
        q.extend_from_slice(&INTEL_QE_VENDOR_ID);
        q.extend_from_slice(&sha256(self.root_pem.as_bytes())[..20]);
        q.extend_from_slice(&report.to_bytes());
        let sig = sign_raw(&self.qe_ring, &q, "sign the simulated quote")?;
        q.extend_from_slice(&((64 + self.tail.len()) as u32).to_le_bytes());
        q.extend_from_slice(&sig);
        q.extend_from_slice(&self.tail);
        Ok(q)
    }

    /// The collateral for this platform (TCB info, QE identity, CRLs and their chains).
    pub fn collateral(&self) -> &Collateral {
        &self.collateral
    }

    /// The simulation root as a trust anchor (for `Verifier::with_simulation_root`).
    pub fn root_anchor(&self) -> Result<TrustAnchor, Error> {
        TrustAnchor::from_pem(self.root_pem.as_bytes(), AnchorKind::Simulation)
    }

    /// The simulation root certificate (PEM).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The window (Unix seconds) in which certificates and collateral are valid.
    pub fn validity(&self) -> (i64, i64) {
        self.window
    }

    /// Re-issues the PCK CRL listing this platform's PCK certificate: every quote of this PKI is then refused
    /// as revoked.
    pub fn revoke_pck(&mut self) -> Result<(), Error> {
        self.collateral = self.make_collateral(true)?;
        Ok(())
    }

    /// Writes the PKI to `dir` (created if needed; keys mode 0600).
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let public = [
            (ROOT_CERT, self.root_pem.as_str()),
            (PLATFORM_CERT, &self.platform_pem),
            (TCB_CERT, &self.tcb_pem),
            (PCK_CERT, &self.pck_pem),
        ];
        for (name, text) in public {
            write(&dir.join(name), text.as_bytes(), 0o644)?;
        }
        write(&dir.join(COLLATERAL), self.collateral.to_json().as_bytes(), 0o644)?;
        for (name, key) in [
            (ROOT_KEY, &self.root),
            (PLATFORM_KEY, &self.platform),
            (TCB_KEY, &self.tcb),
            (PCK_KEY, &self.pck),
            (QE_KEY, &self.qe),
        ] {
            write(&dir.join(name), key.pem.as_bytes(), 0o600)?;
        }
        Ok(())
    }

    /// Loads a PKI written by [`SimPki::save`].
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let text = |name: &str| -> Result<String, Error> {
            let p = dir.join(name);
            let bytes = std::fs::read(&p).map_err(|e| Error::io("read", &p, e))?;
            String::from_utf8(bytes)
                .map_err(|e| Error::crypto("read the simulation PKI", format!("{}: {e}", p.display())))
        };
        let key = |name: &str| -> Result<Key, Error> { Key::from_pem(text(name)?, "load a simulation key") };
        let root_pem = text(ROOT_CERT)?;
        let root_der = pem::parse(&root_pem).map_err(|e| Error::crypto("read the simulation root", e))?;
        let root_cert = crate::pki::parse_cert(root_der.contents(), "simulation root CA")?;
        let window = (
            root_cert.validity().not_before.timestamp(),
            root_cert.validity().not_after.timestamp(),
        );
        let collateral = Collateral::load(&dir.join(COLLATERAL))?;
        Self::assemble(
            root_pem,
            key(ROOT_KEY)?,
            text(PLATFORM_CERT)?,
            key(PLATFORM_KEY)?,
            text(TCB_CERT)?,
            key(TCB_KEY)?,
            text(PCK_CERT)?,
            key(PCK_KEY)?,
            key(QE_KEY)?,
            window,
            Some(collateral),
            false,
        )
    }
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io("write", &tmp, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))
}

/// What an engine implements: produce a DCAP quote over given REPORTDATA for the enclave's own identity.
///
/// The identity is fixed when the quoter is made (by measurement on hardware or in the simulation
/// platform service; by the caller for [`SimQuoter`]); the caller chooses only REPORTDATA.
pub trait Quoter: Send + Sync {
    /// A quote whose body carries this quoter's identity and `report_data`.
    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, Error>;
}

/// The in-process simulation quoter: signs with a [`SimPki`] over a REPORT body fixed at construction.
/// It measures nothing: for tests and for the coordinator until the simulation platform service exists.
#[derive(Clone, Debug)]
pub struct SimQuoter {
    pki: Arc<SimPki>,
    identity: ReportBody,
}

impl SimQuoter {
    /// A quoter reporting `identity` (its REPORTDATA is replaced on every quote).
    pub fn new(pki: Arc<SimPki>, identity: ReportBody) -> Self {
        SimQuoter { pki, identity }
    }

    /// The PKI it signs with.
    pub fn pki(&self) -> &Arc<SimPki> {
        &self.pki
    }
}

impl Quoter for SimQuoter {
    fn quote(&self, report_data: &[u8; 64]) -> Result<Vec<u8>, Error> {
        let body = crate::sgx::with_report_data(&self.identity, report_data);
        self.pki.quote(&body)
    }
}
