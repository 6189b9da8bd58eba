//! The coordinator's persistent state (sealed as a whole) and the immutable snapshot activations read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arca_protocol::Manifest;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::pki::{Ca, StoredCa};
use crate::seal::RecoveryHeader;
use crate::secrets::StoredSecret;

/// Everything that must survive a restart. Serialized as JSON, then sealed.
#[derive(Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) root: StoredCa,
    pub(crate) intermediate: StoredCa,
    /// SubjectPublicKeyInfo DER of earlier intermediates (marble certificates they issued stay valid for
    /// counters until the marble restarts), newest last, at most 16.
    #[serde(default)]
    pub(crate) previous_intermediates: Vec<String>,
    /// IKM of per-marble key derivation.
    #[serde(with = "crate::b64::secret")]
    pub(crate) root_secret: Zeroizing<Vec<u8>>,
    /// The manifest's exact bytes.
    #[serde(with = "crate::b64::opt_secret", default)]
    pub(crate) manifest: Option<Zeroizing<Vec<u8>>>,
    pub(crate) secrets: BTreeMap<String, StoredSecret>,
    /// Committed activations per marble type.
    pub(crate) activations: BTreeMap<String, u64>,
    /// SecurityVersions raised by package updates.
    pub(crate) security_versions: BTreeMap<String, u16>,
    /// One JSON document per update (manifest set, package update, manifest update, secret write).
    pub(crate) update_log: Vec<String>,
    /// A proposed multi-party manifest update.
    pub(crate) pending: Option<PendingUpdate>,
    /// Monotonic counters: marble type → name → value (contract 9).
    pub(crate) counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// Committed audit entries and the hash of the last.
    pub(crate) audit_len: u64,
    pub(crate) audit_head: String,
    /// Bumped on every change of what activations depend on.
    pub(crate) generation: u64,
    pub(crate) recovery: RecoveryHeader,
}

/// A proposed full manifest update awaiting acknowledgements.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct PendingUpdate {
    #[serde(with = "crate::b64::bytes")]
    pub(crate) manifest: Vec<u8>,
    pub(crate) acks: BTreeSet<String>,
}

/// What an activation reads, shared without locks while it verifies and generates keys.
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) manifest: Option<Arc<Manifest>>,
    pub(crate) intermediate: Arc<Ca>,
    pub(crate) root_cert: Arc<Vec<u8>>,
    pub(crate) root: Arc<Ca>,
    pub(crate) root_secret: Zeroizing<Vec<u8>>,
    pub(crate) secrets: BTreeMap<String, StoredSecret>,
    pub(crate) security_versions: BTreeMap<String, u16>,
}

impl Snapshot {
    /// The effective minimum SecurityVersion of a package.
    pub(crate) fn min_svn(&self, package: &str) -> Option<u16> {
        let from_manifest = self
            .manifest
            .as_ref()
            .and_then(|m| m.packages.get(package))
            .and_then(|p| p.security_version);
        match (from_manifest, self.security_versions.get(package)) {
            (Some(a), Some(b)) => Some(a.max(*b)),
            (a, b) => a.or(b.copied()),
        }
    }
}
