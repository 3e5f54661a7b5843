//! The server under test: in-process on 127.0.0.1:0 with a manual clock,
//! replicas on the same database, and clients from chosen addresses.

use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use clap::Parser as _;
use data_encoding::BASE64;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Status;
use tonic::transport::Channel;
use warden::app::Application;
use warden::config::{Cli, Config};
use warden::domain::clock::ManualClock;
use warden::grpc::pb::auth_service_client::AuthServiceClient;
use warden::grpc::pb::{self, login_response::Outcome};

/// A fixed start time, on a TOTP step boundary.
pub fn epoch() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The key id of the signing key every test server is configured with.
pub const TEST_SIGNING_KID: &str = "s1";

/// A configuration for tests: port 0, cheap argon2, fixed keys, limits off.
pub fn test_config(db: &TestDatabase) -> Config {
    let mut config = Cli::try_parse_from(["warden"])
        .expect("default configuration")
        .config;
    config.server.listen = "127.0.0.1:0".parse().expect("address");
    config.database.url = db.url.clone();
    config.hashing.memory_kib = 256;
    config.hashing.iterations = 1;
    config.database.max_connections = 8;
    config.database.housekeeping_interval_secs = 3600;
    config.server.shutdown_grace_secs = 5;
    // Every test call comes from 127.0.0.1; the rate-limit suite turns them on.
    config.rate_limits.enabled = false;
    config.keys.ring = Some(format!("k1:{}", BASE64.encode(&[1u8; 32])).into());
    config.keys.token = Some(BASE64.encode(&[2u8; 32]).into());
    config.signing.keys = Some(format!("{TEST_SIGNING_KID}:{}", BASE64.encode(&[3u8; 32])).into());
    config
}

/// A running server and a client for it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where the health-only listener listens, when configured.
    pub health_addr: Option<SocketAddr>,
    /// Where the `/metrics` listener listens, when configured.
    pub http_addr: Option<SocketAddr>,
    /// A client on one connection.
    pub client: AuthServiceClient<Channel>,
    /// The server's clock.
    pub clock: Arc<ManualClock>,
    /// Its database (dropped after the server).
    pub db: TestDatabase,
    running: Running,
}

/// A built application serving in a task of its own until told to stop:
/// what a test server and its replicas share.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn spawn(app: Application) -> Self {
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Starts a graceful shutdown (as SIGTERM does) without waiting for it.
    fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops gracefully and waits for a clean end.
    async fn stop(&mut self) {
        self.begin_stop();
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
    }
}

/// A fresh connection to `addr`.
async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

impl TestServer {
    /// A server with the default test configuration.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server whose test configuration `adjust` changes.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDatabase::create().await;
        let mut config = test_config(&db);
        adjust(&mut config);
        Self::start_on(db, config).await
    }

    /// A server on an existing database with a given configuration.
    pub async fn start_on(db: TestDatabase, config: Config) -> Self {
        capture_logs();
        let clock = Arc::new(ManualClock::new(epoch()));
        let app = Application::build(config, clock.clone())
            .await
            .expect("server builds");
        let addr = app.local_addr().expect("bound address");
        let health_addr = app.health_addr().expect("bound health address");
        let http_addr = app.http_addr().expect("bound HTTP address");
        let running = Running::spawn(app);
        let client = AuthServiceClient::new(connect(addr).await);
        Self {
            addr,
            health_addr,
            http_addr,
            client,
            clock,
            db,
            running,
        }
    }

    /// A fresh channel to the server.
    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// Starts a graceful shutdown (as SIGTERM does) without waiting for it;
    /// [`TestServer::stop`] then waits for the end.
    pub fn begin_stop(&mut self) {
        self.running.begin_stop();
    }

    /// Stops the server gracefully and returns its database.
    pub async fn stop(mut self) -> TestDatabase {
        self.running.stop().await;
        self.db
    }

    /// Registers `username` with `password`, returning the user id.
    pub async fn register(&mut self, username: &str, password: &str) -> String {
        self.client
            .register(pb::RegisterRequest {
                username: username.into(),
                password: password.into(),
            })
            .await
            .expect("register")
            .into_inner()
            .user_id
    }

    /// Logs in, expecting a session.
    pub async fn login_session(&mut self, username: &str, password: &str) -> pb::Session {
        match self.login(username, password).await.expect("login") {
            Outcome::Session(s) => s,
            Outcome::MfaRequired(_) => panic!("expected a session, got a challenge"),
        }
    }

    /// Logs in, returning the outcome.
    pub async fn login(&mut self, username: &str, password: &str) -> Result<Outcome, Status> {
        let response = self
            .client
            .login(pb::LoginRequest {
                username: username.into(),
                password: password.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(response.outcome.expect("login outcome set"))
    }

    /// Registers and logs in, returning (user id, session token).
    pub async fn signed_in(&mut self, username: &str, password: &str) -> (String, String) {
        let id = self.register(username, password).await;
        let session = self.login_session(username, password).await;
        (id, session.token)
    }
}

/// A client whose connection comes from `local`, a loopback address of its
/// own (127.0.0.0/8 is all loopback), so tests can act as other end users.
pub async fn client_from(server: &TestServer, local: &str) -> AuthServiceClient<Channel> {
    AuthServiceClient::new(channel_from(server, local).await)
}

/// A channel whose connection comes from `local`.
pub async fn channel_from(server: &TestServer, local: &str) -> Channel {
    let target = server.addr;
    let local: std::net::IpAddr = local.parse().expect("local address");
    tonic::transport::Endpoint::from_shared(format!("http://{target}"))
        .expect("uri")
        .connect_with_connector(tower::service_fn(move |_| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(local, 0))?;
            let stream = socket.connect(target).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }))
        .await
        .expect("connect")
}

/// Whether health answers SERVING.
pub async fn serving(server: &TestServer) -> bool {
    use tonic_health::pb::health_client::HealthClient;
    let mut health = HealthClient::new(server.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "warden.v1.AuthService".into(),
        })
        .await
        .is_ok_and(|r| {
            r.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        })
}

impl TestServer {
    /// `n` fresh connections to this server.
    pub async fn channels(&self, n: usize) -> Vec<Channel> {
        let mut channels = Vec::with_capacity(n);
        for _ in 0..n {
            channels.push(self.channel().await);
        }
        channels
    }

    /// A second server process on the same database and clock: a replica.
    pub async fn replica(&self, config: Config) -> Replica {
        let app = Application::build(config, self.clock.clone())
            .await
            .expect("replica builds");
        let addr = app.local_addr().expect("bound address");
        Replica {
            addr,
            running: Running::spawn(app),
        }
    }
}

/// Another server on a test's database (see [`TestServer::replica`]).
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    running: Running,
}

impl Replica {
    /// A fresh connection to the replica.
    pub async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// Stops it gracefully.
    pub async fn stop(mut self) {
        self.running.stop().await;
    }
}
