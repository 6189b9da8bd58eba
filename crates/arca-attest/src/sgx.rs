//! Field access on the SGX REPORT body used by verification (one place to adapt to `arca-sgx`'s types).

use crate::report::ReportBody;

fn b(r: &ReportBody) -> &[u8; 384] {
    r.as_bytes()
}

fn arr<const N: usize>(r: &ReportBody, at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b(r)[at..at + N]);
    out
}

/// MISCSELECT @16 as its 4 raw bytes.
pub(crate) fn miscselect_bytes(r: &ReportBody) -> [u8; 4] {
    arr(r, 16)
}
/// ATTRIBUTES @48 as its 16 raw bytes (flags ‖ xfrm).
pub(crate) fn attributes_bytes(r: &ReportBody) -> [u8; 16] {
    arr(r, 48)
}
/// MRENCLAVE @64.
pub(crate) fn mrenclave(r: &ReportBody) -> [u8; 32] {
    arr(r, 64)
}
/// MRSIGNER @128.
pub(crate) fn mrsigner(r: &ReportBody) -> [u8; 32] {
    arr(r, 128)
}
/// ISVPRODID @256.
pub(crate) fn isv_prod_id(r: &ReportBody) -> u16 {
    u16::from_le_bytes(arr(r, 256))
}
/// ISVSVN @258.
pub(crate) fn isv_svn(r: &ReportBody) -> u16 {
    u16::from_le_bytes(arr(r, 258))
}
/// REPORTDATA @320.
pub(crate) fn report_data(r: &ReportBody) -> [u8; 64] {
    arr(r, 320)
}
/// True when ATTRIBUTES.DEBUG (flags bit 1) is set.
pub(crate) fn debug(r: &ReportBody) -> bool {
    b(r)[48] & 0x02 != 0
}

/// A copy of `r` with REPORTDATA replaced.
pub(crate) fn with_report_data(r: &ReportBody, data: &[u8; 64]) -> ReportBody {
    let mut b = *r.as_bytes();
    b[320..384].copy_from_slice(data);
    ReportBody::from_bytes(b)
}
