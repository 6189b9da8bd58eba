//! SECINFO (64 bytes): the permissions and type of an enclave page.

use std::fmt;
use std::ops::BitOr;

use crate::bytes::{Reader, Writer};
use crate::error::Error;

/// An EPC page type (SECINFO flags bits 8–15). Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageType(pub u8);

impl PageType {
    /// The enclave control structure (never EADDed).
    pub const SECS: Self = PageType(0);
    /// A thread control structure.
    pub const TCS: Self = PageType(1);
    /// A regular page (code, data, stack, heap, SSA).
    pub const REG: Self = PageType(2);
    /// A version array page.
    pub const VA: Self = PageType(3);
    /// A page being trimmed (SGX2).
    pub const TRIM: Self = PageType(4);
    /// First page of a shadow stack (CET).
    pub const SS_FIRST: Self = PageType(5);
    /// Other shadow-stack pages (CET).
    pub const SS_REST: Self = PageType(6);

    /// The architectural name, or `type N` for an unknown value.
    pub fn name(self) -> String {
        match self.0 {
            0 => "SECS".into(),
            1 => "TCS".into(),
            2 => "REG".into(),
            3 => "VA".into(),
            4 => "TRIM".into(),
            5 => "SS_FIRST".into(),
            6 => "SS_REST".into(),
            n => format!("type {n}"),
        }
    }
}

/// SECINFO.FLAGS: permission bits R/W/X (bits 0–2), PENDING/MODIFIED/PR (bits 3–5) and the page type
/// (bits 8–15). This 64-bit value is what EADD measures. Build it with [`SecinfoFlags::page`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SecinfoFlags(u64);

impl SecinfoFlags {
    /// No permission bits.
    pub const NONE: Self = SecinfoFlags(0);
    /// Readable.
    pub const R: Self = SecinfoFlags(1 << 0);
    /// Writable.
    pub const W: Self = SecinfoFlags(1 << 1);
    /// Executable.
    pub const X: Self = SecinfoFlags(1 << 2);
    /// Page pending acceptance (SGX2, EAUG).
    pub const PENDING: Self = SecinfoFlags(1 << 3);
    /// Page modified (SGX2).
    pub const MODIFIED: Self = SecinfoFlags(1 << 4);
    /// Permission restriction in progress (SGX2).
    pub const PR: Self = SecinfoFlags(1 << 5);

    const PAGE_TYPE_SHIFT: u32 = 8;
    const PAGE_TYPE_MASK: u64 = 0xff << Self::PAGE_TYPE_SHIFT;
    /// Bits 6–7 and 16–63 are reserved.
    pub(crate) const RESERVED_MASK: u64 = !(0x3f | Self::PAGE_TYPE_MASK);

    /// Flags for a page of `page_type` with `permissions` (a combination of R, W, X).
    ///
    /// ```
    /// use arca_sgx::{PageType, SecinfoFlags};
    /// let code = SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::X);
    /// assert_eq!(code.bits(), 0x205);
    /// ```
    pub const fn page(page_type: PageType, permissions: SecinfoFlags) -> Self {
        SecinfoFlags(permissions.0 | ((page_type.0 as u64) << Self::PAGE_TYPE_SHIFT))
    }

    /// Wraps a raw 64-bit flags value (reserved bits included, as stored).
    pub const fn from_bits(bits: u64) -> Self {
        SecinfoFlags(bits)
    }

    /// The raw 64-bit value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The page type (bits 8–15).
    pub const fn page_type(self) -> PageType {
        PageType(((self.0 & Self::PAGE_TYPE_MASK) >> Self::PAGE_TYPE_SHIFT) as u8)
    }

    /// True when every bit of `other` is set here.
    pub const fn contains(self, other: SecinfoFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The R/W/X bits only.
    pub const fn permissions(self) -> SecinfoFlags {
        SecinfoFlags(self.0 & 0x7)
    }
}

impl BitOr for SecinfoFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        SecinfoFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for SecinfoFlags {
    /// `REG r-x` (plus `+PENDING` etc. and `reserved 0x…` when set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |flag: SecinfoFlags, c: char| if self.contains(flag) { c } else { '-' };
        write!(
            f,
            "{} {}{}{}",
            self.page_type().name(),
            p(Self::R, 'r'),
            p(Self::W, 'w'),
            p(Self::X, 'x')
        )?;
        for (flag, name) in [
            (Self::PENDING, "PENDING"),
            (Self::MODIFIED, "MODIFIED"),
            (Self::PR, "PR"),
        ] {
            if self.contains(flag) {
                write!(f, " +{name}")?;
            }
        }
        if self.0 & Self::RESERVED_MASK != 0 {
            write!(f, " reserved {:#x}", self.0 & Self::RESERVED_MASK)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SecinfoFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecinfoFlags({:#x}: {self})", self.0)
    }
}

/// SECINFO (64 bytes): `flags` @0 (u64 LE), reserved @8 (56 bytes, zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Secinfo {
    /// Page permissions and type.
    pub flags: SecinfoFlags,
}

impl Secinfo {
    /// Size in bytes.
    pub const SIZE: usize = 64;

    /// Parses exactly 64 bytes; the reserved bytes must be zero.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("SECINFO", bytes, Self::SIZE)?;
        let flags = SecinfoFlags(r.u64());
        r.reserved::<56>()?;
        r.finish();
        Ok(Secinfo { flags })
    }

    /// The 64 bytes of this structure.
    pub fn to_bytes(&self) -> [u8; 64] {
        Writer::<64>::new().u64(self.flags.0).zeros(56).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_put_permissions_in_bits_0_to_2_and_page_type_in_bits_8_to_15() {
        assert_eq!(
            SecinfoFlags::page(PageType::TCS, SecinfoFlags::NONE).bits(),
            0x100
        );
        let rw = SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::W);
        assert_eq!(rw.bits(), 0x203);
        assert_eq!(rw.page_type(), PageType::REG);
        assert_eq!(rw.permissions(), SecinfoFlags::R | SecinfoFlags::W);
        assert_eq!(rw.to_string(), "REG rw-");
        assert_eq!(
            SecinfoFlags::from_bits(0x1_0000_0705).to_string(),
            "type 7 r-x reserved 0x100000000"
        );
    }

    #[test]
    fn secinfo_is_flags_then_56_zero_bytes() {
        let s = Secinfo {
            flags: SecinfoFlags::page(PageType::REG, SecinfoFlags::R),
        };
        let b = s.to_bytes();
        assert_eq!(b.len(), Secinfo::SIZE);
        assert_eq!(&b[..8], &0x201u64.to_le_bytes());
        assert!(b[8..].iter().all(|x| *x == 0));
        assert_eq!(Secinfo::parse(&b).unwrap(), s);
    }

    #[test]
    fn secinfo_rejects_non_zero_reserved_bytes_naming_the_offset() {
        let mut b = [0u8; 64];
        b[63] = 1;
        let err = Secinfo::parse(&b).unwrap_err();
        assert_eq!(err.to_string(), "SECINFO: reserved byte at offset 63 is not zero");
        assert!(Secinfo::parse(&[0u8; 63]).is_err());
    }
}
