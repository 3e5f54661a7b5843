//! Assembly: configuration → database → migrations → keys → use-cases →
//! gRPC server with health and reflection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sea_orm::ConnectionTrait as _;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService as _;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::Config;
use crate::crypto::password::{Argon2Params, HashingPool, SecretHasher};
use crate::domain::budget::BudgetPolicy;
use crate::domain::clock::Clock;
use crate::domain::password_policy::PasswordPolicy;
use crate::domain::{AuthService, Settings};
use crate::grpc::AuthGrpc;
use crate::grpc::guard::{GuardLayer, MAX_MESSAGE_BYTES};
use crate::grpc::pb::auth_service_server::AuthServiceServer;
use crate::grpc::trace::TraceLayer;
use crate::storage::{self, SchemaStatus, SeaOrmStore};
use crate::telemetry::AuditTracer;
use crate::{housekeeping, keys};

/// The service health answers for besides `""`: the one `run_until` adds.
const HEALTH_SERVICE: &str = AuthServiceServer::<AuthGrpc<SeaOrmStore>>::NAME;

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

/// How often the database is pinged to drive health.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    service: Arc<AuthService<SeaOrmStore>>,
    config: Config,
    audit: Option<AuditTracer>,
}

/// Connects to the database and applies migrations if configured to.
/// A schema newer than this binary is a warning here (rolling upgrades and
/// rollbacks), and an error for the `migrate` command.
pub async fn open_database(
    config: &Config,
    migrate: bool,
) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let db = storage::connect(&config.database_url, config.db_max_connections).await?;
    if migrate && let SchemaStatus::Newer(unknown) = storage::migrate(&db).await? {
        tracing::warn!(
            ?unknown,
            "the database schema is newer than this binary; running without migrating"
        );
    }
    Ok(db)
}

/// `warden migrate`: applies pending migrations; refuses a newer schema.
pub async fn migrate_command(config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    let db = storage::connect(&config.database_url, 1).await?;
    match storage::migrate(&db).await? {
        SchemaStatus::Known => {
            println!("migrations applied");
            Ok(())
        }
        SchemaStatus::Newer(unknown) => {
            bail!(
                "the database schema is newer than this binary (unknown migrations: {unknown:?}); refusing to migrate"
            )
        }
    }
}

fn settings(config: &Config) -> Settings {
    let secs = Duration::from_secs;
    Settings {
        session_ttl: secs(config.session_ttl_secs),
        session_idle_timeout: secs(config.session_idle_timeout_secs),
        challenge_ttl: secs(config.challenge_ttl_secs),
        enrollment_ttl: secs(config.enrollment_ttl_secs),
        max_sessions_per_user: config.max_sessions_per_user,
        totp_issuer: config.totp_issuer.clone(),
        totp_skew: u64::from(config.totp_skew),
        password_policy: PasswordPolicy {
            min_chars: config.password_min_length,
        },
        budget: BudgetPolicy {
            threshold: config.lockout_threshold,
            lock: secs(config.lockout_duration_secs),
            max_lock: secs(config.lockout_max_duration_secs),
            // No credential check outlives the per-call time limit, so three
            // of them is ample for a live call and short for a dead one.
            lease: secs(config.request_timeout_secs.saturating_mul(3)),
        },
    }
}

/// Builds the use-cases over an open database.
pub async fn build_service(
    config: &Config,
    db: sea_orm::DatabaseConnection,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AuthService<SeaOrmStore>> {
    let has_users = crate::storage::has_users(&db).await?;
    let keys = keys::load(config, has_users)?;
    let concurrency = config
        .hash_concurrency
        .unwrap_or_else(crate::config::cpu_limit);
    let password_params = Argon2Params {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
        parallelism: config.argon2_parallelism,
    };
    // Each worker's buffer must hold the largest parameters it computes.
    let memory_kib = password_params
        .memory_kib
        .max(Argon2Params::RECOVERY_CODE.memory_kib);
    let pool = HashingPool::new(concurrency, config.hash_queue, memory_kib)
        .context("start hashing workers")?;
    let passwords =
        SecretHasher::new(pool.clone(), password_params).context("argon2 parameters")?;
    let recovery =
        SecretHasher::new(pool, Argon2Params::RECOVERY_CODE).context("argon2 parameters")?;
    Ok(AuthService::new(
        SeaOrmStore::new(db),
        clock,
        passwords,
        recovery,
        keys.token,
        keys.ring,
        settings(config),
    ))
}

impl Application {
    /// Binds the listener, opens and migrates the database, loads keys.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        config.validate()?;
        keys::require_for_postgres(&config)?;
        let db = open_database(&config, config.migrate_on_start).await?;
        let service = Arc::new(build_service(&config, db, clock).await?);
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("bind {}", config.listen))?;
        let audit = config
            .otel_exporter_otlp_endpoint
            .as_deref()
            .map(AuditTracer::new)
            .transpose()?;
        Ok(Self {
            listener,
            service,
            config,
            audit,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("read bound address")
    }

    /// Serves until `shutdown` completes, then stops accepting, turns health
    /// NOT_SERVING, and gives in-flight calls the grace period to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            listener,
            service,
            config,
            audit,
        } = self;
        let (reporter, health) = tonic_health::server::health_reporter();
        set_health(&reporter, ServingStatus::Serving).await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("build reflection v1")?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::grpc::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("build reflection v1alpha")?;

        let probe = tokio::spawn(watch_database(service.clone(), reporter.clone()));
        let sweeper = tokio::spawn(housekeeping::run(
            service.clone(),
            Duration::from_secs(config.housekeeping_interval_secs),
        ));

        let guard = GuardLayer::new(config.guard()).context("rate limits")?;
        if config.rate_limit_enabled && config.trusted_proxies.is_empty() {
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
        let auth = AuthServiceServer::new(AuthGrpc::new(service))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let trace = TraceLayer::new(config.trusted_proxies.clone(), audit.clone());
        let server = Server::builder()
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .layer(trace)
            .layer(guard)
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(auth)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stop_rx.await;
            });
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
                match tokio::time::timeout(Duration::from_secs(config.shutdown_grace_secs), &mut server).await {
                    Ok(result) => result.context("serve"),
                    Err(_) => {
                        tracing::warn!("grace period over with calls still in flight");
                        Ok(())
                    }
                }
            }
        };
        probe.abort();
        sweeper.abort();
        forgetter.abort();
        if let Some(audit) = audit {
            audit.shutdown().await;
        }
        outcome
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(HEALTH_SERVICE, status).await;
}

/// Turns health NOT_SERVING while the database does not answer.
async fn watch_database(service: Arc<AuthService<SeaOrmStore>>, reporter: HealthReporter) {
    let mut serving = true;
    loop {
        tokio::time::sleep(HEALTH_PROBE_INTERVAL).await;
        let db = service.store().connection();
        let ok = tokio::time::timeout(Duration::from_secs(2), db.execute_unprepared("SELECT 1"))
            .await
            .is_ok_and(|r| r.is_ok());
        if ok != serving {
            serving = ok;
            if ok {
                tracing::info!("database answers again; serving");
            } else {
                tracing::error!("database does not answer; health NOT_SERVING");
            }
            set_health(
                &reporter,
                if ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                },
            )
            .await;
        }
    }
}

/// `warden rotate-keys`: re-encrypts every TOTP secret under the primary key.
pub async fn rotate_keys_command(config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    let db = open_database(config, config.migrate_on_start).await?;
    let service = build_service(config, db, Arc::new(crate::domain::clock::SystemClock)).await?;
    let changed = service.rotate_keys().await?;
    println!("re-encrypted {changed} secrets");
    Ok(())
}
