//! No password, hash or token ever reaches the logs.

use warden::grpc::pb;

use crate::helpers::{TestServer, bearer, logs};

#[tokio::test]
async fn a_full_session_cycle_logs_no_secret() {
    let mut server = TestServer::start().await;
    let password = "Unmistakable-Password-7781";
    let wrong = "Wrong-Password-Marker-5521";

    server.register("loggy", password).await;
    let _ = server.login("loggy", wrong).await;
    let session = server.login_session("loggy", password).await;
    server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: session.token.clone(),
        })
        .await
        .unwrap();
    server
        .client
        .get_account(bearer(pb::GetAccountRequest {}, &session.token))
        .await
        .unwrap();
    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &session.token))
        .await
        .unwrap();
    server.stop().await;

    let logs = logs();
    assert!(logs.contains("login.succeeded"), "the capture works");
    let token_body = &session.token[4..];
    for (i, secret) in [password, wrong, token_body, "$argon2id$"]
        .iter()
        .enumerate()
    {
        assert!(!logs.contains(secret), "logs contain secret #{i}");
    }
}
