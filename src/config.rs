//! Configuration: every setting is a flag with a `WARDEN_*` environment twin,
//! parsed once at start and validated before anything else happens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::net::Cidr;

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

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s.to_owned()))
}

/// All settings. Durations are whole seconds.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "WARDEN_LISTEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen: SocketAddr,
    /// Database URL: `sqlite://FILE?mode=rwc` or `postgres://…`.
    #[arg(
        long,
        env = "WARDEN_DATABASE_URL",
        default_value = "sqlite://warden.db?mode=rwc",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Run migrations at start-up.
    #[arg(long, env = "WARDEN_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,
    /// TOTP encryption keys: `id:base64(32 bytes)[,id:…]`.
    #[arg(long, env = "WARDEN_KEYS", value_parser = secret, global = true, hide_env_values = true)]
    pub keys: Option<SecretString>,
    /// File holding the `WARDEN_KEYS` value.
    #[arg(long, env = "WARDEN_KEYS_FILE", global = true)]
    pub keys_file: Option<PathBuf>,
    /// Id of the key new ciphertexts use (default: the first key).
    #[arg(long, env = "WARDEN_PRIMARY_KEY_ID", global = true)]
    pub primary_key_id: Option<String>,
    /// Token hashing key: base64(32 bytes).
    #[arg(long, env = "WARDEN_TOKEN_KEY", value_parser = secret, global = true, hide_env_values = true)]
    pub token_key: Option<SecretString>,
    /// File holding the `WARDEN_TOKEN_KEY` value.
    #[arg(long, env = "WARDEN_TOKEN_KEY_FILE", global = true)]
    pub token_key_file: Option<PathBuf>,
    /// Absolute session lifetime.
    #[arg(
        long,
        env = "WARDEN_SESSION_TTL_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub session_ttl_secs: u64,
    /// Session idle timeout.
    #[arg(
        long,
        env = "WARDEN_SESSION_IDLE_TIMEOUT_SECS",
        default_value_t = 3_600,
        global = true
    )]
    pub session_idle_timeout_secs: u64,
    /// Live sessions per user; one more ends the oldest.
    #[arg(
        long,
        env = "WARDEN_MAX_SESSIONS_PER_USER",
        default_value_t = 100,
        global = true
    )]
    pub max_sessions_per_user: u32,
    /// Login challenge lifetime.
    #[arg(
        long,
        env = "WARDEN_CHALLENGE_TTL_SECS",
        default_value_t = 300,
        global = true
    )]
    pub challenge_ttl_secs: u64,
    /// Pending TOTP enrolment lifetime.
    #[arg(
        long,
        env = "WARDEN_ENROLLMENT_TTL_SECS",
        default_value_t = 600,
        global = true
    )]
    pub enrollment_ttl_secs: u64,
    /// Failures that lock an account name.
    #[arg(
        long,
        env = "WARDEN_LOCKOUT_THRESHOLD",
        default_value_t = 5,
        global = true
    )]
    pub lockout_threshold: u32,
    /// Lock length (second-factor locks double from here).
    #[arg(
        long,
        env = "WARDEN_LOCKOUT_DURATION_SECS",
        default_value_t = 900,
        global = true
    )]
    pub lockout_duration_secs: u64,
    /// Longest second-factor lock.
    #[arg(
        long,
        env = "WARDEN_LOCKOUT_MAX_DURATION_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub lockout_max_duration_secs: u64,
    /// Issuer shown in authenticator apps (no ':').
    #[arg(
        long,
        env = "WARDEN_TOTP_ISSUER",
        default_value = "Warden",
        global = true
    )]
    pub totp_issuer: String,
    /// TOTP steps accepted either side of now.
    #[arg(long, env = "WARDEN_TOTP_SKEW", default_value_t = 1, global = true)]
    pub totp_skew: u8,
    /// Minimum new-password length (NIST SP 800-63B-4 asks for 15 where the
    /// password is the only factor).
    #[arg(
        long,
        env = "WARDEN_PASSWORD_MIN_LENGTH",
        default_value_t = 8,
        global = true
    )]
    pub password_min_length: usize,
    /// Argon2id memory cost in KiB.
    #[arg(
        long,
        env = "WARDEN_ARGON2_MEMORY_KIB",
        default_value_t = 19_456,
        global = true
    )]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    #[arg(
        long,
        env = "WARDEN_ARGON2_ITERATIONS",
        default_value_t = 2,
        global = true
    )]
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    #[arg(
        long,
        env = "WARDEN_ARGON2_PARALLELISM",
        default_value_t = 1,
        global = true
    )]
    pub argon2_parallelism: u32,
    /// Hashes computed at once (default: CPU count).
    #[arg(long, env = "WARDEN_HASH_CONCURRENCY", global = true)]
    pub hash_concurrency: Option<usize>,
    /// Hashing jobs allowed to wait; beyond this calls get UNAVAILABLE OVERLOADED.
    #[arg(long, env = "WARDEN_HASH_QUEUE", default_value_t = 64, global = true)]
    pub hash_queue: usize,
    /// Database pool size.
    #[arg(
        long,
        env = "WARDEN_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,
    /// Time in-flight calls get to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "WARDEN_SHUTDOWN_GRACE_SECS",
        default_value_t = 20,
        global = true
    )]
    pub shutdown_grace_secs: u64,
    /// Interval between housekeeping sweeps.
    #[arg(
        long,
        env = "WARDEN_HOUSEKEEPING_INTERVAL_SECS",
        default_value_t = 60,
        global = true
    )]
    pub housekeeping_interval_secs: u64,
    /// Per-IP rate limits on Login, the second-factor and step-up calls, and Register.
    #[arg(long, env = "WARDEN_RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub rate_limit_enabled: bool,
    /// Login calls per minute per address.
    #[arg(
        long,
        env = "WARDEN_RATE_LIMIT_LOGIN_PER_MINUTE",
        default_value_t = 5,
        global = true
    )]
    pub rate_limit_login_per_minute: u32,
    /// Login calls an address may save up.
    #[arg(
        long,
        env = "WARDEN_RATE_LIMIT_LOGIN_BURST",
        default_value_t = 5,
        global = true
    )]
    pub rate_limit_login_burst: u32,
    /// Second-factor and step-up calls per minute per address.
    #[arg(
        long,
        env = "WARDEN_RATE_LIMIT_SECOND_FACTOR_PER_MINUTE",
        default_value_t = 5,
        global = true
    )]
    pub rate_limit_second_factor_per_minute: u32,
    /// Second-factor and step-up calls an address may save up.
    #[arg(
        long,
        env = "WARDEN_RATE_LIMIT_SECOND_FACTOR_BURST",
        default_value_t = 5,
        global = true
    )]
    pub rate_limit_second_factor_burst: u32,
    /// Register calls per hour per address (also the burst).
    #[arg(
        long,
        env = "WARDEN_RATE_LIMIT_REGISTER_PER_HOUR",
        default_value_t = 10,
        global = true
    )]
    pub rate_limit_register_per_hour: u32,
    /// Proxies (CIDR list) whose `x-forwarded-for` is believed.
    #[arg(
        long,
        env = "WARDEN_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<Cidr>,
    /// Per-call time limit.
    #[arg(
        long,
        env = "WARDEN_REQUEST_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub request_timeout_secs: u64,
    /// How long a call may take to deliver its request message; until it
    /// has, it holds no in-flight slot. Past this it gets DEADLINE_EXCEEDED.
    #[arg(
        long,
        env = "WARDEN_REQUEST_BODY_TIMEOUT_SECS",
        default_value_t = 5,
        global = true
    )]
    pub request_body_timeout_secs: u64,
    /// AuthService calls in flight before new ones get UNAVAILABLE OVERLOADED.
    #[arg(
        long,
        env = "WARDEN_MAX_IN_FLIGHT",
        default_value_t = 1024,
        global = true
    )]
    pub max_in_flight: usize,
    /// OTLP/gRPC endpoint for traces; unset means no exporter runs.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// Log format; the level comes from `RUST_LOG`.
    #[arg(long, env = "WARDEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
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

/// The longest operational interval (time limits, grace period, sweeps): one
/// hour for time limits, one day for sweeps. Timers this long are harmless to
/// tokio; anything longer is a typo.
const MAX_TIME_LIMIT_SECS: u64 = 3_600;
const MAX_SWEEP_INTERVAL_SECS: u64 = 86_400;

/// Caps on counts: each far above any real deployment, and low enough that
/// the sums and products built from them (semaphore permits, `concurrency +
/// queue`, `i32` columns) cannot overflow.
const MAX_SESSIONS_PER_USER: u32 = 100_000;
const MAX_LOCKOUT_THRESHOLD: u32 = 1_000_000;
const MAX_ARGON2_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ARGON2_ITERATIONS: u32 = 1_000;
const MAX_ARGON2_PARALLELISM: u32 = 64;
const MAX_HASH_QUEUE: usize = 1_000_000;
const MAX_DB_CONNECTIONS: u32 = 10_000;
const MAX_IN_FLIGHT: usize = 1_000_000;

/// The CPUs this process may use (its cgroup or affinity limit), or 1 when
/// that cannot be read.
pub fn cpu_limit() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
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

impl Config {
    /// Checks every numeric setting's range and the cross-field rules, once
    /// at start, before anything is opened. Every refusal names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.to_owned()));
        for (name, value) in [
            ("WARDEN_SESSION_TTL_SECS", self.session_ttl_secs),
            (
                "WARDEN_SESSION_IDLE_TIMEOUT_SECS",
                self.session_idle_timeout_secs,
            ),
            ("WARDEN_CHALLENGE_TTL_SECS", self.challenge_ttl_secs),
            ("WARDEN_ENROLLMENT_TTL_SECS", self.enrollment_ttl_secs),
            ("WARDEN_LOCKOUT_DURATION_SECS", self.lockout_duration_secs),
        ] {
            within(name, value, 1, MAX_LIFETIME_SECS)?;
        }
        within(
            "WARDEN_LOCKOUT_MAX_DURATION_SECS",
            self.lockout_max_duration_secs,
            self.lockout_duration_secs,
            MAX_LIFETIME_SECS,
        )?;
        within(
            "WARDEN_REQUEST_TIMEOUT_SECS",
            self.request_timeout_secs,
            1,
            MAX_TIME_LIMIT_SECS,
        )?;
        within(
            "WARDEN_REQUEST_BODY_TIMEOUT_SECS",
            self.request_body_timeout_secs,
            1,
            MAX_TIME_LIMIT_SECS,
        )?;
        // Zero is allowed: stop at once without waiting for calls.
        within(
            "WARDEN_SHUTDOWN_GRACE_SECS",
            self.shutdown_grace_secs,
            0,
            MAX_TIME_LIMIT_SECS,
        )?;
        within(
            "WARDEN_HOUSEKEEPING_INTERVAL_SECS",
            self.housekeeping_interval_secs,
            1,
            MAX_SWEEP_INTERVAL_SECS,
        )?;
        within(
            "WARDEN_MAX_SESSIONS_PER_USER",
            self.max_sessions_per_user,
            1,
            MAX_SESSIONS_PER_USER,
        )?;
        within(
            "WARDEN_LOCKOUT_THRESHOLD",
            self.lockout_threshold,
            1,
            MAX_LOCKOUT_THRESHOLD,
        )?;
        within("WARDEN_TOTP_SKEW", self.totp_skew, 0, 10)?;
        within(
            "WARDEN_PASSWORD_MIN_LENGTH",
            self.password_min_length,
            1,
            128,
        )?;
        within(
            "WARDEN_ARGON2_PARALLELISM",
            self.argon2_parallelism,
            1,
            MAX_ARGON2_PARALLELISM,
        )?;
        // argon2 needs 8 KiB per lane; parallelism is capped above, so the
        // product cannot overflow.
        within(
            "WARDEN_ARGON2_MEMORY_KIB",
            self.argon2_memory_kib,
            8 * self.argon2_parallelism,
            MAX_ARGON2_MEMORY_KIB,
        )?;
        within(
            "WARDEN_ARGON2_ITERATIONS",
            self.argon2_iterations,
            1,
            MAX_ARGON2_ITERATIONS,
        )?;
        if let Some(concurrency) = self.hash_concurrency {
            // More hashing threads than CPUs only adds memory, not speed.
            within("WARDEN_HASH_CONCURRENCY", concurrency, 1, cpu_limit())?;
        }
        within("WARDEN_HASH_QUEUE", self.hash_queue, 1, MAX_HASH_QUEUE)?;
        within(
            "WARDEN_DB_MAX_CONNECTIONS",
            self.db_max_connections,
            1,
            MAX_DB_CONNECTIONS,
        )?;
        within("WARDEN_MAX_IN_FLIGHT", self.max_in_flight, 1, MAX_IN_FLIGHT)?;
        if self.rate_limit_enabled {
            for (name, value) in [
                (
                    "WARDEN_RATE_LIMIT_LOGIN_PER_MINUTE",
                    self.rate_limit_login_per_minute,
                ),
                ("WARDEN_RATE_LIMIT_LOGIN_BURST", self.rate_limit_login_burst),
                (
                    "WARDEN_RATE_LIMIT_SECOND_FACTOR_PER_MINUTE",
                    self.rate_limit_second_factor_per_minute,
                ),
                (
                    "WARDEN_RATE_LIMIT_SECOND_FACTOR_BURST",
                    self.rate_limit_second_factor_burst,
                ),
                (
                    "WARDEN_RATE_LIMIT_REGISTER_PER_HOUR",
                    self.rate_limit_register_per_hour,
                ),
            ] {
                if value == 0 {
                    return Err(ConfigError(format!(
                        "{name} must be positive (set WARDEN_RATE_LIMIT_ENABLED=false to switch limits off)"
                    )));
                }
            }
        }
        if self.totp_issuer.is_empty()
            || self.totp_issuer.contains(':')
            || self.totp_issuer.len() > 64
        {
            return fail("WARDEN_TOTP_ISSUER must be 1-64 characters without ':'");
        }
        if self.keys.is_some() && self.keys_file.is_some() {
            return fail("set WARDEN_KEYS or WARDEN_KEYS_FILE, not both");
        }
        if self.token_key.is_some() && self.token_key_file.is_some() {
            return fail("set WARDEN_TOKEN_KEY or WARDEN_TOKEN_KEY_FILE, not both");
        }
        if crate::storage::Backend::of_url(&self.database_url).is_none() {
            return fail(
                "WARDEN_DATABASE_URL must start with sqlite:, postgres:// or postgresql://",
            );
        }
        Ok(())
    }
}

impl Config {
    /// The guard layer's settings.
    pub fn guard(&self) -> crate::grpc::guard::GuardConfig {
        use crate::grpc::guard::{Bucket, GuardConfig, RateLimits};
        let per_minute = |n: u32| Duration::from_secs(60) / n.max(1);
        GuardConfig {
            rate_limits: self.rate_limit_enabled.then(|| RateLimits {
                login: Bucket {
                    period: per_minute(self.rate_limit_login_per_minute),
                    burst: self.rate_limit_login_burst,
                },
                second_factor: Bucket {
                    period: per_minute(self.rate_limit_second_factor_per_minute),
                    burst: self.rate_limit_second_factor_burst,
                },
                register: Bucket {
                    period: Duration::from_secs(3600) / self.rate_limit_register_per_hour.max(1),
                    burst: self.rate_limit_register_per_hour,
                },
            }),
            max_in_flight: self.max_in_flight,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            body_timeout: Duration::from_secs(self.request_body_timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Config, clap::Error> {
        let mut argv = vec!["warden"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| cli.config)
    }

    #[test]
    fn the_defaults_are_valid() -> Result<(), Box<dyn std::error::Error>> {
        parsed(&[])?.validate()?;
        Ok(())
    }

    #[test]
    fn the_longest_lifetime_fits_time_arithmetic_in_both_directions() {
        let longest = time::Duration::try_from(Duration::from_secs(MAX_LIFETIME_SECS));
        // Expiries are `now + ttl` and cut-offs `now - ttl`; both must stay
        // representable for any clock this side of year 9000.
        let late = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(7000 * 365);
        let ok = longest.is_ok_and(|d| {
            late.checked_add(d).is_some()
                && time::OffsetDateTime::UNIX_EPOCH.checked_sub(d).is_some()
                && d.checked_mul(2).is_some()
        });
        assert!(ok);
    }

    #[test]
    fn each_oversized_or_zero_setting_is_refused_by_name() -> Result<(), clap::Error> {
        let too_long = (MAX_LIFETIME_SECS + 1).to_string();
        let cases: Vec<(&str, &str)> = vec![
            ("--session-ttl-secs", "1000000000000000"),
            ("--session-idle-timeout-secs", &too_long),
            ("--challenge-ttl-secs", &too_long),
            ("--enrollment-ttl-secs", &too_long),
            ("--lockout-duration-secs", &too_long),
            ("--lockout-max-duration-secs", &too_long),
            ("--request-timeout-secs", "0"),
            ("--request-body-timeout-secs", "100000"),
            ("--shutdown-grace-secs", "100000"),
            ("--housekeeping-interval-secs", "0"),
            ("--max-sessions-per-user", "0"),
            ("--lockout-threshold", "4000000000"),
            ("--argon2-parallelism", "4000000000"),
            ("--argon2-memory-kib", "4294967295"),
            ("--argon2-iterations", "0"),
            ("--hash-concurrency", "0"),
            ("--hash-queue", "18446744073709551615"),
            ("--db-max-connections", "0"),
            ("--max-in-flight", "18446744073709551615"),
            ("--rate-limit-register-per-hour", "0"),
        ];
        for (flag, value) in cases {
            let config = parsed(&[flag, value])?;
            let name = format!(
                "WARDEN_{}",
                flag.trim_start_matches("--")
                    .replace('-', "_")
                    .to_uppercase()
            );
            let refusal = config.validate().map_err(|e| e.to_string());
            assert!(
                refusal.as_ref().is_err_and(|m| m.contains(&name)),
                "{flag}={value}: {refusal:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn hash_concurrency_above_the_cpu_limit_is_refused() -> Result<(), clap::Error> {
        let above = (cpu_limit() + 1).to_string();
        let at = cpu_limit().to_string();

        let refused = parsed(&["--hash-concurrency", &above])?.validate();
        let accepted = parsed(&["--hash-concurrency", &at])?.validate();

        assert!(refused.is_err_and(|e| e.to_string().contains("WARDEN_HASH_CONCURRENCY")));
        assert!(accepted.is_ok());
        Ok(())
    }
}
