//! What the server reports: every log line it writes (captured at the most
//! verbose level) and every span it exports, received by an in-process OTLP
//! collector.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};

use tonic::{Request, Status};

/// Everything the server logged during the test run.
pub static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line at the most verbose level Warden has, and sends
/// RPC spans to the shared test collector, as `telemetry::init` does for the
/// binary.
pub(super) fn capture_logs() {
    use tracing_subscriber::prelude::*;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(|| LogSink)
            .with_filter(tracing_subscriber::EnvFilter::new(
                "trace,h2=info,hyper=info,tower=info,sqlx=debug,sea_orm=debug",
            ));
        let collector = collector();
        // block_on may not run inside a test's runtime: use a thread.
        let provider = std::thread::spawn(move || {
            collector
                .runtime
                .block_on(async { warden::telemetry::provider(&collector.url(), None) })
        })
        .join()
        .expect("pipeline thread")
        .expect("trace pipeline");
        let traces = tracing_opentelemetry::layer()
            .with_tracer(opentelemetry::trace::TracerProvider::tracer(
                &provider, "warden",
            ))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(warden::telemetry::RPC_TARGET, tracing::Level::INFO),
            );
        let _ = TRACE_PROVIDER.set(provider);
        let _ = tracing_subscriber::registry()
            .with(logs)
            .with(traces)
            .try_init();
    });
}

static TRACE_PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
    std::sync::OnceLock::new();

/// Pushes out the RPC spans the global pipeline still holds.
pub async fn flush_traces() {
    if let Some(provider) = TRACE_PROVIDER.get() {
        let provider = provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }
}

/// One exported span, flattened.
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    /// Span name.
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex (empty for roots).
    pub parent_span_id: String,
    /// Attributes as strings.
    pub attributes: std::collections::HashMap<String, String>,
    /// The whole span as received, for secret scans.
    pub raw: String,
}

/// An OTLP trace receiver shared by the test process, on a runtime of its
/// own so it outlives each test's runtime.
pub struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
    runtime: tokio::runtime::Runtime,
}

impl Collector {
    /// The OTLP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, from every test in this process.
    pub fn all_spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every span received so far with this trace id.
    pub fn spans_of(&self, trace_id: &str) -> Vec<ExportedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

struct Receiver(Arc<Mutex<Vec<ExportedSpan>>>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Receiver
{
    async fn export(
        &self,
        request: Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        Status,
    > {
        let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(ExportedSpan {
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
                            .collect(),
                        raw: format!("{span:?}"),
                    });
                }
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// The shared collector, started on first use.
pub fn collector() -> &'static Collector {
    static COLLECTOR: std::sync::OnceLock<Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        // Built on a thread of its own: block_on may not run inside a test's runtime.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            let spans = Arc::new(Mutex::new(Vec::new()));
            let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind collector");
            let addr = listener.local_addr().expect("collector address");
            let service =
                opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(Receiver(spans.clone()));
            runtime.spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            Collector { addr, spans, runtime }
        })
        .join()
        .expect("collector thread")
    })
}

/// The log text captured so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}
