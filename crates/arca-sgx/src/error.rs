//! The one error type of this crate.

use std::io;

/// Everything that can go wrong while parsing, measuring, signing or verifying.
///
/// Each message names the structure or step and the offending input (offset, field, value). Variants for which
/// [`Error::is_verification_failure`] is true mean "the checked thing is not valid" (a refused signature, a
/// wrong enclave hash), as opposed to bad input or I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fixed-size structure was given the wrong number of bytes.
    #[error("{what}: expected exactly {expected} bytes, got {found}")]
    Length {
        /// The structure being parsed.
        what: &'static str,
        /// Its architectural size.
        expected: usize,
        /// The length that was supplied.
        found: usize,
    },

    /// A reserved field that the architecture requires to be zero was not.
    #[error("{what}: reserved byte at offset {offset} is not zero")]
    ReservedNotZero {
        /// The structure being parsed.
        what: &'static str,
        /// Byte offset (within the structure) of the first non-zero reserved byte.
        offset: usize,
    },

    /// A SIGSTRUCT constant field (HEADER, HEADER2) does not hold its required value.
    #[error("SIGSTRUCT: {field} at offset {offset} is {found}, expected {expected} (not a SIGSTRUCT?)")]
    SigstructHeader {
        /// `HEADER` or `HEADER2`.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// The bytes found, in hex.
        found: String,
        /// The required bytes, in hex.
        expected: String,
    },

    /// A SIGSTRUCT field value is invalid (e.g. a DATE given as a calendar date that does not exist).
    #[error("SIGSTRUCT: {0}")]
    Sigstruct(String),

    /// The SIGSTRUCT's EXPONENT is not 3 (the only exponent SGX accepts).
    #[error("SIGSTRUCT: EXPONENT at offset 512 is {0}, expected 3")]
    SigstructExponent(u32),

    /// A measurement step (ECREATE, EADD, EEXTEND) was given values the CPU would refuse.
    #[error("measurement: {step} at enclave offset {offset:#x}: {problem}")]
    Measurement {
        /// `ECREATE`, `EADD` or `EEXTEND`.
        step: &'static str,
        /// The enclave offset (or size for ECREATE) concerned.
        offset: u64,
        /// What is wrong.
        problem: String,
    },

    /// An SGXS stream is malformed: truncated, out of order, unaligned, or holds an unknown record.
    #[error("SGXS: record {record} at byte {position}: {problem}")]
    Sgxs {
        /// Index of the record in the stream (0 = first).
        record: u64,
        /// Byte position of the record in the stream.
        position: u64,
        /// What is wrong.
        problem: String,
    },

    /// Reading or writing a stream failed.
    #[error("{context}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A hexadecimal identity (MRENCLAVE, MRSIGNER) could not be parsed.
    #[error("{what}: expected 64 hexadecimal digits, got {found:?}")]
    Hex {
        /// `MRENCLAVE` or `MRSIGNER`.
        what: &'static str,
        /// The text given (shortened when long).
        found: String,
    },

    /// An RSA key is not an SGX signing key (RSA-3072 with public exponent 3), or could not be decoded.
    #[error("signing key: {0}")]
    Key(String),

    /// The RSA operation itself failed.
    #[error("{step}: RSA failed")]
    Rsa {
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: rsa::Error,
    },

    /// The SIGSTRUCT's RSA signature does not verify with its own MODULUS.
    #[error("SIGSTRUCT signed by MRSIGNER {mrsigner} is refused: {reason}")]
    BadSignature {
        /// The signer the SIGSTRUCT claims, in hex.
        mrsigner: String,
        /// Why it is refused.
        reason: String,
    },

    /// Q1 or Q2 in the SIGSTRUCT are not the values derived from its signature and modulus.
    #[error("SIGSTRUCT: {field} does not match the signature and modulus (the CPU would refuse it)")]
    BadQ {
        /// `Q1` or `Q2`.
        field: &'static str,
    },

    /// The SIGSTRUCT signs another enclave than the one expected.
    #[error("SIGSTRUCT: ENCLAVEHASH is {found}, expected {expected}")]
    EnclaveHashMismatch {
        /// The expected MRENCLAVE.
        expected: String,
        /// The ENCLAVEHASH in the SIGSTRUCT.
        found: String,
    },
}

impl Error {
    /// True when this error means "verification refused the input" (bad signature, Q1/Q2, enclave hash),
    /// rather than unreadable input or a failed operation.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            Error::BadSignature { .. } | Error::BadQ { .. } | Error::EnclaveHashMismatch { .. }
        )
    }

    pub(crate) fn measurement(step: &'static str, offset: u64, problem: impl Into<String>) -> Self {
        Error::Measurement {
            step,
            offset,
            problem: problem.into(),
        }
    }
}
