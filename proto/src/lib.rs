//! The earshot.v1 protobuf contract.
//!
//! Generated code lives in OUT_DIR (see `build.rs`); this crate re-exports it, with the JSON the
//! server and the SDKs share: metadata as `google.protobuf.Struct` (`json`) and the JSON shape of a
//! conversation (`conversation_json`).

pub mod conversation_json;
pub mod json;

/// Messages, clients (`*_client`) and servers (`*_server`) of package `earshot.v1`.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
    tonic::include_proto!("earshot.v1");
}

/// The encoded `FileDescriptorSet` of every earshot proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/earshot_descriptor.bin"));
