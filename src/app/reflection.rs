//! Reflection for each listener, advertising only the services that
//! listener serves: the build compiles auth.proto and admin.proto into one
//! descriptor set, and the main listener must not describe AdminService.

use anyhow::Context as _;
use prost::Message as _;
use prost_types::FileDescriptorSet;

/// The proto file each listener leaves out of the other's reflection.
const AUTH_PROTO: &str = "warden/v1/auth.proto";
const ADMIN_PROTO: &str = "warden/v1/admin.proto";

/// Warden's descriptor set without the file named `left_out`.
fn warden_files_without(left_out: &str) -> anyhow::Result<FileDescriptorSet> {
    let mut set = FileDescriptorSet::decode(crate::grpc::pb::FILE_DESCRIPTOR_SET)
        .context("decode the built descriptor set")?;
    set.file.retain(|f| f.name() != left_out);
    Ok(set)
}

/// The main listener's reflection: AuthService and health. The error-detail
/// types are served too, so grpcurl (and any reflection client) can decode
/// the ErrorInfo, BadRequest and RetryInfo that every error carries.
pub(super) fn for_main() -> anyhow::Result<tonic_reflection::server::Builder<'static>> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(warden_files_without(ADMIN_PROTO)?)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET))
}

/// The admin listener's reflection: AdminService (and the error details).
pub(super) fn for_admin() -> anyhow::Result<tonic_reflection::server::Builder<'static>> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(warden_files_without(AUTH_PROTO)?)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_leaves_out_the_others_file() -> anyhow::Result<()> {
        let names = |set: FileDescriptorSet| -> Vec<String> {
            set.file.iter().map(|f| f.name().to_owned()).collect()
        };
        let main = names(warden_files_without(ADMIN_PROTO)?);
        let admin = names(warden_files_without(AUTH_PROTO)?);
        assert!(main.iter().any(|n| n == AUTH_PROTO));
        assert!(!main.iter().any(|n| n == ADMIN_PROTO));
        assert!(admin.iter().any(|n| n == ADMIN_PROTO));
        assert!(!admin.iter().any(|n| n == AUTH_PROTO));
        Ok(())
    }
}
