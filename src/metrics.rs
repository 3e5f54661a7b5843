//! The Prometheus metrics `GET /metrics` serves (names fixed by the
//! contract). One registry per server, so several servers in one process
//! (tests, replicas) keep their own counts.
//!
//! `prometheus` (TiKV's crate) rather than `metrics` + an exporter: one
//! crate, no global recorder, an explicit registry per server, and the
//! text encoder built in.
//!
//! No label holds user data: `method` is a name from the RPC table (or
//! `unknown`), `code` a gRPC code name, `group` a rate-limit group, `state`
//! `idle`/`in_use`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use sea_orm::DatabaseConnection;
use tonic::Code;

use crate::crypto::password::HashingPool;

/// The server's metrics; cheap to clone (every handle is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    rpc_requests: IntCounterVec,
    rpc_duration: HistogramVec,
    hash_running: IntGauge,
    hash_queued: IntGauge,
    hash_rejected: IntCounter,
    accounts_locked: IntCounter,
    rate_limited: IntCounterVec,
    db_connections: IntGaugeVec,
    sources: Arc<Sources>,
}

/// What is read at scrape time.
#[derive(Default)]
struct Sources {
    hashing: Option<Arc<HashingPool>>,
    db: Option<DatabaseConnection>,
}

/// Seconds buckets for RPC latency: argon2 logins sit around 20–100 ms.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Metrics {
    /// Registers every metric; `hashing` and `db` are read at each scrape.
    pub fn new(
        hashing: Option<Arc<HashingPool>>,
        db: Option<DatabaseConnection>,
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let rpc_requests = IntCounterVec::new(
            Opts::new(
                "warden_rpc_requests_total",
                "AuthService calls by method and gRPC code",
            ),
            &["method", "code"],
        )?;
        let rpc_duration = HistogramVec::new(
            HistogramOpts::new("warden_rpc_duration_seconds", "AuthService call duration")
                .buckets(DURATION_BUCKETS.to_vec()),
            &["method"],
        )?;
        let hash_running = IntGauge::new("warden_hash_jobs_running", "argon2 jobs computing")?;
        let hash_queued = IntGauge::new(
            "warden_hash_jobs_queued",
            "argon2 jobs waiting for a hashing thread",
        )?;
        let hash_rejected = IntCounter::new(
            "warden_hash_rejected_total",
            "argon2 jobs refused with the workers and queue full",
        )?;
        let accounts_locked = IntCounter::new(
            "warden_accounts_locked_total",
            "calls refused because the account name is locked",
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "warden_rate_limited_total",
                "calls refused by a per-IP rate limit",
            ),
            &["group"],
        )?;
        let db_connections = IntGaugeVec::new(
            Opts::new(
                "warden_db_pool_connections",
                "database pool connections by state",
            ),
            &["state"],
        )?;
        registry.register(Box::new(rpc_requests.clone()))?;
        registry.register(Box::new(rpc_duration.clone()))?;
        registry.register(Box::new(hash_running.clone()))?;
        registry.register(Box::new(hash_queued.clone()))?;
        registry.register(Box::new(hash_rejected.clone()))?;
        registry.register(Box::new(accounts_locked.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(db_connections.clone()))?;
        Ok(Self {
            registry,
            rpc_requests,
            rpc_duration,
            hash_running,
            hash_queued,
            hash_rejected,
            accounts_locked,
            rate_limited,
            db_connections,
            sources: Arc::new(Sources { hashing, db }),
        })
    }

    /// One AuthService call ended with `code` after `elapsed`.
    pub fn rpc(&self, method: &str, code: Code, elapsed: Duration) {
        self.rpc_requests
            .with_label_values(&[method, code_name(code)])
            .inc();
        self.rpc_duration
            .with_label_values(&[method])
            .observe(elapsed.as_secs_f64());
    }

    /// A call was refused because the account name is locked.
    pub fn account_locked(&self) {
        self.accounts_locked.inc();
    }

    /// A rate limit of `group` refused a call.
    pub fn rate_limited(&self, group: &str) {
        self.rate_limited.with_label_values(&[group]).inc();
    }

    /// The text exposition of every metric, sampled now.
    pub fn render(&self) -> String {
        if let Some(pool) = &self.sources.hashing {
            let stats = pool.stats();
            self.hash_running
                .set(i64::try_from(stats.running).unwrap_or(i64::MAX));
            self.hash_queued
                .set(i64::try_from(stats.queued).unwrap_or(i64::MAX));
            let seen = self.hash_rejected.get();
            self.hash_rejected
                .inc_by(stats.rejected.saturating_sub(seen));
        }
        if let Some(db) = &self.sources.db {
            let (idle, in_use) = crate::storage::pool_connections(db);
            for (state, n) in [("idle", idle), ("in_use", in_use)] {
                self.db_connections
                    .with_label_values(&[state])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!(error = %e, "encode metrics");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// The canonical name of a gRPC code (`OK`, `INVALID_ARGUMENT`, …).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `GET /metrics` route (served by `crate::http`).
pub fn routes(metrics: Metrics) -> axum::Router {
    use axum::routing::get;
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    )
}
