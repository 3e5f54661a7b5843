//! Malformed, oversized and out-of-shape requests get the contract's
//! statuses, and the server keeps serving.

use prost::Message as _;
use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{PASSWORD, TestServer, assert_invalid, assert_status, raw_call, serving};

#[tokio::test]
async fn undecodable_and_oversized_messages_are_invalid_argument() {
    let server = TestServer::start().await;

    let garbage = raw_call(
        server.channel().await,
        "Login",
        vec![0xff, 0xff, 0xff, 0x0f, 0x01],
    )
    .await
    .unwrap_err();
    let bad_utf8 = raw_call(
        server.channel().await,
        "Register",
        vec![0x0a, 0x02, 0xc3, 0x28],
    )
    .await
    .unwrap_err();
    let huge = pb::LoginRequest {
        username: "alice".into(),
        password: "x".repeat(70 * 1024),
        ..Default::default()
    }
    .encode_to_vec();
    let oversized = raw_call(server.channel().await, "Login", huge)
        .await
        .unwrap_err();

    for status in [&garbage, &bad_utf8, &oversized] {
        assert_invalid(status, "request");
        assert!(
            !status.message().contains("decode"),
            "no decoder text: {}",
            status.message()
        );
    }
    assert!(serving(&server).await);
    server.stop().await;
}

#[tokio::test]
async fn each_field_is_checked_for_shape_before_anything_else() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("alice", PASSWORD).await;
    server.enable_totp(&token, PASSWORD).await;
    let challenge = server
        .login_challenge("alice", PASSWORD)
        .await
        .challenge_token;

    let control_username = server.login("ali\u{7}ce", PASSWORD).await.unwrap_err();
    let nul_password = server
        .client
        .register(pb::RegisterRequest {
            username: "bobby".into(),
            password: "abc\0defghijkl".into(),
        })
        .await
        .unwrap_err();
    let plus_code = server
        .verify_challenge(&challenge, "+12345")
        .await
        .unwrap_err();
    let fullwidth = server
        .verify_challenge(&challenge, "１２３４５６")
        .await
        .unwrap_err();
    let bad_recovery = server
        .use_recovery_code(&challenge, "!!!!-!!!!-!!!!-!!!!")
        .await
        .unwrap_err();
    // Two faults: an unknown challenge is answered before the code's shape.
    let unknown_and_misshapen = server
        .verify_challenge("wsc_nope", "+12345")
        .await
        .unwrap_err();
    let unknown_and_bad_recovery = server
        .use_recovery_code("nonsense", "!!!!-!!!!-!!!!-!!!!")
        .await
        .unwrap_err();
    let session_and_misshapen = server.verify_challenge(&token, "12345").await.unwrap_err();
    // A request without purpose is refused before any token is looked at.
    let no_purpose_bad_code = server
        .client
        .verify_totp(pb::VerifyTotpRequest {
            code: "x".into(),
            purpose: None,
            ..Default::default()
        })
        .await
        .unwrap_err();

    assert_status(
        &unknown_and_misshapen,
        Code::Unauthenticated,
        "CHALLENGE_INVALID",
    );
    assert_status(
        &unknown_and_bad_recovery,
        Code::Unauthenticated,
        "CHALLENGE_INVALID",
    );
    assert_status(
        &session_and_misshapen,
        Code::Unauthenticated,
        "CHALLENGE_INVALID",
    );
    assert_invalid(&no_purpose_bad_code, "purpose");
    assert_invalid(&control_username, "username");
    assert_invalid(&nul_password, "password");
    assert_invalid(&plus_code, "code");
    assert_invalid(&fullwidth, "code");
    assert_invalid(&bad_recovery, "code");
    assert!(
        server
            .use_recovery_code(&challenge, "0000-0000-0000-0000")
            .await
            .is_err_and(|s| {
                assert_status(&s, Code::Unauthenticated, "INVALID_CREDENTIALS");
                true
            })
    );
    assert!(serving(&server).await);
    server.stop().await;
}
