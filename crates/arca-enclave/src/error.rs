//! The crate's one error type.

/// Why an enclave manifest, policy or layout was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest bytes are not a valid enclave manifest (TOML syntax, unknown key, wrong type).
    #[error("enclave manifest: {0}")]
    ManifestSyntax(String),
    /// The manifest parses but a value is not acceptable (the field is named).
    #[error("enclave manifest: `{field}`: {reason}")]
    ManifestValue {
        /// The manifest key, e.g. `enclave.size`.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The manifest declares a format this version of Arca does not read.
    #[error("enclave manifest: format {found} is not supported (this Arca reads format {supported})")]
    UnsupportedFormat {
        /// The `format` the manifest declares.
        found: u32,
        /// The format this crate reads and writes.
        supported: u32,
    },
    /// A coordinator policy is malformed.
    #[error("coordinator policy: {0}")]
    Policy(String),
    /// The launcher is not an ELF file Arca can lay out.
    #[error("launcher: {0}")]
    Launcher(String),
    /// The enclave layout does not fit, or the measurement refused a page.
    #[error("enclave layout: {0}")]
    Layout(String),
    /// An error from the SGX formats crate (measurement builder, SIGSTRUCT).
    #[error(transparent)]
    Sgx(#[from] arca_sgx::Error),
}
