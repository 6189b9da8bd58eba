//! The Arca coordinator: manifest, state machine, PKI, secrets, activation and client APIs, users, updates, recovery, sealing, audit log and stores.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
