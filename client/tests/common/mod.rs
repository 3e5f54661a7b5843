//! A real Warden for the black-box tests, started in-process on
//! 127.0.0.1:0 with a SQLite database in a temporary directory, and the
//! calls the tests make to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser as _;
use data_encoding::BASE64;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warden::app::Application;
use warden::config::{Cli, Config};
use warden::domain::clock::SystemClock;
pub mod backend;

use warden_client::WardenClient;
use warden_client::pb::{self, login_response::Outcome};

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    pub dir: Arc<tempfile::TempDir>,
}

/// Port 0, cheap argon2, fixed keys, rate limits off, on `dir`'s database.
pub fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Cli::try_parse_from(["warden"])
        .expect("default configuration")
        .config;
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.database.url = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
    config.hashing.memory_kib = 256;
    config.hashing.iterations = 1;
    config.server.shutdown_grace_secs = 1;
    config.rate_limits.enabled = false;
    config.keys.ring = Some(format!("k1:{}", BASE64.encode(&[1u8; 32])).into());
    config.keys.token = Some(BASE64.encode(&[2u8; 32]).into());
    config
}

pub const PASSWORD: &str = "correct horse battery staple";

impl Server {
    /// A server on a fresh database.
    pub async fn start() -> Self {
        Self::start_with(Arc::new(tempfile::tempdir().expect("temp dir")), |_| {}).await
    }

    /// A server on `dir`'s database (e.g. a restart), with `tweak` applied
    /// to the test configuration.
    pub async fn start_with(dir: Arc<tempfile::TempDir>, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = config(&dir);
        tweak(&mut config);
        let app = Application::build(config, Arc::new(SystemClock))
            .await
            .expect("server builds");
        let addr = app.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            handle: Some(handle),
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn grpc(&self) -> pb::auth_service_client::AuthServiceClient<tonic::transport::Channel> {
        WardenClient::connect(self.url())
            .await
            .expect("connect")
            .grpc()
    }

    /// Registers `username` and logs in, returning (user id, session token).
    pub async fn signed_in(&self, username: &str) -> (String, String) {
        let mut grpc = self.grpc().await;
        let user_id = grpc
            .register(pb::RegisterRequest {
                username: username.into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("register")
            .into_inner()
            .user_id;
        (user_id, self.login(username).await)
    }

    /// A new session of `username`.
    pub async fn login(&self, username: &str) -> String {
        let outcome = self
            .grpc()
            .await
            .login(pb::LoginRequest {
                username: username.into(),
                password: PASSWORD.into(),
                ..Default::default()
            })
            .await
            .expect("login")
            .into_inner()
            .outcome;
        match outcome {
            Some(Outcome::Session(s)) => s.token,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    /// An access token for the session `token`.
    pub async fn access_token(&self, token: &str) -> String {
        self.grpc()
            .await
            .issue_access_token(with_bearer(pb::IssueAccessTokenRequest {}, token))
            .await
            .expect("issue an access token")
            .into_inner()
            .access_token
    }

    pub async fn logout(&self, token: &str) {
        self.grpc()
            .await
            .logout(with_bearer(pb::LogoutRequest {}, token))
            .await
            .expect("logout");
    }

    /// Stops the server and waits for it; the database stays in `dir`.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
        self.dir.clone()
    }
}

pub fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    request
}
