//! Wire types shared by the coordinator and its clients: the activation gRPC service, client REST types and MarbleRun manifest types.
//!
//! (Design notes, main types and an example are written here as the crate gains content.)
#![forbid(unsafe_code)]
