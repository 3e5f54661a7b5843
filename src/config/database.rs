//! The database: where it is, how many connections, and its upkeep.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, secs, within};

/// The largest pool one may ask for.
const MAX_DB_CONNECTIONS: u32 = 10_000;

/// The longest interval between sweeps: one day.
const MAX_SWEEP_INTERVAL_SECS: u64 = 86_400;

/// The database settings.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// Database URL: `sqlite://FILE?mode=rwc` or `postgres://…`.
    #[arg(
        long = "database-url",
        value_name = "DATABASE_URL",
        env = "WARDEN_DATABASE_URL",
        default_value = "sqlite://warden.db?mode=rwc",
        global = true,
        hide_env_values = true
    )]
    pub url: String,
    /// Run migrations at start-up.
    #[arg(long, env = "WARDEN_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,
    /// Database pool size.
    #[arg(
        long = "db-max-connections",
        value_name = "DB_MAX_CONNECTIONS",
        env = "WARDEN_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub max_connections: u32,
    /// Interval between housekeeping sweeps.
    #[arg(
        long,
        env = "WARDEN_HOUSEKEEPING_INTERVAL_SECS",
        default_value_t = 60,
        global = true
    )]
    pub housekeeping_interval_secs: u64,
}

impl DatabaseSettings {
    /// Checks the sweep interval and the pool size. The URL's scheme is
    /// storage's to judge (see `app::validate`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "WARDEN_HOUSEKEEPING_INTERVAL_SECS",
            self.housekeeping_interval_secs,
            1,
            MAX_SWEEP_INTERVAL_SECS,
        )?;
        within(
            "WARDEN_DB_MAX_CONNECTIONS",
            self.max_connections,
            1,
            MAX_DB_CONNECTIONS,
        )
    }

    /// The interval between housekeeping sweeps.
    pub fn housekeeping_interval(&self) -> Duration {
        secs(self.housekeeping_interval_secs)
    }
}
