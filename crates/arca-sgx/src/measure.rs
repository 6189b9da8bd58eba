//! The MRENCLAVE measurement: ECREATE, EADD and EEXTEND records hashed in load order.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::identity::Mrenclave;
use crate::secinfo::{PageType, SecinfoFlags};

/// Size of an enclave page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of the data chunk measured by one EEXTEND.
pub const CHUNK_SIZE: u64 = 256;

pub(crate) const TAG_ECREATE: [u8; 8] = *b"ECREATE\0";
pub(crate) const TAG_EADD: [u8; 8] = *b"EADD\0\0\0\0";
pub(crate) const TAG_EEXTEND: [u8; 8] = *b"EEXTEND\0";

/// Computes MRENCLAVE exactly as the CPU does while an enclave is built.
///
/// MRENCLAVE is SHA-256 over 64-byte records in load order:
/// - ECREATE: `"ECREATE\0"`, SSAFRAMESIZE (u32) @8, SIZE (u64) @12, zeros;
/// - EADD: `"EADD\0\0\0\0"`, the page's enclave offset (u64) @8, its SECINFO flags (u64) @16, zeros;
/// - EEXTEND: `"EEXTEND\0"`, the chunk's enclave offset (u64) @8, zeros, then the 256 data bytes.
///
/// The builder refuses what the CPU refuses (an unaligned or out-of-range offset, a page added twice, a page
/// type other than REG or TCS, a TCS with permissions, EEXTEND of a page that was not added), so a
/// measurement it returns is one a real enclave can have.
///
/// ```
/// use arca_sgx::{MeasurementBuilder, PageType, SecinfoFlags};
/// # fn main() -> Result<(), arca_sgx::Error> {
/// let mut m = MeasurementBuilder::ecreate(1, 0x2000)?;
/// let code = [0x90u8; 4096];
/// m.add_measured_page(0, SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::X), &code)?;
/// m.add_unmeasured_page(0x1000, SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::W))?;
/// let mrenclave = m.finish();
/// println!("MRENCLAVE {mrenclave}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MeasurementBuilder {
    hasher: Sha256,
    size: u64,
    /// The page of the last EADD: the common case for EEXTEND, checked without a set look-up.
    last_page: Option<u64>,
    added: HashSet<u64>,
}

impl MeasurementBuilder {
    /// ECREATE: starts the measurement of an enclave of `size` bytes (a power of two, at least one page)
    /// whose threads have `ssaframesize` pages per SSA frame (at least 1).
    pub fn ecreate(ssaframesize: u32, size: u64) -> Result<Self, Error> {
        if ssaframesize == 0 {
            return Err(Error::measurement(
                "ECREATE",
                size,
                "SSAFRAMESIZE must be at least 1 page",
            ));
        }
        if !size.is_power_of_two() || size < PAGE_SIZE {
            return Err(Error::measurement(
                "ECREATE",
                size,
                format!("enclave SIZE {size:#x} must be a power of two of at least one page"),
            ));
        }
        let mut record = [0u8; 64];
        record[..8].copy_from_slice(&TAG_ECREATE);
        record[8..12].copy_from_slice(&ssaframesize.to_le_bytes());
        record[12..20].copy_from_slice(&size.to_le_bytes());
        let mut hasher = Sha256::new();
        hasher.update(record);
        Ok(MeasurementBuilder {
            hasher,
            size,
            last_page: None,
            added: HashSet::new(),
        })
    }

    /// The enclave size given to ECREATE.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// EADD: adds the page at enclave `offset` (page-aligned) with SECINFO `flags` (page type REG or TCS).
    /// The page's content is measured only by the EEXTENDs that follow.
    pub fn eadd(&mut self, offset: u64, flags: SecinfoFlags) -> Result<(), Error> {
        check_eadd(offset, flags, self.size)?;
        if !self.added.insert(offset) {
            return Err(Error::measurement("EADD", offset, "this page was already added"));
        }
        self.last_page = Some(offset);
        let mut record = [0u8; 64];
        record[..8].copy_from_slice(&TAG_EADD);
        record[8..16].copy_from_slice(&offset.to_le_bytes());
        record[16..24].copy_from_slice(&flags.bits().to_le_bytes());
        self.hasher.update(record);
        Ok(())
    }

    /// EEXTEND: measures the 256-byte `chunk` at enclave `offset` (256-aligned, in a page already added).
    pub fn eextend(&mut self, offset: u64, chunk: &[u8; 256]) -> Result<(), Error> {
        if !offset.is_multiple_of(CHUNK_SIZE) {
            return Err(Error::measurement(
                "EEXTEND",
                offset,
                "offset is not a multiple of 256",
            ));
        }
        let page = offset & !(PAGE_SIZE - 1);
        if self.last_page != Some(page) && !self.added.contains(&page) {
            return Err(Error::measurement(
                "EEXTEND",
                offset,
                "its page was not added with EADD first",
            ));
        }
        let mut record = [0u8; 64];
        record[..8].copy_from_slice(&TAG_EEXTEND);
        record[8..16].copy_from_slice(&offset.to_le_bytes());
        self.hasher.update(record);
        self.hasher.update(chunk);
        Ok(())
    }

    /// EADD of a page followed by EEXTEND of its 16 chunks: the page's content is part of MRENCLAVE.
    pub fn add_measured_page(
        &mut self,
        offset: u64,
        flags: SecinfoFlags,
        page: &[u8; 4096],
    ) -> Result<(), Error> {
        self.eadd(offset, flags)?;
        let (chunks, _) = page.as_chunks::<256>();
        for (i, chunk) in (0u64..).zip(chunks) {
            self.eextend(offset + i * CHUNK_SIZE, chunk)?;
        }
        Ok(())
    }

    /// EADD of a page without EEXTEND: its position and permissions are measured, its content is not
    /// (typically heap, stack and SSA pages, whose loaded content is zero).
    pub fn add_unmeasured_page(&mut self, offset: u64, flags: SecinfoFlags) -> Result<(), Error> {
        self.eadd(offset, flags)
    }

    /// Ends the measurement: the enclave's MRENCLAVE.
    pub fn finish(self) -> Mrenclave {
        Mrenclave::new(self.hasher.finalize().into())
    }
}

impl std::fmt::Debug for MeasurementBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeasurementBuilder")
            .field("size", &self.size)
            .field("pages_added", &self.added.len())
            .finish_non_exhaustive()
    }
}

/// The checks EADD makes on its operands (shared with the SGXS reader and writer).
pub(crate) fn check_eadd(offset: u64, flags: SecinfoFlags, size: u64) -> Result<(), Error> {
    let fail = |problem: String| Err(Error::measurement("EADD", offset, problem));
    if !offset.is_multiple_of(PAGE_SIZE) {
        return fail("offset is not page-aligned (a multiple of 4096)".into());
    }
    if offset >= size {
        return fail(format!("page lies outside the enclave (SIZE {size:#x})"));
    }
    let bits = flags.bits();
    if bits & SecinfoFlags::RESERVED_MASK != 0 {
        return fail(format!("SECINFO flags {bits:#x} set reserved bits"));
    }
    if flags.contains(SecinfoFlags::PENDING)
        || flags.contains(SecinfoFlags::MODIFIED)
        || flags.contains(SecinfoFlags::PR)
    {
        return fail(format!(
            "SECINFO flags {bits:#x} set PENDING/MODIFIED/PR, which EADD refuses"
        ));
    }
    match flags.page_type() {
        PageType::REG => {
            if flags.contains(SecinfoFlags::W) && !flags.contains(SecinfoFlags::R) {
                return fail("a writable REG page must also be readable".into());
            }
        }
        PageType::TCS => {
            if flags.permissions() != SecinfoFlags::NONE {
                return fail(format!(
                    "a TCS page must have no R/W/X permissions (flags {bits:#x})"
                ));
            }
        }
        other => return fail(format!("page type {} cannot be added with EADD", other.name())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(perms: SecinfoFlags) -> SecinfoFlags {
        SecinfoFlags::page(PageType::REG, perms)
    }

    /// The records of a tiny enclave, written out by hand, hashed in one go.
    #[test]
    fn builder_hashes_the_architectural_records_in_order() {
        let mut data = [0u8; 4096];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let flags = reg(SecinfoFlags::R | SecinfoFlags::X);
        let mut m = MeasurementBuilder::ecreate(2, 0x4000).unwrap();
        m.add_measured_page(0x1000, flags, &data).unwrap();
        m.add_unmeasured_page(0x2000, SecinfoFlags::page(PageType::TCS, SecinfoFlags::NONE))
            .unwrap();

        let mut expected = Vec::new();
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"ECREATE\0");
        rec[8..12].copy_from_slice(&2u32.to_le_bytes());
        rec[12..20].copy_from_slice(&0x4000u64.to_le_bytes());
        expected.extend_from_slice(&rec);
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"EADD\0\0\0\0");
        rec[8..16].copy_from_slice(&0x1000u64.to_le_bytes());
        rec[16..24].copy_from_slice(&0x205u64.to_le_bytes());
        expected.extend_from_slice(&rec);
        for i in 0..16u64 {
            let mut rec = [0u8; 64];
            rec[..8].copy_from_slice(b"EEXTEND\0");
            rec[8..16].copy_from_slice(&(0x1000 + i * 256).to_le_bytes());
            expected.extend_from_slice(&rec);
            expected.extend_from_slice(&data[i as usize * 256..][..256]);
        }
        let mut rec = [0u8; 64];
        rec[..8].copy_from_slice(b"EADD\0\0\0\0");
        rec[8..16].copy_from_slice(&0x2000u64.to_le_bytes());
        rec[16..24].copy_from_slice(&0x100u64.to_le_bytes());
        expected.extend_from_slice(&rec);

        let want: [u8; 32] = Sha256::digest(&expected).into();
        assert_eq!(m.finish(), Mrenclave::new(want));
    }

    #[test]
    fn ecreate_rejects_sizes_that_are_not_powers_of_two_and_zero_ssa_frames() {
        let err = MeasurementBuilder::ecreate(1, 0x3000).unwrap_err();
        assert!(err.to_string().contains("must be a power of two"), "{err}");
        assert!(MeasurementBuilder::ecreate(1, 0).is_err());
        assert!(MeasurementBuilder::ecreate(0, 0x1000).is_err());
        assert_eq!(MeasurementBuilder::ecreate(1, 0x1000).unwrap().size(), 0x1000);
    }

    #[test]
    fn eextend_without_eadd_is_refused_with_the_offset_named() {
        let mut m = MeasurementBuilder::ecreate(1, 0x4000).unwrap();
        let err = m.eextend(0x1100, &[0; 256]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "measurement: EEXTEND at enclave offset 0x1100: its page was not added with EADD first"
        );
        m.eadd(0x1000, reg(SecinfoFlags::R)).unwrap();
        m.eadd(0x3000, reg(SecinfoFlags::R)).unwrap();
        // Any page added earlier may still be extended, as on the CPU.
        m.eextend(0x1100, &[0; 256]).unwrap();
        assert!(m
            .eextend(0x1180, &[0; 256])
            .unwrap_err()
            .to_string()
            .contains("multiple of 256"));
    }

    #[test]
    fn eadd_refuses_what_the_cpu_refuses() {
        let mut m = MeasurementBuilder::ecreate(1, 0x4000).unwrap();
        let cases: [(u64, SecinfoFlags, &str); 7] = [
            (0x800, reg(SecinfoFlags::R), "not page-aligned"),
            (0x4000, reg(SecinfoFlags::R), "outside the enclave"),
            (
                0,
                SecinfoFlags::page(PageType::TCS, SecinfoFlags::R),
                "TCS page must have no",
            ),
            (
                0,
                SecinfoFlags::page(PageType::VA, SecinfoFlags::NONE),
                "page type VA cannot be added",
            ),
            (0, reg(SecinfoFlags::W), "must also be readable"),
            (0, reg(SecinfoFlags::R | SecinfoFlags::PENDING), "PENDING"),
            (0, SecinfoFlags::from_bits(0x1_0000_0201), "reserved bits"),
        ];
        for (offset, flags, why) in cases {
            let err = m.eadd(offset, flags).unwrap_err();
            assert!(err.to_string().contains(why), "{flags:?}: {err}");
        }
        m.eadd(0, reg(SecinfoFlags::R)).unwrap();
        assert!(m
            .eadd(0, reg(SecinfoFlags::R))
            .unwrap_err()
            .to_string()
            .contains("already added"));
    }

    #[test]
    fn unmeasured_content_does_not_change_the_measurement_but_flags_and_offsets_do() {
        let build = |offset: u64, flags: SecinfoFlags| {
            let mut m = MeasurementBuilder::ecreate(1, 0x4000).unwrap();
            m.add_unmeasured_page(offset, flags).unwrap();
            m.finish()
        };
        let a = build(0x1000, reg(SecinfoFlags::R));
        assert_eq!(a, build(0x1000, reg(SecinfoFlags::R)));
        assert_ne!(a, build(0x2000, reg(SecinfoFlags::R)));
        assert_ne!(a, build(0x1000, reg(SecinfoFlags::R | SecinfoFlags::W)));
    }
}
