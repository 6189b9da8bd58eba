//! SIGSTRUCT signing and verification with RSA-3072, public exponent 3, PKCS#1 v1.5 over SHA-256.

use std::fmt;

use crypto_bigint::{BoxedUint, ConcatenatingMul, NonZero};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey, PublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::identity::{Mrenclave, Mrsigner};
use crate::sigstruct::{Sigstruct, SigstructFields};

const BITS: u32 = 3072;
const BYTES: usize = 384;

/// Something that can sign SIGSTRUCTs: the seam where another key store (an HSM, a remote signing service)
/// plugs in. [`SigningKey`] is the in-memory implementation.
///
/// [`Sigstruct::sign`] verifies every signature it receives from a signer before returning, so a faulty
/// implementation cannot produce an invalid SIGSTRUCT.
pub trait SigstructSigner {
    /// The signer's RSA-3072 modulus, little-endian (as stored in SIGSTRUCT; its SHA-256 is MRSIGNER).
    fn modulus_le(&self) -> [u8; 384];

    /// RSASSA-PKCS1-v1_5 signature of a SHA-256 `digest` with public exponent 3, as the usual big-endian
    /// 384-byte integer.
    fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<[u8; 384], Error>;
}

/// An SGX enclave signing key: RSA-3072 with public exponent 3 (the only shape EINIT accepts).
///
/// The private key is zeroised when dropped and never printed (`Debug` shows MRSIGNER only).
pub struct SigningKey {
    key: PrivateKey,
}

impl SigningKey {
    /// Generates a new key from the operating system's random number generator.
    pub fn generate() -> Result<Self, Error> {
        Self::generate_with(&mut rand::rngs::SysRng)
    }

    /// Generates a new key from `rng` (tests pass a seeded generator for speed and reproducibility).
    pub fn generate_with<R: rand::TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Error> {
        let key = PrivateKey::new_with_exp(rng, BITS as usize, BoxedUint::from(3u64)).map_err(|source| {
            Error::Rsa {
                step: "generating an RSA-3072 key with exponent 3",
                source,
            }
        })?;
        Self::from_rsa(key)
    }

    /// Loads a PEM private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, as written by `openssl genrsa -3 3072`) or
    /// PKCS#8 (`BEGIN PRIVATE KEY`). It must be RSA-3072 with public exponent 3.
    pub fn from_pem(pem: &str) -> Result<Self, Error> {
        let key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
            PrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| Error::Key(format!("not a valid PKCS#1 PEM key: {e}")))?
        } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
            PrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| Error::Key(format!("not a valid PKCS#8 PEM RSA key: {e}")))?
        } else if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(Error::Key(
                "the PEM key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)".into(),
            ));
        } else {
            return Err(Error::Key(
                "no PEM private key found (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)".into(),
            ));
        };
        Self::from_rsa(key)
    }

    fn from_rsa(key: PrivateKey) -> Result<Self, Error> {
        if key.e() != &BoxedUint::from(3u64) {
            return Err(Error::Key(format!(
                "the public exponent is {}, SGX needs 3 (generate one with `arca keygen` or `openssl genrsa -3 3072`)",
                trimmed_decimal(key.e())
            )));
        }
        let bits = key.n().as_ref().bit_width();
        if bits != BITS {
            return Err(Error::Key(format!(
                "the modulus has {bits} bits, SGX needs exactly 3072"
            )));
        }
        Ok(SigningKey { key })
    }

    /// The key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), zeroised when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Key(format!("encoding as PKCS#8: {e}")))
    }

    /// The key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`, what `openssl genrsa` writes), zeroised when dropped.
    pub fn to_pkcs1_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| Error::Key(format!("encoding as PKCS#1: {e}")))
    }

    /// MRSIGNER of every enclave signed with this key.
    pub fn mrsigner(&self) -> Mrsigner {
        Mrsigner::new(Sha256::digest(self.modulus_le()).into())
    }
}

impl SigstructSigner for SigningKey {
    fn modulus_le(&self) -> [u8; 384] {
        fixed_le(&self.key.n().as_ref().to_le_bytes())
    }

    fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<[u8; 384], Error> {
        let sig = self
            .key
            .sign(Pkcs1v15Sign::new::<Sha256>(), digest)
            .map_err(|source| Error::Rsa {
                step: "signing the SIGSTRUCT",
                source,
            })?;
        let mut out = [0u8; BYTES];
        let Some(start) = BYTES.checked_sub(sig.len()) else {
            return Err(Error::Key(format!(
                "the signature has {} bytes, expected 384",
                sig.len()
            )));
        };
        out[start..].copy_from_slice(&sig);
        Ok(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("mrsigner", &self.mrsigner())
            .finish_non_exhaustive()
    }
}

impl Sigstruct {
    /// Signs `fields` with `signer`: computes SIGNATURE, Q1 and Q2 and stores the signer's MODULUS.
    ///
    /// PKCS#1 v1.5 is deterministic, so the same fields and key always give the same 1808 bytes. The result is
    /// verified before it is returned.
    ///
    /// ```no_run
    /// use arca_sgx::{Attributes, MiscSelect, Sigstruct, SigstructFields, SigningKey};
    /// # fn main() -> Result<(), arca_sgx::Error> {
    /// let key = SigningKey::from_pem(&std::fs::read_to_string("key.pem").unwrap())?;
    /// let fields = SigstructFields {
    ///     vendor: 0,
    ///     date: SigstructFields::bcd_date(2026, 1, 31)?,
    ///     swdefined: 0,
    ///     miscselect: MiscSelect(0),
    ///     miscmask: !0,
    ///     cet_attributes: 0,
    ///     cet_attributes_mask: 0,
    ///     isvfamilyid: [0; 16],
    ///     attributes: Attributes::new(Attributes::MODE64BIT, Attributes::XFRM_LEGACY),
    ///     attributemask: Attributes::new(!0, !0xe4),
    ///     enclavehash: "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc".parse()?,
    ///     isvextprodid: [0; 16],
    ///     isvprodid: 1,
    ///     isvsvn: 1,
    /// };
    /// let sigstruct = Sigstruct::sign(&fields, &key)?;
    /// std::fs::write("enclave.sig", sigstruct.to_bytes()).unwrap();
    /// # Ok(()) }
    /// ```
    pub fn sign(fields: &SigstructFields, signer: &dyn SigstructSigner) -> Result<Sigstruct, Error> {
        let signature_be = signer.sign_sha256_digest(&fields.signed_digest())?;
        let mut signature = signature_be;
        signature.reverse();
        Sigstruct::assemble(fields, signer.modulus_le(), signature)
    }

    /// Builds a SIGSTRUCT from a signature made elsewhere (two-step signing: export
    /// [`SigstructFields::signed_bytes`], sign them offline, bring back the signature): computes Q1/Q2 and
    /// verifies. `modulus` and `signature` are little-endian, as stored in SIGSTRUCT.
    pub fn assemble(
        fields: &SigstructFields,
        modulus: [u8; 384],
        signature: [u8; 384],
    ) -> Result<Sigstruct, Error> {
        let (q1, q2) = q1_q2(&signature, &modulus)?;
        let sigstruct = Sigstruct {
            fields: *fields,
            modulus,
            signature,
            q1,
            q2,
        };
        sigstruct.verify()?;
        Ok(sigstruct)
    }

    /// Verifies the SIGSTRUCT as EINIT would: the RSA signature over the signed bytes with the enclosed
    /// MODULUS and exponent 3, then Q1 and Q2.
    ///
    /// This proves who signed (see [`Sigstruct::mrsigner`]), not that the signer is trusted: compare MRSIGNER
    /// (or the modulus) with the signer you expect.
    pub fn verify(&self) -> Result<(), Error> {
        let refuse = |reason: String| Error::BadSignature {
            mrsigner: self.mrsigner().to_string(),
            reason,
        };
        let n = BoxedUint::from_le_slice(&self.modulus, BITS).map_err(|e| refuse(format!("modulus: {e}")))?;
        if n.bit_width() != BITS {
            return Err(refuse(format!(
                "the modulus has {} bits, SGX needs exactly 3072",
                n.bit_width()
            )));
        }
        let key = PublicKey::new(n, BoxedUint::from(3u64)).map_err(|e| refuse(format!("modulus: {e}")))?;
        let mut signature_be = self.signature;
        signature_be.reverse();
        key.verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &self.fields.signed_digest(),
            &signature_be,
        )
        .map_err(|_| refuse("the signature does not verify over the signed fields".into()))?;
        let (q1, q2) = q1_q2(&self.signature, &self.modulus)?;
        if q1 != self.q1 {
            return Err(Error::BadQ { field: "Q1" });
        }
        if q2 != self.q2 {
            return Err(Error::BadQ { field: "Q2" });
        }
        Ok(())
    }

    /// [`verify`](Self::verify), then checks that ENCLAVEHASH is the `expected` MRENCLAVE.
    pub fn verify_enclave(&self, expected: &Mrenclave) -> Result<(), Error> {
        self.verify()?;
        if &self.fields.enclavehash != expected {
            return Err(Error::EnclaveHashMismatch {
                expected: expected.to_string(),
                found: self.fields.enclavehash.to_string(),
            });
        }
        Ok(())
    }
}

/// Q1 = ⌊s² / n⌋ and Q2 = ⌊(s³ − Q1·s·n) / n⌋ = ⌊s·(s² mod n) / n⌋, all little-endian 384-byte values.
fn q1_q2(signature: &[u8; 384], modulus: &[u8; 384]) -> Result<([u8; 384], [u8; 384]), Error> {
    let bad = |why: &str| Error::BadSignature {
        mrsigner: hex::encode(Sha256::digest(modulus)),
        reason: why.into(),
    };
    let s = BoxedUint::from_le_slice(signature, BITS).map_err(|_| bad("signature is not 384 bytes"))?;
    let n = BoxedUint::from_le_slice(modulus, BITS).map_err(|_| bad("modulus is not 384 bytes"))?;
    let n = NonZero::new(n)
        .into_option()
        .ok_or_else(|| bad("the modulus is zero"))?;
    let s2 = s.concatenating_mul(&s);
    let (q1, r) = s2.div_rem(&n);
    let (q2, _) = r.concatenating_mul(&s).div_rem(&n);
    let q1 = fits_384(&q1.to_le_bytes())
        .ok_or_else(|| bad("Q1 would not fit in 384 bytes (signature ≥ modulus)"))?;
    let q2 = fits_384(&q2.to_le_bytes())
        .ok_or_else(|| bad("Q2 would not fit in 384 bytes (signature ≥ modulus)"))?;
    Ok((q1, q2))
}

/// The low 384 bytes of a little-endian integer, if the rest is zero.
fn fits_384(le: &[u8]) -> Option<[u8; 384]> {
    let (low, high) = le.split_at(le.len().min(BYTES));
    if high.iter().any(|b| *b != 0) {
        return None;
    }
    let mut out = [0u8; BYTES];
    out[..low.len()].copy_from_slice(low);
    Some(out)
}

/// A little-endian integer of at most 384 significant bytes as exactly 384 bytes.
fn fixed_le(le: &[u8]) -> [u8; 384] {
    fits_384(le).unwrap_or([0u8; BYTES])
}

fn trimmed_decimal(v: &BoxedUint) -> String {
    let le = v.to_le_bytes();
    if le.iter().skip(8).all(|b| *b == 0) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&le[..8.min(le.len())]);
        u64::from_le_bytes(word).to_string()
    } else {
        "a very large number".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(arca_testkit::vector(&format!("rust-sgx/{name}"))).unwrap()
    }

    fn arr(v: Vec<u8>) -> [u8; 384] {
        v.try_into().unwrap()
    }

    #[test]
    fn rsa_primitive_vector_holds_for_signature_q1_and_q2() {
        let key = SigningKey::from_pem(&String::from_utf8(vector("sgxs_tests_data_sig1.key.pem")).unwrap())
            .unwrap();
        let n = arr(vector("sgxs_tests_data_sig1.key_n.bin"));
        assert_eq!(key.modulus_le(), n);
        let digest: [u8; 32] = vector("sgxs_tests_data_sig1.data.bin").try_into().unwrap();
        let mut sig = key.sign_sha256_digest(&digest).unwrap();
        sig.reverse();
        assert_eq!(sig, arr(vector("sgxs_tests_data_sig1.sig.bin")));
        let (q1, q2) = q1_q2(&sig, &n).unwrap();
        assert_eq!(q1, arr(vector("sgxs_tests_data_sig1.q1.bin")));
        assert_eq!(q2, arr(vector("sgxs_tests_data_sig1.q2.bin")));
    }

    #[test]
    fn q1_q2_refuse_a_zero_modulus_and_a_signature_above_the_modulus() {
        assert!(q1_q2(&[1; 384], &[0; 384]).is_err());
        let mut small = [0u8; 384];
        small[0] = 3;
        assert!(q1_q2(&[0xff; 384], &small).is_err());
    }
}
