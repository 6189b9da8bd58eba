//! DCAP attestation: quote parsing (v3/v4/v5, SGX and TDX), verification against Intel collateral under an explicit policy, collateral loading and fetching, the simulation PKI and quoter, RA-TLS certificates and rustls verifiers.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
