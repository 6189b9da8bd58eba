//! SGXS streams from arbitrary bytes: never panic; a stream that measures and holds no extension records
//! (UNMEASRD/UNSIZED) has MRENCLAVE = SHA-256 of the stream, so the reader, the canonical rules and the
//! builder agree with the definition byte for byte.
#![no_main]

use arca_sgx::{measure_sgxs, SgxsReader, SgxsRecord};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let mut reader = SgxsReader::new(data);
    let mut extension_records = false;
    let mut read_all = true;
    loop {
        match reader.next_record() {
            Ok(Some(SgxsRecord::Unmeasured { .. } | SgxsRecord::Unsized { .. })) => extension_records = true,
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                read_all = false;
                break;
            }
        }
    }
    let measured = measure_sgxs(data);
    if let Ok(m) = &measured {
        assert!(read_all, "measure_sgxs accepted a stream the reader refuses");
        if !extension_records {
            assert_eq!(m.mrenclave.as_bytes()[..], Sha256::digest(data)[..]);
        }
        assert_eq!(m.stream_len, data.len() as u64);
    }
});
