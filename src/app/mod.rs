//! Assembly: configuration → database → migrations → keys → use-cases →
//! gRPC server with health and reflection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::config::{Config, ConfigError};
use crate::crypto::password::{Argon2Params, HashingPool, SecretHasher};
use crate::domain::AuthService;
use crate::domain::clock::Clock;
use crate::grpc::AuthGrpc;
use crate::grpc::guard::{GuardLayer, MAX_MESSAGE_BYTES};
use crate::grpc::pb::auth_service_server::AuthServiceServer;
use crate::grpc::trace::TraceLayer;
use crate::metrics::Metrics;
use crate::storage::{self, Backend, SchemaStatus, SeaOrmStore};
use crate::telemetry::AuditTracer;
use crate::{housekeeping, keys};

mod commands;
mod health;
mod settings;

pub use commands::{migrate_command, rotate_keys_command};
use health::{set_health, watch_database};
use settings::{guard_config, settings, tls_files};

/// HTTP/2 streams one connection may have open at once. tonic's default
/// (`None`) removes hyper's limit altogether, letting one client open as
/// many calls as it likes; further streams are refused by h2.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// How often an idle connection is pinged, and how long the answer may take
/// before the connection is dropped: dead peers (a vanished NAT entry, a
/// crashed client) must not keep their streams open forever.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often idle rate-limiter keys are forgotten.
const LIMITER_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    /// The plaintext health-only listener, when configured.
    health_listener: Option<TcpListener>,
    /// TLS on the main listener, when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The plaintext `/metrics` and JWK Set listener and the metrics, when configured.
    http: Option<(TcpListener, Metrics)>,
    service: Arc<AuthService<SeaOrmStore>>,
    /// Assembly's own handle on the pool, for the health probe.
    db: DatabaseConnection,
    config: Config,
    audit: Option<AuditTracer>,
}

/// Checks the configuration, then that storage has a backend for its
/// database URL (configuration knows URLs only as text).
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    config.validate()?;
    if Backend::of_url(&config.database.url).is_none() {
        return Err(ConfigError(
            "WARDEN_DATABASE_URL must start with sqlite:, postgres:// or postgresql://".to_owned(),
        ));
    }
    Ok(())
}

/// A reflection builder with every descriptor Warden's answers use.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::grpc::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Connects to the database and applies migrations if configured to.
/// A schema newer than this binary is a warning here (rolling upgrades and
/// rollbacks), and an error for the `migrate` command.
pub async fn open_database(config: &Config, migrate: bool) -> anyhow::Result<DatabaseConnection> {
    let db = storage::connect(&config.database.url, config.database.max_connections).await?;
    if migrate && let SchemaStatus::Newer(unknown) = storage::migrate(&db).await? {
        tracing::warn!(
            ?unknown,
            "the database schema is newer than this binary; running without migrating"
        );
    }
    Ok(db)
}

/// Builds the use-cases over an open database.
pub async fn build_service(
    config: &Config,
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AuthService<SeaOrmStore>> {
    Ok(build_service_and_pool(config, db, clock).await?.0)
}

/// [`build_service`], also handing back the hashing pool (for metrics).
async fn build_service_and_pool(
    config: &Config,
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(AuthService<SeaOrmStore>, Arc<HashingPool>)> {
    let has_users = storage::has_users(&db).await?;
    let keys = keys::load(config, has_users)?;
    let hashing = &config.hashing;
    let password_params = Argon2Params {
        memory_kib: hashing.memory_kib,
        iterations: hashing.iterations,
        parallelism: hashing.parallelism,
    };
    // Each worker's buffer must hold the largest parameters it computes.
    let memory_kib = password_params
        .memory_kib
        .max(Argon2Params::RECOVERY_CODE.memory_kib);
    let pool = HashingPool::new(hashing.workers(), hashing.queue, memory_kib)
        .context("start hashing workers")?;
    let passwords =
        SecretHasher::new(pool.clone(), password_params).context("argon2 parameters")?;
    let recovery = SecretHasher::new(pool.clone(), Argon2Params::RECOVERY_CODE)
        .context("argon2 parameters")?;
    let service = AuthService::new(
        SeaOrmStore::new(db),
        clock,
        passwords,
        recovery,
        keys,
        settings(config),
    );
    Ok((service, pool))
}

impl Application {
    /// Binds the listener, opens and migrates the database, loads keys.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        validate(&config)?;
        keys::require_for_postgres(&config)?;
        let db = open_database(&config, config.database.migrate_on_start).await?;
        let tls = tls_files(&config)
            .map(|f| crate::tls::server_config(&f))
            .transpose()?;
        let (service, pool) = build_service_and_pool(&config, db.clone(), clock).await?;
        let service = Arc::new(service);
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("bind {}", config.server.listen))?;
        let health_listener = match config.server.health_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("bind WARDEN_HEALTH_LISTEN {addr}"))?,
            ),
            None => None,
        };
        let http = match config.server.http_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("bind WARDEN_HTTP_LISTEN {addr}"))?;
                let metrics =
                    Metrics::new(Some(pool), Some(db.clone())).context("register metrics")?;
                Some((listener, metrics))
            }
            None => None,
        };
        let audit = config
            .telemetry
            .otlp_endpoint
            .as_deref()
            .map(AuditTracer::new)
            .transpose()?;
        Ok(Self {
            listener,
            health_listener,
            tls,
            http,
            service,
            db,
            config,
            audit,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("read bound address")
    }

    /// Whether the main listener speaks TLS.
    pub fn speaks_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address the health-only listener bound, when configured.
    pub fn health_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        self.health_listener
            .as_ref()
            .map(|l| l.local_addr().context("read bound health address"))
            .transpose()
    }

    /// The address the HTTP (`/metrics`, JWK Set) listener bound, when configured.
    pub fn http_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        self.http
            .as_ref()
            .map(|(l, _)| l.local_addr().context("read bound HTTP address"))
            .transpose()
    }

    /// Serves until `shutdown` completes, then stops accepting, turns health
    /// NOT_SERVING, and gives in-flight calls the grace period to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            health_listener,
            tls,
            http,
            service,
            db,
            config,
            audit,
        } = self;
        let (reporter, health) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::Serving).await;
        // Reflection serves the error-detail types too, so grpcurl (and any
        // reflection client) can decode the ErrorInfo, BadRequest and
        // RetryInfo that every error carries.
        let reflection_v1 = reflection().build_v1().context("build reflection v1")?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .context("build reflection v1alpha")?;

        let probe = tokio::spawn(watch_database(db, reporter.clone()));
        let sweeper = tokio::spawn(housekeeping::run(
            service.clone(),
            config.database.housekeeping_interval(),
        ));

        let guard = GuardLayer::new(guard_config(&config)).context("rate limits")?;
        if config.rate_limits.enabled && config.server.trusted_proxies.is_empty() {
            tracing::warn!(
                "rate limits are on and WARDEN_TRUSTED_PROXIES is empty: behind a proxy or ingress every call would share one key"
            );
        }
        let forgetter = tokio::spawn({
            let guard = guard.clone();
            async move {
                let mut ticker = tokio::time::interval(LIMITER_SWEEP_INTERVAL);
                loop {
                    ticker.tick().await;
                    guard.retain_recent();
                }
            }
        });
        let jwks = crate::http::JwksDocument::new(service.jwks_json(), service.jwks_etag());
        let auth = AuthServiceServer::new(AuthGrpc::new(service))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);

        // The probe port: health only, plaintext, the same reporter. It
        // keeps answering (NOT_SERVING) through the grace period and stops
        // with the main listener.
        let health_only = health_listener.map(|listener| {
            tokio::spawn(
                Server::builder()
                    .add_service(health.clone())
                    .serve_with_incoming(TcpListenerStream::new(listener)),
            )
        });

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (http_listener, metrics) = http.unzip();
        let http_server = http_listener
            .zip(metrics.clone())
            .map(|(listener, metrics)| tokio::spawn(crate::http::serve(listener, metrics, jwks)));
        let trace = TraceLayer::new(
            config.server.trusted_proxies.clone(),
            audit.clone(),
            metrics,
        );
        let router = Server::builder()
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .layer(trace)
            .layer(guard)
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(auth);
        let stopped = async {
            let _ = stop_rx.await;
        };
        let mut acceptor = None;
        let server: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
        > = match tls {
            Some(tls) => {
                let (incoming, task) = crate::tls::incoming(listener, tls);
                acceptor = Some(task);
                Box::pin(router.serve_with_incoming_shutdown(incoming, stopped))
            }
            None => Box::pin(
                router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped),
            ),
        };
        tokio::pin!(server);
        let outcome = tokio::select! {
            result = &mut server => result.context("serve"),
            () = shutdown => {
                tracing::info!("shutting down");
                // Stopped first, so it cannot turn health back to SERVING
                // during the grace period.
                probe.abort();
                set_health(&reporter, ServingStatus::NotServing).await;
                let _ = stop_tx.send(());
                match tokio::time::timeout(config.server.shutdown_grace(), &mut server).await {
                    Ok(result) => result.context("serve"),
                    Err(_) => {
                        tracing::warn!("grace period over with calls still in flight");
                        Ok(())
                    }
                }
            }
        };
        probe.abort();
        if let Some(health_only) = health_only {
            health_only.abort();
        }
        if let Some(http_server) = http_server {
            http_server.abort();
        }
        if let Some(acceptor) = acceptor {
            acceptor.abort();
        }
        sweeper.abort();
        forgetter.abort();
        if let Some(audit) = audit {
            audit.shutdown().await;
        }
        outcome
    }
}
