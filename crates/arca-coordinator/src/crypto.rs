//! The crypto provider: every primitive the coordinator uses, in one place, so that backends can change
//! without touching the logic. ring does the fast, constant-time work (AES-256-GCM, HKDF-SHA256, ECDSA
//! P-256/P-384, Ed25519); RustCrypto's `rsa` does what ring cannot (RSA key generation, RSA-OAEP, RSA-PSS
//! verification).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

fn crypto_err(step: &'static str) -> impl Fn(ring::error::Unspecified) -> Error {
    move |_| Error::Crypto {
        step,
        detail: "the crypto backend refused".into(),
    }
}

/// `n` random bytes from the operating system.
pub(crate) fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; n]);
    SystemRandom::new()
        .fill(&mut out)
        .map_err(crypto_err("drawing random bytes"))?;
    Ok(out)
}

/// 32 random bytes.
pub(crate) fn random32() -> Result<[u8; 32], Error> {
    let mut out = [0u8; 32];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(crypto_err("drawing random bytes"))?;
    Ok(out)
}

struct Len(usize);

impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `len` bytes (at most 8160).
pub(crate) fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, Len(len))
        .map_err(crypto_err("expanding HKDF-SHA256"))?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    okm.fill(&mut out).map_err(crypto_err("expanding HKDF-SHA256"))?;
    Ok(out)
}

/// A 256-bit AES-GCM key; zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<DataKey, Error> {
        Ok(DataKey(random32()?))
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// The key bytes (for sealing the key itself or splitting it for recovery).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// AES-256-GCM: returns nonce ‖ ciphertext ‖ tag, with a fresh random 96-bit nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).map_err(crypto_err("loading AES key"))?);
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(crypto_err("drawing a nonce"))?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(crypto_err("encrypting with AES-256-GCM"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        buf.zeroize();
        Ok(out)
    }

    /// Opens what [`DataKey::seal`] made; `None` when the key, the AAD or the bytes do not match.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).ok()?);
        let (nonce, ct) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let n = key.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?.len();
        buf.truncate(n);
        Some(buf)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Key algorithms the coordinator generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum KeyAlg {
    /// ECDSA P-256 with SHA-256.
    P256,
    /// ECDSA P-384 with SHA-384.
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA (PKCS#1 v1.5 SHA-256 signatures) of the given modulus size.
    Rsa(u32),
}

impl KeyAlg {
    pub(crate) fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlg::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlg::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

/// Generates a private key, PKCS#8 DER.
pub(crate) fn generate_pkcs8(alg: KeyAlg) -> Result<Zeroizing<Vec<u8>>, Error> {
    let rng = SystemRandom::new();
    let doc = match alg {
        KeyAlg::P256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng),
        KeyAlg::P384 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, &rng),
        KeyAlg::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        KeyAlg::Rsa(bits) => return generate_rsa_pkcs8(bits),
    }
    .map_err(crypto_err("generating a key pair"))?;
    Ok(Zeroizing::new(doc.as_ref().to_vec()))
}

fn generate_rsa_pkcs8(bits: u32) -> Result<Zeroizing<Vec<u8>>, Error> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::PrivateKey::new(&mut rand::rng(), bits as usize).map_err(|e| Error::Crypto {
        step: "generating an RSA key",
        detail: e.to_string(),
    })?;
    let doc = key.to_pkcs8_der().map_err(|e| Error::Crypto {
        step: "encoding an RSA key",
        detail: e.to_string(),
    })?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// Loads a PKCS#8 key for signing certificates.
pub(crate) fn rcgen_key(alg: KeyAlg, pkcs8: &[u8]) -> Result<rcgen::KeyPair, Error> {
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8);
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, alg.rcgen()).map_err(|e| Error::Crypto {
        step: "loading a signing key",
        detail: e.to_string(),
    })
}

/// An ECDSA P-384 signing key (the root key): signs manifests and audit heads.
pub(crate) struct RootSigner {
    key: EcdsaKeyPair,
}

impl RootSigner {
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Result<RootSigner, Error> {
        let key = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| Error::Crypto {
            step: "loading the root key",
            detail: e.to_string(),
        })?;
        Ok(RootSigner { key })
    }

    /// ECDSA P-384 / SHA-384, ASN.1 DER signature.
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self
            .key
            .sign(&SystemRandom::new(), msg)
            .map_err(crypto_err("signing with the root key"))?
            .as_ref()
            .to_vec())
    }

    /// The uncompressed public point.
    #[allow(dead_code)]
    pub(crate) fn public_point(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }
}

/// Verifies an ECDSA P-384 / SHA-384 signature made by the key of `cert_der` (the root certificate).
pub fn verify_root_signature(cert_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| Error::Crypto {
        step: "parsing the root certificate",
        detail: e.to_string(),
    })?;
    let point = cert.public_key().subject_public_key.data.as_ref();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_ASN1, point)
        .verify(msg, sig)
        .map_err(|_| Error::Crypto {
            step: "verifying a signature by the root key",
            detail: "the signature does not verify under the root certificate's key".into(),
        })
}

/// RSA-OAEP (SHA-256) encryption to a SubjectPublicKeyInfo.
pub(crate) fn rsa_oaep_encrypt(spki_der: &[u8], msg: &[u8]) -> Result<Vec<u8>, Error> {
    use rsa::pkcs8::DecodePublicKey;
    let key = rsa::PublicKey::from_public_key_der(spki_der).map_err(|e| Error::Crypto {
        step: "loading a recovery key",
        detail: e.to_string(),
    })?;
    key.encrypt(&mut rand::rng(), rsa::Oaep::<sha2::Sha256>::new(), msg)
        .map_err(|e| Error::Crypto {
            step: "RSA-OAEP encryption",
            detail: e.to_string(),
        })
}

/// RSA-OAEP (SHA-256) decryption with a PKCS#8 (or PKCS#1) PEM private key: what a recovery-key holder runs.
pub fn rsa_oaep_decrypt(private_key_pem: &str, ciphertext: &[u8]) -> Result<Vec<u8>, Error> {
    let key = rsa_private_key(private_key_pem)?;
    key.decrypt(rsa::Oaep::<sha2::Sha256>::new(), ciphertext)
        .map_err(|e| Error::Crypto {
            step: "RSA-OAEP decryption",
            detail: e.to_string(),
        })
}

/// RSA-PSS (SHA-256) signature with a PEM private key (what `arca recover` sends along the secret).
pub fn rsa_pss_sign(private_key_pem: &str, msg: &[u8]) -> Result<Vec<u8>, Error> {
    use sha2::Digest;
    let key = rsa_private_key(private_key_pem)?;
    let digest = sha2::Sha256::digest(msg);
    key.sign_with_rng(&mut rand::rng(), rsa::Pss::<sha2::Sha256>::new(), &digest)
        .map_err(|e| Error::Crypto {
            step: "RSA-PSS signing",
            detail: e.to_string(),
        })
}

/// Verifies an RSA-PSS (SHA-256) signature by a SubjectPublicKeyInfo.
pub(crate) fn rsa_pss_verify(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use rsa::pkcs8::DecodePublicKey;
    use sha2::Digest;
    let Ok(key) = rsa::PublicKey::from_public_key_der(spki_der) else {
        return false;
    };
    key.verify(rsa::Pss::<sha2::Sha256>::new(), &sha2::Sha256::digest(msg), sig)
        .is_ok()
}

fn rsa_private_key(pem: &str) -> Result<rsa::PrivateKey, Error> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    rsa::PrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| Error::Crypto {
            step: "loading an RSA private key (PEM)",
            detail: e.to_string(),
        })
}

/// SHA-256.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_round_trips_and_refuses_a_flipped_bit_or_wrong_aad() {
        let k = DataKey::generate().unwrap();
        let mut sealed = k.seal(b"aad", b"hello").unwrap();
        assert_eq!(&*k.open(b"aad", &sealed).unwrap(), b"hello");
        assert!(k.open(b"other", &sealed).is_none());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(k.open(b"aad", &sealed).is_none());
        assert!(k.open(b"aad", &[1, 2]).is_none());
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let okm = hkdf_sha256(&ikm, &salt, &info, 42).unwrap();
        assert_eq!(
            hex::encode(&*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn data_keys_never_print_their_bytes() {
        assert_eq!(
            format!("{:?}", DataKey::from_bytes([7; 32])),
            "DataKey(<redacted>)"
        );
    }
}
