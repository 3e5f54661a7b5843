//! Per-IP rate limits: groups, keys, trusted proxies, and what is never limited.

use tonic::{Code, Request};
use warden::grpc::pb;

use crate::helpers::{PASSWORD, TestServer, assert_status, channel_from, client_from, retry_secs};

fn login(username: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        username: username.into(),
        password: PASSWORD.into(),
        ..Default::default()
    }
}

fn forwarded(username: &str, xff: &str) -> Request<pb::LoginRequest> {
    let mut request = Request::new(login(username));
    request
        .metadata_mut()
        .insert("x-forwarded-for", xff.parse().unwrap());
    request
}

async fn start_limited(trusted: &[&str]) -> TestServer {
    let trusted: Vec<_> = trusted.iter().map(|c| c.parse().unwrap()).collect();
    TestServer::start_with(|c| {
        c.rate_limits.enabled = true;
        c.lockout.threshold = 1000;
        c.server.trusted_proxies = trusted;
    })
    .await
}

#[tokio::test]
async fn the_sixth_login_in_a_minute_is_refused_with_a_wait_and_other_addresses_are_not() {
    let server = start_limited(&[]).await;
    let mut first = client_from(&server, "127.0.0.2").await;
    let mut second = client_from(&server, "127.0.0.3").await;

    for _ in 0..5 {
        let err = first.login(login("nobody")).await.unwrap_err();
        assert_status(&err, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let limited = first.login(login("nobody")).await.unwrap_err();
    let other = second.login(login("nobody")).await.unwrap_err();
    // Other groups have their own buckets.
    let register = first
        .register(pb::RegisterRequest {
            username: "fresh".into(),
            password: PASSWORD.into(),
        })
        .await;

    assert_status(&limited, Code::ResourceExhausted, "RATE_LIMITED");
    let wait = retry_secs(&limited).expect("RetryInfo");
    assert!((1..=12).contains(&wait), "wait {wait}s");
    assert_status(&other, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert!(register.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_are_keyed_only_behind_trusted_proxies() {
    let server = start_limited(&["127.0.0.5/32"]).await;
    let mut proxy = client_from(&server, "127.0.0.5").await;
    let mut stranger = client_from(&server, "127.0.0.6").await;

    for _ in 0..5 {
        proxy
            .login(forwarded("nobody", "198.51.100.1"))
            .await
            .unwrap_err();
    }
    let first_limited = proxy
        .login(forwarded("nobody", "198.51.100.1"))
        .await
        .unwrap_err();
    let second_user = proxy
        .login(forwarded("nobody", "203.0.113.2, 198.51.100.2"))
        .await
        .unwrap_err();
    // An untrusted peer cannot escape its bucket by writing the header.
    for i in 0..5 {
        stranger
            .login(forwarded("nobody", &format!("192.0.2.{i}")))
            .await
            .unwrap_err();
    }
    let spoofed = stranger
        .login(forwarded("nobody", "192.0.2.99"))
        .await
        .unwrap_err();

    assert_status(&first_limited, Code::ResourceExhausted, "RATE_LIMITED");
    assert_status(&second_user, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&spoofed, Code::ResourceExhausted, "RATE_LIMITED");
    server.stop().await;
}

#[tokio::test]
async fn second_factor_calls_share_a_bucket_and_health_is_never_limited() {
    let server = start_limited(&[]).await;
    let mut client = client_from(&server, "127.0.0.7").await;

    for _ in 0..5 {
        let err = client
            .use_recovery_code(pb::UseRecoveryCodeRequest {
                challenge_token: "x".into(),
                code: "y".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_status(&err, Code::Unauthenticated, "CHALLENGE_INVALID");
    }
    let limited = client
        .verify_totp(pb::VerifyTotpRequest {
            code: "123456".into(),
            purpose: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    let validate = client
        .validate_session(pb::ValidateSessionRequest {
            token: "wss_x".into(),
        })
        .await
        .unwrap_err();
    // Health from the exhausted address itself.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        channel_from(&server, "127.0.0.7").await,
    );
    let mut healthy = true;
    for _ in 0..30 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "warden.v1.AuthService".into(),
            })
            .await
            .map(|r| r.into_inner().status);
        healthy &= status.is_ok_and(|s| {
            s == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        });
    }

    assert_status(&limited, Code::ResourceExhausted, "RATE_LIMITED");
    assert_status(&validate, Code::Unauthenticated, "SESSION_INVALID");
    assert!(healthy);
    server.stop().await;
}

#[tokio::test]
async fn forwarded_hops_with_ports_are_keyed_by_host_and_junk_hops_by_themselves() {
    let server = start_limited(&["127.0.0.8/32"]).await;
    let mut proxy = client_from(&server, "127.0.0.8").await;

    // One host behind different source ports is one caller.
    for port in 1..=5 {
        proxy
            .login(forwarded("nobody", &format!("198.51.100.7:{port}")))
            .await
            .unwrap_err();
    }
    let same_host = proxy
        .login(forwarded("nobody", "198.51.100.7:4711"))
        .await
        .unwrap_err();
    let v6_same_64 = {
        for _ in 0..5 {
            proxy
                .login(forwarded("nobody", "[2001:db8::1]:443"))
                .await
                .unwrap_err();
        }
        proxy
            .login(forwarded("nobody", "2001:db8::2"))
            .await
            .unwrap_err()
    };
    // A hop that is no address has a bucket of its own, not the proxy's.
    for _ in 0..5 {
        proxy
            .login(forwarded("nobody", "unknown"))
            .await
            .unwrap_err();
    }
    let junk_again = proxy
        .login(forwarded("nobody", "unknown"))
        .await
        .unwrap_err();
    let other_junk = proxy
        .login(forwarded("nobody", "_hidden"))
        .await
        .unwrap_err();
    let proxy_itself = proxy.login(login("nobody")).await.unwrap_err();

    assert_status(&same_host, Code::ResourceExhausted, "RATE_LIMITED");
    assert_status(&v6_same_64, Code::ResourceExhausted, "RATE_LIMITED");
    assert_status(&junk_again, Code::ResourceExhausted, "RATE_LIMITED");
    assert_status(&other_junk, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_status(&proxy_itself, Code::Unauthenticated, "INVALID_CREDENTIALS");
    server.stop().await;
}
