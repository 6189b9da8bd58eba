//! OCI images: transports (docker-archive, oci layout, oci-archive, registry), safe layer application, and
//! the conversion pipeline behind `arca convert`.
#![forbid(unsafe_code)]

mod compress;
mod convert;
mod digest;
mod error;
mod gramine;
mod inspect;
mod layer;
mod reference;
mod registry;
mod sink;
mod source;
mod tar;

pub use crate::compress::Compression;
pub use crate::convert::{convert, ConvertOptions, ConvertReport, EncryptPath, NoProgress, Progress};
pub use crate::digest::Digest;
pub use crate::error::{Error, Result};
pub use crate::gramine::{
    gramine_context, gramine_manifest, GramineContext, GRAMINE_ROOTFS, GRAMINE_WARNING,
};
pub use crate::inspect::{
    diff, inspect, read_enclave_files, Check, DiffReport, Difference, EnclaveFiles, Inspection,
};
pub use crate::layer::{UnpackStats, Unpacker};
pub use crate::reference::{ImageRef, Reference, RegistryRef};
pub use crate::registry::Credentials;
pub use crate::sink::{copy_image, write_image, Descriptor, StagedImage, Staging, WriteOptions, Written};
pub use crate::source::{Layer, Platform, ReadOptions, SourceImage};
