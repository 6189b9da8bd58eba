//! DCAP attestation for Arca: parse and verify Intel DCAP quotes (v3/v4/v5, SGX and TDX 1.0/1.5) against
//! collateral at an explicit time under an explicit [`Policy`]; load collateral from files or fetch it from a
//! PCCS / PCS v4 service with an on-disk cache; create and use the simulation PKI of the `sim` engine; and
//! create and verify RA-TLS certificates, with rustls verifiers.
//!
//! # Main types
//! - [`Quote`] — a parsed quote, borrowing its bytes; exact byte types for the header, SGX REPORT body, TD
//!   reports and signature data.
//! - [`Verifier`] — trust anchors (Intel's SGX Root CA by default, a custom root, the simulation root) and a
//!   warm cache; [`Verifier::check`] returns [`VerifiedQuote`] or a typed [`Error`]; [`Verifier::verify`]
//!   also applies the [`Policy`] and returns a [`Verdict`] that says why, in words.
//! - [`Collateral`] — TCB info, QE identity, CRLs and issuer chains, kept as the exact bytes received;
//!   [`PccsClient`] fetches them.
//! - [`SimPki`], [`SimQuoter`] and the [`Quoter`] trait — what an engine implements to produce quotes.
//! - [`RaTlsIdentity`], [`RaTlsCertificate`], [`RaTlsVerifier`], [`server_config`], [`client_config`].
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use arca_attest::{Evidence, Policy, Quoter, ReportBody, SimPki, SimPkiOptions, SimQuoter, Verifier};
//!
//! let now = 1_760_000_000;
//! let pki = Arc::new(SimPki::create(SimPkiOptions::at(now))?);
//! let identity = ReportBody::parse(&[0; 384]).expect("an all-zero REPORT body is well-formed");
//! let quoter = SimQuoter::new(pki.clone(), identity);
//! let quote = quoter.quote(&[1; 64])?;
//! let verifier = Verifier::new().with_simulation_root(pki.root_anchor()?);
//! let verdict = verifier.verify(&Evidence::new(&quote, Some(pki.collateral())), &Policy::simulation(), now);
//! assert!(verdict.accepted, "{:?}", verdict.reasons);
//! // Intel's anchor alone refuses it, and says why.
//! let verdict = Verifier::new().verify(&Evidence::new(&quote, Some(pki.collateral())), &Policy::default(), now);
//! assert!(verdict.reasons[0].contains("simulation quote"));
//! # Ok::<(), arca_attest::Error>(())
//! ```
//!
//! # Design
//! - **Exact bytes.** Quotes are parsed with a bounds-checked reader into exact types; signatures over TCB info
//!   and QE identity are checked over the bytes received, never a re-serialisation; unknown values are kept.
//! - **Explicit time.** Every check takes the time as an argument; nothing reads the clock except the rustls
//!   verifiers (which take rustls' clock unless given a fixed time).
//! - **Crypto behind a provider.** All hashing and signature checks go through one seam (`crypto.rs`), backed
//!   by `ring` for its fast P-256 (about 68 µs per verification here, against 400 µs for RustCrypto).
//! - **Anchors are keys with names**: an older root certificate with Intel's key and name is accepted unless
//!   exact-certificate anchoring is asked for (see `docs/attestation.md`).
//! - **Simulation never passes silently**: simulated quotes are real DCAP quotes under a separate root that is
//!   trusted only when configured and allowed by the policy; otherwise the error says "simulation quote".
//! - **Warm cache** keyed by exact bytes: collateral by fingerprint, platform facts by the quote's signature-data
//!   tail, both within their validity windows; a warm check costs one ECDSA verification.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod collateral;
mod crypto;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod pccs;
mod pki;
mod policy;
mod quote;
mod ratls;
mod reader;
mod sgx;
mod sim;
mod tcb;
mod verify;

pub use arca_sgx::ReportBody;
pub use collateral::{Collateral, PcsResponses};
pub use error::Error;
pub use pccs::{PccsClient, PckCa, PlatformId};
pub use pki::{AnchorKind, PckExtensions, TrustAnchor, INTEL_SGX_ROOT_CA_DER, SIMULATION_ROOT_CN};
pub use policy::{HexBytes, Policy, TdxPolicy, Verdict};
pub use quote::{
    CertificationData, Quote, QuoteBody, QuoteHeader, SignatureData, TdReport10, TdReport15, TeeType,
    INTEL_QE_VENDOR_ID,
};
pub use ratls::{
    client_config, dice_evidence_extension, server_config, CollateralSource, PeerCertVerifier, PeerCheck,
    RaTlsCertificate, RaTlsEvidence, RaTlsFormat, RaTlsIdentity, RaTlsOptions, RaTlsVerifier,
};
pub use sim::{sim_qe_mrsigner, Quoter, SimPki, SimPkiOptions, SimQuoter, SIM_FMSPC};
pub use tcb::TcbStatus;
pub use verify::{Evidence, TcbEvaluation, VerifiedQuote, Verifier};
