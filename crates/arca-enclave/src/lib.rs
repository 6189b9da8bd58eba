//! The enclave manifest, the enclave layout and the one identity function of an Arca enclave.
//!
//! **One job:** define what an Arca enclave *is*, so that every party computes the same identity. The
//! converter writes a manifest and computes MRENCLAVE; the launcher, the simulation platform, the coordinator
//! (for its own enclave) and `arca inspect` recompute it — all through [`mrenclave`] (contract 2 of the
//! architecture). Nothing else in Arca lays out enclave pages.
//!
//! **Main types.**
//! - [`EnclaveManifest`] — `/arca/enclave.toml` (format 1): the process (exec, argv, env, workdir, user), the
//!   enclave settings (ISVPRODID, ISVSVN, DEBUG, size, threads), the trusted-file list hash, the protected
//!   mounts and their key names, what the host may still set, and the pinned [`CoordinatorPolicy`].
//! - [`CoordinatorPolicy`] — which coordinator the launcher may talk to (contract 5), with
//!   [`CoordinatorPolicy::development`], the default that pins the public development key (simulation only).
//! - [`EnclaveLayout`] / [`mrenclave`] — the layout (version [`LAYOUT_VERSION`]) and its measurement through
//!   the `arca-sgx` [`MeasurementBuilder`](arca_sgx::MeasurementBuilder); [`sigstruct_fields`] gives the
//!   SIGSTRUCT fields that go with it.
//! - [`paths`] — in-image paths (contract 1), labels, engine names, the run-time allow-list (contract 11).
//!
//! ```
//! # fn main() -> Result<(), arca_enclave::Error> {
//! # let launcher = std::fs::read("/proc/self/exe").unwrap_or_default();
//! # let manifest_bytes: Vec<u8> = Vec::new();
//! # if manifest_bytes.is_empty() { return Ok(()); }
//! let identity = arca_enclave::mrenclave(&launcher, &manifest_bytes)?;
//! println!("MRENCLAVE {identity}");
//! # Ok(()) }
//! ```
//!
//! **Design reasons.**
//! - *The manifest is measured as bytes, not as a value.* Two serialisations of the same value would
//!   otherwise give two identities; the launcher measures the file it reads, so there is nothing to
//!   canonicalise and nothing to get wrong. [`EnclaveManifest::to_toml`] is deterministic.
//! - *Heap and stacks are not added at build time* (SGX2 dynamic memory), so measuring an enclave costs time
//!   proportional to the launcher and manifest, not to the enclave size — the simulation platform measures
//!   every caller.
//! - *A header page records the lengths* of the launcher and the manifest, so trailing zero bytes cannot hide
//!   in page padding.
//! - *Strict parsing*: unknown manifest keys are refused, so a manifest of a later format is never half-read.
#![forbid(unsafe_code)]

mod error;
mod layout;
mod manifest;
pub mod paths;
mod policy;

pub use crate::error::Error;
pub use crate::layout::{
    inspect_launcher, mrenclave, sigstruct_fields, EnclaveLayout, LauncherInfo, Region, RegionKind,
    HEADER_MAGIC, LAYOUT_VERSION, MAX_LAUNCHER, MAX_MANIFEST, NSSA, SSAFRAMESIZE,
};
pub use crate::manifest::{
    is_clean_absolute_path, is_key_name, EnclaveManifest, EnclaveSettings, Files, HostSettings, Process,
    ProtectedMount, MANIFEST_FORMAT, MAX_ENCLAVE_SIZE, MAX_THREADS, MIN_ENCLAVE_SIZE,
};
pub use crate::paths::Engine;
pub use crate::policy::{
    CoordinatorEvidence, CoordinatorIdentity, CoordinatorPolicy, PolicyMismatch, COORDINATOR_ISVPRODID,
    COORDINATOR_MIN_ISVSVN, DEV_COORDINATOR_MRSIGNER,
};
pub use arca_sgx::{Mrenclave, Mrsigner};
