//! The one error type of `arca-attest`.

use std::path::PathBuf;

/// Everything that can go wrong while parsing or verifying attestation evidence, loading or fetching
/// collateral, running the simulation PKI, or handling RA-TLS certificates.
///
/// Each message names the step that failed and the input (structure, field, offset, file, URL); a
/// verification failure says in words why the evidence was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A structure ended before a field could be read.
    #[error("{structure} is truncated: field `{field}` at offset {offset} needs {needed} bytes, {available} remain")]
    Truncated {
        /// The structure being read.
        structure: &'static str,
        /// The field being read.
        field: &'static str,
        /// Offset of the field within the structure.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A field holds a value this implementation does not accept.
    #[error("{structure}: unsupported {field} {value}")]
    Unsupported {
        /// The structure being read.
        structure: &'static str,
        /// The field.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// A structure is malformed in a way not covered by the other variants.
    #[error("{structure} is malformed: {reason}")]
    Malformed {
        /// The structure being read.
        structure: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Non-zero bytes follow the end of a structure.
    #[error("{structure} has {len} unexpected non-zero trailing bytes at offset {offset}")]
    TrailingData {
        /// The structure being read.
        structure: &'static str,
        /// Where the trailing data starts.
        offset: usize,
        /// How many bytes follow.
        len: usize,
    },
    /// A REPORT body inside the quote is malformed (e.g. non-zero reserved bytes).
    #[error("the quote's {what} is malformed")]
    Report {
        /// Which report ("ISV enclave report", "QE report").
        what: &'static str,
        /// The cause.
        #[source]
        source: arca_sgx::Error,
    },
    /// A certificate or CRL could not be parsed.
    #[error("cannot parse the {what}: {reason}")]
    BadCertificate {
        /// Which certificate (e.g. "PCK certificate chain", "TCB info issuer chain").
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The quote carries no PCK certificate chain (certification data type 1, 2 or 3) and none was supplied.
    #[error("the quote's certification data (type {cert_type}) holds no PCK certificate: supply the PCK certificate and its chain out of band")]
    PckCertificateRequired {
        /// The certification data type.
        cert_type: u16,
    },
    /// A certificate chain does not lead to a trust anchor.
    #[error("the {what} does not lead to a trusted root: {reason}")]
    UntrustedChain {
        /// Which chain.
        what: String,
        /// Why (e.g. the issuer that could not be found).
        reason: String,
    },
    /// The chain ends at an Arca simulation root, which this verifier does not trust.
    #[error("simulation quote: the {what} ends at the Arca Simulation Root CA (\"{root}\"), which is trusted only when the policy allows simulation and the simulation root is configured")]
    SimulationQuote {
        /// Which chain.
        what: String,
        /// The simulation root's subject.
        root: String,
    },
    /// The supplied root certificate has the anchor's key but is not the anchor certificate byte for byte.
    #[error("the {what} embeds a root certificate with the trusted key that is not byte-identical to the trust anchor (exact-certificate anchoring was requested)")]
    RootCertificateMismatch {
        /// Which chain.
        what: String,
    },
    /// A certificate's signature does not verify under its issuer's key.
    #[error("bad signature on certificate \"{subject}\" in the {what}")]
    CertificateSignature {
        /// Which chain.
        what: String,
        /// The certificate's subject.
        subject: String,
    },
    /// A certificate is outside its validity window at the verification time.
    #[error("certificate \"{subject}\" in the {what} is {state}: {window}")]
    CertificateValidity {
        /// Which chain.
        what: String,
        /// The certificate's subject.
        subject: String,
        /// "expired" or "not yet valid".
        state: &'static str,
        /// The verification time and the certificate's window, in words.
        window: String,
    },
    /// A certificate is listed in a CRL.
    #[error("certificate \"{subject}\" (serial {serial}) is revoked by the {crl}")]
    Revoked {
        /// The certificate's subject.
        subject: String,
        /// Its serial number, hex.
        serial: String,
        /// Which CRL lists it.
        crl: &'static str,
    },
    /// A CRL fails verification.
    #[error("the {crl} is invalid: {reason}")]
    Crl {
        /// Which CRL ("root CA CRL", "PCK CRL").
        crl: &'static str,
        /// Why.
        reason: String,
    },
    /// The SGX extensions of a PCK certificate are missing or malformed.
    #[error("the PCK certificate's SGX extensions are invalid: {0}")]
    PckExtensions(String),
    /// A collateral item is missing.
    #[error("collateral is incomplete: {0} is missing")]
    CollateralMissing(&'static str),
    /// A collateral item is malformed.
    #[error("collateral item {item} is malformed: {reason}")]
    Collateral {
        /// The item (e.g. "tcb_info", "qe_identity.tcbLevels[0]").
        item: String,
        /// Why.
        reason: String,
    },
    /// The signature over a TCB info or QE identity does not verify over the exact received bytes.
    #[error(
        "the {what} signature does not verify over the received bytes (tampered, or signed by another key)"
    )]
    CollateralSignature {
        /// "TCB info" or "QE identity".
        what: &'static str,
    },
    /// TCB info or QE identity outside its issueDate .. nextUpdate window.
    #[error("{what} {state} at {at} (issued {issue_date}, next update {next_update})")]
    CollateralValidity {
        /// "TCB info" or "QE identity".
        what: &'static str,
        /// "expired" or "not yet valid".
        state: &'static str,
        /// The verification time.
        at: String,
        /// issueDate.
        issue_date: String,
        /// nextUpdate.
        next_update: String,
    },
    /// The collateral is for another platform or TEE than the quote.
    #[error("the {item} does not match the quote: expected {expected}, found {found}")]
    CollateralMismatch {
        /// Which field.
        item: &'static str,
        /// The value the quote/PCK certificate requires.
        expected: String,
        /// The value in the collateral.
        found: String,
    },
    /// No TCB level of the TCB info is met by the platform.
    #[error("TCB not supported: no TCB level in the TCB info is met by the platform ({0})")]
    TcbNotSupported(String),
    /// The TDX module identity does not match.
    #[error("the TDX module does not match the TCB info: {0}")]
    TdxModuleMismatch(String),
    /// The quoting enclave does not match the QE identity.
    #[error("QE identity mismatch: the quoting enclave's {field} does not match the QE identity (expected {expected}, found {found})")]
    QeIdentityMismatch {
        /// Which field.
        field: &'static str,
        /// Expected value (hex).
        expected: String,
        /// Found value (hex).
        found: String,
    },
    /// The QE report signature does not verify under the PCK key.
    #[error("the QE report signature does not verify under the PCK certificate's key")]
    QeReportSignature,
    /// The QE report does not bind the attestation key.
    #[error("the QE report does not bind the attestation key: REPORTDATA is not SHA-256(attestation key || QE auth data) followed by zeros")]
    QeReportBinding,
    /// The ISV (quote) signature does not verify under the attestation key.
    #[error("the quote signature does not verify under the attestation key (header or body altered)")]
    QuoteSignature,
    /// A policy refused verified evidence.
    #[error("refused by policy: {0}")]
    Policy(String),
    /// RA-TLS evidence is missing, malformed or not bound to the certificate key.
    #[error("RA-TLS: {0}")]
    RaTls(String),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("read", "write", "create directory").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Fetching collateral over HTTP failed.
    #[error("fetching {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Creating keys, certificates or signatures failed.
    #[error("{step}: {reason}")]
    Crypto {
        /// The step (e.g. "generate the simulation root CA key").
        step: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn malformed(structure: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            structure,
            reason: reason.into(),
        }
    }

    pub(crate) fn collateral(item: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Collateral {
            item: item.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn crypto(step: &'static str, reason: impl std::fmt::Display) -> Self {
        Error::Crypto {
            step,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
