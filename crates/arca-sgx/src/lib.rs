//! SGX byte formats and enclave identity.
//!
//! **One job:** say exactly, offline, who an SGX enclave is — its MRENCLAVE (the measurement of what is
//! loaded) and its MRSIGNER (the hash of the key that signed its SIGSTRUCT) — with the same bytes the CPU and
//! Intel's tools use. No SGX hardware is needed: everything here is arithmetic over byte formats.
//!
//! # Main types
//!
//! - Architectural structures, one exact type each, with `SIZE`, `parse(&[u8])` and `to_bytes()`:
//!   [`Sigstruct`] (1808 B; its signed content is [`SigstructFields`]), [`ReportBody`] (384 B, also the
//!   body of an SGX quote), [`TargetInfo`] (512 B), [`Secinfo`] (64 B, with [`SecinfoFlags`] and
//!   [`PageType`]), [`Attributes`] (16 B; [`Attributes::DEBUG`] is flags bit 1) and [`MiscSelect`].
//! - Identities: [`Mrenclave`] and [`Mrsigner`], 32-byte newtypes shown and serialised as lower-case hex.
//! - Measurement: [`MeasurementBuilder`] replays ECREATE, EADD and EEXTEND and returns MRENCLAVE.
//! - SGXS streams: [`SgxsReader`], [`SgxsWriter`], [`measure_sgxs`].
//! - Signing: [`SigningKey`] (RSA-3072, exponent 3; generate, PKCS#1/PKCS#8 PEM), [`Sigstruct::sign`],
//!   [`Sigstruct::verify`], [`Sigstruct::verify_enclave`], [`Sigstruct::mrsigner`]; [`SigstructSigner`] is the
//!   seam for other key stores, [`Sigstruct::assemble`] for two-step (offline) signing.
//!
//! # Example
//!
//! ```
//! use arca_sgx::{MeasurementBuilder, PageType, SecinfoFlags};
//!
//! # fn main() -> Result<(), arca_sgx::Error> {
//! // An enclave of 16 KiB: one code page measured with its content, one TCS page.
//! let mut builder = MeasurementBuilder::ecreate(1, 0x4000)?;
//! let code = [0xc3u8; 4096];
//! builder.add_measured_page(0, SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::X), &code)?;
//! builder.add_unmeasured_page(0x1000, SecinfoFlags::page(PageType::TCS, SecinfoFlags::NONE))?;
//! let mrenclave = builder.finish();
//! assert_eq!(mrenclave.to_string().len(), 64);
//! # Ok(()) }
//! ```
//!
//! Signing the enclave measured above, then checking the result:
//!
//! ```
//! # use arca_sgx::{Attributes, MiscSelect, Mrenclave, Sigstruct, SigstructFields, SigningKey};
//! # fn main() -> Result<(), arca_sgx::Error> {
//! # let mrenclave = Mrenclave::new([1; 32]);
//! let key = SigningKey::from_pem(include_str!("../../../keys/arca-dev-coordinator.pem"))?;
//! let fields = SigstructFields {
//!     vendor: 0,
//!     date: SigstructFields::bcd_date(2026, 11, 28)?, // an input, never "today"
//!     swdefined: 0,
//!     miscselect: MiscSelect(0),
//!     miscmask: !0,
//!     cet_attributes: 0,
//!     cet_attributes_mask: 0,
//!     isvfamilyid: [0; 16],
//!     attributes: Attributes::new(Attributes::MODE64BIT, Attributes::XFRM_LEGACY),
//!     attributemask: Attributes::new(!0, !0xe4), // enforce every flag; AVX and up may vary
//!     enclavehash: mrenclave,
//!     isvextprodid: [0; 16],
//!     isvprodid: 1,
//!     isvsvn: 3,
//! };
//! let sigstruct = Sigstruct::sign(&fields, &key)?;
//! let reparsed = Sigstruct::parse(&sigstruct.to_bytes())?;
//! reparsed.verify_enclave(&mrenclave)?;
//! assert_eq!(reparsed.mrsigner(), key.mrsigner());
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Exact byte types, parsed with a reader.** Each structure is read field by field from a slice whose
//!   length was checked first; reserved bytes must be zero and constant fields (SIGSTRUCT HEADER, EXPONENT 3)
//!   must hold, so `parse(to_bytes(x)) == x` and a parsed value always serialises back to the same bytes.
//!   Unknown flag bits and page types are kept (newtypes with named constants), not rejected.
//! - **Signed and measured regions are methods**, not offsets scattered through callers:
//!   [`SigstructFields::signed_bytes`] returns exactly `[0..128] ‖ [900..1028]`.
//! - **The builder refuses what the CPU refuses** (unaligned offsets, pages outside the enclave or added
//!   twice, EEXTEND before EADD, TCS pages with permissions), so every MRENCLAVE it returns is one a real
//!   enclave can have. The SGXS reader adds the canonical-order rules on top and measures by replaying
//!   records through the same builder: one measurement code path.
//! - **Reproducible identities.** [`SigstructFields`] has no `Default` and no hidden clock: the DATE and every
//!   other field are inputs, and PKCS#1 v1.5 is deterministic, so the same inputs and key always give the same
//!   1808 bytes (Fortanix's signer, by contrast, stamps today's date by default).
//! - **Crypto behind a seam.** Signing goes through [`SigstructSigner`]; [`Sigstruct::sign`] verifies whatever
//!   a signer returns (signature and Q1/Q2) before handing out a SIGSTRUCT, so a faulty backend cannot produce
//!   an invalid one. The in-memory backend is RustCrypto's `rsa` (pure Rust, custom-exponent key generation,
//!   PKCS#1 and PKCS#8 PEM); Q1/Q2 use `crypto-bigint`, the bignum `rsa` is built on.
//! - **Verification is not trust.** [`Sigstruct::verify`] proves who signed; callers compare
//!   [`Sigstruct::mrsigner`] with the signer they expect.
//! - **Measurement speed**: records are hashed in place (the 256 data bytes are borrowed from the reader's
//!   buffer, never copied) with `sha2`, which uses the SHA-NI instructions when the CPU has them.
#![forbid(unsafe_code)]

mod attributes;
mod bytes;
mod error;
mod identity;
mod measure;
mod report;
mod secinfo;
mod sgxs;
mod sign;
mod sigstruct;

pub use crate::attributes::{Attributes, MiscSelect};
pub use crate::error::Error;
pub use crate::identity::{Mrenclave, Mrsigner};
pub use crate::measure::{MeasurementBuilder, CHUNK_SIZE, PAGE_SIZE};
pub use crate::report::{ReportBody, TargetInfo};
pub use crate::secinfo::{PageType, Secinfo, SecinfoFlags};
pub use crate::sgxs::{measure_sgxs, PageContent, SgxsMeasurement, SgxsReader, SgxsRecord, SgxsWriter};
pub use crate::sign::{SigningKey, SigstructSigner};
pub use crate::sigstruct::{Sigstruct, SigstructFields};
