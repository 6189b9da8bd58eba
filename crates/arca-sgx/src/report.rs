//! The REPORT body (384 bytes, also the body of an SGX DCAP quote) and TARGETINFO (512 bytes).

use crate::attributes::{Attributes, MiscSelect};
use crate::bytes::{Reader, Writer};
use crate::error::Error;
use crate::identity::{Mrenclave, Mrsigner};

/// The body of an SGX REPORT (384 bytes): what EREPORT says about an enclave, and the enclave part of a quote.
///
/// Reserved ranges (@20 12 B, @96 32 B, @160 32 B, @262 42 B) must be zero when parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReportBody {
    /// CPUSVN @0 (16 B): the security version of the CPU.
    pub cpusvn: [u8; 16],
    /// MISCSELECT @16 (u32).
    pub miscselect: MiscSelect,
    /// ISVEXTPRODID @32 (16 B, KSS).
    pub isvextprodid: [u8; 16],
    /// ATTRIBUTES @48 (16 B); DEBUG is flags bit 1.
    pub attributes: Attributes,
    /// MRENCLAVE @64 (32 B).
    pub mrenclave: Mrenclave,
    /// MRSIGNER @128 (32 B).
    pub mrsigner: Mrsigner,
    /// CONFIGID @192 (64 B, KSS).
    pub configid: [u8; 64],
    /// ISVPRODID @256 (u16).
    pub isvprodid: u16,
    /// ISVSVN @258 (u16).
    pub isvsvn: u16,
    /// CONFIGSVN @260 (u16, KSS).
    pub configsvn: u16,
    /// ISVFAMILYID @304 (16 B, KSS).
    pub isvfamilyid: [u8; 16],
    /// REPORTDATA @320 (64 B): data chosen by the enclave (typically a hash binding a key).
    pub reportdata: [u8; 64],
}

impl ReportBody {
    /// Size in bytes.
    pub const SIZE: usize = 384;

    /// Parses exactly 384 bytes; reserved bytes must be zero.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("REPORT body", bytes, Self::SIZE)?;
        let cpusvn = r.array();
        let miscselect = MiscSelect(r.u32());
        r.reserved::<12>()?;
        let isvextprodid = r.array();
        let attributes = Attributes::read(&mut r);
        let mrenclave = Mrenclave::new(r.array());
        r.reserved::<32>()?;
        let mrsigner = Mrsigner::new(r.array());
        r.reserved::<32>()?;
        let configid = r.array();
        let isvprodid = r.u16();
        let isvsvn = r.u16();
        let configsvn = r.u16();
        r.reserved::<42>()?;
        let isvfamilyid = r.array();
        let reportdata = r.array();
        r.finish();
        Ok(ReportBody {
            cpusvn,
            miscselect,
            isvextprodid,
            attributes,
            mrenclave,
            mrsigner,
            configid,
            isvprodid,
            isvsvn,
            configsvn,
            isvfamilyid,
            reportdata,
        })
    }

    /// The 384 bytes of this structure.
    pub fn to_bytes(&self) -> [u8; 384] {
        let mut w = Writer::<384>::new();
        w.bytes(&self.cpusvn)
            .u32(self.miscselect.0)
            .zeros(12)
            .bytes(&self.isvextprodid);
        self.attributes.write(&mut w);
        w.bytes(self.mrenclave.as_bytes())
            .zeros(32)
            .bytes(self.mrsigner.as_bytes())
            .zeros(32);
        w.bytes(&self.configid)
            .u16(self.isvprodid)
            .u16(self.isvsvn)
            .u16(self.configsvn)
            .zeros(42);
        w.bytes(&self.isvfamilyid).bytes(&self.reportdata);
        w.finish()
    }
}

/// TARGETINFO (512 bytes): identifies the enclave an EREPORT is targeted at (e.g. the quoting enclave).
///
/// Layout: MRENCLAVE @0, ATTRIBUTES @32, reserved @48 (2 B), CONFIGSVN @50 (u16), MISCSELECT @52 (u32),
/// reserved @56 (8 B), CONFIGID @64 (64 B), reserved @128 (384 B). Reserved bytes must be zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetInfo {
    /// MRENCLAVE of the target enclave.
    pub mrenclave: Mrenclave,
    /// ATTRIBUTES of the target enclave.
    pub attributes: Attributes,
    /// CONFIGSVN of the target enclave (KSS).
    pub configsvn: u16,
    /// MISCSELECT of the target enclave.
    pub miscselect: MiscSelect,
    /// CONFIGID of the target enclave (KSS).
    pub configid: [u8; 64],
}

impl TargetInfo {
    /// Size in bytes.
    pub const SIZE: usize = 512;

    /// Parses exactly 512 bytes; reserved bytes must be zero.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("TARGETINFO", bytes, Self::SIZE)?;
        let mrenclave = Mrenclave::new(r.array());
        let attributes = Attributes::read(&mut r);
        r.reserved::<2>()?;
        let configsvn = r.u16();
        let miscselect = MiscSelect(r.u32());
        r.reserved::<8>()?;
        let configid = r.array();
        r.reserved::<384>()?;
        r.finish();
        Ok(TargetInfo {
            mrenclave,
            attributes,
            configsvn,
            miscselect,
            configid,
        })
    }

    /// The 512 bytes of this structure.
    pub fn to_bytes(&self) -> [u8; 512] {
        let mut w = Writer::<512>::new();
        w.bytes(self.mrenclave.as_bytes());
        self.attributes.write(&mut w);
        w.zeros(2)
            .u16(self.configsvn)
            .u32(self.miscselect.0)
            .zeros(8)
            .bytes(&self.configid)
            .zeros(384);
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report body whose every field holds a distinct, recognisable value.
    fn sample() -> ReportBody {
        ReportBody {
            cpusvn: [0x01; 16],
            miscselect: MiscSelect(0x0203_0405),
            isvextprodid: [0x06; 16],
            attributes: Attributes::new(0x0708, 0x090a),
            mrenclave: Mrenclave::new([0x0b; 32]),
            mrsigner: Mrsigner::new([0x0c; 32]),
            configid: [0x0d; 64],
            isvprodid: 0x0e0f,
            isvsvn: 0x1011,
            configsvn: 0x1213,
            isvfamilyid: [0x14; 16],
            reportdata: [0x15; 64],
        }
    }

    #[test]
    fn report_body_fields_sit_at_their_architectural_offsets() {
        let b = sample().to_bytes();
        assert_eq!(b.len(), ReportBody::SIZE);
        assert_eq!(&b[0..16], &[0x01; 16]);
        assert_eq!(&b[16..20], &0x0203_0405u32.to_le_bytes());
        assert_eq!(&b[32..48], &[0x06; 16]);
        assert_eq!(&b[48..56], &0x0708u64.to_le_bytes());
        assert_eq!(&b[56..64], &0x090au64.to_le_bytes());
        assert_eq!(&b[64..96], &[0x0b; 32]);
        assert_eq!(&b[128..160], &[0x0c; 32]);
        assert_eq!(&b[192..256], &[0x0d; 64]);
        assert_eq!(&b[256..258], &0x0e0fu16.to_le_bytes());
        assert_eq!(&b[258..260], &0x1011u16.to_le_bytes());
        assert_eq!(&b[260..262], &0x1213u16.to_le_bytes());
        assert_eq!(&b[304..320], &[0x14; 16]);
        assert_eq!(&b[320..384], &[0x15; 64]);
        for reserved in [20..32, 96..128, 160..192, 262..304] {
            assert!(b[reserved].iter().all(|x| *x == 0));
        }
        assert_eq!(ReportBody::parse(&b).unwrap(), sample());
    }

    #[test]
    fn report_body_of_a_real_intel_signed_quote_parses() {
        let quote = std::fs::read(arca_testkit::vector("dcap-qvl/sample_sgx_quote")).unwrap();
        let body = ReportBody::parse(&quote[48..48 + 384]).unwrap();
        assert_eq!(
            body.mrenclave.to_string(),
            "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
        );
        assert_eq!(
            body.mrsigner.to_string(),
            "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
        );
        assert_eq!(&body.reportdata[..13], b"Hello, world!");
        assert_eq!(body.to_bytes().as_slice(), &quote[48..48 + 384]);
    }

    #[test]
    fn report_body_rejects_each_reserved_range_and_wrong_lengths() {
        for offset in [20, 31, 96, 127, 160, 191, 262, 303] {
            let mut b = sample().to_bytes();
            b[offset] = 0xff;
            let err = ReportBody::parse(&b).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("REPORT body: reserved byte at offset {offset} is not zero")
            );
        }
        assert!(ReportBody::parse(&[0u8; 383]).is_err());
        assert!(ReportBody::parse(&[0u8; 385]).is_err());
    }

    #[test]
    fn target_info_fields_sit_at_their_architectural_offsets() {
        let t = TargetInfo {
            mrenclave: Mrenclave::new([0xaa; 32]),
            attributes: Attributes::new(0x11, 0x22),
            configsvn: 0x3344,
            miscselect: MiscSelect(0x5566_7788),
            configid: [0x99; 64],
        };
        let b = t.to_bytes();
        assert_eq!(b.len(), TargetInfo::SIZE);
        assert_eq!(&b[0..32], &[0xaa; 32]);
        assert_eq!(&b[32..40], &0x11u64.to_le_bytes());
        assert_eq!(&b[40..48], &0x22u64.to_le_bytes());
        assert_eq!(&b[48..50], &[0, 0]);
        assert_eq!(&b[50..52], &0x3344u16.to_le_bytes());
        assert_eq!(&b[52..56], &0x5566_7788u32.to_le_bytes());
        assert_eq!(&b[64..128], &[0x99; 64]);
        assert!(b[128..].iter().all(|x| *x == 0));
        assert_eq!(TargetInfo::parse(&b).unwrap(), t);
        let mut bad = b;
        bad[511] = 1;
        assert!(matches!(
            TargetInfo::parse(&bad),
            Err(Error::ReservedNotZero { offset: 511, .. })
        ));
    }
}
