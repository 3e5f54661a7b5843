//! What credentials must look like: TOTP enrolment and checking, and the
//! shortest new password.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, MAX_LIFETIME_SECS, refuse, secs, within};

/// The TOTP settings.
#[derive(Debug, Clone, Args)]
pub struct TotpSettings {
    /// Issuer shown in authenticator apps (no ':').
    #[arg(
        long = "totp-issuer",
        value_name = "TOTP_ISSUER",
        env = "WARDEN_TOTP_ISSUER",
        default_value = "Warden",
        global = true
    )]
    pub issuer: String,
    /// TOTP steps accepted either side of now.
    #[arg(
        long = "totp-skew",
        value_name = "TOTP_SKEW",
        env = "WARDEN_TOTP_SKEW",
        default_value_t = 1,
        global = true
    )]
    pub skew: u8,
    /// Pending TOTP enrolment lifetime.
    #[arg(
        long,
        env = "WARDEN_ENROLLMENT_TTL_SECS",
        default_value_t = 600,
        global = true
    )]
    pub enrollment_ttl_secs: u64,
    /// Require TOTP of every account: a password login of an account
    /// without it gets a restricted session that can only enrol.
    #[arg(
        long = "require-totp",
        env = "WARDEN_REQUIRE_TOTP",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub require: bool,
}

impl TotpSettings {
    /// A lifetime from a second to ten years, at most ten steps of skew, and
    /// an issuer that fits an `otpauth://` label.
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "WARDEN_ENROLLMENT_TTL_SECS",
            self.enrollment_ttl_secs,
            1,
            MAX_LIFETIME_SECS,
        )?;
        within("WARDEN_TOTP_SKEW", self.skew, 0, 10)?;
        if self.issuer.is_empty() || self.issuer.contains(':') || self.issuer.len() > 64 {
            return refuse("WARDEN_TOTP_ISSUER must be 1-64 characters without ':'");
        }
        Ok(())
    }

    /// The pending enrolment lifetime.
    pub fn enrollment_ttl(&self) -> Duration {
        secs(self.enrollment_ttl_secs)
    }
}

/// The password settings.
#[derive(Debug, Clone, Args)]
pub struct PasswordSettings {
    /// Minimum new-password length (NIST SP 800-63B-4 asks for 15 where the
    /// password is the only factor).
    #[arg(
        long = "password-min-length",
        value_name = "PASSWORD_MIN_LENGTH",
        env = "WARDEN_PASSWORD_MIN_LENGTH",
        default_value_t = 8,
        global = true
    )]
    pub min_length: usize,
}

impl PasswordSettings {
    /// A minimum from 1 to 128 characters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        within("WARDEN_PASSWORD_MIN_LENGTH", self.min_length, 1, 128)
    }
}
