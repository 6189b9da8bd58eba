#![no_main]
//! Quote parsing (v3/v4/v5, every certification data type) and RA-TLS certificate parsing never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| arca_attest::fuzzing::quote(data));
