//! Field access on the SGX REPORT body (`arca_sgx::ReportBody`) used by verification.

use arca_sgx::{Attributes, ReportBody};

/// MISCSELECT @16 as its 4 raw bytes.
pub(crate) fn miscselect_bytes(r: &ReportBody) -> [u8; 4] {
    r.miscselect.to_bytes()
}
/// ATTRIBUTES @48 as its 16 raw bytes (flags ‖ xfrm).
pub(crate) fn attributes_bytes(r: &ReportBody) -> [u8; 16] {
    r.attributes.to_bytes()
}
/// MRENCLAVE @64.
pub(crate) fn mrenclave(r: &ReportBody) -> [u8; 32] {
    r.mrenclave.to_bytes()
}
/// MRSIGNER @128.
pub(crate) fn mrsigner(r: &ReportBody) -> [u8; 32] {
    r.mrsigner.to_bytes()
}
/// ISVPRODID @256.
pub(crate) fn isv_prod_id(r: &ReportBody) -> u16 {
    r.isvprodid
}
/// ISVSVN @258.
pub(crate) fn isv_svn(r: &ReportBody) -> u16 {
    r.isvsvn
}
/// REPORTDATA @320.
pub(crate) fn report_data(r: &ReportBody) -> [u8; 64] {
    r.reportdata
}
/// True when ATTRIBUTES.DEBUG is set.
pub(crate) fn debug(r: &ReportBody) -> bool {
    r.attributes.flags & Attributes::DEBUG != 0
}
/// A copy of `r` with REPORTDATA replaced.
pub(crate) fn with_report_data(r: &ReportBody, data: &[u8; 64]) -> ReportBody {
    ReportBody {
        reportdata: *data,
        ..*r
    }
}
