//! The appraisal policy and the verdict it gives.
//!
//! A [`Policy`] is plain data (serde), so it can be pinned in a manifest or a file. Its defaults are the safe
//! ones: TCB statuses UpToDate and SWHardeningNeeded, no debug enclaves, no simulation, no relaxation. Test-only
//! relaxations carry "insecure" in their names and are never defaults.

use serde::{Deserialize, Serialize};

use crate::pki::AnchorKind;
use crate::tcb::TcbStatus;
use crate::verify::VerifiedQuote;

/// A fixed-size byte string written as hex in JSON and on the command line.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> std::fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> std::fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> std::str::FromStr for HexBytes<N> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v = hex::decode(s.trim()).map_err(|e| format!("`{s}` is not hex: {e}"))?;
        let len = v.len();
        v.try_into()
            .map(HexBytes)
            .map_err(|_| format!("`{s}` has {len} bytes, expected {N}"))
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Expected TD measurements (every field set must match).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TdxPolicy {
    /// Expected MRTD.
    pub mr_td: Option<HexBytes<48>>,
    /// Expected RTMR0..3 (each optional).
    pub rtmr: [Option<HexBytes<48>>; 4],
    /// Expected MRCONFIGID.
    pub mr_config_id: Option<HexBytes<48>>,
    /// Expected MROWNER.
    pub mr_owner: Option<HexBytes<48>>,
    /// Expected MROWNERCONFIG.
    pub mr_owner_config: Option<HexBytes<48>>,
}

/// What verified evidence must show to be accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// TCB statuses accepted (default UpToDate, SWHardeningNeeded). Evidence without collateral has an
    /// unknown TCB status, which no list accepts.
    pub accepted_tcb_statuses: Vec<TcbStatus>,
    /// When set, every advisory ID reported must be in this list.
    pub accepted_advisories: Option<Vec<String>>,
    /// Advisory IDs that are refused whatever the status.
    pub rejected_advisories: Vec<String>,
    /// Accept debug enclaves / TDs (default false: their memory is readable by the host).
    pub allow_debug: bool,
    /// Expected MRENCLAVE.
    pub mrenclave: Option<HexBytes<32>>,
    /// Expected MRSIGNER.
    pub mrsigner: Option<HexBytes<32>>,
    /// Expected ISVPRODID.
    pub isv_prod_id: Option<u16>,
    /// Minimum ISVSVN.
    pub min_isv_svn: Option<u16>,
    /// Expected TD measurements (TDX quotes only).
    pub tdx: Option<TdxPolicy>,
    /// Trust the configured Arca simulation root: simulated quotes then pass (default false; never in
    /// production — a simulated quote proves nothing about hardware).
    pub allow_simulation: bool,
    /// Anchor on the exact root certificate bytes instead of the root's name and key (default false; see
    /// `docs/attestation.md`).
    pub require_exact_root_certificate: bool,
    /// TEST ONLY: ignore CRL thisUpdate/nextUpdate (for old vectors whose bundled CRLs postdate them).
    pub insecure_ignore_crl_dates: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            accepted_tcb_statuses: vec![TcbStatus::UpToDate, TcbStatus::SWHardeningNeeded],
            accepted_advisories: None,
            rejected_advisories: Vec::new(),
            allow_debug: false,
            mrenclave: None,
            mrsigner: None,
            isv_prod_id: None,
            min_isv_svn: None,
            tdx: None,
            allow_simulation: false,
            require_exact_root_certificate: false,
            insecure_ignore_crl_dates: false,
        }
    }
}

/// The outcome of an appraisal: accepted or not, and why, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// True when the evidence verified and the policy accepts it.
    pub accepted: bool,
    /// Why it was refused (empty when accepted).
    pub reasons: Vec<String>,
    /// Things the user should know even when accepted (e.g. "simulation quote").
    pub notes: Vec<String>,
    /// The verified evidence, when the cryptographic checks passed.
    pub evidence: Option<VerifiedQuote>,
}

impl Verdict {
    /// A refusal before any evidence could be verified.
    pub fn refused(reason: String) -> Self {
        Verdict {
            accepted: false,
            reasons: vec![reason],
            notes: Vec::new(),
            evidence: None,
        }
    }

    /// The verified evidence if accepted, else an error listing the reasons.
    pub fn into_result(self) -> Result<VerifiedQuote, crate::Error> {
        match (self.accepted, self.evidence) {
            (true, Some(e)) => Ok(e),
            _ => Err(crate::Error::Policy(self.reasons.join("; "))),
        }
    }
}

impl Policy {
    /// The default policy that also trusts the simulation root (for simulation clusters and tests).
    pub fn simulation() -> Self {
        Policy {
            allow_simulation: true,
            ..Policy::default()
        }
    }

    /// Applies the acceptance rules to verified evidence.
    pub fn appraise(&self, evidence: VerifiedQuote) -> Verdict {
        let mut reasons = Vec::new();
        let mut notes = Vec::new();
        if evidence.anchor == AnchorKind::Simulation {
            if self.allow_simulation {
                notes.push("simulation quote: signed by the Arca simulation PKI, not by SGX hardware".into());
            } else {
                reasons.push("simulation quote: the policy does not allow simulation".into());
            }
        }
        match &evidence.tcb {
            None => reasons.push(
                "TCB status unknown: no collateral was supplied, so the platform's patch level cannot be judged".into(),
            ),
            Some(tcb) => {
                if !self.accepted_tcb_statuses.contains(&tcb.status) {
                    let accepted: Vec<_> = self.accepted_tcb_statuses.iter().map(|s| s.as_str()).collect();
                    reasons.push(format!(
                        "TCB status {} is not accepted (accepted: {})",
                        tcb.status,
                        if accepted.is_empty() { "none".into() } else { accepted.join(", ") }
                    ));
                }
                for a in &tcb.advisory_ids {
                    if self.rejected_advisories.contains(a) {
                        reasons.push(format!("advisory {a} applies to this platform and is rejected by the policy"));
                    } else if let Some(ok) = &self.accepted_advisories {
                        if !ok.contains(a) {
                            reasons.push(format!("advisory {a} applies to this platform and is not in the accepted list"));
                        }
                    }
                }
            }
        }
        if evidence.debug() && !self.allow_debug {
            reasons.push(
                "the enclave runs in DEBUG mode (its memory is readable by the host); debug is not allowed"
                    .into(),
            );
        }
        let sgx_identity_asked = self.mrenclave.is_some()
            || self.mrsigner.is_some()
            || self.isv_prod_id.is_some()
            || self.min_isv_svn.is_some();
        match evidence.body.sgx() {
            Some(_) => {
                let mrenclave = evidence.mrenclave().unwrap_or_default();
                let mrsigner = evidence.mrsigner().unwrap_or_default();
                let prod = evidence.isv_prod_id().unwrap_or_default();
                let svn = evidence.isv_svn().unwrap_or_default();
                if let Some(want) = self.mrenclave.filter(|w| w.0 != mrenclave) {
                    reasons.push(format!(
                        "MRENCLAVE {} is not the expected {want}",
                        hex::encode(mrenclave)
                    ));
                }
                if let Some(want) = self.mrsigner.filter(|w| w.0 != mrsigner) {
                    reasons.push(format!(
                        "MRSIGNER {} is not the expected {want}",
                        hex::encode(mrsigner)
                    ));
                }
                if let Some(want) = self.isv_prod_id.filter(|w| *w != prod) {
                    reasons.push(format!("ISVPRODID {prod} is not the expected {want}"));
                }
                if let Some(min) = self.min_isv_svn.filter(|m| svn < *m) {
                    reasons.push(format!("ISVSVN {svn} is below the minimum {min}"));
                }
                if self.tdx.is_some() {
                    reasons.push("the policy expects a TD, but the quote is from an SGX enclave".into());
                }
            }
            None => {
                if sgx_identity_asked {
                    reasons.push(
                        "the policy expects an SGX enclave identity, but the quote is from a TD".into(),
                    );
                }
                if let (Some(want), Some(td)) = (&self.tdx, evidence.body.td()) {
                    let fields = [
                        ("MRTD", want.mr_td, td.mr_td),
                        ("RTMR0", want.rtmr[0], td.rtmr[0]),
                        ("RTMR1", want.rtmr[1], td.rtmr[1]),
                        ("RTMR2", want.rtmr[2], td.rtmr[2]),
                        ("RTMR3", want.rtmr[3], td.rtmr[3]),
                        ("MRCONFIGID", want.mr_config_id, td.mr_config_id),
                        ("MROWNER", want.mr_owner, td.mr_owner),
                        ("MROWNERCONFIG", want.mr_owner_config, td.mr_owner_config),
                    ];
                    for (name, want, have) in fields {
                        if let Some(w) = want.filter(|w| w.0 != have) {
                            reasons.push(format!("{name} {} is not the expected {w}", hex::encode(have)));
                        }
                    }
                }
            }
        }
        if self.insecure_ignore_crl_dates {
            notes.push("INSECURE: CRL validity dates were ignored (test-only relaxation)".into());
        }
        Verdict {
            accepted: reasons.is_empty(),
            reasons,
            notes,
            evidence: Some(evidence),
        }
    }
}
