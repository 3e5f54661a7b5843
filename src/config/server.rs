//! Listening, the per-call limits at the edge, and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{ConfigError, MAX_TIME_LIMIT_SECS, secs, within};
use crate::net::Cidr;

/// The most calls in flight one may ask for: far above any deployment, and
/// low enough that semaphore permits cannot overflow.
const MAX_IN_FLIGHT: usize = 1_000_000;

/// How the server listens and bounds each call.
#[derive(Debug, Clone, Args)]
pub struct ServerSettings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "WARDEN_LISTEN",
        default_value = "127.0.0.1:50051",
        global = true
    )]
    pub listen: SocketAddr,
    /// Extra plaintext listener serving only `grpc.health.v1` (Kubernetes
    /// gRPC probes cannot speak TLS). Unset: none.
    #[arg(long, env = "WARDEN_HEALTH_LISTEN", global = true)]
    pub health_listen: Option<SocketAddr>,
    /// Plaintext HTTP listener for `GET /metrics` (Prometheus text format)
    /// and `GET /.well-known/jwks.json` (the access-token signing keys).
    /// Unset: none.
    #[arg(long, env = "WARDEN_HTTP_LISTEN", global = true)]
    pub http_listen: Option<SocketAddr>,
    /// PEM certificate chain; with the key, the main listener speaks TLS only.
    #[arg(long, env = "WARDEN_TLS_CERT_FILE", global = true)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "WARDEN_TLS_KEY_FILE", global = true)]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA bundle; clients must present a certificate it signed (mTLS).
    #[arg(long, env = "WARDEN_TLS_CLIENT_CA_FILE", global = true)]
    pub tls_client_ca_file: Option<PathBuf>,
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
    /// How long a call may take to deliver its request message; until it
    /// has, it holds no in-flight slot. Past this it gets DEADLINE_EXCEEDED.
    #[arg(
        long,
        env = "WARDEN_REQUEST_BODY_TIMEOUT_SECS",
        default_value_t = 5,
        global = true
    )]
    pub request_body_timeout_secs: u64,
    /// AuthService calls in flight before new ones get UNAVAILABLE OVERLOADED.
    #[arg(
        long,
        env = "WARDEN_MAX_IN_FLIGHT",
        default_value_t = 1024,
        global = true
    )]
    pub max_in_flight: usize,
    /// Time in-flight calls get to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "WARDEN_SHUTDOWN_GRACE_SECS",
        default_value_t = 20,
        global = true
    )]
    pub shutdown_grace_secs: u64,
}

impl ServerSettings {
    /// Checks the time limits and the in-flight cap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError(
                "WARDEN_TLS_CERT_FILE and WARDEN_TLS_KEY_FILE must be set together".to_owned(),
            ));
        }
        if self.tls_client_ca_file.is_some() && self.tls_cert_file.is_none() {
            return Err(ConfigError(
                "WARDEN_TLS_CLIENT_CA_FILE needs WARDEN_TLS_CERT_FILE and WARDEN_TLS_KEY_FILE"
                    .to_owned(),
            ));
        }
        within(
            "WARDEN_REQUEST_TIMEOUT_SECS",
            self.request_timeout_secs,
            1,
            MAX_TIME_LIMIT_SECS,
        )?;
        within(
            "WARDEN_REQUEST_BODY_TIMEOUT_SECS",
            self.request_body_timeout_secs,
            1,
            MAX_TIME_LIMIT_SECS,
        )?;
        // Zero is allowed: stop at once without waiting for calls.
        within(
            "WARDEN_SHUTDOWN_GRACE_SECS",
            self.shutdown_grace_secs,
            0,
            MAX_TIME_LIMIT_SECS,
        )?;
        within("WARDEN_MAX_IN_FLIGHT", self.max_in_flight, 1, MAX_IN_FLIGHT)
    }

    /// The per-call time limit.
    pub fn request_timeout(&self) -> Duration {
        secs(self.request_timeout_secs)
    }

    /// How long a call may take to deliver its request message.
    pub fn request_body_timeout(&self) -> Duration {
        secs(self.request_body_timeout_secs)
    }

    /// The grace period after a shutdown signal.
    pub fn shutdown_grace(&self) -> Duration {
        secs(self.shutdown_grace_secs)
    }
}
