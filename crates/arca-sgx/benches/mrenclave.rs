//! MRENCLAVE of a generated SGXS stream (≥ 256 MiB), side by side in one run with:
//! (a) one SHA-256 pass over the same bytes (sha2, SHA-NI when the CPU has it) — the limit;
//! (b) Fortanix's `sgxs` crate (`CanonicalSgxsReader` + `EnclaveHash::from_stream`) — the peer, given the
//! same sha2 hasher through its `SgxHashOps` trait.
//!
//! Run: `cargo bench -p arca-sgx --bench mrenclave`. Results and ratios go in BENCHMARKS.md.

use std::hint::black_box;

use arca_sgx::{measure_sgxs, PageContent, PageType, SecinfoFlags, SgxsWriter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest, Sha256};

/// An enclave of 256 MiB whose every page is measured: 65536 × (EADD + 16 EEXTEND) ≈ 340 MiB of stream.
fn generate_stream() -> Vec<u8> {
    const SIZE: u64 = 256 << 20;
    let pages = SIZE / 4096;
    let mut out = Vec::with_capacity((pages * (64 + 16 * 320) + 64) as usize);
    let mut w = SgxsWriter::new(&mut out, 1, SIZE).expect("ECREATE");
    let flags = SecinfoFlags::page(PageType::REG, SecinfoFlags::R | SecinfoFlags::W);
    let mut page = [0u8; 4096];
    for p in 0..pages {
        // Content varies per page so no layer can shortcut repeated data.
        for (i, b) in page.iter_mut().enumerate() {
            *b = (p as usize).wrapping_mul(31).wrapping_add(i) as u8;
        }
        w.write_page(p * 4096, flags, PageContent::Measured(&page))
            .expect("page");
    }
    w.finish().expect("finish");
    out
}

fn bench(c: &mut Criterion) {
    let stream = generate_stream();
    assert!(stream.len() >= 256 << 20);
    let ours = measure_sgxs(stream.as_slice()).expect("measure").mrenclave;
    // Sanity (not a timing assertion): all three compute the same thing on this canonical stream.
    assert_eq!(ours.as_bytes()[..], Sha256::digest(&stream)[..]);
    let theirs = fortanix(&stream);
    assert_eq!(&theirs[..], &ours.as_bytes()[..]);

    let mut g = c.benchmark_group("mrenclave_340MiB");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(10));
    g.bench_function("sha256_one_pass", |b| {
        b.iter(|| Sha256::digest(black_box(&stream)))
    });
    g.bench_function("arca_measure_sgxs", |b| {
        b.iter(|| {
            measure_sgxs(black_box(stream.as_slice()))
                .expect("measure")
                .mrenclave
        })
    });
    g.bench_function("fortanix_sgxs", |b| b.iter(|| fortanix(black_box(&stream))));
    g.finish();
}

/// The same sha2 0.11 hasher, behind Fortanix's hashing trait.
struct Sha256Ops(Sha256);

impl sgxs::crypto::SgxHashOps for Sha256Ops {
    fn new() -> Self {
        Sha256Ops(Sha256::new())
    }
    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn fortanix(stream: &[u8]) -> [u8; 32] {
    let mut reader = stream;
    let mut canonical = sgxs::sgxs::CanonicalSgxsReader::new(&mut reader);
    let hash = sgxs::sigstruct::EnclaveHash::from_stream::<_, Sha256Ops>(&mut canonical).expect("sgxs");
    hash.hash()
}

criterion_group!(benches, bench);
criterion_main!(benches);
