//! Secrets of the manifest's `Secrets` section: generation (shared values when the manifest is set,
//! per-marble values at each activation), derivation, user-defined values, and how they look over the API.

use arca_protocol::api::{SecretObject, UserSecret};
use arca_protocol::manifest::{CertSpec, SecretSpec, SecretType};
use base64::Engine as _;
use rcgen::PublicKeyData as _;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::crypto::{generate_pkcs8, hkdf_sha256, random_bytes, rcgen_key, KeyAlg};
use crate::pki::{spki_of, Ca};
use crate::Error;

/// A secret's value as stored.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub(crate) enum StoredSecret {
    /// A symmetric key or plain data.
    Bytes {
        #[serde(with = "crate::b64::secret")]
        value: Zeroizing<Vec<u8>>,
    },
    /// A certificate with its private key (absent for a user-defined certificate uploaded without one).
    Cert {
        #[serde(with = "crate::b64::bytes")]
        cert: Vec<u8>,
        #[serde(with = "crate::b64::opt_secret", default)]
        private: Option<Zeroizing<Vec<u8>>>,
    },
    /// A user-defined secret no user has set yet.
    Unset,
    /// A non-shared secret: each marble gets its own at activation.
    PerMarble,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoredSecret::Bytes { .. } => "Bytes(<redacted>)",
            StoredSecret::Cert { .. } => "Cert(<private key redacted>)",
            StoredSecret::Unset => "Unset",
            StoredSecret::PerMarble => "PerMarble",
        })
    }
}

/// The key algorithm of a certificate secret.
pub(crate) fn cert_alg(spec: &SecretSpec) -> KeyAlg {
    match spec.kind {
        SecretType::CertRsa => KeyAlg::Rsa(if spec.size == 0 { 2048 } else { spec.size }),
        SecretType::CertEcdsa if spec.size == 384 => KeyAlg::P384,
        SecretType::CertEcdsa => KeyAlg::P256,
        _ => KeyAlg::Ed25519,
    }
}

/// The value a secret gets when the manifest is set.
pub(crate) fn initial_value(
    spec: &SecretSpec,
    root: &Ca,
    now: OffsetDateTime,
) -> Result<StoredSecret, Error> {
    if spec.user_defined {
        return Ok(StoredSecret::Unset);
    }
    if !spec.shared {
        return Ok(StoredSecret::PerMarble);
    }
    generate(spec, root, now)
}

/// Generates a fresh value of a (generated) secret.
pub(crate) fn generate(spec: &SecretSpec, root: &Ca, now: OffsetDateTime) -> Result<StoredSecret, Error> {
    match spec.kind {
        SecretType::SymmetricKey => Ok(StoredSecret::Bytes {
            value: random_bytes(spec.size as usize / 8)?,
        }),
        SecretType::Plain => Ok(StoredSecret::Unset),
        _ => {
            let (cert, private) = cert_secret(spec, root, now)?;
            Ok(StoredSecret::Cert {
                cert,
                private: Some(private),
            })
        }
    }
}

/// A per-marble symmetric key: HKDF-SHA256(IKM = root secret, salt = UUID ‖ secret name, info = marble type),
/// so a marble that restarts with the same UUID gets the same key.
pub(crate) fn derive_symmetric(
    root_secret: &[u8],
    uuid: &str,
    secret_name: &str,
    marble_type: &str,
    bits: u32,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let salt = [uuid.as_bytes(), secret_name.as_bytes()].concat();
    hkdf_sha256(root_secret, &salt, marble_type.as_bytes(), bits as usize / 8)
}

/// `.MarbleRun.SealKey`: 32 bytes per marble type, HKDF-SHA256(root secret, salt "arca-seal-key", info = type).
pub(crate) fn seal_key(root_secret: &[u8], marble_type: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    hkdf_sha256(root_secret, b"arca-seal-key", marble_type.as_bytes(), 32)
}

fn go_key_usages(bits: u32) -> Vec<KeyUsagePurpose> {
    let all = [
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DataEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::EncipherOnly,
        KeyUsagePurpose::DecipherOnly,
    ];
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, k)| k)
        .collect()
}

fn go_ext_key_usage(v: u8) -> ExtendedKeyUsagePurpose {
    match v {
        0 => ExtendedKeyUsagePurpose::Any,
        1 => ExtendedKeyUsagePurpose::ServerAuth,
        2 => ExtendedKeyUsagePurpose::ClientAuth,
        3 => ExtendedKeyUsagePurpose::CodeSigning,
        4 => ExtendedKeyUsagePurpose::EmailProtection,
        5 => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
        6 => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6]),
        7 => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7]),
        8 => ExtendedKeyUsagePurpose::TimeStamping,
        9 => ExtendedKeyUsagePurpose::OcspSigning,
        10 => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3]),
        11 => ExtendedKeyUsagePurpose::Other(vec![2, 16, 840, 1, 113730, 4, 1]),
        12 => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 2, 1, 22]),
        _ => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 61, 1, 1]),
    }
}

fn cert_params(
    c: &CertSpec,
    valid_for: Option<u64>,
    now: OffsetDateTime,
) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    let s = &c.subject;
    let dn = &mut p.distinguished_name;
    for v in &s.country {
        dn.push(DnType::CountryName, v.as_str());
    }
    for v in &s.organization {
        dn.push(DnType::OrganizationName, v.as_str());
    }
    for v in &s.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, v.as_str());
    }
    for v in &s.locality {
        dn.push(DnType::LocalityName, v.as_str());
    }
    for v in &s.province {
        dn.push(DnType::StateOrProvinceName, v.as_str());
    }
    for v in &s.street_address {
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 9]), v.as_str());
    }
    for v in &s.postal_code {
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 17]), v.as_str());
    }
    if !s.serial_number.is_empty() {
        dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), s.serial_number.as_str());
    }
    if !s.common_name.is_empty() {
        dn.push(DnType::CommonName, s.common_name.as_str());
    }
    let bad = |what: &str, v: &str| Error::BadRequest(format!("certificate {what} {v:?} is not valid"));
    for d in &c.dns_names {
        p.subject_alt_names.push(SanType::DnsName(
            d.as_str().try_into().map_err(|_| bad("DNS name", d))?,
        ));
    }
    for ip in &c.ip_addresses {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    for e in &c.email_addresses {
        p.subject_alt_names.push(SanType::Rfc822Name(
            e.as_str().try_into().map_err(|_| bad("e-mail", e))?,
        ));
    }
    for u in &c.uris {
        p.subject_alt_names
            .push(SanType::URI(u.as_str().try_into().map_err(|_| bad("URI", u))?));
    }
    p.key_usages = if c.key_usage == 0 {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    } else {
        go_key_usages(c.key_usage)
    };
    p.extended_key_usages = if c.ext_key_usage.is_empty() {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        c.ext_key_usage.iter().map(|v| go_ext_key_usage(*v)).collect()
    };
    if c.is_ca {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    p.not_before = now - Duration::minutes(5);
    p.not_after = match (c.not_after, valid_for) {
        (Some(t), _) => t,
        (None, Some(days)) => {
            now + Duration::days(i64::try_from(days).unwrap_or(i64::MAX / 86_400_000).min(36_500))
        }
        (None, None) => now + Duration::days(365),
    };
    p.use_authority_key_identifier_extension = true;
    let mut serial = random_bytes(16)?.to_vec();
    serial[0] = (serial[0] & 0x7f) | 1;
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    Ok(p)
}

/// Generates a key of the secret's type and a certificate for it issued by the root CA.
pub(crate) fn cert_secret(
    spec: &SecretSpec,
    root: &Ca,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), Error> {
    let alg = cert_alg(spec);
    let pkcs8 = generate_pkcs8(alg)?;
    let key = rcgen_key(alg, &pkcs8)?;
    let cert = root.issue(&cert_params(&spec.cert, spec.valid_for_days, now)?, &key)?;
    Ok((cert, pkcs8))
}

/// A secret as `GET /api/v2/secrets` returns it (MarbleRun's shape).
pub(crate) fn to_object(spec: &SecretSpec, value: &StoredSecret) -> SecretObject {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut o = SecretObject {
        r#type: spec.kind.as_str().into(),
        size: spec.size,
        shared: spec.shared,
        user_defined: spec.user_defined,
        valid_for: spec.valid_for_days.unwrap_or(0),
        ..SecretObject::default()
    };
    match value {
        StoredSecret::Bytes { value } => {
            o.private = Some(b64(value));
            o.public = Some(b64(value));
        }
        StoredSecret::Cert { cert, private } => {
            o.cert = Some(b64(cert));
            o.public = spki_of(cert).map(|k| b64(&k));
            o.private = private.as_ref().map(|k| b64(k));
        }
        StoredSecret::Unset | StoredSecret::PerMarble => {}
    }
    o
}

/// Checks and converts a user's upload for a user-defined secret.
pub(crate) fn from_user(name: &str, spec: &SecretSpec, s: &UserSecret) -> Result<StoredSecret, Error> {
    let b64 = |what: &str, v: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_bytes())
            .map_err(|e| Error::BadRequest(format!("secret {name:?}: {what} is not base64: {e}")))
    };
    if !spec.user_defined {
        return Err(Error::Forbidden(format!(
            "secret {name:?} is generated by the coordinator, not user-defined"
        )));
    }
    match spec.kind {
        SecretType::SymmetricKey | SecretType::Plain => {
            if s.cert.is_some() || s.private.is_some() {
                return Err(Error::BadRequest(format!(
                    "secret {name:?} is a {}: give Key only",
                    spec.kind.as_str()
                )));
            }
            let key = s
                .key
                .as_deref()
                .ok_or_else(|| Error::BadRequest(format!("secret {name:?}: Key is missing")))?;
            let value = Zeroizing::new(b64("Key", key)?);
            if spec.kind == SecretType::SymmetricKey
                && spec.size != 0
                && value.len() * 8 != spec.size as usize
            {
                return Err(Error::BadRequest(format!(
                    "secret {name:?}: the manifest wants {} bits, the key has {}",
                    spec.size,
                    value.len() * 8
                )));
            }
            Ok(StoredSecret::Bytes { value })
        }
        _ => {
            if s.key.is_some() {
                return Err(Error::BadRequest(format!(
                    "secret {name:?} is a certificate: give Cert (and Private)"
                )));
            }
            let cert = b64(
                "Cert",
                s.cert
                    .as_deref()
                    .ok_or_else(|| Error::BadRequest(format!("secret {name:?}: Cert is missing")))?,
            )?;
            let (_, parsed) = x509_parser::parse_x509_certificate(&cert).map_err(|e| {
                Error::BadRequest(format!("secret {name:?}: Cert is not an X.509 certificate: {e}"))
            })?;
            let private = s
                .private
                .as_deref()
                .map(|p| b64("Private", p).map(Zeroizing::new))
                .transpose()?;
            if let Some(p) = &private {
                let alg = cert_alg(spec);
                let key = rcgen_key(alg, p).map_err(|_| {
                    Error::BadRequest(format!(
                        "secret {name:?}: Private is not a PKCS#8 {} key",
                        spec.kind.as_str()
                    ))
                })?;
                if key.subject_public_key_info() != parsed.public_key().raw {
                    return Err(Error::BadRequest(format!(
                        "secret {name:?}: Private does not match Cert's public key"
                    )));
                }
            }
            Ok(StoredSecret::Cert { cert, private })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SecretType, size: u32) -> SecretSpec {
        SecretSpec {
            kind,
            size,
            shared: true,
            user_defined: false,
            valid_for_days: Some(7),
            cert: CertSpec::default(),
        }
    }

    #[test]
    fn per_marble_keys_depend_on_uuid_name_and_type_and_are_stable() {
        let rs = [9u8; 32];
        let a = derive_symmetric(&rs, "u1", "k", "m", 256).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(a, derive_symmetric(&rs, "u1", "k", "m", 256).unwrap());
        assert_ne!(a, derive_symmetric(&rs, "u2", "k", "m", 256).unwrap());
        assert_ne!(a, derive_symmetric(&rs, "u1", "j", "m", 256).unwrap());
        assert_ne!(a, derive_symmetric(&rs, "u1", "k", "n", 256).unwrap());
        // The construction is HKDF-SHA256(root secret, salt = uuid ‖ name, info = marble type).
        assert_eq!(a, hkdf_sha256(&rs, b"u1k", b"m", 32).unwrap());
    }

    #[test]
    fn certificate_secrets_of_every_type_are_issued_by_the_root() {
        let now = OffsetDateTime::now_utc();
        let root = Ca::new_root(now).unwrap();
        let (_, rc) = x509_parser::parse_x509_certificate(&root.cert_der).unwrap();
        for s in [
            spec(SecretType::CertEcdsa, 256),
            spec(SecretType::CertEcdsa, 384),
            spec(SecretType::CertEd25519, 0),
            spec(SecretType::CertRsa, 2048),
        ] {
            let StoredSecret::Cert { cert, private } = generate(&s, &root, now).unwrap() else {
                panic!()
            };
            let (_, c) = x509_parser::parse_x509_certificate(&cert).unwrap();
            c.verify_signature(Some(rc.public_key())).unwrap();
            assert!(private.is_some());
            let days = (c.validity().not_after.timestamp() - now.unix_timestamp()) / 86_400;
            assert_eq!(days, 7);
        }
    }

    #[test]
    fn user_uploads_are_checked_against_the_manifest() {
        let mut s = spec(SecretType::SymmetricKey, 128);
        s.user_defined = true;
        let ok = UserSecret {
            key: Some(base64::engine::general_purpose::STANDARD.encode([1u8; 16])),
            ..Default::default()
        };
        assert!(from_user("k", &s, &ok).is_ok());
        let short = UserSecret {
            key: Some(base64::engine::general_purpose::STANDARD.encode([1u8; 8])),
            ..Default::default()
        };
        assert!(from_user("k", &s, &short)
            .unwrap_err()
            .to_string()
            .contains("128 bits"));
        s.user_defined = false;
        assert!(matches!(from_user("k", &s, &ok), Err(Error::Forbidden(_))));
    }
}
