//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading, checking, converting or writing an image.
///
/// Each message names the step that failed and the input it was working on (a path, a blob digest, a layer
/// entry, a registry URL); the cause, when there is one, stays in `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{step}: {}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a stream (a blob, a layer, a network body) failed.
    #[error("{step}: {what}")]
    Stream {
        /// What was being done.
        step: &'static str,
        /// The stream (blob digest, layer number, ...).
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An image reference (`docker://…`, `oci:…`) could not be understood.
    #[error("invalid image reference `{input}`: {reason}")]
    Reference {
        /// The reference as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },
    /// A JSON document of the image (manifest, index, config) is malformed.
    #[error("{step}: invalid JSON in {what}")]
    Json {
        /// What was being done.
        step: &'static str,
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The image's structure is wrong (missing blob, bad media type, mismatched layer count, ...).
    #[error("invalid image {what}: {reason}")]
    Image {
        /// Which image or document.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob's content does not match its descriptor (digest or size): corrupted or tampered.
    #[error("blob {what} failed verification: expected {expected}, got {actual}")]
    Verification {
        /// The blob (and where it came from).
        what: String,
        /// The digest or size the descriptor promises.
        expected: String,
        /// What the content actually has.
        actual: String,
    },
    /// A layer's tar stream is malformed (bad header, checksum, truncation, an oversized extension header).
    #[error("malformed tar in {what} at byte {offset}: {reason}")]
    Tar {
        /// The layer or archive.
        what: String,
        /// Offset of the offending header in the uncompressed stream.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A layer entry would escape the root, or is otherwise refused for safety. Nothing was written outside the
    /// output directory.
    #[error("refused layer entry `{entry}` in {what}: {reason}")]
    UnsafeEntry {
        /// The layer.
        what: String,
        /// The entry's name as stored in the tar.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The registry refused a request or answered something unexpected.
    #[error("registry {url}: {step}: {reason}")]
    Registry {
        /// What was being done.
        step: &'static str,
        /// The URL requested.
        url: String,
        /// The registry's answer or the transport error.
        reason: String,
    },
    /// A feature of the input that Arca does not handle.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported, and what to do instead.
        what: String,
    },
    /// The conversion was refused because of its inputs (options, launcher, paths).
    #[error("convert: {reason}")]
    Convert {
        /// Why.
        reason: String,
    },
    /// The enclave manifest, layout or identity could not be built.
    #[error("enclave identity")]
    Enclave(#[from] arca_enclave::Error),
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn stream(step: &'static str, what: impl Into<String>, source: io::Error) -> Self {
        Error::Stream {
            step,
            what: what.into(),
            source,
        }
    }

    pub(crate) fn image(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Image {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn json(step: &'static str, what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            step,
            what: what.into(),
            source,
        }
    }
}
