//! The enclave manifest format, the enclave layout and the one identity function (MRENCLAVE) that the converter, the launcher and the simulation platform all call; in-image paths and engine names.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
