//! Recovery: the data key that encrypts the state is given, at manifest time, to the holders of the
//! manifest's `RecoveryKeys`, encrypted with RSA-OAEP (SHA-256) to each key. With one key, the secret is the
//! data key; with several and no `RecoveryThreshold` (or a threshold equal to their number), the data key is
//! split by XOR and every secret is needed; with a threshold k < n, it is split with Shamir's scheme over
//! GF(256) and any k secrets recover it.
//!
//! A recovery secret is self-describing: `"ARS1"`, scheme (1 whole, 2 XOR, 3 Shamir), the share's index,
//! the threshold, the number of shares, then the share bytes.

use std::collections::BTreeMap;

use arca_protocol::manifest::RecoveryKey;
use zeroize::Zeroizing;

use crate::crypto::{random32, rsa_oaep_encrypt, DataKey};
use crate::Error;

const MAGIC: &[u8; 4] = b"ARS1";
const WHOLE: u8 = 1;
const XOR: u8 = 2;
const SHAMIR: u8 = 3;

/// How many secrets a set of recovery keys and a threshold need: (scheme, threshold).
fn scheme(keys: usize, threshold: u64) -> (u8, u8) {
    let n = keys.min(255) as u8;
    if n <= 1 {
        (WHOLE, 1)
    } else if threshold == 0 || threshold >= u64::from(n) {
        (XOR, n)
    } else {
        (SHAMIR, threshold.max(1) as u8)
    }
}

/// The number of secrets recovery will need.
pub(crate) fn threshold(keys: usize, threshold: u64) -> u8 {
    if keys == 0 {
        0
    } else {
        scheme(keys, threshold).1
    }
}

/// Splits the data key into one recovery secret per key (in name order), each encrypted to its key.
pub(crate) fn make_secrets(
    keys: &BTreeMap<String, RecoveryKey>,
    threshold: u64,
    data_key: &DataKey,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let n = keys.len();
    if n == 0 {
        return Ok(BTreeMap::new());
    }
    let (scheme, k) = scheme(n, threshold);
    let shares: Vec<Zeroizing<Vec<u8>>> = match scheme {
        WHOLE => vec![Zeroizing::new(data_key.expose().to_vec())],
        XOR => {
            let mut last = *data_key.expose();
            let mut out = Vec::with_capacity(n);
            for _ in 1..n {
                let r = random32()?;
                for (l, b) in last.iter_mut().zip(r) {
                    *l ^= b;
                }
                out.push(Zeroizing::new(r.to_vec()));
            }
            out.push(Zeroizing::new(last.to_vec()));
            out
        }
        _ => blahaj::Sharks(k)
            .dealer(data_key.expose())
            .take(n)
            .map(|s| Zeroizing::new(Vec::from(&s)))
            .collect(),
    };
    let mut out = BTreeMap::new();
    for (i, ((name, key), share)) in keys.iter().zip(shares).enumerate() {
        let mut secret = Zeroizing::new(MAGIC.to_vec());
        secret.extend_from_slice(&[scheme, i as u8, k, n as u8]);
        secret.extend_from_slice(&share);
        out.insert(name.clone(), rsa_oaep_encrypt(&key.spki_der, &secret)?);
    }
    Ok(out)
}

/// Secrets received so far during recovery.
#[derive(Default)]
pub(crate) struct Progress {
    shares: BTreeMap<u8, Zeroizing<Vec<u8>>>,
    shape: Option<(u8, u8, u8)>,
}

/// A parsed recovery secret.
pub(crate) struct Share {
    pub(crate) index: u8,
    scheme: u8,
    k: u8,
    n: u8,
    bytes: Zeroizing<Vec<u8>>,
}

impl Share {
    pub(crate) fn parse(secret: &[u8]) -> Result<Share, Error> {
        let bad = || {
            Error::BadRequest(
                "not an Arca recovery secret (decrypt the value the coordinator returned with your recovery \
                 key's private half, e.g. with `arca recover --key KEY.pem`)"
                    .into(),
            )
        };
        let rest = secret.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
        let [scheme, index, k, n, bytes @ ..] = rest else {
            return Err(bad());
        };
        if !(WHOLE..=SHAMIR).contains(scheme) || index >= n || *k == 0 || k > n || bytes.is_empty() {
            return Err(bad());
        }
        Ok(Share {
            index: *index,
            scheme: *scheme,
            k: *k,
            n: *n,
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }
}

impl Progress {
    /// Adds a share; returns the candidate data key once enough shares are in (the caller checks it opens the
    /// state), or the number still missing.
    pub(crate) fn add(&mut self, s: Share) -> Result<Result<DataKey, u8>, Error> {
        let shape = (s.scheme, s.k, s.n);
        if let Some(prev) = self.shape {
            if prev != shape {
                return Err(Error::BadRequest(
                    "this recovery secret belongs to another set of secrets".into(),
                ));
            }
        }
        self.shape = Some(shape);
        self.shares.insert(s.index, s.bytes);
        let have = self.shares.len() as u8;
        if have < s.k {
            return Ok(Err(s.k - have));
        }
        let key: Zeroizing<Vec<u8>> = match s.scheme {
            WHOLE => self.shares.values().next().cloned().unwrap_or_default(),
            XOR => {
                let mut acc = Zeroizing::new(vec![0u8; 32]);
                for share in self.shares.values() {
                    if share.len() != 32 {
                        return Err(Error::BadRequest("recovery share of the wrong length".into()));
                    }
                    for (a, b) in acc.iter_mut().zip(share.iter()) {
                        *a ^= b;
                    }
                }
                acc
            }
            _ => {
                let shares: Vec<blahaj::Share> = self
                    .shares
                    .values()
                    .map(|b| blahaj::Share::try_from(b.as_slice()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::BadRequest(format!("recovery share: {e}")))?;
                Zeroizing::new(
                    blahaj::Sharks(s.k)
                        .recover(&shares)
                        .map_err(|e| Error::BadRequest(format!("recovery shares: {e}")))?,
                )
            }
        };
        let key: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadRequest("the recovery secrets do not combine into a key".into()))?;
        Ok(Ok(DataKey::from_bytes(key)))
    }

    /// Forgets every share (after a failed combination).
    pub(crate) fn reset(&mut self) {
        self.shares.clear();
        self.shape = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rsa_oaep_decrypt;

    fn keys(n: usize) -> (BTreeMap<String, RecoveryKey>, Vec<String>) {
        let dir = arca_testkit::testdata().join("coordinator");
        let mut m = BTreeMap::new();
        let mut privs = Vec::new();
        for i in 1..=n {
            let pem = std::fs::read_to_string(dir.join(format!("recovery{i}.pub"))).unwrap();
            let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
            m.insert(
                format!("k{i}"),
                RecoveryKey {
                    spki_der: block.contents,
                    bits: 2048,
                },
            );
            privs.push(std::fs::read_to_string(dir.join(format!("recovery{i}.key"))).unwrap());
        }
        (m, privs)
    }

    fn recover(secrets: &BTreeMap<String, Vec<u8>>, privs: &[String], pick: &[usize]) -> Result<DataKey, u8> {
        let mut p = Progress::default();
        let mut last = Err(0);
        for &i in pick {
            let ct = &secrets[&format!("k{}", i + 1)];
            let plain = rsa_oaep_decrypt(&privs[i], ct).unwrap();
            last = p.add(Share::parse(&plain).unwrap()).unwrap();
        }
        last
    }

    #[test]
    fn one_key_recovers_the_data_key() {
        let (k, privs) = keys(1);
        let dk = DataKey::generate().unwrap();
        let s = make_secrets(&k, 0, &dk).unwrap();
        assert_eq!(recover(&s, &privs, &[0]).unwrap(), dk);
    }

    #[test]
    fn two_of_three_recovers_with_any_two_and_not_with_one() {
        let (k, privs) = keys(3);
        let dk = DataKey::generate().unwrap();
        let s = make_secrets(&k, 2, &dk).unwrap();
        assert_eq!(recover(&s, &privs, &[0]).unwrap_err(), 1);
        for pick in [[0, 1], [1, 2], [2, 0]] {
            assert_eq!(recover(&s, &privs, &pick).unwrap(), dk);
        }
    }

    #[test]
    fn xor_needs_every_secret() {
        let (k, privs) = keys(3);
        let dk = DataKey::generate().unwrap();
        let s = make_secrets(&k, 0, &dk).unwrap();
        assert_eq!(recover(&s, &privs, &[0, 1]).unwrap_err(), 1);
        assert_eq!(recover(&s, &privs, &[2, 0, 1]).unwrap(), dk);
    }

    #[test]
    fn refuses_garbage_and_mixed_sets() {
        assert!(Share::parse(b"hello").is_err());
        assert!(Share::parse(b"ARS1\x02\x05\x02\x03xx").is_err());
        let mut p = Progress::default();
        p.add(Share::parse(b"ARS1\x03\x00\x02\x03ab").unwrap())
            .unwrap()
            .unwrap_err();
        assert!(p.add(Share::parse(b"ARS1\x02\x01\x03\x03ab").unwrap()).is_err());
    }
}
