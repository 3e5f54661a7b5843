//! The example backend behind the layer, against a real Warden: session
//! tokens over HTTP and gRPC, revocation after the cache TTL on a manual
//! clock, unknown tokens, concurrency, and failing closed with Warden down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Server;
use common::backend::Backend;
use http::StatusCode;
use tonic::Code;
use warden_client::clock::ManualClock;
use warden_client::{RequireSession, WardenClient, WhenUnavailable};

const TTL: Duration = Duration::from_secs(5);

async fn client(server: &Server, clock: &Arc<ManualClock>) -> WardenClient {
    WardenClient::builder(server.url())
        .cache_ttl(TTL)
        .clock(clock.clone())
        .connect_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_session_token_is_served_over_http_and_grpc() {
    let server = Server::start().await;
    let (user_id, token) = server.signed_in("alice").await;
    let clock = Arc::new(ManualClock::new());
    let backend = Backend::start(RequireSession::new(client(&server, &clock).await)).await;

    let answer = backend.http(Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["user_id"], user_id.as_str());
    assert_eq!(body["username"], "alice");
    assert_eq!(body["credential"], "session_token");
    assert_eq!(body["amr"], serde_json::json!(["pwd"]));

    let who = backend.who_am_i(&token).await.expect("gRPC served");
    assert_eq!(who.user_id, user_id);
    assert_eq!(who.credential, "session_token");
    assert!(!who.session_id.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn missing_and_unknown_tokens_are_refused_at_once() {
    let server = Server::start().await;
    let clock = Arc::new(ManualClock::new());
    let backend = Backend::start(RequireSession::new(client(&server, &clock).await)).await;

    let answer = backend.http(None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.www_authenticate.as_deref(), Some("Bearer"));
    for token in ["wss_unknown", "not-a-token", "a.b.c"] {
        let answer = backend.http(Some(token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            answer.www_authenticate.as_deref(),
            Some("Bearer error=\"invalid_token\"")
        );
        assert!(answer.body.is_empty(), "the route was not called");
        let status = backend.who_am_i(token).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{token}");
    }
    let status = backend
        .grpc()
        .await
        .who_am_i(common::backend::WhoAmIRequest {})
        .await
        .expect_err("no bearer");
    assert_eq!(status.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn a_revoked_session_is_refused_once_the_cache_ttl_has_passed() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("bob").await;
    let clock = Arc::new(ManualClock::new());
    let backend = Backend::start(RequireSession::new(client(&server, &clock).await)).await;

    assert_eq!(backend.http(Some(&token)).await.status, StatusCode::OK);
    server.logout(&token).await;
    // The trade-off of the cache: up to the TTL, the answer stands.
    clock.advance(TTL - Duration::from_secs(1));
    assert_eq!(backend.http(Some(&token)).await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        backend.http(Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let status = backend.who_am_i(&token).await.expect_err("revoked");
    assert_eq!(status.code(), Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_requests_right_and_wrong_each_get_their_own_answer() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("carol").await;
    let clock = Arc::new(ManualClock::new());
    let backend =
        Arc::new(Backend::start(RequireSession::new(client(&server, &clock).await)).await);
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let backend = backend.clone();
            let token = if i % 2 == 0 {
                token.clone()
            } else {
                format!("wss_wrong{i}")
            };
            tokio::spawn(async move { (i, backend.http(Some(&token)).await.status) })
        })
        .collect();
    for call in calls {
        let (i, status) = call.await.unwrap();
        let expected = if i % 2 == 0 {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, expected, "call {i}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_call_cancelled_by_its_deadline_leaves_nothing_behind() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("dave").await;
    let clock = Arc::new(ManualClock::new());
    let backend = Backend::start(RequireSession::new(client(&server, &clock).await)).await;
    // Deadlines too short to finish: whatever they reach, they give up.
    for micros in [1, 50, 200, 1_000] {
        let mut request = common::with_bearer(common::backend::WhoAmIRequest {}, &token);
        request.set_timeout(Duration::from_micros(micros));
        let mut grpc = backend.grpc().await;
        if let Err(status) = grpc.who_am_i(request).await {
            // tonic's client reports its own deadline as CANCELLED.
            assert!(
                matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
                "{micros} µs: {status:?}"
            );
        }
    }
    // A cancelled validation neither cached a failure nor broke the client.
    assert_eq!(
        backend.who_am_i(&token).await.expect("served").credential,
        "session_token"
    );
    server.logout(&token).await;
    clock.advance(TTL);
    assert_eq!(
        backend.who_am_i(&token).await.expect_err("revoked").code(),
        Code::Unauthenticated
    );
    server.stop().await;
}

#[tokio::test]
async fn with_warden_stopped_the_backend_fails_closed() {
    let server = Server::start().await;
    let (_, token) = server.signed_in("erin").await;
    let clock = Arc::new(ManualClock::new());
    let warden = client(&server, &clock).await;
    let backend = Backend::start(RequireSession::new(warden.clone())).await;
    let as_401 = Backend::start(
        RequireSession::new(warden).when_unavailable(WhenUnavailable::Unauthenticated),
    )
    .await;
    server.stop().await;

    // Never validated, so nothing cached: Warden must be asked, and cannot.
    let answer = backend.http(Some(&token)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.body.is_empty(), "the route was not called");
    let status = backend.who_am_i(&token).await.expect_err("no answer");
    assert_eq!(status.code(), Code::Unavailable);
    // Unknown tokens too: an outage is not a verdict.
    assert_eq!(
        backend.http(Some("wss_unknown")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The other policy answers 401 / UNAUTHENTICATED, still never 200.
    assert_eq!(
        as_401.http(Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        as_401.who_am_i(&token).await.expect_err("no answer").code(),
        Code::Unauthenticated
    );
}
