//! The per-address rate limits: tower_governor's GCRA limiters, one per
//! group of methods (see `Rpc::limit`), keyed by the end user.

use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use tonic::Code;
use tower_governor::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::domain::audit::{self, AuditEvent, Outcome};
use crate::grpc::client_address::{EndUser, RateKey};
use crate::grpc::rpc::Limit;
use crate::grpc::status;

/// Reads the trace layer's `EndUser` as the rate-limit key. The guard
/// asks the limiters itself, so this only fixes the key type; it works as
/// an extractor too, should the limiters ever run as a layer of their own.
#[derive(Debug, Clone, Copy)]
pub struct EndUserKey;

impl KeyExtractor for EndUserKey {
    type Key = RateKey;

    fn extract<T>(&self, request: &http::Request<T>) -> Result<RateKey, GovernorError> {
        request
            .extensions()
            .get::<EndUser>()
            .map(|user| user.rate_key())
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// A GCRA limiter keyed by `RateKey`.
type Limiter = GovernorConfig<
    EndUserKey,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
>;

/// A token bucket: one token every `period`, up to `burst` saved.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    /// Time to earn one token.
    pub period: Duration,
    /// Tokens that can be saved up.
    pub burst: u32,
}

/// The three limited groups.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Login.
    pub login: Bucket,
    /// VerifyTotp, UseRecoveryCode and the step-up calls (EnrollTotp included).
    pub second_factor: Bucket,
    /// Register.
    pub register: Bucket,
}

/// A limit that cannot be built (zero period or burst).
#[derive(Debug, thiserror::Error)]
#[error("rate limits need a positive rate and burst")]
pub struct LimitError;

/// One limiter per limited group.
pub(super) struct Limiters {
    login: Limiter,
    second_factor: Limiter,
    register: Limiter,
}

fn limiter(bucket: Bucket) -> Result<Limiter, LimitError> {
    GovernorConfigBuilder::default()
        .key_extractor(EndUserKey)
        .period(bucket.period)
        .burst_size(bucket.burst)
        .finish()
        .ok_or(LimitError)
}

impl Limiters {
    /// Builds the three limiters.
    pub(super) fn new(limits: RateLimits) -> Result<Self, LimitError> {
        Ok(Self {
            login: limiter(limits.login)?,
            second_factor: limiter(limits.second_factor)?,
            register: limiter(limits.register)?,
        })
    }

    /// Refuses the call when its group's bucket for `client` is empty.
    pub(super) fn check(&self, limit: Limit, client: RateKey) -> Option<tonic::Status> {
        let limiter = match limit {
            Limit::Login => &self.login,
            Limit::SecondFactor => &self.second_factor,
            Limit::Register => &self.register,
            Limit::Unlimited => return None,
        };
        let not_until = limiter.limiter().check_key(&client).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        audit::record(AuditEvent::RateLimited, Outcome::Failure, None);
        // Round up: a client retrying after the given wait must succeed.
        let wait = Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        Some(status::with_retry(
            Code::ResourceExhausted,
            "RATE_LIMITED",
            "too many requests; slow down",
            Some(wait),
        ))
    }

    /// Forgets idle keys, so memory stays bounded under address churn.
    pub(super) fn retain_recent(&self) {
        for limiter in [&self.login, &self.second_factor, &self.register] {
            limiter.limiter().retain_recent();
            limiter.limiter().shrink_to_fit();
        }
    }
}
