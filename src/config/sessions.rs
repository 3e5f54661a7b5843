//! Session and login-challenge lifetimes.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, MAX_LIFETIME_SECS, secs, within};

/// The most live sessions per user one may ask for: low enough that counts
/// stay well inside `i32` columns.
const MAX_SESSIONS_PER_USER: u32 = 100_000;

/// How long sessions and challenges live.
#[derive(Debug, Clone, Args)]
pub struct SessionSettings {
    /// Absolute session lifetime.
    #[arg(
        long = "session-ttl-secs",
        value_name = "SESSION_TTL_SECS",
        env = "WARDEN_SESSION_TTL_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub ttl_secs: u64,
    /// Session idle timeout.
    #[arg(
        long = "session-idle-timeout-secs",
        value_name = "SESSION_IDLE_TIMEOUT_SECS",
        env = "WARDEN_SESSION_IDLE_TIMEOUT_SECS",
        default_value_t = 3_600,
        global = true
    )]
    pub idle_timeout_secs: u64,
    /// Live sessions per user; one more ends the oldest.
    #[arg(
        long = "max-sessions-per-user",
        value_name = "MAX_SESSIONS_PER_USER",
        env = "WARDEN_MAX_SESSIONS_PER_USER",
        default_value_t = 100,
        global = true
    )]
    pub max_per_user: u32,
    /// Login challenge lifetime.
    #[arg(
        long,
        env = "WARDEN_CHALLENGE_TTL_SECS",
        default_value_t = 300,
        global = true
    )]
    pub challenge_ttl_secs: u64,
}

impl SessionSettings {
    /// Lifetimes from a second to ten years; at least one session per user.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("WARDEN_SESSION_TTL_SECS", self.ttl_secs),
            ("WARDEN_SESSION_IDLE_TIMEOUT_SECS", self.idle_timeout_secs),
            ("WARDEN_CHALLENGE_TTL_SECS", self.challenge_ttl_secs),
        ] {
            within(name, value, 1, MAX_LIFETIME_SECS)?;
        }
        within(
            "WARDEN_MAX_SESSIONS_PER_USER",
            self.max_per_user,
            1,
            MAX_SESSIONS_PER_USER,
        )
    }

    /// The absolute session lifetime.
    pub fn ttl(&self) -> Duration {
        secs(self.ttl_secs)
    }

    /// The session idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        secs(self.idle_timeout_secs)
    }

    /// The login challenge lifetime.
    pub fn challenge_ttl(&self) -> Duration {
        secs(self.challenge_ttl_secs)
    }
}
