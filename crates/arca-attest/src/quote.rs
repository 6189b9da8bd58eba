//! DCAP quotes v3, v4 and v5 (SGX and TDX 1.0/1.5 bodies) as exact byte types, parsed with a reader.
//!
//! Layout (all integers little-endian): a 48-byte header; the body (v3/v4: implied by the version and TEE
//! type; v5: `u16 body type ‖ u32 size ‖ body`); `u32` signature-data length; the signature data. The ISV
//! signature covers every byte before that length ([`Quote::signed_bytes`]).

use std::borrow::Cow;

use crate::error::Error;
use crate::reader::Reader;
use arca_sgx::ReportBody;

/// Intel's QE vendor ID, the only one accepted.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];

/// The TEE a quote comes from (header offset 4). Unknown values are kept, not mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TeeType(pub u32);

impl TeeType {
    /// Intel SGX.
    pub const SGX: TeeType = TeeType(0);
    /// Intel TDX.
    pub const TDX: TeeType = TeeType(0x81);

    /// "SGX", "TDX" or the number.
    pub fn name(self) -> Cow<'static, str> {
        match self {
            TeeType::SGX => "SGX".into(),
            TeeType::TDX => "TDX".into(),
            TeeType(n) => format!("0x{n:x}").into(),
        }
    }
}

/// The 48-byte quote header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteHeader {
    /// @0: quote version (3, 4 or 5).
    pub version: u16,
    /// @2: attestation key type (2 = ECDSA P-256).
    pub attestation_key_type: u16,
    /// @4: TEE type.
    pub tee_type: TeeType,
    /// @8: QE SVN (v3) / reserved.
    pub qe_svn: u16,
    /// @10: PCE SVN (v3) / reserved.
    pub pce_svn: u16,
    /// @12: QE vendor ID.
    pub qe_vendor_id: [u8; 16],
    /// @28: user data (the first 16 bytes are the platform's QE ID).
    pub user_data: [u8; 20],
}

impl QuoteHeader {
    /// Size in bytes.
    pub const SIZE: usize = 48;
}

/// A TDX 1.0 TD report body (584 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdReport10 {
    /// @0: TEE_TCB_SVN (byte 0: module ISVSVN, byte 1: module major version).
    pub tee_tcb_svn: [u8; 16],
    /// @16: MRSEAM.
    pub mr_seam: [u8; 48],
    /// @64: MRSIGNERSEAM.
    pub mr_signer_seam: [u8; 48],
    /// @112: SEAMATTRIBUTES.
    pub seam_attributes: [u8; 8],
    /// @120: TDATTRIBUTES (bit 0 = DEBUG).
    pub td_attributes: [u8; 8],
    /// @128: XFAM.
    pub xfam: [u8; 8],
    /// @136: MRTD.
    pub mr_td: [u8; 48],
    /// @184: MRCONFIGID.
    pub mr_config_id: [u8; 48],
    /// @232: MROWNER.
    pub mr_owner: [u8; 48],
    /// @280: MROWNERCONFIG.
    pub mr_owner_config: [u8; 48],
    /// @328: RTMR0..3.
    pub rtmr: [[u8; 48]; 4],
    /// @520: REPORTDATA.
    pub report_data: [u8; 64],
}

impl TdReport10 {
    /// Size in bytes.
    pub const SIZE: usize = 584;

    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(TdReport10 {
            tee_tcb_svn: r.array("TEE_TCB_SVN")?,
            mr_seam: r.array("MRSEAM")?,
            mr_signer_seam: r.array("MRSIGNERSEAM")?,
            seam_attributes: r.array("SEAMATTRIBUTES")?,
            td_attributes: r.array("TDATTRIBUTES")?,
            xfam: r.array("XFAM")?,
            mr_td: r.array("MRTD")?,
            mr_config_id: r.array("MRCONFIGID")?,
            mr_owner: r.array("MROWNER")?,
            mr_owner_config: r.array("MROWNERCONFIG")?,
            rtmr: [
                r.array("RTMR0")?,
                r.array("RTMR1")?,
                r.array("RTMR2")?,
                r.array("RTMR3")?,
            ],
            report_data: r.array("REPORTDATA")?,
        })
    }

    /// True when the TD's DEBUG attribute (TDATTRIBUTES bit 0) is set.
    pub fn debug(&self) -> bool {
        self.td_attributes[0] & 1 != 0
    }
}

/// A TDX 1.5 TD report body (648 bytes): the 1.0 body plus two fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdReport15 {
    /// @0..584: the TDX 1.0 fields.
    pub base: TdReport10,
    /// @584: TEE_TCB_SVN2 (the current TCB after a TD-preserving module update).
    pub tee_tcb_svn2: [u8; 16],
    /// @600: MRSERVICETD.
    pub mr_service_td: [u8; 48],
}

impl TdReport15 {
    /// Size in bytes.
    pub const SIZE: usize = 648;
}

/// The attested body of a quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuoteBody {
    /// An SGX enclave REPORT body (384 bytes).
    Sgx(ReportBody),
    /// A TDX 1.0 TD report (584 bytes).
    Td10(TdReport10),
    /// A TDX 1.5 TD report (648 bytes).
    Td15(TdReport15),
}

impl QuoteBody {
    /// The TD report fields common to TDX 1.0 and 1.5, if this is a TD.
    pub fn td(&self) -> Option<&TdReport10> {
        match self {
            QuoteBody::Sgx(_) => None,
            QuoteBody::Td10(td) => Some(td),
            QuoteBody::Td15(td) => Some(&td.base),
        }
    }

    /// The SGX REPORT body, if this is an enclave.
    pub fn sgx(&self) -> Option<&ReportBody> {
        match self {
            QuoteBody::Sgx(r) => Some(r),
            _ => None,
        }
    }

    /// The 64-byte REPORTDATA chosen by the attested software.
    pub fn report_data(&self) -> [u8; 64] {
        match self {
            QuoteBody::Sgx(r) => crate::sgx::report_data(r),
            QuoteBody::Td10(td) => td.report_data,
            QuoteBody::Td15(td) => td.base.report_data,
        }
    }
}

/// Certification data: how the quote proves which platform's PCK key signed the QE report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificationData<'a> {
    /// Types 1, 2, 3: PPID (clear, RSA-2048- or RSA-3072-encrypted) with CPUSVN, PCESVN and PCEID. The PCK
    /// certificate must be supplied out of band.
    Ppid {
        /// The certification data type (1, 2 or 3).
        kind: u16,
        /// The raw data.
        data: &'a [u8],
    },
    /// Type 5: the PCK certificate chain (PCK → intermediate → root), as PEM or as concatenated DER.
    PckChain(&'a [u8]),
    /// Any other type, kept as is.
    Other {
        /// The type.
        kind: u16,
        /// The raw data.
        data: &'a [u8],
    },
}

impl CertificationData<'_> {
    /// The certification data type number.
    pub fn kind(&self) -> u16 {
        match self {
            CertificationData::Ppid { kind, .. } | CertificationData::Other { kind, .. } => *kind,
            CertificationData::PckChain(_) => 5,
        }
    }

    /// The DER certificates of a type-5 chain, in the order given.
    pub fn pck_chain_der(&self) -> Result<Vec<Cow<'_, [u8]>>, Error> {
        match self {
            CertificationData::PckChain(data) => {
                crate::pki::split_certificates(data, "PCK certificate chain")
            }
            other => Err(Error::PckCertificateRequired {
                cert_type: other.kind(),
            }),
        }
    }
}

/// The signature data of a quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureData<'a> {
    /// ECDSA P-256 signature (r ‖ s) over the signed region, by the attestation key.
    pub isv_signature: [u8; 64],
    /// The attestation key (x ‖ y).
    pub attestation_key: [u8; 64],
    /// The quoting enclave's REPORT body.
    pub qe_report: ReportBody,
    /// The QE report's 384 bytes as received.
    pub qe_report_bytes: &'a [u8],
    /// ECDSA P-256 signature (r ‖ s) over the QE report, by the PCK key.
    pub qe_report_signature: [u8; 64],
    /// QE authentication data.
    pub qe_auth_data: &'a [u8],
    /// Certification data.
    pub certification: CertificationData<'a>,
    /// Every byte from the attestation key to the end of the certification data (the warm-cache key).
    pub(crate) tail: &'a [u8],
    /// Offsets (in the quote) of: attestation key, QE report, QE report signature, QE auth data (with its size).
    pub(crate) offsets: SigOffsets,
}

/// Offsets of signature-data fields within the quote, for tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct SigOffsets {
    pub(crate) isv_signature: usize,
    pub(crate) attestation_key: usize,
    pub(crate) qe_report: usize,
    pub(crate) qe_report_signature: usize,
    pub(crate) qe_auth_data: usize,
    pub(crate) qe_auth_data_end: usize,
}

/// A parsed DCAP quote borrowing the bytes it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote<'a> {
    /// The header.
    pub header: QuoteHeader,
    /// The attested body.
    pub body: QuoteBody,
    /// The signature data.
    pub signature: SignatureData<'a>,
    signed: &'a [u8],
}

impl<'a> Quote<'a> {
    /// Parses a quote. Trailing zero bytes (padding) are tolerated; anything else after the quote is refused.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes, "quote");
        let header = QuoteHeader {
            version: r.u16("version")?,
            attestation_key_type: r.u16("attestation key type")?,
            tee_type: TeeType(r.u32("TEE type")?),
            qe_svn: r.u16("QE SVN")?,
            pce_svn: r.u16("PCE SVN")?,
            qe_vendor_id: r.array("QE vendor ID")?,
            user_data: r.array("user data")?,
        };
        if !matches!(header.version, 3..=5) {
            return Err(unsupported("version", header.version));
        }
        if header.attestation_key_type != 2 {
            return Err(unsupported(
                "attestation key type (only 2, ECDSA P-256, is defined)",
                header.attestation_key_type,
            ));
        }
        if header.qe_vendor_id != INTEL_QE_VENDOR_ID {
            return Err(unsupported("QE vendor ID", hex::encode(header.qe_vendor_id)));
        }
        let body = match (header.version, header.tee_type) {
            (3, TeeType::SGX) | (4, TeeType::SGX) => {
                QuoteBody::Sgx(read_report(&mut r, "ISV enclave report")?)
            }
            (4, TeeType::TDX) => QuoteBody::Td10(TdReport10::read(&mut r)?),
            (3 | 4, t) => return Err(unsupported("TEE type", t.name())),
            _ => {
                let body_type = r.u16("body type")?;
                let size = r.u32("body size")? as usize;
                let expected = match (body_type, header.tee_type) {
                    (1, TeeType::SGX) => ReportBody::SIZE,
                    (2, TeeType::TDX) => TdReport10::SIZE,
                    (3, TeeType::TDX) => TdReport15::SIZE,
                    (b, t) => {
                        return Err(Error::malformed(
                            "quote",
                            format!("v5 body type {b} does not fit TEE type {}", t.name()),
                        ))
                    }
                };
                if size != expected {
                    return Err(Error::malformed(
                        "quote",
                        format!("v5 body type {body_type} has size {size}, expected {expected}"),
                    ));
                }
                match body_type {
                    1 => QuoteBody::Sgx(read_report(&mut r, "ISV enclave report")?),
                    2 => QuoteBody::Td10(TdReport10::read(&mut r)?),
                    _ => QuoteBody::Td15(TdReport15 {
                        base: TdReport10::read(&mut r)?,
                        tee_tcb_svn2: r.array("TEE_TCB_SVN2")?,
                        mr_service_td: r.array("MRSERVICETD")?,
                    }),
                }
            }
        };
        let signed = &bytes[..r.pos()];
        let sig_len = r.u32("signature data length")? as usize;
        let sig_start = r.pos();
        let sig_bytes = r.take(sig_len, "signature data")?;
        let signature = parse_signature_data(bytes, sig_start, sig_bytes, header.version)?;
        ensure_zero_tail(bytes, sig_start + sig_len, "quote")?;
        Ok(Quote {
            header,
            body,
            signature,
            signed,
        })
    }

    /// The bytes the ISV signature covers: everything before the signature-data length.
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.signed
    }

    /// The TEE type.
    pub fn tee_type(&self) -> TeeType {
        self.header.tee_type
    }

    /// Byte ranges of the fields a verifier checks with a signature or a hash: header and body, ISV
    /// signature, attestation key, QE report, QE report signature, QE auth data (with its size field).
    /// Flipping any bit inside them must make verification fail.
    pub fn authenticated_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let o = &self.signature.offsets;
        vec![
            0..self.signed.len(),
            o.isv_signature..o.isv_signature + 64,
            o.attestation_key..o.attestation_key + 64,
            o.qe_report..o.qe_report + ReportBody::SIZE,
            o.qe_report_signature..o.qe_report_signature + 64,
            o.qe_auth_data..o.qe_auth_data_end,
        ]
    }
}

fn unsupported(field: &'static str, value: impl std::fmt::Display) -> Error {
    Error::Unsupported {
        structure: "quote header",
        field,
        value: value.to_string(),
    }
}

fn read_report(r: &mut Reader<'_>, what: &'static str) -> Result<ReportBody, Error> {
    ReportBody::parse(r.take(ReportBody::SIZE, what)?).map_err(|source| Error::Report { what, source })
}

/// Refuses non-zero bytes in `bytes[from..]`.
fn ensure_zero_tail(bytes: &[u8], from: usize, structure: &'static str) -> Result<(), Error> {
    let tail = bytes.get(from..).unwrap_or_default();
    if tail.iter().any(|&b| b != 0) {
        return Err(Error::TrailingData {
            structure,
            offset: from,
            len: tail.len(),
        });
    }
    Ok(())
}

fn parse_signature_data<'a>(
    quote: &'a [u8],
    base: usize,
    sig: &'a [u8],
    version: u16,
) -> Result<SignatureData<'a>, Error> {
    let mut r = Reader::new(sig, "quote signature data");
    let isv_signature = r.array("ISV signature")?;
    let key_at = r.pos();
    let attestation_key = r.array("attestation key")?;
    let mut offsets = SigOffsets {
        isv_signature: base,
        attestation_key: base + key_at,
        ..SigOffsets::default()
    };
    let (qe, end) = if version == 3 {
        let qe = parse_qe_certification(&mut r, base, &mut offsets)?;
        (qe, r.pos())
    } else {
        let kind = r.u16("certification data type")?;
        let size = r.u32("certification data size")? as usize;
        if kind != 6 {
            return Err(Error::Unsupported {
                structure: "quote signature data",
                field: "outer certification data type (v4/v5 need 6, QE report certification data)",
                value: kind.to_string(),
            });
        }
        let inner_at = base + r.pos();
        let inner = r.take(size, "QE report certification data")?;
        let mut ir = Reader::new(inner, "QE report certification data");
        let qe = parse_qe_certification(&mut ir, inner_at, &mut offsets)?;
        ensure_zero_tail(inner, ir.pos(), "QE report certification data")?;
        (qe, r.pos())
    };
    ensure_zero_tail(sig, end, "quote signature data")?;
    let (qe_report_bytes, qe_report_signature, qe_auth_data, certification, cert_end) = qe;
    let qe_report = ReportBody::parse(qe_report_bytes).map_err(|source| Error::Report {
        what: "QE report",
        source,
    })?;
    Ok(SignatureData {
        isv_signature,
        attestation_key,
        qe_report,
        qe_report_bytes,
        qe_report_signature,
        qe_auth_data,
        certification,
        tail: &quote[base + key_at..cert_end],
        offsets,
    })
}

type QeParts<'a> = (&'a [u8], [u8; 64], &'a [u8], CertificationData<'a>, usize);

/// Reads QE report, its signature, auth data and certification data; returns the end offset in the quote.
fn parse_qe_certification<'a>(
    r: &mut Reader<'a>,
    base: usize,
    offsets: &mut SigOffsets,
) -> Result<QeParts<'a>, Error> {
    offsets.qe_report = base + r.pos();
    let qe_report = r.take(ReportBody::SIZE, "QE report")?;
    offsets.qe_report_signature = base + r.pos();
    let qe_sig = r.array("QE report signature")?;
    offsets.qe_auth_data = base + r.pos();
    let auth_len = r.u16("QE auth data size")? as usize;
    let auth = r.take(auth_len, "QE auth data")?;
    offsets.qe_auth_data_end = base + r.pos();
    let kind = r.u16("certification data type")?;
    let size = r.u32("certification data size")? as usize;
    let data = r.take(size, "certification data")?;
    let cert = match kind {
        1..=3 => CertificationData::Ppid { kind, data },
        5 => CertificationData::PckChain(data),
        _ => CertificationData::Other { kind, data },
    };
    Ok((qe_report, qe_sig, auth, cert, base + r.pos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(arca_testkit::vector(name)).unwrap()
    }

    #[test]
    fn parses_sample_sgx_quote_v3_with_pem_chain() {
        let bytes = vector("dcap-qvl/sample_sgx_quote");
        let q = Quote::parse(&bytes).unwrap();
        assert_eq!(q.header.version, 3);
        assert_eq!(q.tee_type(), TeeType::SGX);
        assert_eq!(q.signed_bytes().len(), 48 + 384);
        assert_eq!(q.signature.certification.kind(), 5);
        assert_eq!(q.signature.certification.pck_chain_der().unwrap().len(), 3);
    }

    #[test]
    fn parses_tdx_v4_and_v5_bodies() {
        let bytes = vector("dcap-qvl/sample_tdx_quote");
        let q = Quote::parse(&bytes).unwrap();
        assert!(matches!(q.body, QuoteBody::Td10(_)));
        assert_eq!(q.signed_bytes().len(), 48 + 584);
        let bytes = vector("dcap-qvl/sample_tdx_quote_outdated");
        let q = Quote::parse(&bytes).unwrap();
        assert_eq!(q.header.version, 5);
        assert!(matches!(q.body, QuoteBody::Td15(_)));
        assert_eq!(q.signed_bytes().len(), 48 + 6 + 648);
    }

    #[test]
    fn parses_certification_data_types_1_and_3_and_der_chains() {
        let bytes = vector("intel-qvl-sampledata/quote.dat");
        let q = Quote::parse(&bytes).unwrap();
        assert_eq!(q.signature.certification.kind(), 1);
        assert!(q.signature.qe_auth_data.is_empty());
        assert!(matches!(
            q.signature.certification.pck_chain_der(),
            Err(Error::PckCertificateRequired { cert_type: 1 })
        ));
        let bytes = vector("rust-sgx/dcap-ql_tests_quote_raw_tcb.bin");
        let q = Quote::parse(&bytes).unwrap();
        assert_eq!(q.signature.certification.kind(), 3);
        let bytes = vector("intel-qvl-sampledata/tdx/quote.dat");
        let q = Quote::parse(&bytes).unwrap();
        assert_eq!(q.signature.certification.pck_chain_der().unwrap().len(), 3);
    }

    #[test]
    fn tolerates_trailing_zero_padding_but_not_trailing_data() {
        let mut bytes = vector("dcap-qvl/sample_sgx_quote");
        bytes.extend_from_slice(&[0u8; 100]);
        Quote::parse(&bytes).unwrap();
        bytes.push(1);
        assert!(matches!(Quote::parse(&bytes), Err(Error::TrailingData { .. })));
    }

    #[test]
    fn rejects_every_truncation_without_panicking() {
        let bytes = vector("dcap-qvl/sample_tdx_quote");
        let full = Quote::parse(&bytes).unwrap();
        let end = full.signature.offsets.qe_auth_data_end;
        for len in 0..end {
            assert!(Quote::parse(&bytes[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn rejects_unknown_versions_and_key_types() {
        let mut bytes = vector("dcap-qvl/sample_sgx_quote");
        bytes[0] = 2;
        assert!(matches!(
            Quote::parse(&bytes),
            Err(Error::Unsupported { field: "version", .. })
        ));
        bytes[0] = 3;
        bytes[2] = 3;
        assert!(Quote::parse(&bytes).is_err());
    }
}
