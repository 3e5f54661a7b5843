//! Access tokens from the real IssueAccessToken, verified by the client and
//! by the example backend: claims, expiry, audience, wrong and rotated keys,
//! tampering and other algorithms, Warden down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Server;
use common::backend::Backend;
use data_encoding::{BASE64, BASE64URL_NOPAD};
use http::StatusCode;
use tonic::Code;
use warden_client::clock::ManualClock;
use warden_client::{
    Accept, AccessTokenError, ClientError, Credential, RequireSession, WardenClient,
};

/// `kid:base64(seed)` for WARDEN_SIGNING_KEYS.
fn key(kid: &str, seed: u8) -> String {
    format!("{kid}:{}", BASE64.encode(&[seed; 32]))
}

/// A server signing with `keys` (the first, or `primary`), on `dir`'s
/// database and, for a restart, on `previous`'s address.
async fn server(
    dir: Option<Arc<tempfile::TempDir>>,
    previous: Option<std::net::SocketAddr>,
    keys: &[String],
    primary: Option<&str>,
    audience: Option<&str>,
) -> Server {
    let dir = dir.unwrap_or_else(|| Arc::new(tempfile::tempdir().unwrap()));
    let (keys, primary, audience) = (
        keys.join(","),
        primary.map(str::to_owned),
        audience.map(str::to_owned),
    );
    Server::start_with(dir, move |config| {
        if let Some(addr) = previous {
            config.server.listen = addr;
        }
        config.signing.keys = Some(keys.into());
        config.signing.signing_key_id = primary;
        config.signing.access_token_audience = audience;
        // Longer than the test clock moves (the JWK Set's 300 s TTL), within
        // the session's idle timeout.
        config.signing.access_token_ttl_secs = 1200;
    })
    .await
}

async fn client(url: String, clock: &Arc<ManualClock>, audience: Option<&str>) -> WardenClient {
    let mut builder = WardenClient::builder(url)
        .clock(clock.clone())
        .connect_timeout(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(2));
    if let Some(audience) = audience {
        builder = builder.access_token_audience(audience);
    }
    builder.connect_lazy().expect("client")
}

fn refused(result: Result<warden_client::AccessClaims, ClientError>) -> AccessTokenError {
    match result {
        Err(e) => {
            assert!(e.is_rejected(), "{e:?}");
            e.access_token_error()
                .unwrap_or_else(|| panic!("not an access-token error: {e:?}"))
        }
        Ok(claims) => panic!("accepted: {claims:?}"),
    }
}

#[tokio::test]
async fn an_access_token_is_served_over_http_and_grpc_with_its_claims() {
    let server = server(None, None, &[key("a", 1)], None, None).await;
    let (user_id, session) = server.signed_in("alice").await;
    let access = server.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let warden = client(server.url(), &clock, None).await;

    let claims = warden.verify_access_token(&access).await.expect("verifies");
    assert_eq!(claims.user_id, user_id);
    assert_eq!(claims.issuer, "warden");
    assert_eq!(claims.key_id, "a");
    assert_eq!(claims.amr, ["pwd"]);
    assert!(claims.audience.is_empty());
    assert!(claims.token_id.is_some());
    let session_identity = warden.validate(&session).await.unwrap();
    assert_eq!(claims.session_id, session_identity.session_id);

    let backend = Backend::start(RequireSession::new(warden)).await;
    let answer = backend.http(Some(&access)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["user_id"], user_id.as_str());
    assert_eq!(body["credential"], "access_token");
    assert!(
        body["username"].is_null(),
        "access tokens carry no username"
    );
    let who = backend.who_am_i(&access).await.expect("gRPC served");
    assert_eq!(
        (who.user_id.as_str(), who.credential.as_str()),
        (user_id.as_str(), "access_token")
    );
    server.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refused_after_the_leeway() {
    let server = server(None, None, &[key("a", 1)], None, None).await;
    let (_, session) = server.signed_in("bob").await;
    let access = server.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let warden = client(server.url(), &clock, None).await;
    let exp = warden
        .verify_access_token(&access)
        .await
        .unwrap()
        .expires_at;
    let until_exp = exp.duration_since(clock_wall(&clock)).unwrap_or_default();
    // Within the 10 s leeway past exp it still verifies; after, never.
    clock.advance(until_exp + Duration::from_secs(9));
    warden
        .verify_access_token(&access)
        .await
        .expect("within the leeway");
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        refused(warden.verify_access_token(&access).await),
        AccessTokenError::Expired
    );
    let backend = Backend::start(RequireSession::new(warden)).await;
    assert_eq!(
        backend.http(Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

fn clock_wall(clock: &ManualClock) -> std::time::SystemTime {
    use warden_client::clock::Clock as _;
    clock.wall()
}

#[tokio::test]
async fn the_audience_must_be_the_backends() {
    let server = server(None, None, &[key("a", 1)], None, Some("billing")).await;
    let (_, session) = server.signed_in("carol").await;
    let access = server.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let billing = client(server.url(), &clock, Some("billing")).await;
    assert_eq!(
        billing.verify_access_token(&access).await.unwrap().audience,
        ["billing"]
    );
    let api = client(server.url(), &clock, Some("api")).await;
    assert_eq!(
        refused(api.verify_access_token(&access).await),
        AccessTokenError::WrongAudience
    );
    let none = client(server.url(), &clock, None).await;
    assert_eq!(
        refused(none.verify_access_token(&access).await),
        AccessTokenError::WrongAudience
    );
    let backend = Backend::start(RequireSession::new(api)).await;
    assert_eq!(
        backend.http(Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn a_previous_key_verifies_while_listed_and_a_replaced_one_never() {
    let first = server(None, None, &[key("a", 1)], None, None).await;
    let addr = first.addr;
    let (_, session) = first.signed_in("dave").await;
    let old = first.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let warden = client(first.url(), &clock, None).await;
    warden
        .verify_access_token(&old)
        .await
        .expect("signed with a");
    let dir = first.stop().await;

    // Restarted with b signing and a still published.
    let second = server(
        Some(dir),
        Some(addr),
        &[key("b", 2), key("a", 1)],
        Some("b"),
        None,
    )
    .await;
    let new = second.access_token(&session).await;
    clock.advance(Duration::from_secs(10)); // the least time between fetches
    assert_eq!(
        warden.verify_access_token(&new).await.unwrap().key_id,
        "b",
        "unknown kid: refreshed"
    );
    assert_eq!(
        warden.verify_access_token(&old).await.unwrap().key_id,
        "a",
        "a is still listed"
    );
    let dir = second.stop().await;

    // a withdrawn: once the cached set has aged out, its tokens are refused.
    let third = server(Some(dir.clone()), Some(addr), &[key("b", 2)], None, None).await;
    clock.advance(Duration::from_secs(300));
    assert_eq!(
        refused(warden.verify_access_token(&old).await),
        AccessTokenError::UnknownKey
    );
    warden.verify_access_token(&new).await.expect("b is listed");
    let dir = third.stop().await;

    // The same kid with another key: the signature no longer verifies.
    let fourth = server(Some(dir), Some(addr), &[key("b", 9)], None, None).await;
    let fresh = client(fourth.url(), &clock, None).await;
    assert_eq!(
        refused(fresh.verify_access_token(&new).await),
        AccessTokenError::BadSignature
    );
    let backend = Backend::start(RequireSession::new(fresh)).await;
    assert_eq!(
        backend.http(Some(&new)).await.status,
        StatusCode::UNAUTHORIZED
    );
    fourth.stop().await;
}

#[tokio::test]
async fn tampered_tokens_and_other_algorithms_are_refused() {
    let server = server(None, None, &[key("a", 1)], None, None).await;
    let (_, session) = server.signed_in("erin").await;
    let access = server.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let warden = client(server.url(), &clock, None).await;
    let parts: Vec<&str> = access.split('.').collect();

    let mut claims: serde_json::Value =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
    claims["sub"] = "00000000-0000-0000-0000-000000000000".into();
    let forged = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
    let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
    assert_eq!(
        refused(warden.verify_access_token(&tampered).await),
        AccessTokenError::BadSignature
    );

    for alg in ["none", "HS256", "RS256"] {
        let header = BASE64URL_NOPAD
            .encode(format!(r#"{{"alg":"{alg}","kid":"a","typ":"JWT"}}"#).as_bytes());
        let token = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            refused(warden.verify_access_token(&token).await),
            AccessTokenError::Algorithm,
            "{alg}"
        );
    }

    let backend = Backend::start(RequireSession::new(warden.clone())).await;
    for token in [&tampered, &access[..access.len() - 2]] {
        let answer = backend.http(Some(token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            backend.who_am_i(token).await.expect_err("refused").code(),
            Code::Unauthenticated
        );
    }
    // A route that takes only session tokens refuses even a good access token.
    let sessions_only =
        Backend::start(RequireSession::new(warden).accept(Accept::SessionTokens)).await;
    assert_eq!(
        sessions_only.http(Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sessions_only.http(Some(&session)).await.status,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn many_concurrent_verifications_and_invented_kids_get_their_own_answers() {
    let server = server(None, None, &[key("a", 1)], None, None).await;
    let (_, session) = server.signed_in("frank").await;
    let access = server.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let warden = client(server.url(), &clock, None).await;
    let header = BASE64URL_NOPAD.encode(br#"{"alg":"EdDSA","kid":"invented","typ":"JWT"}"#);
    let (_, rest) = access.split_once('.').unwrap();
    let invented = format!("{header}.{rest}");
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let (warden, token) = (
                warden.clone(),
                if i % 2 == 0 {
                    access.clone()
                } else {
                    invented.clone()
                },
            );
            tokio::spawn(async move { (i, warden.authenticate(&token).await) })
        })
        .collect();
    for call in calls {
        match call.await.unwrap() {
            (i, Ok(identity)) if i % 2 == 0 => {
                assert_eq!(identity.credential, Credential::AccessToken)
            }
            (i, Err(e)) if i % 2 == 1 => {
                assert_eq!(
                    e.access_token_error(),
                    Some(AccessTokenError::UnknownKey),
                    "{i}"
                )
            }
            (i, other) => panic!("call {i}: {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn with_warden_down_tokens_cannot_be_checked_and_the_backend_fails_closed() {
    let server = server(None, None, &[key("a", 1)], None, None).await;
    let (_, session) = server.signed_in("grace").await;
    let access = server.access_token(&session).await;
    let clock = Arc::new(ManualClock::new());
    let known = client(server.url(), &clock, None).await;
    known
        .verify_access_token(&access)
        .await
        .expect("keys fetched");
    let never_fetched = client(server.url(), &clock, None).await;
    server.stop().await;

    // Without keys there is no verdict: UNAVAILABLE / 503, never 401 or 200.
    let error = never_fetched
        .verify_access_token(&access)
        .await
        .expect_err("no keys");
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
    let backend = Backend::start(RequireSession::new(never_fetched)).await;
    assert_eq!(
        backend.http(Some(&access)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        backend.who_am_i(&access).await.expect_err("no keys").code(),
        Code::Unavailable
    );
    // Keys already fetched keep verifying for their TTL, then fail closed.
    known
        .verify_access_token(&access)
        .await
        .expect("cached keys");
    clock.advance(Duration::from_secs(300));
    let error = known
        .verify_access_token(&access)
        .await
        .expect_err("keys aged out");
    assert!(
        matches!(error, ClientError::Unavailable { .. }),
        "{error:?}"
    );
}
