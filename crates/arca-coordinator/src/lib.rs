//! The Arca coordinator: the control plane of a confidential deployment, compatible with MarbleRun
//! manifests and its client API.
//!
//! Its one job: admit enclaves (marbles) that prove, by a verified quote, that they run a package the
//! manifest names, and give them their parameters, secrets and mesh certificates — while letting outside
//! clients verify the coordinator itself and audit everything it did.
//!
//! Main types:
//! - [`Coordinator`]: the state machine (accepting manifest → accepting marbles; recovery) and every
//!   operation (set manifest, activate, secrets, updates, recovery, counters, audit).
//! - [`Store`] / [`FileStore`]: durable storage (the sealed state and the audit log), a trait so that a
//!   replicated store can be added; [`KeySealer`] / [`SimKeySealer`]: who seals the data key.
//! - [`Enclave`] and [`check_package`]: the package policy applied to a verified quote.
//! - [`verify_log`], [`SignedHead`]: the hash-chained audit log and its signed head, verifiable offline.
//!
//! Design reasons:
//! - **No global lock across slow work.** Activations read an immutable snapshot, reserve their slot
//!   under a short mutex (so `MaxActivations` is exact under any concurrency), verify and generate keys
//!   unlocked, and record under the mutex again.
//! - **Durable before answered, without a write per request.** A commit thread seals the whole state once
//!   per batch (group commit); callers wait for the batch that holds their change. A commit that fails
//!   stops the coordinator rather than answering from a state that may not be on disk.
//! - **The sealed state is the commit point.** Audit lines are appended (and flushed) before the state is
//!   replaced; lines beyond what the state commits are an interrupted commit and are dropped on start,
//!   fewer lines mean truncation and are refused. The file store replaces the state atomically without a
//!   rename: two state slots, each commit written in place over the one not holding the newest state, as a
//!   checksummed record with a sequence number, and `fdatasync`ed; a reader takes the newest valid record,
//!   so a torn write loses only the commit that was never answered (see [`FileStore`]).
//! - **Simulation is explicit**: a simulated quote is refused unless the coordinator runs with
//!   `allow_simulation`, with an error that says so.
#![forbid(unsafe_code)]

mod api;
mod attestation;
mod audit;
mod b64;
pub mod client;
mod coordinator;
mod crypto;
mod dcap;
mod error;
mod metrics;
mod pki;
mod policy;
mod recovery;
mod seal;
mod secrets;
mod state;
mod store;

pub use api::client::{app, ApiState, ClientCert};
pub use api::mesh::MeshService;
pub use api::server::{
    cert_fingerprint, mesh_router, metrics_router, serve, serve_tls, EvidenceFn, Listeners, ServeConfig,
    ServerCerts, ServerIdentity,
};
pub use attestation::{marble_enclave, Attester, MarbleVerifier};
pub use audit::{verify_log, AuditEntry, AuditReport, SignedHead};
pub use coordinator::{
    Activation, ActivationRequest, Coordinator, ManifestInfo, Options, PendingInfo, Status,
};
pub use crypto::{rsa_oaep_decrypt, rsa_pss_sign, verify_root_signature, DataKey};
pub use dcap::{dice_evidence, DcapVerifier, QuoterAttester};
pub use error::Error;
pub use pki::{INTERMEDIATE_CN, MARBLE_O, ROOT_CN};
pub use policy::{check_package, Enclave};
pub use seal::{KeySealer, SimKeySealer};
pub use store::{FileStore, Store};
