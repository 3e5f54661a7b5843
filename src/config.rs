//! Configuration: every setting is a flag with a `WARDEN_*` environment twin,
//! parsed once at start and validated before anything else happens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::grpc::client_address::Cidr;

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

/// A setting that makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks cross-field rules once at start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.to_owned()));
        if self.session_ttl_secs == 0 || self.session_idle_timeout_secs == 0 {
            return fail(
                "WARDEN_SESSION_TTL_SECS and WARDEN_SESSION_IDLE_TIMEOUT_SECS must be positive",
            );
        }
        if self.challenge_ttl_secs == 0 || self.enrollment_ttl_secs == 0 {
            return fail(
                "WARDEN_CHALLENGE_TTL_SECS and WARDEN_ENROLLMENT_TTL_SECS must be positive",
            );
        }
        if self.max_sessions_per_user == 0 {
            return fail("WARDEN_MAX_SESSIONS_PER_USER must be at least 1");
        }
        if self.lockout_threshold == 0 || self.lockout_duration_secs == 0 {
            return fail(
                "WARDEN_LOCKOUT_THRESHOLD and WARDEN_LOCKOUT_DURATION_SECS must be positive",
            );
        }
        if self.lockout_max_duration_secs < self.lockout_duration_secs {
            return fail(
                "WARDEN_LOCKOUT_MAX_DURATION_SECS must be at least WARDEN_LOCKOUT_DURATION_SECS",
            );
        }
        if self.totp_issuer.is_empty()
            || self.totp_issuer.contains(':')
            || self.totp_issuer.len() > 64
        {
            return fail("WARDEN_TOTP_ISSUER must be 1-64 characters without ':'");
        }
        if self.totp_skew > 10 {
            return fail("WARDEN_TOTP_SKEW must be at most 10");
        }
        if !(1..=128).contains(&self.password_min_length) {
            return fail("WARDEN_PASSWORD_MIN_LENGTH must be between 1 and 128");
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1)
            || self.argon2_iterations == 0
            || self.argon2_parallelism == 0
        {
            return fail("argon2 parameters are out of range");
        }
        if self.db_max_connections == 0 || self.housekeeping_interval_secs == 0 {
            return fail(
                "WARDEN_DB_MAX_CONNECTIONS and WARDEN_HOUSEKEEPING_INTERVAL_SECS must be positive",
            );
        }
        if self.rate_limit_enabled
            && [
                self.rate_limit_login_per_minute,
                self.rate_limit_login_burst,
                self.rate_limit_second_factor_per_minute,
                self.rate_limit_second_factor_burst,
                self.rate_limit_register_per_hour,
            ]
            .contains(&0)
        {
            return fail(
                "rate limits and bursts must be positive (set WARDEN_RATE_LIMIT_ENABLED=false to switch limits off)",
            );
        }
        if self.request_timeout_secs == 0 || self.max_in_flight == 0 {
            return fail("WARDEN_REQUEST_TIMEOUT_SECS and WARDEN_MAX_IN_FLIGHT must be positive");
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
        }
    }
}
