//! The crate's one error type.

use std::path::PathBuf;

/// Errors of the coordinator. Each names the step that failed and its input; causes stay in `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest is invalid (every problem with its JSON path).
    #[error(transparent)]
    Manifest(#[from] arca_protocol::Error),
    /// A request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The caller presented no client certificate, or one that belongs to no user.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The user is known but lacks the permission.
    #[error("not permitted: {0}")]
    Forbidden(String),
    /// The operation is not possible in the coordinator's current state.
    #[error("not possible now: {0}")]
    WrongState(String),
    /// An activation (or another attested request) was refused; the reason says why.
    #[error("refused: {0}")]
    Refused(String),
    /// A named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A crypto operation failed.
    #[error("{step}: {detail}")]
    Crypto {
        /// The step.
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// Reading or writing the state or the audit log failed.
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// The step.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The stored state is damaged or cannot be opened.
    #[error("stored state: {0}")]
    Corrupt(String),
    /// The audit log does not verify (edited, reordered or truncated).
    #[error("audit log does not verify: {0}")]
    AuditTampered(String),
    /// A previous commit failed; the coordinator stops answering until restarted from its durable state.
    #[error("the coordinator's storage failed earlier ({0}); restart it")]
    Poisoned(String),
    /// Serving the APIs failed.
    #[error("{step}: {detail}")]
    Server {
        /// The step.
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { step, path, source }
    }

    /// True for errors caused by the request (a JSend "fail"), false for server failures ("error").
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::Manifest(_)
                | Error::BadRequest(_)
                | Error::Unauthenticated(_)
                | Error::Forbidden(_)
                | Error::WrongState(_)
                | Error::Refused(_)
                | Error::NotFound(_)
        )
    }
}
