//! SGX byte formats and enclave identity: SIGSTRUCT, SECINFO, REPORT body, TARGETINFO, ATTRIBUTES, MISCSELECT; the MRENCLAVE measurement builder (ECREATE/EADD/EEXTEND); SGXS streams; SIGSTRUCT signing and verification; MRSIGNER.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
