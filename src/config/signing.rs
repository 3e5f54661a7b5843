//! Access tokens: the Ed25519 keys that sign them (inline or as a file),
//! which key signs, and the tokens' issuer, audience and lifetime. Loading
//! the keys is `crate::keys`'s job.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use super::{ConfigError, refuse, secret, secs, within};

/// The longest access-token lifetime one may ask for: a day. Access tokens
/// cannot be revoked (backends verify them offline), so their lifetime is
/// the window a stolen one stays usable; anything longer defeats their
/// purpose next to ValidateSession.
pub const MAX_ACCESS_TOKEN_TTL_SECS: u64 = 86_400;

/// The longest issuer or audience accepted: these travel in every token.
const MAX_NAME_LEN: usize = 256;

/// How access tokens are signed and what they say.
#[derive(Debug, Clone, Args)]
pub struct SigningSettings {
    /// Access-token signing keys: `kid:base64(32-byte Ed25519 seed)`,
    /// separated by commas or newlines. Every key is published in the JWK
    /// Set; the first signs unless WARDEN_SIGNING_KEY_ID names another.
    #[arg(long = "signing-keys", value_name = "SIGNING_KEYS", env = "WARDEN_SIGNING_KEYS", value_parser = secret, global = true, hide_env_values = true)]
    pub keys: Option<SecretString>,
    /// File holding the `WARDEN_SIGNING_KEYS` value.
    #[arg(
        long = "signing-keys-file",
        value_name = "SIGNING_KEYS_FILE",
        env = "WARDEN_SIGNING_KEYS_FILE",
        global = true
    )]
    pub keys_file: Option<PathBuf>,
    /// Id of the key that signs new access tokens (default: the first).
    #[arg(long, env = "WARDEN_SIGNING_KEY_ID", global = true)]
    pub signing_key_id: Option<String>,
    /// The `iss` claim of access tokens.
    #[arg(
        long = "issuer",
        value_name = "ISSUER",
        env = "WARDEN_ISSUER",
        default_value = "warden",
        global = true
    )]
    pub token_issuer: String,
    /// The `aud` claim of access tokens; unset or empty: no `aud` claim.
    #[arg(long, env = "WARDEN_ACCESS_TOKEN_AUDIENCE", global = true)]
    pub access_token_audience: Option<String>,
    /// Access-token lifetime (never past the session's end).
    #[arg(
        long,
        env = "WARDEN_ACCESS_TOKEN_TTL_SECS",
        default_value_t = 300,
        global = true
    )]
    pub access_token_ttl_secs: u64,
}

fn printable(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_NAME_LEN && !value.chars().any(char::is_control)
}

impl SigningSettings {
    /// Keys from one place at most; a lifetime from a second to a day; a
    /// printable issuer and audience of at most 256 bytes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keys.is_some() && self.keys_file.is_some() {
            return refuse("set WARDEN_SIGNING_KEYS or WARDEN_SIGNING_KEYS_FILE, not both");
        }
        within(
            "WARDEN_ACCESS_TOKEN_TTL_SECS",
            self.access_token_ttl_secs,
            1,
            MAX_ACCESS_TOKEN_TTL_SECS,
        )?;
        if !printable(&self.token_issuer) {
            return refuse("WARDEN_ISSUER must be 1-256 bytes without control characters");
        }
        if let Some(audience) = self.audience()
            && !printable(audience)
        {
            return refuse(
                "WARDEN_ACCESS_TOKEN_AUDIENCE must be at most 256 bytes without control characters",
            );
        }
        if self.signing_key_id.as_deref().is_some_and(str::is_empty) {
            return refuse("WARDEN_SIGNING_KEY_ID must not be empty when set");
        }
        Ok(())
    }

    /// Whether signing keys are configured, inline or as a file.
    pub fn are_configured(&self) -> bool {
        self.keys.is_some() || self.keys_file.is_some()
    }

    /// The audience, when one is set (an empty value means none).
    pub fn audience(&self) -> Option<&str> {
        self.access_token_audience
            .as_deref()
            .filter(|a| !a.trim().is_empty())
    }

    /// The access-token lifetime.
    pub fn access_token_ttl(&self) -> Duration {
        secs(self.access_token_ttl_secs)
    }
}
