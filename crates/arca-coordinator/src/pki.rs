//! The mesh PKI: a long-lived root CA (ECDSA P-384), an intermediate CA (P-256, rotated on every update)
//! that issues marble certificates, and the certificates of `cert-*` secrets (issued by the root).

use std::net::IpAddr;

use rcgen::PublicKeyData as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::crypto::{generate_pkcs8, random_bytes, rcgen_key, KeyAlg, RootSigner};
use crate::Error;

/// Subject common name of the root CA.
pub const ROOT_CN: &str = "Arca Coordinator Root CA";
/// Subject common name of the intermediate CA.
pub const INTERMEDIATE_CN: &str = "Arca Coordinator Intermediate CA";
/// Subject organisation of marble certificates; their OU is the marble type, their CN the UUID.
pub const MARBLE_O: &str = "Arca Marble";

const CA_LIFETIME_DAYS: i64 = 3650;
const MARBLE_LIFETIME_DAYS: i64 = 365;

fn pki_err(step: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Crypto {
        step,
        detail: e.to_string(),
    }
}

/// A random positive 128-bit serial number.
fn serial() -> Result<SerialNumber, Error> {
    let mut b = random_bytes(16)?.to_vec();
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Ok(SerialNumber::from_slice(&b))
}

fn name(cn: &str, o: Option<&str>, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = o {
        dn.push(DnType::OrganizationName, o);
    }
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// Subject alternative names from strings: IP addresses where they parse, DNS names otherwise.
pub(crate) fn sans(names: &[String]) -> Result<Vec<SanType>, Error> {
    names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .as_str()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| Error::BadRequest(format!("{n:?} is not a DNS name or IP address"))),
        })
        .collect()
}

/// A CA as stored (inside the sealed state).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredCa {
    alg: KeyAlg,
    #[serde(with = "crate::b64::secret")]
    key: Zeroizing<Vec<u8>>,
    #[serde(with = "crate::b64::bytes")]
    cert: Vec<u8>,
}

/// A CA ready to issue.
pub(crate) struct Ca {
    pub(crate) alg: KeyAlg,
    key_pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) cert_der: Vec<u8>,
    issuer: rcgen::Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed root CA (P-384).
    pub(crate) fn new_root(now: OffsetDateTime) -> Result<Ca, Error> {
        let pkcs8 = generate_pkcs8(KeyAlg::P384)?;
        let key = rcgen_key(KeyAlg::P384, &pkcs8)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = name(ROOT_CN, Some("Arca"), None);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(CA_LIFETIME_DAYS);
        p.serial_number = Some(serial()?);
        let cert = p
            .self_signed(&key)
            .map_err(pki_err("creating the root certificate"))?;
        Ca::assemble(KeyAlg::P384, pkcs8, cert.der().to_vec())
    }

    /// A new intermediate CA (P-256) signed by `root`.
    pub(crate) fn new_intermediate(root: &Ca, now: OffsetDateTime) -> Result<Ca, Error> {
        let pkcs8 = generate_pkcs8(KeyAlg::P256)?;
        let key = rcgen_key(KeyAlg::P256, &pkcs8)?;
        let mut p = CertificateParams::default();
        p.distinguished_name = name(INTERMEDIATE_CN, Some("Arca"), None);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = now - Duration::minutes(5);
        p.not_after = now + Duration::days(CA_LIFETIME_DAYS);
        p.serial_number = Some(serial()?);
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .signed_by(&key, &root.issuer)
            .map_err(pki_err("creating the intermediate certificate"))?;
        Ca::assemble(KeyAlg::P256, pkcs8, cert.der().to_vec())
    }

    fn assemble(alg: KeyAlg, key_pkcs8: Zeroizing<Vec<u8>>, cert_der: Vec<u8>) -> Result<Ca, Error> {
        let key = rcgen_key(alg, &key_pkcs8)?;
        let issuer = rcgen::Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(pki_err("loading a CA certificate"))?;
        Ok(Ca {
            alg,
            key_pkcs8,
            cert_der,
            issuer,
        })
    }

    pub(crate) fn from_stored(s: &StoredCa) -> Result<Ca, Error> {
        Ca::assemble(s.alg, s.key.clone(), s.cert.clone())
    }

    pub(crate) fn to_stored(&self) -> StoredCa {
        StoredCa {
            alg: self.alg,
            key: self.key_pkcs8.clone(),
            cert: self.cert_der.clone(),
        }
    }

    /// The root key as a signer (manifests, audit heads, signed quotes). Only meaningful for the root.
    pub(crate) fn root_signer(&self) -> Result<RootSigner, Error> {
        RootSigner::from_pkcs8(&self.key_pkcs8)
    }

    /// The certificate's SubjectPublicKeyInfo DER.
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        spki_of(&self.cert_der).unwrap_or_default()
    }

    /// Issues a certificate for `subject_key` with `params`.
    pub(crate) fn issue(&self, params: &CertificateParams, subject_key: &KeyPair) -> Result<Vec<u8>, Error> {
        Ok(params
            .signed_by(subject_key, &self.issuer)
            .map_err(pki_err("issuing a certificate"))?
            .der()
            .to_vec())
    }
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub(crate) fn spki_of(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (_, c) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(c.public_key().raw.to_vec())
}

/// A freshly issued marble certificate with its key.
pub(crate) struct MarbleCert {
    pub(crate) cert_der: Vec<u8>,
    pub(crate) key_pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) public_der: Vec<u8>,
}

/// Issues a marble certificate: a fresh P-256 key, CN = UUID, OU = marble type, the requested names
/// (plus `localhost`), usable for TLS servers and clients.
pub(crate) fn issue_marble_cert(
    intermediate: &Ca,
    uuid: &str,
    marble_type: &str,
    dns_names: &[String],
    now: OffsetDateTime,
) -> Result<MarbleCert, Error> {
    let key_pkcs8 = generate_pkcs8(KeyAlg::P256)?;
    let key = rcgen_key(KeyAlg::P256, &key_pkcs8)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = name(uuid, Some(MARBLE_O), Some(marble_type));
    let mut names: Vec<String> = dns_names.to_vec();
    if !names.iter().any(|n| n == "localhost") {
        names.push("localhost".into());
    }
    p.subject_alt_names = sans(&names)?;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(MARBLE_LIFETIME_DAYS);
    p.serial_number = Some(serial()?);
    p.use_authority_key_identifier_extension = true;
    let cert_der = intermediate.issue(&p, &key)?;
    Ok(MarbleCert {
        public_der: key.subject_public_key_info(),
        cert_der,
        key_pkcs8,
    })
}

/// The parameters of a coordinator API server certificate: `subject` CN, `names` as SANs, `extra`
/// extensions (the RA-TLS evidence binding its key to the coordinator's quote), valid `lifetime` from now.
fn server_cert_params(
    subject: &str,
    names: &[String],
    extra: Vec<rcgen::CustomExtension>,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(subject, Some("Arca"), None);
    p.subject_alt_names = sans(names)?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + lifetime;
    p.serial_number = Some(serial()?);
    p.custom_extensions = extra;
    Ok(p)
}

/// Issues a TLS server certificate for the coordinator's APIs, signed by the intermediate CA, carrying
/// `extra` extensions (the RA-TLS evidence binding its key to the coordinator's quote).
pub(crate) fn issue_server_cert(
    intermediate: &Ca,
    key: &KeyPair,
    names: &[String],
    extra: Vec<rcgen::CustomExtension>,
    now: OffsetDateTime,
) -> Result<Vec<u8>, Error> {
    let mut p = server_cert_params(
        "Arca Coordinator",
        names,
        extra,
        now,
        Duration::days(MARBLE_LIFETIME_DAYS),
    )?;
    p.use_authority_key_identifier_extension = true;
    intermediate.issue(&p, key)
}

/// A self-signed server certificate (recovery mode: no CA key is available), valid one day.
pub(crate) fn self_issued_server_cert(
    key: &KeyPair,
    names: &[String],
    extra: Vec<rcgen::CustomExtension>,
    now: OffsetDateTime,
) -> Result<Vec<u8>, Error> {
    let p = server_cert_params(
        "Arca Coordinator (recovery mode)",
        names,
        extra,
        now,
        Duration::days(1),
    )?;
    let cert = p
        .self_signed(key)
        .map_err(pki_err("self-issuing the recovery-mode server certificate"))?;
    Ok(cert.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marble_certificates_chain_to_the_intermediate_and_the_root() {
        let now = OffsetDateTime::now_utc();
        let root = Ca::new_root(now).unwrap();
        let inter = Ca::new_intermediate(&root, now).unwrap();
        let m = issue_marble_cert(
            &inter,
            "uuid-1",
            "backend",
            &["svc.local".into(), "10.0.0.1".into()],
            now,
        )
        .unwrap();
        let (_, rc) = x509_parser::parse_x509_certificate(&root.cert_der).unwrap();
        let (_, ic) = x509_parser::parse_x509_certificate(&inter.cert_der).unwrap();
        let (_, mc) = x509_parser::parse_x509_certificate(&m.cert_der).unwrap();
        ic.verify_signature(Some(rc.public_key())).unwrap();
        mc.verify_signature(Some(ic.public_key())).unwrap();
        assert!(mc.verify_signature(Some(rc.public_key())).is_err());
        assert_eq!(
            mc.subject().iter_common_name().next().unwrap().as_str().unwrap(),
            "uuid-1"
        );
        assert_eq!(
            mc.subject()
                .iter_organizational_unit()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "backend"
        );
        let san = mc.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 3);
    }

    #[test]
    fn a_stored_ca_issues_the_same_way_after_reloading() {
        let now = OffsetDateTime::now_utc();
        let root = Ca::new_root(now).unwrap();
        let stored = serde_json::to_string(&root.to_stored()).unwrap();
        let back = Ca::from_stored(&serde_json::from_str(&stored).unwrap()).unwrap();
        assert_eq!(back.cert_der, root.cert_der);
        let inter = Ca::new_intermediate(&back, now).unwrap();
        let (_, rc) = x509_parser::parse_x509_certificate(&root.cert_der).unwrap();
        let (_, ic) = x509_parser::parse_x509_certificate(&inter.cert_der).unwrap();
        ic.verify_signature(Some(rc.public_key())).unwrap();
    }
}
