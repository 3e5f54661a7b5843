//! Failure counting: how many failures lock a name, and for how long.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, MAX_LIFETIME_SECS, secs, within};

/// The highest threshold one may ask for: low enough that failure counts
/// stay well inside `i32` columns.
const MAX_LOCKOUT_THRESHOLD: u32 = 1_000_000;

/// The lockout settings.
#[derive(Debug, Clone, Args)]
pub struct LockoutSettings {
    /// Failures that lock an account name.
    #[arg(
        long = "lockout-threshold",
        value_name = "LOCKOUT_THRESHOLD",
        env = "WARDEN_LOCKOUT_THRESHOLD",
        default_value_t = 5,
        global = true
    )]
    pub threshold: u32,
    /// Lock length (second-factor locks double from here).
    #[arg(
        long = "lockout-duration-secs",
        value_name = "LOCKOUT_DURATION_SECS",
        env = "WARDEN_LOCKOUT_DURATION_SECS",
        default_value_t = 900,
        global = true
    )]
    pub duration_secs: u64,
    /// Longest second-factor lock.
    #[arg(
        long = "lockout-max-duration-secs",
        value_name = "LOCKOUT_MAX_DURATION_SECS",
        env = "WARDEN_LOCKOUT_MAX_DURATION_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub max_duration_secs: u64,
}

impl LockoutSettings {
    /// Locks from a second to ten years, the longest no shorter than the
    /// first; a threshold of at least one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "WARDEN_LOCKOUT_DURATION_SECS",
            self.duration_secs,
            1,
            MAX_LIFETIME_SECS,
        )?;
        within(
            "WARDEN_LOCKOUT_MAX_DURATION_SECS",
            self.max_duration_secs,
            self.duration_secs,
            MAX_LIFETIME_SECS,
        )?;
        within(
            "WARDEN_LOCKOUT_THRESHOLD",
            self.threshold,
            1,
            MAX_LOCKOUT_THRESHOLD,
        )
    }

    /// The first lock's length.
    pub fn duration(&self) -> Duration {
        secs(self.duration_secs)
    }

    /// The longest lock.
    pub fn max_duration(&self) -> Duration {
        secs(self.max_duration_secs)
    }
}
