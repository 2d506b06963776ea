//! Compiles `earshot/v1/*.proto` into OUT_DIR with descriptors produced by protox, so no system
//! `protoc` is needed. tonic-prost-build no longer prints `rerun-if-changed`, so this script does.

use std::path::PathBuf;

const PROTO_ROOT: &str = ".";
const PROTO_DIR: &str = "earshot/v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut proto_files: Vec<PathBuf> = std::fs::read_dir(PROTO_DIR)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    proto_files.retain(|path| path.extension().is_some_and(|extension| extension == "proto"));
    proto_files.sort();

    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for file in &proto_files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let file_descriptor_set = protox::compile(&proto_files, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("earshot_descriptor.bin");
    std::fs::write(&descriptor_path, protox::prost::Message::encode_to_vec(&file_descriptor_set))?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_protos(&proto_files, &[PathBuf::from(PROTO_ROOT)])?;
    Ok(())
}
