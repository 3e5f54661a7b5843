//! From configuration to the settings of the use-cases and the layers:
//! config only parses and validates; assembly decides what it means.

use std::time::Duration;

use crate::config::Config;
use crate::domain::Settings;
use crate::domain::access_token::AccessTokenPolicy;
use crate::domain::budget::BudgetPolicy;
use crate::domain::password_policy::PasswordPolicy;
use crate::grpc::guard::{Bucket, GuardConfig, RateLimits};

/// The use-cases' settings.
pub(super) fn settings(config: &Config) -> Settings {
    let lockout = &config.lockout;
    Settings {
        session_ttl: config.sessions.ttl(),
        session_idle_timeout: config.sessions.idle_timeout(),
        challenge_ttl: config.sessions.challenge_ttl(),
        enrollment_ttl: config.totp.enrollment_ttl(),
        max_sessions_per_user: config.sessions.max_per_user,
        totp_issuer: config.totp.issuer.clone(),
        totp_skew: u64::from(config.totp.skew),
        password_policy: PasswordPolicy {
            min_chars: config.passwords.min_length,
        },
        budget: BudgetPolicy {
            threshold: lockout.threshold,
            lock: lockout.duration(),
            max_lock: lockout.max_duration(),
            // No credential check outlives the per-call time limit, so three
            // of them is ample for a live call and short for a dead one.
            lease: Duration::from_secs(config.server.request_timeout_secs.saturating_mul(3)),
        },
        access_tokens: AccessTokenPolicy {
            issuer: config.signing.token_issuer.clone(),
            audience: config.signing.audience().map(str::to_owned),
            ttl: config.signing.access_token_ttl(),
        },
    }
}

/// The guard layer's settings.
pub(super) fn guard_config(config: &Config) -> GuardConfig {
    let limits = &config.rate_limits;
    GuardConfig {
        rate_limits: limits.enabled.then(|| RateLimits {
            login: Bucket {
                period: limits.login_period(),
                burst: limits.login_burst,
            },
            second_factor: Bucket {
                period: limits.second_factor_period(),
                burst: limits.second_factor_burst,
            },
            register: Bucket {
                period: limits.register_period(),
                burst: limits.register_per_hour,
            },
        }),
        max_in_flight: config.server.max_in_flight,
        request_timeout: config.server.request_timeout(),
        body_timeout: config.server.request_body_timeout(),
    }
}

/// The TLS files, when both the certificate and the key are set.
pub(super) fn tls_files(config: &Config) -> Option<crate::tls::TlsFiles> {
    let server = &config.server;
    Some(crate::tls::TlsFiles {
        cert: server.tls_cert_file.clone()?,
        key: server.tls_key_file.clone()?,
        client_ca: server.tls_client_ca_file.clone(),
    })
}
