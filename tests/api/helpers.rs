//! The test harness: starts the real server on 127.0.0.1:0 with its own
//! database and a manual clock, and hands out a generated tonic client.
//!
//! Backend: SQLite in a temporary directory by default; PostgreSQL when
//! `WARDEN_TEST_DATABASE_URL` names a server (each test gets a fresh database,
//! dropped afterwards).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};

use clap::Parser as _;
use data_encoding::BASE64;
use sea_orm::{ConnectionTrait as _, Database};
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;
use warden::app::Application;
use warden::config::{Cli, Config};
use warden::domain::clock::ManualClock;
use warden::grpc::pb::auth_service_client::AuthServiceClient;
use warden::grpc::pb::{self, login_response::Outcome};

/// A fixed start time, on a TOTP step boundary.
pub fn epoch() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

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
fn capture_logs() {
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

/// The PostgreSQL server to test against, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("WARDEN_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A database made for one test.
pub struct TestDatabase {
    /// The URL the server uses.
    pub url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh database on the configured backend.
    pub async fn create() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match postgres_url() {
            None => {
                let url = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
                Self {
                    url,
                    dir,
                    postgres: None,
                }
            }
            Some(admin) => {
                let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
                let db = raw_connect_result(&admin)
                    .await
                    .expect("connect to PostgreSQL");
                db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .expect("database URL has a path");
                Self {
                    url: format!("{base}/{name}"),
                    dir,
                    postgres: Some((admin, name)),
                }
            }
        }
    }

    /// A fresh SQLite database, whatever the configured backend (for rules
    /// that are SQLite's own).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/warden.db?mode=rwc", dir.path().display());
        Self {
            url,
            dir,
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, for tests that need one: they are
    /// `#[ignore]`d and named `on_postgres_*`, and `.ci/run` runs them with
    /// `--ignored` against its server. Panics when none is configured, so a
    /// run that asked for them cannot pass without PostgreSQL.
    pub async fn postgres() -> Self {
        assert!(
            postgres_url().is_some(),
            "this test needs PostgreSQL: set WARDEN_TEST_DATABASE_URL"
        );
        let db = Self::create().await;
        assert!(db.is_postgres());
        db
    }

    /// The temporary directory (SQLite file, key files).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            // Drop runs outside any runtime guarantee, so use a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(db) = raw_connect_result(&admin).await {
                        let _ = db
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

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
    config
}

/// A running server and a client for it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client on one connection.
    pub client: AuthServiceClient<Channel>,
    /// The server's clock.
    pub clock: Arc<ManualClock>,
    /// Its database (dropped after the server).
    pub db: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
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
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let client = AuthServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
        Self {
            addr,
            client,
            clock,
            db,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// A fresh channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// Starts a graceful shutdown (as SIGTERM does) without waiting for it;
    /// [`TestServer::stop`] then waits for the end.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server gracefully and returns its database.
    pub async fn stop(mut self) -> TestDatabase {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
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

/// A request carrying `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header value"),
    );
    request
}

/// Asserts a status's code and its ErrorInfo reason (domain `warden`).
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "status {status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo present");
    assert_eq!(info.reason, reason, "status {status:?}");
    assert_eq!(info.domain, "warden");
}

/// Asserts INVALID_ARGUMENT INVALID_REQUEST with a BadRequest naming `field`.
#[track_caller]
pub fn assert_invalid(status: &Status, field: &str) {
    assert_status(status, Code::InvalidArgument, "INVALID_REQUEST");
    let details = status.get_error_details();
    let bad = details.bad_request().expect("BadRequest present");
    assert!(
        bad.field_violations.iter().any(|v| v.field == field),
        "{status:?} names {field}"
    );
}

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here from the RFC so the
/// server is checked against an implementation other than its own.
pub fn independent_totp(secret: &[u8], unix_secs: u64) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&(unix_secs / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

impl TestServer {
    /// The server clock as Unix seconds.
    pub fn now(&self) -> u64 {
        use warden::domain::clock::Clock as _;
        u64::try_from(self.clock.now().unix_timestamp()).expect("after 1970")
    }

    /// Starts enrolment for the session `token`.
    pub async fn enroll(&mut self, token: &str, password: &str) -> pb::EnrollTotpResponse {
        self.client
            .enroll_totp(bearer(
                pb::EnrollTotpRequest {
                    password: password.into(),
                },
                token,
            ))
            .await
            .expect("enroll")
            .into_inner()
    }

    /// Confirms enrolment with `code`.
    pub async fn confirm(&mut self, token: &str, code: &str) -> Result<Vec<String>, Status> {
        let request = pb::VerifyTotpRequest {
            code: code.into(),
            purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
        };
        self.client
            .verify_totp(bearer(request, token))
            .await
            .map(|r| r.into_inner().recovery_codes)
    }

    /// Enrols and confirms TOTP for the session `token` at the current time,
    /// returning the raw secret and the recovery codes.
    pub async fn enable_totp(&mut self, token: &str, password: &str) -> (Vec<u8>, Vec<String>) {
        let enrollment = self.enroll(token, password).await;
        let secret = data_encoding::BASE32_NOPAD
            .decode(enrollment.secret_base32.as_bytes())
            .expect("base32 secret");
        let codes = self
            .confirm(token, &independent_totp(&secret, self.now()))
            .await
            .expect("confirm");
        (secret, codes)
    }

    /// Logs in expecting a challenge; returns its token.
    pub async fn login_challenge(&mut self, username: &str, password: &str) -> pb::MfaChallenge {
        match self.login(username, password).await.expect("login") {
            Outcome::MfaRequired(c) => c,
            Outcome::Session(_) => panic!("expected a challenge, got a session"),
        }
    }

    /// Answers a challenge with a TOTP code.
    pub async fn verify_challenge(
        &mut self,
        challenge: &str,
        code: &str,
    ) -> Result<pb::Session, Status> {
        let request = pb::VerifyTotpRequest {
            code: code.into(),
            purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(
                challenge.into(),
            )),
        };
        self.client
            .verify_totp(request)
            .await
            .map(|r| r.into_inner().session.expect("session set"))
    }
}

/// Tables Warden keeps.
pub const TABLES: [&str; 6] = [
    "users",
    "sessions",
    "login_challenges",
    "totp_secrets",
    "recovery_codes",
    "failure_budgets",
];

/// Every byte the database holds for Warden's tables: the SQLite files
/// (database and WAL) or, for PostgreSQL, each table's rows as text (bytea
/// shows as hex).
pub async fn raw_database(db: &TestDatabase) -> Vec<u8> {
    if !db.is_postgres() {
        let mut bytes = Vec::new();
        for name in ["warden.db", "warden.db-wal"] {
            if let Ok(b) = std::fs::read(db.dir().join(name)) {
                bytes.extend(b);
            }
        }
        return bytes;
    }
    let conn = raw_connect(&db.url).await;
    let mut text = String::new();
    for table in TABLES {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT coalesce(string_agg(t::text, '|'), '') AS dump FROM {table} t"),
            ))
            .await
            .expect("dump table")
            .expect("one row");
        text.push_str(&row.try_get::<String>("", "dump").expect("dump column"));
    }
    text.into_bytes()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs one SQL statement against the test database.
pub async fn execute_sql(db: &TestDatabase, sql: &str) {
    let conn = raw_connect(&db.url).await;
    conn.execute_unprepared(sql).await.expect("SQL runs");
}

/// Runs a `SELECT count(*) …` against the test database.
pub async fn count(db: &TestDatabase, sql: &str) -> i64 {
    let conn = raw_connect(&db.url).await;
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect("query runs")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

impl TestServer {
    /// Completes a challenge with a recovery code.
    pub async fn use_recovery_code(
        &mut self,
        challenge: &str,
        code: &str,
    ) -> Result<pb::UseRecoveryCodeResponse, Status> {
        self.client
            .use_recovery_code(pb::UseRecoveryCodeRequest {
                challenge_token: challenge.into(),
                code: code.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// GetAccount for `token`.
    pub async fn account(&mut self, token: &str) -> pb::GetAccountResponse {
        self.client
            .get_account(bearer(pb::GetAccountRequest {}, token))
            .await
            .expect("get account")
            .into_inner()
    }

    /// Whether `token` is a live session: true when ValidateSession accepts
    /// it, false only when it answers SESSION_INVALID (any other failure,
    /// e.g. INTERNAL or UNAVAILABLE, panics rather than reading as "ended").
    pub async fn is_live(&mut self, token: &str) -> bool {
        let answer = self
            .client
            .validate_session(pb::ValidateSessionRequest {
                token: token.into(),
            })
            .await;
        match answer {
            Ok(_) => true,
            Err(status) => {
                assert_status(&status, Code::Unauthenticated, "SESSION_INVALID");
                false
            }
        }
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

/// The RetryInfo wait of a status, in whole seconds.
pub fn retry_secs(status: &Status) -> Option<u64> {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .map(|d| d.as_secs())
}

/// A codec that sends raw bytes, to hand the server messages no generated
/// client would produce.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// The raw codec's encoder/decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let len = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, len).to_vec()))
    }
}

/// Sends `body` as the request message of `rpc` (e.g. "Login").
pub async fn raw_call(channel: Channel, rpc: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    raw_call_with(channel, rpc, body, None).await
}

/// [`raw_call`] with an `authorization` metadata value, if any.
pub async fn raw_call_with(
    channel: Channel,
    rpc: &str,
    body: Vec<u8>,
    authorization: Option<&str>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path =
        http::uri::PathAndQuery::try_from(format!("/warden.v1.AuthService/{rpc}")).expect("path");
    let mut request = Request::new(body);
    if let Some(value) = authorization {
        request.metadata_mut().insert(
            "authorization",
            value.parse().expect("a printable ASCII header value"),
        );
    }
    grpc.unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
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

/// A direct connection for test set-up and inspection. Statement logging is
/// off: the log-capture tests must see only what the server logs.
pub async fn raw_connect_result(url: &str) -> Result<sea_orm::DatabaseConnection, sea_orm::DbErr> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options.sqlx_logging(false).max_connections(2);
    Database::connect(options).await
}

/// [`raw_connect_result`], expecting success.
pub async fn raw_connect(url: &str) -> sea_orm::DatabaseConnection {
    raw_connect_result(url).await.expect("connect")
}

/// A well-formed TOTP code that is not `right`.
pub fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Runs `call` once per channel, every call released at the same moment: all
/// connections are made first and the calls wait at a barrier, so they
/// really overlap (run the test on a multi-thread runtime). Returns the
/// answers in channel order.
pub async fn race<T, F, Fut>(channels: Vec<Channel>, call: F) -> Vec<Result<T, Status>>
where
    F: Fn(AuthServiceClient<Channel>, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(channels.len()));
    let calls: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, channel)| {
            let (barrier, call) = (barrier.clone(), call.clone());
            tokio::spawn(async move {
                let client = AuthServiceClient::new(channel);
                barrier.wait().await;
                call(client, i).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        answers.push(call.await.expect("call task"));
    }
    answers
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
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Replica {
            addr,
            stop: Some(stop),
            handle: Some(handle),
        }
    }
}

/// Another server on a test's database (see [`TestServer::replica`]).
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// A fresh connection to the replica.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    /// Stops it gracefully.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle
                .await
                .expect("replica task")
                .expect("replica ran cleanly");
        }
    }
}

/// How many audit log lines of `event` name the account `user_id`.
pub fn audit_events(event: &str, user_id: &str) -> usize {
    // Matched on the quoted value: field names may carry colour codes.
    let event = format!("\"{event}\"");
    logs()
        .lines()
        .filter(|line| line.contains("warden::audit") && line.contains(&event))
        .filter(|line| line.contains(user_id))
        .count()
}

/// The real `warden` binary serving on a port of its own; killed with
/// SIGKILL when dropped. Everything it writes to stderr is kept.
pub struct ServerProcess {
    /// Where it listens.
    pub address: String,
    child: std::process::Child,
    stderr: Arc<Mutex<String>>,
}

/// The listening address in a start-up line, text (`address=…`) or JSON
/// (`"address":"…"`).
fn listening_address(line: &str) -> Option<String> {
    if let Some(rest) = line.split("\"address\":\"").nth(1) {
        return rest.split('"').next().map(str::to_owned);
    }
    line.split("address=")
        .nth(1)
        .map(|a| a.split_whitespace().next().unwrap_or_default().to_owned())
}

impl ServerProcess {
    /// Starts `warden serve` on `db` with the test keys, cheap argon2 unless
    /// `envs` say otherwise, and `envs`.
    pub fn start(db: &TestDatabase, envs: &[(&str, &str)]) -> Self {
        use secrecy::ExposeSecret as _;
        let config = test_config(db);
        let secret = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .map(|k| k.expose_secret().to_owned())
                .expect("test key")
        };
        let (keys, token_key) = (secret(&config.keys.ring), secret(&config.keys.token));
        let mut all = vec![
            ("WARDEN_KEYS", keys.as_str()),
            ("WARDEN_TOKEN_KEY", token_key.as_str()),
        ];
        all.extend_from_slice(envs);
        Self::start_without_keys(db, &all)
    }

    /// [`ServerProcess::start`] without the test keys: `envs` give them
    /// (e.g. as `*_FILE` settings).
    pub fn start_without_keys(db: &TestDatabase, envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARDEN_DATABASE_URL", &db.url)
            .env("WARDEN_LISTEN", "127.0.0.1:0")
            .env("WARDEN_ARGON2_MEMORY_KIB", "256")
            .env("WARDEN_ARGON2_ITERATIONS", "1")
            .env("WARDEN_RATE_LIMIT_ENABLED", "false")
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start warden");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let kept = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = kept.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line) {
                    let _ = tx.send(address);
                }
                let mut all = sink.lock().unwrap_or_else(|p| p.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });
        let address = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server reports its address");
        Self {
            address,
            child,
            stderr: kept,
        }
    }

    /// A client connected to it.
    pub async fn client(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::connect(format!("http://{}", self.address))
            .await
            .expect("connect")
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends SIGTERM and waits for the exit (bounded); returns its status
    /// and all of its stderr.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM sent");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server exits after SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        // The reader thread drains the pipe after the exit.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        (status, self.stderr())
    }

    /// Kills it with SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
