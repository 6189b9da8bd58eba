//! Wire types shared by the Arca coordinator and its clients (launchers, the CLI, MarbleRun tools).
//!
//! Three things live here, each in its own module:
//! - [`manifest`]: MarbleRun manifests. [`Manifest::parse`] decodes JSON the way Go's `encoding/json` does for
//!   MarbleRun (field names case-insensitive, unknown fields ignored, `[]byte` as base64) and then validates
//!   everything — references between sections, key sizes, certificates, recovery keys — including a dry run of
//!   every `Files`/`Env` template ([`manifest::template`]). Problems are collected, each with its JSON path
//!   (`Users.Alice.Certificate: not a PEM-encoded certificate …`), so one run reports all of them.
//! - [`activation`]: the mesh API's gRPC service (tonic), wire-compatible with MarbleRun's
//!   `rpc.Marble/Activate`, plus monotonic counters (contract 9).
//! - [`api`]: the client REST API's request and response bodies (`/api/v2/…`, JSend envelopes).
//!
//! Design notes: the manifest is decoded from a `serde_json::Value` by hand rather than with derived
//! `Deserialize`, because Go's rules (case-insensitive names, keep going after a bad field) and JSON-path
//! error messages do not fit serde's derive. Templates are a deliberate subset of Go's `text/template`
//! (`{{ FUNC .Path }}`): enough for every MarbleRun manifest in the wild we know of, and small enough that a
//! dry run can prove that each template renders before any marble activates.
//!
//! ```
//! let json = br#"{"packages": {"p": {"UniqueID": "00000000000000000000000000000000000000000000000000000000000000aa"}},
//!                "Marbles": {"m": {"Package": "p", "Parameters": {"Env": {"K": "{{ hex .Secrets.k }}"}}}},
//!                "Secrets": {"k": {"Type": "symmetric-key", "Size": 128}}}"#;
//! let m = arca_protocol::Manifest::parse(json).unwrap();
//! assert_eq!(m.secrets["k"].size, 128);
//! ```
#![forbid(unsafe_code)]

pub mod activation;
pub mod api;
pub mod manifest;

pub use manifest::{fingerprint, Manifest, PackageUpdate, Problem};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not JSON.
    #[error("manifest is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The manifest decoded but is invalid; every problem names its JSON path.
    #[error("manifest is invalid ({} problem{}):\n  {}", .0.len(), if .0.len() == 1 { "" } else { "s" },
            .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<Problem>),
}

impl Error {
    /// The problems of an invalid manifest (empty for JSON syntax errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid(p) => p,
            Error::Json(_) => &[],
        }
    }
}
