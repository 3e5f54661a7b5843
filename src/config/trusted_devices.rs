//! Remembered devices ("remember this device"): how long one stays trusted
//! and how many a user may hold.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, MAX_LIFETIME_SECS, secs, within};

/// The most live devices per user one may ask for: every remember and every
/// revocation touches them all, so keep the set small.
const MAX_DEVICES_PER_USER: u32 = 1_000;

/// The trusted-device settings.
#[derive(Debug, Clone, Args)]
pub struct TrustedDeviceSettings {
    /// How long a remembered device skips the second factor; 0 turns
    /// "remember this device" off (requests for it are then ignored).
    #[arg(
        id = "trusted_device_ttl_secs",
        long = "trusted-device-ttl-secs",
        value_name = "TRUSTED_DEVICE_TTL_SECS",
        env = "WARDEN_TRUSTED_DEVICE_TTL_SECS",
        default_value_t = 2_592_000,
        global = true
    )]
    pub ttl_secs: u64,
    /// Live remembered devices per user; one more ends the oldest.
    #[arg(
        id = "max_trusted_devices_per_user",
        long = "max-trusted-devices-per-user",
        value_name = "MAX_TRUSTED_DEVICES_PER_USER",
        env = "WARDEN_MAX_TRUSTED_DEVICES_PER_USER",
        default_value_t = 20,
        global = true
    )]
    pub max_per_user: u32,
}

impl TrustedDeviceSettings {
    /// A lifetime of at most ten years (0: off), and 1 to 1000 devices.
    pub fn validate(&self) -> Result<(), ConfigError> {
        within(
            "WARDEN_TRUSTED_DEVICE_TTL_SECS",
            self.ttl_secs,
            0,
            MAX_LIFETIME_SECS,
        )?;
        within(
            "WARDEN_MAX_TRUSTED_DEVICES_PER_USER",
            self.max_per_user,
            1,
            MAX_DEVICES_PER_USER,
        )
    }

    /// How long a remembered device stays trusted; `None` when the feature
    /// is off.
    pub fn ttl(&self) -> Option<Duration> {
        (self.ttl_secs > 0).then(|| secs(self.ttl_secs))
    }
}
