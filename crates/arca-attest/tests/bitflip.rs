//! Flipping any single bit of any authenticated byte of the sample quotes (header, body, ISV signature,
//! attestation key, QE report, QE report signature, QE auth data with its size) makes verification fail.
//! Every bit, not a sample; in parallel.
#![allow(clippy::unwrap_used)]

use arca_attest::{Collateral, Evidence, Policy, Quote, Verifier};
use rayon::prelude::*;

const AT: i64 = 1_751_000_000;

fn every_bit_flip_is_rejected(quote_name: &str, collateral_name: &str) -> usize {
    let quote = std::fs::read(arca_testkit::vector(quote_name)).unwrap();
    let col = Collateral::from_json(&std::fs::read(arca_testkit::vector(collateral_name)).unwrap()).unwrap();
    let verifier = Verifier::new();
    verifier
        .check(&Evidence::new(&quote, Some(&col)), &Policy::default(), AT)
        .expect("the untouched quote verifies");
    let ranges = Quote::parse(&quote).unwrap().authenticated_ranges();
    let bits: Vec<(usize, u8)> = ranges
        .iter()
        .flat_map(|r| r.clone())
        .flat_map(|i| (0..8).map(move |b| (i, b)))
        .collect();
    let accepted: Vec<(usize, u8)> = bits
        .par_iter()
        .filter(|&&(i, b)| {
            let mut q = quote.clone();
            q[i] ^= 1 << b;
            verifier
                .check(&Evidence::new(&q, Some(&col)), &Policy::default(), AT)
                .is_ok()
        })
        .copied()
        .collect();
    assert!(
        accepted.is_empty(),
        "{quote_name}: flips accepted at (byte, bit) {accepted:?}"
    );
    bits.len()
}

#[test]
fn every_bit_flip_of_sample_sgx_quote_is_rejected() {
    let n = every_bit_flip_is_rejected(
        "dcap-qvl/sample_sgx_quote",
        "dcap-qvl/sample_sgx_quote_collateral.json",
    );
    assert!(n > 8 * (48 + 384 + 64 + 64 + 384 + 64));
}

#[test]
fn every_bit_flip_of_sample_tdx_quote_is_rejected() {
    let n = every_bit_flip_is_rejected(
        "dcap-qvl/sample_tdx_quote",
        "dcap-qvl/sample_tdx_quote_collateral.json",
    );
    assert!(n > 8 * (48 + 584 + 64 + 64 + 384 + 64));
}
