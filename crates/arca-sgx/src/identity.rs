//! The two 32-byte enclave identities, MRENCLAVE and MRSIGNER.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

macro_rules! identity_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// Displays and parses as 64 lower-case hexadecimal digits (parsing also accepts upper case);
        /// serialises with serde as that same string.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Size in bytes.
            pub const SIZE: usize = 32;

            /// Wraps 32 bytes, as stored in SGX structures.
            pub const fn new(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The 32 bytes, as stored in SGX structures.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The 32 bytes, by value.
            pub const fn to_bytes(self) -> [u8; 32] {
                self.0
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                let mut out = [0u8; 32];
                match hex::decode_to_slice(s, &mut out) {
                    Ok(()) => Ok(Self(out)),
                    Err(_) => Err(Error::Hex { what: $what, found: shorten(s) }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&hex::encode(self.0))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

identity_newtype!(
    /// MRENCLAVE: the SHA-256 measurement of an enclave's creation and loaded pages (also a SIGSTRUCT's
    /// ENCLAVEHASH). Computed with [`MeasurementBuilder`](crate::MeasurementBuilder).
    Mrenclave,
    "MRENCLAVE"
);

identity_newtype!(
    /// MRSIGNER: SHA-256 of the signer's RSA modulus as stored in SIGSTRUCT (3072 bits, little-endian).
    Mrsigner,
    "MRSIGNER"
);

/// Keeps error messages short when someone pastes a whole file where a hash was expected.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        let head: String = s.chars().take(77).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc";

    #[test]
    fn displays_and_parses_as_lower_case_hex() {
        let m: Mrenclave = HEX.parse().unwrap();
        assert_eq!(m.as_bytes()[0], 0x78);
        assert_eq!(m.to_string(), HEX);
        assert_eq!(HEX.to_uppercase().parse::<Mrenclave>().unwrap(), m);
        assert_eq!(format!("{m:?}"), format!("Mrenclave({HEX})"));
    }

    #[test]
    fn rejects_wrong_length_and_non_hex_with_the_input_named() {
        let err = HEX[..62].parse::<Mrsigner>().unwrap_err();
        assert!(err.to_string().contains("MRSIGNER"), "{err}");
        assert!(err.to_string().contains(&HEX[..62]), "{err}");
        assert!(format!("{}zz", &HEX[..62]).parse::<Mrenclave>().is_err());
        assert!(format!("{HEX}00").parse::<Mrenclave>().is_err());
    }

    #[test]
    fn serialises_with_serde_as_a_hex_string() {
        let m: Mrsigner = HEX.parse().unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("\"{HEX}\""));
        assert_eq!(serde_json::from_str::<Mrsigner>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Mrsigner>("\"00\"").is_err());
    }
}
