#![no_main]
//! Collateral parsing (JSON layout, raw PCS bodies, TCB info, QE identity, CRLs, PEM chains) never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_attest::fuzzing::collateral(data));
