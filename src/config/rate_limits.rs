//! Per-address rate limits: Login, the second-factor and step-up calls, and
//! Register, each a token bucket.

use std::time::Duration;

use clap::Args;

use super::ConfigError;

/// The rate-limit settings.
#[derive(Debug, Clone, Args)]
pub struct RateLimitSettings {
    /// Per-IP rate limits on Login, the second-factor and step-up calls, and Register.
    #[arg(long = "rate-limit-enabled", value_name = "RATE_LIMIT_ENABLED", env = "WARDEN_RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub enabled: bool,
    /// Login calls per minute per address.
    #[arg(
        long = "rate-limit-login-per-minute",
        value_name = "RATE_LIMIT_LOGIN_PER_MINUTE",
        env = "WARDEN_RATE_LIMIT_LOGIN_PER_MINUTE",
        default_value_t = 5,
        global = true
    )]
    pub login_per_minute: u32,
    /// Login calls an address may save up.
    #[arg(
        long = "rate-limit-login-burst",
        value_name = "RATE_LIMIT_LOGIN_BURST",
        env = "WARDEN_RATE_LIMIT_LOGIN_BURST",
        default_value_t = 5,
        global = true
    )]
    pub login_burst: u32,
    /// Second-factor and step-up calls per minute per address.
    #[arg(
        long = "rate-limit-second-factor-per-minute",
        value_name = "RATE_LIMIT_SECOND_FACTOR_PER_MINUTE",
        env = "WARDEN_RATE_LIMIT_SECOND_FACTOR_PER_MINUTE",
        default_value_t = 5,
        global = true
    )]
    pub second_factor_per_minute: u32,
    /// Second-factor and step-up calls an address may save up.
    #[arg(
        long = "rate-limit-second-factor-burst",
        value_name = "RATE_LIMIT_SECOND_FACTOR_BURST",
        env = "WARDEN_RATE_LIMIT_SECOND_FACTOR_BURST",
        default_value_t = 5,
        global = true
    )]
    pub second_factor_burst: u32,
    /// Register calls per hour per address (also the burst).
    #[arg(
        long = "rate-limit-register-per-hour",
        value_name = "RATE_LIMIT_REGISTER_PER_HOUR",
        env = "WARDEN_RATE_LIMIT_REGISTER_PER_HOUR",
        default_value_t = 10,
        global = true
    )]
    pub register_per_hour: u32,
}

impl RateLimitSettings {
    /// When limits are on, every rate and burst is positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        for (name, value) in [
            ("WARDEN_RATE_LIMIT_LOGIN_PER_MINUTE", self.login_per_minute),
            ("WARDEN_RATE_LIMIT_LOGIN_BURST", self.login_burst),
            (
                "WARDEN_RATE_LIMIT_SECOND_FACTOR_PER_MINUTE",
                self.second_factor_per_minute,
            ),
            (
                "WARDEN_RATE_LIMIT_SECOND_FACTOR_BURST",
                self.second_factor_burst,
            ),
            (
                "WARDEN_RATE_LIMIT_REGISTER_PER_HOUR",
                self.register_per_hour,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError(format!(
                    "{name} must be positive (set WARDEN_RATE_LIMIT_ENABLED=false to switch limits off)"
                )));
            }
        }
        Ok(())
    }

    /// Time to earn one Login token.
    pub fn login_period(&self) -> Duration {
        per(Duration::from_secs(60), self.login_per_minute)
    }

    /// Time to earn one second-factor token.
    pub fn second_factor_period(&self) -> Duration {
        per(Duration::from_secs(60), self.second_factor_per_minute)
    }

    /// Time to earn one Register token.
    pub fn register_period(&self) -> Duration {
        per(Duration::from_secs(3600), self.register_per_hour)
    }
}

/// `window` shared among `n` calls (a zero `n` counts as one, so switched-off
/// limits with zero rates still convert).
fn per(window: Duration, n: u32) -> Duration {
    window / n.max(1)
}
