//! The coordinator's network face: the client REST API, the mesh gRPC API, the metrics endpoint, and the
//! TLS server that carries the first two.

pub(crate) mod client;
pub(crate) mod mesh;
pub(crate) mod server;
