//! The mesh API (port 2001): MarbleRun's `rpc.Marble` gRPC service, generated from
//! `proto/activation.proto`.
#![allow(missing_docs, unreachable_pub, clippy::all)]

tonic::include_proto!("rpc");

/// Environment variable names MarbleRun marbles read (set by the coordinator in every activation).
pub mod env {
    /// PEM root CA certificate.
    pub const ROOT_CA: &str = "MARBLE_PREDEFINED_ROOT_CA";
    /// PEM marble certificate followed by the intermediate CA.
    pub const MARBLE_CERTIFICATE_CHAIN: &str = "MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN";
    /// PEM (PKCS#8) marble private key.
    pub const PRIVATE_KEY: &str = "MARBLE_PREDEFINED_PRIVATE_KEY";
}
