//! The outermost layer: decides who the caller is (for rate limits, session
//! rows and audit), opens the RPC span — continuing the caller's W3C trace
//! — and turns the authentication events a call recorded into audit spans
//! under it, stamped with the call's final status.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::admin;
use super::client_address::{ClientAddress, end_user};
use super::rpc::{Method, SERVICE_NAME};
use super::status;
use crate::domain::audit::{self, AuditEvent, AuditRecord, Outcome};
use crate::metrics::Metrics;
use crate::net::Cidr;
use crate::telemetry::{AuditTracer, RPC_TARGET};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// Reads W3C trace context from request headers.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct State {
    trusted: Vec<Cidr>,
    audit: Option<AuditTracer>,
    metrics: Option<Metrics>,
}

/// The trace layer.
#[derive(Clone)]
pub struct TraceLayer {
    state: Arc<State>,
}

impl TraceLayer {
    /// Keys callers behind `trusted` proxies by their forwarded address and
    /// exports audit spans through `audit`, when set; counts calls, locked
    /// names and rate-limit refusals in `metrics`, when set.
    pub fn new(trusted: Vec<Cidr>, audit: Option<AuditTracer>, metrics: Option<Metrics>) -> Self {
        Self {
            state: Arc::new(State {
                trusted,
                audit,
                metrics,
            }),
        }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The trace service.
#[derive(Clone)]
pub struct Trace<S> {
    inner: S,
    state: Arc<State>,
}

type Response = http::Response<tonic::body::Body>;

impl State {
    /// Counts one finished AuthService call and what its records say.
    fn count(
        &self,
        method: Method<'_>,
        code: tonic::Code,
        elapsed: Duration,
        records: &[AuditRecord],
    ) {
        let Some(metrics) = &self.metrics else { return };
        // An unknown name comes from the caller: never a label.
        let name = match method {
            Method::Known(rpc) => rpc.name(),
            Method::Unknown(_) => "unknown",
        };
        metrics.rpc(name, code, elapsed);
        for record in records {
            match record.event {
                AuditEvent::LoginLocked => metrics.account_locked(),
                AuditEvent::RateLimited => metrics.rate_limited(method.limit().name()),
                _ => {}
            }
        }
    }

    /// Ends one audit span per record under `rpc`.
    fn emit(
        &self,
        rpc: &tracing::Span,
        records: Vec<AuditRecord>,
        code: i64,
        client: Option<&str>,
    ) {
        let Some(audit) = &self.audit else { return };
        let parent = rpc.context();
        let sampled = parent.span().span_context().is_sampled();
        for record in records {
            // Backends validate on every request: successful validations
            // follow the ordinary sampler; everything else is always kept.
            if record.event == AuditEvent::SessionValidated
                && record.outcome == Outcome::Success
                && !sampled
            {
                continue;
            }
            let name = record.event.name();
            let mut attributes = vec![
                KeyValue::new("warden.event", name),
                KeyValue::new("warden.outcome", record.outcome.as_str()),
                KeyValue::new("rpc.grpc.status_code", code),
            ];
            if let Some(client) = client {
                attributes.push(KeyValue::new("client.address", client.to_owned()));
            }
            if let Some(user) = record.user {
                attributes.push(KeyValue::new("enduser.id", user.to_string()));
            }
            if let Some(count) = record.sessions_revoked {
                attributes.push(KeyValue::new(
                    "warden.sessions_revoked",
                    i64::try_from(count).unwrap_or(i64::MAX),
                ));
            }
            if let Some(count) = record.devices_revoked {
                attributes.push(KeyValue::new(
                    "warden.trusted_devices_revoked",
                    i64::try_from(count).unwrap_or(i64::MAX),
                ));
            }
            let mut span = audit
                .tracer()
                .span_builder(name)
                .with_kind(SpanKind::Internal)
                .with_attributes(attributes)
                .start_with_context(audit.tracer(), &parent);
            span.end();
        }
    }
}

impl<S, B> Service<http::Request<B>> for Trace<S>
where
    S: Service<http::Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();

        // Plaintext connections carry `TcpConnectInfo`; TLS ones wrap it.
        let extensions = request.extensions();
        let peer = extensions
            .get::<TcpConnectInfo>()
            .or_else(|| {
                extensions
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .map(TlsConnectInfo::get_ref)
            })
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip());
        if let Some(peer) = peer {
            let forwarded = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            let client = end_user(peer, forwarded, &state.trusted);
            if let Some(address) = client.address() {
                request.extensions_mut().insert(ClientAddress(address));
            }
            request.extensions_mut().insert(client);
        }
        // Only AuthService and AdminService calls get spans; an unknown
        // method keeps the name its path gave. Metrics count AuthService
        // calls only (`known` is an AuthService method).
        let path = request.uri().path();
        let called = match Method::from_path(path) {
            Some(m) => {
                let known = match m {
                    Method::Known(rpc) => Some(rpc),
                    Method::Unknown(_) => None,
                };
                Some((SERVICE_NAME, m.name().to_owned(), known, true))
            }
            None => admin::method_of(path)
                .map(|name| (admin::SERVICE_NAME, name.to_owned(), None, false)),
        };
        let Some((service, method, known, counted)) = called else {
            return Box::pin(inner.call(request));
        };
        let start = Instant::now();
        let client = request
            .extensions()
            .get::<ClientAddress>()
            .map(|a| a.0.to_string());
        let span = tracing::info_span!(
            target: RPC_TARGET,
            "rpc",
            otel.name = format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method.as_str(),
            client.address = client.as_deref(),
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let caller = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(caller);
        let call = inner.call(request);
        Box::pin(async move {
            let (result, records) = audit::collect(call).instrument(span.clone()).await;
            let grpc_code = result
                .as_ref()
                .map_or(tonic::Code::Internal, status::code_of);
            let code = i64::from(i32::from(grpc_code));
            span.record("rpc.grpc.status_code", code);
            if counted {
                let method = known.map_or(Method::Unknown(""), Method::Known);
                state.count(method, grpc_code, start.elapsed(), &records);
            }
            state.emit(&span, records, code, client.as_deref());
            result
        })
    }
}
