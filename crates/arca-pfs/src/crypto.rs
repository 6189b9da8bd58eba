//! The crypto provider: every primitive the format uses, in one place (AES-128-GCM with a zero IV,
//! AES-128-CMAC, SHA-256, the OS random source). Nothing else in the crate touches a cipher directly, so a
//! backend can change here without touching the format logic.
//!
//! AES-128-GCM comes from `ring` (AES-NI, PCLMULQDQ and AVX code paths: about twice the throughput of the
//! portable RustCrypto implementation on 4 KiB nodes with a fresh key each, measured in
//! `benches/pfs.rs`); CMAC, which `ring` lacks, from RustCrypto.

use cmac::{Cmac, KeyInit, Mac};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Size of every key and tag in the format.
pub(crate) const KEY_SIZE: usize = 16;

/// A 16-byte AES-128 key: the key-derivation key of a protected file, or a node key.
///
/// Zeroized on drop; its `Debug` never prints the bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key([u8; KEY_SIZE]);

impl Key {
    /// Wraps 16 raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_SIZE]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, crate::Error> {
        let mut k = [0u8; KEY_SIZE];
        fill_random(&mut k)?;
        Ok(Self(k))
    }

    /// The raw key bytes (for writing a key file; handle with care).
    pub fn as_bytes(&self) -> &[u8; KEY_SIZE] {
        &self.0
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.0 == [0u8; KEY_SIZE]
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Fills `buf` from the OS random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), crate::Error> {
    getrandom::fill(buf).map_err(|e| crate::Error::Random {
        reason: e.to_string(),
    })
}

/// AES-128-GCM encryption in place with a 12-byte zero IV and no AAD; returns the 16-byte tag.
/// The format uses every key for exactly one encryption, which is what makes the zero IV safe.
pub(crate) fn gcm_seal(key: &Key, buf: &mut [u8]) -> [u8; KEY_SIZE] {
    gcm_seal_counter(key, 0, &[], buf)
}

fn gcm_key(key: &Key) -> LessSafeKey {
    match UnboundKey::new(&AES_128_GCM, &key.0) {
        Ok(k) => LessSafeKey::new(k),
        // A 16-byte key is always accepted for AES-128-GCM.
        Err(_) => unreachable_gcm(),
    }
}

/// AES-128-GCM decryption in place (zero IV, no AAD); false when the tag does not authenticate `buf`.
/// On failure `buf` holds garbage and must not be used.
#[must_use]
pub(crate) fn gcm_open(key: &Key, buf: &mut [u8], tag: &[u8; KEY_SIZE]) -> bool {
    gcm_open_counter(key, 0, &[], buf, tag)
}

/// AES-128-GCM encryption in place with the nonce `counter` (little-endian, zero-padded to 12 bytes) and
/// `aad`; returns the tag. For keys used more than once: every (key, counter) pair must be unique.
pub(crate) fn gcm_seal_counter(key: &Key, counter: u64, aad: &[u8], buf: &mut [u8]) -> [u8; KEY_SIZE] {
    // Our buffers are far below GCM's limit (2^36 bytes): the only error case cannot occur.
    match gcm_key(key).seal_in_place_separate_tag(counter_nonce(counter), Aad::from(aad), buf) {
        Ok(tag) => {
            let mut out = [0u8; KEY_SIZE];
            out.copy_from_slice(tag.as_ref());
            out
        }
        Err(_) => unreachable_gcm(),
    }
}

/// The inverse of [`gcm_seal_counter`]; false when the tag does not authenticate `buf` and `aad`.
#[must_use]
pub(crate) fn gcm_open_counter(
    key: &Key,
    counter: u64,
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; KEY_SIZE],
) -> bool {
    gcm_key(key)
        .open_in_place_separate_tag(counter_nonce(counter), Aad::from(aad), Tag::from(*tag), buf, 0..)
        .is_ok()
}

fn counter_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The key of one volume state log: AES-128-CMAC(volume key, label ‖ the log's random 16-byte id). Each log
/// gets a fresh id, so a key never outlives its log and record counters never repeat under one key.
pub(crate) fn log_key(volume_key: &Key, log_id: &[u8; KEY_SIZE]) -> Key {
    Key(cmac(volume_key, &[b"ARCA-VOLUME-STATE-LOG-KEY", log_id]))
}

#[cold]
fn unreachable_gcm() -> ! {
    // ring refuses only keys of the wrong length and inputs longer than 2^36 bytes; every caller passes a
    // 16-byte key and at most one node.
    panic!("AES-128-GCM refused a 16-byte key or a buffer of at most 4096 bytes")
}

/// AES-128-CMAC of `parts` (concatenated) under `key`.
pub(crate) fn cmac(key: &Key, parts: &[&[u8]]) -> [u8; KEY_SIZE] {
    let mut mac = <Cmac<aes::Aes128> as KeyInit>::new(&key.0.into());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `parts` (concatenated).
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Gramine's metadata key derivation: AES-128-CMAC(KDK, u32 1 ‖ 64-byte NUL-padded label ‖ 32-byte nonce ‖
/// u32 128).
pub(crate) fn metadata_key(kdk: &Key, nonce: &[u8; 32]) -> Key {
    const LABEL: &[u8] = b"SGX-PROTECTED-FS-METADATA-KEY";
    let mut label = [0u8; 64];
    label[..LABEL.len()].copy_from_slice(LABEL);
    Key(cmac(
        kdk,
        &[&1u32.to_le_bytes(), &label, nonce, &128u32.to_le_bytes()],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_key_matches_gramine_known_answer() {
        let kdk = Key::from_bytes(std::array::from_fn(|i| i as u8));
        let nonce: [u8; 32] = hex::decode("28cefebdc7fe0a3c70ce2a2d72965038c7a4788bc276260ce6bd1b4772f5cb31")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(metadata_key(&kdk, &nonce).0),
            "c9019afb0cd5143abf81c27d92ba4d67"
        );
    }

    #[test]
    fn gcm_open_rejects_a_flipped_ciphertext_bit() {
        let key = Key::from_bytes([7; 16]);
        let mut buf = *b"hello protected files";
        let tag = gcm_seal(&key, &mut buf);
        let mut good = buf;
        assert!(gcm_open(&key, &mut good, &tag));
        assert_eq!(&good, b"hello protected files");
        buf[3] ^= 1;
        assert!(!gcm_open(&key, &mut buf, &tag));
    }
}
