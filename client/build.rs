//! Generates only the client for `warden.v1.AuthService` from the
//! workspace's `proto/`, with a vendored `protoc`, so a backend depends on
//! neither the server crate nor an installed `protoc`. Also generates the
//! example backend's own service (`examples/proto`), which only the
//! examples and tests include.

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
    let demo = PathBuf::from("examples/proto/demo/v1/whoami.proto");
    // Absent from a packaged crate; only the examples and tests need it.
    if demo.exists() {
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_protos(
                &[demo],
                &[
                    PathBuf::from("examples/proto"),
                    protoc_bin_vendored::include_path()?,
                ],
            )?;
        println!("cargo:rerun-if-changed=examples/proto");
    }
    Ok(())
}
