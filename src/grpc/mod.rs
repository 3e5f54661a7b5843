//! The gRPC edge: generated code, the `AuthService` and `AdminService`
//! implementations, and the one place where domain errors become statuses.

pub mod admin;
mod auth;
mod bearer;
pub mod client_address;
pub mod codec;
pub mod guard;
pub mod rpc;
pub mod status;
pub mod trace;

pub use admin::AdminGrpc;
pub use auth::AuthGrpc;

/// Code generated from `proto/warden/v1/auth.proto` and `admin.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("warden.v1");

    /// The encoded descriptor set that serves reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("warden_descriptor");
}
