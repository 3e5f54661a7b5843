//! The tower layer in front of every service: works out the end user's
//! address, applies the per-IP rate limits (tower_governor's GCRA limiters,
//! one per method group), caps requests in flight, bounds each call's time,
//! and makes sure no status Warden must never send (UNKNOWN, OUT_OF_RANGE)
//! leaves the server.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use tokio::sync::Semaphore;
use tonic::Code;
use tower::{Layer, Service};
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::PeerIpKeyExtractor;

use super::client_address::{ClientAddress, rate_key};
use super::status;
use crate::domain::audit::{self, AuditEvent, Outcome};

/// A keyed GCRA limiter. Only its `IpAddr` key type matters: the guard
/// computes the key itself (`rate_key` of the trace layer's
/// `ClientAddress`), so the extractor named here is never called.
type Limiter = GovernorConfig<
    PeerIpKeyExtractor,
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

/// Guard settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Per-IP limits, or `None` when switched off.
    pub rate_limits: Option<RateLimits>,
    /// AuthService calls in flight before new ones get OVERLOADED.
    pub max_in_flight: usize,
    /// Per-call time limit.
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Login,
    SecondFactor,
    Register,
}

const AUTH_PREFIX: &str = "/warden.v1.AuthService/";

fn group_of(path: &str) -> Option<Group> {
    match path.strip_prefix(AUTH_PREFIX)? {
        "Login" => Some(Group::Login),
        "Register" => Some(Group::Register),
        "VerifyTotp"
        | "UseRecoveryCode"
        | "EnrollTotp"
        | "DisableTotp"
        | "RegenerateRecoveryCodes"
        | "ChangePassword"
        | "DeleteAccount" => Some(Group::SecondFactor),
        _ => None,
    }
}

struct Limiters {
    login: Limiter,
    second_factor: Limiter,
    register: Limiter,
}

fn limiter(bucket: Bucket) -> Option<Limiter> {
    GovernorConfigBuilder::default()
        .period(bucket.period)
        .burst_size(bucket.burst)
        .finish()
}

struct State {
    limiters: Option<Limiters>,
    in_flight: Arc<Semaphore>,
    timeout: Duration,
}

/// The guard layer.
#[derive(Clone)]
pub struct GuardLayer {
    state: Arc<State>,
}

/// A limit that cannot be built (zero period or burst).
#[derive(Debug, thiserror::Error)]
#[error("rate limits need a positive rate and burst")]
pub struct LimitError;

impl GuardLayer {
    /// Builds the layer.
    pub fn new(config: GuardConfig) -> Result<Self, LimitError> {
        let limiters = match config.rate_limits {
            None => None,
            Some(l) => Some(Limiters {
                login: limiter(l.login).ok_or(LimitError)?,
                second_factor: limiter(l.second_factor).ok_or(LimitError)?,
                register: limiter(l.register).ok_or(LimitError)?,
            }),
        };
        Ok(Self {
            state: Arc::new(State {
                limiters,
                in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                timeout: config.request_timeout,
            }),
        })
    }

    /// Forgets idle limiter keys, so memory stays bounded under address churn.
    pub fn retain_recent(&self) {
        if let Some(l) = &self.state.limiters {
            for limiter in [&l.login, &l.second_factor, &l.register] {
                limiter.limiter().retain_recent();
                limiter.limiter().shrink_to_fit();
            }
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The guard service.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    state: Arc<State>,
}

type Response = http::Response<tonic::body::Body>;
type BoxFuture<E> = Pin<Box<dyn std::future::Future<Output = Result<Response, E>> + Send>>;

impl State {
    /// Refuses the call when its group's bucket for `client` is empty.
    fn check_rate(&self, group: Group, client: IpAddr) -> Option<tonic::Status> {
        let limiters = self.limiters.as_ref()?;
        let limiter = match group {
            Group::Login => &limiters.login,
            Group::SecondFactor => &limiters.second_factor,
            Group::Register => &limiters.register,
        };
        let not_until = limiter.limiter().check_key(&rate_key(client)).err()?;
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
}

/// Replaces statuses Warden never answers with ones from its contract.
fn sanitize(response: Response) -> Response {
    let replacement = match status::code_of(&response) {
        // Oversized messages: tonic says OUT_OF_RANGE.
        Code::OutOfRange => Some(status::invalid_request(
            "request",
            "request is malformed or too large",
        )),
        Code::Unknown => Some(status::internal()),
        _ => None,
    };
    match replacement {
        Some(status) => status.into_http(),
        None => response,
    }
}

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();

        let client = request.extensions().get::<ClientAddress>().map(|a| a.0);
        let path = request.uri().path();
        // Health and reflection are never limited, capped or timed out.
        if !path.starts_with(AUTH_PREFIX) {
            return Box::pin(inner.call(request));
        }
        let group = group_of(path);
        let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
            let busy = status::with_retry(
                Code::Unavailable,
                "OVERLOADED",
                "server is busy; retry shortly",
                Some(Duration::from_secs(1)),
            );
            return Box::pin(std::future::ready(Ok(busy.into_http())));
        };
        let timeout = state.timeout;
        Box::pin(async move {
            let _permit = permit;
            // Checked inside the future so the audit event lands in the
            // call's collection (see `trace`).
            if let (Some(group), Some(client)) = (group, client)
                && let Some(refusal) = state.check_rate(group, client)
            {
                return Ok(refusal.into_http());
            }
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(result) => result.map(sanitize),
                Err(_) => {
                    tracing::warn!("call exceeded the server time limit");
                    Ok(status::with_reason(
                        Code::DeadlineExceeded,
                        "TIMEOUT",
                        "the call took too long",
                    )
                    .into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt as _;

    fn config(max_in_flight: usize, timeout: Duration) -> GuardConfig {
        GuardConfig {
            rate_limits: None,
            max_in_flight,
            request_timeout: timeout,
        }
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder()
            .uri(path)
            .body(())
            .unwrap_or_default()
    }

    fn reason(response: &Response) -> (Option<String>, String) {
        let status = tonic::Status::from_header_map(response.headers());
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let reason = status
            .and_then(|s| s.get_error_details().error_info().map(|i| i.reason.clone()))
            .unwrap_or_default();
        (code, reason)
    }

    #[tokio::test]
    async fn calls_past_the_time_limit_get_deadline_exceeded_timeout()
    -> Result<(), std::convert::Infallible> {
        let layer =
            GuardLayer::new(config(8, Duration::from_millis(20))).map_err(|_| unreachable!())?;
        let mut guard = layer.layer(tower::service_fn(|_: http::Request<()>| {
            std::future::pending::<Result<Response, std::convert::Infallible>>()
        }));

        let response = guard.call(request("/warden.v1.AuthService/Login")).await?;

        assert_eq!(reason(&response), (Some("4".into()), "TIMEOUT".into()));
        Ok(())
    }

    #[tokio::test]
    async fn calls_beyond_the_in_flight_cap_are_refused_at_once()
    -> Result<(), std::convert::Infallible> {
        let layer =
            GuardLayer::new(config(1, Duration::from_secs(60))).map_err(|_| unreachable!())?;
        let mut guard = layer.layer(tower::service_fn(|_: http::Request<()>| {
            std::future::pending::<Result<Response, std::convert::Infallible>>()
        }));
        let _first = tokio::spawn(guard.call(request("/warden.v1.AuthService/Login")));
        tokio::task::yield_now().await;
        while layer.state.in_flight.available_permits() > 0 {
            tokio::task::yield_now().await;
        }

        let second = guard.call(request("/warden.v1.AuthService/Login")).await?;

        assert_eq!(reason(&second), (Some("14".into()), "OVERLOADED".into()));
        Ok(())
    }

    #[tokio::test]
    async fn out_of_range_and_unknown_never_leave_the_server()
    -> Result<(), std::convert::Infallible> {
        let layer =
            GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
        for (code, expected) in [(Code::OutOfRange, "3"), (Code::Unknown, "13")] {
            let mut guard = layer.layer(tower::service_fn(move |_: http::Request<()>| {
                std::future::ready(Ok::<_, std::convert::Infallible>(
                    tonic::Status::new(code, "raw").into_http(),
                ))
            }));
            let response = guard.call(request("/warden.v1.AuthService/Login")).await?;
            assert_eq!(reason(&response).0.as_deref(), Some(expected));
        }
        Ok(())
    }
}
