//! The tower layer in front of every service. For AuthService calls it
//! waits (bounded) for the request message before anything else, so a
//! stream that sends headers only holds nothing; then applies the per-IP
//! rate limits (tower_governor's GCRA limiters, one per method group), caps
//! calls in flight, and bounds each call's time, honouring the client's
//! `grpc-timeout`. On every service it refuses request encodings Warden does
//! not speak and makes sure only the contract's statuses leave the server:
//! whatever tonic or the transport answer below the handlers is mapped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use governor::clock::{Clock as _, DefaultClock};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::Code;
use tonic_types::StatusExt as _;
use tower::{Layer, Service};
use tower_governor::GovernorError;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use super::client_address::{EndUser, RateKey};
use super::pb::auth_service_server::SERVICE_NAME;
use super::status;
use crate::domain::audit::{self, AuditEvent, Outcome};

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

/// A unary request body is one gRPC frame: a 5-byte prefix (compressed flag,
/// length) and the message.
const MAX_BODY_BYTES: usize = MAX_MESSAGE_BYTES + 5;

/// How an AuthService method is rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The Login bucket.
    Login,
    /// The bucket shared by the second factor and the step-up calls.
    SecondFactor,
    /// The Register bucket.
    Register,
    /// Never limited (the calls backends make on every request).
    Unlimited,
}

/// Every AuthService method and its rate-limit group. A unit test checks it
/// against the service descriptor the build generates, so a new RPC cannot
/// be left out and silently run unlimited.
pub const METHOD_LIMITS: [(&str, Limit); 12] = [
    ("Register", Limit::Register),
    ("Login", Limit::Login),
    ("EnrollTotp", Limit::SecondFactor),
    ("VerifyTotp", Limit::SecondFactor),
    ("UseRecoveryCode", Limit::SecondFactor),
    ("DisableTotp", Limit::SecondFactor),
    ("RegenerateRecoveryCodes", Limit::SecondFactor),
    ("ChangePassword", Limit::SecondFactor),
    ("DeleteAccount", Limit::SecondFactor),
    ("GetAccount", Limit::Unlimited),
    ("ValidateSession", Limit::Unlimited),
    ("Logout", Limit::Unlimited),
];

/// The method name of an AuthService path (`/warden.v1.AuthService/Login`).
fn auth_method(path: &str) -> Option<&str> {
    path.strip_prefix('/')?
        .strip_prefix(SERVICE_NAME)?
        .strip_prefix('/')
}

/// The group of an AuthService method. A name the table does not know
/// (there is no such RPC; the router refuses it) is limited like Login:
/// unknown must never mean unlimited.
fn limit_of(method: &str) -> Limit {
    METHOD_LIMITS
        .iter()
        .find(|(name, _)| *name == method)
        .map_or(Limit::Login, |(_, limit)| *limit)
}

struct Limiters {
    login: Limiter,
    second_factor: Limiter,
    register: Limiter,
}

fn limiter(bucket: Bucket) -> Option<Limiter> {
    GovernorConfigBuilder::default()
        .key_extractor(EndUserKey)
        .period(bucket.period)
        .burst_size(bucket.burst)
        .finish()
}

struct State {
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
                body_timeout: config.body_timeout,
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
    fn check_rate(&self, limit: Limit, client: RateKey) -> Option<tonic::Status> {
        let limiters = self.limiters.as_ref()?;
        let limiter = match limit {
            Limit::Login => &limiters.login,
            Limit::SecondFactor => &limiters.second_factor,
            Limit::Register => &limiters.register,
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
}

/// UNKNOWN and OUT_OF_RANGE, which Warden never answers, from any service.
fn never_sent(code: Code) -> Option<tonic::Status> {
    match code {
        // Oversized messages: tonic says OUT_OF_RANGE.
        Code::OutOfRange => Some(status::invalid_request(
            "request",
            "request is malformed or too large",
        )),
        Code::Unknown => Some(status::internal()),
        _ => None,
    }
}

/// Health and reflection keep their own protocols' statuses (probes expect
/// health's NOT_FOUND, grpcurl reflection's UNIMPLEMENTED), minus the two
/// codes Warden never sends.
fn sanitize(response: Response) -> Response {
    match never_sent(status::code_of(&response)) {
        Some(status) => status.into_http(),
        None => response,
    }
}

/// Whether `status` is one Warden's own code made: INTERNAL with the generic
/// message and nothing else, or a contract code carrying Warden's ErrorInfo.
fn is_wardens(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Ok => true,
        Code::Internal => status.message() == status::INTERNAL_MESSAGE,
        Code::InvalidArgument
        | Code::AlreadyExists
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::ResourceExhausted
        | Code::Unavailable
        | Code::DeadlineExceeded
        | Code::PermissionDenied
        | Code::NotFound => status
            .get_error_details()
            .error_info()
            .is_some_and(|info| info.domain == status::DOMAIN),
        Code::Cancelled
        | Code::Unknown
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss => false,
    }
}

/// The contract status standing in for one made below the handlers (by
/// tonic, hyper or h2), which may echo request values or carry library text.
fn replacement(code: Code) -> tonic::Status {
    match code {
        // Request-side faults: undecodable, oversized, cut short, or asking
        // for a method or form Warden does not serve.
        Code::InvalidArgument | Code::OutOfRange | Code::Cancelled | Code::Unimplemented => {
            status::invalid_request("request", "request is malformed, incomplete or unsupported")
        }
        Code::DeadlineExceeded => timeout_status(),
        Code::Unavailable | Code::ResourceExhausted => overloaded(),
        Code::Ok
        | Code::Unknown
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated
        | Code::NotFound => status::internal(),
    }
}

/// Makes an AuthService response obey the contract (see `replacement`).
fn conform(response: Response) -> Response {
    let code = status::code_of(&response);
    if code == Code::Ok {
        return response;
    }
    let ours = tonic::Status::from_header_map(response.headers()).is_some_and(|s| is_wardens(&s));
    if ours {
        return response;
    }
    // Only the code: the message may echo what the client sent.
    tracing::warn!(?code, "replaced a status made below the handlers");
    replacement(code).into_http()
}

fn overloaded() -> tonic::Status {
    status::with_retry(
        Code::Unavailable,
        "OVERLOADED",
        "server is busy; retry shortly",
        Some(Duration::from_secs(1)),
    )
}

fn timeout_status() -> tonic::Status {
    status::with_reason(Code::DeadlineExceeded, "TIMEOUT", "the call took too long")
}

/// Warden accepts uncompressed messages only. tonic would answer any other
/// `grpc-encoding` with UNIMPLEMENTED and the header's value in the message.
fn unsupported_encoding(headers: &http::HeaderMap) -> Option<Response> {
    let encoding = headers.get("grpc-encoding")?;
    if encoding.as_bytes() == b"identity" {
        return None;
    }
    let mut response: Response =
        status::invalid_request("grpc-encoding", "request compression is not supported")
            .into_http();
    response.headers_mut().insert(
        "grpc-accept-encoding",
        http::HeaderValue::from_static("identity"),
    );
    Some(response)
}

/// The client's `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit).
fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(split)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When the client's deadline ends the call, answered by the guard as
/// DEADLINE_EXCEEDED `TIMEOUT`. tonic's own timer for the same header runs
/// outside this layer and would answer CANCELLED with library text; ending a
/// little earlier than it makes sure Warden's answer is the one sent (tonic
/// polls the call before its timer, and both timers share tokio's clock).
fn client_deadline(headers: &http::HeaderMap, start: Instant) -> Option<Instant> {
    let timeout = client_timeout(headers)?;
    let margin = (timeout / 10).min(Duration::from_millis(5));
    start.checked_add(timeout.saturating_sub(margin))
}

/// Reads the whole (size-capped) request body, so that the call takes its
/// slot only once its message is here.
async fn read_body(body: tonic::body::Body) -> Result<Bytes, tonic::Status> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(status::invalid_request(
            "request",
            "request is malformed or too large",
        )),
        Err(e) => {
            // A reset or broken stream: the client has usually gone.
            tracing::debug!(error = %e, "request body did not arrive whole");
            Err(status::invalid_request(
                "request",
                "request is malformed, incomplete or unsupported",
            ))
        }
    }
}

type Request = http::Request<tonic::body::Body>;

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
        let Some(limit) = auth_method(request.uri().path()).map(limit_of) else {
            let call = inner.call(request);
            return Box::pin(async move { call.await.map(sanitize) });
        };
        let client_deadline = client_deadline(request.headers(), start);
        let body_deadline = {
            let own = start + state.body_timeout;
            client_deadline.map_or(own, |c| c.min(own))
        };
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // A stream that sends headers only waits here holding nothing:
            // no slot, no rate token; and not for longer than the deadline.
            let message = match tokio::time::timeout_at(body_deadline, read_body(body)).await {
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
                && let Some(refusal) = state.check_rate(limit, client)
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
mod tests {
    use super::*;
    use prost::Message as _;
    use std::convert::Infallible;

    fn config(max_in_flight: usize, timeout: Duration) -> GuardConfig {
        GuardConfig {
            rate_limits: None,
            max_in_flight,
            request_timeout: timeout,
            body_timeout: timeout,
        }
    }

    /// A unary request carrying one (empty) framed message.
    fn request(path: &str) -> Request {
        let framed = Bytes::from_static(&[0, 0, 0, 0, 0]);
        http::Request::builder()
            .uri(path)
            .body(tonic::body::Body::new(Full::new(framed)))
            .unwrap_or_default()
    }

    /// A request whose message never comes.
    fn headers_only(path: &str) -> Request {
        let never = http_body_util::StreamBody::new(futures_pending());
        http::Request::builder()
            .uri(path)
            .body(tonic::body::Body::new(never))
            .unwrap_or_default()
    }

    fn futures_pending()
    -> impl tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, Infallible>> + Send + 'static
    {
        tokio_stream::pending()
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

    fn pending_service()
    -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone {
        tower::service_fn(|_: Request| std::future::pending::<Result<Response, Infallible>>())
    }

    #[tokio::test]
    async fn calls_past_the_time_limit_get_deadline_exceeded_timeout() -> Result<(), Infallible> {
        let layer =
            GuardLayer::new(config(8, Duration::from_millis(20))).map_err(|_| unreachable!())?;
        let mut guard = layer.layer(pending_service());

        let response = guard.call(request("/warden.v1.AuthService/Login")).await?;

        assert_eq!(reason(&response), (Some("4".into()), "TIMEOUT".into()));
        Ok(())
    }

    #[tokio::test]
    async fn calls_beyond_the_in_flight_cap_are_refused_at_once() -> Result<(), Infallible> {
        let layer =
            GuardLayer::new(config(1, Duration::from_secs(60))).map_err(|_| unreachable!())?;
        let mut guard = layer.layer(pending_service());
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
    async fn a_stream_without_its_message_holds_no_slot_and_times_out() -> Result<(), Infallible> {
        let layer =
            GuardLayer::new(config(1, Duration::from_millis(50))).map_err(|_| unreachable!())?;
        let mut guard = layer.layer(tower::service_fn(|_: Request| {
            std::future::ready(Ok::<Response, Infallible>(http::Response::default()))
        }));
        let waiting = tokio::spawn(guard.call(headers_only("/warden.v1.AuthService/Login")));
        tokio::task::yield_now().await;

        let ordinary = guard.call(request("/warden.v1.AuthService/Login")).await?;
        let free = layer.state.in_flight.available_permits();
        let waited = waiting.await.map_err(|_| unreachable!())??;

        assert_eq!(status::code_of(&ordinary), Code::Ok);
        assert_eq!(free, 1);
        assert_eq!(reason(&waited), (Some("4".into()), "TIMEOUT".into()));
        Ok(())
    }

    #[tokio::test]
    async fn statuses_made_below_the_handlers_are_mapped_to_the_contract() -> Result<(), Infallible>
    {
        let layer =
            GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
        for (code, expected, reason_expected) in [
            (Code::OutOfRange, "3", "INVALID_REQUEST"),
            (Code::Unimplemented, "3", "INVALID_REQUEST"),
            (Code::Cancelled, "3", "INVALID_REQUEST"),
            (Code::Unknown, "13", ""),
            (Code::Internal, "13", ""),
            (Code::Unavailable, "14", "OVERLOADED"),
            (Code::DeadlineExceeded, "4", "TIMEOUT"),
            (Code::Unauthenticated, "13", ""),
        ] {
            let mut guard = layer.layer(tower::service_fn(move |_: Request| {
                std::future::ready(Ok::<_, Infallible>(
                    tonic::Status::new(code, "raw h2 text: gzip").into_http(),
                ))
            }));
            let response = guard.call(request("/warden.v1.AuthService/Login")).await?;
            let message = tonic::Status::from_header_map(response.headers())
                .map(|s| s.message().to_owned())
                .unwrap_or_default();
            assert_eq!(
                reason(&response),
                (Some(expected.into()), reason_expected.into()),
                "{code:?}"
            );
            assert!(!message.contains("gzip"), "{code:?}: {message}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn out_of_range_and_unknown_never_leave_health_either() -> Result<(), Infallible> {
        let layer =
            GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
        for (code, expected) in [
            (Code::OutOfRange, "3"),
            (Code::Unknown, "13"),
            (Code::NotFound, "5"),
        ] {
            let mut guard = layer.layer(tower::service_fn(move |_: Request| {
                std::future::ready(Ok::<_, Infallible>(
                    tonic::Status::new(code, "raw").into_http(),
                ))
            }));
            let response = guard.call(request("/grpc.health.v1.Health/Check")).await?;
            assert_eq!(reason(&response).0.as_deref(), Some(expected));
        }
        Ok(())
    }

    #[tokio::test]
    async fn an_unsupported_encoding_is_invalid_request_without_echo() -> Result<(), Infallible> {
        let layer =
            GuardLayer::new(config(8, Duration::from_secs(60))).map_err(|_| unreachable!())?;
        let mut guard = layer.layer(pending_service());
        let mut call = request("/warden.v1.AuthService/Login");
        call.headers_mut().insert(
            "grpc-encoding",
            http::HeaderValue::from_static("x-evil-secret"),
        );

        let response = guard.call(call).await?;

        let text = format!("{:?}", response.headers());
        assert_eq!(
            reason(&response),
            (Some("3".into()), "INVALID_REQUEST".into())
        );
        assert!(!text.contains("x-evil-secret"));
        Ok(())
    }

    #[test]
    fn grpc_timeouts_parse_per_the_spec() {
        let parse = |v: &[u8]| {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_bytes(v) {
                headers.insert("grpc-timeout", value);
            }
            client_timeout(&headers)
        };
        assert_eq!(parse(b"1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse(b"123456789S"), None);
        assert_eq!(parse(b"S"), None);
        assert_eq!(parse(b"10x"), None);
        assert_eq!(parse(b"1\xc3\xa9"), None);
    }

    /// Every RPC in the descriptor the build generates is in the table, and
    /// the table names nothing else: a new RPC cannot run unlimited unnoticed.
    #[test]
    fn every_rpc_has_a_rate_limit_group() -> Result<(), prost::DecodeError> {
        let set = prost_types::FileDescriptorSet::decode(super::super::pb::FILE_DESCRIPTOR_SET)?;
        let (package, service) = SERVICE_NAME.rsplit_once('.').unwrap_or_default();
        let mut generated: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == service)
            .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            .collect();
        let mut listed: Vec<String> = METHOD_LIMITS.iter().map(|(n, _)| (*n).to_owned()).collect();
        generated.sort();
        listed.sort();

        assert!(!generated.is_empty());
        assert_eq!(generated, listed);
        Ok(())
    }

    #[test]
    fn the_groups_are_the_contracts() {
        let named = |limit: Limit| -> Vec<&str> {
            METHOD_LIMITS
                .iter()
                .filter(|(_, l)| *l == limit)
                .map(|(n, _)| *n)
                .collect()
        };
        assert_eq!(named(Limit::Login), ["Login"]);
        assert_eq!(named(Limit::Register), ["Register"]);
        assert_eq!(
            named(Limit::SecondFactor),
            [
                "EnrollTotp",
                "VerifyTotp",
                "UseRecoveryCode",
                "DisableTotp",
                "RegenerateRecoveryCodes",
                "ChangePassword",
                "DeleteAccount"
            ]
        );
        assert_eq!(limit_of("NoSuchRpc"), Limit::Login);
        assert_eq!(auth_method("/warden.v1.AuthService/Login"), Some("Login"));
        assert_eq!(auth_method("/grpc.health.v1.Health/Check"), None);
    }
}
