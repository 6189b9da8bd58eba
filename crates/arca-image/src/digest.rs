//! Content digests (`sha256:<64 hex>`) and readers/writers that compute them on the fly.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A SHA-256 content digest, written `sha256:<64 lowercase hex digits>` (the only algorithm Arca accepts;
/// every registry and tool uses it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// The raw 32 bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits (without the `sha256:` prefix), as used in blob file names.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::image(format!("digest `{s}`"), reason.to_string());
        let Some((alg, hex_part)) = s.split_once(':') else {
            return Err(bad("expected `sha256:<64 hex digits>`"));
        };
        if alg != "sha256" {
            return Err(Error::Unsupported {
                what: format!("digest algorithm `{alg}` in `{s}` (only sha256)"),
            });
        }
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("expected 64 lowercase hex digits after `sha256:`"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| bad("invalid hex"))?;
        Ok(Digest(out))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes (unless made with [`HashingReader::counting`]) and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Some(Sha256::new()),
            count: 0,
        }
    }

    /// A reader that hashes only when `hash` is true (and always counts): skips a pass whose digest would go
    /// unused.
    pub(crate) fn hashing_if(inner: R, hash: bool) -> Self {
        HashingReader {
            inner,
            hasher: hash.then(Sha256::new),
            count: 0,
        }
    }

    /// The digest and byte count of everything read so far.
    pub(crate) fn finish(self) -> (Digest, u64) {
        let (d, n) = self.finish_opt();
        (d.unwrap_or_else(|| Digest::of(b"")), n)
    }

    /// The digest (`None` when not hashing) and byte count of everything read so far.
    pub(crate) fn finish_opt(self) -> (Option<Digest>, u64) {
        (self.hasher.map(|h| Digest(h.finalize().into())), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (unless made with [`HashingWriter::hashing_if`] false) and counts what passes through.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Option<Sha256>,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self::hashing_if(inner, true)
    }

    /// A writer that hashes only when `hash` is true (and always counts).
    pub(crate) fn hashing_if(inner: W, hash: bool) -> Self {
        HashingWriter {
            inner,
            hasher: hash.then(Sha256::new),
            count: 0,
        }
    }

    /// The digest and byte count of everything written, and the inner writer.
    pub(crate) fn finish(self) -> (Digest, u64, W) {
        let (d, n, w) = self.finish_opt();
        (d.unwrap_or_else(|| Digest::of(b"")), n, w)
    }

    /// The digest (`None` when not hashing), the byte count and the inner writer.
    pub(crate) fn finish_opt(self) -> (Option<Digest>, u64, W) {
        (
            self.hasher.map(|h| Digest(h.finalize().into())),
            self.count,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compares a computed digest and size against a descriptor's.
pub(crate) fn check(what: &str, expected: &Digest, size: Option<u64>, actual: &Digest, n: u64) -> Result<()> {
    if let Some(size) = size {
        if size != n {
            return Err(Error::Verification {
                what: what.to_string(),
                expected: format!("{size} bytes"),
                actual: format!("{n} bytes"),
            });
        }
    }
    if actual != expected {
        return Err(Error::Verification {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_a_sha256_digest() {
        let d = Digest::of(b"{}");
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(s.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn refuses_other_algorithms_uppercase_and_short_digests() {
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!(
            "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A"
                .parse::<Digest>()
                .is_err()
        );
        assert!("sha256:4413".parse::<Digest>().is_err());
        assert!("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            .parse::<Digest>()
            .is_err());
    }

    #[test]
    fn check_refuses_a_wrong_size_or_digest() {
        let d = Digest::of(b"hello");
        assert!(check("x", &d, Some(5), &Digest::of(b"hello"), 5).is_ok());
        assert!(matches!(
            check("x", &d, Some(6), &Digest::of(b"hello"), 5),
            Err(Error::Verification { .. })
        ));
        assert!(matches!(
            check("x", &d, Some(5), &Digest::of(b"hellO"), 5),
            Err(Error::Verification { .. })
        ));
    }
}
