//! Generates only the client for `warden.v1.AuthService` from the
//! workspace's `proto/`, with a vendored `protoc`, so a backend depends on
//! neither the server crate nor an installed `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(
            &[PathBuf::from("../proto/warden/v1/auth.proto")],
            &[
                PathBuf::from("../proto"),
                protoc_bin_vendored::include_path()?,
            ],
        )?;
    println!("cargo:rerun-if-changed=../proto");
    Ok(())
}
