//! One module per command (or command group). Each holds its clap argument struct and a short `run`.

// ── enclave identity (arca-sgx) ──
pub(crate) mod demo;
pub(crate) mod keygen;
pub(crate) mod sgx;

// ── attestation (arca-attest) ──
pub(crate) mod quote;
pub(crate) mod ratls;

// ── protected files (arca-pfs) ──
pub(crate) mod fs;

// ── images and conversion (arca-image, arca-enclave) ──
pub(crate) mod image;

// ── coordinator and its clients (arca-coordinator) ──
pub(crate) mod coord_client;
pub(crate) mod coord_ops;
pub(crate) mod coordinator;
pub(crate) mod manifest;
pub(crate) mod verify;
