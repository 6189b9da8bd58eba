//! Protected files: the Gramine-compatible encrypted file format, rollback protection, trusted-file lists and verification, and the FUSE shield.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
