//! OCI images: transports (docker-archive, oci layout, oci-archive, registry), safe layer application, and the conversion pipeline behind `arca convert`.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
