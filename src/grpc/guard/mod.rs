//! The tower layer in front of every service. For AuthService calls (and,
//! on the admin listener, AdminService calls, which have no rate limit) it
//! waits (bounded) for the request message before anything else, so a
//! stream that sends headers only holds nothing (`body`); then applies the
//! per-IP rate limits (`limits`), caps calls in flight, and bounds each
//! call's time, honouring the client's `grpc-timeout`. On every service it
//! refuses request encodings Warden does not speak and makes sure only the
//! contract's statuses leave the server (`statuses`).

mod body;
mod limits;
mod statuses;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::{Layer, Service};

pub use limits::{Bucket, EndUserKey, LimitError, RateLimits};

use super::admin;
use super::client_address::EndUser;
use super::rpc::{Limit, Method};
use limits::Limiters;
use statuses::{conform, overloaded, sanitize, timeout_status, unsupported_encoding};

/// Guard settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Per-IP limits, or `None` when switched off.
    pub rate_limits: Option<RateLimits>,
    /// AuthService calls in flight before new ones get OVERLOADED.
    pub max_in_flight: usize,
    /// Per-call time limit, counted once the request message has arrived.
    pub request_timeout: Duration,
    /// How long a call may take to deliver its request message.
    pub body_timeout: Duration,
}

/// The largest request message accepted, decoded (tonic's decoder is given
/// the same limit).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Which listener's calls a guard bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// AuthService on the main listener.
    Auth,
    /// AdminService on the admin listener: never rate limited, bounded
    /// only by its own in-flight cap and the time limits.
    Admin,
}

struct State {
    scope: Scope,
    limiters: Option<Limiters>,
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    body_timeout: Duration,
}

/// The guard layer.
#[derive(Clone)]
pub struct GuardLayer {
    state: Arc<State>,
}

impl GuardLayer {
    /// Builds the layer.
    pub fn new(config: GuardConfig) -> Result<Self, LimitError> {
        let limiters = config.rate_limits.map(Limiters::new).transpose()?;
        Ok(Self {
            state: Arc::new(State {
                scope: Scope::Auth,
                limiters,
                in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                timeout: config.request_timeout,
                body_timeout: config.body_timeout,
            }),
        })
    }

    /// The admin listener's guard: `max_in_flight` AdminService calls at
    /// once and the same time limits, no rate limits.
    pub fn admin(max_in_flight: usize, request_timeout: Duration, body_timeout: Duration) -> Self {
        Self {
            state: Arc::new(State {
                scope: Scope::Admin,
                limiters: None,
                in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
                timeout: request_timeout,
                body_timeout,
            }),
        }
    }

    /// Forgets idle limiter keys, so memory stays bounded under address churn.
    pub fn retain_recent(&self) {
        if let Some(limiters) = &self.state.limiters {
            limiters.retain_recent();
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
type Request = http::Request<tonic::body::Body>;
type BoxFuture<E> = Pin<Box<dyn std::future::Future<Output = Result<Response, E>> + Send>>;

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Read before anything else, here rather than in the future: tonic
        // started its own timer for the header just before this call.
        let start = Instant::now();
        // Take the service that was driven to readiness, leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();

        if let Some(refusal) = unsupported_encoding(request.headers()) {
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        let client = request
            .extensions()
            .get::<EndUser>()
            .map(|user| user.rate_key());
        // Health and reflection are never limited, capped or timed out.
        let path = request.uri().path();
        let limit = match state.scope {
            Scope::Auth => Method::from_path(path).map(Method::limit),
            Scope::Admin => admin::method_of(path).map(|_| Limit::Unlimited),
        };
        let Some(limit) = limit else {
            let call = inner.call(request);
            return Box::pin(async move { call.await.map(sanitize) });
        };
        let client_deadline = body::client_deadline(request.headers(), start);
        let body_deadline = {
            let own = start + state.body_timeout;
            client_deadline.map_or(own, |c| c.min(own))
        };
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // A stream that sends headers only waits here holding nothing:
            // no slot, no rate token; and not for longer than the deadline.
            let message = match tokio::time::timeout_at(body_deadline, body::read_body(body)).await
            {
                Ok(Ok(message)) => message,
                Ok(Err(refusal)) => return Ok(refusal.into_http()),
                Err(_) => {
                    tracing::debug!("request message did not arrive in time");
                    return Ok(timeout_status().into_http());
                }
            };
            let request =
                http::Request::from_parts(parts, tonic::body::Body::new(Full::new(message)));
            // Checked inside the future so the audit event lands in the
            // call's collection (see `trace`).
            if let Some(client) = client
                && let Some(limiters) = &state.limiters
                && let Some(refusal) = limiters.check(limit, client)
            {
                return Ok(refusal.into_http());
            }
            let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
                return Ok(overloaded().into_http());
            };
            let deadline = {
                let own = Instant::now() + state.timeout;
                client_deadline.map_or(own, |c| c.min(own))
            };
            match tokio::time::timeout_at(deadline, inner.call(request)).await {
                Ok(result) => result.map(conform),
                Err(_) => {
                    tracing::warn!("call exceeded its time limit");
                    Ok(timeout_status().into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
