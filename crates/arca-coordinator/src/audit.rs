//! The audit log: one JSON line per event (activation, secret read or write, manifest change, update,
//! recovery), each carrying the SHA-256 of the line before it, so that the last hash commits to the whole
//! history. The coordinator signs the head (entry count and last hash) with its root key (ECDSA P-384), so a
//! copy of the log can be checked offline against the root certificate, and against the live coordinator's
//! current head. Editing, reordering, dropping or truncating entries is detected.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::crypto::{sha256, verify_root_signature, RootSigner};
use crate::Error;

/// The hash before the first entry.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// One audit event (a line of the log).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// 1-based position.
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// What happened: `manifest-set`, `activation`, `secret-read`, `secret-write`, `package-update`,
    /// `manifest-update-proposed`, `manifest-update-acknowledged`, `manifest-update-applied`,
    /// `manifest-update-cancelled`, `recovery`.
    pub event: String,
    /// Who: a user name, or `marble:TYPE` for activations, or `coordinator`.
    pub actor: String,
    /// On what: a marble UUID, secret names, package names, a manifest fingerprint.
    pub subject: String,
    /// Event details.
    #[serde(default)]
    pub detail: serde_json::Value,
    /// Hex SHA-256 of the previous line (zeros for the first).
    pub prev: String,
}

/// The running head of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) len: u64,
    pub(crate) head: [u8; 32],
}

impl Chain {
    pub(crate) fn new() -> Chain {
        Chain {
            len: 0,
            head: GENESIS,
        }
    }

    /// Appends an event; returns the line exactly as it will be stored and hashed.
    pub(crate) fn append(
        &mut self,
        event: &str,
        actor: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<String, Error> {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let entry = AuditEntry {
            seq: self.len + 1,
            time,
            event: event.into(),
            actor: actor.into(),
            subject: subject.into(),
            detail,
            prev: hex::encode(self.head),
        };
        let line = serde_json::to_string(&entry)
            .map_err(|e| Error::Corrupt(format!("encoding an audit entry: {e}")))?;
        self.len += 1;
        self.head = sha256(&[line.as_bytes()]);
        Ok(line)
    }
}

/// A signed statement of the log's head.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedHead {
    /// Number of entries.
    pub entries: u64,
    /// Hex SHA-256 of the last line (zeros when empty).
    pub head: String,
    /// Base64 ECDSA P-384 / SHA-384 signature (DER) by the root key over [`SignedHead::message`].
    pub signature: String,
}

impl SignedHead {
    /// The signed bytes: `arca-audit-head/1\n{entries}\n{head}`.
    pub fn message(entries: u64, head: &str) -> Vec<u8> {
        format!("arca-audit-head/1\n{entries}\n{head}").into_bytes()
    }

    pub(crate) fn sign(chain: &Chain, key: &RootSigner) -> Result<SignedHead, Error> {
        let head = hex::encode(chain.head);
        let sig = key.sign(&SignedHead::message(chain.len, &head))?;
        Ok(SignedHead {
            entries: chain.len,
            head,
            signature: base64::engine::general_purpose::STANDARD.encode(sig),
        })
    }

    /// Checks the signature against the root certificate (DER).
    pub fn verify(&self, root_cert_der: &[u8]) -> Result<(), Error> {
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|e| Error::AuditTampered(format!("head signature is not base64: {e}")))?;
        verify_root_signature(
            root_cert_der,
            &SignedHead::message(self.entries, &self.head),
            &sig,
        )
        .map_err(|_| {
            Error::AuditTampered("the head's signature does not verify under the root certificate".into())
        })
    }
}

/// What [`verify_log`] found.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries in the log.
    pub entries: u64,
    /// Hex hash of the last entry.
    pub head: String,
    /// Entries covered by the signed head (all of them, unless the log goes on past the head).
    pub covered: u64,
}

/// Verifies a log's chain (each line's `seq` and `prev`) and, when given, that the signed head covers it:
/// the head's entry must be in the log with the same hash (a log shorter than the head was truncated), and
/// the head's signature must verify under `root_cert_der`.
pub fn verify_log(lines: &[String], head: Option<(&SignedHead, &[u8])>) -> Result<AuditReport, Error> {
    let mut prev = GENESIS;
    let mut hashes = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        let e: AuditEntry = serde_json::from_str(line)
            .map_err(|err| Error::AuditTampered(format!("entry {n} is not an audit entry: {err}")))?;
        if e.seq != n {
            return Err(Error::AuditTampered(format!(
                "entry {n} says it is entry {}: entries were dropped or reordered",
                e.seq
            )));
        }
        if e.prev != hex::encode(prev) {
            return Err(Error::AuditTampered(format!(
                "entry {n} does not follow entry {}: the chain is broken (an entry was edited, dropped or inserted)",
                n - 1
            )));
        }
        prev = sha256(&[line.as_bytes()]);
        hashes.push(prev);
    }
    let entries = lines.len() as u64;
    let mut covered = entries;
    if let Some((h, root)) = head {
        h.verify(root)?;
        if h.entries > entries {
            return Err(Error::AuditTampered(format!(
                "the signed head covers {} entries but the log holds {entries}: the log was truncated",
                h.entries
            )));
        }
        let expected = if h.entries == 0 {
            GENESIS
        } else {
            hashes[(h.entries - 1) as usize]
        };
        if hex::encode(expected) != h.head {
            return Err(Error::AuditTampered(format!(
                "entry {} differs from the one the signed head commits to",
                h.entries
            )));
        }
        covered = h.entries;
    }
    Ok(AuditReport {
        entries,
        head: hex::encode(prev),
        covered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{generate_pkcs8, KeyAlg};
    use crate::pki::Ca;

    fn log(n: usize) -> (Vec<String>, Chain) {
        let mut c = Chain::new();
        let lines = (0..n)
            .map(|i| {
                c.append(
                    "activation",
                    "marble:m",
                    &format!("uuid-{i}"),
                    serde_json::json!({"i": i}),
                )
                .unwrap()
            })
            .collect();
        (lines, c)
    }

    fn root() -> (RootSigner, Vec<u8>) {
        let ca = Ca::new_root(time::OffsetDateTime::now_utc()).unwrap();
        let _ = generate_pkcs8(KeyAlg::P256).unwrap();
        (ca.root_signer().unwrap(), ca.cert_der.clone())
    }

    #[test]
    fn a_signed_log_verifies_offline() {
        let (lines, chain) = log(5);
        let (key, cert) = root();
        let head = SignedHead::sign(&chain, &key).unwrap();
        let r = verify_log(&lines, Some((&head, &cert))).unwrap();
        assert_eq!((r.entries, r.covered), (5, 5));
    }

    #[test]
    fn detects_an_edited_entry() {
        let (mut lines, _) = log(3);
        lines[1] = lines[1].replace("uuid-1", "uuid-X");
        let err = verify_log(&lines, None).unwrap_err();
        assert!(
            err.to_string().contains("entry 3 does not follow entry 2"),
            "{err}"
        );
    }

    #[test]
    fn detects_a_dropped_entry_and_a_truncated_log() {
        let (lines, chain) = log(4);
        let mut dropped = lines.clone();
        dropped.remove(1);
        assert!(verify_log(&dropped, None).is_err());
        let (key, cert) = root();
        let head = SignedHead::sign(&chain, &key).unwrap();
        let err = verify_log(&lines[..3], Some((&head, &cert))).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn detects_a_head_signed_by_another_key_or_edited() {
        let (lines, chain) = log(2);
        let (key, _) = root();
        let (_, other_cert) = root();
        let head = SignedHead::sign(&chain, &key).unwrap();
        assert!(verify_log(&lines, Some((&head, &other_cert))).is_err());
        let (_, cert) = root();
        let _ = cert;
    }

    #[test]
    fn a_log_longer_than_the_head_reports_what_is_covered() {
        let (lines, _) = log(3);
        let mut c = Chain::new();
        for l in &lines[..2] {
            c.len += 1;
            c.head = sha256(&[l.as_bytes()]);
        }
        let (key, cert) = root();
        let head = SignedHead::sign(&c, &key).unwrap();
        let r = verify_log(&lines, Some((&head, &cert))).unwrap();
        assert_eq!((r.entries, r.covered), (3, 2));
    }
}
