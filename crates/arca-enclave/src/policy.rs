//! The coordinator identity an enclave pins (contract 5), and the development default.

use arca_sgx::{Mrenclave, Mrsigner};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// MRSIGNER of the **public development** coordinator key `keys/arca-dev-coordinator.pem` (SHA-256 of its
/// 3072-bit modulus, little-endian). Its private half is in the repository: anyone can sign as it, so a
/// policy that trusts it is accepted only together with simulation (see [`CoordinatorPolicy::development`]).
pub const DEV_COORDINATOR_MRSIGNER: Mrsigner = Mrsigner::new([
    0x6b, 0x4d, 0x58, 0x2c, 0x0f, 0x9f, 0x63, 0x18, 0xcd, 0x09, 0xe2, 0x15, 0x89, 0x18, 0xc3, 0xda, 0x2a,
    0x1e, 0x92, 0xba, 0x14, 0xb9, 0x91, 0xb5, 0xab, 0x59, 0x64, 0x32, 0x69, 0x9d, 0x11, 0x1f,
]);

/// ISVPRODID of the Arca coordinator enclave (`0xC001`, "coordinator 1"). Apps converted by Arca default to
/// ISVPRODID 1, so a coordinator policy never matches an app signed with the same key by accident.
pub const COORDINATOR_ISVPRODID: u16 = 0xC001;

/// The coordinator's ISVSVN in this release, and so the minimum a default policy accepts. Raised when a
/// coordinator release fixes a security bug, so that images converted afterwards refuse older coordinators.
pub const COORDINATOR_MIN_ISVSVN: u16 = 1;

/// Which coordinator identity is acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorIdentity {
    /// Exactly one enclave build (breaks on every coordinator rebuild).
    Enclave(Mrenclave),
    /// Any enclave signed by `mrsigner` as product `isvprodid` with security version ≥ `min_isvsvn`.
    Signer {
        /// The signer's MRSIGNER.
        mrsigner: Mrsigner,
        /// The coordinator's product id.
        isvprodid: u16,
        /// The lowest security version accepted.
        min_isvsvn: u16,
    },
}

/// The coordinator identity an enclave manifest pins: the launcher refuses to talk to a coordinator whose
/// RA-TLS quote does not satisfy it.
///
/// Written in TOML (the `[coordinator]` table of an enclave manifest, or a file for
/// `arca convert --coordinator-policy`) as either
/// `mrenclave = "<hex>"` or `mrsigner = "<hex>"`, `isvprodid = N`, `min_isvsvn = N`, plus
/// `allow_simulation` and `allow_debug` (both default `false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPolicy", into = "RawPolicy")]
pub struct CoordinatorPolicy {
    /// The acceptable identity.
    pub identity: CoordinatorIdentity,
    /// Accept a coordinator whose quote is simulated (signed by the Arca simulation root). Never set this
    /// for production images.
    pub allow_simulation: bool,
    /// Accept a coordinator enclave with the DEBUG attribute (its memory is readable by the host).
    pub allow_debug: bool,
}

/// The reason a coordinator's identity does not satisfy a policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyMismatch {
    /// MRENCLAVE differs.
    #[error("coordinator MRENCLAVE {found} is not the pinned {expected}")]
    Mrenclave {
        /// Pinned value.
        expected: Mrenclave,
        /// The coordinator's value.
        found: Mrenclave,
    },
    /// MRSIGNER differs.
    #[error("coordinator MRSIGNER {found} is not the pinned {expected}")]
    Mrsigner {
        /// Pinned value.
        expected: Mrsigner,
        /// The coordinator's value.
        found: Mrsigner,
    },
    /// ISVPRODID differs.
    #[error("coordinator ISVPRODID {found} is not the pinned {expected}")]
    IsvProdId {
        /// Pinned value.
        expected: u16,
        /// The coordinator's value.
        found: u16,
    },
    /// ISVSVN too low.
    #[error("coordinator ISVSVN {found} is below the minimum {min}")]
    IsvSvn {
        /// Minimum accepted.
        min: u16,
        /// The coordinator's value.
        found: u16,
    },
    /// The quote is simulated and the policy does not allow simulation.
    #[error("the coordinator's quote is simulated and the policy does not allow simulation")]
    Simulation,
    /// The coordinator is a debug enclave and the policy does not allow it.
    #[error("the coordinator is a DEBUG enclave and the policy does not allow debug enclaves")]
    Debug,
}

/// What a verified coordinator quote says about the coordinator (input of [`CoordinatorPolicy::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorEvidence {
    /// Its MRENCLAVE.
    pub mrenclave: Mrenclave,
    /// Its MRSIGNER.
    pub mrsigner: Mrsigner,
    /// Its ISVPRODID.
    pub isvprodid: u16,
    /// Its ISVSVN.
    pub isvsvn: u16,
    /// The DEBUG attribute is set.
    pub debug: bool,
    /// The quote chains to the Arca simulation root, not Intel's.
    pub simulated: bool,
}

impl CoordinatorPolicy {
    /// The policy images get without `--coordinator-policy`: the coordinator of this Arca release, signed
    /// with the **public development key** — so simulation must be allowed, and such images work only in
    /// simulation. Tools print [`CoordinatorPolicy::DEVELOPMENT_WARNING`] whenever they use it.
    pub fn development() -> Self {
        CoordinatorPolicy {
            identity: CoordinatorIdentity::Signer {
                mrsigner: DEV_COORDINATOR_MRSIGNER,
                isvprodid: COORDINATOR_ISVPRODID,
                min_isvsvn: COORDINATOR_MIN_ISVSVN,
            },
            allow_simulation: true,
            allow_debug: false,
        }
    }

    /// The warning to print whenever an image pins the development coordinator.
    pub const DEVELOPMENT_WARNING: &'static str = "WARNING: this image pins the DEVELOPMENT coordinator identity \
(signed with the public key keys/arca-dev-coordinator.pem, simulation allowed). It works ONLY in simulation and \
gives NO confidentiality: anyone can sign a coordinator with that key. For production, sign your coordinator with \
your own key and convert with --coordinator-policy FILE (from `arca coordinator identity`).";

    /// True when this policy trusts the public development signer.
    pub fn is_development(&self) -> bool {
        matches!(self.identity, CoordinatorIdentity::Signer { mrsigner, .. } if mrsigner == DEV_COORDINATOR_MRSIGNER)
    }

    /// Checks a coordinator's (already verified) quote against the policy.
    pub fn check(&self, e: &CoordinatorEvidence) -> Result<(), PolicyMismatch> {
        if e.simulated && !self.allow_simulation {
            return Err(PolicyMismatch::Simulation);
        }
        if e.debug && !self.allow_debug {
            return Err(PolicyMismatch::Debug);
        }
        match self.identity {
            CoordinatorIdentity::Enclave(m) => {
                if e.mrenclave != m {
                    return Err(PolicyMismatch::Mrenclave {
                        expected: m,
                        found: e.mrenclave,
                    });
                }
            }
            CoordinatorIdentity::Signer {
                mrsigner,
                isvprodid,
                min_isvsvn,
            } => {
                if e.mrsigner != mrsigner {
                    return Err(PolicyMismatch::Mrsigner {
                        expected: mrsigner,
                        found: e.mrsigner,
                    });
                }
                if e.isvprodid != isvprodid {
                    return Err(PolicyMismatch::IsvProdId {
                        expected: isvprodid,
                        found: e.isvprodid,
                    });
                }
                if e.isvsvn < min_isvsvn {
                    return Err(PolicyMismatch::IsvSvn {
                        min: min_isvsvn,
                        found: e.isvsvn,
                    });
                }
            }
        }
        Ok(())
    }

    /// Parses a policy file (TOML, the keys of the `[coordinator]` table).
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Policy(e.message().to_string()))
    }

    /// Writes the policy as a TOML document.
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|e| Error::Policy(e.to_string()))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    mrenclave: Option<Mrenclave>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrsigner: Option<Mrsigner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    isvprodid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_isvsvn: Option<u16>,
    #[serde(default)]
    allow_simulation: bool,
    #[serde(default)]
    allow_debug: bool,
}

impl TryFrom<RawPolicy> for CoordinatorPolicy {
    type Error = String;
    fn try_from(r: RawPolicy) -> Result<Self, String> {
        let identity = match (r.mrenclave, r.mrsigner, r.isvprodid, r.min_isvsvn) {
            (Some(m), None, None, None) => CoordinatorIdentity::Enclave(m),
            (None, Some(mrsigner), Some(isvprodid), Some(min_isvsvn)) => CoordinatorIdentity::Signer {
                mrsigner,
                isvprodid,
                min_isvsvn,
            },
            (Some(_), ..) => {
                return Err(
                    "give either `mrenclave` alone, or `mrsigner`, `isvprodid` and `min_isvsvn`".into(),
                )
            }
            (None, None, ..) => return Err("missing `mrenclave` or `mrsigner`".into()),
            (None, Some(_), ..) => return Err("`mrsigner` needs `isvprodid` and `min_isvsvn`".into()),
        };
        Ok(CoordinatorPolicy {
            identity,
            allow_simulation: r.allow_simulation,
            allow_debug: r.allow_debug,
        })
    }
}

impl From<CoordinatorPolicy> for RawPolicy {
    fn from(p: CoordinatorPolicy) -> Self {
        let (mrenclave, mrsigner, isvprodid, min_isvsvn) = match p.identity {
            CoordinatorIdentity::Enclave(m) => (Some(m), None, None, None),
            CoordinatorIdentity::Signer {
                mrsigner,
                isvprodid,
                min_isvsvn,
            } => (None, Some(mrsigner), Some(isvprodid), Some(min_isvsvn)),
        };
        RawPolicy {
            mrenclave,
            mrsigner,
            isvprodid,
            min_isvsvn,
            allow_simulation: p.allow_simulation,
            allow_debug: p.allow_debug,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence() -> CoordinatorEvidence {
        CoordinatorEvidence {
            mrenclave: Mrenclave::new([7; 32]),
            mrsigner: DEV_COORDINATOR_MRSIGNER,
            isvprodid: COORDINATOR_ISVPRODID,
            isvsvn: COORDINATOR_MIN_ISVSVN,
            debug: false,
            simulated: true,
        }
    }

    #[test]
    fn the_development_mrsigner_is_the_hash_of_the_repository_key() {
        let pem = std::fs::read_to_string(arca_testkit::testdata().join("../keys/arca-dev-coordinator.pem"))
            .unwrap();
        let key = arca_sgx::SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.mrsigner(), DEV_COORDINATOR_MRSIGNER);
    }

    #[test]
    fn development_policy_accepts_the_simulated_development_coordinator_only() {
        let p = CoordinatorPolicy::development();
        assert!(p.is_development());
        assert_eq!(p.check(&evidence()), Ok(()));
        let older = CoordinatorEvidence {
            isvsvn: COORDINATOR_MIN_ISVSVN - 1,
            ..evidence()
        };
        assert!(matches!(p.check(&older), Err(PolicyMismatch::IsvSvn { .. })));
        let other_product = CoordinatorEvidence {
            isvprodid: 1,
            ..evidence()
        };
        assert!(matches!(
            p.check(&other_product),
            Err(PolicyMismatch::IsvProdId { .. })
        ));
        let debug = CoordinatorEvidence {
            debug: true,
            ..evidence()
        };
        assert_eq!(p.check(&debug), Err(PolicyMismatch::Debug));
    }

    #[test]
    fn a_production_policy_refuses_simulated_quotes() {
        let p = CoordinatorPolicy {
            allow_simulation: false,
            ..CoordinatorPolicy::development()
        };
        assert_eq!(p.check(&evidence()), Err(PolicyMismatch::Simulation));
    }

    #[test]
    fn mrenclave_policies_compare_mrenclave() {
        let p = CoordinatorPolicy {
            identity: CoordinatorIdentity::Enclave(Mrenclave::new([7; 32])),
            allow_simulation: true,
            allow_debug: false,
        };
        assert_eq!(p.check(&evidence()), Ok(()));
        let other = CoordinatorEvidence {
            mrenclave: Mrenclave::new([8; 32]),
            ..evidence()
        };
        assert!(matches!(p.check(&other), Err(PolicyMismatch::Mrenclave { .. })));
    }

    #[test]
    fn policies_round_trip_through_toml_and_refuse_mixed_or_partial_forms() {
        let p = CoordinatorPolicy::development();
        let text = p.to_toml().unwrap();
        assert!(text.contains("mrsigner = \"6b4d582c"), "{text}");
        assert_eq!(CoordinatorPolicy::from_toml(&text).unwrap(), p);
        let m = format!("mrenclave = \"{}\"\n", "ab".repeat(32));
        assert!(!CoordinatorPolicy::from_toml(&m).unwrap().allow_simulation);
        assert!(CoordinatorPolicy::from_toml(&format!("{m}mrsigner = \"{}\"\n", "cd".repeat(32))).is_err());
        assert!(CoordinatorPolicy::from_toml(&format!("mrsigner = \"{}\"\n", "cd".repeat(32))).is_err());
        assert!(CoordinatorPolicy::from_toml(&format!("{m}colour = 1\n")).is_err());
    }
}
