//! Black-box tests against the real Warden server, started in-process on
//! 127.0.0.1:0 with a SQLite database in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Server, with_bearer};
use tower::{Layer as _, ServiceExt as _};
use warden_client::clock::ManualClock;
use warden_client::{ClientError, Identity, RequireSession, WardenClient};

fn rejected_as(result: Result<Identity, ClientError>, expected: &str) {
    match result {
        Err(ClientError::Rejected { reason }) => assert_eq!(reason, expected),
        other => panic!("expected Rejected {{ {expected} }}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_validates_to_its_identity() {
    let server = Server::start().await;
    let (user_id, token) = server.signed_in("alice").await;
    let client = WardenClient::connect(server.url()).await.expect("connect");
    let identity = client.validate(&token).await.expect("valid session");
    assert_eq!(identity.user_id, user_id);
    assert_eq!(identity.username.as_deref(), Some("alice"));
    assert!(!identity.session_id.is_empty());
    assert_eq!(identity.amr, vec!["pwd".to_owned()]);
    assert!(!identity.has_mfa());
    assert!(identity.expires_at > std::time::SystemTime::now());
    assert!(identity.authenticated_at <= std::time::SystemTime::now());
    // The cached answer is the same.
    assert_eq!(client.validate(&token).await.expect("cached"), identity);
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_empty_tokens_are_rejected() {
    let server = Server::start().await;
    let client = WardenClient::connect(server.url()).await.expect("connect");
    rejected_as(client.validate("not-a-token").await, "SESSION_INVALID");
    rejected_as(client.validate("").await, "INVALID_REQUEST");
    // Warden's own answer for an empty token, bypassing the local check.
    rejected_as(client.validate_uncached("").await, "INVALID_REQUEST");
    server.stop().await;
}

#[tokio::test]
async fn a_restricted_session_is_refused_and_never_cached_as_valid() {
    // Required TOTP: a session of an account without TOTP is restricted, and
    // Warden answers PERMISSION_DENIED for it: a "no", never a pass.
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = Server::start_with(dir, |c| c.totp.require = true).await;
    let (_, token) = server.signed_in("rita").await;
    let client = WardenClient::connect(server.url()).await.expect("connect");
    rejected_as(client.validate(&token).await, "TOTP_ENROLLMENT_REQUIRED");
    rejected_as(client.validate(&token).await, "TOTP_ENROLLMENT_REQUIRED");
    server.stop().await;
}

#[tokio::test]
async fn logout_is_seen_at_once_without_a_cache() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("bob").await;
    let client = WardenClient::builder(server.url())
        .cache_ttl(Duration::ZERO)
        .connect()
        .await
        .expect("connect");
    client.validate(&token).await.expect("valid before logout");
    server.logout(&token).await;
    rejected_as(client.validate(&token).await, "SESSION_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn logout_is_seen_once_the_cache_entry_expires() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("carol").await;
    let clock = Arc::new(ManualClock::new());
    let ttl = Duration::from_secs(5);
    let client = WardenClient::builder(server.url())
        .cache_ttl(ttl)
        .clock(clock.clone())
        .connect()
        .await
        .expect("connect");
    client.validate(&token).await.expect("valid before logout");
    server.logout(&token).await;
    // Within the TTL the cached answer stands (that is the trade-off)...
    client.validate(&token).await.expect("still cached");
    clock.advance(ttl - Duration::from_secs(1));
    client.validate(&token).await.expect("still cached");
    // ...and never after it.
    clock.advance(Duration::from_secs(1));
    rejected_as(client.validate(&token).await, "SESSION_INVALID");
    // The failure was not cached as a success either.
    rejected_as(client.validate(&token).await, "SESSION_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_not_rejected() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("dave").await;
    let client = WardenClient::builder(server.url())
        .cache_ttl(Duration::ZERO)
        .connect_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect");
    client.validate(&token).await.expect("valid while up");
    let url = server.url();
    server.stop().await;
    let error = client.validate(&token).await.expect_err("no answer");
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "expected Unavailable, got {error:?}"
    );
    assert!(!error.is_rejected());
    // Connecting afresh fails the same way.
    let error = WardenClient::builder(url)
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
}

/// The layer around a trivial service that echoes the identity it was given.
fn echo(
    client: &WardenClient,
) -> impl tower::Service<
    http::Request<()>,
    Response = http::Response<String>,
    Error = std::convert::Infallible,
> + Clone {
    RequireSession::new(client.clone()).layer(tower::service_fn(
        |request: http::Request<()>| async move {
            let identity = request.extensions().get::<Identity>().cloned();
            let body = identity.map(|i| i.user_id).unwrap_or_default();
            Ok::<_, std::convert::Infallible>(http::Response::new(body))
        },
    ))
}

fn request(auth: Option<&str>, grpc: bool) -> http::Request<()> {
    let mut builder = http::Request::builder().uri("/hello");
    if let Some(token) = auth {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if grpc {
        builder = builder.header("content-type", "application/grpc");
    }
    builder.body(()).expect("request")
}

#[tokio::test]
async fn the_layer_lets_sessions_through_and_refuses_the_rest() {
    let server = Server::start().await;
    let (user_id, token) = server.signed_in("erin").await;
    let client = WardenClient::builder(server.url())
        .cache_ttl(Duration::ZERO)
        .connect()
        .await
        .expect("connect");

    let response = echo(&client)
        .oneshot(request(Some(&token), false))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(
        response.body(),
        &user_id,
        "the inner service saw the Identity"
    );

    let response = echo(&client).oneshot(request(None, false)).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
    assert!(
        response.body().is_empty(),
        "the inner service was not called"
    );

    let response = echo(&client)
        .oneshot(request(Some("bogus"), false))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);

    // gRPC: trailers-only, HTTP 200 with grpc-status UNAUTHENTICATED.
    let response = echo(&client).oneshot(request(None, true)).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
    let response = echo(&client)
        .oneshot(request(Some(&token), true))
        .await
        .unwrap();
    assert_eq!(response.body(), &user_id);

    server.logout(&token).await;
    let response = echo(&client)
        .oneshot(request(Some(&token), false))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);

    // Warden down: 503 / UNAVAILABLE, never the inner service.
    let (_, other) = server.signed_in("frank").await;
    server.stop().await;
    let response = echo(&client)
        .oneshot(request(Some(&other), false))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.body().is_empty());
    let response = echo(&client)
        .oneshot(request(Some(&other), true))
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "14");
}

#[tokio::test]
async fn the_layer_guards_a_tonic_server() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let server = Server::start().await;
    let (_, token) = server.signed_in("grace").await;
    let client = WardenClient::builder(server.url())
        .cache_ttl(Duration::ZERO)
        .connect()
        .await
        .expect("connect");

    // A tonic backend (the health service stands in for any service).
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let backend = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(RequireSession::new(client))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the backend");
    let mut caller = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };

    let status = caller.check(check()).await.expect_err("no bearer");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = caller
        .check(with_bearer(check(), "bogus"))
        .await
        .expect_err("unknown token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let answer = caller
        .check(with_bearer(check(), &token))
        .await
        .expect("a session gets through");
    assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);

    server.stop().await;
    let status = caller
        .check(with_bearer(check(), &token))
        .await
        .expect_err("Warden down");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    backend.abort();
}
