//! ValidateSession, Logout, Bearer handling, expiry and idle timeout.

use std::time::Duration;

use tonic::{Code, Request};
use warden::grpc::pb;

use crate::helpers::{PASSWORD, TestServer, assert_invalid, assert_status, bearer, epoch};

async fn validate(
    server: &mut TestServer,
    token: &str,
) -> Result<pb::ValidateSessionResponse, tonic::Status> {
    server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn validate_session_describes_a_live_session() {
    let mut server = TestServer::start().await;
    let user_id = server.register("alice", PASSWORD).await;
    let session = server.login_session("ALICE", PASSWORD).await;

    let valid = validate(&mut server, &session.token).await.unwrap();

    assert_eq!(valid.user_id, user_id);
    assert_eq!(valid.username, "alice");
    assert_eq!(valid.session_id, session.session_id);
    assert_eq!(valid.amr, vec!["pwd".to_owned()]);
    assert_eq!(
        valid.authenticated_at.map(|t| t.seconds),
        Some(epoch().unix_timestamp())
    );
    assert_eq!(
        valid.expires_at.map(|t| t.seconds),
        Some(epoch().unix_timestamp() + 86_400)
    );
    server.stop().await;
}

#[tokio::test]
async fn validate_session_refuses_empty_malformed_and_unknown_tokens() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("bob", PASSWORD).await;

    let empty = validate(&mut server, "").await.unwrap_err();
    let malformed = validate(&mut server, "not a token").await.unwrap_err();
    let mut altered = token.clone();
    altered.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
    let unknown = validate(&mut server, &altered).await.unwrap_err();

    assert_invalid(&empty, "token");
    assert_status(&malformed, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(&unknown, Code::Unauthenticated, "SESSION_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn logout_revokes_at_once_and_a_second_logout_is_refused() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("carol", PASSWORD).await;

    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap();
    let after = validate(&mut server, &token).await.unwrap_err();
    let again = server
        .client
        .logout(bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap_err();

    assert_status(&after, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(&again, Code::Unauthenticated, "SESSION_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn bearer_metadata_must_be_one_well_formed_value() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("dave", PASSWORD).await;

    let missing = server
        .client
        .get_account(Request::new(pb::GetAccountRequest {}))
        .await
        .unwrap_err();
    let mut wrong_scheme = Request::new(pb::GetAccountRequest {});
    wrong_scheme
        .metadata_mut()
        .insert("authorization", format!("Basic {token}").parse().unwrap());
    let wrong_scheme = server.client.get_account(wrong_scheme).await.unwrap_err();
    let mut twice = bearer(pb::GetAccountRequest {}, &token);
    twice
        .metadata_mut()
        .append("authorization", format!("Bearer {token}").parse().unwrap());
    let twice = server.client.get_account(twice).await.unwrap_err();
    let mut lower = Request::new(pb::GetAccountRequest {});
    lower
        .metadata_mut()
        .insert("authorization", format!("bearer {token}").parse().unwrap());
    let lower = server.client.get_account(lower).await;

    assert_status(&missing, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(&wrong_scheme, Code::Unauthenticated, "SESSION_INVALID");
    assert_status(&twice, Code::Unauthenticated, "SESSION_INVALID");
    assert!(lower.is_ok(), "the scheme is case-insensitive");
    server.stop().await;
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime() {
    let mut server = TestServer::start_with(|c| {
        c.sessions.ttl_secs = 600;
        c.sessions.idle_timeout_secs = 500;
    })
    .await;
    let (_, token) = server.signed_in("erin", PASSWORD).await;

    // Keep the session busy so only the absolute lifetime can end it.
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(199));
        validate(&mut server, &token).await.unwrap();
    }
    server.clock.advance(Duration::from_secs(3));
    let expired = validate(&mut server, &token).await.unwrap_err();

    assert_status(&expired, Code::Unauthenticated, "SESSION_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout_and_use_keeps_them_alive() {
    let mut server = TestServer::start_with(|c| c.sessions.idle_timeout_secs = 100).await;
    let (_, token) = server.signed_in("frank", PASSWORD).await;

    server.clock.advance(Duration::from_secs(60));
    validate(&mut server, &token).await.unwrap();
    server.clock.advance(Duration::from_secs(60));
    let still_alive = validate(&mut server, &token).await;
    server.clock.advance(Duration::from_secs(100));
    let idle = validate(&mut server, &token).await.unwrap_err();

    assert!(still_alive.is_ok(), "use refreshed the idle timer");
    assert_status(&idle, Code::Unauthenticated, "SESSION_INVALID");
    server.stop().await;
}

#[tokio::test]
async fn issuing_more_sessions_than_the_cap_ends_the_oldest() {
    let mut server = TestServer::start_with(|c| c.sessions.max_per_user = 2).await;
    server.register("grace", PASSWORD).await;
    let first = server.login_session("grace", PASSWORD).await;
    server.clock.advance(Duration::from_secs(1));
    let second = server.login_session("grace", PASSWORD).await;
    server.clock.advance(Duration::from_secs(1));
    let third = server.login_session("grace", PASSWORD).await;

    assert_status(
        &validate(&mut server, &first.token).await.unwrap_err(),
        Code::Unauthenticated,
        "SESSION_INVALID",
    );
    assert!(validate(&mut server, &second.token).await.is_ok());
    assert!(validate(&mut server, &third.token).await.is_ok());
    server.stop().await;
}
