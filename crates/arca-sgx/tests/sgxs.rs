//! SGXS streams and MRENCLAVE, against Fortanix's real test enclave and corrupted copies of it.
#![allow(clippy::unwrap_used)] // test helpers, outside #[test] functions

use arca_sgx::{
    measure_sgxs, Error, MeasurementBuilder, Mrenclave, PageContent, PageType, SecinfoFlags, SgxsReader,
    SgxsRecord, SgxsWriter,
};
use sha2::{Digest, Sha256};

const TEST_ENCLAVE: &str = "rust-sgx/sgxs-tools_src_sgx_detect_tests_test_enclave.sgxs";
const TEST_ENCLAVE_MRENCLAVE: &str = "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc";

fn test_enclave() -> Vec<u8> {
    std::fs::read(arca_testkit::vector(TEST_ENCLAVE)).unwrap()
}

/// Owned copy of a record, so tests can collect and rewrite streams.
#[derive(Clone, Debug, PartialEq)]
enum Owned {
    Ecreate(u32, u64),
    Unsized(u32, u64),
    Eadd(u64, SecinfoFlags),
    Eextend(u64, [u8; 256]),
    Unmeasured(u64, [u8; 256]),
}

fn records(bytes: &[u8]) -> Result<Vec<Owned>, Error> {
    let mut reader = SgxsReader::new(bytes);
    let mut out = Vec::new();
    while let Some(r) = reader.next_record()? {
        out.push(match r {
            SgxsRecord::Ecreate { ssaframesize, size } => Owned::Ecreate(ssaframesize, size),
            SgxsRecord::Unsized {
                ssaframesize,
                size_offset,
            } => Owned::Unsized(ssaframesize, size_offset),
            SgxsRecord::Eadd { offset, flags } => Owned::Eadd(offset, flags),
            SgxsRecord::Eextend { offset, data } => Owned::Eextend(offset, *data),
            SgxsRecord::Unmeasured { offset, data } => Owned::Unmeasured(offset, *data),
        });
    }
    Ok(out)
}

fn serialise(records: &[Owned]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let rec = match r {
            Owned::Ecreate(s, z) => SgxsRecord::Ecreate {
                ssaframesize: *s,
                size: *z,
            },
            Owned::Unsized(s, z) => SgxsRecord::Unsized {
                ssaframesize: *s,
                size_offset: *z,
            },
            Owned::Eadd(o, f) => SgxsRecord::Eadd {
                offset: *o,
                flags: *f,
            },
            Owned::Eextend(o, d) => SgxsRecord::Eextend { offset: *o, data: d },
            Owned::Unmeasured(o, d) => SgxsRecord::Unmeasured { offset: *o, data: d },
        };
        out.extend_from_slice(&rec.header());
        if let Some(d) = rec.data() {
            out.extend_from_slice(d);
        }
    }
    out
}

#[test]
fn test_enclave_mrenclave_comes_from_replaying_its_records_through_the_builder() {
    let records = records(&test_enclave()).unwrap();
    let mut builder = None;
    let (mut eadds, mut eextends) = (0, 0);
    for r in &records {
        match r {
            Owned::Ecreate(ssa, size) => {
                assert_eq!((*ssa, *size), (1, 0x40000));
                builder = Some(MeasurementBuilder::ecreate(*ssa, *size).unwrap());
            }
            Owned::Eadd(offset, flags) => {
                eadds += 1;
                builder.as_mut().unwrap().eadd(*offset, *flags).unwrap();
            }
            Owned::Eextend(offset, data) => {
                eextends += 1;
                builder.as_mut().unwrap().eextend(*offset, data).unwrap();
            }
            other => panic!("the test enclave has no {other:?}"),
        }
    }
    assert_eq!((eadds, eextends), (9, 144));
    let mrenclave = builder.unwrap().finish();
    assert_eq!(mrenclave.to_string(), TEST_ENCLAVE_MRENCLAVE);
    // For a canonical stream without extension records, MRENCLAVE is also the file's SHA-256.
    assert_eq!(mrenclave.as_bytes()[..], Sha256::digest(test_enclave())[..]);
}

#[test]
fn measure_sgxs_gives_the_test_enclave_mrenclave_from_a_file() {
    let file = std::fs::File::open(arca_testkit::vector(TEST_ENCLAVE)).unwrap();
    let m = measure_sgxs(file).unwrap();
    assert_eq!(m.mrenclave, TEST_ENCLAVE_MRENCLAVE.parse::<Mrenclave>().unwrap());
    assert_eq!(
        (
            m.ssaframesize,
            m.size,
            m.pages,
            m.measured_chunks,
            m.unmeasured_chunks
        ),
        (1, 0x40000, 9, 144, 0)
    );
    assert_eq!(m.stream_len, 46720);
}

#[test]
fn a_stream_with_unmeasured_records_measures_the_same_as_without_them() {
    // The test enclave, plus a last page whose odd chunks are loaded unmeasured, plus a page loaded entirely
    // unmeasured.
    let mut with = records(&test_enclave()).unwrap();
    let rw = SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::W);
    with.push(Owned::Eadd(0x3e000, rw));
    for i in 0..16u64 {
        let offset = 0x3e000 + i * 256;
        with.push(if i % 2 == 0 {
            Owned::Eextend(offset, [i as u8; 256])
        } else {
            Owned::Unmeasured(offset, [0xa5; 256])
        });
    }
    with.push(Owned::Eadd(0x3f000, rw));
    for i in 0..16u64 {
        with.push(Owned::Unmeasured(0x3f000 + i * 256, [i as u8; 256]));
    }
    let without: Vec<Owned> = with
        .iter()
        .filter(|r| !matches!(r, Owned::Unmeasured(..)))
        .cloned()
        .collect();
    assert_eq!(with.len(), without.len() + 24);

    let measured_with = measure_sgxs(serialise(&with).as_slice()).unwrap().mrenclave;
    let measured_without = measure_sgxs(serialise(&without).as_slice()).unwrap().mrenclave;
    assert_eq!(measured_with, measured_without);
    // ... and the stream without them is exactly what the CPU hashes.
    assert_eq!(
        measured_without.as_bytes()[..],
        Sha256::digest(serialise(&without))[..]
    );
    assert_ne!(measured_with.to_string(), TEST_ENCLAVE_MRENCLAVE);
}

#[test]
fn writer_reproduces_the_test_enclave_byte_for_byte() {
    let original = test_enclave();
    let recs = records(&original).unwrap();
    let Owned::Ecreate(ssa, size) = recs[0] else {
        panic!("first record is not ECREATE")
    };
    let mut w = SgxsWriter::new(Vec::new(), ssa, size).unwrap();
    for r in &recs[1..] {
        match r {
            Owned::Eadd(o, f) => w
                .write_record(&SgxsRecord::Eadd {
                    offset: *o,
                    flags: *f,
                })
                .unwrap(),
            Owned::Eextend(o, d) => w
                .write_record(&SgxsRecord::Eextend { offset: *o, data: d })
                .unwrap(),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(w.finish().unwrap(), original);
}

#[test]
fn writer_pages_measure_like_the_builder() {
    let page = [0x42u8; 4096];
    let code = SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::X);
    let data = SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::W);
    let mut w = SgxsWriter::new(Vec::new(), 1, 0x8000).unwrap();
    w.write_page(0, code, PageContent::Measured(&page)).unwrap();
    w.write_page(0x1000, data, PageContent::Unmeasured(&page))
        .unwrap();
    w.write_page(0x2000, data, PageContent::Zero).unwrap();
    let stream = w.finish().unwrap();

    let mut b = MeasurementBuilder::ecreate(1, 0x8000).unwrap();
    b.add_measured_page(0, code, &page).unwrap();
    b.add_unmeasured_page(0x1000, data).unwrap();
    b.add_unmeasured_page(0x2000, data).unwrap();
    assert_eq!(measure_sgxs(stream.as_slice()).unwrap().mrenclave, b.finish());
}

fn sgxs_error(bytes: &[u8]) -> String {
    let err = measure_sgxs(bytes).unwrap_err();
    assert!(matches!(err, Error::Sgxs { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn rejects_a_truncated_record_naming_its_position() {
    let good = test_enclave();
    let err = sgxs_error(&good[..good.len() - 10]);
    assert!(err.contains("truncated record"), "{err}");
    assert!(err.contains(&format!("at byte {}", good.len() - 320)), "{err}");
    let err = sgxs_error(&good[..64 + 30]);
    assert!(err.contains("truncated record: 30 of 64 header bytes"), "{err}");
}

#[test]
fn rejects_eextend_without_eadd() {
    let mut recs = records(&test_enclave()).unwrap();
    recs.remove(1); // the first EADD
    let err = sgxs_error(&serialise(&recs));
    assert!(err.contains("EEXTEND at 0x0 without a preceding EADD"), "{err}");
}

#[test]
fn rejects_pages_and_chunks_out_of_order() {
    let recs = records(&test_enclave()).unwrap();
    let eadds: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, Owned::Eadd(..)))
        .map(|(i, _)| i)
        .collect();
    // Swap the first two pages (each EADD with its EEXTENDs).
    let mut swapped = vec![recs[0].clone()];
    swapped.extend_from_slice(&recs[eadds[1]..eadds[2]]);
    swapped.extend_from_slice(&recs[eadds[0]..eadds[1]]);
    swapped.extend_from_slice(&recs[eadds[2]..]);
    let err = sgxs_error(&serialise(&swapped));
    assert!(err.contains("out of order"), "{err}");

    // Swap two chunks of a page.
    let mut chunks = recs.clone();
    chunks.swap(2, 3);
    let err = sgxs_error(&serialise(&chunks));
    assert!(err.contains("EEXTEND at 0x0 is out of order"), "{err}");
}

#[test]
fn rejects_unaligned_records() {
    let mut recs = records(&test_enclave()).unwrap();
    if let Owned::Eextend(offset, _) = &mut recs[2] {
        *offset += 0x10;
    }
    let err = sgxs_error(&serialise(&recs));
    assert!(err.contains("not aligned to 256 bytes"), "{err}");

    let mut recs = records(&test_enclave()).unwrap();
    if let Owned::Eadd(offset, _) = &mut recs[1] {
        *offset = 0x800;
    }
    let err = sgxs_error(&serialise(&recs));
    assert!(err.contains("not page-aligned"), "{err}");
}

#[test]
fn rejects_unknown_tags_padding_a_missing_ecreate_and_an_empty_stream() {
    let mut bad = test_enclave();
    bad[64..72].copy_from_slice(b"EREMOVE\0");
    let err = sgxs_error(&bad);
    assert!(
        err.contains("record 1 at byte 64: unknown record tag \"EREMOVE\\0\""),
        "{err}"
    );

    let mut bad = test_enclave();
    bad[64 + 40] = 1; // inside the EADD's SECINFO reserved bytes
    assert!(sgxs_error(&bad).contains("non-zero byte at offset 40 of a EADD record"));

    let good = test_enclave();
    let err = sgxs_error(&good[64..]);
    assert!(err.contains("EADD before ECREATE"), "{err}");
    assert!(sgxs_error(&[]).contains("empty stream"));

    let mut twice = good[..64].to_vec();
    twice.extend_from_slice(&good);
    assert!(sgxs_error(&twice).contains("a second ECREATE"));
}

#[test]
fn an_unsized_stream_reads_but_has_no_mrenclave() {
    let mut recs = records(&test_enclave()).unwrap();
    recs[0] = Owned::Unsized(1, 0x1000);
    let bytes = serialise(&recs);
    assert_eq!(records(&bytes).unwrap().len(), recs.len());
    let err = sgxs_error(&bytes);
    assert!(err.contains("UNSIZED"), "{err}");
}
