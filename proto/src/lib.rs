//! The earshot.v1 protobuf contract.
//!
//! Generated code lives in OUT_DIR (see `build.rs`); this crate only re-exports it.

pub mod json;

/// Messages, clients (`*_client`) and servers (`*_server`) of package `earshot.v1`.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
    tonic::include_proto!("earshot.v1");
}

/// The encoded `FileDescriptorSet` of every earshot proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/earshot_descriptor.bin"));
