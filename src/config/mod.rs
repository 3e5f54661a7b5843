//! Configuration: every setting is a flag with a `WARDEN_*` environment twin,
//! parsed once at start and validated before anything else happens.
//!
//! Settings come in groups, one per concern, each flattened into [`Config`]
//! (so flags and environment names stay flat) and each owning its range
//! checks and its conversions into plain values. Configuration knows
//! nothing of the layers it configures: assembly (`app`) builds their
//! settings from these groups.

mod credentials;
mod database;
mod hashing;
mod keys;
mod lockout;
mod rate_limits;
mod server;
mod sessions;
mod signing;
mod telemetry;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

pub use credentials::{PasswordSettings, TotpSettings};
pub use database::DatabaseSettings;
pub use hashing::{HashingSettings, cpu_limit};
pub use keys::KeySettings;
pub use lockout::LockoutSettings;
pub use rate_limits::RateLimitSettings;
pub use server::ServerSettings;
pub use sessions::SessionSettings;
pub use signing::{MAX_ACCESS_TOKEN_TTL_SECS, SigningSettings};
pub use telemetry::{LogFormat, TelemetrySettings};

/// Warden: password + TOTP authentication over gRPC.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Clone, Copy, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-encrypt every TOTP secret under the primary key and exit.
    RotateKeys,
}

/// All settings, by group. Durations are whole seconds.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Listening, per-call limits and shutdown.
    #[command(flatten)]
    pub server: ServerSettings,
    /// The database and its upkeep.
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// TOTP encryption keys and the token key.
    #[command(flatten)]
    pub keys: KeySettings,
    /// Access tokens: signing keys, issuer, audience, lifetime.
    #[command(flatten)]
    pub signing: SigningSettings,
    /// Session and login-challenge lifetimes.
    #[command(flatten)]
    pub sessions: SessionSettings,
    /// Failure counting and locks.
    #[command(flatten)]
    pub lockout: LockoutSettings,
    /// TOTP enrolment and checking.
    #[command(flatten)]
    pub totp: TotpSettings,
    /// What a new password must be.
    #[command(flatten)]
    pub passwords: PasswordSettings,
    /// Argon2id costs and the hashing workers.
    #[command(flatten)]
    pub hashing: HashingSettings,
    /// Per-address rate limits.
    #[command(flatten)]
    pub rate_limits: RateLimitSettings,
    /// Logs and traces.
    #[command(flatten)]
    pub telemetry: TelemetrySettings,
}

/// A setting that makes no sense; the message names it by its `WARDEN_*` name.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// The longest lifetime or lock a setting may ask for: ten years. Far beyond
/// any sane policy, and small enough that `now ± it` stays well inside the
/// range of `time::OffsetDateTime` (year ±9999), so expiry arithmetic can
/// never overflow.
pub const MAX_LIFETIME_SECS: u64 = 10 * 365 * 86_400;

/// The longest time limit (per call, per message, grace period): one hour.
/// Timers this long are harmless to tokio; anything longer is a typo.
const MAX_TIME_LIMIT_SECS: u64 = 3_600;

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

/// Refuses `value` outside `min..=max`, naming the setting.
fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError(format!(
            "{name} must be between {min} and {max} (got {value})"
        )));
    }
    Ok(())
}

/// Refuses with `message` as it stands.
fn refuse(message: &str) -> Result<(), ConfigError> {
    Err(ConfigError(message.to_owned()))
}

/// Seconds as a `Duration`.
fn secs(value: u64) -> std::time::Duration {
    std::time::Duration::from_secs(value)
}

impl Config {
    /// Checks every numeric setting's range and the cross-field rules, once
    /// at start, before anything is opened. Every refusal names the setting.
    /// Whether the database URL names a backend Warden has is for assembly
    /// to ask storage.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.sessions.validate()?;
        self.lockout.validate()?;
        self.server.validate()?;
        self.database.validate()?;
        self.totp.validate()?;
        self.passwords.validate()?;
        self.hashing.validate()?;
        self.rate_limits.validate()?;
        self.keys.validate()?;
        self.signing.validate()
    }
}

#[cfg(test)]
mod tests;
