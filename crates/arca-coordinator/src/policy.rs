//! Package policy: does a verified enclave identity match a manifest package?

use arca_protocol::manifest::Package;

use crate::Error;

/// What a fully verified quote says about an enclave (the input of the package check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enclave {
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// MRSIGNER.
    pub mrsigner: [u8; 32],
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// The DEBUG attribute.
    pub debug: bool,
    /// The quote's REPORTDATA.
    pub report_data: [u8; 64],
    /// The platform's TCB status (`UpToDate`, `SWHardeningNeeded`, …).
    pub tcb_status: String,
    /// Intel advisory IDs that apply.
    pub advisories: Vec<String>,
    /// The quote chains to the Arca simulation root, not Intel's.
    pub simulated: bool,
}

/// Checks `e` against package `name`; `min_svn` is the effective minimum SecurityVersion (the manifest's, or a
/// later update's). The error says exactly which property failed.
pub fn check_package(name: &str, pkg: &Package, min_svn: Option<u16>, e: &Enclave) -> Result<(), Error> {
    if let Some(want) = pkg.unique_id {
        if e.mrenclave != want {
            return Err(Error::Refused(format!(
                "MRENCLAVE {} does not match package {name:?} (UniqueID {})",
                hex::encode(e.mrenclave),
                hex::encode(want)
            )));
        }
    }
    if let Some(want) = pkg.signer_id {
        if e.mrsigner != want {
            return Err(Error::Refused(format!(
                "MRSIGNER {} does not match package {name:?} (SignerID {})",
                hex::encode(e.mrsigner),
                hex::encode(want)
            )));
        }
    }
    if let Some(want) = pkg.product_id {
        if e.isv_prod_id != want {
            return Err(Error::Refused(format!(
                "ProductID {} does not match package {name:?} (ProductID {want})",
                e.isv_prod_id
            )));
        }
    }
    if let Some(min) = min_svn {
        if e.isv_svn < min {
            return Err(Error::Refused(format!(
                "SecurityVersion {} is lower than package {name:?} requires ({min})",
                e.isv_svn
            )));
        }
    }
    if e.debug && !pkg.debug {
        return Err(Error::Refused(format!(
            "debug enclave refused: package {name:?} does not allow Debug (debug enclaves are not secure)"
        )));
    }
    if !pkg.accepted_tcb_statuses.contains(&e.tcb_status) {
        return Err(Error::Refused(format!(
            "TCB status {} is not accepted by package {name:?} (AcceptedTCBStatuses: {})",
            e.tcb_status,
            pkg.accepted_tcb_statuses.join(", ")
        )));
    }
    if e.tcb_status != "UpToDate" && !pkg.accepted_advisories.is_empty() {
        if let Some(a) = e.advisories.iter().find(|a| !pkg.accepted_advisories.contains(a)) {
            return Err(Error::Refused(format!(
                "advisory {a} applies to this platform and is not in package {name:?}'s AcceptedAdvisories"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enclave() -> Enclave {
        Enclave {
            mrenclave: [1; 32],
            mrsigner: [2; 32],
            isv_prod_id: 7,
            isv_svn: 3,
            debug: false,
            report_data: [0; 64],
            tcb_status: "UpToDate".into(),
            advisories: vec![],
            simulated: true,
        }
    }

    fn pkg() -> Package {
        Package {
            signer_id: Some([2; 32]),
            product_id: Some(7),
            security_version: Some(3),
            accepted_tcb_statuses: vec!["UpToDate".into(), "SWHardeningNeeded".into()],
            ..Package::default()
        }
    }

    fn refusal(p: &Package, svn: Option<u16>, e: &Enclave) -> String {
        check_package("backend", p, svn, e).unwrap_err().to_string()
    }

    #[test]
    fn accepts_a_matching_enclave() {
        check_package("backend", &pkg(), Some(3), &enclave()).unwrap();
    }

    #[test]
    fn refuses_each_mismatch_saying_which() {
        let p = pkg();
        let mut e = enclave();
        e.mrsigner = [9; 32];
        assert!(refusal(&p, Some(3), &e).contains("MRSIGNER"));
        let mut e = enclave();
        e.isv_prod_id = 8;
        assert!(refusal(&p, Some(3), &e).contains("ProductID"));
        assert!(refusal(&p, Some(4), &enclave()).contains("SecurityVersion 3 is lower"));
        let mut e = enclave();
        e.debug = true;
        assert!(refusal(&p, Some(3), &e).contains("debug enclave refused"));
        let mut e = enclave();
        e.tcb_status = "OutOfDate".into();
        assert!(refusal(&p, Some(3), &e).contains("TCB status OutOfDate"));
        let mut u = pkg();
        u.unique_id = Some([5; 32]);
        assert!(refusal(&u, Some(3), &enclave()).contains("MRENCLAVE"));
    }

    #[test]
    fn debug_packages_accept_debug_enclaves_and_advisories_are_checked() {
        let mut p = pkg();
        p.debug = true;
        let mut e = enclave();
        e.debug = true;
        check_package("b", &p, Some(3), &e).unwrap();
        p.accepted_advisories = vec!["INTEL-SA-00334".into()];
        e.tcb_status = "SWHardeningNeeded".into();
        e.advisories = vec!["INTEL-SA-00334".into()];
        check_package("b", &p, Some(3), &e).unwrap();
        e.advisories.push("INTEL-SA-00615".into());
        assert!(refusal(&p, Some(3), &e).contains("INTEL-SA-00615"));
    }
}
