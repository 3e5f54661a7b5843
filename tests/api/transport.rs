//! Transport and operations: the plaintext health-only port, `/metrics`,
//! TLS and mTLS on the main listener.

use std::net::SocketAddr;

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use warden::grpc::pb;
use warden::grpc::pb::auth_service_client::AuthServiceClient;

use crate::helpers::TestServer;

async fn plaintext(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

async fn health_status(channel: Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

#[tokio::test]
async fn the_health_port_serves_health_and_nothing_else() {
    let server = TestServer::start_with(|config| {
        config.server.health_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let health_addr = server.health_addr.expect("health listener bound");
    assert_ne!(health_addr, server.addr);

    for service in ["", "warden.v1.AuthService"] {
        assert_eq!(
            health_status(plaintext(health_addr).await, service).await,
            ServingStatus::Serving,
            "service {service:?}"
        );
    }

    let mut auth = AuthServiceClient::new(plaintext(health_addr).await);
    let refused = auth
        .validate_session(pb::ValidateSessionRequest { token: "x".into() })
        .await
        .expect_err("no AuthService on the health port");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    server.stop().await;
}

/// `GET path` over HTTP/1.1 on a raw connection: (status line, body).
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

#[tokio::test]
async fn metrics_count_calls_locks_and_limits_without_user_data() {
    let mut server = TestServer::start_with(|config| {
        config.server.http_listen = Some("127.0.0.1:0".parse().expect("address"));
        config.rate_limits.enabled = true;
        config.rate_limits.login_burst = 8;
        config.lockout.threshold = 3;
    })
    .await;
    let http = server.http_addr.expect("HTTP listener bound");
    let user_id = server
        .register("metrics-alice", "correct horse battery")
        .await;
    // Three failures lock the name (ACCOUNT_LOCKED); the login bucket
    // (8) then runs dry (RATE_LIMITED).
    let mut rate_limited = false;
    for _ in 0..12 {
        if let Err(status) = server.login("metrics-alice", "wrong password!!").await
            && status.message().contains("too many requests")
        {
            rate_limited = true;
            break;
        }
    }
    assert!(rate_limited, "the login bucket ran dry");

    let (status, body) = http_get(http, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    for name in [
        "warden_rpc_requests_total{code=\"OK\",method=\"Register\"} 1",
        "warden_rpc_requests_total{code=\"UNAUTHENTICATED\",method=\"Login\"}",
        "warden_rpc_requests_total{code=\"RESOURCE_EXHAUSTED\",method=\"Login\"}",
        "warden_rpc_duration_seconds_bucket{method=\"Login\"",
        "warden_rpc_duration_seconds_count{method=\"Register\"} 1",
        "warden_hash_jobs_running 0",
        "warden_hash_jobs_queued 0",
        "warden_hash_rejected_total 0",
        "warden_accounts_locked_total ",
        "warden_rate_limited_total{group=\"login\"} 1",
        "warden_db_pool_connections{state=\"idle\"}",
        "warden_db_pool_connections{state=\"in_use\"}",
    ] {
        assert!(body.contains(name), "{name} missing from:\n{body}");
    }
    let locked = body
        .lines()
        .find_map(|l| l.strip_prefix("warden_accounts_locked_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("a locked count");
    assert!(locked >= 1, "{body}");
    for secret in [
        "metrics-alice",
        user_id.as_str(),
        "127.0.0.1",
        "wrong password",
    ] {
        assert!(!body.contains(secret), "{secret} leaked into:\n{body}");
    }

    let (status, _) = http_get(http, "/other").await;
    assert!(status.contains("404"), "{status}");
    server.stop().await;
}

/// A test CA (generated here; no keys in the repository).
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A PEM certificate and key.
struct Leaf {
    cert: String,
    key: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, name: &str, usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf("localhost", rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self) -> Leaf {
        self.leaf("backend", rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Writes `text` to `path` the way Kubernetes updates a Secret volume: a
/// new file moved into place.
fn replace(path: &std::path::Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, path).expect("rename");
}

/// A server whose main listener speaks TLS, with a plaintext health port.
struct TlsServer {
    addr: SocketAddr,
    health_addr: SocketAddr,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _db: crate::helpers::TestDatabase,
}

impl TlsServer {
    async fn start(
        server: &Leaf,
        client_ca: Option<&str>,
        adjust: impl FnOnce(&mut warden::config::Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &server.cert).expect("write cert");
        std::fs::write(&key, &server.key).expect("write key");
        let db = crate::helpers::TestDatabase::create().await;
        let mut config = crate::helpers::test_config(&db);
        config.server.tls_cert_file = Some(cert);
        config.server.tls_key_file = Some(key);
        if let Some(ca) = client_ca {
            let path = dir.path().join("client-ca.crt");
            std::fs::write(&path, ca).expect("write CA");
            config.server.tls_client_ca_file = Some(path);
        }
        config.server.health_listen = Some("127.0.0.1:0".parse().expect("address"));
        adjust(&mut config);
        let clock = std::sync::Arc::new(warden::domain::clock::ManualClock::new(
            crate::helpers::epoch(),
        ));
        let app = warden::app::Application::build(config, clock)
            .await
            .expect("server builds");
        let addr = app.local_addr().expect("address");
        let health_addr = app.health_addr().expect("address").expect("health port");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            health_addr,
            dir,
            stop: Some(stop),
            handle,
            _db: db,
        }
    }

    async fn tls_channel(
        &self,
        ca: &str,
        identity: Option<&Leaf>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca))
            .domain_name("localhost");
        if let Some(leaf) = identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(&leaf.cert, &leaf.key));
        }
        Channel::from_shared(format!("https://{}", self.addr))
            .expect("uri")
            .tls_config(tls)
            .expect("tls config")
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle
            .await
            .expect("server task")
            .expect("server ran cleanly");
    }
}

/// Whether an AuthService call gets an answer from the application (any
/// status the handlers make) over `channel`.
async fn answers(channel: Result<Channel, tonic::transport::Error>) -> bool {
    let Ok(channel) = channel else { return false };
    let mut client = AuthServiceClient::new(channel);
    let call = client.validate_session(pb::ValidateSessionRequest {
        token: "not-a-token".into(),
    });
    match tokio::time::timeout(std::time::Duration::from_secs(5), call).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => !matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ),
        Err(_) => false,
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_plaintext() {
    let ca = TestCa::new("Warden test CA");
    let server = TlsServer::start(&ca.server(), None, |config| {
        config.rate_limits.enabled = true;
        config.rate_limits.login_burst = 1;
    })
    .await;

    assert!(
        answers(server.tls_channel(&ca.pem(), None).await).await,
        "TLS client"
    );
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await;
    assert!(!answers(plain).await, "plaintext must be refused");
    let stranger = TestCa::new("Another CA");
    assert!(
        !answers(server.tls_channel(&stranger.pem(), None).await).await,
        "a client that does not trust the server's CA gets no answer"
    );

    // The probe port stays plaintext while the API speaks TLS.
    assert_eq!(
        health_status(plaintext(server.health_addr).await, "warden.v1.AuthService").await,
        ServingStatus::Serving
    );

    // The rate-limit key still comes from the TLS connection's peer.
    let mut client =
        AuthServiceClient::new(server.tls_channel(&ca.pem(), None).await.expect("connect"));
    let login = || pb::LoginRequest {
        username: "nobody-here".into(),
        password: "wrong password!!".into(),
        ..Default::default()
    };
    let first = client.login(login()).await.expect_err("unknown user");
    assert_eq!(first.code(), Code::Unauthenticated, "{first:?}");
    let second = client.login(login()).await.expect_err("limited");
    assert_eq!(second.code(), Code::ResourceExhausted, "{second:?}");
    assert!(second.message().contains("too many requests"), "{second:?}");
    server.stop().await;
}

#[tokio::test]
async fn mtls_refuses_clients_without_a_certificate_from_the_ca() {
    let ca = TestCa::new("Warden test CA");
    let clients = TestCa::new("Backend client CA");
    let server = TlsServer::start(&ca.server(), Some(&clients.pem()), |_| {}).await;

    assert!(
        answers(server.tls_channel(&ca.pem(), Some(&clients.client())).await).await,
        "a client with a certificate from the client CA"
    );
    assert!(
        !answers(server.tls_channel(&ca.pem(), None).await).await,
        "no client certificate"
    );
    let other = TestCa::new("Someone else");
    assert!(
        !answers(server.tls_channel(&ca.pem(), Some(&other.client())).await).await,
        "a client certificate from another CA"
    );
    assert_eq!(
        health_status(plaintext(server.health_addr).await, "").await,
        ServingStatus::Serving,
        "the probe port needs no certificate"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let old = TestCa::new("Old CA");
    let server = TlsServer::start(&old.server(), None, |_| {}).await;
    assert!(answers(server.tls_channel(&old.pem(), None).await).await);

    let new = TestCa::new("New CA");
    let leaf = new.server();
    replace(&server.dir.path().join("tls.key"), &leaf.key);
    replace(&server.dir.path().join("tls.crt"), &leaf.cert);

    let mut rotated = false;
    for _ in 0..40 {
        if answers(server.tls_channel(&new.pem(), None).await).await {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(rotated, "the new certificate was not served");
    assert!(
        !answers(server.tls_channel(&old.pem(), None).await).await,
        "the old certificate is no longer served"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_tls_files_refuse_the_start_naming_the_file() {
    let db = crate::helpers::TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("Warden test CA");
    let leaf = ca.server();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&cert, &leaf.cert).expect("write");
    std::fs::write(&key, &leaf.key).expect("write");
    std::fs::write(&junk, "not a PEM file\n").expect("write");
    let missing = dir.path().join("missing.crt");

    let cases = [
        (
            missing.clone(),
            key.clone(),
            None,
            "WARDEN_TLS_CERT_FILE",
            missing.clone(),
        ),
        (
            junk.clone(),
            key.clone(),
            None,
            "WARDEN_TLS_CERT_FILE",
            junk.clone(),
        ),
        (
            cert.clone(),
            junk.clone(),
            None,
            "WARDEN_TLS_KEY_FILE",
            junk.clone(),
        ),
        (
            cert.clone(),
            key.clone(),
            Some(junk.clone()),
            "WARDEN_TLS_CLIENT_CA_FILE",
            junk.clone(),
        ),
    ];
    for (cert, key, ca, setting, named) in cases {
        let mut config = crate::helpers::test_config(&db);
        config.server.tls_cert_file = Some(cert);
        config.server.tls_key_file = Some(key);
        config.server.tls_client_ca_file = ca;
        let clock = std::sync::Arc::new(warden::domain::clock::ManualClock::new(
            crate::helpers::epoch(),
        ));
        let Err(error) = warden::app::Application::build(config, clock).await else {
            panic!("{setting}: the start was not refused");
        };
        let message = format!("{error:#}");
        assert!(message.contains(setting), "{setting}: {message}");
        assert!(
            message.contains(&named.display().to_string()),
            "{setting}: {message}"
        );
    }
}

#[tokio::test]
async fn the_health_port_turns_not_serving_on_shutdown_and_metrics_see_the_running_hash() {
    // A slow hash keeps a Login in flight across the shutdown.
    let mut server = TestServer::start_with(|c| {
        c.hashing.memory_kib = 65_536;
        c.hashing.iterations = 8;
        c.server.shutdown_grace_secs = 20;
        c.server.health_listen = Some("127.0.0.1:0".parse().expect("address"));
        c.server.http_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let health_addr = server.health_addr.expect("health port");
    let http = server.http_addr.expect("HTTP port");
    server
        .register("slow-hasher", "correct horse battery")
        .await;
    let mut watch = HealthClient::new(plaintext(health_addr).await)
        .watch(HealthCheckRequest {
            service: "warden.v1.AuthService".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("stream").expect("a status");
    assert_eq!(first.status(), ServingStatus::Serving);

    let mut client = server.client.clone();
    let in_flight = tokio::spawn(async move {
        client
            .login(pb::LoginRequest {
                username: "slow-hasher".into(),
                password: "correct horse battery".into(),
                ..Default::default()
            })
            .await
    });
    let mut running = false;
    for _ in 0..50 {
        let (_, body) = http_get(http, "/metrics").await;
        if body.contains("warden_hash_jobs_running 1") {
            running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(running, "the login's hash showed as running");

    server.begin_stop();
    let during = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("the health port reports the shutdown")
        .expect("stream")
        .expect("a status");
    assert_eq!(during.status(), ServingStatus::NotServing);
    assert!(!in_flight.is_finished(), "the login was still in flight");
    drop(watch);
    assert!(in_flight.await.expect("task").is_ok(), "the login finished");
    server.stop().await;
}
