//! TCB info and QE identity: parsing the signed JSON, TCB level matching and status merging.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::pki::PckExtensions;

/// A TCB status, spelled as Intel spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum TcbStatus {
    /// The platform is patched.
    UpToDate,
    /// Patched, but software hardening (e.g. against LVI) is needed in the enclave.
    SWHardeningNeeded,
    /// Patched, but the platform configuration needs attention.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSWHardeningNeeded,
    /// The platform's TCB is out of date.
    OutOfDate,
    /// Out of date, and the configuration needs attention.
    OutOfDateConfigurationNeeded,
    /// The platform's TCB level is revoked.
    Revoked,
}

impl TcbStatus {
    /// Every status, best first.
    pub const ALL: [TcbStatus; 7] = [
        TcbStatus::UpToDate,
        TcbStatus::SWHardeningNeeded,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSWHardeningNeeded,
        TcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded,
        TcbStatus::Revoked,
    ];

    /// Intel's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TcbStatus::UpToDate => "UpToDate",
            TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
            TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
            TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbStatus::OutOfDate => "OutOfDate",
            TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbStatus::Revoked => "Revoked",
        }
    }

    /// Parses Intel's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Merges the status of a component (QE identity or TDX module: UpToDate, OutOfDate or Revoked) into a
    /// platform status, as Intel's QVL does.
    pub(crate) fn converge(self, component: TcbStatus) -> TcbStatus {
        use TcbStatus::*;
        match component {
            Revoked => Revoked,
            OutOfDate | OutOfDateConfigurationNeeded => match self {
                UpToDate | SWHardeningNeeded => OutOfDate,
                ConfigurationNeeded | ConfigurationAndSWHardeningNeeded => OutOfDateConfigurationNeeded,
                other => other,
            },
            _ => self,
        }
    }
}

impl std::fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TcbStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TcbStatus::parse(s).ok_or_else(|| {
            format!(
                "unknown TCB status `{s}` (one of: {})",
                TcbStatus::ALL.map(|t| t.as_str()).join(", ")
            )
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TcbInfoJson<'a> {
    #[serde(default, borrow)]
    id: Option<&'a str>,
    version: u32,
    #[serde(borrow)]
    issue_date: &'a str,
    #[serde(borrow)]
    next_update: &'a str,
    #[serde(borrow)]
    fmspc: &'a str,
    #[serde(borrow)]
    pce_id: &'a str,
    #[serde(default)]
    tcb_evaluation_data_number: Option<u32>,
    #[serde(default, borrow)]
    tdx_module: Option<TdxModuleJson<'a>>,
    #[serde(default, borrow)]
    tdx_module_identities: Vec<TdxModuleIdentityJson<'a>>,
    #[serde(borrow)]
    tcb_levels: Vec<TcbLevelJson<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TdxModuleJson<'a> {
    #[serde(borrow)]
    mrsigner: &'a str,
    #[serde(borrow)]
    attributes: &'a str,
    #[serde(borrow)]
    attributes_mask: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TdxModuleIdentityJson<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    mrsigner: &'a str,
    #[serde(borrow)]
    attributes: &'a str,
    #[serde(borrow)]
    attributes_mask: &'a str,
    #[serde(borrow)]
    tcb_levels: Vec<IsvLevelJson<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TcbLevelJson<'a> {
    tcb: TcbJson,
    #[serde(borrow)]
    tcb_date: &'a str,
    #[serde(borrow)]
    tcb_status: &'a str,
    #[serde(default, rename = "advisoryIDs")]
    advisory_ids: Vec<String>,
}

#[derive(Deserialize)]
struct SvnJson {
    svn: u32,
}

#[derive(Deserialize)]
struct TcbJson {
    #[serde(default)]
    sgxtcbcomponents: Option<Vec<SvnJson>>,
    #[serde(default)]
    tdxtcbcomponents: Option<Vec<SvnJson>>,
    pcesvn: u32,
    sgxtcbcomp01svn: Option<u32>,
    sgxtcbcomp02svn: Option<u32>,
    sgxtcbcomp03svn: Option<u32>,
    sgxtcbcomp04svn: Option<u32>,
    sgxtcbcomp05svn: Option<u32>,
    sgxtcbcomp06svn: Option<u32>,
    sgxtcbcomp07svn: Option<u32>,
    sgxtcbcomp08svn: Option<u32>,
    sgxtcbcomp09svn: Option<u32>,
    sgxtcbcomp10svn: Option<u32>,
    sgxtcbcomp11svn: Option<u32>,
    sgxtcbcomp12svn: Option<u32>,
    sgxtcbcomp13svn: Option<u32>,
    sgxtcbcomp14svn: Option<u32>,
    sgxtcbcomp15svn: Option<u32>,
    sgxtcbcomp16svn: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IsvLevelJson<'a> {
    tcb: IsvSvnJson,
    #[serde(borrow)]
    tcb_date: &'a str,
    #[serde(borrow)]
    tcb_status: &'a str,
    #[serde(default, rename = "advisoryIDs")]
    advisory_ids: Vec<String>,
}

#[derive(Deserialize)]
struct IsvSvnJson {
    isvsvn: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QeIdentityJson<'a> {
    #[serde(default, borrow)]
    id: Option<&'a str>,
    version: u32,
    #[serde(borrow)]
    issue_date: &'a str,
    #[serde(borrow)]
    next_update: &'a str,
    #[serde(default)]
    tcb_evaluation_data_number: Option<u32>,
    #[serde(borrow)]
    miscselect: &'a str,
    #[serde(borrow)]
    miscselect_mask: &'a str,
    #[serde(borrow)]
    attributes: &'a str,
    #[serde(borrow)]
    attributes_mask: &'a str,
    #[serde(borrow)]
    mrsigner: &'a str,
    isvprodid: u32,
    #[serde(borrow)]
    tcb_levels: Vec<IsvLevelJson<'a>>,
}

/// One platform TCB level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcbLevel {
    pub(crate) sgx: [u32; 16],
    pub(crate) pcesvn: u32,
    pub(crate) tdx: Option<[u32; 16]>,
    pub(crate) date: String,
    pub(crate) status: TcbStatus,
    pub(crate) advisories: Vec<String>,
}

/// A level keyed by ISVSVN (QE identity, TDX module identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IsvLevel {
    pub(crate) isvsvn: u32,
    pub(crate) status: TcbStatus,
    pub(crate) advisories: Vec<String>,
}

/// A TDX module identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TdxModuleIdentity {
    pub(crate) id: String,
    pub(crate) mrsigner: [u8; 48],
    pub(crate) attributes: [u8; 8],
    pub(crate) attributes_mask: [u8; 8],
    pub(crate) levels: Vec<IsvLevel>,
}

/// Parsed TCB info (v2 or v3, SGX or TDX).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TcbInfo {
    pub(crate) id: String,
    pub(crate) version: u32,
    pub(crate) issue_date: i64,
    pub(crate) next_update: i64,
    pub(crate) fmspc: [u8; 6],
    pub(crate) pce_id: [u8; 2],
    pub(crate) evaluation_data_number: Option<u32>,
    pub(crate) tdx_module: Option<TdxModuleIdentity>,
    pub(crate) tdx_module_identities: Vec<TdxModuleIdentity>,
    pub(crate) levels: Vec<TcbLevel>,
}

/// Parsed QE identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QeIdentity {
    pub(crate) id: String,
    pub(crate) issue_date: i64,
    pub(crate) next_update: i64,
    pub(crate) miscselect: [u8; 4],
    pub(crate) miscselect_mask: [u8; 4],
    pub(crate) attributes: [u8; 16],
    pub(crate) attributes_mask: [u8; 16],
    pub(crate) mrsigner: [u8; 32],
    pub(crate) isvprodid: u32,
    pub(crate) levels: Vec<IsvLevel>,
}

fn bad(item: &str, reason: impl std::fmt::Display) -> Error {
    Error::collateral(item, reason)
}

/// Parses an RFC 3339 date of the collateral into Unix seconds.
pub(crate) fn parse_date(s: &str, item: &str) -> Result<i64, Error> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|d| d.unix_timestamp())
        .map_err(|e| bad(item, format!("bad date `{s}`: {e}")))
}

fn hex_array<const N: usize>(s: &str, item: &str) -> Result<[u8; N], Error> {
    let v = hex::decode(s).map_err(|e| bad(item, format!("bad hex `{s}`: {e}")))?;
    v.try_into()
        .map_err(|v: Vec<u8>| bad(item, format!("{} bytes, expected {N}", v.len())))
}

fn status(s: &str, item: &str) -> Result<TcbStatus, Error> {
    TcbStatus::parse(s).ok_or_else(|| bad(item, format!("unknown tcbStatus `{s}`")))
}

fn components(v: &[SvnJson], item: &str) -> Result<[u32; 16], Error> {
    if v.len() != 16 {
        return Err(bad(item, format!("{} components, expected 16", v.len())));
    }
    let mut out = [0u32; 16];
    for (o, c) in out.iter_mut().zip(v) {
        *o = c.svn;
    }
    Ok(out)
}

fn isv_levels(levels: Vec<IsvLevelJson<'_>>, item: &str) -> Result<Vec<IsvLevel>, Error> {
    levels
        .into_iter()
        .map(|l| {
            let _ = l.tcb_date;
            Ok(IsvLevel {
                isvsvn: l.tcb.isvsvn,
                status: status(l.tcb_status, item)?,
                advisories: l.advisory_ids,
            })
        })
        .collect()
}

impl TcbInfo {
    /// Parses the signed TCB info text.
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let j: TcbInfoJson<'_> = serde_json::from_str(text).map_err(|e| bad("tcb_info", e))?;
        if !(2..=3).contains(&j.version) {
            return Err(bad(
                "tcb_info.version",
                format!("version {} is not supported (2 or 3)", j.version),
            ));
        }
        let levels = j
            .tcb_levels
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let item = format!("tcb_info.tcbLevels[{i}]");
                let t = l.tcb;
                let sgx = match &t.sgxtcbcomponents {
                    Some(c) => components(c, &item)?,
                    None => {
                        let v2 = [
                            t.sgxtcbcomp01svn,
                            t.sgxtcbcomp02svn,
                            t.sgxtcbcomp03svn,
                            t.sgxtcbcomp04svn,
                            t.sgxtcbcomp05svn,
                            t.sgxtcbcomp06svn,
                            t.sgxtcbcomp07svn,
                            t.sgxtcbcomp08svn,
                            t.sgxtcbcomp09svn,
                            t.sgxtcbcomp10svn,
                            t.sgxtcbcomp11svn,
                            t.sgxtcbcomp12svn,
                            t.sgxtcbcomp13svn,
                            t.sgxtcbcomp14svn,
                            t.sgxtcbcomp15svn,
                            t.sgxtcbcomp16svn,
                        ];
                        let mut out = [0u32; 16];
                        for (o, c) in out.iter_mut().zip(v2) {
                            *o = c.ok_or_else(|| bad(&item, "missing sgxtcbcompNNsvn"))?;
                        }
                        out
                    }
                };
                let tdx = t
                    .tdxtcbcomponents
                    .as_deref()
                    .map(|c| components(c, &item))
                    .transpose()?;
                Ok(TcbLevel {
                    sgx,
                    pcesvn: t.pcesvn,
                    tdx,
                    date: l.tcb_date.to_string(),
                    status: status(l.tcb_status, &item)?,
                    advisories: l.advisory_ids,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let module = |m: TdxModuleJson<'_>, id: &str| -> Result<TdxModuleIdentity, Error> {
            Ok(TdxModuleIdentity {
                id: id.to_string(),
                mrsigner: hex_array(m.mrsigner, "tcb_info.tdxModule.mrsigner")?,
                attributes: hex_array(m.attributes, "tcb_info.tdxModule.attributes")?,
                attributes_mask: hex_array(m.attributes_mask, "tcb_info.tdxModule.attributesMask")?,
                levels: Vec::new(),
            })
        };
        let tdx_module = j.tdx_module.map(|m| module(m, "")).transpose()?;
        let tdx_module_identities = j
            .tdx_module_identities
            .into_iter()
            .map(|m| {
                let item = "tcb_info.tdxModuleIdentities";
                Ok(TdxModuleIdentity {
                    id: m.id.to_string(),
                    mrsigner: hex_array(m.mrsigner, item)?,
                    attributes: hex_array(m.attributes, item)?,
                    attributes_mask: hex_array(m.attributes_mask, item)?,
                    levels: isv_levels(m.tcb_levels, item)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(TcbInfo {
            id: j.id.unwrap_or("SGX").to_string(),
            version: j.version,
            issue_date: parse_date(j.issue_date, "tcb_info.issueDate")?,
            next_update: parse_date(j.next_update, "tcb_info.nextUpdate")?,
            fmspc: hex_array(j.fmspc, "tcb_info.fmspc")?,
            pce_id: hex_array(j.pce_id, "tcb_info.pceId")?,
            evaluation_data_number: j.tcb_evaluation_data_number,
            tdx_module,
            tdx_module_identities,
            levels,
        })
    }

    /// The first level met by the platform: every SGX component SVN and the PCESVN of the PCK certificate
    /// (and, for TDX, every TEE_TCB_SVN byte) at least the level's.
    pub(crate) fn platform_level(
        &self,
        pck: &PckExtensions,
        tee_tcb_svn: Option<&[u8; 16]>,
    ) -> Result<&TcbLevel, Error> {
        self.levels
            .iter()
            .find(|l| {
                l.sgx
                    .iter()
                    .zip(pck.tcb_components)
                    .all(|(need, have)| *need <= u32::from(have))
                    && l.pcesvn <= u32::from(pck.pcesvn)
                    && match (tee_tcb_svn, &l.tdx) {
                        (None, _) => true,
                        (Some(svn), Some(need)) => need.iter().zip(svn).all(|(n, h)| *n <= u32::from(*h)),
                        (Some(_), None) => false,
                    }
            })
            .ok_or_else(|| {
                let mut what = format!(
                    "PCK SGX components {:?}, PCESVN {}",
                    pck.tcb_components, pck.pcesvn
                );
                if let Some(svn) = tee_tcb_svn {
                    what.push_str(&format!(", TEE_TCB_SVN {}", hex::encode(svn)));
                }
                Error::TcbNotSupported(what)
            })
    }
}

impl QeIdentity {
    /// Parses the signed QE identity text.
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let j: QeIdentityJson<'_> = serde_json::from_str(text).map_err(|e| bad("qe_identity", e))?;
        if j.version != 2 {
            return Err(bad(
                "qe_identity.version",
                format!("version {} is not supported (2)", j.version),
            ));
        }
        let _ = j.tcb_evaluation_data_number;
        Ok(QeIdentity {
            id: j.id.unwrap_or("QE").to_string(),
            issue_date: parse_date(j.issue_date, "qe_identity.issueDate")?,
            next_update: parse_date(j.next_update, "qe_identity.nextUpdate")?,
            miscselect: hex_array(j.miscselect, "qe_identity.miscselect")?,
            miscselect_mask: hex_array(j.miscselect_mask, "qe_identity.miscselectMask")?,
            attributes: hex_array(j.attributes, "qe_identity.attributes")?,
            attributes_mask: hex_array(j.attributes_mask, "qe_identity.attributesMask")?,
            mrsigner: hex_array(j.mrsigner, "qe_identity.mrsigner")?,
            isvprodid: j.isvprodid,
            levels: isv_levels(j.tcb_levels, "qe_identity.tcbLevels")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converging_a_platform_status_with_an_out_of_date_component() {
        use TcbStatus::*;
        assert_eq!(UpToDate.converge(OutOfDate), OutOfDate);
        assert_eq!(SWHardeningNeeded.converge(OutOfDate), OutOfDate);
        assert_eq!(
            ConfigurationNeeded.converge(OutOfDate),
            OutOfDateConfigurationNeeded
        );
        assert_eq!(
            ConfigurationAndSWHardeningNeeded.converge(OutOfDate),
            OutOfDateConfigurationNeeded
        );
        assert_eq!(UpToDate.converge(Revoked), Revoked);
        assert_eq!(ConfigurationNeeded.converge(UpToDate), ConfigurationNeeded);
    }

    #[test]
    fn parses_tcb_info_v2_and_v3() {
        let v2 = std::fs::read_to_string(arca_testkit::vector("intel-qvl-sampledata/tcbInfo.json")).unwrap();
        let body: serde_json::Value = serde_json::from_str(&v2).unwrap();
        let info = TcbInfo::parse(&body["tcbInfo"].to_string()).unwrap();
        assert_eq!(info.version, 2);
        assert_eq!(info.levels.len(), 6);
        assert_eq!(info.levels[4].status, TcbStatus::Revoked);
        let json = std::fs::read(arca_testkit::vector("dcap-qvl/sample_tdx_quote_collateral.json")).unwrap();
        let c = crate::Collateral::from_json(&json).unwrap();
        let info = TcbInfo::parse(c.tcb_info()).unwrap();
        assert_eq!(info.id, "TDX");
        assert_eq!(info.tdx_module_identities.len(), 2);
        assert!(info.levels[0].tdx.is_some());
    }
}
