//! Compiles `proto/` with a vendored `protoc`, so building needs nothing
//! installed by hand, and writes the descriptor set that serves reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure()
        // Decode errors become INVALID_ARGUMENT instead of INTERNAL.
        .codec_path("crate::grpc::codec::WardenCodec")
        .file_descriptor_set_path(out_dir.join("warden_descriptor.bin"))
        .compile_protos(
            &[
                PathBuf::from("proto/warden/v1/auth.proto"),
                PathBuf::from("proto/warden/v1/admin.proto"),
            ],
            &[PathBuf::from("proto"), protoc_bin_vendored::include_path()?],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
