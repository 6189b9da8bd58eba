//! The verifier: quote + collateral + trust anchors + an explicit time → verified evidence, with a warm
//! cache keyed by the exact bytes of what was verified.
//!
//! Order of checks (each failure is a typed [`Error`] saying why):
//! 1. parse the quote; verify the ISV signature over the signed region with the attestation key;
//! 2. collateral (if any): TCB info and QE identity windows at `at`, their issuer chains to the anchor, their
//!    signatures over the exact received bytes, the root CA CRL and the PCK CRL (signatures, windows);
//! 3. the PCK chain to the anchor, its SGX extensions; the QE report signature by the PCK key; the QE report's
//!    binding of the attestation key; revocation of the PCK and its issuer;
//! 4. QE identity match and TCB level matching, status merging, advisories.
//!
//! Warm cache: step 2 is cached by the collateral's fingerprint (SHA-256 of its exact bytes), step 3 by the
//! exact bytes of the quote from the attestation key to the end of the certification data (compared in
//! full, not by hash), each with the time window in which its result holds and the options that shaped it.
//! A warm verification re-checks the ISV signature, the attestation-key binding, revocation lists and TCB
//! matching (no signature other than the ISV one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use x509_parser::certificate::X509Certificate;

use crate::collateral::Collateral;
use crate::crypto::provider;
use crate::error::Error;
use crate::pki::{self, AnchorKind, ChainOptions, CrlOutcome, PckExtensions, TrustAnchor};
use crate::policy::{Policy, Verdict};
use crate::quote::{Quote, QuoteBody, TeeType};
use crate::sgx;
use crate::tcb::{IsvLevel, QeIdentity, TcbInfo, TcbStatus};

/// What to verify: a quote, optionally its collateral, optionally an out-of-band PCK certificate chain.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// The quote bytes.
    pub quote: &'a [u8],
    /// Collateral for the quote's platform; without it the TCB status is unknown.
    pub collateral: Option<&'a Collateral>,
    /// The PCK certificate and its issuer chain (PEM or concatenated DER, any order) for quotes whose
    /// certification data carries no chain (types 1–3); overrides an embedded chain when given.
    pub pck_chain: Option<&'a [u8]>,
}

impl<'a> Evidence<'a> {
    /// A quote with its collateral.
    pub fn new(quote: &'a [u8], collateral: Option<&'a Collateral>) -> Self {
        Evidence {
            quote,
            collateral,
            pck_chain: None,
        }
    }
}

/// The TCB appraisal of a platform, from collateral.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TcbEvaluation {
    /// The merged TCB status (platform, QE and, for TDX, module).
    pub status: TcbStatus,
    /// The platform TCB level's status alone.
    pub platform_status: TcbStatus,
    /// The quoting enclave's status.
    pub qe_status: TcbStatus,
    /// Advisory IDs of the matched levels (union, in order).
    pub advisory_ids: Vec<String>,
    /// The matched level's tcbDate.
    pub tcb_date: String,
    /// The TCB info's tcbEvaluationDataNumber.
    pub evaluation_data_number: Option<u32>,
}

/// Evidence whose signatures, chains and collateral have been verified at a given time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// Quote version (3, 4 or 5).
    pub version: u16,
    /// TEE type.
    pub tee_type: TeeType,
    /// The attested body.
    pub body: QuoteBody,
    /// The anchor the PCK chain ends at.
    pub anchor: AnchorKind,
    /// The PCK certificate's SGX extensions (FMSPC, TCB components…).
    pub pck: PckExtensions,
    /// The TCB appraisal, or `None` when no collateral was given: "TCB status unknown".
    pub tcb: Option<TcbEvaluation>,
    /// The quoting enclave's ISVSVN.
    pub qe_isv_svn: u16,
    /// The time the verification was made for (Unix seconds).
    pub verified_at: i64,
    /// The end of the window in which every certificate, CRL and collateral item used is valid.
    pub valid_until: i64,
}

impl VerifiedQuote {
    /// REPORTDATA of the attested body.
    pub fn report_data(&self) -> [u8; 64] {
        self.body.report_data()
    }
    /// MRENCLAVE (SGX only).
    pub fn mrenclave(&self) -> Option<[u8; 32]> {
        self.body.sgx().map(sgx::mrenclave)
    }
    /// MRSIGNER (SGX only).
    pub fn mrsigner(&self) -> Option<[u8; 32]> {
        self.body.sgx().map(sgx::mrsigner)
    }
    /// ISVPRODID (SGX only).
    pub fn isv_prod_id(&self) -> Option<u16> {
        self.body.sgx().map(sgx::isv_prod_id)
    }
    /// ISVSVN (SGX only).
    pub fn isv_svn(&self) -> Option<u16> {
        self.body.sgx().map(sgx::isv_svn)
    }
    /// True when the enclave or TD runs in debug mode.
    pub fn debug(&self) -> bool {
        match &self.body {
            QuoteBody::Sgx(r) => sgx::debug(r),
            other => other.td().is_some_and(|t| t.debug()),
        }
    }
    /// True when the quote was signed by a simulation PKI.
    pub fn is_simulation(&self) -> bool {
        self.anchor == AnchorKind::Simulation
    }
}

/// Options of a verification that change its cryptographic outcome (and so are part of cache keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Flags {
    allow_simulation: bool,
    exact_root: bool,
    ignore_crl_dates: bool,
}

impl Flags {
    fn from(policy: &Policy) -> Self {
        Flags {
            allow_simulation: policy.allow_simulation,
            exact_root: policy.require_exact_root_certificate,
            ignore_crl_dates: policy.insecure_ignore_crl_dates,
        }
    }
}

/// Collateral whose chains, signatures, CRLs and windows were verified.
#[derive(Debug)]
struct VerifiedCollateral {
    anchor: AnchorKind,
    window: (i64, i64),
    tcb_info: TcbInfo,
    qe_identity: QeIdentity,
    root_crl: CrlOutcome,
    pck_crl: CrlOutcome,
    pck_crl_issuer_subject: Vec<u8>,
    pck_crl_issuer_key: Vec<u8>,
    /// The PCK CRL issuer (the PCK's issuing CA) as verified here: a PCK chain through it stops at it.
    pck_crl_issuer: pki::VerifiedCa,
}

/// The per-quote platform facts: PCK chain, QE report signature.
#[derive(Debug)]
struct VerifiedPlatform {
    anchor: AnchorKind,
    window: (i64, i64),
    pck: PckExtensions,
    pck_serial: Vec<u8>,
    pck_subject: String,
    pck_issuer_subject: Vec<u8>,
    pck_issuer_key: Vec<u8>,
    pck_issuer_serial: Vec<u8>,
    pck_issuer_text: String,
}

struct QuoteEntry {
    tail: Vec<u8>,
    pck_override: Option<Vec<u8>>,
    flags: Flags,
    platform: Arc<VerifiedPlatform>,
}

#[derive(Default)]
struct Cache {
    collateral: HashMap<([u8; 32], Flags), Arc<VerifiedCollateral>>,
    quotes: HashMap<[u8; 64], Vec<QuoteEntry>>,
    quote_entries: usize,
}

/// Bound on cached entries of each kind; the cache is cleared when it is exceeded.
const CACHE_LIMIT: usize = 1024;

/// Verifies DCAP quotes against trust anchors at an explicit time, with a warm cache.
pub struct Verifier {
    anchors: Vec<TrustAnchor>,
    simulation: Option<TrustAnchor>,
    cache: Option<Mutex<Cache>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "anchors",
                &self.anchors.iter().map(|a| a.subject()).collect::<Vec<_>>(),
            )
            .field("simulation", &self.simulation.as_ref().map(|a| a.subject()))
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl Verifier {
    /// A verifier trusting Intel's SGX Root CA, with the warm cache on.
    pub fn new() -> Self {
        Verifier {
            anchors: vec![TrustAnchor::intel()],
            simulation: None,
            cache: Some(Mutex::new(Cache::default())),
        }
    }

    /// A verifier trusting exactly `anchors` (e.g. Intel's test root for its sample data) instead of Intel's.
    pub fn with_anchors(anchors: Vec<TrustAnchor>) -> Self {
        Verifier {
            anchors,
            simulation: None,
            cache: Some(Mutex::new(Cache::default())),
        }
    }

    /// Also knows a simulation root; quotes under it pass only a policy with `allow_simulation`.
    pub fn with_simulation_root(mut self, root: TrustAnchor) -> Self {
        self.simulation = Some(root.with_kind(AnchorKind::Simulation));
        self
    }

    /// Turns the warm cache off (every verification is cold).
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Verifies evidence and applies `policy` at time `at` (Unix seconds). Never fails: a refusal is a verdict
    /// that says why.
    pub fn verify(&self, evidence: &Evidence<'_>, policy: &Policy, at: i64) -> Verdict {
        match self.check(evidence, policy, at) {
            Ok(v) => policy.appraise(v),
            Err(e) => Verdict::refused(e.to_string()),
        }
    }

    /// Verifies signatures, chains and collateral at `at` and appraises the TCB; does not apply the
    /// acceptance rules of `policy` (only its trust options: simulation, exact root, insecure relaxations).
    pub fn check(&self, evidence: &Evidence<'_>, policy: &Policy, at: i64) -> Result<VerifiedQuote, Error> {
        let flags = Flags::from(policy);
        let quote = Quote::parse(evidence.quote)?;
        let sig = &quote.signature;
        if !(provider().verify_p256_raw)(&sig.attestation_key, quote.signed_bytes(), &sig.isv_signature) {
            return Err(Error::QuoteSignature);
        }
        let anchors = self.anchors_for(flags);
        let collateral = evidence
            .collateral
            .map(|c| self.collateral(c, &anchors, flags, at))
            .transpose()?;
        let known: &[pki::VerifiedCa] = match &collateral {
            Some(c) => std::slice::from_ref(&c.pck_crl_issuer),
            None => &[],
        };
        let platform = self.platform(&quote, evidence.pck_chain, &anchors, known, flags, at)?;
        // The attestation key binding is re-checked on every call, warm or cold (one SHA-256).
        check_binding(&quote)?;
        let mut window = platform.window;
        let tcb = match &collateral {
            None => None,
            Some(c) => {
                window = (window.0.max(c.window.0), window.1.min(c.window.1));
                Some(evaluate(&quote, &platform, c)?)
            }
        };
        let _ = window.0;
        Ok(VerifiedQuote {
            version: quote.header.version,
            tee_type: quote.header.tee_type,
            body: quote.body,
            anchor: platform.anchor,
            pck: platform.pck,
            tcb,
            qe_isv_svn: sgx::isv_svn(&quote.signature.qe_report),
            verified_at: at,
            valid_until: window.1,
        })
    }

    fn anchors_for(&self, flags: Flags) -> Vec<TrustAnchor> {
        let mut a = self.anchors.clone();
        if flags.allow_simulation {
            a.extend(self.simulation.clone());
        }
        a
    }

    fn collateral(
        &self,
        c: &Collateral,
        anchors: &[TrustAnchor],
        flags: Flags,
        at: i64,
    ) -> Result<Arc<VerifiedCollateral>, Error> {
        let key = (*c.fingerprint(), flags);
        if let Some(cache) = &self.cache {
            let hit = lock(cache).collateral.get(&key).cloned();
            if let Some(v) = hit.filter(|v| in_window(v.window, at)) {
                return Ok(v);
            }
        }
        let v = Arc::new(verify_collateral(c, anchors, flags, at)?);
        if let Some(cache) = &self.cache {
            let mut g = lock(cache);
            if g.collateral.len() >= CACHE_LIMIT {
                g.collateral.clear();
            }
            g.collateral.insert(key, v.clone());
        }
        Ok(v)
    }

    fn platform(
        &self,
        quote: &Quote<'_>,
        pck_override: Option<&[u8]>,
        anchors: &[TrustAnchor],
        known: &[pki::VerifiedCa],
        flags: Flags,
        at: i64,
    ) -> Result<Arc<VerifiedPlatform>, Error> {
        let sig = &quote.signature;
        if let Some(cache) = &self.cache {
            let g = lock(cache);
            let hit = g.quotes.get(&sig.attestation_key).and_then(|entries| {
                entries.iter().find(|e| {
                    e.flags == flags
                        && e.tail.as_slice() == sig.tail
                        && e.pck_override.as_deref() == pck_override
                        && in_window(e.platform.window, at)
                })
            });
            if let Some(e) = hit {
                return Ok(e.platform.clone());
            }
        }
        let v = Arc::new(verify_platform(quote, pck_override, anchors, known, flags, at)?);
        if let Some(cache) = &self.cache {
            let mut g = lock(cache);
            if g.quote_entries >= CACHE_LIMIT {
                g.quotes.clear();
                g.quote_entries = 0;
            }
            g.quote_entries += 1;
            g.quotes.entry(sig.attestation_key).or_default().push(QuoteEntry {
                tail: sig.tail.to_vec(),
                pck_override: pck_override.map(<[u8]>::to_vec),
                flags,
                platform: v.clone(),
            });
        }
        Ok(v)
    }
}

fn lock(m: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    // A panic while holding the lock leaves a cache that is still consistent (entries are inserted whole).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn in_window(w: (i64, i64), at: i64) -> bool {
    w.0 <= at && at <= w.1
}

fn check_window(what: &'static str, issue: i64, next: i64, at: i64) -> Result<(), Error> {
    if at < issue || at > next {
        return Err(Error::CollateralValidity {
            what,
            state: if at < issue { "not yet valid" } else { "expired" },
            at: pki::rfc3339(at),
            issue_date: pki::rfc3339(issue),
            next_update: pki::rfc3339(next),
        });
    }
    Ok(())
}

/// Verifies a P-256 raw signature with the key of a certificate.
fn signed_by_cert(cert: &X509Certificate<'_>, message: &[u8], sig: &[u8]) -> bool {
    let point = &cert.public_key().subject_public_key.data;
    let (Some(key), Ok(sig)) = (point.get(1..65), <&[u8; 64]>::try_from(sig)) else {
        return false;
    };
    let Ok(key) = <&[u8; 64]>::try_from(key) else {
        return false;
    };
    point.len() == 65 && point[0] == 4 && (provider().verify_p256_raw)(key, message, sig)
}

fn parse_chain<'a>(
    ders: &'a [std::borrow::Cow<'a, [u8]>],
    what: &str,
) -> Result<Vec<X509Certificate<'a>>, Error> {
    ders.iter().map(|d| pki::parse_cert(d, what)).collect()
}

fn verify_collateral(
    c: &Collateral,
    anchors: &[TrustAnchor],
    flags: Flags,
    at: i64,
) -> Result<VerifiedCollateral, Error> {
    let opts = ChainOptions {
        exact_root: flags.exact_root,
    };
    // Freshness first: a stale collateral set is refused for that reason before anything else.
    let tcb_info = TcbInfo::parse(c.tcb_info())?;
    check_window("TCB info", tcb_info.issue_date, tcb_info.next_update, at)?;
    let qe_identity = QeIdentity::parse(c.qe_identity())?;
    check_window("QE identity", qe_identity.issue_date, qe_identity.next_update, at)?;
    let mut window = (
        tcb_info.issue_date.max(qe_identity.issue_date),
        tcb_info.next_update.min(qe_identity.next_update),
    );

    // TCB signing chain(s): usually the same PEM for both items, verified once.
    let tcb_ders = pki::split_certificates(c.tcb_info_issuer_chain().as_bytes(), "TCB info issuer chain")?;
    let tcb_chain = parse_chain(&tcb_ders, "TCB info issuer chain")?;
    let tcb_signer = pki::leaf_of(&tcb_chain).ok_or(Error::CollateralMissing("tcb_info_issuer_chain"))?;
    let out = pki::verify_chain(
        tcb_signer,
        &tcb_chain,
        anchors,
        &[],
        at,
        "TCB info issuer chain",
        opts,
    )?;
    let anchor = out.anchor;
    window = intersect(window, out.window);
    if !signed_by_cert(tcb_signer, c.tcb_info().as_bytes(), c.tcb_info_signature()) {
        return Err(Error::CollateralSignature { what: "TCB info" });
    }
    let qe_ders;
    let qe_chain;
    let qe_signer = if c.qe_identity_issuer_chain() == c.tcb_info_issuer_chain() {
        tcb_signer
    } else {
        qe_ders = pki::split_certificates(
            c.qe_identity_issuer_chain().as_bytes(),
            "QE identity issuer chain",
        )?;
        qe_chain = parse_chain(&qe_ders, "QE identity issuer chain")?;
        let signer = pki::leaf_of(&qe_chain).ok_or(Error::CollateralMissing("qe_identity_issuer_chain"))?;
        let out = pki::verify_chain(
            signer,
            &qe_chain,
            anchors,
            &[],
            at,
            "QE identity issuer chain",
            opts,
        )?;
        if out.anchor != anchor {
            return Err(Error::UntrustedChain {
                what: "QE identity issuer chain".into(),
                reason: "it ends at another root than the TCB info issuer chain".into(),
            });
        }
        window = intersect(window, out.window);
        signer
    };
    if !signed_by_cert(qe_signer, c.qe_identity().as_bytes(), c.qe_identity_signature()) {
        return Err(Error::CollateralSignature { what: "QE identity" });
    }

    // CRLs: the root CA CRL is signed by the anchor; the PCK CRL by the PCK's issuing CA.
    let anchor_cert = anchors
        .iter()
        .find(|a| a.kind() == anchor)
        .ok_or_else(|| Error::UntrustedChain {
            what: "collateral".into(),
            reason: "anchor vanished".into(),
        })?;
    let root = pki::parse_cert(anchor_cert.der(), "trust anchor")?;
    let root_crl = pki::verify_crl(c.root_ca_crl(), &root, at, "root CA CRL", flags.ignore_crl_dates)?;
    window = intersect(window, root_crl.window);
    for cert in tcb_chain.iter().chain(std::iter::once(qe_signer)) {
        if !pki::names_match(cert.subject(), root.subject()) {
            root_crl.check(cert, "root CA CRL")?;
        }
    }
    let crl_ders = pki::split_certificates(c.pck_crl_issuer_chain().as_bytes(), "PCK CRL issuer chain")?;
    let crl_chain = parse_chain(&crl_ders, "PCK CRL issuer chain")?;
    let crl_issuer = pki::leaf_of(&crl_chain).ok_or(Error::CollateralMissing("pck_crl_issuer_chain"))?;
    let out = pki::verify_chain(
        crl_issuer,
        &crl_chain,
        anchors,
        &[],
        at,
        "PCK CRL issuer chain",
        opts,
    )?;
    if out.anchor != anchor {
        return Err(Error::UntrustedChain {
            what: "PCK CRL issuer chain".into(),
            reason: "it ends at another root than the TCB info issuer chain".into(),
        });
    }
    window = intersect(window, out.window);
    let crl_issuer_outcome = out;
    root_crl.check(crl_issuer, "root CA CRL")?;
    let pck_crl = pki::verify_crl(c.pck_crl(), crl_issuer, at, "PCK CRL", flags.ignore_crl_dates)?;
    window = intersect(window, pck_crl.window);
    Ok(VerifiedCollateral {
        anchor,
        window,
        tcb_info,
        qe_identity,
        root_crl,
        pck_crl,
        pck_crl_issuer_subject: crl_issuer.subject().as_raw().to_vec(),
        pck_crl_issuer_key: crl_issuer.public_key().subject_public_key.data.to_vec(),
        pck_crl_issuer: pki::VerifiedCa {
            der: crl_issuer.as_raw().to_vec(),
            outcome: crl_issuer_outcome,
        },
    })
}

fn intersect(a: (i64, i64), b: (i64, i64)) -> (i64, i64) {
    (a.0.max(b.0), a.1.min(b.1))
}

fn verify_platform(
    quote: &Quote<'_>,
    pck_override: Option<&[u8]>,
    anchors: &[TrustAnchor],
    known: &[pki::VerifiedCa],
    flags: Flags,
    at: i64,
) -> Result<VerifiedPlatform, Error> {
    let sig = &quote.signature;
    let what = "PCK certificate chain";
    let ders = match pck_override {
        Some(chain) => pki::split_certificates(chain, what)?,
        None => sig.certification.pck_chain_der()?,
    };
    let chain = parse_chain(&ders, what)?;
    let leaf_index = chain
        .iter()
        .position(|c| {
            c.extensions()
                .iter()
                .any(|e| e.oid.as_bytes() == pki::SGX_EXTENSION_OID)
        })
        .ok_or_else(|| {
            Error::PckExtensions("no certificate of the chain carries the SGX extensions".into())
        })?;
    let leaf = &chain[leaf_index];
    let out = pki::verify_chain(
        leaf,
        &chain,
        anchors,
        known,
        at,
        what,
        ChainOptions {
            exact_root: flags.exact_root,
        },
    )?;
    let pck = pki::pck_extensions(leaf)?;
    if !signed_by_cert(leaf, sig.qe_report_bytes, &sig.qe_report_signature) {
        return Err(Error::QeReportSignature);
    }
    // The chain walk says which certificate issued the leaf; search only when the anchor itself did.
    let issuer = match out.issuer {
        Some(i) => chain.get(i),
        None => chain
            .iter()
            .find(|c| pki::names_match(c.subject(), leaf.issuer()) && pki::signed_by(leaf, c)),
    };
    let (issuer_subject, issuer_key, issuer_serial, issuer_text) = match issuer {
        Some(i) => (
            i.subject().as_raw().to_vec(),
            i.public_key().subject_public_key.data.to_vec(),
            i.raw_serial().to_vec(),
            pki::subject(i),
        ),
        None => (
            leaf.issuer().as_raw().to_vec(),
            Vec::new(),
            Vec::new(),
            leaf.issuer().to_string(),
        ),
    };
    Ok(VerifiedPlatform {
        anchor: out.anchor,
        window: out.window,
        pck,
        pck_serial: leaf.raw_serial().to_vec(),
        pck_subject: pki::subject(leaf),
        pck_issuer_subject: issuer_subject,
        pck_issuer_key: issuer_key,
        pck_issuer_serial: issuer_serial,
        pck_issuer_text: issuer_text,
    })
}

fn check_binding(quote: &Quote<'_>) -> Result<(), Error> {
    let sig = &quote.signature;
    let expected = (provider().sha256)(&[&sig.attestation_key, sig.qe_auth_data]);
    let rd = sgx::report_data(&sig.qe_report);
    if rd[..32] != expected || rd[32..].iter().any(|&b| b != 0) {
        return Err(Error::QeReportBinding);
    }
    Ok(())
}

fn masked_eq(value: &[u8], mask: &[u8], expected: &[u8]) -> bool {
    value
        .iter()
        .zip(mask)
        .zip(expected)
        .all(|((v, m), e)| v & m == e & m)
}

fn evaluate(quote: &Quote<'_>, p: &VerifiedPlatform, c: &VerifiedCollateral) -> Result<TcbEvaluation, Error> {
    if p.anchor != c.anchor {
        return Err(Error::UntrustedChain {
            what: "collateral".into(),
            reason: format!(
                "the collateral is signed under the {:?} root, the quote under the {:?} root",
                c.anchor, p.anchor
            ),
        });
    }
    let tee = quote.header.tee_type;
    let info = &c.tcb_info;
    let expected_id = if tee == TeeType::TDX { "TDX" } else { "SGX" };
    if info.id != expected_id {
        return Err(Error::CollateralMismatch {
            item: "TCB info id",
            expected: expected_id.into(),
            found: info.id.clone(),
        });
    }
    if info.fmspc != p.pck.fmspc {
        return Err(Error::CollateralMismatch {
            item: "TCB info FMSPC",
            expected: hex::encode_upper(p.pck.fmspc),
            found: hex::encode_upper(info.fmspc),
        });
    }
    if info.pce_id != p.pck.pceid {
        return Err(Error::CollateralMismatch {
            item: "TCB info PCE-ID",
            expected: hex::encode_upper(p.pck.pceid),
            found: hex::encode_upper(info.pce_id),
        });
    }

    // Revocation: the PCK by the PCK CRL (which must come from the PCK's issuer), its issuer by the root CRL.
    if p.pck_issuer_subject != c.pck_crl_issuer_subject || p.pck_issuer_key != c.pck_crl_issuer_key {
        return Err(Error::Crl {
            crl: "PCK CRL",
            reason: format!(
                "it is not issued by the PCK certificate's issuer \"{}\"",
                p.pck_issuer_text
            ),
        });
    }
    if c.pck_crl.is_listed(&p.pck_serial) {
        return Err(Error::Revoked {
            subject: p.pck_subject.clone(),
            serial: hex::encode(&p.pck_serial),
            crl: "PCK CRL",
        });
    }
    if c.root_crl.is_listed(&p.pck_issuer_serial) {
        return Err(Error::Revoked {
            subject: p.pck_issuer_text.clone(),
            serial: hex::encode(&p.pck_issuer_serial),
            crl: "root CA CRL",
        });
    }
    // The quoting enclave against the QE identity.
    let qe = &c.qe_identity;
    let expected_qe = if tee == TeeType::TDX { "TD_QE" } else { "QE" };
    if qe.id != expected_qe {
        return Err(Error::CollateralMismatch {
            item: "QE identity id",
            expected: expected_qe.into(),
            found: qe.id.clone(),
        });
    }
    let r = &quote.signature.qe_report;
    let misc = sgx::miscselect_bytes(r);
    if !masked_eq(&misc, &qe.miscselect_mask, &qe.miscselect) {
        return Err(qe_mismatch("MISCSELECT", &qe.miscselect, &misc));
    }
    let attrs = sgx::attributes_bytes(r);
    if !masked_eq(&attrs, &qe.attributes_mask, &qe.attributes) {
        return Err(qe_mismatch("ATTRIBUTES", &qe.attributes, &attrs));
    }
    let mrsigner = sgx::mrsigner(r);
    if mrsigner != qe.mrsigner {
        return Err(qe_mismatch("MRSIGNER", &qe.mrsigner, &mrsigner));
    }
    let prod = sgx::isv_prod_id(r);
    if u32::from(prod) != qe.isvprodid {
        return Err(Error::QeIdentityMismatch {
            field: "ISVPRODID",
            expected: qe.isvprodid.to_string(),
            found: prod.to_string(),
        });
    }
    let qe_svn = sgx::isv_svn(r);
    let qe_level = qe
        .levels
        .iter()
        .find(|l| l.isvsvn <= u32::from(qe_svn))
        .ok_or_else(|| Error::QeIdentityMismatch {
            field: "ISVSVN",
            expected: format!(
                "at least {}",
                qe.levels.iter().map(|l| l.isvsvn).min().unwrap_or(0)
            ),
            found: qe_svn.to_string(),
        })?;

    // The platform level, the TDX module, and the merge.
    let td = quote.body.td();
    let level = info.platform_level(&p.pck, td.map(|t| &t.tee_tcb_svn))?;
    let mut status = level.status;
    let mut advisories = level.advisories.clone();
    let mut tcb_date = level.date.clone();
    if let Some(td) = td {
        if let Some(module_level) = tdx_module(info, td)? {
            status = status.converge(module_level.status);
            merge(&mut advisories, &module_level.advisories);
        }
        if let QuoteBody::Td15(t15) = &quote.body {
            info.platform_level(&p.pck, Some(&t15.tee_tcb_svn2))?;
        }
    }
    let platform_status = level.status;
    status = status.converge(qe_level.status);
    merge(&mut advisories, &qe_level.advisories);
    if tcb_date.is_empty() {
        tcb_date = String::from("unknown");
    }
    Ok(TcbEvaluation {
        status,
        platform_status,
        qe_status: qe_level.status,
        advisory_ids: advisories,
        tcb_date,
        evaluation_data_number: info.evaluation_data_number,
    })
}

fn merge(into: &mut Vec<String>, more: &[String]) {
    for a in more {
        if !into.contains(a) {
            into.push(a.clone());
        }
    }
}

fn qe_mismatch(field: &'static str, expected: &[u8], found: &[u8]) -> Error {
    Error::QeIdentityMismatch {
        field,
        expected: hex::encode_upper(expected),
        found: hex::encode_upper(found),
    }
}

/// Checks the TD's module signer and attributes and returns the module's TCB level, if the TCB info has
/// module identities for its major version.
fn tdx_module<'i>(info: &'i TcbInfo, td: &crate::quote::TdReport10) -> Result<Option<&'i IsvLevel>, Error> {
    let version = td.tee_tcb_svn[1];
    let identity = if version == 0 {
        None
    } else {
        let id = format!("TDX_{version:02X}");
        Some(
            info.tdx_module_identities
                .iter()
                .find(|m| m.id.eq_ignore_ascii_case(&id))
                .ok_or_else(|| {
                    Error::TdxModuleMismatch(format!("the TCB info has no module identity {id}"))
                })?,
        )
    };
    let base = identity
        .or(info.tdx_module.as_ref())
        .ok_or_else(|| Error::TdxModuleMismatch("the TCB info has no tdxModule".into()))?;
    if td.mr_signer_seam != base.mrsigner {
        return Err(Error::TdxModuleMismatch(format!(
            "MRSIGNERSEAM {} is not {}",
            hex::encode_upper(td.mr_signer_seam),
            hex::encode_upper(base.mrsigner)
        )));
    }
    if !masked_eq(&td.seam_attributes, &base.attributes_mask, &base.attributes) {
        return Err(Error::TdxModuleMismatch(format!(
            "SEAMATTRIBUTES {} do not match {}",
            hex::encode_upper(td.seam_attributes),
            hex::encode_upper(base.attributes)
        )));
    }
    let Some(identity) = identity else { return Ok(None) };
    let svn = u32::from(td.tee_tcb_svn[0]);
    identity
        .levels
        .iter()
        .find(|l| l.isvsvn <= svn)
        .map(Some)
        .ok_or_else(|| {
            Error::TdxModuleMismatch(format!(
                "module ISVSVN {svn} is below every level of {}",
                identity.id
            ))
        })
}
