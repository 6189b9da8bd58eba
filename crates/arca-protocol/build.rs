//! Generates the activation gRPC service from `proto/activation.proto` (needs `protoc`, installed by
//! `scripts/setup.sh` as Debian's `protobuf-compiler`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/activation.proto");
    tonic_prost_build::configure()
        .build_transport(false)
        .compile_protos(&["proto/activation.proto"], &["proto"])?;
    Ok(())
}
