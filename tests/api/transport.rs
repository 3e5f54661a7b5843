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
