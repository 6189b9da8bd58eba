//! ATTRIBUTES (16 bytes) and MISCSELECT (4 bytes).

use std::fmt;

use crate::bytes::{Reader, Writer};
use crate::error::Error;

/// SGX enclave ATTRIBUTES: 64 flag bits then the 64-bit XFRM (the XSAVE feature mask), 16 bytes.
///
/// Offsets: `flags` @0 (u64 LE), `xfrm` @8 (u64 LE). The same shape is used for SIGSTRUCT's ATTRIBUTEMASK.
/// Unknown flag bits are kept as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// Flag bits: [`Attributes::DEBUG`], [`Attributes::MODE64BIT`], ...
    pub flags: u64,
    /// XSAVE feature request mask (XFRM): bit 0 x87, bit 1 SSE, bit 2 AVX, ...
    pub xfrm: u64,
}

impl Attributes {
    /// Size in bytes.
    pub const SIZE: usize = 16;

    /// Flag bit 0: the enclave has been initialised (EINIT).
    pub const INIT: u64 = 1 << 0;
    /// Flag bit 1: debug enclave — its memory can be read by the host; never trust it in production.
    pub const DEBUG: u64 = 1 << 1;
    /// Flag bit 2: 64-bit enclave.
    pub const MODE64BIT: u64 = 1 << 2;
    /// Flag bit 4: the enclave may request the provisioning key.
    pub const PROVISIONKEY: u64 = 1 << 4;
    /// Flag bit 5: the enclave may request the launch (EINITTOKEN) key.
    pub const EINITTOKENKEY: u64 = 1 << 5;
    /// Flag bit 6: CET enabled.
    pub const CET: u64 = 1 << 6;
    /// Flag bit 7: Key Separation and Sharing (KSS).
    pub const KSS: u64 = 1 << 7;
    /// Flag bit 10: AEX-Notify.
    pub const AEXNOTIFY: u64 = 1 << 10;

    /// XFRM with x87 and SSE state only (the legacy minimum, value 3).
    pub const XFRM_LEGACY: u64 = 0x3;

    const NAMES: [(u64, &'static str); 8] = [
        (Self::INIT, "INIT"),
        (Self::DEBUG, "DEBUG"),
        (Self::MODE64BIT, "MODE64BIT"),
        (Self::PROVISIONKEY, "PROVISIONKEY"),
        (Self::EINITTOKENKEY, "EINITTOKENKEY"),
        (Self::CET, "CET"),
        (Self::KSS, "KSS"),
        (Self::AEXNOTIFY, "AEXNOTIFY"),
    ];

    /// Builds ATTRIBUTES from flag bits and XFRM.
    pub const fn new(flags: u64, xfrm: u64) -> Self {
        Attributes { flags, xfrm }
    }

    /// True when the DEBUG flag (bit 1) is set.
    pub const fn is_debug(&self) -> bool {
        self.flags & Self::DEBUG != 0
    }

    /// Names of the set flag bits (unknown bits as `bitN`), lowest bit first.
    pub fn flag_names(&self) -> Vec<String> {
        (0..64)
            .filter(|bit| self.flags & (1u64 << bit) != 0)
            .map(|bit| {
                let mask = 1u64 << bit;
                match Self::NAMES.iter().find(|(m, _)| *m == mask) {
                    Some((_, name)) => (*name).to_string(),
                    None => format!("bit{bit}"),
                }
            })
            .collect()
    }

    /// Parses exactly 16 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("ATTRIBUTES", bytes, Self::SIZE)?;
        let a = Self::read(&mut r);
        r.finish();
        Ok(a)
    }

    /// The 16 bytes of this structure.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut w = Writer::<16>::new();
        self.write(&mut w);
        w.finish()
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        Attributes {
            flags: r.u64(),
            xfrm: r.u64(),
        }
    }

    pub(crate) fn write<const N: usize>(&self, w: &mut Writer<N>) {
        w.u64(self.flags).u64(self.xfrm);
    }
}

impl fmt::Display for Attributes {
    /// `flags 0x6 (DEBUG|MODE64BIT), xfrm 0x3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.flag_names();
        if names.is_empty() {
            write!(f, "flags {:#x}, xfrm {:#x}", self.flags, self.xfrm)
        } else {
            write!(
                f,
                "flags {:#x} ({}), xfrm {:#x}",
                self.flags,
                names.join("|"),
                self.xfrm
            )
        }
    }
}

/// MISCSELECT: which extra information the CPU saves in the SSA on an exit (4 bytes, u32 LE).
///
/// Unknown bits are kept as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MiscSelect(pub u32);

impl MiscSelect {
    /// Size in bytes.
    pub const SIZE: usize = 4;
    /// Bit 0: report page-fault and general-protection exception information (EXINFO).
    pub const EXINFO: u32 = 1 << 0;
    /// Bit 1: report control-protection exception information (CPINFO).
    pub const CPINFO: u32 = 1 << 1;

    /// Parses exactly 4 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("MISCSELECT", bytes, Self::SIZE)?;
        let m = MiscSelect(r.u32());
        r.finish();
        Ok(m)
    }

    /// The 4 bytes of this structure.
    pub fn to_bytes(&self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for MiscSelect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_flags_then_xfrm_little_endian() {
        let a = Attributes::new(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        let b = a.to_bytes();
        assert_eq!(&b[0..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[8..16], &[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        assert_eq!(Attributes::parse(&b).unwrap(), a);
    }

    #[test]
    fn debug_is_flag_bit_one_and_is_named() {
        assert_eq!(Attributes::DEBUG, 2);
        let a = Attributes::new(Attributes::DEBUG | Attributes::MODE64BIT | (1 << 40), 3);
        assert!(a.is_debug());
        assert!(!Attributes::new(Attributes::MODE64BIT, 3).is_debug());
        assert_eq!(a.flag_names(), ["DEBUG", "MODE64BIT", "bit40"]);
        assert_eq!(
            a.to_string(),
            "flags 0x10000000006 (DEBUG|MODE64BIT|bit40), xfrm 0x3"
        );
    }

    #[test]
    fn rejects_wrong_lengths_naming_the_structure() {
        let err = Attributes::parse(&[0; 15]).unwrap_err();
        assert_eq!(err.to_string(), "ATTRIBUTES: expected exactly 16 bytes, got 15");
        assert!(MiscSelect::parse(&[0; 5]).is_err());
        assert_eq!(
            MiscSelect::parse(&[1, 0, 0, 0x80]).unwrap(),
            MiscSelect(0x8000_0001)
        );
    }
}
