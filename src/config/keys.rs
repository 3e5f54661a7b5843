//! The keys: the TOTP key ring and the token key, each given inline or as
//! a file. Loading them is `crate::keys`'s job.

use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;

use super::{ConfigError, refuse, secret};

/// Where the keys come from.
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    /// TOTP encryption keys: `id:base64(32 bytes)[,id:…]`.
    #[arg(long = "keys", value_name = "KEYS", env = "WARDEN_KEYS", value_parser = secret, global = true, hide_env_values = true)]
    pub ring: Option<SecretString>,
    /// File holding the `WARDEN_KEYS` value.
    #[arg(
        long = "keys-file",
        value_name = "KEYS_FILE",
        env = "WARDEN_KEYS_FILE",
        global = true
    )]
    pub ring_file: Option<PathBuf>,
    /// Id of the key new ciphertexts use (default: the first key).
    #[arg(long, env = "WARDEN_PRIMARY_KEY_ID", global = true)]
    pub primary_key_id: Option<String>,
    /// Token hashing key: base64(32 bytes).
    #[arg(long = "token-key", value_name = "TOKEN_KEY", env = "WARDEN_TOKEN_KEY", value_parser = secret, global = true, hide_env_values = true)]
    pub token: Option<SecretString>,
    /// File holding the `WARDEN_TOKEN_KEY` value.
    #[arg(
        long = "token-key-file",
        value_name = "TOKEN_KEY_FILE",
        env = "WARDEN_TOKEN_KEY_FILE",
        global = true
    )]
    pub token_file: Option<PathBuf>,
}

impl KeySettings {
    /// Each key comes from one place at most.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ring.is_some() && self.ring_file.is_some() {
            return refuse("set WARDEN_KEYS or WARDEN_KEYS_FILE, not both");
        }
        if self.token.is_some() && self.token_file.is_some() {
            return refuse("set WARDEN_TOKEN_KEY or WARDEN_TOKEN_KEY_FILE, not both");
        }
        Ok(())
    }

    /// Whether both keys are configured, inline or as files.
    pub fn are_configured(&self) -> bool {
        (self.ring.is_some() || self.ring_file.is_some())
            && (self.token.is_some() || self.token_file.is_some())
    }
}
