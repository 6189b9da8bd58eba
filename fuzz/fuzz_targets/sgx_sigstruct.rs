//! SIGSTRUCT (and the other fixed-size SGX structures) from arbitrary bytes: never panic; whatever parses
//! serialises back to the same bytes; verification of whatever parses returns, never panics.
#![no_main]

use arca_sgx::{ReportBody, Secinfo, Sigstruct, TargetInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Sigstruct::parse(data) {
        assert_eq!(s.to_bytes().as_slice(), data);
        let _ = s.verify();
        let _ = s.mrsigner();
    }
    // Let the fuzzer reach a parsable SIGSTRUCT from shorter inputs too: pad or cut to 1808 bytes.
    let mut fixed = [0u8; Sigstruct::SIZE];
    let n = data.len().min(fixed.len());
    fixed[..n].copy_from_slice(&data[..n]);
    if let Ok(s) = Sigstruct::parse(&fixed) {
        assert_eq!(s.to_bytes(), fixed);
        if s.verify().is_ok() {
            // Only a correctly signed SIGSTRUCT verifies; its Q1/Q2 were checked.
            let _ = Sigstruct::assemble(&s.fields, s.modulus, s.signature).expect("verified SIGSTRUCT re-assembles");
        }
    }
    if let Ok(r) = ReportBody::parse(data) {
        assert_eq!(r.to_bytes().as_slice(), data);
    }
    if let Ok(t) = TargetInfo::parse(data) {
        assert_eq!(t.to_bytes().as_slice(), data);
    }
    if let Ok(s) = Secinfo::parse(data) {
        assert_eq!(s.to_bytes().as_slice(), data);
    }
});
