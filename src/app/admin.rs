//! The admin listener: its own tonic server on `WARDEN_ADMIN_LISTEN`
//! serving AdminService and its reflection behind the admin token, with
//! the main listener's TLS (and client-certificate requirement) when that
//! is configured, its own in-flight cap and no rate limits. It drains with
//! the main listener at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use super::{HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT, MAX_STREAMS_PER_CONNECTION};
use crate::config::Config;
use crate::crypto::admin_token::AdminToken;
use crate::domain::AuthService;
use crate::grpc::AdminGrpc;
use crate::grpc::admin::authn::AdminAuthLayer;
use crate::grpc::guard::{GuardLayer, MAX_MESSAGE_BYTES};
use crate::grpc::pb::admin_service_server::AdminServiceServer;
use crate::grpc::trace::TraceLayer;
use crate::storage::SeaOrmStore;
use crate::telemetry::AuditTracer;

/// The admin listener, bound, with its token; not yet serving.
pub(super) struct AdminListener {
    listener: TcpListener,
    token: AdminToken,
}

/// The admin token from `WARDEN_ADMIN_TOKEN` or the file
/// `WARDEN_ADMIN_TOKEN_FILE` (surrounding whitespace ignored), refused when
/// too weak. The message names the setting, never the value.
fn load_token(config: &Config) -> anyhow::Result<AdminToken> {
    let admin = &config.admin;
    let (token, name) = match (&admin.admin_token, &admin.admin_token_file) {
        (Some(token), _) => (token.clone(), "WARDEN_ADMIN_TOKEN"),
        (None, Some(path)) => (read_token_file(path)?, "WARDEN_ADMIN_TOKEN_FILE"),
        (None, None) => {
            anyhow::bail!("WARDEN_ADMIN_LISTEN needs WARDEN_ADMIN_TOKEN or WARDEN_ADMIN_TOKEN_FILE")
        }
    };
    AdminToken::new(&token).map_err(|weak| anyhow::anyhow!("{name}: {weak}"))
}

fn read_token_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "read the admin token (WARDEN_ADMIN_TOKEN_FILE) from {}",
            path.display()
        )
    })?;
    Ok(SecretString::from(text.trim().to_owned()))
}

/// Loads the token and binds the admin listener, when one is configured.
pub(super) async fn bind(config: &Config) -> anyhow::Result<Option<AdminListener>> {
    let Some(addr) = config.admin.admin_listen else {
        return Ok(None);
    };
    let token = load_token(config)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind WARDEN_ADMIN_LISTEN {addr}"))?;
    Ok(Some(AdminListener { listener, token }))
}

impl AdminListener {
    /// The address bound.
    pub(super) fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("read bound admin address")
    }

    /// Starts serving; [`AdminServing::stop`] drains it.
    pub(super) fn serve(
        self,
        service: Arc<AuthService<SeaOrmStore>>,
        tls: Option<Arc<rustls::ServerConfig>>,
        audit: Option<AuditTracer>,
        config: &Config,
    ) -> anyhow::Result<AdminServing> {
        let reflection_v1 = super::reflection::for_admin()?
            .build_v1()
            .context("build admin reflection v1")?;
        let reflection_v1alpha = super::reflection::for_admin()?
            .build_v1alpha()
            .context("build admin reflection v1alpha")?;
        let admin = AdminServiceServer::new(AdminGrpc::new(service))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let server = &config.server;
        let guard = GuardLayer::admin(
            config.admin.admin_max_in_flight,
            server.request_timeout(),
            server.request_body_timeout(),
        );
        // Outermost the span (so refusals are traced too), then the token,
        // then the guard: a caller without the token holds no slot.
        let router = Server::builder()
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            .layer(TraceLayer::new(server.trusted_proxies.clone(), audit, None))
            .layer(AdminAuthLayer::new(self.token))
            .layer(guard)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(admin);
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let mut acceptor = None;
        let serving: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
        > = match tls {
            Some(tls) => {
                let (incoming, task) = crate::tls::incoming(self.listener, tls);
                acceptor = Some(task);
                Box::pin(router.serve_with_incoming_shutdown(incoming, stopped))
            }
            None => Box::pin(
                router.serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), stopped),
            ),
        };
        Ok(AdminServing {
            stop: Some(stop),
            task: tokio::spawn(serving),
            acceptor,
        })
    }
}

/// The admin listener, serving.
pub(super) struct AdminServing {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    acceptor: Option<JoinHandle<()>>,
}

impl AdminServing {
    /// Stops accepting; calls in flight go on.
    pub(super) fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops accepting and lets calls in flight finish until `deadline`.
    pub(super) async fn stop(mut self, deadline: tokio::time::Instant) {
        self.begin_stop();
        let mut task = self.task;
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "admin listener ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "admin listener task failed"),
            Err(_) => {
                tracing::warn!("grace period over with admin calls still in flight");
                task.abort();
            }
        }
        if let Some(acceptor) = self.acceptor {
            acceptor.abort();
        }
    }
}
