//! X.509 for DCAP: certificate chains to a trust anchor, CRLs, and the SGX extensions of PCK certificates.
//!
//! Trust anchors are **keys with names** (RFC 5280 §6.1.1): a chain is anchored when a certificate's issuer
//! name equals the anchor's subject and the anchor's key verifies its signature. A copy of the root inside the
//! chain is not needed and, when present with the anchor's name and key, is not a reason to refuse even if its
//! bytes differ (Intel re-issued its root with the same key; quotes from 2020 embed the older one). Callers who
//! want exact-certificate anchoring ask for it ([`crate::Policy::require_exact_root_certificate`]).

use std::borrow::Cow;

use x509_parser::certificate::{X509Certificate, X509CertificateParser};
use x509_parser::der_parser::ber::BerObject;
use x509_parser::der_parser::der::parse_der;
use x509_parser::nom::Parser;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::crypto::{provider, KeyKind, SigAlg};
use crate::error::Error;

/// The Intel SGX Root CA certificate (DER), SHA-256 44a0196b…74d3.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("../data/IntelSGXRootCA.der");

/// Subject common name of every Arca simulation root (used to say "simulation quote" when it is not trusted).
pub const SIMULATION_ROOT_CN: &str = "Arca Simulation Root CA";

/// Where a trust anchor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnchorKind {
    /// Intel's production SGX Root CA.
    Intel,
    /// A root the caller configured (e.g. Intel's test root for its sample data).
    Custom,
    /// An Arca simulation root: quotes under it are simulated, never hardware evidence.
    Simulation,
}

/// A trusted root: its name, key and validity, taken from a self-signed certificate.
#[derive(Clone, Debug)]
pub struct TrustAnchor {
    der: Vec<u8>,
    subject: Vec<u8>,
    subject_text: String,
    key_kind: KeyKind,
    key_bits: Vec<u8>,
    not_before: i64,
    not_after: i64,
    kind: AnchorKind,
}

impl TrustAnchor {
    /// Intel's production SGX Root CA.
    pub fn intel() -> Self {
        // The embedded certificate is checked by a test; failing here would be a build defect.
        #[allow(clippy::expect_used)]
        Self::from_der(INTEL_SGX_ROOT_CA_DER, AnchorKind::Intel).expect("embedded Intel SGX Root CA parses")
    }

    /// An anchor from a DER certificate.
    pub fn from_der(der: &[u8], kind: AnchorKind) -> Result<Self, Error> {
        let cert = parse_cert(der, "trust anchor")?;
        let spki = cert.public_key();
        Ok(TrustAnchor {
            der: der.to_vec(),
            subject: cert.subject().as_raw().to_vec(),
            subject_text: cert.subject().to_string(),
            key_kind: key_kind(spki, "trust anchor")?,
            key_bits: spki.subject_public_key.data.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            kind,
        })
    }

    /// An anchor from a PEM file's text (the first certificate).
    pub fn from_pem(pem_text: &[u8], kind: AnchorKind) -> Result<Self, Error> {
        let certs = split_certificates(pem_text, "trust anchor")?;
        let first = certs.first().ok_or_else(|| Error::BadCertificate {
            what: "trust anchor".into(),
            reason: "no certificate found".into(),
        })?;
        Self::from_der(first, kind)
    }

    /// The anchor certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The anchor's kind.
    pub fn kind(&self) -> AnchorKind {
        self.kind
    }

    /// The same anchor, labelled as `kind`.
    pub(crate) fn with_kind(mut self, kind: AnchorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The subject, as text.
    pub fn subject(&self) -> &str {
        &self.subject_text
    }
}

/// Parses one DER certificate (extensions are not deep-parsed: only the ones we need are read).
pub(crate) fn parse_cert<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, Error> {
    let (rest, cert) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .map_err(|e| Error::BadCertificate {
            what: what.into(),
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(Error::BadCertificate {
            what: what.into(),
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(cert)
}

/// Splits PEM text (any number of CERTIFICATE blocks, NUL padding tolerated) or concatenated DER.
pub(crate) fn split_certificates<'a>(data: &'a [u8], what: &str) -> Result<Vec<Cow<'a, [u8]>>, Error> {
    let bad = |reason: String| Error::BadCertificate {
        what: what.into(),
        reason,
    };
    if is_padding(data) {
        return Err(bad("empty".into()));
    }
    if data.first() == Some(&0x30) {
        // DER is delimited by its lengths, never by trimming: a certificate may end in a 0x00 or 0x20 byte.
        let mut out = Vec::new();
        let mut rest = data;
        while !is_padding(rest) {
            let len =
                der_element_len(rest).ok_or_else(|| bad("bad DER length in concatenated DER".into()))?;
            let (one, tail) = rest.split_at(len);
            out.push(Cow::Borrowed(one));
            rest = tail;
        }
        return Ok(out);
    }
    let certs = pem_certificates(trim_padding(data)).map_err(|e| bad(format!("PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".into()));
    }
    Ok(certs.into_iter().map(Cow::Owned).collect())
}

/// The contents of the CERTIFICATE blocks of PEM text (other block types are skipped, not decoded).
///
/// Written over `base64` rather than with the `pem` crate, which collects the text char by char and parses
/// headers: it cost about 0.2 ms a chain here, a third of a cold verification's non-signature time, and a
/// cold verification reads three chains.
fn pem_certificates(text: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine;
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    // Markers start with '-', which base64 never contains: jump from dash to dash.
    let find = |hay: &[u8], needle: &[u8]| {
        let mut from = 0;
        while let Some(p) = hay.get(from..)?.iter().position(|&b| b == b'-') {
            if hay[from + p..].starts_with(needle) {
                return Some(from + p);
            }
            from += p + 1;
        }
        None
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let label_len = find(after, DASHES).ok_or("unterminated BEGIN line")?;
        let label = &after[..label_len];
        let body = &after[label_len + DASHES.len()..];
        let end_marker = [b"-----END ", label, DASHES].concat();
        let body_len = find(body, &end_marker)
            .ok_or_else(|| format!("no END line for the {} block", String::from_utf8_lossy(label)))?;
        if label == b"CERTIFICATE" {
            let b64: Vec<u8> = body[..body_len]
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .map_err(|e| format!("CERTIFICATE block: {e}"))?;
            out.push(der);
        }
        rest = &body[body_len + end_marker.len()..];
    }
    Ok(out)
}

/// True when `b` holds nothing but trailing padding (zero bytes or ASCII whitespace).
fn is_padding(b: &[u8]) -> bool {
    b.iter().all(|&c| c == 0 || c.is_ascii_whitespace())
}

/// Text without its trailing padding (zero bytes or ASCII whitespace). Only for text forms (PEM, hex):
/// binary DER is delimited by its own lengths.
fn trim_padding(b: &[u8]) -> &[u8] {
    let end = b
        .iter()
        .rposition(|&c| c != 0 && !c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    &b[..end]
}

/// Length of the DER element at the start of `b` (header + content), if well-formed and complete.
fn der_element_len(b: &[u8]) -> Option<usize> {
    let first_len = *b.get(1)?;
    let (hdr, len) = if first_len < 0x80 {
        (2usize, first_len as usize)
    } else {
        let n = (first_len & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (2 + n, len)
    };
    let total = hdr.checked_add(len)?;
    (total <= b.len()).then_some(total)
}

fn key_kind(spki: &SubjectPublicKeyInfo<'_>, what: &str) -> Result<KeyKind, Error> {
    let params = spki.algorithm.parameters.as_ref().map(|p| p.data);
    KeyKind::from_spki(spki.algorithm.algorithm.as_bytes(), params).ok_or_else(|| Error::BadCertificate {
        what: what.into(),
        reason: format!("unsupported key algorithm {}", spki.algorithm.algorithm),
    })
}

/// True when `signed` (certificate or CRL TBS + signature) verifies under `key`.
fn verify_sig(alg_oid: &[u8], tbs: &[u8], sig: &[u8], kind: KeyKind, key_bits: &[u8]) -> bool {
    match SigAlg::from_oid(alg_oid) {
        Some(alg) => (provider().verify_x509)(alg, kind, key_bits, tbs, sig),
        None => false,
    }
}

/// True when `child` is signed by `issuer`'s key.
pub(crate) fn signed_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let Ok(kind) = key_kind(issuer.public_key(), "issuer") else {
        return false;
    };
    verify_sig(
        child.signature_algorithm.algorithm.as_bytes(),
        child.tbs_certificate.as_ref(),
        &child.signature_value.data,
        kind,
        &issuer.public_key().subject_public_key.data,
    )
}

fn signed_by_anchor(child: &X509Certificate<'_>, anchor: &TrustAnchor) -> bool {
    verify_sig(
        child.signature_algorithm.algorithm.as_bytes(),
        child.tbs_certificate.as_ref(),
        &child.signature_value.data,
        anchor.key_kind,
        &anchor.key_bits,
    )
}

/// Formats Unix seconds as RFC 3339 (or the number if out of range).
pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// Subject text of a certificate.
pub(crate) fn subject(cert: &X509Certificate<'_>) -> String {
    cert.subject().to_string()
}

fn check_validity(cert: &X509Certificate<'_>, at: i64, what: &str) -> Result<(), Error> {
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    if at < nb || at > na {
        return Err(Error::CertificateValidity {
            what: what.into(),
            subject: subject(cert),
            state: if at < nb { "not yet valid" } else { "expired" },
            window: format!(
                "checked at {} (valid {} .. {})",
                rfc3339(at),
                rfc3339(nb),
                rfc3339(na)
            ),
        });
    }
    Ok(())
}

fn is_self_signed_name(cert: &X509Certificate<'_>) -> bool {
    names_match(cert.subject(), cert.issuer())
}

/// Distinguished names match byte for byte, or attribute for attribute when encoded with other string types
/// (Intel's sample chains spell the same root name with different ASN.1 string types). No allocation: this
/// runs for every pair of certificates a chain search looks at.
pub(crate) fn names_match(a: &X509Name<'_>, b: &X509Name<'_>) -> bool {
    if a.as_raw() == b.as_raw() {
        return true;
    }
    let (mut ra, mut rb) = (a.iter(), b.iter());
    loop {
        match (ra.next(), rb.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                let (mut ax, mut ay) = (x.iter(), y.iter());
                loop {
                    match (ax.next(), ay.next()) {
                        (None, None) => break,
                        (Some(p), Some(q)) => {
                            let same_value = match (p.as_str(), q.as_str()) {
                                (Ok(s), Ok(t)) => s == t,
                                _ => p.attr_value().data == q.attr_value().data,
                            };
                            if p.attr_type() != q.attr_type() || !same_value {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                }
            }
            _ => return false,
        }
    }
}

/// True when `name` is the anchor's subject (see [`names_match`]).
fn is_anchor_name(name: &X509Name<'_>, anchor: &TrustAnchor) -> bool {
    name.as_raw() == anchor.subject.as_slice()
        || X509Name::from_der(&anchor.subject).is_ok_and(|(_, subject)| names_match(name, &subject))
}

/// The end-entity of a chain given in any order: the first certificate that issued no other one.
pub(crate) fn leaf_of<'c, 'a>(chain: &'c [X509Certificate<'a>]) -> Option<&'c X509Certificate<'a>> {
    chain
        .iter()
        .find(|c| {
            !chain
                .iter()
                .any(|o| o.as_raw() != c.as_raw() && names_match(o.issuer(), c.subject()))
        })
        .or_else(|| chain.first())
}

/// True when a certificate's BasicConstraints say it is a CA.
fn is_ca(cert: &X509Certificate<'_>) -> bool {
    const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    cert.extensions()
        .iter()
        .find(|e| e.oid.as_bytes() == BASIC_CONSTRAINTS)
        .is_some_and(|e| {
            parse_der(e.value)
                .ok()
                .and_then(|(_, obj)| {
                    obj.as_sequence()
                        .ok()
                        .and_then(|s| s.first().map(|b| b.as_bool().unwrap_or(false)))
                })
                .unwrap_or(false)
        })
}

/// The outcome of a verified chain.
#[derive(Clone, Debug)]
pub(crate) struct ChainOutcome {
    /// Which anchor the chain ends at.
    pub(crate) anchor: AnchorKind,
    /// The latest notBefore and earliest notAfter of the path, anchor included.
    pub(crate) window: (i64, i64),
    /// The index in the pool of the certificate that issued the leaf (`None` when the anchor did).
    pub(crate) issuer: Option<usize>,
}

/// A CA certificate already verified up to an anchor (with the same anchors and options), by its exact bytes:
/// a chain that reaches it stops there instead of verifying the same signatures again.
#[derive(Clone, Debug)]
pub(crate) struct VerifiedCa {
    /// The certificate (DER).
    pub(crate) der: Vec<u8>,
    /// Its chain's outcome.
    pub(crate) outcome: ChainOutcome,
}

/// How a chain is anchored.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChainOptions {
    /// Refuse an embedded root that has the anchor's key and name but other bytes.
    pub(crate) exact_root: bool,
}

/// Refuses an embedded copy of `anchor` whose bytes differ from the anchor's (exact-root anchoring).
fn check_embedded_root(
    pool: &[X509Certificate<'_>],
    cur: &X509Certificate<'_>,
    anchor: &TrustAnchor,
    what: &str,
) -> Result<(), Error> {
    let embedded = pool
        .iter()
        .chain(std::iter::once(cur))
        .filter(|c| is_self_signed_name(c) && c.subject().to_string() == anchor.subject_text);
    for root in embedded {
        if root.as_raw() != anchor.der.as_slice() {
            return Err(Error::RootCertificateMismatch { what: what.into() });
        }
    }
    Ok(())
}

/// Verifies `leaf` up to one of `anchors` through `pool` (any order, extras ignored) at time `at`. A
/// certificate of the path found in `known` (verified earlier with the same anchors and options) ends the
/// walk with its outcome.
pub(crate) fn verify_chain(
    leaf: &X509Certificate<'_>,
    pool: &[X509Certificate<'_>],
    anchors: &[TrustAnchor],
    known: &[VerifiedCa],
    at: i64,
    what: &str,
    opts: ChainOptions,
) -> Result<ChainOutcome, Error> {
    let mut window = (i64::MIN, i64::MAX);
    let mut cur = leaf;
    let mut leaf_issuer = None;
    for depth in 0..8 {
        check_validity(cur, at, what)?;
        let nb = cur.validity().not_before.timestamp();
        let na = cur.validity().not_after.timestamp();
        window = (window.0.max(nb), window.1.min(na));
        if depth > 0 && !is_ca(cur) {
            return Err(Error::UntrustedChain {
                what: what.into(),
                reason: format!("\"{}\" issues certificates but is not a CA", subject(cur)),
            });
        }
        if depth > 0 {
            let hit = known.iter().find(|k| {
                k.der.as_slice() == cur.as_raw() && k.outcome.window.0 <= at && at <= k.outcome.window.1
            });
            if let Some(k) = hit {
                if let Some(anchor) = anchors.iter().find(|a| a.kind == k.outcome.anchor) {
                    if opts.exact_root {
                        check_embedded_root(pool, cur, anchor, what)?;
                    }
                    window = (window.0.max(k.outcome.window.0), window.1.min(k.outcome.window.1));
                    return Ok(ChainOutcome {
                        anchor: k.outcome.anchor,
                        window,
                        issuer: leaf_issuer,
                    });
                }
            }
        }
        for anchor in anchors {
            if !is_anchor_name(cur.issuer(), anchor) || !signed_by_anchor(cur, anchor) {
                continue;
            }
            if opts.exact_root {
                check_embedded_root(pool, cur, anchor, what)?;
            }
            if at < anchor.not_before || at > anchor.not_after {
                return Err(Error::CertificateValidity {
                    what: what.into(),
                    subject: anchor.subject_text.clone(),
                    state: if at < anchor.not_before {
                        "not yet valid"
                    } else {
                        "expired"
                    },
                    window: format!(
                        "checked at {} (valid {} .. {})",
                        rfc3339(at),
                        rfc3339(anchor.not_before),
                        rfc3339(anchor.not_after)
                    ),
                });
            }
            window = (window.0.max(anchor.not_before), window.1.min(anchor.not_after));
            return Ok(ChainOutcome {
                anchor: anchor.kind,
                window,
                issuer: leaf_issuer,
            });
        }
        if is_self_signed_name(cur) {
            let root = subject(cur);
            if cur
                .subject()
                .iter_common_name()
                .any(|cn| cn.as_str().is_ok_and(|s| s.contains(SIMULATION_ROOT_CN)))
            {
                return Err(Error::SimulationQuote {
                    what: what.into(),
                    root,
                });
            }
            return Err(Error::UntrustedChain {
                what: what.into(),
                reason: format!("root \"{root}\" is not a trust anchor"),
            });
        }
        let issuer = pool
            .iter()
            .enumerate()
            .filter(|(_, c)| names_match(c.subject(), cur.issuer()) && c.as_raw() != cur.as_raw())
            .find(|(_, c)| signed_by(cur, c));
        match issuer {
            Some((index, next)) => {
                if depth == 0 {
                    leaf_issuer = Some(index);
                }
                cur = next;
            }
            None => {
                let candidates = pool.iter().any(|c| names_match(c.subject(), cur.issuer()));
                if candidates {
                    return Err(Error::CertificateSignature {
                        what: what.into(),
                        subject: subject(cur),
                    });
                }
                return Err(Error::UntrustedChain {
                    what: what.into(),
                    reason: format!(
                        "issuer \"{}\" of \"{}\" is not in the chain",
                        cur.issuer(),
                        subject(cur)
                    ),
                });
            }
        }
    }
    Err(Error::UntrustedChain {
        what: what.into(),
        reason: "chain longer than 8 certificates".into(),
    })
}

/// A verified CRL: its revoked serials and validity.
#[derive(Clone, Debug)]
pub(crate) struct CrlOutcome {
    revoked: Vec<Vec<u8>>,
    pub(crate) window: (i64, i64),
}

impl CrlOutcome {
    /// True when `serial` (raw DER integer bytes) is listed.
    pub(crate) fn is_listed(&self, serial: &[u8]) -> bool {
        let serial = trim_serial(serial);
        !serial.is_empty() && self.revoked.iter().any(|s| s.as_slice() == serial)
    }

    /// Refuses `cert` when its serial is listed.
    pub(crate) fn check(&self, cert: &X509Certificate<'_>, crl: &'static str) -> Result<(), Error> {
        let serial = trim_serial(cert.raw_serial());
        if self.revoked.iter().any(|s| s.as_slice() == serial) {
            return Err(Error::Revoked {
                subject: subject(cert),
                serial: hex::encode(serial),
                crl,
            });
        }
        Ok(())
    }
}

fn trim_serial(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != 0).unwrap_or(s.len());
    &s[start..]
}

/// Parses a CRL given as DER, PEM or hex text of DER.
pub(crate) fn crl_der(data: &[u8], crl: &'static str) -> Result<Vec<u8>, Error> {
    let bad = |reason: String| Error::Crl { crl, reason };
    if data.first() == Some(&0x30) {
        // DER: its length says where it ends (its last byte may well be 0x00 or 0x20); only padding may follow.
        let len = der_element_len(data).ok_or_else(|| bad("bad or truncated DER length".into()))?;
        if !is_padding(&data[len..]) {
            return Err(bad(format!(
                "{} trailing bytes after the DER CRL",
                data.len() - len
            )));
        }
        return Ok(data[..len].to_vec());
    }
    let data = trim_padding(data);
    if data.starts_with(b"-----BEGIN") {
        let p = pem::parse(data).map_err(|e| bad(format!("PEM: {e}")))?;
        return Ok(p.into_contents());
    }
    hex::decode(data).map_err(|e| bad(format!("neither DER, PEM nor hex: {e}")))
}

/// Verifies a CRL issued by `issuer` and valid at `at` (unless dates are ignored).
pub(crate) fn verify_crl(
    der: &[u8],
    issuer: &X509Certificate<'_>,
    at: i64,
    crl: &'static str,
    ignore_dates: bool,
) -> Result<CrlOutcome, Error> {
    let bad = |reason: String| Error::Crl { crl, reason };
    let (rest, list) =
        CertificateRevocationList::from_der(der).map_err(|e| bad(format!("cannot parse: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} trailing bytes", rest.len())));
    }
    if !names_match(list.issuer(), issuer.subject()) {
        return Err(bad(format!(
            "issued by \"{}\", expected \"{}\"",
            list.issuer(),
            issuer.subject()
        )));
    }
    let Ok(kind) = key_kind(issuer.public_key(), "CRL issuer") else {
        return Err(bad("unsupported issuer key".into()));
    };
    if !verify_sig(
        list.signature_algorithm.algorithm.as_bytes(),
        list.tbs_cert_list.as_ref(),
        &list.signature_value.data,
        kind,
        &issuer.public_key().subject_public_key.data,
    ) {
        return Err(bad(format!(
            "signature does not verify under \"{}\"",
            issuer.subject()
        )));
    }
    let this = list.last_update().timestamp();
    let next = list.next_update().map_or(i64::MAX, |t| t.timestamp());
    if !ignore_dates {
        if at < this {
            return Err(bad(format!(
                "not yet valid at {} (issued {})",
                rfc3339(at),
                rfc3339(this)
            )));
        }
        if at > next {
            return Err(bad(format!(
                "expired at {} (next update {})",
                rfc3339(at),
                rfc3339(next)
            )));
        }
    }
    let revoked = list
        .iter_revoked_certificates()
        .map(|r| trim_serial(r.raw_serial()).to_vec())
        .collect();
    let window = if ignore_dates {
        (i64::MIN, i64::MAX)
    } else {
        (this, next)
    };
    Ok(CrlOutcome { revoked, window })
}

/// The SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PckExtensions {
    /// PPID.
    #[serde(with = "hex::serde")]
    pub ppid: [u8; 16],
    /// SGX TCB component SVNs 1..16.
    pub tcb_components: [u8; 16],
    /// PCESVN.
    pub pcesvn: u16,
    /// CPUSVN.
    #[serde(with = "hex::serde")]
    pub cpusvn: [u8; 16],
    /// PCE-ID.
    #[serde(with = "hex::serde")]
    pub pceid: [u8; 2],
    /// FMSPC.
    #[serde(with = "hex::serde")]
    pub fmspc: [u8; 6],
    /// SGX type (0 standard, 1 scalable, 2 scalable with integrity).
    pub sgx_type: u32,
}

impl PckExtensions {
    /// Reads the SGX extensions of a DER PCK certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self, Error> {
        pck_extensions(&parse_cert(der, "PCK certificate")?)
    }
}

/// DER content of OID 1.2.840.113741.1.13.1.
pub(crate) const SGX_EXTENSION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01];

/// Reads the SGX extensions of a PCK certificate.
pub(crate) fn pck_extensions(cert: &X509Certificate<'_>) -> Result<PckExtensions, Error> {
    let bad = |r: &str| Error::PckExtensions(r.to_string());
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.as_bytes() == SGX_EXTENSION_OID)
        .ok_or_else(|| {
            bad("the certificate has no SGX extension (1.2.840.113741.1.13.1): not a PCK certificate")
        })?;
    let (_, root) = parse_der(ext.value).map_err(|e| bad(&format!("not DER: {e}")))?;
    let mut out = PckExtensions {
        ppid: [0; 16],
        tcb_components: [0; 16],
        pcesvn: 0,
        cpusvn: [0; 16],
        pceid: [0; 2],
        fmspc: [0; 6],
        sgx_type: 0,
    };
    let mut seen = [false; 6];
    for (oid, value) in pairs(&root).map_err(|e| bad(&e))? {
        let Some(last) = sub_arc(oid, SGX_EXTENSION_OID) else {
            continue;
        };
        match last {
            [1] => {
                out.ppid = fixed(value, "PPID").map_err(|e| bad(&e))?;
                seen[0] = true;
            }
            [2] => {
                let mut comps = [false; 18];
                for (toid, tval) in pairs(value).map_err(|e| bad(&e))? {
                    match sub_arc(toid, &[SGX_EXTENSION_OID, &[2]].concat()) {
                        Some([n @ 1..=16]) => {
                            let v = tval
                                .as_u32()
                                .map_err(|_| bad("TCB component is not an INTEGER"))?;
                            out.tcb_components[*n as usize - 1] =
                                u8::try_from(v).map_err(|_| bad("TCB component SVN above 255"))?;
                            comps[*n as usize - 1] = true;
                        }
                        Some([17]) => {
                            let v = tval.as_u32().map_err(|_| bad("PCESVN is not an INTEGER"))?;
                            out.pcesvn = u16::try_from(v).map_err(|_| bad("PCESVN above 65535"))?;
                            comps[16] = true;
                        }
                        Some([18]) => {
                            out.cpusvn = fixed(tval, "CPUSVN").map_err(|e| bad(&e))?;
                            comps[17] = true;
                        }
                        _ => {}
                    }
                }
                if comps.iter().any(|c| !c) {
                    return Err(bad("the TCB extension lacks a component SVN, PCESVN or CPUSVN"));
                }
                seen[1] = true;
            }
            [3] => {
                out.pceid = fixed(value, "PCE-ID").map_err(|e| bad(&e))?;
                seen[2] = true;
            }
            [4] => {
                out.fmspc = fixed(value, "FMSPC").map_err(|e| bad(&e))?;
                seen[3] = true;
            }
            [5] => {
                out.sgx_type = value.as_u32().map_err(|_| bad("SGX type is not an ENUMERATED"))?;
                seen[4] = true;
            }
            _ => {}
        }
    }
    seen[5] = true;
    if !seen[..4].iter().all(|s| *s) {
        return Err(bad("PPID, TCB, PCE-ID or FMSPC is missing"));
    }
    Ok(out)
}

type Pair<'a, 'b> = (&'b [u8], &'b BerObject<'a>);

/// The (OID, value) pairs of a SEQUENCE OF SEQUENCE { OID, value }.
fn pairs<'a, 'b>(obj: &'b BerObject<'a>) -> Result<Vec<Pair<'a, 'b>>, String> {
    let seq = obj.as_sequence().map_err(|_| "expected a SEQUENCE".to_string())?;
    seq.iter()
        .map(|item| {
            let inner = item
                .as_sequence()
                .map_err(|_| "expected SEQUENCE { OID, value }".to_string())?;
            match inner.as_slice() {
                [oid, value] => {
                    let oid = oid.as_oid().map_err(|_| "expected an OID".to_string())?;
                    Ok((oid.as_bytes(), value))
                }
                _ => Err("expected SEQUENCE { OID, value }".to_string()),
            }
        })
        .collect()
}

/// The arcs after `prefix` (each below 128, so one byte each), if `oid` extends `prefix`.
fn sub_arc<'o>(oid: &'o [u8], prefix: &[u8]) -> Option<&'o [u8]> {
    oid.strip_prefix(prefix)
        .filter(|rest| !rest.is_empty() && rest.iter().all(|b| *b < 0x80))
}

fn fixed<const N: usize>(obj: &BerObject<'_>, what: &str) -> Result<[u8; N], String> {
    let s = obj
        .as_slice()
        .map_err(|_| format!("{what} is not an OCTET STRING"))?;
    s.try_into()
        .map_err(|_| format!("{what} has {} bytes, expected {N}", s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_intel_root_is_the_documented_certificate() {
        let digest = crate::crypto::sha256(INTEL_SGX_ROOT_CA_DER);
        assert_eq!(
            hex::encode(digest),
            "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
        );
        let anchor = TrustAnchor::intel();
        assert!(anchor.subject().contains("Intel SGX Root CA"));
    }

    #[test]
    fn splits_pem_and_der_chains_alike() {
        let pem_text = std::fs::read(arca_testkit::vector("intel-qvl-sampledata/pckSignChain.pem")).unwrap();
        let ders = split_certificates(&pem_text, "t").unwrap();
        assert_eq!(ders.len(), 2);
        let concat: Vec<u8> = ders.iter().flat_map(|d| d.iter().copied()).collect();
        let again = split_certificates(&concat, "t").unwrap();
        assert_eq!(again, ders);
        assert!(split_certificates(&concat[..concat.len() - 1], "t").is_err());
    }

    #[test]
    fn der_ending_in_a_zero_or_space_byte_is_kept_whole_and_only_padding_after_it_is_dropped() {
        // Regression: trailing "padding" was trimmed before the DER lengths were read, so a certificate or CRL
        // whose signature ended in 0x00 or an ASCII whitespace byte (about 1 in 40) lost its last byte.
        let a = [0x30, 0x03, 0x02, 0x01, 0x20];
        let b = [0x30, 0x03, 0x02, 0x01, 0x00];
        let mut concat = [&a[..], &b[..]].concat();
        concat.extend_from_slice(&[0, 0, b'\n']);
        let ders = split_certificates(&concat, "t").unwrap();
        assert_eq!(ders, [&a[..], &b[..]]);
        for crl in [&a[..], &b[..]] {
            assert_eq!(crl_der(crl, "PCK CRL").unwrap(), crl);
            let padded = [crl, &[0u8, 0, b' '][..]].concat();
            assert_eq!(crl_der(&padded, "PCK CRL").unwrap(), crl);
        }
        let junk = [&a[..], &[1u8][..]].concat();
        assert!(crl_der(&junk, "PCK CRL").is_err());
        assert!(crl_der(&a[..4], "PCK CRL").is_err());
    }

    #[test]
    fn pem_reader_matches_the_pem_crate_skips_other_blocks_and_refuses_broken_ones() {
        for name in [
            "intel-qvl-sampledata/pckSignChain.pem",
            "intel-qvl-sampledata/tcbSignChain.pem",
            "interoperable-ra-tls/gramine-cert.pem",
        ] {
            let text = std::fs::read(arca_testkit::vector(name)).unwrap();
            let expected: Vec<Vec<u8>> = pem::parse_many(&text)
                .unwrap()
                .into_iter()
                .filter(|p| p.tag() == "CERTIFICATE")
                .map(|p| p.into_contents())
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(pem_certificates(&text).unwrap(), expected, "{name}");
        }
        let cert = "-----BEGIN CERTIFICATE-----\r\nMAMCAQE=\r\n-----END CERTIFICATE-----\r\n";
        let key = "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n";
        let both = format!("{key}{cert}");
        assert_eq!(
            pem_certificates(both.as_bytes()).unwrap(),
            [vec![0x30, 3, 2, 1, 1]]
        );
        let unterminated = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n";
        assert!(pem_certificates(unterminated.as_bytes())
            .unwrap_err()
            .contains("no END line"));
        let mismatched = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END X509 CRL-----\n";
        assert!(pem_certificates(mismatched.as_bytes()).is_err());
        let bad = "-----BEGIN CERTIFICATE-----\nMA*CAQE=\n-----END CERTIFICATE-----\n";
        assert!(pem_certificates(bad.as_bytes()).is_err());
        assert!(split_certificates(b"-----BEGIN ", "t").is_err());
    }

    #[test]
    fn a_chain_stopping_at_a_known_ca_gives_the_full_walks_outcome_and_still_honours_exact_root() {
        // PCK → Intel PCK Platform CA → an older copy of the Intel root (same key, other bytes).
        let quote = std::fs::read(arca_testkit::vector(
            "rust-sgx/dcap-ql_tests_quote_pck_cert_chain.bin",
        ))
        .unwrap();
        let q = crate::Quote::parse(&quote).unwrap();
        let ders = q.signature.certification.pck_chain_der().unwrap();
        let pool: Vec<_> = ders.iter().map(|d| parse_cert(d, "t").unwrap()).collect();
        let pck = pool
            .iter()
            .position(|c| {
                c.extensions()
                    .iter()
                    .any(|e| e.oid.as_bytes() == SGX_EXTENSION_OID)
            })
            .unwrap();
        let ca = pool
            .iter()
            .position(|c| names_match(c.subject(), pool[pck].issuer()) && !is_self_signed_name(c))
            .unwrap();
        let anchors = [TrustAnchor::intel()];
        let at = 1_590_000_000;
        let by_key = ChainOptions { exact_root: false };
        let exact = ChainOptions { exact_root: true };
        let full = verify_chain(&pool[pck], &pool, &anchors, &[], at, "t", by_key).unwrap();
        assert_eq!(full.issuer, Some(ca));
        let ca_outcome = verify_chain(&pool[ca], &pool, &anchors, &[], at, "t", by_key).unwrap();
        assert_eq!(ca_outcome.issuer, None, "the CA is issued by the anchor itself");
        let known = [VerifiedCa {
            der: pool[ca].as_raw().to_vec(),
            outcome: ca_outcome,
        }];
        let short = verify_chain(&pool[pck], &pool, &anchors, &known, at, "t", by_key).unwrap();
        assert_eq!(
            (short.anchor, short.window, short.issuer),
            (full.anchor, full.window, full.issuer)
        );
        let err = verify_chain(&pool[pck], &pool, &anchors, &known, at, "t", exact).unwrap_err();
        assert!(matches!(err, Error::RootCertificateMismatch { .. }), "{err}");
        // A known CA does not stretch the path's validity window.
        let late = full.window.1 + 1;
        let err = verify_chain(&pool[pck], &pool, &anchors, &known, late, "t", by_key).unwrap_err();
        assert!(matches!(err, Error::CertificateValidity { .. }), "{err}");
    }
}
