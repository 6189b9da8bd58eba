//! SIGSTRUCT (1808 bytes): the enclave signature structure checked by EINIT.

use sha2::{Digest, Sha256};

use crate::attributes::{Attributes, MiscSelect};
use crate::bytes::{Reader, Writer};
use crate::error::Error;
use crate::identity::{Mrenclave, Mrsigner};

/// Everything a signer chooses in a SIGSTRUCT: exactly the content of its two signed regions
/// (`[0..128]` and `[900..1028]`), less the constant HEADER/HEADER2 and the zero reserved bytes.
///
/// There is deliberately no `Default`: every field, the DATE included, is an explicit input so that a
/// SIGSTRUCT (and so the enclave identity it carries) is reproducible from its inputs.
///
/// The `*mask` fields are the values stored in SIGSTRUCT: a set bit means "EINIT compares this bit of the
/// enclave's value with the value here"; a clear bit means "don't care".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SigstructFields {
    /// VENDOR @16 (u32): 0 for any ISV, 0x8086 for Intel.
    pub vendor: u32,
    /// DATE @20 (u32): `0xYYYYMMDD` in BCD, e.g. `0x20160109`. Not checked by the CPU; non-BCD values are kept
    /// (real signers write them). See [`SigstructFields::bcd_date`].
    pub date: u32,
    /// SWDEFINED @40 (u32): free for the software vendor.
    pub swdefined: u32,
    /// MISCSELECT @900: the MISCSELECT the enclave must run with (under `miscmask`).
    pub miscselect: MiscSelect,
    /// MISCMASK @904 (u32): which MISCSELECT bits are enforced.
    pub miscmask: u32,
    /// CET_ATTRIBUTES @908 (u8; reserved in older SDK headers).
    pub cet_attributes: u8,
    /// CET_ATTRIBUTES_MASK @909 (u8).
    pub cet_attributes_mask: u8,
    /// ISVFAMILYID @912 (16 B, KSS).
    pub isvfamilyid: [u8; 16],
    /// ATTRIBUTES @928: the attributes the enclave must run with (under `attributemask`); DEBUG is flags bit 1.
    pub attributes: Attributes,
    /// ATTRIBUTEMASK @944: which ATTRIBUTES bits are enforced.
    pub attributemask: Attributes,
    /// ENCLAVEHASH @960: the MRENCLAVE this SIGSTRUCT signs.
    pub enclavehash: Mrenclave,
    /// ISVEXTPRODID @1008 (16 B, KSS).
    pub isvextprodid: [u8; 16],
    /// ISVPRODID @1024 (u16): product id, chosen by the signer.
    pub isvprodid: u16,
    /// ISVSVN @1026 (u16): security version number, chosen by the signer.
    pub isvsvn: u16,
}

impl SigstructFields {
    /// Encodes a calendar date as SIGSTRUCT's BCD DATE, e.g. `(2016, 1, 9)` → `0x20160109`.
    ///
    /// Checks the ranges (year ≤ 9999, month 1–12, day 1–31), not the calendar.
    pub fn bcd_date(year: u16, month: u8, day: u8) -> Result<u32, Error> {
        if year > 9999 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(Error::Sigstruct(format!(
                "DATE {year:04}-{month:02}-{day:02} is not a valid date"
            )));
        }
        let bcd = |v: u32, digits: u32| {
            (0..digits).fold(0u32, |acc, i| acc | (((v / 10u32.pow(i)) % 10) << (4 * i)))
        };
        Ok((bcd(u32::from(year), 4) << 16) | (bcd(u32::from(month), 2) << 8) | bcd(u32::from(day), 2))
    }

    /// The DATE as `YYYY-MM-DD` when it is valid BCD, otherwise `None` (the raw value is still meaningful).
    pub fn date_ymd(&self) -> Option<String> {
        let digits = format!("{:08x}", self.date);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(format!("{}-{}-{}", &digits[0..4], &digits[4..6], &digits[6..8]))
    }

    /// The exact bytes RSA signs: SIGSTRUCT `[0..128]` ‖ `[900..1028]` (256 bytes).
    pub fn signed_bytes(&self) -> [u8; 256] {
        let mut w = Writer::<256>::new();
        w.bytes(&Sigstruct::HEADER)
            .u32(self.vendor)
            .u32(self.date)
            .bytes(&Sigstruct::HEADER2);
        w.u32(self.swdefined).zeros(84);
        w.u32(self.miscselect.0)
            .u32(self.miscmask)
            .u8(self.cet_attributes)
            .u8(self.cet_attributes_mask);
        w.zeros(2).bytes(&self.isvfamilyid);
        self.attributes.write(&mut w);
        self.attributemask.write(&mut w);
        w.bytes(self.enclavehash.as_bytes())
            .zeros(16)
            .bytes(&self.isvextprodid);
        w.u16(self.isvprodid).u16(self.isvsvn);
        w.finish()
    }

    /// SHA-256 of [`signed_bytes`](Self::signed_bytes): the digest the PKCS#1 v1.5 signature covers.
    pub fn signed_digest(&self) -> [u8; 32] {
        Sha256::digest(self.signed_bytes()).into()
    }
}

/// SIGSTRUCT (1808 bytes): the signed fields plus the signer's modulus, the signature, and Q1/Q2.
///
/// Layout: HEADER @0, VENDOR @16, DATE @20, HEADER2 @24, SWDEFINED @40, reserved @44 (84 B), MODULUS @128
/// (384 B LE), EXPONENT @512 (u32 = 3), SIGNATURE @516 (384 B LE), MISCSELECT @900, MISCMASK @904,
/// CET_ATTRIBUTES @908, CET_ATTRIBUTES_MASK @909, reserved @910 (2 B), ISVFAMILYID @912, ATTRIBUTES @928,
/// ATTRIBUTEMASK @944, ENCLAVEHASH @960, reserved @992 (16 B), ISVEXTPRODID @1008, ISVPRODID @1024,
/// ISVSVN @1026, reserved @1028 (12 B), Q1 @1040 (384 B LE), Q2 @1424 (384 B LE).
///
/// Parsing checks the structure (HEADER, HEADER2, EXPONENT = 3, zero reserved bytes), not the signature: call
/// [`Sigstruct::verify`] for that.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sigstruct {
    /// The signed fields.
    pub fields: SigstructFields,
    /// MODULUS @128: the signer's RSA-3072 modulus, little-endian.
    pub modulus: [u8; 384],
    /// SIGNATURE @516: the RSA signature, little-endian.
    pub signature: [u8; 384],
    /// Q1 @1040: ⌊signature² / modulus⌋, little-endian (lets the CPU verify without division).
    pub q1: [u8; 384],
    /// Q2 @1424: ⌊(signature³ − Q1·signature·modulus) / modulus⌋, little-endian.
    pub q2: [u8; 384],
}

impl Sigstruct {
    /// Size in bytes.
    pub const SIZE: usize = 1808;
    /// HEADER @0.
    pub const HEADER: [u8; 16] = [6, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
    /// HEADER2 @24.
    pub const HEADER2: [u8; 16] = [1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0];
    /// EXPONENT @512: SGX signing keys always use public exponent 3.
    pub const EXPONENT: u32 = 3;

    /// Parses exactly 1808 bytes, checking HEADER, HEADER2, EXPONENT and the reserved bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("SIGSTRUCT", bytes, Self::SIZE)?;
        check_constant(&mut r, "HEADER", &Self::HEADER)?;
        let vendor = r.u32();
        let date = r.u32();
        check_constant(&mut r, "HEADER2", &Self::HEADER2)?;
        let swdefined = r.u32();
        r.reserved::<84>()?;
        let modulus = r.array();
        let exponent = r.u32();
        if exponent != Self::EXPONENT {
            return Err(Error::SigstructExponent(exponent));
        }
        let signature = r.array();
        let miscselect = MiscSelect(r.u32());
        let miscmask = r.u32();
        let cet_attributes = r.u8();
        let cet_attributes_mask = r.u8();
        r.reserved::<2>()?;
        let isvfamilyid = r.array();
        let attributes = Attributes::read(&mut r);
        let attributemask = Attributes::read(&mut r);
        let enclavehash = Mrenclave::new(r.array());
        r.reserved::<16>()?;
        let isvextprodid = r.array();
        let isvprodid = r.u16();
        let isvsvn = r.u16();
        r.reserved::<12>()?;
        let q1 = r.array();
        let q2 = r.array();
        r.finish();
        Ok(Sigstruct {
            fields: SigstructFields {
                vendor,
                date,
                swdefined,
                miscselect,
                miscmask,
                cet_attributes,
                cet_attributes_mask,
                isvfamilyid,
                attributes,
                attributemask,
                enclavehash,
                isvextprodid,
                isvprodid,
                isvsvn,
            },
            modulus,
            signature,
            q1,
            q2,
        })
    }

    /// The 1808 bytes of this structure.
    pub fn to_bytes(&self) -> [u8; 1808] {
        let signed = self.fields.signed_bytes();
        let mut w = Writer::<1808>::new();
        w.bytes(&signed[..128])
            .bytes(&self.modulus)
            .u32(Self::EXPONENT)
            .bytes(&self.signature);
        w.bytes(&signed[128..]).zeros(12).bytes(&self.q1).bytes(&self.q2);
        w.finish()
    }

    /// The exact bytes RSA signs: `[0..128]` ‖ `[900..1028]` (256 bytes).
    pub fn signed_bytes(&self) -> [u8; 256] {
        self.fields.signed_bytes()
    }

    /// MRSIGNER: SHA-256 of MODULUS as stored (little-endian).
    pub fn mrsigner(&self) -> Mrsigner {
        Mrsigner::new(Sha256::digest(self.modulus).into())
    }
}

fn check_constant(r: &mut Reader<'_>, field: &'static str, expected: &[u8; 16]) -> Result<(), Error> {
    let offset = r.pos();
    let found: [u8; 16] = r.array();
    if &found != expected {
        return Err(Error::SigstructHeader {
            field,
            offset,
            found: hex::encode(found),
            expected: hex::encode(expected),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(arca_testkit::vector(name)).unwrap()
    }

    const TEST_ENCLAVE_SIG: &str = "rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sig";

    #[test]
    fn real_sigstruct_parses_to_its_documented_fields_and_serialises_back_byte_for_byte() {
        let bytes = vector(TEST_ENCLAVE_SIG);
        let s = Sigstruct::parse(&bytes).unwrap();
        assert_eq!(s.fields.date, 0x2016_1214);
        assert_eq!(s.fields.date_ymd().as_deref(), Some("2016-12-14"));
        assert_eq!(s.fields.attributes, Attributes::new(0x4, 0x3));
        assert_eq!(s.fields.isvprodid, 65535);
        assert_eq!(s.fields.isvsvn, 0);
        assert_eq!(
            s.fields.enclavehash.to_string(),
            "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc"
        );
        assert_eq!(
            s.mrsigner().to_string(),
            "fb4bab3d6036ac1d730fa83d7366df1dd2dfeac194ef335d6854d8a6c6475542"
        );
        assert_eq!(s.to_bytes().as_slice(), bytes.as_slice());
    }

    #[test]
    fn signed_bytes_are_exactly_the_two_signed_regions() {
        let bytes = vector(TEST_ENCLAVE_SIG);
        let s = Sigstruct::parse(&bytes).unwrap();
        let signed = s.signed_bytes();
        assert_eq!(&signed[..128], &bytes[0..128]);
        assert_eq!(&signed[128..], &bytes[900..1028]);
    }

    #[test]
    fn fields_sit_at_their_architectural_offsets() {
        let mut s = Sigstruct::parse(&vector(TEST_ENCLAVE_SIG)).unwrap();
        s.fields = SigstructFields {
            vendor: 0x8086,
            date: 0x2024_0229,
            swdefined: 0x0a0b_0c0d,
            miscselect: MiscSelect(0x11),
            miscmask: 0x22,
            cet_attributes: 0x33,
            cet_attributes_mask: 0x44,
            isvfamilyid: [0x55; 16],
            attributes: Attributes::new(0x66, 0x77),
            attributemask: Attributes::new(0x88, 0x99),
            enclavehash: Mrenclave::new([0xaa; 32]),
            isvextprodid: [0xbb; 16],
            isvprodid: 0xcc01,
            isvsvn: 0xdd02,
        };
        s.modulus = [0x01; 384];
        s.signature = [0x02; 384];
        s.q1 = [0x03; 384];
        s.q2 = [0x04; 384];
        let b = s.to_bytes();
        assert_eq!(&b[0..16], &Sigstruct::HEADER);
        assert_eq!(&b[16..20], &0x8086u32.to_le_bytes());
        assert_eq!(&b[20..24], &0x2024_0229u32.to_le_bytes());
        assert_eq!(&b[24..40], &Sigstruct::HEADER2);
        assert_eq!(&b[40..44], &0x0a0b_0c0du32.to_le_bytes());
        assert!(b[44..128].iter().all(|x| *x == 0));
        assert_eq!(&b[128..512], &[0x01; 384]);
        assert_eq!(&b[512..516], &3u32.to_le_bytes());
        assert_eq!(&b[516..900], &[0x02; 384]);
        assert_eq!(&b[900..904], &0x11u32.to_le_bytes());
        assert_eq!(&b[904..908], &0x22u32.to_le_bytes());
        assert_eq!(&b[908..912], &[0x33, 0x44, 0, 0]);
        assert_eq!(&b[912..928], &[0x55; 16]);
        assert_eq!(&b[928..936], &0x66u64.to_le_bytes());
        assert_eq!(&b[936..944], &0x77u64.to_le_bytes());
        assert_eq!(&b[944..952], &0x88u64.to_le_bytes());
        assert_eq!(&b[952..960], &0x99u64.to_le_bytes());
        assert_eq!(&b[960..992], &[0xaa; 32]);
        assert!(b[992..1008].iter().all(|x| *x == 0));
        assert_eq!(&b[1008..1024], &[0xbb; 16]);
        assert_eq!(&b[1024..1026], &0xcc01u16.to_le_bytes());
        assert_eq!(&b[1026..1028], &0xdd02u16.to_le_bytes());
        assert!(b[1028..1040].iter().all(|x| *x == 0));
        assert_eq!(&b[1040..1424], &[0x03; 384]);
        assert_eq!(&b[1424..1808], &[0x04; 384]);
        assert_eq!(Sigstruct::parse(&b).unwrap(), s);
    }

    #[test]
    fn rejects_short_file_wrong_header_and_exponent_other_than_3() {
        let good = vector(TEST_ENCLAVE_SIG);
        let err = Sigstruct::parse(&good[..1807]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SIGSTRUCT: expected exactly 1808 bytes, got 1807"
        );

        let mut bad = good.clone();
        bad[4] = 0xe2;
        let err = Sigstruct::parse(&bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("SIGSTRUCT: HEADER at offset 0 is 06000000e2"),
            "{err}"
        );

        let mut bad = good.clone();
        bad[24] = 2;
        assert!(Sigstruct::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("HEADER2 at offset 24"));

        let mut bad = good.clone();
        bad[512] = 0x01;
        bad[514] = 0x01; // 65537
        let err = Sigstruct::parse(&bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SIGSTRUCT: EXPONENT at offset 512 is 65537, expected 3"
        );
    }

    #[test]
    fn rejects_non_zero_reserved_bytes_naming_the_offset() {
        let good = vector(TEST_ENCLAVE_SIG);
        for offset in [44, 127, 910, 911, 992, 1007, 1028, 1039] {
            let mut bad = good.clone();
            bad[offset] = 1;
            let err = Sigstruct::parse(&bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("SIGSTRUCT: reserved byte at offset {offset} is not zero")
            );
        }
    }

    #[test]
    fn bcd_date_encodes_each_digit_in_a_nibble() {
        assert_eq!(SigstructFields::bcd_date(2016, 1, 9).unwrap(), 0x2016_0109);
        assert_eq!(SigstructFields::bcd_date(1999, 12, 31).unwrap(), 0x1999_1231);
        assert!(SigstructFields::bcd_date(2016, 13, 1).is_err());
        assert!(SigstructFields::bcd_date(2016, 1, 0).is_err());
        let mut f = Sigstruct::parse(&vector(TEST_ENCLAVE_SIG)).unwrap().fields;
        f.date = 0x2016_0a01;
        assert_eq!(f.date_ymd(), None);
    }
}
