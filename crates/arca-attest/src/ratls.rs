//! RA-TLS: X.509 certificates that carry attestation evidence bound to their key, and rustls verifiers that
//! accept a peer only when its evidence verifies under a [`Policy`].
//!
//! Formats understood (OIDs and bindings as documented in ARCHITECTURE.md):
//! - **TCG DICE** (2.23.133.5.4.9, what Arca writes): CBOR tag 60000 wrapping `[quote, claims]`; the claims
//!   map's `"pubkey-hash"` holds CBOR `[1 (SHA-256), SHA-256(SubjectPublicKeyInfo DER)]`; the quote's
//!   REPORTDATA[0..32] = SHA-256(claims bytes).
//! - **Gramine legacy** (an OID whose DER is mis-encoded; it decodes as 0.6.9.42.840.113741.1337.6): the raw
//!   quote with REPORTDATA[0..32] = SHA-256(SPKI DER).
//! - **Intel SGX SDK ≥ 2.22**: the DICE extension plus the quote again under 1.2.840.113741.1.13.1.
//! - **Open Enclave / EGo** (1.3.6.1.4.1.311.105.1; older 1.2.840.113556.10.1.1): a 16-byte header
//!   `{u32 version 1, u32 type 2, u64 size}` then the quote, REPORTDATA[0..32] = SHA-256(SPKI DER).
//!
//! A certificate whose every evidence is bound to its key, and whose quote verifies, is accepted; the TLS
//! handshake itself proves possession of that key. Names in the certificate are not checked: the identity
//! is the attested one.

use std::sync::Arc;

use ciborium::value::Value;
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair, PublicKeyData};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName as TlsName, SignatureScheme};
use zeroize::Zeroizing;

use crate::collateral::Collateral;
use crate::crypto::sha256;
use crate::error::Error;
use crate::policy::{Policy, Verdict};
use crate::sim::Quoter;
use crate::verify::{Evidence, Verifier};

/// DER content of 2.23.133.5.4.9 (TCG DICE tagged evidence).
const OID_DICE: &[u8] = &[0x67, 0x81, 0x05, 0x05, 0x04, 0x09];
/// DER content of Gramine's legacy OID exactly as Gramine writes it (mis-encoded).
const OID_GRAMINE_LEGACY: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x8a, 0x39, 0x06];
/// DER content of 1.2.840.113741.1.13.1 (Intel SGX SDK's copy of the quote).
const OID_INTEL_SDK: &[u8] = crate::pki::SGX_EXTENSION_OID;
/// DER content of 1.3.6.1.4.1.311.105.1 (Open Enclave / EGo).
const OID_OE: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x69, 0x01];
/// DER content of 1.2.840.113556.10.1.1 (older Open Enclave).
const OID_OE_OLD: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x14, 0x0a, 0x01, 0x01];
/// CBOR tag of TCG DICE tagged evidence.
const CBOR_TAG_EVIDENCE: u64 = 60000;

/// The evidence formats an RA-TLS certificate can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaTlsFormat {
    /// TCG DICE tagged evidence (Arca, Gramine ≥ 1.8, Intel SGX SDK ≥ 2.22, rats-tls).
    TcgDice,
    /// Gramine's legacy extension (raw quote, REPORTDATA = SHA-256(SPKI)).
    GramineLegacy,
    /// Intel SGX SDK's copy of the DICE quote (REPORTDATA = SHA-256(claims)).
    IntelSgxSdk,
    /// Open Enclave / EGo (16-byte header + quote, REPORTDATA = SHA-256(SPKI)).
    OpenEnclave,
}

/// One piece of evidence found in a certificate, with its key binding checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaTlsEvidence {
    /// Where it was found.
    pub format: RaTlsFormat,
    /// The quote.
    pub quote: Vec<u8>,
    /// The DICE claims bytes, if any.
    pub claims: Option<Vec<u8>>,
}

/// Everything an RA-TLS certificate carries, with every binding checked.
#[derive(Clone, Debug)]
pub struct RaTlsCertificate {
    /// SHA-256 of the certificate's SubjectPublicKeyInfo DER.
    pub spki_sha256: [u8; 32],
    /// notBefore / notAfter (Unix seconds).
    pub validity: (i64, i64),
    /// Evidence found, each bound to the certificate key (directly or through the DICE claims).
    pub evidence: Vec<RaTlsEvidence>,
}

impl RaTlsCertificate {
    /// Parses a certificate, extracts its evidence and checks that each is bound to the certificate's key.
    /// A certificate without evidence, or with evidence not bound to its key, is an error.
    pub fn parse(cert_der: &[u8]) -> Result<Self, Error> {
        let cert = crate::pki::parse_cert(cert_der, "RA-TLS certificate")?;
        let spki = cert.public_key().raw;
        let spki_sha256 = sha256(spki);
        let mut evidence = Vec::new();
        let mut dice_claims_hash = None;
        for ext in cert.extensions() {
            let oid = ext.oid.as_bytes();
            if oid == OID_DICE {
                let (quote, claims) = parse_dice(ext.value)?;
                check_pubkey_hash(&claims, spki)?;
                let claims_hash = sha256(&claims);
                check_report_data(&quote, &claims_hash, "TCG DICE quote", "SHA-256 of the claims")?;
                dice_claims_hash = Some(claims_hash);
                evidence.push(RaTlsEvidence {
                    format: RaTlsFormat::TcgDice,
                    quote,
                    claims: Some(claims),
                });
            }
        }
        for ext in cert.extensions() {
            let oid = ext.oid.as_bytes();
            let (format, quote) = if oid == OID_GRAMINE_LEGACY {
                (RaTlsFormat::GramineLegacy, ext.value.to_vec())
            } else if oid == OID_INTEL_SDK {
                (RaTlsFormat::IntelSgxSdk, ext.value.to_vec())
            } else if oid == OID_OE || oid == OID_OE_OLD {
                (RaTlsFormat::OpenEnclave, strip_oe_header(ext.value)?)
            } else {
                continue;
            };
            match format {
                RaTlsFormat::IntelSgxSdk => {
                    let hash = dice_claims_hash.ok_or_else(|| {
                        Error::RaTls(
                            "the Intel SGX SDK quote extension comes without the DICE claims it is bound to"
                                .into(),
                        )
                    })?;
                    check_report_data(&quote, &hash, "Intel SGX SDK quote", "SHA-256 of the DICE claims")?;
                }
                _ => check_report_data(
                    &quote,
                    &spki_sha256,
                    "quote",
                    "SHA-256 of the certificate's public key",
                )?,
            }
            evidence.push(RaTlsEvidence {
                format,
                quote,
                claims: None,
            });
        }
        if evidence.is_empty() {
            return Err(Error::RaTls(
                "the certificate carries no attestation evidence (not an RA-TLS certificate)".into(),
            ));
        }
        let validity = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        Ok(RaTlsCertificate {
            spki_sha256,
            validity,
            evidence,
        })
    }

    /// The quote to verify: the DICE one if present, else the first found.
    pub fn quote(&self) -> &[u8] {
        self.evidence
            .iter()
            .find(|e| e.format == RaTlsFormat::TcgDice)
            .unwrap_or(&self.evidence[0])
            .quote
            .as_slice()
    }
}

fn strip_oe_header(v: &[u8]) -> Result<Vec<u8>, Error> {
    let mut r = crate::reader::Reader::new(v, "Open Enclave evidence");
    let version = r.u32("version")?;
    let kind = r.u32("type")?;
    let size = u64::from_le_bytes(r.array("size")?);
    if version != 1 || kind != 2 {
        return Err(Error::RaTls(format!(
            "Open Enclave evidence header version {version} type {kind} (expected 1, 2)"
        )));
    }
    let rest = r.rest();
    if size != rest.len() as u64 {
        return Err(Error::RaTls(format!(
            "Open Enclave evidence says {size} bytes of quote, {} present",
            rest.len()
        )));
    }
    Ok(rest.to_vec())
}

fn parse_dice(value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let bad = |r: &str| Error::RaTls(format!("TCG DICE evidence: {r}"));
    let v: Value = ciborium::from_reader(value).map_err(|e| bad(&format!("not CBOR: {e}")))?;
    let Value::Tag(CBOR_TAG_EVIDENCE, inner) = v else {
        return Err(bad("not CBOR tag 60000"));
    };
    let Value::Array(items) = *inner else {
        return Err(bad("tag 60000 does not wrap an array"));
    };
    match <[Value; 2]>::try_from(items) {
        Ok([Value::Bytes(quote), Value::Bytes(claims)]) => Ok((quote, claims)),
        _ => Err(bad("expected [quote (bytes), claims (bytes)]")),
    }
}

fn check_pubkey_hash(claims: &[u8], spki: &[u8]) -> Result<(), Error> {
    let bad = |r: String| Error::RaTls(format!("key not bound: {r}"));
    let map: Value = ciborium::from_reader(claims).map_err(|e| bad(format!("claims are not CBOR: {e}")))?;
    let Value::Map(entries) = map else {
        return Err(bad("claims are not a CBOR map".into()));
    };
    let hash = entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == "pubkey-hash"))
        .map(|(_, v)| v)
        .ok_or_else(|| bad("the claims have no pubkey-hash".into()))?;
    let Value::Bytes(hash) = hash else {
        return Err(bad("pubkey-hash is not a byte string".into()));
    };
    let inner: Value =
        ciborium::from_reader(hash.as_slice()).map_err(|e| bad(format!("pubkey-hash is not CBOR: {e}")))?;
    let Value::Array(pair) = inner else {
        return Err(bad("pubkey-hash is not [alg, hash]".into()));
    };
    let (alg, digest) = match pair.as_slice() {
        [Value::Integer(alg), Value::Bytes(d)] => (i128::from(*alg), d),
        _ => return Err(bad("pubkey-hash is not [alg, hash]".into())),
    };
    let expected: Vec<u8> = match alg {
        1 => sha256(spki).to_vec(),
        7 => ring::digest::digest(&ring::digest::SHA384, spki)
            .as_ref()
            .to_vec(),
        8 => ring::digest::digest(&ring::digest::SHA512, spki)
            .as_ref()
            .to_vec(),
        other => return Err(bad(format!("unsupported pubkey-hash algorithm {other}"))),
    };
    if digest.as_slice() != expected.as_slice() {
        return Err(bad(
            "the pubkey-hash claim is not the hash of this certificate's public key".into(),
        ));
    }
    Ok(())
}

fn check_report_data(quote: &[u8], expected: &[u8; 32], what: &str, of: &str) -> Result<(), Error> {
    let q = crate::quote::Quote::parse(quote)?;
    if q.body.report_data()[..32] != expected[..] {
        return Err(Error::RaTls(format!(
            "key not bound: the {what}'s REPORTDATA is not the {of}"
        )));
    }
    Ok(())
}

/// Options for a new RA-TLS certificate.
#[derive(Clone, Debug)]
pub struct RaTlsOptions {
    /// Subject common name.
    pub common_name: String,
    /// DNS names / IP addresses for subjectAltName.
    pub subject_alt_names: Vec<String>,
    /// notBefore (Unix seconds).
    pub not_before: i64,
    /// notAfter (Unix seconds).
    pub not_after: i64,
    /// Also write Gramine's legacy extension (a second quote over SHA-256 of the key).
    pub gramine_legacy: bool,
}

impl RaTlsOptions {
    /// A certificate valid from one hour before `at` for `days` days.
    pub fn valid_at(common_name: &str, at: i64, days: i64) -> Self {
        RaTlsOptions {
            common_name: common_name.to_string(),
            subject_alt_names: Vec::new(),
            not_before: at - 3600,
            not_after: at + days * 86_400,
            gramine_legacy: false,
        }
    }
}

/// A fresh key pair and its RA-TLS certificate.
pub struct RaTlsIdentity {
    cert_der: Vec<u8>,
    key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RaTlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaTlsIdentity")
            .field("cert_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// Encodes the DICE claims map `{"pubkey-hash": bstr([1, SHA-256(spki)])}`.
fn dice_claims(spki: &[u8]) -> Result<Vec<u8>, Error> {
    let hash = cbor(&Value::Array(vec![
        Value::Integer(1.into()),
        Value::Bytes(sha256(spki).to_vec()),
    ]))?;
    cbor(&Value::Map(vec![(
        Value::Text("pubkey-hash".into()),
        Value::Bytes(hash),
    )]))
}

fn cbor(v: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| Error::crypto("encode CBOR", e))?;
    Ok(out)
}

fn report_data(hash: [u8; 32]) -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[..32].copy_from_slice(&hash);
    rd
}

/// The TCG DICE evidence extension (OID 2.23.133.5.4.9) binding the key whose SubjectPublicKeyInfo DER is
/// `spki` to a fresh quote from `quoter`, for certificates issued by a CA rather than self-signed (the
/// coordinator's API certificate). Returns the rcgen extension, ready to add to `CertificateParams`.
pub fn dice_evidence_extension(quoter: &dyn Quoter, spki: &[u8]) -> Result<CustomExtension, Error> {
    let claims = dice_claims(spki)?;
    let quote = quoter.quote(&report_data(sha256(&claims)))?;
    let evidence = cbor(&Value::Tag(
        CBOR_TAG_EVIDENCE,
        Box::new(Value::Array(vec![Value::Bytes(quote), Value::Bytes(claims)])),
    ))?;
    Ok(CustomExtension::from_oid_content(
        &[2, 23, 133, 5, 4, 9],
        evidence,
    ))
}

impl RaTlsIdentity {
    /// Makes a P-256 key pair and a self-signed certificate carrying a quote from `quoter` bound to it.
    pub fn create(quoter: &dyn Quoter, opts: &RaTlsOptions) -> Result<Self, Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Error::crypto("generate the RA-TLS key", e))?;
        let spki = key.subject_public_key_info();
        let claims = dice_claims(&spki)?;
        let quote = quoter.quote(&report_data(sha256(&claims)))?;
        let evidence = cbor(&Value::Tag(
            CBOR_TAG_EVIDENCE,
            Box::new(Value::Array(vec![Value::Bytes(quote), Value::Bytes(claims)])),
        ))?;
        let mut params = CertificateParams::new(opts.subject_alt_names.clone())
            .map_err(|e| Error::crypto("set the RA-TLS subject names", e))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, opts.common_name.as_str());
        params.distinguished_name = dn;
        params.not_before = time::OffsetDateTime::from_unix_timestamp(opts.not_before)
            .map_err(|e| Error::crypto("set notBefore", e))?;
        params.not_after = time::OffsetDateTime::from_unix_timestamp(opts.not_after)
            .map_err(|e| Error::crypto("set notAfter", e))?;
        params.custom_extensions.push(CustomExtension::from_oid_content(
            &[2, 23, 133, 5, 4, 9],
            evidence,
        ));
        if opts.gramine_legacy {
            let legacy = quoter.quote(&report_data(sha256(&spki)))?;
            // Components chosen so that the encoding is byte-identical to Gramine's mis-encoded OID.
            params.custom_extensions.push(CustomExtension::from_oid_content(
                &[0, 6, 9, 42, 840, 113741, 1337, 6],
                legacy,
            ));
        }
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::crypto("self-sign the RA-TLS certificate", e))?;
        Ok(RaTlsIdentity {
            cert_der: cert.der().to_vec(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        })
    }

    /// The certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate chain and private key in rustls' types.
    pub fn rustls_parts(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![CertificateDer::from(self.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.to_vec())),
        )
    }
}

/// Where RA-TLS verification gets collateral for a peer's quote.
pub trait CollateralSource: Send + Sync {
    /// Collateral for the platform that produced `quote`, or `None` (the TCB status is then unknown).
    fn collateral_for(&self, quote: &[u8]) -> Result<Option<Arc<Collateral>>, Error>;
}

impl CollateralSource for Arc<Collateral> {
    fn collateral_for(&self, _quote: &[u8]) -> Result<Option<Arc<Collateral>>, Error> {
        Ok(Some(self.clone()))
    }
}

/// Verifies RA-TLS certificates under a policy; the core of both rustls verifiers.
pub struct RaTlsVerifier {
    verifier: Arc<Verifier>,
    collateral: Option<Arc<dyn CollateralSource>>,
    policy: Policy,
    fixed_time: Option<i64>,
}

impl std::fmt::Debug for RaTlsVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaTlsVerifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RaTlsVerifier {
    /// A verifier applying `policy` with collateral from `collateral` (none: TCB status unknown, refused).
    pub fn new(
        verifier: Arc<Verifier>,
        collateral: Option<Arc<dyn CollateralSource>>,
        policy: Policy,
    ) -> Self {
        RaTlsVerifier {
            verifier,
            collateral,
            policy,
            fixed_time: None,
        }
    }

    /// Verifies at a fixed time instead of the handshake's clock (tests, replays).
    pub fn at_time(mut self, at: i64) -> Self {
        self.fixed_time = Some(at);
        self
    }

    /// Verifies a certificate at `at`: validity window, key binding of every evidence, quote under the policy.
    pub fn verify_cert(&self, cert_der: &[u8], at: i64) -> Verdict {
        let at = self.fixed_time.unwrap_or(at);
        let cert = match RaTlsCertificate::parse(cert_der) {
            Ok(c) => c,
            Err(e) => return Verdict::refused(e.to_string()),
        };
        if at < cert.validity.0 || at > cert.validity.1 {
            return Verdict::refused(format!(
                "stale RA-TLS certificate: valid {} .. {}, checked at {}",
                crate::pki::rfc3339(cert.validity.0),
                crate::pki::rfc3339(cert.validity.1),
                crate::pki::rfc3339(at)
            ));
        }
        let quote = cert.quote();
        let collateral = match self
            .collateral
            .as_ref()
            .map(|c| c.collateral_for(quote))
            .transpose()
        {
            Ok(c) => c.flatten(),
            Err(e) => return Verdict::refused(format!("cannot get collateral: {e}")),
        };
        self.verifier
            .verify(&Evidence::new(quote, collateral.as_deref()), &self.policy, at)
    }

    fn check(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let at = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let verdict = self.verify_cert(end_entity.as_ref(), at);
        if verdict.accepted {
            return Ok(());
        }
        let err = Error::Policy(verdict.reasons.join("; "));
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(err)),
        )))
    }
}

fn algorithms() -> &'static rustls::crypto::WebPkiSupportedAlgorithms {
    static ALGS: std::sync::OnceLock<rustls::crypto::WebPkiSupportedAlgorithms> = std::sync::OnceLock::new();
    ALGS.get_or_init(|| rustls::crypto::ring::default_provider().signature_verification_algorithms)
}

/// The decision a TLS endpoint makes about its peer's certificate; [`PeerCertVerifier`] makes it a rustls
/// verifier.
pub trait PeerCheck: std::fmt::Debug + Send + Sync {
    /// Accepts or refuses the peer's end-entity certificate at `now`.
    fn check(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error>;
}

impl PeerCheck for Arc<RaTlsVerifier> {
    fn check(&self, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        RaTlsVerifier::check(self, end_entity, now)
    }
}

/// A rustls server- and client-certificate verifier around one [`PeerCheck`]. The handshake signature is always
/// verified (with ring's algorithms), so the peer proves it holds the certificate's key whatever the check says.
#[derive(Debug)]
pub struct PeerCertVerifier<C> {
    check: C,
    client_auth_mandatory: bool,
}

impl<C: PeerCheck> PeerCertVerifier<C> {
    /// A verifier that requires a peer certificate passing `check` (for clients: every server has one).
    pub fn new(check: C) -> Self {
        Self {
            check,
            client_auth_mandatory: true,
        }
    }

    /// A server-side verifier that asks for a client certificate but lets clients without one connect (the
    /// server then authorises per request).
    pub fn optional(check: C) -> Self {
        Self {
            check,
            client_auth_mandatory: false,
        }
    }
}

impl<C: PeerCheck> ServerCertVerifier for PeerCertVerifier<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check
            .check(end_entity, now)
            .map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

impl<C: PeerCheck> ClientCertVerifier for PeerCertVerifier<C> {
    fn client_auth_mandatory(&self) -> bool {
        self.client_auth_mandatory
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check
            .check(end_entity, now)
            .map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}

/// A TLS 1.3 server configuration presenting `identity` and, when `clients` is given, requiring attested
/// client certificates (mutual RA-TLS).
pub fn server_config(
    identity: &RaTlsIdentity,
    clients: Option<Arc<RaTlsVerifier>>,
) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::crypto("configure TLS", e))?;
    let builder = match clients {
        Some(v) => builder.with_client_cert_verifier(Arc::new(PeerCertVerifier::new(v))),
        None => builder.with_no_client_auth(),
    };
    let (certs, key) = identity.rustls_parts();
    builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::crypto("configure the TLS server certificate", e))
}

/// A TLS 1.3 client configuration that accepts only an attested server and, when `identity` is given,
/// presents it as client certificate.
pub fn client_config(
    server: Arc<RaTlsVerifier>,
    identity: Option<&RaTlsIdentity>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::crypto("configure TLS", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertVerifier::new(server)));
    match identity {
        Some(id) => {
            let (certs, key) = id.rustls_parts();
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::crypto("configure the TLS client certificate", e))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}
