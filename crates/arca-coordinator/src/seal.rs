//! Sealing: the state is encrypted with AES-256-GCM under a random data key, and the data key is sealed by
//! the engine ([`KeySealer`]). The simulation engine's sealer ([`SimKeySealer`]) keeps its key-encryption key
//! in a file with mode 0600 or takes it from the environment; the SGX engine would use the enclave sealing
//! key. When the data key cannot be unsealed (the key file is gone, another machine), the coordinator enters
//! recovery: the data key comes back from the recovery secrets instead.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::crypto::DataKey;
use crate::Error;

const KEY_AAD: &[u8] = b"arca-coordinator-data-key/1";
const STATE_AAD: &[u8] = b"arca-coordinator-state/1";
/// The sealed state file's format tag.
pub(crate) const FORMAT: &str = "arca-coordinator-state/1";

/// Seals and unseals the data key (the engine's job).
pub trait KeySealer: Send + Sync + 'static {
    /// Seals `key`.
    fn seal_key(&self, key: &DataKey) -> Result<Vec<u8>, Error>;
    /// Unseals a key; `None` when this sealer cannot open it (then the coordinator enters recovery).
    fn unseal_key(&self, sealed: &[u8]) -> Option<DataKey>;
    /// What this sealer is, for logs and status.
    fn describe(&self) -> String;
}

/// The simulation engine's sealer: AES-256-GCM under a key-encryption key from a 0600 file or the
/// environment. It protects the state at rest against whoever lacks the key file — not against the host's
/// root, which the SGX sealing key would.
pub struct SimKeySealer {
    kek: DataKey,
    origin: String,
}

impl SimKeySealer {
    /// The environment variable that may hold the key-encryption key (64 hex digits).
    pub const ENV: &'static str = "ARCA_COORDINATOR_SEAL_KEY";

    /// Uses the key in `path`, creating it (mode 0600, 32 random bytes) when it does not exist. Refuses a key
    /// file that others can read.
    pub fn from_file(path: &Path) -> Result<SimKeySealer, Error> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(Error::Corrupt(format!(
                        "seal key file {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
                        path.display()
                    )));
                }
                let bytes = std::fs::read(path).map_err(Error::io("reading the seal key file", path))?;
                let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                    Error::Corrupt(format!(
                        "seal key file {} holds {} bytes, not 32",
                        path.display(),
                        b.len()
                    ))
                })?;
                Ok(SimKeySealer {
                    kek: DataKey::from_bytes(key),
                    origin: format!("key file {}", path.display()),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = DataKey::generate()?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(Error::io("creating the seal key file", path))?;
                f.write_all(key.expose())
                    .map_err(Error::io("writing the seal key file", path))?;
                f.sync_all()
                    .map_err(Error::io("syncing the seal key file", path))?;
                Ok(SimKeySealer {
                    kek: key,
                    origin: format!("new key file {}", path.display()),
                })
            }
            Err(e) => Err(Error::Io {
                step: "reading the seal key file",
                path: path.into(),
                source: e,
            }),
        }
    }

    /// Uses a key given as 64 hex digits (e.g. from [`SimKeySealer::ENV`]).
    pub fn from_hex(hex_key: &str) -> Result<SimKeySealer, Error> {
        let mut key = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut key).map_err(|_| {
            Error::BadRequest(format!(
                "{} must be 64 hex digits (a 32-byte key)",
                SimKeySealer::ENV
            ))
        })?;
        Ok(SimKeySealer {
            kek: DataKey::from_bytes(key),
            origin: format!("environment {}", SimKeySealer::ENV),
        })
    }

    /// The key from the environment when set, otherwise the key file `dir/seal.key`.
    pub fn from_env_or_dir(dir: &Path) -> Result<SimKeySealer, Error> {
        match std::env::var(SimKeySealer::ENV) {
            Ok(v) => SimKeySealer::from_hex(&v),
            Err(_) => SimKeySealer::from_file(&dir.join("seal.key")),
        }
    }
}

impl KeySealer for SimKeySealer {
    fn seal_key(&self, key: &DataKey) -> Result<Vec<u8>, Error> {
        self.kek.seal(KEY_AAD, key.expose())
    }

    fn unseal_key(&self, sealed: &[u8]) -> Option<DataKey> {
        let bytes = self.kek.open(KEY_AAD, sealed)?;
        let key: [u8; 32] = bytes.as_slice().try_into().ok()?;
        Some(DataKey::from_bytes(key))
    }

    fn describe(&self) -> String {
        format!("simulation sealing ({})", self.origin)
    }
}

/// What recovery needs to know before the state is opened (public data, kept in the clear).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RecoveryHeader {
    /// Secrets needed (0 when no recovery keys are set).
    pub(crate) threshold: u8,
    /// Recovery keys in share order: name and base64 SubjectPublicKeyInfo.
    pub(crate) keys: Vec<(String, String)>,
}

/// The sealed state file: JSON, with the sealed data key, the public recovery header and the ciphertext.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SealedFile {
    pub(crate) format: String,
    #[serde(rename = "sealedDataKey")]
    pub(crate) sealed_data_key: String,
    pub(crate) recovery: RecoveryHeader,
    pub(crate) state: String,
}

impl SealedFile {
    pub(crate) fn seal(
        key: &DataKey,
        sealed_data_key: &[u8],
        recovery: RecoveryHeader,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let file = SealedFile {
            format: FORMAT.into(),
            sealed_data_key: b64.encode(sealed_data_key),
            recovery,
            state: b64.encode(key.seal(STATE_AAD, plaintext)?),
        };
        serde_json::to_vec(&file).map_err(|e| Error::Corrupt(format!("encoding the sealed state: {e}")))
    }

    pub(crate) fn parse(bytes: &[u8]) -> Result<SealedFile, Error> {
        let f: SealedFile = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("the sealed state file is not {FORMAT}: {e}")))?;
        if f.format != FORMAT {
            return Err(Error::Corrupt(format!(
                "unknown sealed state format {:?}",
                f.format
            )));
        }
        Ok(f)
    }

    pub(crate) fn sealed_data_key(&self) -> Result<Vec<u8>, Error> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.sealed_data_key)
            .map_err(|e| Error::Corrupt(format!("sealed data key: {e}")))
    }

    /// Decrypts the state with `key`; `None` when the key is wrong.
    pub(crate) fn open(&self, key: &DataKey) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, Error> {
        let ct = base64::engine::general_purpose::STANDARD
            .decode(&self.state)
            .map_err(|e| Error::Corrupt(format!("sealed state: {e}")))?;
        Ok(key.open(STATE_AAD, &ct))
    }
}

/// The default data directory's files.
#[cfg(test)]
pub(crate) fn key_file(dir: &Path) -> std::path::PathBuf {
    dir.join("seal.key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        let a = SimKeySealer::from_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let k = DataKey::generate().unwrap();
        let sealed = a.seal_key(&k).unwrap();
        let b = SimKeySealer::from_file(&path).unwrap();
        assert_eq!(b.unseal_key(&sealed).unwrap(), k);
        let other = SimKeySealer::from_hex(&"11".repeat(32)).unwrap();
        assert!(other.unseal_key(&sealed).is_none());
    }

    #[test]
    fn refuses_a_key_file_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path());
        std::fs::write(&path, [0u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SimKeySealer::from_file(&path).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
