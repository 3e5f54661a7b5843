//! The gRPC edge: generated code, the `AuthService` implementation, and the
//! one place where domain errors become statuses.

mod auth;
pub mod client_address;
pub mod codec;
pub mod guard;
pub mod rpc;
pub mod status;
pub mod trace;

pub use auth::AuthGrpc;

/// Code generated from `proto/warden/v1/auth.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("warden.v1");

    /// The encoded descriptor set that serves reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
}
