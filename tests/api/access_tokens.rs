//! IssueAccessToken: tokens verified with an independent JOSE library
//! (jsonwebtoken, on ring) against the JWK Set from GetJwks and from the
//! HTTP endpoint; claims as ValidateSession sees the session; lifetimes cut
//! by the session's ends; refusals like any Bearer call; overlap.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;
use warden::grpc::pb::{self, auth_service_client::AuthServiceClient};

use crate::helpers::{
    PASSWORD, TEST_SIGNING_KID, TestServer, assert_status, audit_events, bearer, race,
};

/// A verified token's header and claims.
pub struct Verified {
    pub kid: String,
    pub typ: Option<String>,
    pub claims: Value,
}

/// Verifies `token` against the JWK Set `jwks` with jsonwebtoken: EdDSA
/// only, issuer `warden`, and `audience` when given. `exp` is checked by the
/// caller against the server's manual clock, not the machine's.
pub fn verify(
    token: &str,
    jwks: &str,
    audience: Option<&str>,
) -> Result<Verified, jsonwebtoken::errors::Error> {
    let set: JwkSet = serde_json::from_str(jwks).expect("a JWK Set");
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.clone().expect("a kid in the header");
    let jwk = set.find(&kid).expect("the kid is published");
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_issuer(&["warden"]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    match audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)?;
    assert_eq!(data.header.alg, Algorithm::EdDSA);
    Ok(Verified {
        kid,
        typ: data.header.typ,
        claims: data.claims,
    })
}

/// Issues an access token for `session` on `client`.
pub async fn issue(
    client: &mut AuthServiceClient<Channel>,
    session: &str,
) -> Result<pb::IssueAccessTokenResponse, tonic::Status> {
    client
        .issue_access_token(bearer(pb::IssueAccessTokenRequest {}, session))
        .await
        .map(tonic::Response::into_inner)
}

/// The JWK Set GetJwks answers.
pub async fn jwks(client: &mut AuthServiceClient<Channel>) -> String {
    client
        .get_jwks(pb::GetJwksRequest {})
        .await
        .expect("GetJwks")
        .into_inner()
        .jwks_json
}

/// `GET path` over plain HTTP/1.1 with `extra` header lines: the status
/// code, the head and the body.
pub async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn an_access_token_verifies_against_both_jwk_sets_and_says_what_validate_session_says() {
    let mut server = TestServer::start_with(|config| {
        config.server.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (user_id, session) = server.signed_in("tina", PASSWORD).await;
    let view = server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: session.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    let issued = issue(&mut server.client, &session).await.unwrap();
    let from_rpc = jwks(&mut server.client).await;
    let (code, head, from_http) =
        http_get(server.http_addr.unwrap(), "/.well-known/jwks.json", "").await;

    assert_eq!(code, 200);
    assert!(
        head.to_lowercase()
            .contains("content-type: application/jwk-set+json"),
        "{head}"
    );
    assert_eq!(from_http, from_rpc, "one document on both");
    for set in [&from_rpc, &from_http] {
        let token = verify(&issued.access_token, set, None).expect("the token verifies");
        let c = &token.claims;
        assert_eq!(token.kid, TEST_SIGNING_KID);
        assert_eq!(token.typ.as_deref(), Some("JWT"));
        assert_eq!(c["iss"], "warden");
        assert_eq!(c["sub"], user_id.as_str());
        assert_eq!(c["sub"], view.user_id.as_str());
        assert_eq!(c["sid"], view.session_id.as_str());
        let amr: HashSet<&str> = c["amr"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(amr, view.amr.iter().map(String::as_str).collect());
        assert_eq!(c["auth_time"], view.authenticated_at.unwrap().seconds);
        assert_eq!(c["iat"].as_u64(), Some(server.now()));
        assert_eq!(
            c["exp"].as_u64(),
            Some(server.now() + 300),
            "the default lifetime"
        );
        assert_eq!(c["exp"], issued.expires_at.unwrap().seconds);
        assert!(c["exp"].as_i64() <= view.expires_at.map(|t| t.seconds));
        assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
        assert!(c.get("aud").is_none(), "no audience unless configured");
    }
    assert_eq!(audit_events("access_token.issued", &user_id), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_audience_is_set_when_configured_and_checked_by_verifiers() {
    let mut server = TestServer::start_with(|config| {
        config.signing.access_token_audience = Some("orders-api".into());
    })
    .await;
    let (_, session) = server.signed_in("ulla", PASSWORD).await;

    let issued = issue(&mut server.client, &session).await.unwrap();
    let set = jwks(&mut server.client).await;

    let token = verify(&issued.access_token, &set, Some("orders-api")).expect("verifies");
    assert_eq!(token.claims["aud"], "orders-api");
    assert!(verify(&issued.access_token, &set, Some("billing-api")).is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_token_never_outlives_the_sessions_idle_end_or_absolute_end() {
    let mut server = TestServer::start_with(|config| {
        config.signing.access_token_ttl_secs = 600;
        config.sessions.ttl_secs = 1000;
        config.sessions.idle_timeout_secs = 300;
    })
    .await;
    let (_, session) = server.signed_in("vera", PASSWORD).await;
    let signed_in_at = server.now();
    let set = jwks(&mut server.client).await;
    let exp = |issued: &pb::IssueAccessTokenResponse| {
        let token = verify(&issued.access_token, &set, None).expect("verifies");
        let exp = token.claims["exp"].as_u64().unwrap();
        assert_eq!(Some(exp), issued.expires_at.map(|t| t.seconds as u64));
        exp
    };

    let fresh = issue(&mut server.client, &session).await.unwrap();
    // Each call is a use of the session: fetching tokens keeps it alive.
    let mut late = Vec::new();
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(250));
        late.push(issue(&mut server.client, &session).await.unwrap());
    }

    assert_eq!(exp(&fresh), signed_in_at + 300, "cut to the idle end");
    assert_eq!(
        exp(&late[0]),
        signed_in_at + 250 + 300,
        "the idle end moved with the use"
    );
    assert_eq!(
        exp(&late[2]),
        signed_in_at + 1000,
        "cut to the absolute end"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_a_live_session_there_is_no_token() {
    let mut server = TestServer::start_with(|config| {
        config.sessions.idle_timeout_secs = 600;
    })
    .await;
    let (_, revoked) = server.signed_in("wade", PASSWORD).await;
    let idle = server.login_session("wade", PASSWORD).await.token;
    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &revoked))
        .await
        .unwrap();

    let missing = server
        .client
        .issue_access_token(pb::IssueAccessTokenRequest {})
        .await
        .unwrap_err();
    let forged = issue(&mut server.client, "wss_not-a-session")
        .await
        .unwrap_err();
    let after_logout = issue(&mut server.client, &revoked).await.unwrap_err();
    server.clock.advance(Duration::from_secs(601));
    let after_idle = issue(&mut server.client, &idle).await.unwrap_err();

    for status in [&missing, &forged, &after_logout, &after_idle] {
        assert_status(status, Code::Unauthenticated, "SESSION_INVALID");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_each_get_a_distinct_token_and_wrong_bearers_none() {
    let mut server = TestServer::start().await;
    let (_, session) = server.signed_in("xena", PASSWORD).await;
    let set = jwks(&mut server.client).await;
    let channels = server.channels(32).await;

    let answers = race(channels, move |mut client, i| {
        let presented = if i % 4 == 3 {
            format!("wss_{i:0>43}")
        } else {
            session.clone()
        };
        async move { issue(&mut client, &presented).await }
    })
    .await;

    let mut ids = HashSet::new();
    for (i, answer) in answers.iter().enumerate() {
        if i % 4 == 3 {
            assert_status(
                answer.as_ref().unwrap_err(),
                Code::Unauthenticated,
                "SESSION_INVALID",
            );
        } else {
            let issued = answer.as_ref().expect("the right session gets a token");
            let token = verify(&issued.access_token, &set, None).expect("verifies");
            ids.insert(token.claims["jti"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 24, "every token has its own jti");
    server.stop().await;
}

#[tokio::test]
async fn a_replica_with_the_same_keys_issues_tokens_the_first_servers_set_verifies() {
    let mut server = TestServer::start().await;
    let (_, session) = server.signed_in("yuri", PASSWORD).await;
    let replica = server
        .replica(crate::helpers::test_config(&server.db))
        .await;
    let mut other = AuthServiceClient::new(replica.channel().await);

    let issued = issue(&mut other, &session).await.unwrap();
    let set = jwks(&mut server.client).await;

    assert_eq!(jwks(&mut other).await, set);
    let token = verify(&issued.access_token, &set, None).expect("verifies");
    assert_eq!(token.kid, TEST_SIGNING_KID);
    replica.stop().await;
    server.stop().await;
}
