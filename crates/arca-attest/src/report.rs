//! Temporary view of the 384-byte SGX REPORT body until `arca-sgx` lands its `ReportBody`.
//! (Replaced by `arca_sgx::ReportBody` on merge.)

/// The SGX REPORT body (384 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReportBody([u8; 384]);

impl ReportBody {
    /// Size in bytes.
    pub const SIZE: usize = 384;
    /// Wraps raw bytes.
    pub fn from_bytes(b: [u8; 384]) -> Self {
        ReportBody(b)
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 384] {
        &self.0
    }
}

impl std::fmt::Debug for ReportBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportBody").finish_non_exhaustive()
    }
}
