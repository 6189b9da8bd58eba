//! Property tests: every structure survives serialise → parse unchanged, parsing arbitrary bytes never
//! panics and whatever parses serialises back to the same bytes, and SGXS streams written from random page
//! sets read back as written and measure as the builder does.
#![allow(clippy::unwrap_used)] // proptest strategies, outside #[test] functions

use arca_sgx::{
    measure_sgxs, Attributes, MeasurementBuilder, MiscSelect, Mrenclave, Mrsigner, PageContent, PageType,
    ReportBody, Secinfo, SecinfoFlags, SgxsReader, SgxsRecord, SgxsWriter, Sigstruct, SigstructFields,
    TargetInfo,
};
use proptest::prelude::*;

fn bytes<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    proptest::collection::vec(any::<u8>(), N).prop_map(|v| v.try_into().unwrap())
}

fn attributes() -> impl Strategy<Value = Attributes> {
    (any::<u64>(), any::<u64>()).prop_map(|(f, x)| Attributes::new(f, x))
}

prop_compose! {
    fn report_body()(
        cpusvn in bytes::<16>(), miscselect in any::<u32>(), isvextprodid in bytes::<16>(),
        attributes in attributes(), mrenclave in bytes::<32>(), mrsigner in bytes::<32>(),
        configid in bytes::<64>(), isvprodid in any::<u16>(), isvsvn in any::<u16>(),
        configsvn in any::<u16>(), isvfamilyid in bytes::<16>(), reportdata in bytes::<64>(),
    ) -> ReportBody {
        ReportBody {
            cpusvn, miscselect: MiscSelect(miscselect), isvextprodid, attributes,
            mrenclave: Mrenclave::new(mrenclave), mrsigner: Mrsigner::new(mrsigner), configid, isvprodid,
            isvsvn, configsvn, isvfamilyid, reportdata,
        }
    }
}

prop_compose! {
    fn sigstruct_fields()(
        vendor in any::<u32>(), date in any::<u32>(), swdefined in any::<u32>(), miscselect in any::<u32>(),
        miscmask in any::<u32>(), cet in any::<(u8, u8)>(), isvfamilyid in bytes::<16>(),
        attributes in attributes(), attributemask in attributes(), enclavehash in bytes::<32>(),
        isvextprodid in bytes::<16>(), isvprodid in any::<u16>(), isvsvn in any::<u16>(),
    ) -> SigstructFields {
        SigstructFields {
            vendor, date, swdefined, miscselect: MiscSelect(miscselect), miscmask,
            cet_attributes: cet.0, cet_attributes_mask: cet.1, isvfamilyid, attributes, attributemask,
            enclavehash: Mrenclave::new(enclavehash), isvextprodid, isvprodid, isvsvn,
        }
    }
}

prop_compose! {
    fn sigstruct()(
        fields in sigstruct_fields(), modulus in bytes::<384>(), signature in bytes::<384>(),
        q1 in bytes::<384>(), q2 in bytes::<384>(),
    ) -> Sigstruct {
        Sigstruct { fields, modulus, signature, q1, q2 }
    }
}

proptest! {
    #[test]
    fn report_body_round_trips(x in report_body()) {
        prop_assert_eq!(ReportBody::parse(&x.to_bytes()).unwrap(), x);
    }

    #[test]
    fn target_info_round_trips(
        m in bytes::<32>(), a in attributes(), configsvn in any::<u16>(), misc in any::<u32>(),
        configid in bytes::<64>(),
    ) {
        let x = TargetInfo { mrenclave: Mrenclave::new(m), attributes: a, configsvn, miscselect: MiscSelect(misc), configid };
        prop_assert_eq!(TargetInfo::parse(&x.to_bytes()).unwrap(), x);
    }

    #[test]
    fn secinfo_attributes_and_miscselect_round_trip(flags in any::<u64>(), a in attributes(), m in any::<u32>()) {
        let s = Secinfo { flags: SecinfoFlags::from_bits(flags) };
        prop_assert_eq!(Secinfo::parse(&s.to_bytes()).unwrap(), s);
        prop_assert_eq!(Attributes::parse(&a.to_bytes()).unwrap(), a);
        prop_assert_eq!(MiscSelect::parse(&MiscSelect(m).to_bytes()).unwrap(), MiscSelect(m));
    }

    #[test]
    fn sigstruct_round_trips_and_its_signed_bytes_are_the_signed_regions(x in sigstruct()) {
        let b = x.to_bytes();
        prop_assert_eq!(&Sigstruct::parse(&b).unwrap(), &x);
        let signed = x.signed_bytes();
        prop_assert_eq!(&signed[..128], &b[..128]);
        prop_assert_eq!(&signed[128..], &b[900..1028]);
    }

    #[test]
    fn identities_round_trip_through_hex(b in bytes::<32>()) {
        let m = Mrenclave::new(b);
        prop_assert_eq!(m.to_string().parse::<Mrenclave>().unwrap(), m);
        let s = Mrsigner::new(b);
        prop_assert_eq!(serde_json::from_str::<Mrsigner>(&serde_json::to_string(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics_and_what_parses_serialises_back(
        data in prop_oneof![
            proptest::collection::vec(any::<u8>(), 64),
            proptest::collection::vec(any::<u8>(), 384),
            proptest::collection::vec(any::<u8>(), 512),
            proptest::collection::vec(any::<u8>(), 0..600),
        ],
    ) {
        if let Ok(r) = ReportBody::parse(&data) { prop_assert_eq!(r.to_bytes().to_vec(), data.clone()); }
        if let Ok(t) = TargetInfo::parse(&data) { prop_assert_eq!(t.to_bytes().to_vec(), data.clone()); }
        if let Ok(s) = Secinfo::parse(&data) { prop_assert_eq!(s.to_bytes().to_vec(), data.clone()); }
        let _ = measure_sgxs(data.as_slice());
    }

    #[test]
    fn a_mutated_sigstruct_either_fails_to_parse_or_serialises_back_to_the_same_bytes(
        x in sigstruct(), at in 0usize..1808, value in any::<u8>(),
    ) {
        let mut b = x.to_bytes();
        b[at] = value;
        if let Ok(s) = Sigstruct::parse(&b) { prop_assert_eq!(s.to_bytes(), b); }
    }

    #[test]
    fn sgxs_written_from_random_pages_reads_back_and_measures_like_the_builder(
        pages in proptest::collection::btree_map(0u64..64, (0u8..3, any::<u8>(), any::<bool>()), 1..12),
        ssa in 1u32..4,
    ) {
        let size = 64 * 4096;
        let mut writer = SgxsWriter::new(Vec::new(), ssa, size).unwrap();
        let mut builder = MeasurementBuilder::ecreate(ssa, size).unwrap();
        for (&page, &(kind, fill, tcs)) in &pages {
            let offset = page * 4096;
            let flags = if tcs {
                SecinfoFlags::page(PageType::TCS, SecinfoFlags::NONE)
            } else {
                SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::W)
            };
            let content = [fill; 4096];
            match kind {
                0 => {
                    writer.write_page(offset, flags, PageContent::Measured(&content)).unwrap();
                    builder.add_measured_page(offset, flags, &content).unwrap();
                }
                1 => {
                    writer.write_page(offset, flags, PageContent::Unmeasured(&content)).unwrap();
                    builder.add_unmeasured_page(offset, flags).unwrap();
                }
                _ => {
                    writer.write_page(offset, flags, PageContent::Zero).unwrap();
                    builder.add_unmeasured_page(offset, flags).unwrap();
                }
            }
        }
        let stream = writer.finish().unwrap();
        let expected = builder.finish();
        prop_assert_eq!(measure_sgxs(stream.as_slice()).unwrap().mrenclave, expected);

        // Reading and re-writing every record gives the same bytes.
        let mut reader = SgxsReader::new(stream.as_slice());
        let mut copy = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            copy.extend_from_slice(&r.header());
            if let Some(d) = r.data() { copy.extend_from_slice(d); }
            if let SgxsRecord::Ecreate { ssaframesize, size: s } = r {
                prop_assert_eq!((ssaframesize, s), (ssa, size));
            }
        }
        prop_assert_eq!(copy, stream);
    }
}
