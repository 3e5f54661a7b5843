//! Logs and traces: the log format and the OTLP endpoint.

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The telemetry settings.
#[derive(Debug, Clone, Args)]
pub struct TelemetrySettings {
    /// OTLP/gRPC endpoint for traces; unset means no exporter runs.
    #[arg(
        long = "otel-exporter-otlp-endpoint",
        value_name = "OTEL_EXPORTER_OTLP_ENDPOINT",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        global = true
    )]
    pub otlp_endpoint: Option<String>,
    /// Log format; the level comes from `RUST_LOG`.
    #[arg(long, env = "WARDEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}
