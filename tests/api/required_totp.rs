//! `WARDEN_REQUIRE_TOTP`: restricted sessions may only enrol; ValidateSession
//! and every other Bearer call refuse them with PERMISSION_DENIED
//! `TOTP_ENROLLMENT_REQUIRED`; confirming enrolment lifts the restriction at
//! once; turning the policy on locks nobody out.

use tonic::{Code, Status};
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_status, bearer, independent_totp, race, test_config,
};

const DENIED: &str = "TOTP_ENROLLMENT_REQUIRED";

async fn strict() -> TestServer {
    TestServer::start_with(|c| c.totp.require = true).await
}

async fn validate(
    server: &mut TestServer,
    token: &str,
) -> Result<pb::ValidateSessionResponse, Status> {
    server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: token.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Every Bearer call a restricted session may not make, with its answer.
async fn refused_calls(server: &mut TestServer, token: &str) -> Vec<(&'static str, Status)> {
    let client = &mut server.client;
    let password = || PASSWORD.to_owned();
    let mut refused = Vec::new();
    let mut note = |name, answer: Result<(), Status>| {
        if let Err(status) = answer {
            refused.push((name, status));
        } else {
            panic!("{name} succeeded on a restricted session");
        }
    };
    let disable = pb::DisableTotpRequest {
        password: password(),
        code: String::new(),
    };
    note(
        "DisableTotp",
        client.disable_totp(bearer(disable, token)).await.map(drop),
    );
    let regenerate = pb::RegenerateRecoveryCodesRequest {
        password: password(),
        code: String::new(),
    };
    note(
        "RegenerateRecoveryCodes",
        client
            .regenerate_recovery_codes(bearer(regenerate, token))
            .await
            .map(drop),
    );
    let change = pb::ChangePasswordRequest {
        current_password: password(),
        new_password: "another long passphrase".into(),
        code: String::new(),
    };
    note(
        "ChangePassword",
        client
            .change_password(bearer(change, token))
            .await
            .map(drop),
    );
    let delete = pb::DeleteAccountRequest {
        password: password(),
        code: String::new(),
    };
    note(
        "DeleteAccount",
        client.delete_account(bearer(delete, token)).await.map(drop),
    );
    let validate = pb::ValidateSessionRequest {
        token: token.into(),
    };
    note(
        "ValidateSession",
        client.validate_session(validate).await.map(drop),
    );
    let issue = bearer(pb::IssueAccessTokenRequest {}, token);
    note(
        "IssueAccessToken",
        client.issue_access_token(issue).await.map(drop),
    );
    let forget = bearer(pb::ForgetTrustedDevicesRequest {}, token);
    note(
        "ForgetTrustedDevices",
        client.forget_trusted_devices(forget).await.map(drop),
    );
    refused
}

#[tokio::test]
async fn a_restricted_session_may_only_enrol_and_confirming_lifts_it_at_once() {
    let mut server = strict().await;
    let (user_id, token) = server.signed_in("alice", PASSWORD).await;

    let account = server.account(&token).await;
    assert!(account.totp_required && !account.totp_enabled);
    let refused = refused_calls(&mut server, &token).await;
    assert_eq!(refused.len(), 7);
    for (name, status) in refused {
        assert_eq!(status.code(), Code::PermissionDenied, "{name}: {status:?}");
        assert_status(&status, Code::PermissionDenied, DENIED);
    }
    // The step-up calls refused without hashing anything: nothing counted,
    // and the account is still whole.
    assert_eq!(server.account(&token).await.user_id, user_id);

    let (_, codes) = server.enable_totp(&token, PASSWORD).await;
    assert_eq!(codes.len(), 10);

    let view = validate(&mut server, &token).await.unwrap();
    assert_eq!(view.user_id, user_id);
    assert_eq!(view.amr, ["pwd", "otp", "mfa"]);
    let account = server.account(&token).await;
    assert!(account.totp_required && account.totp_enabled);
    let issued = server
        .client
        .issue_access_token(bearer(pb::IssueAccessTokenRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert!(!issued.access_token.is_empty());
    // Full access now: a step-up call gets as far as its own checks.
    let regenerate = pb::RegenerateRecoveryCodesRequest {
        password: PASSWORD.into(),
        code: String::new(),
    };
    let status = server
        .client
        .regenerate_recovery_codes(bearer(regenerate, &token))
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "SECOND_FACTOR_REQUIRED");
}

#[tokio::test]
async fn a_restricted_session_can_log_out_and_its_errors_say_nothing_of_bad_tokens() {
    let mut server = strict().await;
    let (_, token) = server.signed_in("bob", PASSWORD).await;
    // An invalid token is still UNAUTHENTICATED, not PERMISSION_DENIED.
    let status = validate(&mut server, "wss_not-a-session")
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_INVALID");

    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &token))
        .await
        .unwrap();
    let status = validate(&mut server, &token).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_INVALID");
}

#[tokio::test]
async fn turning_the_policy_on_locks_nobody_out() {
    let mut server = TestServer::start().await;
    let (_, old_token) = server.signed_in("carol", PASSWORD).await;
    let (_, dave_token) = server.signed_in("dave", PASSWORD).await;
    server.enable_totp(&dave_token, PASSWORD).await;
    assert!(validate(&mut server, &old_token).await.is_ok());
    let db = server.stop().await;

    let mut config = test_config(&db);
    config.totp.require = true;
    let mut server = TestServer::start_on(db, config).await;
    // A session issued before the policy is restricted like a new one.
    let status = validate(&mut server, &old_token).await.unwrap_err();
    assert_status(&status, Code::PermissionDenied, DENIED);
    // A user who has TOTP is not affected.
    assert!(validate(&mut server, &dave_token).await.is_ok());
    server.login_challenge("dave", PASSWORD).await;

    // Carol logs in, enrols and continues; her older session follows her
    // account's state, with the methods it was issued with.
    let token = server.login_session("carol", PASSWORD).await.token;
    server.enable_totp(&token, PASSWORD).await;
    assert_eq!(
        validate(&mut server, &token).await.unwrap().amr,
        ["pwd", "otp", "mfa"]
    );
    assert_eq!(
        validate(&mut server, &old_token).await.unwrap().amr,
        ["pwd"]
    );
}

#[tokio::test]
async fn with_the_policy_off_nothing_is_restricted() {
    let mut server = TestServer::start().await;
    let (_, token) = server.signed_in("erin", PASSWORD).await;
    let account = server.account(&token).await;
    assert!(!account.totp_required && !account.totp_enabled);
    assert_eq!(validate(&mut server, &token).await.unwrap().amr, ["pwd"]);
    // Confirming enrolment without the policy keeps the session's methods.
    server.enable_totp(&token, PASSWORD).await;
    assert_eq!(validate(&mut server, &token).await.unwrap().amr, ["pwd"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_confirmations_lift_the_restriction_once_and_validations_never_see_half() {
    let mut server = strict().await;
    let (_, token) = server.signed_in("frank", PASSWORD).await;
    let enrollment = server.enroll(&token, PASSWORD).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();
    let code = independent_totp(&secret, server.now());

    let channels = server.channels(16).await;
    let (token_c, code_c) = (token.clone(), code.clone());
    let answers = race(channels, move |mut client, i| {
        let (token, code) = (token_c.clone(), code_c.clone());
        async move {
            if i % 2 == 0 {
                let confirm = pb::VerifyTotpRequest {
                    code,
                    purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
                    ..Default::default()
                };
                client
                    .verify_totp(bearer(confirm, &token))
                    .await
                    .map(|_| None)
            } else {
                let validate = pb::ValidateSessionRequest { token };
                client
                    .validate_session(validate)
                    .await
                    .map(|r| Some(r.into_inner().amr))
            }
        }
    })
    .await;

    let mut confirmed = 0;
    for (i, answer) in answers.into_iter().enumerate() {
        match (i % 2, answer) {
            (0, Ok(_)) => confirmed += 1,
            (0, Err(status)) => {
                // The losers find the pending secret gone or the step spent.
                assert!(
                    matches!(
                        status.code(),
                        Code::FailedPrecondition | Code::Unauthenticated
                    ),
                    "{status:?}"
                );
            }
            // A validation sees the session either restricted or upgraded,
            // never unrestricted with the old methods.
            (_, Ok(amr)) => assert_eq!(amr, Some(vec!["pwd".into(), "otp".into(), "mfa".into()])),
            (_, Err(status)) => assert_status(&status, Code::PermissionDenied, DENIED),
        }
    }
    assert_eq!(confirmed, 1);
    assert_eq!(
        validate(&mut server, &token).await.unwrap().amr,
        ["pwd", "otp", "mfa"]
    );
}

#[tokio::test]
async fn a_confirmation_on_one_replica_lifts_the_restriction_on_another() {
    let mut server = strict().await;
    let mut config = test_config(&server.db);
    config.totp.require = true;
    let replica = server.replica(config).await;
    let mut other =
        warden::grpc::pb::auth_service_client::AuthServiceClient::new(replica.channel().await);
    let (_, token) = server.signed_in("grace", PASSWORD).await;
    let status = other
        .validate_session(pb::ValidateSessionRequest {
            token: token.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::PermissionDenied, DENIED);

    server.enable_totp(&token, PASSWORD).await;
    let view = other
        .validate_session(pb::ValidateSessionRequest { token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.amr, ["pwd", "otp", "mfa"]);
    replica.stop().await;
}

#[tokio::test]
async fn a_confirmation_cancelled_by_its_deadline_leaves_one_consistent_state() {
    let mut server = strict().await;
    let (_, token) = server.signed_in("heidi", PASSWORD).await;
    let enrollment = server.enroll(&token, PASSWORD).await;
    let secret = data_encoding::BASE32_NOPAD
        .decode(enrollment.secret_base32.as_bytes())
        .unwrap();
    let confirm = pb::VerifyTotpRequest {
        code: independent_totp(&secret, server.now()),
        purpose: Some(pb::verify_totp_request::Purpose::ConfirmEnrollment(())),
        ..Default::default()
    };
    let mut request = bearer(confirm, &token);
    request.set_timeout(std::time::Duration::from_millis(1));
    let _ = server.client.verify_totp(request).await;
    // Let a confirmation that outlived its client finish.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let account = server.account(&token).await;
    match validate(&mut server, &token).await {
        Ok(view) => {
            assert!(account.totp_enabled);
            assert_eq!(view.amr, ["pwd", "otp", "mfa"]);
        }
        Err(status) => {
            assert_status(&status, Code::PermissionDenied, DENIED);
            assert!(!account.totp_enabled && account.totp_enrollment_pending);
            // The enrolment can still be finished (a later step).
            server.clock.advance(std::time::Duration::from_secs(30));
            let code = independent_totp(&secret, server.now());
            server.confirm(&token, &code).await.unwrap();
            assert_eq!(
                validate(&mut server, &token).await.unwrap().amr,
                ["pwd", "otp", "mfa"]
            );
        }
    }
}
