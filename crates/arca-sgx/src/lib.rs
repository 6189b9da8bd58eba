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
mod sigstruct;

pub use crate::attributes::{Attributes, MiscSelect};
pub use crate::error::Error;
pub use crate::identity::{Mrenclave, Mrsigner};
pub use crate::measure::{MeasurementBuilder, CHUNK_SIZE, PAGE_SIZE};
pub use crate::report::{ReportBody, TargetInfo};
pub use crate::secinfo::{PageType, Secinfo, SecinfoFlags};
pub use crate::sgxs::{measure_sgxs, PageContent, SgxsMeasurement, SgxsReader, SgxsRecord, SgxsWriter};
pub use crate::sigstruct::{Sigstruct, SigstructFields};
