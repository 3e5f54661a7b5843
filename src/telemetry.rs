//! Logs and traces. Logs go to stderr (stdout is for command output), as
//! text or JSON. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, traces go out over
//! OTLP/gRPC through two pipelines:
//!
//! - the ordinary one carries the RPC spans (via tracing-opentelemetry) and
//!   follows the standard `OTEL_TRACES_SAMPLER`;
//! - the audit one carries authentication events as child spans of the RPC
//!   span and samples everything, so no audit event is lost to head
//!   sampling — except a successful `session.validated`, which is exported
//!   only when its RPC span was sampled (backends call it on every request).
//!
//! With no endpoint, no exporter runs.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::config::{LogFormat, TelemetrySettings};

/// The instrumentation scope of Warden's spans.
pub const SCOPE: &str = "warden";

/// The tracing target of RPC spans (exported by the ordinary pipeline).
pub const RPC_TARGET: &str = "warden::rpc";

fn resource() -> Resource {
    let builder = Resource::builder();
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the
    // builder; "warden" is only the fallback.
    if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("warden").build()
    }
}

/// A tracer provider exporting to `endpoint`; `sampler` None means the
/// standard `OTEL_TRACES_SAMPLER` (default parent-based always-on).
/// Must be called inside a tokio runtime: the exporter's channel lives there.
pub fn provider(endpoint: &str, sampler: Option<Sampler>) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .context("build the OTLP exporter")?;
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource());
    if let Some(sampler) = sampler {
        builder = builder.with_sampler(sampler);
    }
    Ok(builder.build())
}

/// Flushes and stops a provider without blocking the async runtime.
pub async fn shutdown(provider: SdkTracerProvider) {
    let result = tokio::task::spawn_blocking(move || {
        let flushed = provider.force_flush();
        provider.shutdown().and(flushed)
    })
    .await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::warn!("could not flush every span to the OTLP endpoint");
    }
}

/// The audit pipeline of one server.
#[derive(Debug, Clone)]
pub struct AuditTracer {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl AuditTracer {
    /// An always-sampling pipeline to `endpoint`.
    pub fn new(endpoint: &str) -> anyhow::Result<Self> {
        let provider = provider(endpoint, Some(Sampler::AlwaysOn))?;
        let tracer = provider.tracer(SCOPE);
        Ok(Self { provider, tracer })
    }

    /// The tracer audit spans start from.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// Flushes and stops the pipeline.
    pub async fn shutdown(self) {
        shutdown(self.provider).await;
    }
}

/// What `init` set up that must be flushed at exit.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Flushes the ordinary pipeline.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            shutdown(provider).await;
        }
    }
}

/// Installs the global subscriber: logs at the `RUST_LOG` level (default
/// `info`) in the configured format and, with an endpoint, RPC spans to
/// OTLP whatever `RUST_LOG` says. Call inside the runtime.
pub fn init(settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = settings
        .otlp_endpoint
        .as_deref()
        .map(|e| provider(e, None))
        .transpose()?;
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SCOPE))
            .with_filter(Targets::new().with_target(RPC_TARGET, tracing::Level::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init();
    Ok(TelemetryGuard { provider })
}
